"""``snnframe export-nir RUN_DIR [-o FILE] [--approximate] [--force]``."""

from __future__ import annotations

from pathlib import Path

import click

from snnframe.cli import reports_errors


def add_commands(cli: click.Group) -> None:
    @cli.command("export-nir")
    @click.argument("run_dir", type=click.Path(path_type=Path))
    @click.option(
        "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="The NIR file [RUN_DIR/model.nir]."
    )
    @click.option(
        "--approximate",
        is_flag=True,
        help="Write the nearest NIR node where none is exact (e.g. a subtractive reset as a reset to 0) and list "
        "what changes.",
    )
    @click.option("--force", is_flag=True, help="Replace the NIR file if it exists.")
    @click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a key of the run's recipe before loading it (--set data.root=/data).",
    )
    @reports_errors
    def export_nir(
        run_dir: Path, output: Path | None, approximate: bool, force: bool, overrides: tuple[str, ...]
    ) -> None:
        """Write the trained network of RUN_DIR as a NIR graph (Neuromorphic Intermediate Representation).

        \b
        The file loads in snnTorch (snntorch.import_nir), Norse, Sinabs, Rockpool, Lava-DL and
        SpiNNaker2's tools, and in snnframe as model.kind = "nir". Time step dt = 1e-4 s
        (tau = dt / (1 - beta)); see docs/nir.md.
        """
        try:
            import nir  # noqa: F401
        except ImportError:
            from snnframe.errors import SnnframeError

            raise SnnframeError("export-nir needs the nir package: pip install 'nir>=1.0.7'") from None
        from snnframe_nir.export import export_run

        path, exported = export_run(
            run_dir, output, approximate=approximate, overrides=list(overrides), plugins=None, overwrite=force
        )
        for warning in exported.warnings:
            click.echo(f"snnframe: warning: {warning}", err=True)
        click.echo(f"wrote {path} (NIR, dt = 1e-4 s):")
        for line in exported.layers:
            click.echo(f"  {line}")
