"""The frame-level CSV: one row per face per frame (or per frame without one, where asked),
to a file or to standard output.

Example:
    >>> from streamfer.sinks import CSVSink
    >>> with CSVSink("frames.csv") as table:                       # doctest: +SKIP
    ...     table.write(frame)
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import os
import sys
from pathlib import Path

import numpy as np

from streamfer.files import cannot_write, part_path
from streamfer.frame import Frame
from streamfer.labels import EMOTIONS
from streamfer.sinks.errors import SinkError
from streamfer.sinks.names import STDOUT, check_name


def _slug(label: str) -> str:
    return label.lower()


CSV_COLUMNS = (["source", "frame", "time_s", "face_id", "x", "y", "w", "h", "det_score"]
               + [f"raw_{_slug(e)}" for e in EMOTIONS] + [f"smooth_{_slug(e)}" for e in EMOTIONS]
               + ["labels", "classified"])
WALL_TIME = "wall_time"  # a live source's CSV ends with it: when each frame was captured


def wall_clock(seconds: float | None) -> str:
    """A moment (seconds since the Unix epoch) as the CSV writes it: ISO 8601 in UTC, to
    the millisecond (``2026-12-07T09:30:00.125Z``); empty for None."""
    if seconds is None:
        return ""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CSVSink:
    """One row per face per frame, flushed frame by frame; with ``empty_frames``, also one row
    with empty face fields for a frame without faces (so every analysed frame has a row);
    to standard output where ``path`` is :data:`STDOUT` (``-``), as a filter writes;
    with ``part``, written as its part file (:func:`streamfer.files.part_path`) and renamed
    into place on close, but only once :meth:`finish` said it is whole (a folder run's input
    that ran to its end); otherwise the part file stays, and nothing unfinished looks done.
    Without ``part``, a run stopped (an error, a Ctrl-C) before its first row leaves no file:
    a header alone is what a whole run without faces writes. With ``wall_time`` (a live
    source's), each row ends with when its frame was captured (:func:`wall_clock`)."""

    def __init__(self, path: str | Path, empty_frames: bool = False, part: bool = False,
                 wall_time: bool = False) -> None:
        self.path, self.stdout = Path(path), str(path) == STDOUT
        self._part = part_path(self.path) if part and not self.stdout else None
        self.whole, self._finished, self._closed = not self._part, False, False
        if self.stdout:  # taken now, before a progress bar's display (rich) may put a proxy
            self._file = sys.stdout  # of its own in sys.stdout while it runs
        else:  # a frame's rows are formatted, then written unbuffered: a write that fails (a
            check_name(self.path, "csv")  # full disk) is cut back to the last whole row
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self._part or self.path, "wb", buffering=0)
            except OSError as exc:  # what the check before the run could not see (a share
                raise SinkError(cannot_write(self.path, exc)) from None  # that squashes root)
            self._pending = io.StringIO(newline="")
        self._writer = csv.writer(self._file if self.stdout else self._pending)
        self._writer.writerow(CSV_COLUMNS + [WALL_TIME] if wall_time else CSV_COLUMNS)
        self.rows, self.empty_frames, self._wall = 0, empty_frames, wall_time
        self._kept = self._kept_rows = 0  # bytes and rows on disk, whole
        self._last_frame: int | None = None

    def write(self, frame: Frame) -> None:
        when = [wall_clock(frame.wall_time)] if self._wall else []
        if not frame.faces and self.empty_frames:
            self._writer.writerow([frame.source, frame.index, f"{frame.time_s:.4f}"]
                                  + [""] * (len(CSV_COLUMNS) - 3) + when)
            self.rows += 1
        for face in frame.faces:
            raw = face.scores if face.scores is not None else [np.nan] * len(EMOTIONS)
            smooth = face.smoothed if face.smoothed is not None else raw
            self._writer.writerow(
                [frame.source, frame.index, f"{frame.time_s:.4f}", face.face_id, *face.box,
                 f"{face.det_score:.3f}", *(f"{s:.4f}" for s in raw),
                 *(f"{s:.4f}" for s in smooth), ";".join(face.labels), int(face.classified),
                 *when])
            self.rows += 1
        if self.stdout:
            self._file.flush()
        else:
            self._write_pending(frame.index)

    def _write_pending(self, frame_index: int | None) -> None:
        """The rows formatted since the last call, onto the disk whole, or none of them."""
        data = self._pending.getvalue().encode("utf-8")
        self._pending.seek(0)
        self._pending.truncate()
        view = memoryview(data)
        try:
            while view:
                view = view[self._file.write(view):]
        except OSError as exc:  # what reached the disk of this frame goes: whole rows only
            with contextlib.suppress(OSError):  # (a pipe cannot be cut back)
                os.ftruncate(self._file.fileno(), self._kept)
            self.rows = self._kept_rows
            kept = f"; {self.kept('it')}" if self.rows else ""
            raise SinkError(cannot_write(self.path, exc) + kept) from None
        if self.rows > self._kept_rows:
            self._last_frame = frame_index
        self._kept, self._kept_rows = self._kept + len(data), self.rows

    @property
    def cut_short(self) -> bool:
        """Rows under the file's own name from a run that did not end (a failure, a
        Ctrl-C): whoever reads it should be told (a folder run's part file says so itself)."""
        return not self.stdout and not self._part and not self._finished and self.rows > 0

    def kept(self, name: str | None = None) -> str:
        """What a run that stopped short left in the file, in words (``frames.csv keeps
        its 69 rows, up to frame 68``); ``name``: how to call the file."""
        return (f"{name or self.path.name} keeps its {self.rows} row{'s' * (self.rows != 1)}"
                f", up to frame {self._last_frame}")

    def finish(self) -> None:
        """Everything is written: :meth:`close` puts the file under its name."""
        self.whole = self._finished = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.stdout:  # ours to flush, not to close; a reader gone (``| head``) was said
            try:        # by the write that found it gone
                self._file.flush()
            except BrokenPipeError:
                pass
            return
        try:
            if self._finished:  # a run without rows: its header
                self._write_pending(None)
        finally:
            self._file.close()
        if self._part and self.whole:
            os.replace(self._part, self.path)
        elif self._part and self._part.is_file() and not self._part.stat().st_size:
            self._part.unlink()  # not even its header was written (a full disk)
        elif not self._part and not self._finished and not self.rows and self.path.is_file():
            self.path.unlink()  # a file of ours, never a device or pipe (/dev/null, a FIFO)

    def __enter__(self) -> CSVSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
