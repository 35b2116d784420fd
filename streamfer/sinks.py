"""Sinks: the annotated video (a photo's annotated copy; or sent live as it is made, to a
server or standard output), the frame-level CSV and the live window.

Each is a context manager that finalises what it holds on exit, errors and Ctrl-C
included: the video is flushed, closed and renamed into place (the source's audio muxed in),
CSV rows are flushed as they are written, the window is destroyed.

Example:
    >>> from streamfer.sinks import CSVSink, VideoSink
    >>> with VideoSink("out.mp4", fps=30, size=(640, 480), audio_from="in.mp4") as video, \\
    ...         CSVSink("out.csv") as table:                           # doctest: +SKIP
    ...     video.write(frame_image, time_s=frame.time_s)
    ...     table.write(frame)
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import io
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamfer.files import cannot_write, part_path, unwritable, write_atomically
from streamfer.frame import Frame, VideoFormat
from streamfer.labels import EMOTIONS
from streamfer.sources import IMAGE_EXTS, VIDEO_EXTS, photo_metadata

log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """An output cannot be written or shown."""


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


STDOUT = "-"  # a CSV path that means standard output (``--csv -``)


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


# Output containers and the codec each is written with (4:2:0, what every player plays).
CONTAINERS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264",
              ".avi": "libx264", ".webm": "libvpx-vp9"}
_TIME_BASE = Fraction(1, 90000)
_MATRIX = {1: "ITU709", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}


# A photo's annotated copy: these formats (OpenCV writes them).
PHOTOS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# FFmpeg's last line naming one of these (a full disk while the audio is muxed in) is a
# write that failed, not audio that cannot be carried over
_DISK_REFUSALS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


# What a file's name says it holds, for the outputs that are not videos (a CSV, the report's
# page, its JSON): a name another format's programs would open is refused, not written.
_HELD_AS = ({suffix: "a video" for suffix in (*CONTAINERS, *VIDEO_EXTS)}
            | {suffix: "a photo" for suffix in (*PHOTOS, *IMAGE_EXTS)}
            | {".html": "an HTML page", ".htm": "an HTML page", ".csv": "a CSV",
               ".json": "JSON"})
_NAMED = {"csv": (".csv", "a CSV"), "json": (".json", "JSON"), "page": (".html", "an HTML page")}


def check_name(path: str | Path, holds: str) -> None:
    """``path``'s name says what it will hold: ``holds`` is ``"csv"``, ``"json"``, ``"page"``
    (the report's HTML page: .html or .htm) or ``"pages"`` (a folder of them, index.html
    in it). A CSV named ``frames.mp4``, a report named ``report.pdf`` or a folder of pages
    named ``pages.html`` is a mistake a file manager would repeat: refused before any work."""
    path = Path(path)
    if holds == "pages":
        if path.suffix.lower() in _HELD_AS or path.is_file():
            raise SinkError(f"the report of a folder is a folder of pages (index.html in it): "
                            f"name a folder, not {path.name!r}")
        return
    suffix, what = _NAMED[holds]
    held_as = _HELD_AS.get(path.suffix.lower())
    if holds == "page" and path.suffix.lower() not in (".html", ".htm"):
        raise SinkError(f"cannot write the report as {path.name!r}: it is an HTML page; "
                        f"name it {path.stem or path.name}.html")
    if held_as and held_as != what:
        raise SinkError(f"cannot write {what} as {path.name!r}: it would be taken for "
                        f"{held_as}; name it {path.stem}{suffix}")


class Inputs:
    """The inputs of a run, to tell at once whether an output is one of them: the same path,
    or the same file under another name (a link). Made once for a folder's thousands of
    outputs (each compared with every input took minutes for 2,000 files)."""

    def __init__(self, paths=()) -> None:
        self._paths, self._files = set(), set()
        for source in paths:
            source = Path(source)
            self._paths.add(source.resolve())
            try:
                st = source.stat()
            except OSError:  # a URL, a webcam's index, a file not there
                continue
            self._files.add((st.st_dev, st.st_ino))

    def __contains__(self, path) -> bool:
        path = Path(path)
        if path.resolve() in self._paths:
            return True
        try:
            st = path.stat()
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self._files


def check_output(path: str | Path, inputs=(), video: bool = True, photo: bool = False) -> Path:
    """``path`` as an output we can write, checked before any frame is read: in a folder
    we may write, not one of ``inputs`` (the same file under any name; an :class:`Inputs`
    where many outputs are checked) and, for a ``video``, a known container — or, where the
    source is a ``photo``, a photo format too (its annotated copy)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if video and suffix in PHOTOS and not photo:
        raise SinkError(f"cannot write {path.name!r}: an annotated {suffix} is for a photo "
                        f"source; for a video name it .mp4, .mkv, .mov, .m4v, .avi or .webm")
    if video and suffix not in CONTAINERS and suffix not in PHOTOS:
        raise SinkError(f"cannot write video {path.name!r}: name it .mp4 (H.264), .mkv, .mov, "
                        f".m4v, .avi (H.264) or .webm (VP9)"
                        + (f"; a photo {', '.join(PHOTOS)}" if photo else ""))
    if path in (inputs if isinstance(inputs, Inputs) else Inputs(inputs)):
        raise SinkError(f"the output {path} is the input; choose another name")
    why = unwritable(path)
    if why:
        raise SinkError(cannot_write(path, why))
    return path


