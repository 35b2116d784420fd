"""Command line: ``streamfer run|train|evaluate|compare|export|calibrate-thresholds|
calibrate-int8|bench|report`` (``thresholds`` and ``calibrate``, the old names of the two
calibrations, stay as hidden aliases for a release).

Each group of commands has its module (:mod:`~streamfer.cli.run` for the product's main job,
:mod:`~streamfer.cli.model` for the model's corner, :mod:`~streamfer.cli.bench`); they parse
options and call the stages; :mod:`~streamfer.cli.common` holds what they share.
"""

from __future__ import annotations

from streamfer.logs import filter_native_stderr, quiet_native_logs

quiet_native_logs()  # the entry point's business, before any native library loads

import copy  # noqa: E402

import click  # noqa: E402

from streamfer.cli import bench, model, report  # noqa: E402
from streamfer.cli import run as run_module  # noqa: E402
from streamfer.cli.common import CONTEXT  # noqa: E402


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="streamfer", message="%(package)s %(version)s")
def main() -> None:
    """streamfer: facial emotions on video streams (capture → detect → classify → render)."""


def entry(prog_name: str | None = None) -> None:
    """The ``streamfer`` program (its script, ``python -m streamfer``): :func:`main` with
    native libraries' noise filtered out of standard error for the whole run (a test or a
    program calling :func:`main` keeps its own standard error as it is)."""
    filter_native_stderr()
    main(prog_name=prog_name)


main.add_command(run_module.run)
for command in (model.train, model.evaluate, model.compare, model.export, bench.bench,
                report.report):
    main.add_command(command)
for new, old, command in (("calibrate-thresholds", "thresholds", model.thresholds),
                          ("calibrate-int8", "calibrate", model.calibrate)):
    main.add_command(command, new)
    alias = copy.copy(command)
    alias.hidden, alias.deprecated = True, f"use `streamfer {new}`"
    main.add_command(alias, old)
