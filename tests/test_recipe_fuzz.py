"""Property: whatever TOML-shaped recipe and --set values a user gives, ``validate`` ends in exit 0 or 2
with a message, never a traceback (the built-in plugins, as a new user has them)."""

import os
import tempfile

import tomli_w
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from snnframe.cli import make_cli
from snnframe.kinds import KINDS
from snnframe.plugins import load_plugins
from snnframe.recipe.params import factory_parameters

PLUGINS = load_plugins()
CLI = make_cli(PLUGINS)

BASE = {
    "experiment": {"name": "fuzz", "seed": 0},
    "data": {"kind": "digits", "batch_size": 8},
    "encoder": {"kind": "static", "num_steps": 4},
    "model": {"kind": "csnn", "neuron": {"kind": "leaky", "beta": 0.5, "surrogate": {"kind": "fast_sigmoid"}}},
    "train": {"epochs": 1, "lr": 0.01, "loss": {"kind": "ce_rate"}},
    "visualize": [{"kind": "curves"}],
}
TABLES = ["experiment", "data", "encoder", "model", "model.neuron", "model.neuron.surrogate", "train", "train.loss"]
CORE_KEYS = {
    "experiment": ["name", "seed", "out_dir"],
    "data": ["kind", "root", "batch_size", "subset", "test_subset", "num_workers"],
    "train": ["kind", "epochs", "lr", "device"],
}
NAMES = sorted({entry.name for kind in KINDS for entry in PLUGINS.registry(kind.name)})


def _plugin_keys() -> list[str]:
    """Every keyword parameter of every built-in factory: the keys a fuzzed recipe sets most."""
    keys = set()
    for kind in KINDS:
        for entry in PLUGINS.registry(kind.name):
            keys.update(factory_parameters(entry.load())[0])
    return sorted(keys)


KEYS = st.sampled_from(_plugin_keys() + ["kind", "x", "", "a.b", "KIND", "ü"])
# sizes stay small where a factory allocates (a model's width); the core keys also get huge integers
SMALL_INT = st.integers(-3, 48)
BIG_INT = st.sampled_from([2**31, 2**32, 2**53 + 1, 2**63 - 1, -(2**63), 2**64, 10**30])
FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([0.0, 0.5, 1.0, 1e-3, 1e300])
TEXT = st.text(max_size=6) | st.sampled_from(NAMES + ["cpu", "auto", "cuda:7", "../x", "/", "."])
SCALAR = st.booleans() | SMALL_INT | FLOAT | TEXT
VALUE = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=6
)
CORE_VALUE = VALUE | BIG_INT


def _get(data, path):
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@st.composite
def recipes(draw):
    """BASE with a few of its tables dropped, replaced by a value, or given random keys."""
    import copy

    data = copy.deepcopy(BASE)
    for path in draw(st.lists(st.sampled_from(TABLES + ["visualize"]), max_size=4)):
        parent_path, _, name = path.rpartition(".")
        parent = _get(data, parent_path) if parent_path else data
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["drop", "replace", "keys", "keys"]))
        if action == "drop":
            parent.pop(name, None)
        elif action == "replace":
            parent[name] = draw(VALUE)
        elif isinstance(parent.get(name), dict):
            table = parent[name]
            core = CORE_KEYS.get(path, [])
            for _ in range(draw(st.integers(1, 3))):
                if core and draw(st.booleans()):
                    table[draw(st.sampled_from(core))] = draw(CORE_VALUE)
                else:
                    table[draw(KEYS)] = draw(VALUE)
    if draw(st.booleans()):
        data[draw(st.sampled_from(["trian", "visualise", "x"]))] = draw(VALUE)
    return data


def _inline(value) -> str:
    """``value`` as an inline TOML value (what a user types after ``--set key=``)."""
    return tomli_w.dumps({"v": [value]})[len("v = [") :].rstrip().removesuffix("]").rstrip().rstrip(",")


SET_PATHS = st.sampled_from(
    [f"{t}.{k}" for t in TABLES for k in CORE_KEYS.get(t, ["kind"])]
    + TABLES
    + ["visualize", "visualize.0", "visualize.0.kind", "visualize.3.dpi", "model.neuron.beta", "encoder.num_steps"]
    + ["", "model..beta", " ", "a.b.c.d", "experiment.seed.x"]
)
SET_VALUES = st.builds(_inline, CORE_VALUE) | st.sampled_from(["", "/data", "{", "[1,", "inf", "nan", "1e999", "'x"])
SETS = st.lists(st.builds(lambda p, v, eq: f"{p}{eq}{v}", SET_PATHS, SET_VALUES, st.sampled_from(["=", "=", ""])))


@settings(
    max_examples=int(os.environ.get("SNNFRAME_FUZZ_EXAMPLES", "120")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=recipes(), overrides=st.lists(SETS, max_size=1).map(lambda x: x[0] if x else []))
def test_validate_never_ends_in_a_traceback(data, overrides):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fuzz.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(tomli_w.dumps(data))
        args = ["validate", path]
        for text in overrides[:3]:
            args += ["--set", text]
        cwd = os.getcwd()
        os.chdir(tmp)  # relative out_dir / data.root land here
        try:
            result = CliRunner().invoke(CLI, args)
        finally:
            os.chdir(cwd)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}\n{tomli_w.dumps(data)}\n{result.output}\n{result.exc_info}"
    )
    event(f"exit {result.exit_code}")
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.startswith("snnframe: error: "), result.output
