"""Folder runs: which inputs a folder holds, where each one's outputs go, the record of
the inputs finished and what made their outputs (so that a rerun skips them, and redoes
them when a setting that shapes the outputs changed), and the claim a run takes on an
input before doing it (so that two runs into one output folder do each input once).

Example:
    >>> jobs = plan_folder("samples/", "out/", "out/")  # nothing is written yet
    >>> jobs[1].key, jobs[1].output, jobs[1].table
    ('astronaut.mp4', PosixPath('out/astronaut.mp4'), PosixPath('out/astronaut.mp4.csv'))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from streamfer.files import NAME_MAX, atomic_file, cannot_write, printable, write_atomically
from streamfer.sinks import CONTAINERS, PHOTOS, Inputs, SinkError, check_output
from streamfer.sources import (
    IMAGE_EXTS,
    SourceError,
    animation_frames,
    list_media,
    open_source,
)

DONE_FILE = ".streamfer-done.json"
SKIPPED = "skipped (done)"
ELSEWHERE = "skipped (another run is doing it)"
CLAIMS = ".streamfer-claims"  # beside the record: a lock file per input under way
NOT_STARTED = "not started"
INTERRUPTED = "interrupted: outputs left as .part files"

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One input of a folder run and where its outputs go."""

    path: Path
    key: str  # the path relative to the folder: names it in the summary and the CSV
    output: Path | None
    table: Path | None
    refused: str | None = None  # why it cannot be done (an output's name over NAME_MAX)

    @property
    def stamp(self) -> str:
        st = self.path.stat()
        return f"{st.st_size}:{int(st.st_mtime)}"

    def done(self, record: dict, made: dict) -> bool:
        """Finished by an earlier run: recorded with this size and time and made with the
        settings ``made`` (see :func:`made_with`), its outputs present."""
        entry = record.get(self.key)
        return isinstance(entry, dict) and entry.get("input") == self.stamp \
            and entry.get("settings") == made \
            and all(p.is_file() for p in (self.output, self.table) if p)

    def changed(self, record: dict, made: dict) -> list[str]:
        """The settings that differ from those its recorded outputs were made with."""
        entry = record.get(self.key)
        if not isinstance(entry, dict) or entry.get("input") != self.stamp:
            return []
        before = entry.get("settings") or {}
        return sorted(k for k in set(before) | set(made) if before.get(k) != made.get(k))

    def made_at(self) -> tuple[int | None, ...]:
        """When each of its outputs was last written (ns), None for one not there."""
        def when(path: Path) -> int | None:
            try:
                return path.stat().st_mtime_ns
            except OSError:
                return None

        return tuple(when(p) for p in (self.output, self.table) if p)

    def entry(self, made: dict, stamp: str | None = None) -> dict:
        """This input's line in the record: its size and time (``stamp``: as they were when
        it was taken up), and what made its outputs."""
        return {"input": stamp or self.stamp, "settings": made}


def made_with(settings) -> dict:
    """What shapes a folder run's outputs, as the done-record keeps it (JSON-plain): the
    model file's digest (its thresholds included), the detector and its settings, cadence,
    thresholds, smoothing, mirror, the CSV's options and streamfer's version. Engine,
    device, threads and batch size change only speed (and scores within the engines'
    tolerance), so they are not in it."""
    from streamfer.classify import DEFAULT_MODEL
    from streamfer.detect import TILE_PERIOD

    def digest(path) -> str | None:
        try:
            return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        except OSError:
            return None

    try:
        ours = version("streamfer")
    except PackageNotFoundError:
        ours = "unknown"
    made = {"streamfer": ours, "model": digest(settings.model_path or DEFAULT_MODEL),
            "detector": settings.detector,
            "detector_model": digest(settings.detector_path) if settings.detector_path
            else None,
            "min_face": settings.min_face, "min_score": settings.min_score,
            "tiles": TILE_PERIOD if settings.tiles is None else settings.tiles,
            "every": settings.every, "max_fps": settings.max_fps,
            "thresholds": settings.thresholds, "smoothing": settings.smoothing,
            "mirror": settings.mirror, "flip_average": settings.flip_average,
            "face_cadence": settings.face_cadence,
            "csv_empty_frames": settings.csv_empty_frames}
    if settings.start or settings.end is not None:  # a part of each video (records before
        made.update(start=settings.start, end=settings.end)  # the option stay as they were)
    return json.loads(json.dumps(made))  # as it reads back from the record