def check_distinct(outputs: dict[str, str | Path | None]) -> None:
    """The outputs of one run (``{what it is called: path}``, None where not asked for) are
    files of their own: two named alike would leave only the one finalised last."""
    seen: dict[Path, str] = {}
    for name, path in outputs.items():
        if not path:
            continue
        key = Path(path).resolve()
        if key in seen:
            raise SinkError(f"{seen[key]} and {name} name the same file ({path}); give each "
                            "its own")
        seen[key] = name


class VideoSink:
    """The annotated video: each frame at its own timestamp (variable frame rate kept), the
    input's size (odd sizes padded by one pixel to the even size 4:2:0 needs), sample aspect
    ratio and colour tags, the audio of ``audio_from`` carried over, with its subtitles,
    chapters and tags (a file, or what keeps the sound of a pipe: an object whose ``take()``
    gives its file and its delay after the first picture, or None; see
    :mod:`streamfer.stdin`); encoded in-process by
    FFmpeg's libraries (PyAV). ``start``: the input's time that becomes the video's 0 (a
    part of the input, from ``--start``: its frames and its audio from there).

    The file appears under its name only when finalised, which ``close`` always does: an
    interrupted run leaves a playable video of every frame written so far, and a run that
    wrote no frame leaves no file. With ``whole_only`` (folder runs), it appears under its name
    only once :meth:`finish` said the input ran to its end; otherwise it stays its part file.
    A failure of the encoder leaves the part file as it is and is raised as one
    :class:`SinkError` (by the next :meth:`write`, or by :meth:`close`).

    Colour conversion and encoding run in a thread of their own, fed by a short queue
    (``close`` waits for every frame in it), so they overlap the rest of the pipeline. x264's
    preset is ``veryfast``, and ``superfast`` for frames larger than 1080p, where
    ``veryfast`` took 102 ms a 4K frame on 2 cores and ``superfast`` 56 ms (files ~2.4× larger).
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int],
                 audio_from=None, fmt: VideoFormat | None = None,
                 quality: int = 23, whole_only: bool = False, start: float = 0.0) -> None:
        import av

        self.path = check_output(path, (audio_from,) if isinstance(audio_from, (str, Path))
                                 else ())
        self.size, self.fps, self.frames = tuple(size), fps, 0
        self._audio_from, self._fmt = audio_from, fmt or VideoFormat()
        self._start = start  # the input's time of the video's 0 (a part of it: --start)
        self._pad = (size[1] % 2, size[0] % 2)
        self.whole = not whole_only
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._part = part_path(self.path)
        codec = CONTAINERS[self.path.suffix.lower()]
        try:
            self._container = av.open(str(self._part), "w")
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(cannot_write(self.path, exc)) from None
        preset = "superfast" if size[0] * size[1] > 1920 * 1088 else "veryfast"
        self._begin(codec, {"crf": str(quality), "preset": preset} if codec == "libx264" else
                    {"crf": str(quality + 8), "b": "0", "deadline": "realtime", "cpu-used": "8"})

    def _begin(self, codec: str, options: dict, stream=None) -> None:
        """The video stream in ``self._container`` (:meth:`_add_video`, or ``stream`` where
        it was added) and the encoding thread."""
        self._stream = stream or self._add_video(self._container, codec, options)
        self._last_pts = None
        self._reformat = {"format": "yuv420p"}
        if self._fmt.colorspace in _MATRIX:  # the inverse of the matrix the decoder used
            self._reformat["dst_colorspace"] = _MATRIX[self._fmt.colorspace]
        if self._fmt.color_range == 2:
            self._reformat["dst_color_range"] = "JPEG"
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._encode_all, name="encode", daemon=True)
        self._thread.start()

    def _add_video(self, container, codec: str, options: dict):
        """A video stream added to ``container``: ``codec`` with its ``options``, the size,
        pixels and colour of the input."""
        import av

        size, fps = self.size, self.fps
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001000))
        stream.width, stream.height = size[0] + self._pad[1], size[1] + self._pad[0]
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = _TIME_BASE
        stream.options = options
        cc = stream.codec_context
        if self._fmt.sar:
            cc.sample_aspect_ratio = self._fmt.sar
        if self._fmt.field_order and codec == "libx264":  # interlaced as it came: a player
            cc.flags |= av.codec.context.Flags.interlaced_dct | \
                av.codec.context.Flags.interlaced_me  # deinterlaces it as it did the input
            top = self._fmt.field_order in (2, 4)  # AV_FIELD_TT, AV_FIELD_TB
            stream.options = {**stream.options, "x264-params": "tff=1" if top else "bff=1"}
            cc.field_order = self._fmt.field_order
        for tag in ("color_range", "colorspace", "color_primaries", "color_trc"):
            if getattr(self._fmt, tag) is not None:
                setattr(cc, tag, getattr(self._fmt, tag))
        return stream

    def _cannot(self, why) -> str:
        """What a failure of this output is called (see :func:`cannot_write`)."""
        return cannot_write(self.path, why)

    def write(self, image: np.ndarray, time_s: float | None = None) -> None:
        """Add a BGR frame shown from ``time_s`` on (default: one frame after the last)."""
        import cv2

        if self._failed is not None:
            raise SinkError(self._cannot(self._failed))
        if image.shape[1::-1] != self.size:
            raise SinkError(f"frame size {image.shape[1::-1]} differs from the video's {self.size}")
        if any(self._pad):
            image = cv2.copyMakeBorder(image, 0, self._pad[0], 0, self._pad[1],
                                       cv2.BORDER_REPLICATE)
        step = 1 / (self.fps * _TIME_BASE)
        pts = None if time_s is None else round(max(0.0, time_s - self._start) / _TIME_BASE)
        if self._last_pts is not None and (pts is None or pts <= self._last_pts):
            pts = self._last_pts + max(1, round(step)) if pts is None else self._last_pts + 1
        pts = 0 if pts is None else pts
        item = (np.ascontiguousarray(image), pts)
        while True:  # never wait on an encoder that has stopped
            if self._failed is not None or not self._thread.is_alive():
                raise SinkError(self._cannot(self._failed or "the encoder stopped"))
            try:
                self._queue.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        self._last_pts = pts
        self.frames += 1

    def _encode_all(self) -> None:
        """The encoding thread: convert and encode queued frames until the ``None`` that
        ``close`` sends; after a failure, keep taking frames (so nobody waits) and drop them."""
        while (item := self._queue.get()) is not None:
            if self._failed is not None:
                continue
            image, pts = item
            try:
                self._container.mux(self._stream.encode(self._picture(image, pts)))
            except Exception as exc:  # any failure: the run ends with it, nobody waits
                self._failed = exc

    def _picture(self, image: np.ndarray, pts: int):
        """``image`` (BGR) as the encoder takes it, at ``pts``."""
        import av

        frame = av.VideoFrame(image.shape[1], image.shape[0], "bgr24")
        if frame.planes[0].line_size == image.shape[1] * 3:
            frame.planes[0].update(image)  # one copy, where from_ndarray made two
        else:
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame = frame.reformat(**self._reformat)
        frame.pts, frame.time_base = pts, _TIME_BASE
        return frame

    def finish(self) -> None:
        """Every frame is written: :meth:`close` puts the video under its name."""
        self.whole = True

    def close(self) -> None:
        """Encode what is queued, flush the encoder and finalise; rename into place (with
        the audio muxed in). After a failure of the encoding thread, what it encoded stays
        the part file and the failure is raised here."""
        container = getattr(self, "_container", None)
        if container is None:
            return
        thread = getattr(self, "_thread", None)
        try:
            if thread is not None and thread.is_alive():
                while thread.is_alive():  # the thread takes every item, even after a failure
                    try:
                        self._queue.put(None, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                thread.join()
            if self.frames and self._failed is None:
                try:
                    container.mux(self._stream.encode(None))
                except Exception as exc:
                    self._failed = exc
        finally:
            self._container = None
            try:
                container.close()
            except Exception as exc:
                self._failed = self._failed or exc
        if self._failed is not None:
            kept = self.frames and self._part.is_file() and self._part.stat().st_size
            if not kept:  # nothing of it on the disk (refused at its first write)
                self._part.unlink(missing_ok=True)
            raise SinkError(cannot_write(self.path, self._failed)
                            + (f" (what was encoded is left as {self._part.name})" if kept
                               else ""))
        if not self.frames:
            self._part.unlink(missing_ok=True)
        elif self.whole:  # else it stays its part file (the caller says so)
            end = (self._last_pts * _TIME_BASE) + Fraction(1) / Fraction(self.fps)
            sound = self._audio_from
            if hasattr(sound, "take"):  # a pipe's, kept as it came: (file, delay) or None
                taken = sound.take()
                if taken and (carried := _carried(taken[0])) is not None and carried.any:
                    self._carry_over(float(end), taken[0], carried, delay=taken[1])
                    return
            elif sound and (carried := _carried(sound)) is not None and carried.any:
                # our video's 0 is the input's first frame; FFmpeg reads the audio from the
                # input's start, before it where the picture starts late (0.84 s late)
                self._carry_over(float(end), sound, carried, skip=self._start + carried.lead)
                return
            os.replace(self._part, self.path)

    def _carry_over(self, seconds: float, source, carried: _Carried, skip: float = 0.0,
                    delay: float = 0.0) -> None:
        """What the output keeps of ``source`` besides its picture, from ``skip`` seconds of
        it, or ``delay`` seconds after the video's start: every audio track (a film's
        languages, an interview's microphones) and every subtitle track the output's
        container holds, each with its language and default flag as it came; its chapters
        and its tags (title, recording date, place). Where one of the tracks cannot be
        carried over, the rest are, and that is said."""
        suffix = self.path.suffix.lower()
        subtitles, left = carried.subtitles_for(suffix)
        if left:
            log.warning("%s: %s", self.path.name, left)
        audio = [f"1:a:{i}" for i in range(carried.audio)]
        tries = [(audio, subtitles, None)]
        if subtitles:
            tries.append((audio, [], "its subtitles not carried over ({})"))
        if len(audio) > 1:
            tries.append((audio[:1], [], "its first audio track alone carried over"
                          + (", and no subtitles" if subtitles else "") + " (the others: {})"))
        why = ""
        for tracks, subs, dropped in tries:
            code, said = self._mux(seconds, source, tracks, skip, delay, subs)
            if code == 0:
                if dropped:  # FFmpeg's first line of the full try says why
                    log.warning("%s: %s", self.path.name, dropped.format(why))
                self._part.unlink(missing_ok=True)
                return
            if (refused := self._refused(code, said)) is not None:  # the video is not whole
                raise SinkError(cannot_write(self.path, OSError(refused, os.strerror(refused)))
                                + f" (what was encoded is left as {self._part.name})")
            if dropped is None:
                why = said[0]
        # keep the video even if nothing else can be carried over; FFmpeg's first line
        # says why ("Unsupported channel layout"), its last only that nothing was written
        log.warning("%s: %s not carried over: %s", self.path.name,
                    ("audio and subtitles" if subtitles else "audio") if audio else
                    "subtitles" if subtitles else "chapters and tags", why)
        os.replace(self._part, self.path)

    def _mux(self, seconds: float, source, audio: list[str], skip: float, delay: float,
             subtitles: list[tuple[str, str]]) -> tuple[int, list[str]]:
        """FFmpeg's exit status and lines muxing the ``audio`` tracks of ``source`` (input
        1, each a ``-map``), its ``subtitles`` (each a ``-map`` and the codec it is written
        with), chapters and tags into the video; on success the result is in place under
        the output's name."""
        import imageio_ffmpeg

        tmp = part_path(self.path, "mux")
        suffix = self.path.suffix.lower()
        sound = "libopus" if suffix == ".webm" else "aac"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(self._part),
               *(["-ss", f"{skip:.6f}"] if skip else []),
               *(["-itsoffset", f"{delay:.6f}"] if delay else []),
               "-i", str(source), "-map", "0:v:0",
               *(x for track in [*audio, *(m for m, _ in subtitles)] for x in ("-map", track)),
               "-map_metadata", "1", "-map_chapters", "1", "-c:v", "copy",
               "-c:a", sound, "-b:a", "160k",
               *(x for i, (_, codec) in enumerate(subtitles) for x in (f"-c:s:{i}", codec)),
               *(["-bsf:s", _FROM_ZERO] if subtitles else []),
               "-t", f"{seconds:.3f}", str(tmp)]
        # its own session: a Ctrl-C at the terminal reaches us, not this last step
        done = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True)
        if done.returncode == 0:
            os.replace(tmp, self.path)
            return 0, []
        tmp.unlink(missing_ok=True)
        said = done.stderr.strip().splitlines() or ["ffmpeg failed"]
        return done.returncode, [re.sub(r"^(\[[^\]]*\] )+", "", line)  # "[aac @ 0x55…] "
                                 for line in said]

    @staticmethod
    def _refused(code: int, said: list[str]) -> int | None:
        """The errno of a mux the disk refused (full, over ``ulimit -f``), or None."""
        if code == -getattr(signal, "SIGXFSZ", 0):  # ulimit -f (POSIX)
            return errno.EFBIG
        return next((e for e in _DISK_REFUSALS for line in said if os.strerror(e) in line),
                    None)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Where the annotated video can be sent as it is made, and the container each way takes
