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
from snnframe.errors import SnnframeError, did_you_mean
from snnframe.kinds import NAMES
from snnframe.plugins import DISABLE_ENV, Plugins, load_plugins


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
            raise _Failure("interrupted", 130) from None

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
        for name in plugins.unknown_disabled:
            click.echo(
                f'snnframe: warning: {DISABLE_ENV} names "{name}", which is no installed plugin, so it disables '
                f"nothing{did_you_mean(name, plugins.known)}; plugins: {', '.join(plugins.known) or 'none'}",
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

        try:
            result = run_recipe(recipe, list(overrides), resume=resume, plugins=plugins)
        except KeyboardInterrupt:
            raise _Failure("interrupted; continue the run with --resume", 130) from None
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

        prepared = prepare(recipe, list(overrides), resume=resume, plugins=plugins, read_checkpoint_now=resume)
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
        "--json",
        "as_json",
        is_flag=True,
        help="Print a JSON list of {kind, name, plugin, distribution, version, default}.",
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

    @cli.command("eval")
    @click.argument("run_dir", type=click.Path(path_type=Path, file_okay=True))
    @_set_option
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the report.")
    @click.option("--batch-size", type=click.IntRange(min=1), help="Test batch size (default: the recipe's).")
    @click.option("--device", default="cpu", show_default=True, help="Device to evaluate on: cpu, cuda, cuda:N.")
    @reports_errors
    def evaluate(run_dir: Path, overrides: tuple[str, ...], as_json: bool, batch_size: int | None, device: str) -> None:
        """Evaluate the trained run in RUN_DIR on its test set: accuracy, loss, firing rates, SynOps, energy.

        \b
        --set changes the saved recipe first, e.g. --set data.root=/data where the data lives here.
        """
        import snnframe
        from snnframe.evaluate import evaluate as evaluate_run
        from snnframe.evaluate import report

        result = evaluate_run(
            snnframe.load_run(run_dir, list(overrides), plugins=plugins), batch_size=batch_size, device=device
        )
        click.echo(json.dumps(result, indent=2, allow_nan=False) if as_json else report(result))

    @cli.command()
    @_recipe_argument
    @click.option("--seeds", required=True, metavar="S1,S2,...", help="Seeds to run, e.g. 0,1,2 or 0-4.")
    @_set_option
    @click.option(
        "--grid",
        multiple=True,
        metavar="KEY=V1,V2",
        help="Also run every value of KEY (each read as TOML); several --grid give every combination.",
    )
    @click.option("--list", "list_only", is_flag=True, help="Print each run, its state and its `snnframe run` command.")
    @click.option(
        "--only", metavar="K[,K...]", help="Run only these combinations (0-based, as --list numbers them); no summary."
    )
    @reports_errors
    def sweep(
        recipe: Path,
        seeds: str,
        overrides: tuple[str, ...],
        grid: tuple[str, ...],
        list_only: bool,
        only: str | None,
    ) -> None:
        """Train RECIPE once per seed (and grid point), one run after the other, then summarise.

        \b
        Each combination is its own run directory, <out_dir>/<name>-s<seed>[-<key>=<value>]...;
        running the same sweep again skips finished runs and resumes interrupted ones.
        <out_dir>/<name>-sweep/ gets summary.md, summary.csv and test_acc.png.
        """
        from snnframe import sweep as sweeps
        from snnframe.errors import UsageError

        plan = sweeps.plan(recipe, sweeps.parse_seeds(seeds), list(overrides), list(grid))
        if list_only:
            for point in plan.points:
                click.echo(f"{point.index}\t{sweeps.status(point)}\t{point.name}\t{sweeps.command(plan, point)}")
            return
        indices = None
        if only is not None:
            try:
                indices = [int(i) for i in only.split(",")]
            except ValueError:
                raise UsageError(f'--only "{only}": expected combination numbers such as 0 or 0,3') from None
            bad = [i for i in indices if not 0 <= i < len(plan.points)]
            if bad:
                raise UsageError(
                    f"--only: no combination {bad[0]}; there are {len(plan.points)} (0-{len(plan.points) - 1})"
                )
        try:
            failures = sweeps.run_sweep(plan, only=indices, plugins=plugins, echo=click.echo)
        except KeyboardInterrupt:
            raise _Failure("interrupted; run the same sweep command again to continue", 130) from None
        if indices is None:
            written, changed = sweeps.write_summary(plan)
            done = "wrote" if changed else "summary up to date:"
            click.echo(f"sweep {plan.name}: {done} " + ", ".join(str(p) for p in written))
        if failures:
            raise _Failure(f"{len(failures)} run(s) of the sweep failed:\n  " + "\n  ".join(failures), 1)

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
