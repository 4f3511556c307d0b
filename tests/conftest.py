import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers and toy_plugin importable by name

import toy_plugin  # noqa: E402

from snnframe.plugins import load_plugins  # noqa: E402


@pytest.fixture
def toy_plugins():
    """Only the toy plugin: registered for one test, gone after it (no global state)."""
    return load_plugins(extra=[("toy", toy_plugin)], entry_points=False)


@pytest.fixture
def toy_recipe(tmp_path):
    """A valid toy recipe file writing its run under tmp_path/runs."""
    path = tmp_path / "toy.toml"
    path.write_text(toy_plugin.TOY_RECIPE.format(out_dir=(tmp_path / "runs").as_posix()))
    return path