STREAMED = {"rtmp": "flv", "rtmps": "flv", "tcp": "mpegts", "udp": "mpegts"}


def is_stream(output: str | Path | None) -> bool:
    """True where ``output`` is a link to send the video to (``rtmp://…``), or ``-``
    (standard output, MPEG-TS, for a player or another program), not a file."""
    return output is not None and ("://" in str(output) or str(output) == STDOUT)


def stream_name(url: str) -> str:
    """``url`` as it is shown: its secrets masked (:func:`streamfer.sources.redacted`), and
    an RTMP link's stream key too, the last part of its path (``…/live2/****``), which is
    the password of a channel (a video site's, a server's)."""
    from streamfer.sources import redacted

    if url == STDOUT:
        return "standard output"
    shown = redacted(url)
    if shown.split("://")[0].lower() in ("rtmp", "rtmps"):
        head, _, query = shown.partition("?")
        scheme, _, rest = head.partition("://")
        if rest.count("/") >= 2 and not rest.endswith("/"):
            head = f"{scheme}://{rest.rsplit('/', 1)[0]}/****"
        shown = head + (f"?{query}" if query else "")
    return shown


def check_stream(url: str) -> str:
    """The FFmpeg container ``url`` is sent in, or :class:`SinkError` for a way we do not
    send by (said before any frame is read)."""
    if url == STDOUT:
        if sys.stdout.isatty():
            raise SinkError("--output - writes the video (MPEG-TS) to standard output, which "
                            "is a terminal here: pipe it into a player or another program "
                            "(| ffplay -), or name a file")
        return "mpegts"
    scheme = url.split("://")[0].lower()
    if scheme not in STREAMED:
        raise SinkError(f"cannot send the video to {stream_name(url)}: give rtmp:// (a "
                        "streaming server, a video site's live ingest), tcp:// or udp:// "
                        "(MPEG-TS, to a player or a relay: ffplay, ffmpeg, VLC), or a file"
                        + ("; for SRT relay it: --output udp://127.0.0.1:5000 and ffmpeg "
                           "-i udp://127.0.0.1:5000 -c copy -f mpegts srt://…"
                           if scheme == "srt" else ""))
    return STREAMED[scheme]


