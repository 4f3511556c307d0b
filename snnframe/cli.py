"""The ``snnframe`` command line."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from snnframe import __version__
from snnframe.errors import SnnframeError
from snnframe.kinds import NAMES
from snnframe.plugins import Plugins, load_plugins


class _Failure(click.ClickException):
    """A user-facing error: one message on stderr, no traceback."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"snnframe: error: {self.format_message()}", err=True)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SnnframeError as exc:
            raise _Failure(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _Failure("interrupted; continue the run with --resume", 130) from None

    return wrapper


_recipe_argument = click.argument("recipe", type=click.Path(path_type=Path, dir_okay=True))
_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe key; VALUE is read as TOML (--set train.milestones=[10,15]).",
)


def make_cli(plugins: Plugins) -> click.Group:
    """The CLI group for a set of loaded plugins (tests pass their own)."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="snnframe")
    def cli() -> None:
        """Train spiking neural networks from TOML recipes, with plugins.

        \b
        Start with:  snnframe run recipes/quickstart.toml
        """
        for failed in plugins.failed:
            click.echo(
                f'snnframe: warning: plugin "{failed.name}" ({failed.origin}) failed to load and is '
                f"skipped: {failed.error}",
                err=True,
            )

    @cli.command()
    @_recipe_argument
    @_set_option
    @click.option(
        "--resume", is_flag=True, help="Continue the run in the recipe's run directory from checkpoints/last.pt."
    )
    @reports_errors
    def run(recipe: Path, overrides: tuple[str, ...], resume: bool) -> None:
        """Train the experiment described by RECIPE."""
        from snnframe.run import run as run_recipe

        result = run_recipe(recipe, list(overrides), resume=resume, plugins=plugins)
        if result.is_main and result.history:
            last = result.history[-1]
            accuracy = last.get("test_acc")
            shown = "n/a" if accuracy is None else f"{100 * accuracy:.2f}%"
            click.echo(f"done: epoch {last.get('epoch')}, test accuracy {shown}")

    @cli.command()
    @_recipe_argument
    @_set_option
    @click.option("--resume", is_flag=True, help="Check as for run --resume.")
    @click.option("--show", is_flag=True, help="Print the resolved recipe (every default written out).")
    @reports_errors
    def validate(recipe: Path, overrides: tuple[str, ...], resume: bool, show: bool) -> None:
        """Check RECIPE as `run` would (plugins, keys, values, run directory), without reading data or training."""
        from snnframe.run import prepare

        prepared = prepare(recipe, list(overrides), resume=resume, plugins=plugins)
        if show:
            import tomli_w

            click.echo(tomli_w.dumps(prepared.recipe.to_dict()))
        r = prepared.recipe
        kind = {path: table.kind for path, table in r.tables.items()}
        click.echo(
            f"{recipe}: ok ({kind['data']} -> {kind['encoder']} -> {kind['model']}/{kind['model.neuron']}, "
            f"trainer {kind['train']}, {r.train.epochs} epochs, run directory {r.run_dir})"
        )

    @cli.command("list-plugins")
    @click.option(
        "--json", "as_json", is_flag=True, help="Print a JSON list of {kind, name, plugin, version, default}."
    )
    @click.option("--kind", type=click.Choice(NAMES), help="Only this component kind.")
    def list_plugins(as_json: bool, kind: str | None) -> None:
        """List every registered component and the plugin it came from."""
        rows = [
            {
                "kind": k,
                "name": e.name,
                "plugin": e.plugin,
                "distribution": e.distribution,
                "version": e.version,
                "default": e.default,
            }
            for k in NAMES
            if kind in (None, k)
            for e in plugins.registry(k)
        ]
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        _print_table([{**r, "name": r["name"] + ("*" if r["default"] else "")} for r in rows])
        if any(r["default"] for r in rows):
            click.echo("\n* the default when a recipe leaves the kind out")
        if plugins.failed:
            click.echo("\nFailed plugins:")
            for p in plugins.failed:
                click.echo(f"  {p.name} ({p.origin}): {p.error}")
        if plugins.disabled:
            click.echo(f"\nDisabled by SNNFRAME_DISABLE_PLUGINS: {', '.join(plugins.disabled)}")

    plugins.add_commands(cli)
    return cli


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = {"kind": "KIND", "name": "NAME", "plugin": "PLUGIN", "version": "VERSION"}
    shown = [header] + [
        {**r, "version": f"{r['distribution']} {r['version']}" if r["distribution"] else "-"} for r in rows
    ]
    widths = {k: max(len(str(r[k])) for r in shown) for k in header}
    for r in shown:
        click.echo("  ".join(str(r[k]).ljust(widths[k]) for k in header).rstrip())


def main(argv: list[str] | None = None) -> None:
    try:
        plugins = load_plugins()
    except SnnframeError as exc:
        click.echo(f"snnframe: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    make_cli(plugins).main(args=argv, prog_name="snnframe")


if __name__ == "__main__":  # pragma: no cover
    main()
