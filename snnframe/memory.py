"""Whether one training batch fits in memory, checked before the run directory is created.

Backpropagation through time keeps every layer's activations of every time step until the
backward pass, so a recipe's memory grows with ``time steps x batch size``: a typo in
``encoder.num_steps`` can ask for petabytes. :func:`check_memory` measures, on the CPU and on a
single sample, what the model saves for its backward pass at one and at two time steps (through
``torch.autograd.graph.saved_tensors_hooks``), extrapolates to the recipe's steps and batch size,
adds the parameters with their gradients and optimizer state, and compares the sum with the
memory of the device that will train:

* more than the whole device (or the process's cgroup limit): a :class:`~snnframe.errors.RecipeError`
  naming the estimate and the keys that drive it, before anything is written;
* more than what is free right now: a warning (other processes may free it; the estimate leaves
  out the backward pass's temporaries, so it is a lower bound).

A model that is not a ``torch.nn.Module``, a probe that fails, or a dataset without samples is not
checked: training reports its own errors. Random states and the model are left as they were.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import sys
from pathlib import Path
from typing import Any

import attrs

from snnframe.errors import RecipeError

# the key a recipe's encoder uses for its number of time steps (the image encoders' keyword)
STEPS_KEY = "num_steps"
PROBE_STEPS = (1, 2)
OPTIMIZER_COPIES = 4  # parameter, gradient and two optimizer moments (Adam)


@attrs.define
class Estimate:
    total: int  # bytes
    per_step_and_sample: int
    fixed: int  # parameters, gradients, optimizer state
    steps: int
    steps_key: str | None  # "encoder.num_steps", or None when the data decides the steps
    batch: int


def human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def check_memory(recipe: Any, parts: Any, experiment: Any) -> Estimate | None:
    """Refuse a recipe whose training batch cannot fit in this machine's memory; warn when it is tight."""
    estimate = estimate_batch(recipe, parts, experiment)
    if estimate is None:
        return None
    device = _device(recipe.train.device)
    total, free = device_memory(device)
    if total is None:
        return estimate
    needs = human(estimate.total)
    if estimate.steps_key:
        drivers = f"{estimate.steps_key} = {estimate.steps} steps"
    else:
        drivers = f"{estimate.steps} time steps per sample (from the encoder and the data)"
    drivers += (
        f" x data.batch_size = {estimate.batch} samples x {human(estimate.per_step_and_sample)} per step and "
        f"sample, plus {human(estimate.fixed)} for the parameters and optimizer"
    )
    where = "this machine's memory" if device == "cpu" else f"the memory of {device}"
    if estimate.total > total:
        # the key that drives it: the larger of the two factors
        steps_drive = estimate.steps_key is not None and estimate.steps >= estimate.batch
        key = estimate.steps_key if steps_drive else "data.batch_size"
        lower = f"lower {estimate.steps_key} or data.batch_size" if estimate.steps_key else "lower data.batch_size"
        raise RecipeError(
            [
                f"{key}: one training batch needs at least {needs} ({drivers}), more than the {human(total)} "
                f"of {where}; {lower}"
            ],
            recipe.source,
        )
    if free is not None and estimate.total > free:
        print(
            f"snnframe: warning: one training batch needs about {needs} ({drivers}), more than the {human(free)} of "
            f"{where} free now; the run may fail or swap",
            file=sys.stderr,
        )
    return estimate


def _device(request: str) -> str:
    if request == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return request


def device_memory(device: str) -> tuple[int | None, int | None]:
    """``(total, free)`` bytes of ``device`` (``None`` where unknown); CPU totals respect a cgroup limit."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None, None
        index = int(device.split(":")[1]) if ":" in device else int(os.environ.get("LOCAL_RANK", "0"))
        try:
            free, total = torch.cuda.mem_get_info(index)
        except Exception:
            return None, None
        return int(total), int(free)
    if device != "cpu":
        return None, None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None, None
    free = _meminfo_available()
    limit = _cgroup_limit()
    if limit is not None and limit < total:
        total = limit
        free = min(free, limit) if free is not None else None
    return total, free


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def estimate_batch(recipe: Any, parts: Any, experiment: Any) -> Estimate | None:
    """What one training batch of the recipe needs at least, or ``None`` if it cannot be measured."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    model, encoder = parts.model, parts.encoder
    if not isinstance(model, torch.nn.Module):
        return None
    try:
        train, _ = experiment.splits()
        if len(train) == 0:
            return None
        sample = train[0]
    except Exception:
        return None
    batch_size = recipe.data.batch_size
    table = recipe.table("encoder")
    steps = steps_value(table)
    fixed = OPTIMIZER_COPIES * sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        with _untouched_random_state():
            if isinstance(steps, int) and not isinstance(steps, bool) and steps > max(PROBE_STEPS):
                measured = []
                for t in PROBE_STEPS:
                    probe_encoder = _encoder_with_steps(parts, recipe, t)
                    if probe_encoder is None:
                        return None
                    measured.append(_saved_bytes(model, probe_encoder, experiment, sample, parts.loss)[0])
                per_step = max(0, measured[1] - measured[0])
                rest = max(0, measured[0] - per_step)
                per_sample = rest + per_step * steps
                key = f"encoder.{STEPS_KEY}"
            else:
                per_sample, steps = _saved_bytes(model, encoder, experiment, sample, parts.loss)
                per_step = per_sample // max(1, steps)
                key = f"encoder.{STEPS_KEY}" if isinstance(steps_value(table), int) else None
    except Exception:  # the probe is a courtesy: training reports real errors itself
        return None
    return Estimate(batch_size * per_sample + fixed, per_step, fixed, steps, key, batch_size)


def steps_value(table: Any) -> Any:
    """The encoder table's ``num_steps``, if it has one."""
    return table.params.get(STEPS_KEY) if table is not None else None


def _encoder_with_steps(parts: Any, recipe: Any, steps: int) -> Any:
    factory = getattr(parts, "factories", {}).get("encoder")
    if factory is None:
        return None
    params = {**recipe.table("encoder").params, STEPS_KEY: steps}
    try:
        return factory(**params)
    except ValueError:
        return None


def _saved_bytes(model: Any, encoder: Any, experiment: Any, sample: Any, loss: Any) -> tuple[int, int]:
    """Bytes the forward pass (and loss) of one sample keeps for backward, and the time steps it ran."""
    import torch

    from snnframe.data import split_batch

    info = experiment.info
    collate = encoder.collate_fn(info) or torch.utils.data.default_collate
    inputs, targets = split_batch(collate([sample]), "cpu")
    probe = copy.deepcopy(model).cpu().train()
    params = {p.untyped_storage().data_ptr() for p in probe.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            storage = t.untyped_storage()
            if storage.data_ptr() not in params:
                storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.enable_grad():
        x = encoder(inputs)
        spikes = probe(x)
        if loss is not None:
            loss(spikes.float(), targets)
    steps = int(x.shape[0])
    out = spikes.untyped_storage()
    storages.setdefault(out.data_ptr(), out.nbytes())
    return sum(storages.values()), steps


@contextlib.contextmanager
def _untouched_random_state():
    import numpy as np
    import torch

    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