class StreamSink(VideoSink):
    """The annotated video sent live as it is made (``--output rtmp://…``, ``tcp://…``,
    ``udp://…``, or ``-``: standard output): H.264 at low delay (x264's ``zerolatency``, a
    key frame every two seconds, so a viewer who joins has a picture within two), its rate
    capped for the network, picture only. Each frame at its timestamp; ``paced`` (a file's
    frames, which come as fast as they are made): sent at the pace of those timestamps, as
    a live source's come, for a server that plays what it gets as it gets it. The
    connection is made here, so a server that is not there is said before any frame is
    read. A stream cut mid-run (the server restarted, the network gone) is connected again,
    with backoff, for up to ``reconnect`` seconds, as a source is (each cut and return said
    in one warning; the frames made meanwhile are not sent, the CSV misses none), then a
    :class:`SinkError` at the next frame; standard output's reader gone is a
    :class:`BrokenPipeError` (as ``--csv -``'s). Nothing is left on disk."""

    def __init__(self, url: str, fps: float, size: tuple[int, int],
                 fmt: VideoFormat | None = None, paced: bool = False,
                 reconnect: float = 0.0) -> None:
        self._format = check_stream(url)
        self.path, self.url = stream_name(url), url
        self.size, self.fps, self.frames = tuple(size), fps, 0
        self._fmt, self._start, self.whole = fmt or VideoFormat(), 0.0, True
        self._pad = (size[1] % 2, size[0] % 2)
        self._pacer = Pacer() if paced else None
        self._reconnect = 0.0 if url == STDOUT else reconnect
        self._lock = threading.Lock()
        self._cut: tuple[float, float] | None = None  # while cut: (when, the video's time)
        self._base: int | None = None  # the pts the connection's video starts from
        self._unsent, self._closing = 0, False
        pixels = size[0] * size[1]
        rate = max(500_000, round(pixels * min(fps, 60) * 0.07))  # 1080p30: 4.4 Mb/s
        self._options = {
            "preset": "superfast" if pixels > 1920 * 1088 else "veryfast",
            "tune": "zerolatency", "crf": "23", "maxrate": str(rate), "bufsize": str(2 * rate),
            "g": str(max(1, round(2 * fps))), "x264-params": "scenecut=0"}
        try:  # connected now: a server that is not there is said before the first frame
            self._container, stream = self._connect()
        except SinkError:
            self._container = None
            raise
        self._begin("libx264", self._options, stream)

    def _connect(self):
        """A new connection and its video stream, its header sent; else :class:`SinkError`."""
        import av

        options = {"flvflags": "no_duration_filesize"} if self._format == "flv" else {}
        container = None
        try:
            container = av.open("pipe:1" if self.url == STDOUT else self.url, "w",
                                format=self._format, options=options, timeout=10)
            stream = self._add_video(container, "libx264", self._options)
            container.start_encoding()
            return container, stream
        except (OSError, av.FFmpegError) as exc:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
            raise SinkError(self._cannot(exc)) from None

    def _cannot(self, why) -> str:
        if self.url == STDOUT and isinstance(why, BrokenPipeError):  # the reader stopped
            raise BrokenPipeError(why.errno, why.strerror)  # as ``--csv -``'s: exit 141
        if isinstance(why, OSError) and why.strerror:
            why = why.strerror
        return f"cannot send the video to {self.path}: {why}"

    def write(self, image: np.ndarray, time_s: float | None = None) -> None:
        if self._pacer is not None and time_s is not None:
            time.sleep(self._pacer.wait(time_s))
        super().write(image, time_s)

    def _encode_all(self) -> None:
        while (item := self._queue.get()) is not None:
            image, pts = item
            with self._lock:
                if self._failed is not None or self._cut is not None:
                    self._unsent += self._cut is not None  # not sent while cut
                    continue
                container, stream = self._container, self._stream
                if self._base is None:  # each connection's video from 0
                    self._base = pts
            try:
                container.mux(stream.encode(self._picture(image, pts - self._base)))
            except Exception as exc:
                if self._reconnect <= 0:
                    self._failed = exc
                    continue
                self._cut_off(exc, float(pts * _TIME_BASE), container)

    def _cut_off(self, why: Exception, at: float, container) -> None:
        """The stream was cut (``why``) at the video's time ``at``: connected again in a
        thread of its own, the frames meanwhile not sent."""
        with self._lock:
            self._cut = (time.monotonic(), at)
            self._unsent = 0
        with contextlib.suppress(Exception):
            container.close()
        said = why.strerror if isinstance(why, OSError) and why.strerror else why
        log.warning("%s: the stream was cut at %.1f s (%s); connecting again (for up to %g s)",
                    self.path, at, said, self._reconnect)
        threading.Thread(target=self._again, name="reconnect", daemon=True).start()

    def _again(self) -> None:
        from streamfer.sources import attempts

        began, at = self._cut
        for _ in attempts(self._reconnect, lambda: self._closing):
            try:
                container, stream = self._connect()
            except SinkError:
                continue
            with self._lock:
                if self._closing:
                    with contextlib.suppress(Exception):
                        container.close()
                    return
                self._container, self._stream, self._base = container, stream, None
                self._cut, unsent = None, self._unsent
            log.warning("%s: connected again after %.1f s; %d frames made meanwhile not sent",
                        self.path, time.monotonic() - began, unsent)
            return
        if not self._closing:
            with self._lock:
                self._failed = RuntimeError(f"cut at {at:.1f} s and not back within "
                                            f"{self._reconnect:g} s (--reconnect)")

    def close(self) -> None:
        """Send what is queued, flush the encoder and end the stream."""
        if getattr(self, "_container", None) is None:
            return
        self._closing = True
        try:
            if self._thread.is_alive():
                self._queue.put(None)
                self._thread.join()
            with self._lock:
                container, stream, cut = self._container, self._stream, self._cut
            if self.frames and self._failed is None and cut is None:
                container.mux(stream.encode(None))
        except Exception as exc:
            self._failed = self._failed or exc
        finally:
            with self._lock:
                container, self._container = self._container, None
            if self._cut is None:
                try:
                    container.close()
                except Exception as exc:
                    self._failed = self._failed or exc
        if self._failed is not None:
            raise SinkError(self._cannot(self._failed))


