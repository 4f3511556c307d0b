"""The docs describe what exists."""

import re
from pathlib import Path

from snnframe import hookspecs

REPO = Path(__file__).resolve().parents[1]


def hook_names():
    return sorted(name for name in vars(hookspecs) if name.startswith("register_"))


def test_every_hook_is_documented_in_the_hook_reference():
    reference = (REPO / "docs" / "plugins.md").read_text()
    assert len(hook_names()) == 9
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
