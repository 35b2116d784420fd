"""The only module that knows the order of the stages:
source → detect → track → classify → smooth → render → sinks.

Example:
    >>> from streamfer.pipeline import Pipeline, Settings
    >>> with Pipeline(Settings()) as pipeline:                          # doctest: +SKIP
    ...     stats = pipeline.run("clip.mp4", output="annotated.mp4", csv_path="frames.csv")
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from streamfer.batch import (
    COUNTER_THREAD,
    ELSEWHERE,
    INTERRUPTED,
    NOT_STARTED,
    FolderRun,
    count_frames,
)
from streamfer.classify import Classifier, default_backend
from streamfer.detect import FaceDetector
from streamfer.frame import Frame
from streamfer.interrupts import deferred_interrupt
from streamfer.labels import check_threshold
from streamfer.render import Renderer
from streamfer.report import Thumbnails
from streamfer.sinks import (
    PHOTOS,
    STDOUT,
    CSVSink,
    PhotoSink,
    SinkError,
    StreamSink,
    VideoSink,
    Window,
    check_distinct,
    is_playlist,
    is_stream,
)
from streamfer.smooth import Smoother
from streamfer.sources import RECONNECT_S, OutOfRange, Source, SourceError, is_webcam, open_source
from streamfer.track import Tracker

log = logging.getLogger(__name__)


@dataclass
class Settings:
    detector: str = "both"  # the CLI picks "short" for webcams
    detector_path: str | None = None
    model_path: str | None = None
    min_face: int = 0
    min_score: float = 0.6
    tiles: int | None = None  # large frames: a sweep over the tiles every N frames (0: off;
    # None: detect.TILE_PERIOD)
    every: int = 1
    max_fps: float | None = None
    start: float = 0.0  # the part of a file to read, in seconds of its time (a live source:
    end: float | None = None  # end alone, seconds after its first frame); photos: whole
    thresholds: dict[str, float] | float | None = None  # None: the model's calibrated ones
    smoothing: dict = field(default_factory=lambda: {"ema": 0.4})
    batch_size: int = 32
    backend: str = field(default_factory=default_backend)
    device: str = "auto"  # auto: a CUDA GPU where ONNX Runtime has one, else the CPU
    threads: int | None = None  # the classifier engine's threads (None: every core)
    flip_average: bool | None = None  # None: as the model file says
    # with flip_average on: "alternate" scores a face as it is on one analysed frame and
    # mirrored on the next (the smoother averages them; half the work), "average" both views
    # every frame; "auto": alternate in videos and streams, average for a still image
    mirror: str = "auto"
    face_cadence: int = 1  # past one face, classify each face every k frames
    lookahead: int = 8  # files: frames whose faces are classified in one batch
    csv_empty_frames: bool = False  # a row (empty face fields) for analysed faceless frames
    reconnect: float = RECONNECT_S  # live sources: how long a drop is tried again (0: never)
    # a webcam's size (width, height) and frame rate to ask for; None: the camera's own
    camera_size: tuple[int, int] | None = None
    camera_fps: float | None = None
    # a webcam's sound for an output video: a microphone's name (streamfer.sources.microphone)
    microphone: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse a setting that would run wrong, not fail (the command line checks its
        options itself, with their names): one :class:`ValueError` naming the field."""
        def whole(least):
            return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= least

        def optional(check):
            return lambda v: v is None or check(v)

        rules = {  # field: (the check its value passes, what it must be)
            "detector": (lambda v: v in ("both", "short", "full"), "both, short or full"),
            "min_face": (whole(0), "a whole number of pixels ≥ 0"),
            "min_score": (lambda v: 0 <= v <= 1, "a confidence from 0 to 1"),
            "tiles": (optional(whole(0)),
                      "None (the default sweep), 0 (off) or a whole number of frames ≥ 1"),
            "every": (whole(1), "a whole number of frames ≥ 1"),
            "max_fps": (optional(lambda v: v > 0), "None or a rate > 0"),
            "start": (lambda v: v >= 0, "seconds ≥ 0"),
            "end": (optional(lambda v: v > self.start), "None or seconds after start"),
            "smoothing": (lambda v: isinstance(v, dict) and len(v) == 1 and (
                "ema" in v and 0 < v["ema"] <= 1 or whole(1)(v.get("window"))),
                "{'ema': alpha} with alpha in (0, 1], or {'window': N} with N ≥ 1 frames"),
            "batch_size": (whole(1), "a whole number ≥ 1"),
            "threads": (optional(whole(1)), "None (every core) or a whole number ≥ 1"),
            "mirror": (lambda v: v in ("auto", "alternate", "average"),
                       "auto, alternate or average"),
            "face_cadence": (whole(1), "a whole number ≥ 1"),
            "lookahead": (whole(1), "a whole number of frames ≥ 1"),
            "reconnect": (lambda v: v >= 0, "seconds ≥ 0"),
            "camera_size": (optional(lambda v: len(v) == 2 and all(whole(1)(n) for n in v)),
                            "None or (width, height), whole numbers of pixels ≥ 1"),
            "camera_fps": (optional(lambda v: v > 0), "None or a rate > 0"),
            "microphone": (optional(lambda v: isinstance(v, str) and v.strip() != ""),
                           "None or a device's name (\"default\")"),
        }
        for name, (check, wanted) in rules.items():
            value = getattr(self, name)
            try:
                ok = check(value)
            except TypeError:  # a text where a number goes
                ok = False
            if not ok:
                raise ValueError(f"Settings.{name} must be {wanted}, not {value!r}")
        if self.thresholds is not None:
            check_threshold(self.thresholds)


