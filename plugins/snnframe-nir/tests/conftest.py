"""Shared fixtures: the plugin from this checkout, small trained runs, and the other libraries' quirks.

The plugin's tests need ``nir`` (and ``nirtorch``/``norse`` for the cross-library checks); without
them the modules that need them are skipped with the reason, never crash.
"""

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PLUGIN))  # run the plugin's tests from a source checkout without installing it
sys.path.insert(0, str(PLUGIN / "tests"))  # nir_helpers

from nir_helpers import AVGPOOL_ZERO, nir_plugins, train  # noqa: E402


@pytest.fixture(scope="session")
def plugins():
    return nir_plugins()


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def csnn_run(plugins, runs):
    """``12C5-AP2-64C5-AP2-FC10``, leaky neurons with reset_mechanism = "zero", trained 5 epochs."""
    return train(plugins, runs, "csnn_avgpool_zero", *AVGPOOL_ZERO)


@pytest.fixture(scope="session")
def mlp_run(plugins, runs):
    """An MLP (784-64-10), leaky neurons with reset_mechanism = "zero", trained 5 epochs."""
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
    return train(plugins, runs, "quickstart", "--set", "train.epochs=1")
