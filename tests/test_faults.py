"""Faults a new user meets, through the CLI: each ends in one ``snnframe: error:`` line that names the key, file or
path, the cause and what would work; nothing the user had is lost; a run directory has one writer.

Where a traceback could appear the real CLI runs in a subprocess; the rest uses click's runner (faster).
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import toy_plugin
from click.testing import CliRunner

from snnframe.cli import make_cli
from snnframe.lock import RunLock
from snnframe.plugins import load_plugins

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.toml"
TINY = [  # the quick start, small: an MLP on a quarter of the embedded digits, 2 epochs
    "--set",
    'model={kind = "mlp", hidden = [32]}',
    "--set",
    "train.epochs=2",
    "--set",
    "encoder.num_steps=8",
    "--set",
    "data.subset=4",
    "--set",
    "data.test_subset=4",
    "--set",
    "visualize=[]",
]


def snnframe(*args, cwd, env=None, timeout=300):
    """The real CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "snnframe", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error(output: str, *parts: str) -> str:
    """The one ``snnframe: error:`` line of ``output`` (no traceback), which contains each of ``parts``."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("snnframe: error: ")]
    assert len(errors) == 1, output
    for part in parts:
        assert part in output, f"{part!r} not in:\n{output}"
    return errors[0]


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def toy(toy_plugins):
    runner = CliRunner()
    return lambda *args: runner.invoke(make_cli(toy_plugins), [str(a) for a in args])


@pytest.fixture(scope="module")
def builtins():
    plugins = load_plugins()
    runner = CliRunner()
    return lambda *args: runner.invoke(make_cli(plugins), [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, builtins):
    """A finished TINY run (2 epochs, out_dir "runs") to damage copies of: see :func:`copy_of`."""
    base = tmp_path_factory.mktemp("trained")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        result = builtins("run", QUICKSTART, *RUNS, *TINY)
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    return base / "runs" / "quickstart"


RUNS = ["--set", "experiment.out_dir=runs"]  # relative: a copy of the run resumes from another directory


def copy_of(trained: Path, tmp_path: Path, monkeypatch) -> Path:
    """``trained`` copied to ``tmp_path/runs``, which becomes the working directory."""
    run_dir = tmp_path / "runs" / "quickstart"
    shutil.copytree(trained, run_dir)
    monkeypatch.chdir(tmp_path)
    return run_dir


# -- 1. recipe shapes the validator did not expect -------------------------------------------------


def test_core_tables_missing_or_not_tables_are_problems_with_their_key_paths(toy, toy_recipe):
    result = toy("validate", toy_recipe, "--set", "data=3", "--set", "train=3", "--set", "model.neuron=[1]")
    assert result.exit_code == 2
    assert one_error(result.output).endswith("3 problems:")
    for problem in (
        "data: expected a table, got 3",
        "train: expected a table, got 3",
        "model.neuron: expected a table",
    ):
        assert f"  - {problem}" in result.output

    text = toy_recipe.read_text()
    toy_recipe.write_text(text[: text.index("[data]")] + text[text.index("[encoder]") :])  # no [data]
    result = toy("validate", toy_recipe, "--set", "encoder=1")
    assert result.exit_code == 2
    assert "  - [data]: missing section" in result.output and "  - encoder: expected a table, got 1" in result.output


def test_the_crash_of_the_issue_is_a_message_in_the_real_cli(tmp_path):
    result = snnframe("validate", QUICKSTART, "--set", "model=3", "--set", "data=3", cwd=tmp_path)
    assert result.returncode == 2
    one_error(result.stderr, "model: expected a table, got 3", "data: expected a table, got 3")


# -- 2. values outside what the libraries accept ------------------------------------------------


def test_a_seed_past_32_bits_is_accepted_and_one_past_64_bits_has_its_range(toy, toy_recipe, tmp_path):
    assert toy("run", toy_recipe, "--set", f"experiment.seed={2**40}").exit_code == 0
    result = toy("validate", toy_recipe, "--set", f"experiment.seed={2**63}", "--set", "experiment.name=x")
    assert result.exit_code == 2
    one_error(result.output, f"experiment.seed: {2**63} is outside TOML's 64-bit integer range [-2**63, 2**63 - 1]")


def test_non_finite_numbers_are_refused_for_every_float_parameter(toy, toy_recipe):
    result = toy(
        "validate",
        toy_recipe,
        "--set",
        "model.neuron.beta=nan",
        "--set",
        "model.neuron.surrogate.slope=-inf",
        "--set",
        "train.lr=inf",
        "--set",
        "train.loss.scale=1e999",  # TOML's float overflows to inf too
    )
    assert result.exit_code == 2
    for problem in (
        "train.lr: must be a finite number, got inf",
        "model.neuron.beta: must be a finite number, got nan",
        "model.neuron.surrogate.slope: must be a finite number, got -inf",
        "train.loss.scale: must be a finite number, got inf",
    ):
        assert f"  - {problem}" in result.output


def test_a_recipe_with_a_byte_order_mark_says_so(toy, toy_recipe):
    toy_recipe.write_bytes(b"\xef\xbb\xbf" + toy_recipe.read_bytes())
    result = toy("validate", toy_recipe)
    assert result.exit_code == 2
    one_error(
        result.output, f"{toy_recipe}: the file starts with a byte-order mark (BOM", "save it as UTF-8 without BOM"
    )


# -- 3. resources ------------------------------------------------------------------------------


def test_a_name_too_long_for_the_file_system(toy, toy_recipe, tmp_path):
    result = toy("validate", toy_recipe, "--set", f"experiment.name={'a' * 300}")
    assert result.exit_code == 2
    one_error(result.output, "experiment.name: is 300 bytes long", "at most 255 bytes", "choose a shorter name")


def test_an_out_dir_that_is_a_file(toy, toy_recipe, tmp_path):
    (tmp_path / "afile").write_text("mine\n")
    for command in ("validate", "run"):
        result = toy(command, toy_recipe, "--set", f"experiment.out_dir={tmp_path / 'afile' / 'runs'}")
        assert result.exit_code == 2
        one_error(result.output, f"experiment.out_dir: {tmp_path / 'afile'} is a file, not a directory")
    assert (tmp_path / "afile").read_text() == "mine\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a directory without write permission")
def test_an_out_dir_without_write_permission(toy, toy_recipe, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = toy("run", toy_recipe, "--set", f"experiment.out_dir={locked / 'runs'}")
    assert result.exit_code == 2
    one_error(result.output, f"experiment.out_dir: {locked} is not writable (permission denied)")


class FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` more bytes (or characters) are written."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, data):
        if len(data) > self.room:
            self.f.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_full_disk_while_writing_the_recipe_leaves_nothing(toy, toy_recipe, tmp_path, monkeypatch):
    import snnframe.io

    real_open = open

    def open_(path, *args, **kwargs):
        f = real_open(path, *args, **kwargs)
        return FullDisk(f, 10) if ".recipe.toml." in str(path) else f

    monkeypatch.setattr(snnframe.io, "open", open_, raising=False)
    result = toy("run", toy_recipe)
    assert result.exit_code == 1
    run_dir = tmp_path / "runs" / "toy"
    one_error(result.output, f"cannot write {run_dir / 'recipe.toml'}: no space left on the device; the run did not")
    assert not run_dir.exists()


def test_a_log_file_that_cannot_be_written_is_a_warning_once(toy, toy_recipe, tmp_path, monkeypatch):
    from snnframe.run import _LogFile

    real_open = open
    full = lambda self: FullDisk(real_open(self.baseFilename, self.mode, encoding=self.encoding), 10)
    monkeypatch.setattr(_LogFile, "_open", full)
    result = toy("run", toy_recipe)
    assert result.exit_code == 0, result.output
    assert result.output.count("snnframe: warning: cannot write") == 1
    assert "training.log (no space left on the device); the log goes to the console only" in result.output
    assert "Traceback" not in result.output and "Logging error" not in result.output


def test_a_full_disk_while_plotting_keeps_the_old_plot_and_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from snnframe.builtins.visualizers.curves import Curves
    from snnframe.contracts import VisualContext
    from snnframe.io import WriteError

    history = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.1, "test_acc": 0.5, "train_acc": 0.4}]
    ctx = VisualContext(tmp_path, None, None, None, history, "cpu", None)
    (tmp_path / "train_loss.png").write_bytes(b"an older plot")
    real_savefig = Figure.savefig

    def savefig(self, path, **kwargs):
        real_savefig(self, path, **kwargs)
        Path(path).write_bytes(b"")  # what a full disk leaves: the file, empty
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", savefig)
    with pytest.raises(WriteError, match=r"cannot write .*train_loss\.png: no space left on the device"):
        Curves()(ctx)
    assert sorted(os.listdir(tmp_path)) == ["train_loss.png"]
    assert (tmp_path / "train_loss.png").read_bytes() == b"an older plot"


def test_a_batch_that_cannot_fit_in_memory_fails_before_the_run_directory(builtins, tmp_path):
    for key, value in (("encoder.num_steps", 1_000_000_000), ("data.batch_size", 100_000_000)):
        result = builtins(
            "run", QUICKSTART, "--set", f"experiment.out_dir={tmp_path}", *TINY, "--set", f"{key}={value}"
        )
        assert result.exit_code == 2
        line = one_error(result.output, f"{key}: one training batch needs at least", "more than the")
        assert "lower encoder.num_steps or data.batch_size" in line
        assert f"{key} = {value}" in line
    assert list(tmp_path.iterdir()) == []


def test_a_batch_that_needs_more_than_what_is_free_warns(builtins, tmp_path, monkeypatch, capsys):
    import snnframe.memory as memory
    from snnframe.contracts import DataSettings, Experiment
    from snnframe.run import prepare

    path = tmp_path / "q.toml"
    shutil.copy(QUICKSTART, path)
    prepared = prepare(path, [o for o in TINY if o != "--set"], plugins=load_plugins())
    r, parts = prepared.recipe, prepared.components
    experiment = Experiment(
        "q", 0, r.run_dir, {}, False, parts.dataset, parts.encoder, parts.model, DataSettings(8, 4, 4, 0)
    )
    estimate = memory.estimate_batch(r, parts, experiment)
    assert estimate.steps == 8 and estimate.steps_key == "encoder.num_steps" and estimate.batch == 32
    assert estimate.total > estimate.fixed > 0 and estimate.per_step_and_sample > 0
    monkeypatch.setattr(memory, "device_memory", lambda device: (10 * estimate.total, estimate.total // 2))
    memory.check_memory(r, parts, experiment)
    assert "snnframe: warning: one training batch needs about" in capsys.readouterr().err


def unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not unshare_works(), reason="needs `unshare -rm` (user and mount namespaces) for a real tmpfs")
def test_a_real_full_disk_and_a_read_only_file_system(trained, tmp_path):
    """In a private mount namespace: a tmpfs that holds one checkpoint but not two, and a read-only one."""
    room = (trained / "checkpoints" / "last.pt").stat().st_size * 3 // 2 + 64 * 1024
    full, ro, out = tmp_path / "full", tmp_path / "ro", tmp_path / "out"
    for d in (full, ro, out):
        d.mkdir()
    run = [sys.executable, "-m", "snnframe", "run", str(QUICKSTART), *TINY]
    quoted = " ".join(f"'{a}'" for a in run)
    script = textwrap.dedent(f"""\
        mount -t tmpfs -o size={room} tmpfs {full} && mount -t tmpfs -o size=1m,ro tmpfs {ro} || exit 99
        {quoted} --set experiment.out_dir={full} > {out}/full.out 2>&1; echo $? > {out}/full.rc
        ls -A {full}/quickstart {full}/quickstart/checkpoints > {out}/full.ls
        cp {full}/quickstart/checkpoints/last.pt {out}/last.pt
        {quoted} --set experiment.out_dir={ro}/runs > {out}/ro.out 2>&1; echo $? > {out}/ro.rc
        """)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    import torch

    last = full / "quickstart" / "checkpoints" / "last.pt"
    assert (out / "full.rc").read_text().strip() == "1"
    one_error(
        (out / "full.out").read_text(),
        f"cannot write {last}: no space left on the device; the last good checkpoint {last} (epoch 1) is kept",
    )
    listing = (out / "full.ls").read_text()
    assert ".tmp" not in listing and "epoch_1.pt" in listing and "epoch_2.pt" not in listing
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1
    assert (out / "ro.rc").read_text().strip() == "2"
    one_error((out / "ro.out").read_text(), f"experiment.out_dir: {ro} is on a read-only file system")


# -- 4. corrupt data files ---------------------------------------------------------------------


def test_a_corrupt_mnist_archive_is_named_and_leaves_no_file(tmp_path):
    from helpers.data_files import write_mnist

    write_mnist(tmp_path / "data", n_train=40, n_test=10)
    raw = tmp_path / "data" / "MNIST" / "raw"
    packed = raw / "t10k-images-idx3-ubyte.gz"
    packed.write_bytes(packed.read_bytes()[:200])  # a download cut short
    before = sorted(os.listdir(raw))
    result = snnframe(
        "run", REPO / "recipes" / "csnn_static.toml", "--set", f"data.root={tmp_path / 'data'}", *TINY, cwd=tmp_path
    )
    assert result.returncode == 2
    one_error(result.stderr, f"{packed} is not a complete gzip file", "download it again")
    # the files unpacked before the corrupt one are whole; the corrupt one left nothing
    assert all((raw / name).stat().st_size > 0 for name in os.listdir(raw))
    assert "t10k-images-idx3-ubyte" not in os.listdir(raw) and set(before) <= set(os.listdir(raw))
    assert not (tmp_path / "runs").exists()


# -- 5. checkpoints ----------------------------------------------------------------------------


def _evil(path):
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": 3, "epoch": 2, "model": Evil(), "history": []}, path)


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.unlink()  # a new file: epoch_2.pt (a hard link) keeps the good data
    path.write_bytes(bytes(data))


def _replace(data):
    """Replace the file by a new one (its hard link epoch_2.pt keeps the good data)."""

    def damage(path):
        content = data(path) if callable(data) else data
        path.unlink()
        path.write_bytes(content)

    return damage


@pytest.mark.parametrize(
    "damage, cause",
    [
        (_replace(b""), "is empty (0 bytes"),
        (_replace(lambda p: b"x" * 100), "is truncated or not a PyTorch checkpoint"),
        (lambda p: os.truncate(p, 1000), "is truncated or not a PyTorch checkpoint (1000 bytes"),
        (_replace(lambda p: p.read_bytes()[: p.stat().st_size // 2]), "is truncated or not a PyTorch checkpoint"),
        (_flip, "is damaged: the data of"),
        (lambda p: (p.unlink(), _evil(p)), "holds objects other than tensors and plain data; it was refused"),
        (lambda p: (p.unlink(), __import__("torch").save({"weights": 1}, p)), "is not a snnframe checkpoint"),
    ],
    ids=["empty", "garbage", "truncated in place", "half", "tampered bytes", "code-running pickle", "foreign"],
)
def test_a_damaged_checkpoint_is_one_line_with_the_alternative_and_resume_changes_nothing(
    trained, tmp_path, builtins, damage, cause, monkeypatch
):
    run_dir = copy_of(trained, tmp_path, monkeypatch)
    os.link(run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "epoch_2.pt.new")  # as the run leaves them
    os.replace(run_dir / "checkpoints" / "epoch_2.pt.new", run_dir / "checkpoints" / "epoch_2.pt")
    last = Path("runs") / "quickstart" / "checkpoints" / "last.pt"
    damage(last)
    before = files(run_dir)
    for command in ("validate", "run"):  # train.epochs=3: recipe.toml would change if the resume went ahead
        result = builtins(command, QUICKSTART, *RUNS, *TINY, "--set", "train.epochs=3", "--resume")
        result_text = result.output
        assert result.exit_code == 1, result_text
        line = one_error(result_text, f"{last} {cause}")
        in_place = os.path.samefile(last, run_dir / "checkpoints" / "epoch_2.pt")
        usable = "epoch_1.pt" if in_place else "epoch_2.pt"
        if in_place:
            assert "epoch_2.pt is the same file (a hard link)" in line
        assert f"{usable} can be used instead: to continue from it, copy it to last.pt (cp " in line
        assert "weights_only=False" not in result_text and "pwned" not in result_text
        assert files(run_dir) == before


def test_the_advice_continues_the_run(trained, tmp_path, builtins, monkeypatch):
    run_dir = copy_of(trained, tmp_path, monkeypatch)
    (run_dir / "checkpoints" / "last.pt").unlink()
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    left = [run_dir / "checkpoints" / ".last.pt.4194000.tmp", run_dir / ".metrics.jsonl.4194000.tmp"]
    for path in left:  # what a run killed while writing leaves
        path.write_bytes(b"partial")
    result = builtins("run", QUICKSTART, *RUNS, *TINY, "--resume", "--set", "train.epochs=3")
    command = one_error(result.output).split("(cp ")[1].rstrip(")").split()
    assert all(path.exists() for path in left)  # a failed resume changes nothing
    shutil.copy(command[0], command[1])
    result = builtins("run", QUICKSTART, *RUNS, *TINY, "--resume", "--set", "train.epochs=3")
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in left)  # the next run holding the lock removes them
    assert [json.loads(r)["epoch"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_load_run_of_a_damaged_checkpoint_names_the_alternative(trained, tmp_path, monkeypatch):
    import snnframe
    from snnframe.rundir import CheckpointError

    run_dir = copy_of(trained, tmp_path, monkeypatch)
    (run_dir / "checkpoints" / "last.pt").unlink()
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04")
    with pytest.raises(CheckpointError, match=r"last\.pt is truncated .* epoch_2\.pt can be used instead"):
        snnframe.load_run(run_dir)


# -- 6. one writer per run directory -----------------------------------------------------------


def test_a_second_run_or_resume_refuses_while_one_holds_the_directory(trained, tmp_path, builtins, monkeypatch):
    run_dir = copy_of(trained, tmp_path, monkeypatch)
    before = files(run_dir)
    with RunLock(run_dir):  # as a run in another process would
        owner = f"is in use by process {os.getpid()} on host"
        result = snnframe("run", QUICKSTART, *RUNS, *TINY, "--resume", cwd=tmp_path)
        assert result.returncode == 2
        one_error(result.stderr, f"runs/quickstart {owner}", "a run directory has one writer at a time")
        result = builtins("run", QUICKSTART, *RUNS, *TINY)  # a new run of the same name
        assert result.exit_code == 2 and owner in result.output
        result = builtins("validate", QUICKSTART, *RUNS, *TINY, "--resume")
        assert result.exit_code == 2 and owner in result.output
        assert files(run_dir) == {**before, ".snnframe-owner": (run_dir / ".snnframe-owner").read_bytes()}
    assert files(run_dir) == before  # the holder's record goes with it


def test_two_new_runs_of_one_name_at_once_one_refuses(toy, toy_recipe, tmp_path):
    run_dir = tmp_path / "runs" / "toy"
    run_dir.mkdir(parents=True)
    with RunLock(run_dir):  # the first run created the directory and holds it, nothing written yet
        result = toy("run", toy_recipe)
        assert result.exit_code == 2
        one_error(result.output, "is in use by process")
    assert toy("run", toy_recipe).exit_code == 0  # the holder is gone: the directory is free


def test_the_lock_of_a_killed_run_does_not_block(toy, toy_recipe, tmp_path):
    run_dir = tmp_path / "runs" / "toy"
    run_dir.mkdir(parents=True)
    code = (
        "import os, signal, sys\n"
        "from snnframe.lock import RunLock\n"
        "RunLock(sys.argv[1]).acquire()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert json.loads((run_dir / ".snnframe-owner").read_text())["pid"] != os.getpid()  # its record is left ...
    result = toy("run", toy_recipe)
    assert result.exit_code == 0, result.output  # ... but not its lock


# -- 7. preemption -----------------------------------------------------------------------------


def test_sigterm_to_the_real_cli_saves_mid_epoch_and_the_printed_command_resumes_exactly(tmp_path, builtins):
    args = ["--set", f"experiment.out_dir={tmp_path}", *TINY, "--set", "train.epochs=3"]
    whole = builtins("run", QUICKSTART, *args, "--set", "experiment.name=whole")
    assert whole.exit_code == 0, whole.output
    process = subprocess.Popen(
        [sys.executable, "-m", "snnframe", "run", str(QUICKSTART), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("epoch 1/3"):  # logged just before epoch 1 is saved: SIGTERM lands in epoch 2
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=300)
    assert process.returncode == 143, err
    line = one_error(err, "stopped by SIGTERM ", "the training state is saved in")
    # in epoch 2 as a rule; "after epoch 1" if the signal came while epoch 1 was being saved
    assert re.search(r"stopped by SIGTERM (at epoch 2, batch \d+ of \d+|after epoch 1);", line), line
    assert f"{tmp_path / 'quickstart' / 'checkpoints' / 'last.pt'}; continue with: snnframe run" in line
    command = line.split("continue with: ")[1]
    assert command.endswith("--resume")
    import shlex

    resumed = snnframe(*shlex.split(command)[1:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    def metrics(name):
        rows = [json.loads(r) for r in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows]

    assert metrics("quickstart") == metrics("whole")


# -- 8. plugins --------------------------------------------------------------------------------


def test_a_component_of_a_disabled_plugin_says_so_and_unknown_names_warn(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNFRAME_DISABLE_PLUGINS", "snnframe.neurons,snnframe.nuerons")
    result = CliRunner().invoke(make_cli(load_plugins()), ["validate", str(QUICKSTART)])
    assert result.exit_code == 2
    one_error(
        result.output,
        'model.neuron.kind: neuron "leaky" comes from plugin snnframe.neurons, which SNNFRAME_DISABLE_PLUGINS disables',
    )
    assert (
        'snnframe: warning: SNNFRAME_DISABLE_PLUGINS names "snnframe.nuerons", which is no installed plugin, so it '
        'disables nothing (did you mean "snnframe.neurons"?)'
    ) in result.output


def test_a_default_of_a_disabled_plugin_says_so(monkeypatch):
    monkeypatch.setenv("SNNFRAME_DISABLE_PLUGINS", "snnframe.losses")
    result = CliRunner().invoke(make_cli(load_plugins()), ["validate", str(QUICKSTART), "--set", "train.loss={}"])
    assert result.exit_code == 2
    one_error(
        result.output,
        'train.loss.kind: missing; no installed plugin offers a default loss: the default loss "ce_rate" comes from '
        "plugin snnframe.losses, which SNNFRAME_DISABLE_PLUGINS disables",
    )


def test_a_plugin_of_the_disabled_list_given_as_extra_is_named_too(toy_recipe, monkeypatch):
    monkeypatch.setenv("SNNFRAME_DISABLE_PLUGINS", "toy")
    plugins = load_plugins(extra=[("toy", toy_plugin)], entry_points=False)
    result = CliRunner().invoke(make_cli(plugins), ["validate", str(toy_recipe)])
    assert result.exit_code == 2
    assert 'data.kind: dataset "toy_data" comes from plugin toy, which SNNFRAME_DISABLE_PLUGINS disables' in (
        result.output
    )
