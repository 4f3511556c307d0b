"""DistributedDataParallel on CPU: torchrun, 2 processes, gloo, the toy network."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from trainer_toys import make_experiment

from snnframe.builtins.losses.spike_losses import ce_rate
from snnframe.builtins.training.bptt import TIMING_KEYS, BPTTTrainer
from snnframe.contracts import DatasetInfo

TESTS = Path(__file__).parent

WORKER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import torch
    import torch.distributed as dist

    from snnframe.builtins.losses.spike_losses import ce_rate
    from snnframe.engine.metrics import correct_count
    from snnframe.builtins.training.bptt import BPTTTrainer
    from trainer_toys import MaskRecordingSNN, make_experiment

    out, spare_ports = Path(sys.argv[1]), sys.argv[2:]
    rank = int(os.environ["RANK"])

    def run_dir(name):
        # rank 1 gets a directory of its own and is_main=True: only the trainer's own rank
        # check can keep it from writing there
        return out / name if rank == 0 else out / f"rank{rank}" / name

    def fit(name, epochs, resume=False, **params):
        if dist_runs:
            # a process group cannot be re-created on torchrun's agent store: later fits in this
            # process (a CLI run has one) rendezvous on a port of their own
            os.environ["TORCHELASTIC_USE_AGENT_STORE"] = "False"
            os.environ["MASTER_PORT"] = spare_ports[len(dist_runs) - 1]
        dist_runs.append(name)
        experiment = make_experiment(run_dir(name), batch_size=8, resume=resume, model=MaskRecordingSNN)
        result = BPTTTrainer(epochs=epochs, lr=1e-2, device="cpu", loss=ce_rate(), **params).fit(experiment)
        assert not dist.is_initialized(), "the trainer leaves no process group behind"
        return experiment, result

    dist_runs = []
    experiment, whole = fit("whole", 2)
    fit("split", 1)
    _, resumed = fit("split", 2, resume=True)
    _, pieces = fit("pieces", 1, micro_batch=3)  # batches of 8 in pieces of 3, 3, 2

    report = {
        "world_size": int(os.environ["WORLD_SIZE"]),
        "is_main": whole.is_main,
        "history": whole.history,
        "resumed_history": resumed.history,
        "params": [p.detach().double().sum().item() for p in whole.model.parameters()],
        "dropped": whole.model.dropped,  # dropout masks of epochs 1 and 2, batch by batch
        "resumed_dropped": resumed.model.dropped,  # epoch 2's, after resuming
        "pieces_params": [p.detach().double().sum().item() for p in pieces.model.parameters()],
        "pieces_dropped": [len(d) for d in pieces.model.dropped],
    }
    if rank == 0:  # the whole test set through the final model in one process
        model = whole.model.eval()
        _, test_set = experiment.splits()
        x, y = test_set[:]
        with torch.no_grad():
            spikes = model(experiment.encoder(x))
        report["test_loss"] = ce_rate()(spikes, y).item()
        report["test_acc"] = correct_count(spikes, y).item() / len(y)
    (out / f"report{rank}.json").write_text(json.dumps(report))
    """
)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [str(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def without_timings(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


@pytest.mark.slow
def test_two_process_gloo_run_has_one_writer_and_reduced_metrics(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(script),
        str(tmp_path),
        *free_ports(3),
    ]
    launcher = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = launcher.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)  # the workers too, not just the launcher
        output, _ = launcher.communicate()
        pytest.fail("torchrun timed out:\n" + output[-3000:])
    assert launcher.returncode == 0, output[-5000:]

    reports = [json.loads((tmp_path / f"report{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert [r["is_main"] for r in reports] == [True, False]

    # one writer: rank 0 wrote the run-directory contract, rank 1 wrote nothing at all
    whole = tmp_path / "whole"
    assert sorted(p.name for p in (whole / "checkpoints").iterdir()) == ["epoch_1.pt", "epoch_2.pt", "last.pt"]
    rows = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "train_seconds"} <= set(rows[0])
    assert [p for p in (tmp_path / "rank1").rglob("*") if p.is_file()] == []

    # metrics are reduced over ranks (every process reports the same numbers), gradients are averaged
    # (the same weights everywhere), and the sharded evaluation covers the test set exactly once
    assert without_timings(reports[0]["history"]) == without_timings(reports[1]["history"])
    assert without_timings(rows) == without_timings(reports[0]["history"])
    assert reports[0]["params"] == pytest.approx(reports[1]["params"], rel=1e-6)
    assert rows[-1]["test_loss"] == pytest.approx(reports[0]["test_loss"], rel=1e-6)
    assert rows[-1]["test_acc"] == pytest.approx(reports[0]["test_acc"])

    # batches trained in pieces: the gradients are all-reduced once, after the last piece (no_sync
    # before), and still reach every rank alike
    assert len(reports[0]["pieces_dropped"]) == 18  # 6 batches of 8 a rank, 3 pieces each
    assert reports[0]["pieces_params"] == pytest.approx(reports[1]["pieces_params"], rel=1e-6)

    # each process draws its own random numbers (here: dropout masks), and a resumed process
    # continues its own stream
    masks = [r["dropped"] for r in reports]
    assert len(masks[0]) == len(masks[1]) == 12  # 48 samples a rank, batch 8, 2 epochs
    assert all(a != b for a, b in zip(*masks)), "ranks drew the same dropout masks"
    assert [r["resumed_dropped"] for r in reports] == [m[6:] for m in masks]

    # resuming a distributed run (checkpoint broadcast from rank 0) reproduces it
    split = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert without_timings(split) == without_timings(rows)
    assert without_timings(reports[1]["resumed_history"]) == without_timings(rows)


@pytest.mark.slow
def test_torchrun_m_snnframe_run_writes_one_run_directory(tmp_path):
    """The documented command line: ``torchrun --nproc-per-node 2 -m snnframe run RECIPE``."""
    recipe = TESTS.parent / "recipes" / "quickstart.toml"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "snnframe",
        "run",
        str(recipe),
        "--set",
        f"experiment.out_dir={tmp_path}",
        "--set",
        "train.epochs=2",
        "--set",
        "data.subset=8",
        "--set",
        "data.test_subset=4",
        "--set",
        "encoder.num_steps=4",
        "--set",
        'visualize=[{kind = "curves"}]',
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "quickstart"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".snnframe-lock",  # rank 0's lock (the file stays; the lock went with the process)
        "checkpoints",
        "metrics.jsonl",
        "recipe.toml",
        "test_acc.png",
        "train_loss.png",
        "training.log",
    ]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    # one writer: each epoch is logged once, by rank 0, to the console and to training.log
    assert result.stdout.count("epoch 2/2 ") == 1
    assert (run_dir / "training.log").read_text().count("epoch 2/2 ") == 1
    assert "(2 processes)" in result.stdout
    assert result.stdout.count("done: epoch 2") == 1


class Draws:
    """A training set whose samples are random draws made where the sample is loaded, like augmentation."""

    info = DatasetInfo("image", (1,), 2)

    class Split(torch.utils.data.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, index):
            return torch.rand(()), index  # (sample, label): the label records which sample it was

    def splits(self, transform):
        return self.Split(), self.Split()


def test_ranks_shard_alike_but_seed_their_loader_workers_apart(tmp_path):
    from snnframe.builtins.training.distributed import DistContext
    from snnframe.builtins.training.resume import epoch_seed
    from snnframe.builtins.training.session import Session

    def epoch(rank, world_size, number):
        """The training loader's (sample indices, draws) in epoch ``number`` on process ``rank``."""
        experiment = make_experiment(tmp_path / f"rank{rank}", dataset=Draws(), num_workers=1, batch_size=3)
        trainer = BPTTTrainer(epochs=2, lr=1e-2, device="cpu", loss=ce_rate())
        run = Session(trainer, experiment, DistContext(rank, world_size), torch.device("cpu"))
        run._begin_epoch(number)
        draws, indices = zip(*run.train_loader)
        return torch.cat(indices).tolist(), torch.cat(draws)

    (shard0, draws0), (shard1, draws1) = epoch(0, 2, 1), epoch(1, 2, 1)
    # the DistributedSampler's shuffle is seeded alike on every rank: the shards split the set
    assert sorted(shard0 + shard1) == list(range(12))
    # the workers' seeds are not: augmentation differs between ranks ...
    assert not torch.equal(draws0, draws1)
    # ... and between epochs, and repeats exactly for the same rank and epoch (resume)
    assert not torch.equal(epoch(1, 2, 2)[1], draws1)
    assert torch.equal(epoch(1, 2, 1)[1], draws1)
    # a single process seeds as before
    single = Session(
        BPTTTrainer(epochs=2, lr=1e-2, device="cpu", loss=ce_rate()),
        make_experiment(tmp_path / "single"),
        DistContext(),
        torch.device("cpu"),
    )
    single._begin_epoch(3)
    assert single.generator.initial_seed() == epoch_seed(0, 3) == 3