def plan_folder(folder: str | Path, output_dir: str | Path | None,
                csv_dir: str | Path | None, left_out: list[Path] | None = None,
                earlier: list[Path] | None = None) -> list[Job]:
    """The videos and photos below ``folder`` and their outputs, under the same relative
    paths: an annotated video keeps its name where we can write its container (``a/x.mov``
    → ``a/x.mov``), else gains ``.mp4`` (``x.ts`` → ``x.ts.mp4``); a photo's annotated copy
    keeps its name where we write its format (``a/y.jpg`` → ``a/y.jpg``), else gains
    ``.png`` (``y.tif`` → ``y.tif.png``); the CSV is the name plus ``.csv``
    (``a/x.mov.csv``). Refused before any work: two inputs sharing an output, or an output
    that is an input; an input whose output's name would be longer than a file system takes
    is planned ``refused`` (it fails; the others are done). ``left_out``, if given, gets the
    photos and videos of kinds not read (see :func:`~streamfer.sources.list_media`),
    ``earlier`` the output folders of earlier runs found inside ``folder`` (passed over)."""
    folder = Path(folder)
    left_out = [] if left_out is None else left_out
    # our own outputs are never inputs, even where the output folders lie inside the source,
    # nor are an earlier run's (a folder holding its done-record), whatever it was named
    inputs = list_media(folder, skip=tuple(Path(d) for d in (output_dir, csv_dir)
                                           if d and Path(d).resolve() != folder.resolve()),
                        left_out=left_out, marked=(DONE_FILE, DONE_FILE + ".log"),
                        outputs=earlier)
    if not inputs:
        raise SourceError(f"no video or photo files under {folder}" + (
            f" that streamfer reads (left out: {left_out_text(folder, left_out)})"
            if left_out else ""))
    jobs, owners, known = [], {}, Inputs(inputs)
    for path in inputs:
        rel = path.relative_to(folder)
        photo = rel.suffix.lower() in IMAGE_EXTS and not animation_frames(path)
        keeps = PHOTOS if photo else CONTAINERS
        named = rel if rel.suffix.lower() in keeps \
            else rel.with_name(rel.name + (".png" if photo else ".mp4"))
        job = Job(path, printable(rel.as_posix()), Path(output_dir) / named if output_dir else None,
                  Path(csv_dir) / rel.with_name(rel.name + ".csv") if csv_dir else None)
        for out in (job.output, job.table):
            if out is None:
                continue
            if (n := len(os.fsencode(out.name))) > NAME_MAX:  # this input's, not the run's
                job.refused = cannot_write(out, f"its name is {n} bytes long, over the "
                                                f"{NAME_MAX} a file system takes (give the "
                                                "input a shorter name)")
                break
            check_output(out, known, video=out == job.output, photo=photo)
            if out.resolve() in owners:
                raise SinkError(f"{owners[out.resolve()]} and {job.key} would both write {out}")
            owners[out.resolve()] = job.key
        jobs.append(job)
    return jobs


def first_few(names: list[str], shown: int = 3) -> str:
    """The first ``shown`` names and how many more: ``'a.jxl, b.cr2, c.heic and 9 more'``."""
    left = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {left} more" if left > 0 else "")


def left_out_text(folder: str | Path, left_out: list[Path]) -> str:
    """``IMG_1.HEIC, IMG_2.HEIC, IMG_3.HEIC and 9 more``: the first three, from ``folder``."""
    return first_few([p.relative_to(folder).as_posix() for p in left_out])


