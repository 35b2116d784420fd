"""Folder runs: which inputs a folder holds, where each one's outputs go, and the record of
the inputs finished (so that a rerun skips them).

Example:
    >>> jobs = plan_folder("footage/", "out/", "out/")                   # doctest: +SKIP
    >>> jobs[0].key, jobs[0].output, jobs[0].table                        # doctest: +SKIP
    ('cam2/x.mov', PosixPath('out/cam2/x.mov'), PosixPath('out/cam2/x.mov.csv'))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from streamfer.sinks import CONTAINERS, SinkError, check_output
from streamfer.sources import SourceError, list_videos

DONE_FILE = ".streamfer-done.json"


@dataclass
class Job:
    """One input of a folder run and where its outputs go."""

    path: Path
    key: str  # the path relative to the folder: names it in the summary and the CSV
    output: Path | None
    table: Path | None

    @property
    def stamp(self) -> str:
        st = self.path.stat()
        return f"{st.st_size}:{int(st.st_mtime)}"

    def done(self, record: dict) -> bool:
        """Finished by an earlier run: recorded with this size and time, outputs present."""
        return record.get(self.key) == self.stamp and \
            all(p.is_file() for p in (self.output, self.table) if p)


def plan_folder(folder: str | Path, output_dir: str | Path | None,
                csv_dir: str | Path | None) -> list[Job]:
    """The videos below ``folder`` and their outputs, under the same relative paths: the
    video keeps its name where we can write its container (``a/x.mov`` → ``a/x.mov``), else
    gains ``.mp4`` (``x.ts`` → ``x.ts.mp4``); the CSV is the name plus ``.csv``
    (``a/x.mov.csv``). Refused before any work: two inputs sharing an output, or an output
    that is an input."""
    folder = Path(folder)
    # our own outputs are never inputs, even where the output folders lie inside the source
    videos = list_videos(folder, skip=tuple(Path(d) for d in (output_dir, csv_dir)
                                            if d and Path(d).resolve() != folder.resolve()))
    if not videos:
        raise SourceError(f"no video files under {folder}")
    jobs, owners = [], {}
    for path in videos:
        rel = path.relative_to(folder)
        video = rel if rel.suffix.lower() in CONTAINERS else rel.with_name(rel.name + ".mp4")
        job = Job(path, rel.as_posix(), Path(output_dir) / video if output_dir else None,
                  Path(csv_dir) / rel.with_name(rel.name + ".csv") if csv_dir else None)
        for out in (job.output, job.table):
            if out is None:
                continue
            if job.output == out:
                check_output(out, videos)
            if out.resolve() in owners:
                raise SinkError(f"{owners[out.resolve()]} and {job.key} would both write {out}")
            owners[out.resolve()] = job.key
        jobs.append(job)
    return jobs


def read_done(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
