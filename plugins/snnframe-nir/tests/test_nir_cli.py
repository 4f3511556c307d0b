"""``snnframe export-nir`` through the command line, and the plugin installed with pip."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from nir_helpers import AVGPOOL_ZERO, train

from snnframe.cli import make_cli

nir = pytest.importorskip("nir", reason="snnframe-nir's tests need the nir package (pip install 'nir>=1.0.7')")


def export(plugins, *args):
    return CliRunner().invoke(make_cli(plugins), ["export-nir", *map(str, args)])


def test_export_nir_writes_run_dir_model_nir(plugins, csnn_run, tmp_path):
    (csnn_run / "model.nir").unlink(missing_ok=True)  # the run is shared by the session's tests
    result = export(plugins, csnn_run)
    assert result.exit_code == 0, result.output
    path = csnn_run / "model.nir"
    assert result.output.splitlines()[0] == f"wrote {path} (NIR, dt = 1e-4 s):"
    assert "  l02_lif: LIF (12, 12, 12)" in result.output and "  output (10,)" in result.output
    assert len(nir.read(str(path)).nodes) == 11
    other = tmp_path / "elsewhere.nir"
    result = export(plugins, csnn_run, "-o", other)
    assert result.exit_code == 0 and other.is_file()
    before = other.read_bytes()
    other.write_bytes(b"the user's own file")
    refused = export(plugins, csnn_run, "-o", other)
    assert refused.exit_code == 2
    assert refused.output == f"snnframe: error: {other} exists; pass --force to replace it, or -o another file\n"
    assert other.read_bytes() == b"the user's own file"
    forced = export(plugins, csnn_run, "-o", other, "--force")
    assert forced.exit_code == 0, forced.output
    assert other.read_bytes() == before  # the same graph again, bit for bit


def test_the_quickstart_as_shipped_is_refused_in_one_error(plugins, quickstart_run):
    result = export(plugins, quickstart_run)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0].startswith(f"snnframe: error: {quickstart_run} cannot be exported to NIR (2 problems):")
    assert "max-pooling" in lines[1] and "train with AP2 instead of MP2" in lines[1]
    assert "subtractive reset" in lines[2] and 'train with reset_mechanism = "zero"' in lines[2]
    assert len(lines) == 3 and "Traceback" not in result.output
    assert not (quickstart_run / "model.nir").exists()


def test_approximate_exports_with_a_warning_per_changed_layer(plugins, runs):
    run = train(plugins, runs, "avgpool_subtract", *AVGPOOL_ZERO[:4], "--set", "train.epochs=1")
    refused = export(plugins, run)
    assert refused.exit_code == 2
    assert "(or pass --approximate to export the nearest NIR nodes)" in refused.output
    result = CliRunner().invoke(make_cli(plugins), ["export-nir", str(run), "--approximate"])
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3 and all(w.startswith("snnframe: warning: spiking layer") for w in warnings)
    assert "a reset to 0 within the step instead of subtracting the threshold" in warnings[0]
    assert (run / "model.nir").is_file()


def test_a_missing_run_is_one_error_line(plugins, tmp_path):
    result = export(plugins, tmp_path / "nothing")
    assert result.exit_code == 2
    assert result.output.startswith(f"snnframe: error: {tmp_path / 'nothing'} is not a run directory")


def test_without_nir_installed_the_command_says_what_to_install(plugins, csnn_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)  # import nir now raises ImportError
    result = export(plugins, csnn_run)
    assert result.exit_code == 1
    assert result.output == "snnframe: error: export-nir needs the nir package: pip install 'nir>=1.0.7'\n"
    from snnframe_nir.importer import nir_architecture

    with pytest.raises(ValueError, match=r"snnframe-nir needs the nir package \(pip install 'nir>=1.0.7'\)"):
        nir_architecture(input_shape=(4,), num_classes=2, neuron=None)


def test_pip_install_adds_the_command_and_the_architecture(csnn_run, tmp_path):
    """The issue's "Done when": ``pip install plugins/snnframe-nir``, then ``snnframe --help`` / ``list-plugins``."""
    from nir_helpers import REPO

    plugin = REPO / "plugins" / "snnframe-nir"
    source = shutil.copytree(plugin, tmp_path / "src", ignore=shutil.ignore_patterns("tests"))  # no build in the repo
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--disable-pip-version-check", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "snnframe", *args], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    helped = run("--help")
    assert helped.returncode == 0 and "export-nir" in helped.stdout
    rows = json.loads(run("list-plugins", "--json").stdout)
    mine = {(r["kind"], r["name"]) for r in rows if r["distribution"] == "snnframe-nir"}
    assert mine == {
        ("architectures", "nir"),
        ("neurons", "nir_synaptic"),
        ("neurons", "nir_rleaky"),
        ("neurons", "nir_rsynaptic"),
    }
    out = tmp_path / "installed.nir"
    exported = run("export-nir", str(csnn_run), "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert out.is_file()
