"""``snnframe eval RUN_DIR``: a trained run on its test set: accuracy, loss, firing rates, SynOps, energy.

Everything here is on :func:`snnframe.load_run` and :mod:`snnframe.engine.metrics`, for any
model whose spiking layers are :class:`~snnframe.engine.SpikingNeuron` modules.
"""

from __future__ import annotations

from typing import Any

from snnframe.errors import SnnframeError


def evaluate(run: Any, *, batch_size: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Evaluate a :class:`~snnframe.rundir.LoadedRun` on its whole test set; a JSON-ready dict.

    Keys: ``run_dir``, ``epoch``, ``samples``, ``num_steps``, ``test_acc``, ``test_loss``,
    ``firing_rates`` (by layer), ``synops``, ``snn_macs``, ``macs`` (the network as an ANN),
    ``energy_j``, ``ann_energy_j`` (per sample), ``energy_model``, ``per_layer`` (per weighted
    layer: ``synops``, ``macs``, ``ann_macs``) and ``not_counted`` (recurrent weights inside a neuron
    that do not fit its output). The random streams are seeded from the run's
    ``experiment.seed`` first, so a random encoder (``rate``) gives the same numbers each time.
    """
    import torch
    from torch.utils.data import DataLoader

    from snnframe.data import split_batch
    from snnframe.engine.metrics import (
        ENERGY_PER_AC_J,
        ENERGY_PER_MAC_J,
        ENERGY_SOURCE,
        FiringRecorder,
        SynapticOps,
        correct_count,
        energy_j,
    )
    from snnframe.run import seed_everything

    _, test_set = run.splits()
    if len(test_set) == 0:
        raise SnnframeError(f"{run.run_dir}: the test set is empty (check data.test_subset)")
    loader = DataLoader(
        test_set, batch_size=batch_size or run.recipe.data.batch_size, collate_fn=run.encoder.collate_fn(run.info)
    )
    try:
        device_ = torch.device(device)
        model = run.model.to(device_).eval()
    except (RuntimeError, AssertionError) as exc:
        raise SnnframeError(f"cannot evaluate on device {device!r}: {exc}") from None
    seed_everything(run.recipe.experiment.seed)
    loss_sum, correct, count, steps = 0.0, 0, 0, None
    firing, ops = FiringRecorder(model), SynapticOps(model)
    with torch.no_grad(), firing, ops:
        for batch in loader:
            inputs, targets = split_batch(batch, device_)
            x = run.encoder(inputs)
            steps = int(x.shape[0])
            spikes = model(x)
            n = int(targets.shape[0])
            if run.loss is not None:
                loss_sum += float(run.loss(spikes.float(), targets)) * n
            correct += int(correct_count(spikes, targets))
            count += n
    counted = ops.per_sample()
    synops, snn_macs, ann_macs = counted["synops"], counted["snn_macs"], counted["ann_macs"]
    return {
        "run_dir": str(run.run_dir),
        "epoch": run.epoch,
        "samples": count,
        "num_steps": steps,
        "test_acc": correct / count,
        "test_loss": loss_sum / count if run.loss is not None else None,
        "firing_rates": firing.rates(),
        "synops": synops,
        "snn_macs": snn_macs,
        "macs": ann_macs,
        "energy_j": energy_j(synops, snn_macs),
        "ann_energy_j": energy_j(0.0, ann_macs),
        "energy_model": {"ac_j": ENERGY_PER_AC_J, "mac_j": ENERGY_PER_MAC_J, "source": ENERGY_SOURCE},
        "per_layer": counted["per_layer"],
        "not_counted": list(ops.skipped),
    }


def _count(x: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g} {unit}"
    return f"{x:.3g}"


def _joules(x: float) -> str:
    for unit, size in (("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(x) >= size:
            return f"{x / size:.3g} {unit}"
    return f"{x:.3g} J"


def report(result: dict[str, Any]) -> str:
    """The text ``snnframe eval`` prints."""
    loss = "n/a" if result["test_loss"] is None else f"{result['test_loss']:.4f}"
    lines = [
        f"{result['run_dir']}: epoch {result['epoch']}, {result['samples']} test samples, "
        f"{result['num_steps']} time steps",
        f"test accuracy {100 * result['test_acc']:.2f} %, test loss {loss}",
        "",
        "firing rates (mean spikes per neuron per step on the test set):",
    ]
    width = max([len(n) for n in result["firing_rates"]] + [len(n) for n in result["per_layer"]] + [5])
    lines += [f"  {name:<{width}}  {rate:.4f}" for name, rate in result["firing_rates"].items()]
    if not result["firing_rates"]:
        lines.append("  (no SpikingNeuron layers found)")
    lines += ["", "operations per sample:", f"  {'layer':<{width}}  {'SynOps':>10}  {'MACs':>10}  {'ANN MACs':>10}"]
    for name, layer in result["per_layer"].items():
        lines.append(
            f"  {name:<{width}}  {_count(layer['synops']):>10}  {_count(layer['macs']):>10}  "
            f"{_count(layer['ann_macs']):>10}"
        )
    lines.append(
        f"  {'total':<{width}}  {_count(result['synops']):>10}  {_count(result['snn_macs']):>10}  "
        f"{_count(result['macs']):>10}"
    )
    lines += [
        "  SynOps: an accumulate per spike and synapse it drives; MACs: layers fed by non-spike input",
        "  (e.g. a static image); ANN MACs: the same network run once as an ANN.",
    ]
    if result["not_counted"]:
        lines.append(f"  not counted (weights inside a neuron that do not fit its output): {result['not_counted']}")
    model = result["energy_model"]
    ratio = result["energy_j"] / result["ann_energy_j"] if result["ann_energy_j"] else float("nan")
    lines += [
        "",
        f"energy per sample (45 nm: {model['ac_j'] * 1e12:g} pJ per accumulate, {model['mac_j'] * 1e12:g} pJ per "
        "multiply-accumulate;",
        f"  {model['source']}):",
        f"  SNN {_joules(result['energy_j'])}, ANN {_joules(result['ann_energy_j'])} (SNN / ANN = {ratio:.3g})",
    ]
    return "\n".join(lines)