@dataclass
class RunStats:
    source: str
    frames: int = 0
    processed: int = 0
    faces: int = 0
    seconds: float = 0.0
    status: str = "ok"
    dropped: int = 0  # live sources: stale frames passed over to show the newest
    warnings: list[str] = field(default_factory=list)  # what the run said of this input

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def speed(self) -> str | None:
        """Frames per second as said to the user; None for one frame (a photo's says nothing)."""
        return f"{self.fps:.1f}" if self.frames > 1 else None


class Pipeline:
    """Holds the detector and the model, loaded once, for any number of sources."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._batch = None  # (progress, its task) of the folder run under way: one bar for all
        with ExitStack() as stack:  # closed here if anything below fails
            # the detector first: a missing detector file fails in a second, before a
            # first use of the model's fast backend spends its one-time conversion
            self.detector = stack.enter_context(FaceDetector(
                settings.detector, settings.detector_path, settings.min_score,
                settings.min_face, tiles=settings.tiles))
            self.classifier = Classifier(settings.model_path, settings.batch_size,
                                         backend=settings.backend, device=settings.device,
                                         flip_average=settings.flip_average,
                                         threads=settings.threads)
            self.thresholds = self.classifier.thresholds_with(settings.thresholds)
            self.renderer = Renderer(self.classifier.labels)
            self._stack = stack.pop_all()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, spec: str, output: str | Path | None = None, csv_path: str | Path | None = None,
            show: bool = False, name: str | None = None, whole_only: bool = False,
            selfie_view: bool | None = None, thumbnails: Thumbnails | None = None) -> RunStats:
        """Process one source; every sink is finalised however the run ends. ``output``: the
        annotated video's file, or a link it is sent to as it is made (``rtmp://…``,
        ``tcp://…``, ``udp://…``, ``-`` for standard output; :class:`~streamfer.sinks.
        StreamSink`). ``show``: a live
        window (:class:`~streamfer.sinks.Window`), the picture in it as a mirror shows it
        where ``selfie_view`` (default: for a webcam, as camera apps show you yourself; m
        flips it; the outputs are never mirrored). ``thumbnails``: where given, each face's
        thumbnail is kept in it as the run goes (:class:`streamfer.report.Thumbnails`), for
        the report of a source that cannot be read again. ``name`` is what
        the CSV's ``source`` column and the stats call it (default: the file's name);
        ``whole_only`` (folder runs): the video and the CSV appear under their names only if
        the input ran to its end; interrupted, failed or killed, they stay hidden part files
        (:func:`streamfer.files.part_path`), so nothing unfinished looks finished.

        Decoding, detection and the rest (track, classify, smooth, render, write) run in three
        threads joined by small bounded queues, so they overlap while frame order is kept
        and memory stays flat. A Ctrl-C is taken between frames: every frame that has a CSV
        row is in the video too, both finalised, then :class:`KeyboardInterrupt` is raised.
        """
        s = self.settings
        check_distinct({"output": output, "csv_path": csv_path})
        table = None
        try:
            with ExitStack() as stack:
                # its warnings, kept with its stats (a folder's summary shows them): every
                # one said until the last output is closed (the audio muxed in) included
                heard = stack.enter_context(_warnings_heard())
                stop, threads = threading.Event(), []
                # From here a first Ctrl-C only sets ``stop`` (opening the input and the outputs
                # included: a KeyboardInterrupt raised inside a library can be swallowed there),
                # and it is raised once every sink below is finalised.
                stack.enter_context(deferred_interrupt(stop))
                source = stack.enter_context(open_source(
                    spec, s.reconnect, s.start, s.end,
                    sound=bool(output) and ("live" if is_stream(output) else True),
                    camera=(s.camera_size, s.camera_fps), microphone=s.microphone))
                stats = RunStats(name or source.name, warnings=heard)
                if output and source.photo and Path(output).suffix.lower() in PHOTOS:
                    video = stack.enter_context(PhotoSink(output, (spec,)))  # its annotated copy
                elif is_stream(output):  # sent as it is made: a file's at its own pace
                    video = stack.enter_context(StreamSink(
                        str(output), source.fps, source.size, fmt=source.format,
                        paced=not source.live and output != STDOUT  # a pipe: its reader;
                        and not is_playlist(output),  # a playlist: as fast as it is made
                        reconnect=s.reconnect,
                        audio_from=source.audio_from))
                else:
                    video = stack.enter_context(VideoSink(
                        output, source.fps, source.size, fmt=source.format,
                        audio_from=source.audio_from,
                        whole_only=whole_only,
                        start=0.0 if source.live else s.start)) \
                        if output else None
                table = stack.enter_context(CSVSink(csv_path, s.csv_empty_frames, whole_only,
                                                    wall_time=bool(source.live))) \
                    if csv_path else None
                if whole_only and video and table:  # the video finalised first: where that
                    stack.callback(_video_first, video, table)  # fails, the CSV stays a part
                window = stack.enter_context(Window(
                    source.size, paced=not source.live, pixel_aspect=source.format.pixel_aspect,
                    mirrored=is_webcam(str(spec)) if selfie_view is None else selfie_view,
                    named=stats.source)) \
                    if show else None
                if self._batch:  # a folder run's input: its bar under the folder's, then gone
                    progress = self._batch[0]
                    task = progress.add_task(stats.source, total=source.frames_to_read,
                                             fps=0.0)
                    stack.callback(progress.remove_task, task)
                else:
                    progress = stack.enter_context(progress_bar(s.progress and not show))
                    task = progress.add_task(stats.source, total=source.frames_to_read,
                                             fps=0.0)
                stack.callback(_stop_threads, stop, threads)  # first on exit, before the source
                start = time.perf_counter()
                for frame in self._results(source, stop, threads, stats):
                    aspect = source.format.pixel_aspect
                    image = self.renderer.annotate(frame, aspect) \
                        if video or window and not window.mirrored else None
                    if video:
                        video.write(image, frame.time_s)
                    if table and frame.analysed:
                        table.write(frame)
                    if thumbnails is not None and frame.analysed:
                        thumbnails.add(frame)
                    stats.frames += 1
                    stats.seconds = time.perf_counter() - start
                    progress.update(task, advance=1, fps=stats.fps)
                    if self._batch:
                        progress.update(self._batch[1], advance=1, fps=stats.fps)
                    if window and not window.show(self.renderer.annotate(
                            frame, aspect, mirrored=True) if window.mirrored else image,
                            frame.time_s):
                        stats.status = "stopped"
                        return stats
                if not stop.is_set():  # the input ran to its end: the outputs are whole
                    if not source.count_is_exact:  # the bar ends full (an estimate was off)
                        progress.update(task, total=stats.frames)
                    for sink in (video, table):
                        if sink:
                            sink.finish()
                    if window and source.photo:  # on screen until q, Esc or closed, written
                        for sink in (video, table):
                            if sink:
                                sink.close()
                        window.hold(stop)
        except (SinkError, SourceError) as exc:  # a failure mid-run: a CSV left under its
            if table is not None and table.cut_short and str(table.path) not in str(exc):
                raise type(exc)(f"{exc}; {table.kept()}") from None  # name says so
            raise
        return stats

    def analyze(self, spec: str | int | Path | Source) -> Iterator[Frame]:
        """Every frame of ``spec`` (as :func:`streamfer.sources.open_source` takes it, or a
        source it opened: the caller closes that one) with its faces: box, id, raw and
        smoothed scores, labels; nothing is written. Stopping the iteration early stops the
        stage threads and closes the source it opened.

        Example:
            >>> with Pipeline(Settings(progress=False)) as pipeline:
            ...     faces = [len(f.faces) for f in pipeline.analyze("samples/astronaut.mp4")]
            >>> faces[:3]
            [1, 1, 1]
        """
        with ExitStack() as stack:
            stop, threads = threading.Event(), []
            s = self.settings
            source = spec if isinstance(spec, Source) else stack.enter_context(
                open_source(spec, s.reconnect, s.start, s.end,
                            camera=(s.camera_size, s.camera_fps)))
            stack.callback(_stop_threads, stop, threads)
            yield from self._results(source, stop, threads, RunStats(source.name))

    def _results(self, source, stop: threading.Event, threads: list,
                 stats: RunStats) -> Iterator[Frame]:
        """The source's frames, each once every stage has seen it (decoding and detection
        run in their own threads, added to ``threads``; setting ``stop`` ends them); counts
        analysed frames and faces into ``stats``."""
        s = self.settings
        tracker, views = Tracker(), {}
        self.detector.reset(source.format.pixel_aspect)
        if source.note:  # which of its video tracks is read, how far a playlist is
            log.warning("%s", source.note)
        if (sar := source.format.sar) and not source.format.pixel_aspect:
            log.warning("%s: its pixel aspect ratio %d:%d is none a picture is made with: its "
                        "faces are read in its stored pixels", source.name, sar.numerator,
                        sar.denominator)
        smoother = Smoother(self.thresholds, forget_after=tracker.max_missed + 1,
                            labels=self.classifier.labels, **s.smoothing)
        # Live sources keep the newest frame (stale ones are passed over and counted), so
        # the overlay shows now however slow the model; files keep every frame.
        captured = _newest(source, stop, threads, stats,
                           due=lambda frame: source.origin + frame.time_s) if source.live \
            else _background(source, stop, threads)
        frames = _background(map(self._detect_when_due(), captured), stop, threads,
                             size=1 if source.live else 4, hand_over=source.live)
        last, scores = None, {}
        alternate = self.classifier.flip_average and (
            s.mirror == "alternate" or s.mirror == "auto" and source.frame_count != 1)
        # Files: the faces of a few consecutive frames go through the model as one batch
        # (several times the throughput of batch 1); live sources: every frame at once.
        for chunk in _chunks(frames, 1 if source.live else max(1, s.lookahead)):
            analysed = [frame for frame in chunk if frame.analysed]
            for frame in analysed:
                tracker.update(frame)
            self._classify(analysed, scores, tracker.live_ids, stats.processed,
                           views if alternate else None)
            for frame in chunk:
                frame.source = stats.source
                if frame.analysed:
                    smoother.update(frame)
                    last = frame
                    stats.processed += 1
                    stats.faces += len(frame.faces)
                elif last is not None:  # carry the last results over for the overlay
                    frame.faces = [replace(f, classified=False) for f in last.faces]
                yield frame

    def _detect_when_due(self):
        """Detect on every ``every``-th frame and, with ``max_fps``, on the first frame of each
        slot of a fixed grid of 1/max_fps s of the input's time (so a source whose frames do
        not fall on the grid is still analysed at max_fps, not below it)."""
        every, step, last_slot = max(1, self.settings.every), 0.0, [None]
        if self.settings.max_fps:
            step = 1.0 / self.settings.max_fps

        def detect(frame: Frame) -> Frame:
            slot = int((frame.time_s + 1e-6) // step) if step else frame.index
            if frame.index % every == 0 and slot != last_slot[0]:
                last_slot[0] = slot
                frame.analysed = True
                self.detector.detect(frame)
            return frame

        return detect

    def _classify(self, frames: list[Frame], cache: dict, live_ids: set[int],
                  analysed_before: int, views: dict | None = None) -> None:
        """Classify the faces of ``frames`` (consecutive analysed frames, tracked; the run
        analysed ``analysed_before`` frames before them) in one batch; past one face in a
        frame, each face only every ``face_cadence`` analysed frames (in turn, counted in
        analysed frames, so that ``--every`` cannot starve a face), the others reuse their
        last scores. ``views``: each face scored one way, as it is and mirrored in turn
        (the count of its classifications so far, by id; updated here)."""
        k = max(1, self.settings.face_cadence)
        known, due = set(cache), []
        for n, frame in enumerate(frames, start=analysed_before):
            for f in frame.faces:
                if len(frame.faces) == 1 or f.face_id not in known or (n + f.face_id) % k == 0:
                    due.append(f)
                    known.add(f.face_id)
        mirrored = None
        if views is not None:
            mirrored = []
            for f in due:
                n = views.get(f.face_id, 0)
                mirrored.append(n % 2 == 1)
                views[f.face_id] = n + 1
        self.classifier.classify(due, mirrored)
        for frame in frames:
            for face in frame.faces:
                if face.classified:
                    cache[face.face_id] = face.scores
                else:
                    face.scores = cache[face.face_id]
                face.crop = None  # crops are not needed past the classifier
        for face_id in set(cache) - live_ids:
            del cache[face_id]
            if views is not None:
                views.pop(face_id, None)

    def run_folder(self, folder: str | Path, output_dir: str | Path | None,
                   csv_dir: str | Path | None, force: bool = False) -> list[RunStats]:
        """Every video and photo below ``folder`` (see :func:`plan_folder`); inputs finished by an
        earlier run with the same settings are skipped (see :func:`made_with`), and so are
        those another run into the same folder has under way (see :meth:`FolderRun.claim`);
        a file that fails is reported and the batch goes on."""
        batch = FolderRun.plan(folder, output_dir, csv_dir, self.settings, force)
        results = {key: RunStats(key, status=said) for key, said in batch.before().items()}
        stop = threading.Event()
        # One bar for the folder (the frames of the inputs to do, counted from their
        # containers in the background while the first runs) and, beneath it, one for the
        # input under way (see :meth:`run`), gone when it ends: two lines for any batch.
        with progress_bar(self.settings.progress) as progress:
            name = f"{Path(folder).name or folder}/"
            overall = progress.add_task(name, total=None, fps=0.0)
            self._batch = (progress, overall)
            counter = count_frames(batch.todo, self.settings, stop=stop, on_total=lambda n:
                                   progress.update(overall, total=n)) \
                if self.settings.progress and batch.todo else None
            try:
                for n, job in enumerate(batch.todo):
                    if not batch.claim(job):  # another run into this folder has it
                        results[job.key] = RunStats(job.key, status=ELSEWHERE)
                        continue
                    progress.update(overall, description=f"{name} input {n + 1} of "
                                                         f"{len(batch.todo)}")
                    try:
                        stats = self.run(str(job.path), job.output, job.table, name=job.key,
                                         whole_only=True)
                    except KeyboardInterrupt:  # its outputs stay part files; the rest wait
                        results[job.key] = RunStats(job.key, status=INTERRUPTED)
                        results |= {j.key: RunStats(j.key, status=NOT_STARTED)
                                    for j in batch.todo[n + 1:]}
                        break
                    except Exception as exc:  # its own failure, whatever raised it: go on
                        log.warning("%s: %s", job.key, failure(exc))
                        results[job.key] = RunStats(job.key, status=outcome(exc))
                        continue
                    else:
                        results[job.key] = stats
                        batch.finished(job)  # recorded, then let go
                    finally:
                        batch.release(job)
                else:  # every input done: the bar ends full (the containers' counts estimate)
                    stop.set()
                    if counter:
                        counter.join()
                    read = next(t.completed for t in progress.tasks if t.id == overall)
                    progress.update(overall, total=read)
            finally:
                stop.set()
                self._batch = None
                batch.close()
        return [results[job.key] for job in batch.jobs]


HEARD_MAX = 1000  # the warnings a run's stats keep


class _Heard(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # not a folder's frame counter's (it opens the other inputs), nor past the first
        # thousand (a live stream's drops, days long: memory stays flat)
        if record.threadName != COUNTER_THREAD and len(self.said) < HEARD_MAX:
            self.said.append(record.getMessage())


@contextmanager
def _warnings_heard() -> Iterator[list[str]]:
    """The warnings the package says while the ``with`` lasts, as a list that fills."""
    heard = _Heard()
    logging.getLogger("streamfer").addHandler(heard)
    try:
        yield heard.said
    finally:
        logging.getLogger("streamfer").removeHandler(heard)


def _video_first(video, table) -> None:
    """A folder run's input: its video closed (finalised) before its CSV, and the CSV left
    its part file where the video fails (a full disk while the audio is muxed in), so an
    input's outputs appear together or not at all."""
    try:
        video.close()
    except BaseException:
        table.whole = False
        raise


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def outcome(exc: Exception) -> str:
    """A folder input's status when its run raised ``exc``: out of range (a file shorter
    than ``--start``: nothing to do, not a failure) or failed, with the cause."""
    return f"out of range: {failure(exc)}" if isinstance(exc, OutOfRange) \
        else f"failed: {failure(exc)}"


def failure(exc: Exception) -> str:
    """One line for a file's failure: our own errors as they say, any other with its type
    (``cv2.error``, a ``ValueError`` from a library) so the cause can be told."""
    ours = (SourceError, SinkError, OSError)
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if isinstance(exc, ours) and text else f"{type(exc).__name__}: {text}"


def _stop_threads(stop: threading.Event, threads: list[threading.Thread]) -> None:
    """Ask every stage thread to stop and wait briefly: they poll ``stop`` every 50 ms, so
    they end at once unless stuck in native code (a stalled stream read), and they are
    daemons that hold nothing the caller finalises (the source closes itself, see
    :meth:`streamfer.sources.Source.close`)."""
    stop.set()
    deadline = time.monotonic() + 2.0
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _chunks(iterable, size: int):
    """Lists of up to ``size`` consecutive items."""
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _background(iterable, stop: threading.Event, threads: list, size: int = 4,
                hand_over: bool = False):
    """Iterate ``iterable`` in a daemon thread (added to ``threads``) through a queue of
    ``size`` items; errors are raised in the consumer. Both sides poll ``stop``, so setting
    it ends producer and consumer promptly whichever is waiting on the other; a consumer
    that gives up early sets it. ``hand_over``: the producer asks ``iterable`` for its next
    item only once the consumer has taken the last one (a live source's detection then
    starts on the newest frame while the model works on the one before, instead of holding
    a frame that grows stale in the queue)."""
    items: queue.Queue = queue.Queue(maxsize=size)
    taken = threading.Event()
    tick = 0.05

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=tick)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in iterable:
                taken.clear()
                if not put(item):
                    return
                while hand_over and not taken.wait(tick):
                    if stop.is_set():
                        return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failure(exc))
        finally:
            close = getattr(iterable, "close", None)  # a generator: run its cleanup here
            if close is not None:
                close()

    thread = threading.Thread(target=work, daemon=True)
    threads.append(thread)
    thread.start()
    finished = False
    try:
        while True:
            try:
                item = items.get(timeout=tick)
            except queue.Empty:
                if stop.is_set() or not thread.is_alive() and items.empty():
                    return  # stopped, or the producer ended without a word
                continue
            taken.set()
            if item is _END:
                finished = True
                return
            if isinstance(item, _Failure):  # the producer has ended: the stages after
                finished = True  # this one must not be stopped, or its failure is lost
                raise item.exc
            yield item
    finally:
        if not finished:  # the consumer gave up early: let the producer go
            stop.set()


def _newest(iterable, stop: threading.Event, threads: list, stats: RunStats,
            due=lambda item: 0.0, hold_bytes: int = 256 << 20):
    """Iterate ``iterable`` (a live source's frames) in a daemon thread that never waits for
    the consumer while it keeps up: each item is given at its ``due`` time (``time.monotonic``;
    a stream's burst is given at its frames' own times, see
    :class:`~streamfer.sources.streams.StreamClock`), and of those due, the newest alone —
    each one passed over counts in ``stats.dropped``. Items not due yet are held, up to
    ``hold_bytes`` of their images (then the producer waits: a burst larger than that is
    read as it is given). Errors and the end come after the last item;
    ``stop`` ends both sides, as in :func:`_background`."""
    held: list = []
    end: list = []
    ready = threading.Condition()

    def size(item) -> int:
        return getattr(getattr(item, "image", None), "nbytes", 0)

    def work() -> None:
        last = _END
        try:
            for item in iterable:
                with ready:
                    if due(item) <= time.monotonic():  # the ones before it are stale
                        stats.dropped += len(held)
                        held.clear()
                    held.append(item)
                    ready.notify()
                    while len(held) > 2 and sum(map(size, held)) > hold_bytes \
                            and not stop.is_set():
                        ready.wait(0.05)
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            last = _Failure(exc)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
            with ready:
                stats.dropped += getattr(iterable, "passed_over", 0)
                end.append(last)
                ready.notify()

    thread = threading.Thread(target=work, daemon=True)
    threads.append(thread)
    thread.start()
    try:
        while True:
            with ready:
                item = None
                while not stop.is_set():
                    now = time.monotonic()
                    ripe = sum(1 for held_item in held if due(held_item) <= now)  # a prefix
                    if ripe:
                        stats.dropped += ripe - 1
                        item = held[ripe - 1]
                        del held[:ripe]
                        ready.notify()
                        break
                    if end and not held:
                        break
                    ready.wait(min(0.05, due(held[0]) - now) if held else 0.05)
                if item is None:
                    if end and isinstance(end[0], _Failure):
                        raise end[0].exc
                    return
            yield item
    finally:
        if not end:  # the consumer gave up early: let the producer go
            stop.set()


def progress_bar(enabled: bool) -> Progress:
    """On standard error, with the run's other messages: standard output is for data."""
    return Progress(TextColumn("{task.description}", markup=False),  # a name as it is
                    BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]:.1f} fps"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    disable=not enabled,
                    transient=False, console=Console(stderr=True))