@dataclass
class FolderRun:
    """One folder run, serial or on Ray: its inputs, those it does (the others finished by
    an earlier run with the same settings), and the record of those finished: each input
    that ends well is appended to a journal beside the record at once (a line: as cheap for
    the 20,000th input as for the first; rewriting the whole record each time cost the
    2,000th input 25 ms), folded into the record when the run ends (see :meth:`close`) or,
    after a process killed outright, by the next run's plan."""

    jobs: list[Job]
    todo: list[Job]
    made: dict
    record: dict
    record_path: Path
    _claims: dict = field(default_factory=dict)  # key: the open file holding its lock
    _planned: dict = field(default_factory=dict)  # key: its outputs' times at the plan
    _started: dict = field(default_factory=dict)  # key: its size and time when taken up

    @classmethod
    def plan(cls, folder: str | Path, output_dir: str | Path | None,
             csv_dir: str | Path | None, settings, force: bool = False,
             fold: bool = True) -> FolderRun:
        """The run of ``folder`` (see :func:`plan_folder`): every input where ``force``,
        else those not done (see :meth:`Job.done`); each input made before with other
        settings is said (a warning) as it is planned again, and so are the photos and
        videos of kinds not read (``IMG_0001.HEIC``), which the run leaves out. ``fold``:
        a journal left by a run killed outright is folded into the record now (not in a
        dry run, which writes nothing: the journal is read as it is)."""
        left_out: list[Path] = []
        earlier: list[Path] = []
        jobs = plan_folder(folder, output_dir, csv_dir, left_out, earlier)
        if earlier:
            log.warning("passed over under %s: %s (the output of an earlier run, by its "
                        ".streamfer-done.json)", folder, left_out_text(folder, earlier))
        if left_out:
            log.warning("left out under %s: %s (kinds of photo or video streamfer does not "
                        "read)", folder, left_out_text(folder, left_out))
        record_path = Path(output_dir or csv_dir) / DONE_FILE
        if fold:  # a journal left by a run killed outright: its torn line dropped
            _fold_quietly(record_path)
        record, made = read_done(record_path), made_with(settings)
        for job in jobs:
            if job.refused:
                log.warning("%s: %s", job.key, job.refused)
        todo = [job for job in jobs if not job.refused and (force or not job.done(record, made))]
        for job in todo:
            if not force and (changed := job.changed(record, made)):
                log.warning("%s: made before with other settings (%s): done again",
                            job.key, ", ".join(changed))
        return cls(jobs, todo, made, record, record_path,
                   _planned={job.key: job.made_at() for job in todo})

    @property
    def skipped(self) -> list[Job]:
        """The inputs finished by an earlier run, in the plan's order."""
        todo = {job.key for job in self.todo}
        return [job for job in self.jobs if job.key not in todo and not job.refused]

    def before(self) -> dict[str, str]:
        """What the run knows of its inputs before it starts, their status by key: those
        skipped (done), and those refused (failed, with why)."""
        todo = {job.key for job in self.todo}
        return {job.key: f"failed: {job.refused}" if job.refused else SKIPPED
                for job in self.jobs if job.key not in todo}

    def claim(self, job: Job) -> bool:
        """Take ``job`` for this run before doing it; False where another run (a second
        terminal, a nightly job started while last night's still runs) has it under way,
        or finished it since this run's plan. The claim is a lock the system holds for
        this process (``flock``), so a run killed outright holds none; :meth:`release` when
        the job ends. The input's size and time are noted as it is taken up (see
        :meth:`finished`)."""
        if not self._lock(job):
            return False
        try:
            self._started[job.key] = job.stamp
        except OSError:  # gone since the plan: its run says so
            pass
        return True

    def _claim_path(self, job: Job) -> Path:
        return self.record_path.parent / CLAIMS / hashlib.sha256(job.key.encode()).hexdigest()

    def under_way(self, job: Job) -> bool:
        """Another run has ``job`` under way now (its claim is held), asked without taking
        it or writing anything (a dry run)."""
        try:
            import fcntl

            held = open(self._claim_path(job), "rb")  # noqa: SIM115 (closed below)
        except (ImportError, OSError):  # no claims here, or none for it
            return False
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:  # a share without locks
            return False
        finally:
            held.close()  # the lock, if it was taken, goes with it
        return False

    def _lock(self, job: Job) -> bool:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no claims
            return True
        path = self._claim_path(job)
        while True:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                held = open(path, "a")  # noqa: SIM115 (held until released)
            except OSError as exc:  # the disk's refusal is said when the outputs are written
                log.debug("no claim for %s: %s", job.key, exc)
                return True
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held by another run
                held.close()
                return False
            except OSError as exc:  # a share without locks (NFS without lockd: ENOLCK)
                held.close()
                log.debug("no claim for %s: %s", job.key, exc)
                return True
            if os.fstat(held.fileno()).st_nlink:  # not a file its holder removed meanwhile
                break
            held.close()
        self._claims[job.key] = held
        now = job.made_at()
        if now != self._planned.get(job.key) and all(now):
            self.release(job)  # another run made its outputs since the plan (it held the
            return False  # claim, and let it go before this run came to the input)
        return True

    def release(self, job: Job) -> None:
        """``job`` is no longer under way here (finished, failed or stopped)."""
        held = self._claims.pop(job.key, None)
        if held is not None:
            Path(held.name).unlink(missing_ok=True)  # before the lock goes: a run that
            held.close()  # opens it after takes a new file, and finds the input done

    def finished(self, job: Job) -> bool:
        """``job`` ended well: the journal says so at once (a rerun skips it). Where the
        disk refuses the line (full), a warning says so by the journal's name and the run
        goes on (the input's outputs are whole; a rerun does it again, a torn line
        dropped): False."""
        started = self._started.pop(job.key, None)
        entry = job.entry(self.made, started)
        self.record[job.key] = entry
        try:
            if started and job.stamp != started:  # recorded as it was read: done again
                log.warning("%s: changed while it was read (still being written?): the next "
                            "run does it again", job.key)
        except OSError:
            pass
        try:
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
            with open(journal(self.record_path), "a", encoding="utf-8") as f:
                f.write(json.dumps({job.key: entry}) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            said = cannot_write(journal(self.record_path), exc)
            log.warning("%s: done, but not recorded (%s): a rerun does it again", job.key, said)
            return False
        return True

    def close(self) -> None:
        """The journal folded into the record (see :func:`fold_journal`); where that fails
        (a full disk), the journal stays and the next run reads it. Claims still held go."""
        for key in list(self._claims):
            self.release(next(job for job in self.jobs if job.key == key))
        with contextlib.suppress(OSError):  # another run's claims in it: it stays
            (self.record_path.parent / CLAIMS).rmdir()
        _fold_quietly(self.record_path)


def journal(record_path: Path) -> Path:
    """Where the inputs finished since the record was last written are appended."""
    return record_path.with_name(record_path.name + ".log")


def fold_journal(record_path: Path) -> None:
    """The record and its journal as they are now (another run's lines into the same
    folder included: see :func:`read_done`) written whole as the record, then the journal
    removed; nothing to do where there is no journal."""
    if journal(record_path).exists():
        write_atomically(record_path, json.dumps(read_done(record_path), indent=1))
        journal(record_path).unlink()


def _fold_quietly(record_path: Path) -> None:
    """:func:`fold_journal`, where a failure (a full disk) leaves the journal for the next run."""
    try:
        fold_journal(record_path)
    except OSError as exc:
        log.debug("the record stays in its journal: %s", exc)


COUNTER_THREAD = "count-frames"  # its warnings (an input opened to count) are no run's


def count_frames(jobs: list[Job], settings, on_total, stop) -> threading.Thread:
    """A folder's progress bar gets its total without holding up the run: a thread (started
    here, a daemon) sums the frames of ``jobs`` (see :func:`frames_to_read`: each input
    opened once more, 4 ms a clip here, more on a network share) and hands the sum to
    ``on_total``, unless the ``stop`` event is set first."""

    def count() -> None:
        total = 0
        for job in jobs:
            if stop.is_set():
                return
            total += frames_to_read(job, settings)
        if not stop.is_set():
            on_total(total)

    thread = threading.Thread(target=count, name=COUNTER_THREAD, daemon=True)
    thread.start()
    return thread


def frames_to_read(job: Job, settings) -> int:
    """The frames a run of ``job`` will read (of ``settings``' time range; a photo's 1), as its
    container says; 0 where it cannot be opened or does not say: a folder's progress bar."""
    try:
        with open_source(str(job.path), start=settings.start, end=settings.end) as source:
            return source.frames_to_read or 0
    except SourceError:
        return 0


def join_tables(jobs: list[Job], keys: set[str], path: str | Path) -> int:
    """The CSVs of the ``jobs`` named in ``keys``, in the plan's order, as one file at
    ``path``: one header, every row as its input's CSV has it (its ``source`` column is the
    input's relative path), streamed, written whole or not at all (not at all where there
    is none). Returns the inputs joined. :class:`SinkError` if two CSVs have different
    columns."""
    import shutil

    chosen = [job for job in jobs
              if job.key in keys and job.table is not None and job.table.is_file()]
    if not chosen:
        return 0
    header = None
    with atomic_file(Path(path), "w") as out:
        for job in chosen:
            with open(job.table, newline="", encoding="utf-8") as f:
                first = f.readline()
                if header is None:
                    header = first
                    out.write(header)
                elif first != header:
                    raise SinkError(f"cannot join the CSVs into {path}: {job.key}'s columns "
                                    f"differ from the others'")
                shutil.copyfileobj(f, out)
    return len(chosen)


def read_done(path: Path) -> dict:
    """The record of the inputs finished (``{key: entry}``), with its journal's lines
    after it; a line torn by a process killed mid-write is left out (its input is done
    again)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict):
        record = {}
    try:
        lines = journal(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            record.update(entry)
    return record
