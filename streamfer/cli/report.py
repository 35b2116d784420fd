"""``streamfer report``: the analyst's page of a run (per-face summaries and timelines) from its
frame CSV, or one page per input and an index from a folder run's CSV folder."""

from __future__ import annotations

from pathlib import Path

import click

from streamfer.cli.common import HomePath, UserError


@click.command(short_help="An HTML report (and JSON) of a run from its frame CSV.")
@click.argument("csv_path", metavar="FRAMES.csv|CSV_DIR",
                type=HomePath(exists=True, path_type=Path))
@click.option("--output", "-o", "out", required=True, type=HomePath(path_type=Path),
              help="The page (.html); for a CSV folder, the folder of pages (index.html).")
@click.option("--json", "json_path", type=HomePath(dir_okay=False, path_type=Path),
              help="The same numbers as JSON, for scripts (a single CSV).")
@click.option("--video", metavar="PATH|URL",
              help="The input video (a file, or a link to a recorded one), for thumbnails "
                   "(default: the CSV's source, looked for beside the CSV and here); for a "
                   "CSV folder, the folder of inputs.")
def report(csv_path: Path, out: Path, json_path: Path | None, video: str | None) -> None:
    """One self-contained HTML page per run: who was on screen and when, and how each
    face's emotions moved (thumbnail, time on screen, dominant emotions, label shares, mean
    and peak scores, a timeline chart); faces on screen under a second are folded."""
    from streamfer.report import ReportError, counted, write_folder_report, write_report
    from streamfer.sinks import SinkError, check_name, check_output

    def warn(note: str) -> None:
        click.echo(f"warning: {note}", err=True)

    try:
        for path in (out / "index.html" if csv_path.is_dir() else out, json_path):
            if path:  # before the work: the run's outputs are checked the same way
                check_output(path, video=False)
        check_name(out, "pages" if csv_path.is_dir() else "page")
        if json_path:
            check_name(json_path, "json")
        if csv_path.is_dir():
            if json_path:
                raise UserError("--json is for a single CSV (a folder gets one page each)")
            pages = write_folder_report(csv_path, out, video, warn=warn)
            click.echo(f"{len(pages)} pages and {out / 'index.html'} written", err=True)
            return
        summary = write_report(csv_path, out, json_path, video, warn=warn)
    except (ReportError, SinkError, OSError) as exc:
        raise UserError(str(exc)) from None
    click.echo(f"{out}: {counted(len(summary['faces']), 'face')} ({summary['folded']} "
               f"folded)", err=True)
