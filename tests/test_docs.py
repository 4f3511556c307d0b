"""The docs describe what exists."""

import re
from pathlib import Path

from snnframe import hookspecs

REPO = Path(__file__).resolve().parents[1]


def hook_names():
    return sorted(name for name in vars(hookspecs) if name.startswith("register_"))


def test_every_hook_is_documented_in_the_hook_reference():
    reference = (REPO / "docs" / "plugins.md").read_text()
    assert len(hook_names()) == 10
    for name in hook_names():
        assert f"### `{name}(" in reference, f"docs/plugins.md does not document {name}"


def readme_commands():
    readme = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)


def test_ci_runs_the_readme_test_command():
    commands = readme_commands()
    test_command = next(c for c in commands if "pytest" in c)
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command.strip() in [line.strip() for line in ci]


def test_readme_main_command_runs_the_quickstart():
    main = readme_commands()[0]
    assert "snnframe run recipes/quickstart.toml" in main
    assert (REPO / "recipes" / "quickstart.toml").is_file()


def test_every_kind_has_its_hook_and_a_row_in_the_kinds_table():
    from snnframe.kinds import KINDS

    reference = (REPO / "docs" / "plugins.md").read_text()
    for kind in KINDS:
        assert callable(getattr(hookspecs, kind.hook, None)), f"hookspecs.py lacks {kind.hook}"
        table = f"[[{kind.base}]]" if kind.path.endswith("[]") else f"[{kind.path}]"
        row = next((line for line in reference.splitlines() if line.startswith(f"| {kind.name} |")), None)
        assert row is not None, f"docs/plugins.md has no row for {kind.name}"
        assert f"`{kind.hook}`" in row and f"`{table}`" in row, row
        for name in kind.injected:
            assert f"`{name}`" in row, (kind.name, name)
    assert {name for name in vars(hookspecs) if name.startswith("register_")} == {k.hook for k in KINDS} | {
        "register_commands"
    }


def python_blocks(doc):
    return re.findall(r"```python\n(.*?)```", (REPO / "docs" / doc).read_text(), flags=re.S)


def test_the_plugin_guides_examples_run(tmp_path):
    import torch

    from snnframe.builtins.neurons.leaky import Leaky
    from snnframe.contracts import DatasetInfo, VisualContext

    namespace = {}
    for block in python_blocks("plugins.md"):
        if any(word in block for word in ("class StepLIF(", "def two_layer(", "class FiringRates:")):
            exec(block, namespace)
    step_lif = (REPO / "benchmarks" / "step_lif.py").read_text()
    docs_lif = next(b for b in python_blocks("plugins.md") if "class StepLIF(" in b)
    assert docs_lif.split("class StepLIF", 1)[1] in step_lif  # the guide shows the benchmarked neuron
    shapes = []

    def neuron(shape=None):
        shapes.append(shape)
        return Leaky(beta=0.5)

    net = namespace["two_layer"](input_shape=(1, 8, 8), num_classes=10, neuron=neuron, hidden=16)
    assert net(torch.rand(5, 3, 1, 8, 8)).shape == (5, 3, 10)
    assert shapes == [(16,), (10,)]  # the guide's architecture passes each layer's shape

    class Repeat:
        def collate_fn(self, info):
            return None

        def __call__(self, x):
            return x.unsqueeze(0).expand(4, *x.shape)

    test_set = [(torch.rand(1, 8, 8), i % 10) for i in range(6)]
    ctx = VisualContext(
        tmp_path, net.eval(), Repeat(), test_set, [], torch.device("cpu"), DatasetInfo("image", (1, 8, 8), 10)
    )
    (path,) = namespace["FiringRates"](samples=4)(ctx)
    lines = path.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["2", "4"]  # the two neurons, by module name
    assert all(0.0 <= float(line.split("\t")[1]) <= 1.0 for line in lines)
