"""Shared fixtures: the plugin from this checkout, small trained runs, and the other libraries' quirks.

The plugin's tests need ``nir`` (and ``nirtorch``/``norse`` for the cross-library checks); without
them the modules that need them are skipped with the reason, never crash.
"""

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
REPO = PLUGIN.parents[1]
sys.path.insert(0, str(PLUGIN))  # run the plugin's tests from a source checkout without installing it
sys.path.insert(0, str(PLUGIN / "tests"))  # nir_helpers

import snnframe_nir  # noqa: E402

# The quick start, small: 1 epoch on every 8th digit, 10 steps (a few seconds on 2 cores).
SMALL = [
    "--set",
    "train.epochs=1",
    "--set",
    "encoder.num_steps=10",
    "--set",
    "data.subset=8",
    "--set",
    "data.test_subset=8",
    "--set",
    "visualize=[]",
]
AVGPOOL_ZERO = [  # the "Done when" network: average pooling and reset_mechanism = "zero"
    "--set",
    "model.kind=layers",
    "--set",
    "model.spec=12C5-AP2-64C5-AP2-FC10",
    "--set",
    'model.neuron.reset_mechanism="zero"',
]


def nir_plugins():
    """The installed plugins plus this checkout's snnframe-nir (once: also when it is installed)."""
    from snnframe.plugins import load_plugins

    plugins = load_plugins()
    if "nir" not in plugins.registry("architectures"):
        plugins = load_plugins(extra=[("nir", snnframe_nir)])
    return plugins


@pytest.fixture(scope="session")
def plugins():
    return nir_plugins()


def train(plugins, out: Path, name: str, *args: str) -> Path:
    from click.testing import CliRunner

    from snnframe.cli import make_cli

    result = CliRunner().invoke(
        make_cli(plugins),
        [
            "run",
            str(REPO / "recipes" / "quickstart.toml"),
            "--set",
            f"experiment.out_dir={out}",
            "--set",
            f"experiment.name={name}",
            *SMALL,
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    return out / name


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def csnn_run(plugins, runs):
    """``12C5-AP2-64C5-AP2-FC10``, leaky neurons with reset_mechanism = "zero", trained 1 epoch."""
    return train(plugins, runs, "csnn_avgpool_zero", *AVGPOOL_ZERO)


@pytest.fixture(scope="session")
def mlp_run(plugins, runs):
    """An MLP (784-64-10), leaky neurons with reset_mechanism = "zero", trained 1 epoch."""
    return train(
        plugins,
        runs,
        "mlp_zero",
        "--set",
        'model={kind = "mlp", hidden = [64]}',
        "--set",
        'model.neuron.reset_mechanism="zero"',
    )


@pytest.fixture(scope="session")
def quickstart_run(plugins, runs):
    """The quick start as shipped (csnn: max-pooling, subtractive reset), trained 1 epoch."""
    return train(plugins, runs, "quickstart")