class PhotoSink:
    """A photo's annotated copy, as :class:`VideoSink` takes frames (``write``, ``finish``,
    ``close``): the image written last, in the format of the name's suffix (:data:`PHOTOS`;
    JPEG at quality 95), at the photo's own size, with the colour profile of the photo in
    ``inputs`` (its pixels are the photo's: shown without it, a Display P3 photo's colours
    look washed out) and its EXIF, upright (when and where it was taken: a photo library
    sorts and maps the copy with the photo; :func:`~streamfer.sources.photo_metadata`);
    ``.bmp`` holds neither. It appears under its name only when closed after a frame, all
    of it or nothing (:func:`streamfer.files.write_atomically`)."""

    def __init__(self, path: str | Path, inputs=()) -> None:
        self.path = check_output(path, inputs, photo=True)
        self.frames, self._image = 0, None
        self._profile, self._exif = photo_metadata(inputs[0]) if inputs else (None, None)

    def write(self, image: np.ndarray, time_s: float | None = None) -> None:
        self._image, self.frames = image, self.frames + 1

    def finish(self) -> None:
        """A photo is whole once its one frame is written: nothing to mark."""

    def close(self) -> None:
        import cv2

        image, self._image = self._image, None
        if image is None:
            return
        suffix = self.path.suffix.lower()
        if (self._profile or self._exif) and suffix != ".bmp":  # Pillow writes them in
            from PIL import Image

            data = io.BytesIO()
            Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).save(
                data, format={".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG",
                              ".webp": "WEBP"}[suffix], quality=95, lossless=suffix == ".webp",
                **{k: v for k, v in (("icc_profile", self._profile), ("exif", self._exif))
                   if v})
            data = np.frombuffer(data.getvalue(), np.uint8)
        else:
            ok, data = cv2.imencode(suffix, image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise SinkError(cannot_write(self.path, "OpenCV could not encode it"))
        try:
            write_atomically(self.path, data.tobytes())
        except OSError as exc:
            raise SinkError(cannot_write(self.path, exc)) from None

    def __enter__(self) -> PhotoSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class _Carried:
    """What a file holds besides its picture that an output keeps: ``audio`` tracks,
    ``subtitles`` (each a codec name and whether it is text), and ``extras``, chapters or
    tags (title, recording date, place); ``lead``: how long its first video stream starts
    after the file itself (its sound, as a rule: ``face_recognition``'s clip has its picture
    from 0.852 s, its sound from 0.008 s), in seconds, 0 where it does not say."""

    lead: float = 0.0
    audio: int = 0
    subtitles: tuple[tuple[str, bool], ...] = ()
    extras: bool = False

    @property
    def any(self) -> bool:
        return bool(self.audio or self.subtitles or self.extras)

    def subtitles_for(self, suffix: str) -> tuple[list[tuple[str, str]], str | None]:
        """Each subtitle track a ``suffix`` output holds, as its ``-map`` and the codec it
        is written with (Matroska copies what it holds and takes other text as SubRip; MP4,
        MOV and WebM hold text, MP4 a DVD's pictures too; AVI none), and what is to be said
        of those it does not hold."""
        kept, left = [], []
        for i, (codec, text) in enumerate(self.subtitles):
            written = "copy" if codec in _SUBTITLES_COPIED.get(suffix, ()) else \
                _SUBTITLES_AS.get(suffix) if text else None
            if written:
                kept.append((f"1:s:{i}", written))
            else:
                left.append(codec)
        if not left:
            return kept, None
        holds = {".avi": "none", ".mkv": "text and DVD, Blu-ray and DVB pictures",
                 ".mp4": "text and DVD pictures"}.get(suffix, "text alone")
        return kept, (f"{len(left)} of its {len(self.subtitles)} subtitle tracks not carried "
                      f"over ({', '.join(left)}: {suffix} holds {holds})")


# The subtitles an output container holds: text ones written as what, and those copied as
# they are (by their decoder's names, as PyAV gives them)
_SUBTITLES_AS = {".mkv": "srt", ".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text",
                 ".webm": "webvtt"}
_DVD = {"dvdsub", "dvd_subtitle"}  # pictures; MOV and M4V hold text alone
_SUBTITLES_COPIED = {".mkv": {"srt", "subrip", "ass", "ssa", "webvtt", "pgssub",
                              "hdmv_pgs_subtitle", "dvbsub", "dvb_subtitle"} | _DVD,
                     ".mp4": {"mov_text"} | _DVD, ".m4v": {"mov_text"}, ".mov": {"mov_text"},
                     ".webm": {"webvtt"}}
# Subtitles from the output's 0 on: FFmpeg cuts an input's audio at ``-ss``, not its
# subtitles, and where one started before it, the muxer shifted every track to make its time
# non-negative (the picture of a part from 1 s began 0.8 s late). Cues that ended before the
# output's 0 are dropped, one under way is cut to start there.
_FROM_ZERO = ("noise=drop=lte(pts*tb+duration*tb\\,0),"
              "setts=pts=max(PTS\\,0):dts=max(DTS\\,0):duration=DURATION+min(PTS\\,0)")
# A container's tags that describe the file, not what it shows (not worth a remux alone)
_FILE_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder"}


def _carried(path: str | Path) -> _Carried | None:
    """What ``path`` holds besides its picture (:class:`_Carried`), or None where it cannot
    be read. One open of the file (a link's: one request)."""
    import av

    try:
        with av.open(str(path)) as container:
            subtitles = tuple(
                (s.codec_context.name, s.codec_context.codec.text_sub)
                for s in container.streams.subtitles if s.codec_context is not None)
            extras = bool(container.chapters()) or any(
                key.lower() not in _FILE_TAGS for key in container.metadata)
            lead, video = 0.0, container.streams.video[0] if container.streams.video else None
            if video is not None and video.start_time is not None \
                    and container.start_time is not None:
                lead = max(0.0, float(video.start_time * video.time_base)
                           - container.start_time / av.time_base)
            return _Carried(lead, len(container.streams.audio), subtitles, extras)
    except (OSError, av.FFmpegError):
        return None


def screen_size() -> tuple[int, int] | None:
    """The primary screen's size in pixels (``screeninfo``), or None where it cannot be told."""
    try:
        from screeninfo import get_monitors

        monitors = get_monitors()
    except Exception:  # no display, no enumerator for this platform
        return None
    main = next((m for m in monitors if m.is_primary), monitors[0] if monitors else None)
    return (main.width, main.height) if main else None


def fitted(size: tuple[int, int], screen: tuple[int, int] | None,
           share: float = 0.9) -> tuple[int, int]:
    """Window size for frames of ``size``: the frame's own, or scaled down (aspect kept) to
    fit ``share`` of the screen."""
    w, h = size
    if not screen:
        return w, h
    scale = min(1.0, share * screen[0] / w, share * screen[1] / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


class Pacer:
    """Paces file playback to the frames' timestamps: how long to wait before showing the
    frame at ``time_s``. A run that falls behind is not made to rush to catch up."""

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock, self.origin = clock, None

    def wait(self, time_s: float) -> float:
        now = self.clock()
        if self.origin is None or self.origin + time_s < now - 0.25:  # first frame, or late
            self.origin = now - time_s
        return max(0.0, self.origin + time_s - now)


class Window:
    """A live OpenCV window at the frame's size (fitted to the screen), its title bar saying
    what it shows and how many frames a second (``streamfer · clip.mp4 · 24.8 fps``, each
    second; ``named``: the input's name, which tells two runs' windows apart); ``show`` returns
    False once the user pressed q or Esc, or closed the window. ``paced``: frames are shown
    at their timestamps (files), not as fast as they come (live sources). ``pixel_aspect``:
    the frames' sample aspect ratio; frames of non-square pixels (a DVD's) are shown as a
    player shows them, widened or narrowed to it. ``mirrored``: whether its caller shows the
    picture as a mirror does (a webcam's selfie view).

    Keys, as a player's: q or Esc quits; space pauses a file (the run waits, as a player
    does) and freezes a live source's picture (the run goes on: the CSV misses nothing);
    f toggles full screen; m flips the selfie view."""

    def __init__(self, size: tuple[int, int], title: str = "streamfer",
                 paced: bool = False, pixel_aspect: float | None = None,
                 mirrored: bool = False, named: str | None = None) -> None:
        import cv2

        aspect = float(pixel_aspect or 1)
        self.seen = (max(1, round(size[0] * aspect)), size[1]) if aspect != 1 else None
        if os.name != "nt" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("no display to show a window on (DISPLAY is not set); "
                            "use --output/--csv instead of --show")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
            cv2.resizeWindow(title, *fitted(self.seen or size, screen_size()))
        except cv2.error:
            raise SinkError("this OpenCV build has no GUI support; "
                            "pip install opencv-python to use --show") from None
        self.title, self.pacer = title, Pacer() if paced else None
        self.mirrored, self.frozen, self._full = mirrored, False, False
        self._label = f"{title} · {named}" if named else title
        if named:
            self._title(self._label)
        self._shown, self._since = 0, None  # frames shown since the title said the rate

    def show(self, image: np.ndarray, time_s: float = 0.0) -> bool:
        import cv2

        if not self.frozen:  # a live picture frozen (space) stays as it is
            if self.seen:
                image = cv2.resize(image, self.seen, interpolation=cv2.INTER_LINEAR)
            cv2.imshow(self.title, image)
        wait = self.pacer.wait(time_s) if self.pacer else 0.0
        key = cv2.waitKey(max(1, round(wait * 1000))) & 0xFF
        if key == ord(" ") and self.pacer:  # a file: paused until space again
            self._say_rate(paused=True)
            while (key := cv2.waitKey(50) & 0xFF) not in (ord(" "), ord("q"), 27):
                if self.closed():
                    return False
                self._keys(key)
        self._keys(key)
        self._say_rate()
        return key not in (ord("q"), 27) and not self.closed()

    def _keys(self, key: int) -> None:
        """What f, m and (a live source's) space do."""
        import cv2

        if key in (ord("f"), ord("F")):
            self._full = not self._full
            with contextlib.suppress(cv2.error):  # a backend without it
                cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN,
                                      cv2.WINDOW_FULLSCREEN if self._full else cv2.WINDOW_NORMAL)
        elif key in (ord("m"), ord("M")):
            self.mirrored = not self.mirrored
        elif key == ord(" ") and not self.pacer:
            self.frozen = not self.frozen
            self._say_rate(paused=self.frozen)

    def _say_rate(self, paused: bool = False) -> None:
        """The title's rate, each second; ``paused``: the title says so, at once."""
        now = time.perf_counter()
        if paused:
            self._title(f"{self._label} · paused (space goes on)")
            self._shown, self._since = 0, None
        if paused or self.frozen:
            return
        if self._since is None:  # the first frame, or the first since a pause: no rate yet
            self._since = now
            self._title(self._label)
            return
        self._shown += 1
        if now - self._since >= 1.0:
            self._title(f"{self._label} · {self._shown / (now - self._since):.1f} fps")
            self._shown, self._since = 0, now

    def _title(self, text: str) -> None:
        import cv2

        with contextlib.suppress(cv2.error):  # a backend without titles
            cv2.setWindowTitle(self.title, text)

    def closed(self) -> bool:
        """Whether the user closed the window (its title bar's ×): OpenCV opens a new one on
        the next frame, so a webcam's run went on, its window back at once."""
        import cv2

        try:  # 0 once closed; a window gone, an error (Qt); -1: the backend cannot tell
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) == 0
        except cv2.error:
            return True

    def hold(self, stop=None) -> None:
        """Keep the last image on screen until q or Esc, the window closed, or ``stop`` set
        (a Ctrl-C): a photo stays to be looked at."""
        import cv2

        while not (stop is not None and stop.is_set()):
            if (key := cv2.waitKey(100) & 0xFF) in (ord("q"), 27) or self.closed():
                return
            self._keys(key)

    def close(self) -> None:
        import cv2

        with contextlib.suppress(cv2.error):  # closed by the user already
            cv2.destroyWindow(self.title)
        cv2.waitKey(1)

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
