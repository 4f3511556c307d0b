"""Real out-of-tree packages, installed with pip and discovered through their entry points."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def write_package(root: Path, dist: str, version: str, module: str, source: str, entry_name: str) -> Path:
    pkg = root / dist
    (pkg / module).mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "{version}"

        [project.entry-points.snnframe]
        {entry_name} = "{module}"
        """)
    )
    (pkg / module / "__init__.py").write_text(textwrap.dedent(source))
    return pkg


def pip_install(package: Path, target: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(package),
        ],
        check=True,
        capture_output=True,
    )


def snnframe(target: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(target), **env}
    return subprocess.run([sys.executable, "-m", "snnframe", *args], capture_output=True, text=True, env=environ)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A good and a broken third-party plugin, pip-installed into one directory."""
    root = tmp_path_factory.mktemp("pkgs")
    target = root / "site"
    good = write_package(
        root,
        "snnframe-spikecount",
        "1.2.3",
        "snnframe_spikecount",
        """\
        import snnframe

        @snnframe.hookimpl
        def register_losses(register):
            register("spike_count_mse", "snnframe_spikecount.loss:SpikeCountMSE")
        """,
        "spikecount",
    )
    (good / "snnframe_spikecount" / "loss.py").write_text("class SpikeCountMSE:\n    pass\n")
    broken = write_package(
        root,
        "snnframe-broken",
        "0.0.1",
        "snnframe_broken",
        """\
        import a_module_that_does_not_exist
        """,
        "broken",
    )
    pip_install(good, target)
    pip_install(broken, target)
    return target


def test_installed_plugin_is_listed_with_its_version(site):
    result = snnframe(site, "list-plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {
        "kind": "losses",
        "name": "spike_count_mse",
        "plugin": "spikecount",
        "distribution": "snnframe-spikecount",
        "version": "1.2.3",
        "default": False,
    } in rows
    # the built-ins still work beside it
    assert any(r["plugin"] == "snnframe.losses" and r["name"] == "ce_rate" for r in rows)


def test_broken_plugin_is_named_in_a_warning_and_the_rest_works(site):
    result = snnframe(site, "list-plugins")
    assert result.returncode == 0
    assert (
        'snnframe: warning: plugin "broken" (snnframe-broken 0.0.1) failed to load and is skipped: '
        "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'"
    ) in result.stderr
    assert "spike_count_mse" in result.stdout
    assert "Failed plugins:\n  broken (snnframe-broken 0.0.1): ModuleNotFoundError" in result.stdout


def test_disabled_plugin_is_not_even_imported(site):
    result = snnframe(site, "list-plugins", SNNFRAME_DISABLE_PLUGINS="broken,spikecount")
    assert result.returncode == 0
    assert "warning" not in result.stderr
    assert "spike_count_mse" not in result.stdout
    assert "Disabled by SNNFRAME_DISABLE_PLUGINS: broken, spikecount" in result.stdout


def test_conflicting_plugin_names_both_sources(tmp_path):
    target = tmp_path / "site"
    clash = write_package(
        tmp_path,
        "snnframe-clash",
        "2.0",
        "snnframe_clash",
        """\
        import snnframe

        @snnframe.hookimpl
        def register_losses(register):
            register("ce_rate", "snnframe_clash:Loss")
        """,
        "clash",
    )
    pip_install(clash, target)
    result = snnframe(target, "list-plugins")
    assert result.returncode == 2
    assert 'loss "ce_rate" is registered twice: by plugin "snnframe.losses" (snnframe ' in result.stderr
    assert 'by plugin "clash" (snnframe-clash 2.0)' in result.stderr
    assert "Traceback" not in result.stderr


def test_the_example_plugin_from_plugins_installs_and_drops_into_a_recipe(tmp_path):
    target = tmp_path / "site"
    source = shutil.copytree(
        REPO / "plugins" / "snnframe-izhikevich", tmp_path / "src"
    )  # builds leave no trace in the repo
    pip_install(source, target)
    rows = json.loads(snnframe(target, "list-plugins", "--json", "--kind", "neurons").stdout)
    assert {
        "kind": "neurons",
        "name": "izhikevich",
        "plugin": "izhikevich",
        "distribution": "snnframe-izhikevich",
        "version": "0.1.0",
        "default": False,
    } in rows
    # the quick start's [model.neuron] has leaky's beta: replace the whole table with an inline one
    result = snnframe(
        target,
        "validate",
        str(REPO / "recipes" / "quickstart.toml"),
        "--set",
        'model.neuron={kind = "izhikevich", a = 0.1}',
        "--set",
        f"experiment.out_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    bad = snnframe(
        target, "validate", str(REPO / "recipes" / "quickstart.toml"), "--set", "model.neuron.kind=izhikevich"
    )
    assert bad.returncode == 2
    assert 'model.neuron.beta: unknown key for neuron "izhikevich"' in bad.stderr
