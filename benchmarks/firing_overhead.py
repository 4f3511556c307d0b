"""What recording firing rates costs the bptt trainer: the test-set evaluation with and without it.

    python benchmarks/firing_overhead.py                      # recipes/quickstart.toml
    python benchmarks/firing_overhead.py recipes/quickstart_spike.toml --repeats 5

Builds the recipe's components as `snnframe run` does, trains one epoch (timed, as the
denominator), then evaluates the whole test set `--repeats` times each way, alternating: plain
(the trainer's loop before firing rates) and with :class:`snnframe.engine.FiringRecorder` (its
hooks, per-neuron sums and ``rates()``, as the trainer runs it now). Prints medians and the
overhead as a share of one epoch (training + evaluation).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snnframe.data import split_batch  # noqa: E402
from snnframe.engine import FiringRecorder, correct_count, keep_freed_memory  # noqa: E402
from snnframe.recipe import read_with_overrides  # noqa: E402
from snnframe.run import build  # noqa: E402


def evaluate(model, encoder, loss_fn, loader, record: bool) -> tuple[float, dict]:
    model.eval()
    recorder = FiringRecorder(model) if record else None
    began = time.perf_counter()
    totals = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad(), recorder if record else contextlib.nullcontext():
        for batch in loader:
            inputs, targets = split_batch(batch, "cpu")
            spikes = model(encoder(inputs))
            loss = loss_fn(spikes.float(), targets)
            n = targets.shape[0]
            totals += torch.stack([loss.double() * n, correct_count(spikes, targets).double(), torch.tensor(float(n))])
    totals.tolist()
    rates = recorder.rates() if record else {}
    return time.perf_counter() - began, rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default=str(REPO / "recipes" / "quickstart.toml"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    keep_freed_memory()
    prepared = build(read_with_overrides(args.recipe, ["visualize=[]"]), args.recipe, Path(args.recipe).stem)
    parts, data = prepared.components, prepared.recipe.data
    from snnframe.data import prepared_splits

    train, test = prepared_splits(parts.dataset, parts.encoder, data.subset, data.test_subset)
    collate = parts.encoder.collate_fn(parts.dataset.info)
    model, encoder, loss_fn = parts.model, parts.encoder, parts.loss
    optimizer = torch.optim.Adam(model.parameters(), lr=prepared.recipe.train.lr)
    train_loader = DataLoader(train, batch_size=data.batch_size, shuffle=True, collate_fn=collate)
    test_loader = DataLoader(test, batch_size=data.batch_size, collate_fn=collate)

    model.train()
    began = time.perf_counter()
    for batch in train_loader:
        inputs, targets = split_batch(batch, "cpu")
        loss = loss_fn(model(encoder(inputs)), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_seconds = time.perf_counter() - began

    evaluate(model, encoder, loss_fn, test_loader, False)  # warm-up (numba, caches)
    evaluate(model, encoder, loss_fn, test_loader, True)
    plain, recorded = [], []
    for _ in range(args.repeats):
        plain.append(evaluate(model, encoder, loss_fn, test_loader, False)[0])
        seconds, rates = evaluate(model, encoder, loss_fn, test_loader, True)
        recorded.append(seconds)
    p, r = statistics.median(plain), statistics.median(recorded)
    epoch = train_seconds + p
    print(f"recipe {args.recipe}: {len(train)} train / {len(test)} test samples, batch {data.batch_size}")
    print(f"training epoch {train_seconds:.2f} s")
    print(
        f"evaluation, median of {args.repeats}: plain {p:.3f} s [{min(plain):.3f}-{max(plain):.3f}], "
        f"with firing rates {r:.3f} s [{min(recorded):.3f}-{max(recorded):.3f}]"
    )
    share = f"{100 * (r - p) / p:+.1f} % of the evaluation, {100 * (r - p) / epoch:+.2f} % of an epoch"
    print(f"overhead {r - p:+.3f} s = {share}")
    print("firing rates:", {k: round(v, 4) for k, v in rates.items()})


if __name__ == "__main__":
    main()
