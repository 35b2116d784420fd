"""Reading one source: a webcam, a video or photo file, standard input or a stream URL.

A :class:`Source` is a context manager and an iterator of :class:`~streamfer.frame.Frame`.
A file's frames carry the container's own timestamps (``time_s``), so variable-frame-rate
footage stays aligned; rotation metadata of phone videos is applied (OpenCV's
auto-orientation, on). A live source (a webcam, a stream) is stamped by the clock at capture
(monotonic seconds from its first frame), so a camera that delivers fewer frames than it
announces, or drops some, keeps true times; a stream that drops is reopened, with backoff,
for up to ``reconnect`` seconds (each drop and reconnect logged in one line; frame numbers
go on and ``time_s`` shows the gap), and then it ends with one :class:`SourceError`. A live
link is read by PyAV (:mod:`streamfer.sources.live`: its sound in the same connection).
A link to a recorded file (``http(s)://`` with a duration) is read as a file.

A time range (``start``, ``end``: seconds of the input's time, the ``time_s`` of its frames)
reads part of a file: it seeks to a second before ``start`` and passes over the frames before
it, so the first frame is the first at or after ``start`` even where the container's seek
lands late or fails (read again from the beginning then), and frames keep the numbers and
timestamps they have in the whole file. A live source takes ``end`` alone: it stops ``end``
seconds after its first frame.

Example (a minute of a 25 fps match, its frames numbered as in the whole file):
    >>> from streamfer.sources.reader import open_source
    >>> with open_source("match.mp4", start=60, end=120) as source:   # doctest: +SKIP
    ...     first = next(iter(source))
    >>> first.index, first.time_s                                     # doctest: +SKIP
    (1500, 60.0)
"""

from __future__ import annotations

import bisect
import collections
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from streamfer.assets import native_stderr_silenced
from streamfer.files import opencv_name, printable
from streamfer.frame import Frame, TimestampRuns, VideoFormat
from streamfer.sources.cameras import CAMERA_PROBE_NOISE, camera_index, check_camera, is_webcam
from streamfer.sources.errors import OutOfRange, SourceError
from streamfer.sources.hls import ended_copy, rendition, target_duration
from streamfer.sources.live import LiveCapture, LiveSound
from streamfer.sources.media import IMAGE_EXTS, animation_frames, avif_animation, other_media
from streamfer.sources.microphone import Microphone
from streamfer.sources.photos import as_bgr, read_photo
from streamfer.sources.probe import pixel_aspect, probe, recorded, unreadable
from streamfer.sources.shapes import SAME_TIME_S, LiveShapes, PipedShapes, Shapes
from streamfer.sources.stdin import NOT_SOUGHT, PIPED, STDIN, STDIN_NAME, StdinTee
from streamfer.sources.streams import (
    NETWORK_TIMEOUT_MS,
    NOTHING_CAME,
    RECONNECT_S,
    STREAM_OPEN_NOISE,
    StreamClock,
    as_read,
    attempts,
    is_url,
    redacted,
    unreachable,
)

log = logging.getLogger(__name__)

_MAX_BAD_READS = 8  # consecutive undecodable frames skipped before a stream counts as ended


class Source:
    """Frames of one input. ``frame_count`` is None where the input does not say (cameras)."""

    def __init__(self, spec: str, reconnect: float = RECONNECT_S, start: float = 0.0,
                 end: float | None = None, sound: bool | str = False,
                 camera: tuple[tuple[int, int] | None, float | None] = (None, None),
                 microphone: str | None = None) -> None:
        self.spec = spec
        self._camera = camera  # a webcam's size and rate asked for (None: its own)
        # standard input's or a live link's sound, where ``sound`` (streamfer.sources.stdin,
        self.sound = None  # .live), until the ``with`` ends (close() lets the capture go)
        self._tee = None  # standard input's reader beside OpenCV (streamfer.sources.stdin)
        self._stamped = False  # a frame past its first had a timestamp
        self._keep_sound = sound
        self.name = redacted(spec)  # a link's password is not shown, nor written
        self.piped = spec == STDIN  # a stream from another program: read once, in order
        self.url = is_url(spec)
        self._probed = recorded(spec) if self.url else None  # read once over the network
        self.live = is_webcam(spec) or self.url and self._probed is None
        # a live HLS link's segments' length (s; None: no HLS, or not over http): its reads
        # wait for the next segment, and a connection again passes over what was read
        self._segment_s = target_duration(spec) if self.live and self.url \
            and spec.split("://", 1)[0].lower() in ("http", "https") else None
        self._read_until: float | None = None  # the last connection's last frame's own time
        # what is read: the spec, or of a recorded HLS master its largest rendition, and
        self.reads = self._sound_from = spec  # its sound (streamfer.sources.hls)
        if not self.live and not self.piped and (chosen := rendition(spec)) is not None:
            self.reads, self._sound_from = chosen
            self._probed = (recorded(self.reads) or self._probed) if self.url else None
        self._copies: list[str] = []  # temporary folders of ended playlists (below)
        self._cut_off = 0  # the segments of a playlist ended so (0: none was)
        if not self.live and not self.piped:
            self._end_playlists()
        self.reconnect = reconnect
        self.start, self.end = start, end
        self.origin: float | None = None  # live: time.monotonic() at the first frame
        # a stream's frames timed by its own clock (a webcam's: by ours, as read)
        self._clock = StreamClock() if self.live and self.url else None
        self.passed_over = 0  # its frames the catching up passed over
        self.wall_origin = 0.0  # live: time.time() at the first frame
        self._image: np.ndarray | None = None
        self.photo = False  # an image file: one frame
        self._cap: cv2.VideoCapture | None = None
        self.format, self.duration = VideoFormat(), None  # duration: the container's, s
        self.note: str | None = None  # a warning a run of it gives (which track it reads,
        # or where a recording's playlist cut off is read to)
        self._indexed: int | None = None  # frames the container's index lists (mp4, mov)
        self._turned = False  # its frames come turned upright (a phone's 90° or 270°)
        self._seen: Shapes | None = None  # the shapes of frames read by frame_at
        self._lock = threading.Lock()
        self._reading = self._closing = False
        self.fps, self.size, self.frame_count = 0.0, (0, 0), None
        if start and self.live:  # refused before a connection is made
            raise SourceError(f"{self.name}: a live source starts now; --start is for files "
                              "(--end stops a live source that long after its first frame)")
        if start and self.piped:
            raise SourceError(NOT_SOUGHT)
        self._microphone: Microphone | None = None  # a webcam's sound, where asked for
        heard = microphone and is_webcam(spec)  # (by a device beside the camera)
        if sound and (self.live and self.url or heard):  # a link's: in the picture's
            self.sound = LiveSound(live=sound == "live")  # connection
        try:
            self._open()
            if heard and self.sound is not None:  # from the camera's first frame on
                self._microphone = Microphone(microphone, self.sound)
        except BaseException:
            if self.sound is not None:
                self.sound.close()
            for folder in self._copies:
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def _end_playlists(self) -> None:
        """An HLS recording on disk cut off before its end (its playlist without an end
        mark) is read, picture and sound, from copies of its playlists ended where it
        stops (:func:`~streamfer.sources.hls.ended_copy`), said once."""
        ended = {}
        for name in dict.fromkeys((self.reads, self._sound_from)):
            if "://" not in name and (copy := ended_copy(name)) is not None:
                ended[name] = copy[0]
                self._copies.append(os.path.dirname(copy[0]))
                if name == self.reads:
                    self._cut_off = copy[1]
        self.reads = ended.get(self.reads, self.reads)
        self._sound_from = ended.get(self._sound_from, self._sound_from)

    def _open(self) -> None:
        spec = self.spec
        animation = 0  # an animated WebP's or PNG's frames: a video (OpenCV counts none)
        if self.piped:
            self._open_pipe()
            return
        if not self.live and not self.url:
            path = Path(spec)
            if not path.is_file():
                import glob

                many = not path.exists() and glob.has_magic(spec) and len(glob.glob(spec))
                if many:  # a pattern the shell did not expand (quoted)
                    raise SourceError(f"no such file: {spec} (a pattern matching {many} "
                                      f"file{'s' * (many != 1)}: give one file, or their "
                                      "folder)")
                numbered = re.sub(r"%0?\d*d", "*", glob.escape(spec))
                if not path.exists() and numbered != glob.escape(spec) \
                        and (many := len(glob.glob(numbered))):  # FFmpeg's image sequence
                    raise SourceError(
                        f"no such file: {spec} (a numbered sequence of {many} file"
                        f"{'s' * (many != 1)}: give their folder, each read as a photo, or "
                        f"make them a video first: ffmpeg -framerate 25 -i '{spec}' "
                        f"-pix_fmt yuv420p {path.parent.name or 'frames'}.mp4)")
                if path.is_fifo():  # a reader waits for a writer; standard input does not
                    raise SourceError(f"not a file: {spec} (a named pipe: give --source - "
                                      f"< {shlex.quote(spec)})")
                raise SourceError(f"not a file: {spec}" if path.exists()
                                  else f"no such file: {spec}")
            if spec.endswith("/"):  # Path drops the slash; FFmpeg would not find a folder
                raise SourceError(f"{spec} names a folder, but {path} is a file: drop the /")
            if path.stat().st_size == 0:
                raise SourceError(f"empty file: {spec}")
            if other_media(path):  # as a folder run leaves it out (FFmpeg's noise unsaid)
                raise SourceError(f"cannot read {spec}: a kind of photo or video streamfer "
                                  "does not read (convert it: JPEG, PNG or MP4)")
            self.name = printable(path.name)
            animation = animation_frames(path)
            if path.suffix.lower() in IMAGE_EXTS and not animation:
                self._image = read_photo(spec)
                if self._image is None:
                    raise SourceError(f"cannot decode image: {spec}")
                h, w = self._image.shape[:2]
                self.fps, self.size, self.frame_count, self.photo = 1.0, (w, h), 1, True
                return
            if animation and path.suffix.lower() == ".avif":  # its animation, in a file of
                folder = tempfile.mkdtemp(prefix="streamfer-avif-")  # its own (the copies go
                self._copies.append(folder)  # with the source)
                import av

                try:
                    self.reads = self._sound_from = str(avif_animation(path, folder))
                except (OSError, ValueError, av.FFmpegError) as exc:
                    raise SourceError(f"cannot read the animation of {spec}: {exc}") from None
        began = time.monotonic()
        cap = self._capture()
        waited = time.monotonic() - began >= NETWORK_TIMEOUT_MS / 1000
        if not cap.isOpened() and waited and self.url and self.live and self.reconnect > 0:
            cap = self._wait_for_picture(cap, began)
        if not cap.isOpened():
            what = "camera" if is_webcam(spec) else "stream" if self.live else "video"
            said = f"cannot open {what}: {redacted(spec)}"
            if self.url:  # OpenCV's wait ran out (UDP: no packet): not waited out again
                took = time.monotonic() - began
                why = (f"no picture came in {took:.0f} s" if took > 1.5 * NETWORK_TIMEOUT_MS
                       / 1000 else NOTHING_CAME) if waited else \
                    getattr(cap, "why", None) or unreachable(spec)
                raise SourceError(said + (f" ({why})" if why else ""))
            if is_webcam(spec):
                check_camera(spec)
                raise SourceError(said)
            raise SourceError(unreadable(spec, said))
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # phone videos: frames upright, size too
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 and not self.live else animation or None
        if not self.live and self.size[0] * self.size[1] == 0:
            cap.release()
            said = f"cannot decode video: {redacted(spec)}"
            raise SourceError(said if self.url else unreadable(spec, said))
        if not self.live:
            self.format, self.duration, self._indexed, self.note = \
                self._probed or probe(self.reads)
            if self._cut_off and not self.note:  # (said by the name a run shows)
                n = self._cut_off
                self.note = (f"{self.name} has no end mark (#EXT-X-ENDLIST: its recording was "
                             "cut off, or is still being made): read as far as it lists now, "
                             f"{n} segment{'s' * (n != 1)}")
            if self._indexed and self.frame_count and self._indexed < self.frame_count:
                self.frame_count = self._indexed  # OpenCV's counts the hidden frames too
            self._turned = round(cap.get(cv2.CAP_PROP_ORIENTATION_META)) % 180 == 90
            if self._turned:
                # the frames come turned upright: their pixels' width is the stream's height,
                # and their lines are columns (no fields to keep)
                self.format = replace(self.format, field_order=None, sar=1 / self.format.sar
                                      if self.format.sar else None)
        else:  # a live stream (a broadcast's MPEG-TS may be a DVD's 64:45) or a camera
            self.format = VideoFormat(pixel_aspect(cap))
            self._say_camera_mode(fps)
        if self.start and self.duration and self.start >= self.duration:
            cap.release()
            raise OutOfRange(f"{self.name}: --start {self.start:g} s is not before its end "
                              f"({self.duration:.2f} s)")

    def _say_camera_mode(self, fps: float) -> None:
        """A webcam that gives another size or rate than the one asked for, said once (the
        camera decides: OpenCV takes the nearest it offers, or keeps its own)."""
        size, rate = self._camera
        if (not size or tuple(self.size) == tuple(size)) and (not rate or abs(fps - rate) < 0.5):
            return
        asked = " at ".join(filter(None, (size and "×".join(map(str, size)),
                                          rate and f"{rate:g} fps")))
        node = f"/dev/video{camera_index(self.spec)}"
        offers = f" (the modes it offers: v4l2-ctl --list-formats-ext -d {node})" \
            if sys.platform.startswith("linux") else ""
        log.warning("camera %s gives %d×%d at %g fps, not the %s asked for%s", self.spec,
                    *self.size, fps, asked, offers)

    def _open_pipe(self) -> None:
        """Standard input (``--source -``): a video another program writes into a pipe, in a
        container FFmpeg reads as it comes (MPEG-TS, Matroska); its length unknown, its
        frames timed by the container, none passed over."""
        if sys.stdin is None or sys.stdin.isatty():
            raise SourceError("--source - reads a video piped into standard input, and none "
                              "is: e.g. ffmpeg -i rtsp://cam -c copy -f mpegts - | streamfer "
                              "run --source - …")
        self.name = STDIN_NAME
        self._tee = StdinTee(sound=self._keep_sound)  # its shapes and sound, read beside
        self.sound = self._tee if self._keep_sound else None
        self._cap = self._capture()
        if not self._cap.isOpened():
            came = self._tee.written  # (all of it: OpenCV has read to its end)
            self._tee.close()  # no ``with`` will end it: its folder goes now
            if not came:
                raise SourceError("standard input was empty: nothing came through the pipe "
                                  "(did the command before the | fail?)")
            raise SourceError(f"cannot read standard input as video ({PIPED})")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.format = VideoFormat(pixel_aspect(self._cap))

    @property
    def audio_from(self):
        """What an output video's sound comes from: standard input's or a live link's, as
        heard (:attr:`sound`); else the file or link read (of a recorded HLS master, its
        chosen rendition's sound alone)."""
        return self.sound if self.piped or self.live else self._sound_from

    @property
    def frames_to_read(self) -> int | None:
        """The frames of the time range (an estimate where it is part of a file), or None
        where the source does not say."""
        if self.frame_count is None or self.photo or not (self.start or self.end):
            return self.frame_count
        whole = self.duration or self.frame_count / self.fps
        end = whole if self.end is None else min(self.end, whole)
        return max(0, min(self.frame_count, round((end - self.start) * self.fps)))

    @property
    def count_is_exact(self) -> bool:
        """True where :attr:`frames_to_read` is a count, not an estimate: a photo, or a whole
        file whose container indexes its frames (mp4, mov). Matroska, WebM, AVI and a part of
        a file give one from the duration and the frame rate, a frame or two off."""
        return self.photo or bool(self._indexed) and not (self.start or self.end)

    def _capture(self) -> cv2.VideoCapture:
        if self.piped:
            return cv2.VideoCapture("pipe:0", cv2.CAP_FFMPEG)
        if is_webcam(self.spec):
            with native_stderr_silenced(CAMERA_PROBE_NOISE):
                index = camera_index(self.spec)  # None: a /dev/v4l/ name linking nowhere
                cap = cv2.VideoCapture(index) if index is not None else cv2.VideoCapture()
            size, fps = self._camera
            if cap.isOpened() and (size or fps):  # asked: MJPEG first (a USB camera's larger
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))  # sizes, fast)
                if size:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
                if fps:
                    cap.set(cv2.CAP_PROP_FPS, fps)
            return cap
        if self.url and self.live:  # by PyAV, picture and sound (bounded, as below)
            wait = self._segment_s or 0.0  # FFmpeg reloads a live playlist until it grows
            return LiveCapture(self.spec, NETWORK_TIMEOUT_MS / 1000, self.sound,
                               read_timeout_s=NETWORK_TIMEOUT_MS / 1000 + 2 * wait,
                               after=self._read_until if wait else None, replayed_s=4 * wait)
        if self.url:  # bounded: a server that stops answering is a drop, not a hang
            with native_stderr_silenced(STREAM_OPEN_NOISE):
                return cv2.VideoCapture(self.reads, cv2.CAP_FFMPEG, [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS])
        with opencv_name(self.reads) as name:  # FFmpeg holds the file open: the link can go
            return cv2.VideoCapture(name)

    def _wait_for_picture(self, cap: cv2.VideoCapture, began: float) -> cv2.VideoCapture:
        """A live link whose open ran out of time: FFmpeg saw no picture, because nothing came
        or because it was joined between two key frames (MPEG-TS over UDP with a key frame
        every 10 s could not be started at all: 'nothing came in 5 s'); opened again until
        one comes, for up to ``reconnect`` seconds from ``began``, said once."""
        log.warning("%s: no picture in %g s (nothing came, or no key frame yet); waiting "
                    "(for up to %g s, --reconnect)", self.name, NETWORK_TIMEOUT_MS / 1000,
                    self.reconnect)
        while not cap.isOpened() and time.monotonic() - began < self.reconnect:
            cap.release()
            tried = time.monotonic()
            cap = self._capture()
            if not cap.isOpened() and time.monotonic() - tried < 1.0:
                time.sleep(0.5)  # refused at once (a server gone meanwhile): not a busy loop
        return cap

    def _reopen(self, dropped_at: float | None) -> bool:
        """A live source dropped: open it again, with backoff, for up to ``reconnect``
        seconds; True once it is back (False: given up, or closed meanwhile). ``dropped_at``
        None: it gave no frame yet (a stream joined between two key frames, where FFmpeg's
        look at it ran out of time and every read of that capture failed), and it is opened
        again unsaid (a camera's is said): it was said as a drop at 0.0 s."""
        with self._lock:
            if self._cap is not None:
                self._read_until = getattr(self._cap, "last_at", self._read_until)
                self._cap.release()
                self._cap = None
        if self.reconnect <= 0 or self._closing:
            return False
        if dropped_at is not None:
            log.warning("%s: the stream dropped at %.1f s; reconnecting (for up to %g s)",
                        self.name, dropped_at, self.reconnect)
        elif is_webcam(self.spec):  # a camera that opens and gives nothing: not waited unsaid
            log.warning("camera %s gave no frame; opening it again (for up to %g s)",
                        self.spec, self.reconnect)
        start = time.monotonic()
        for _ in attempts(self.reconnect, lambda: self._closing):
            cap = self._capture()
            with self._lock:
                if self._closing:
                    cap.release()
                    return False
                if cap.isOpened():
                    self._cap = cap
                    if dropped_at is not None:
                        log.warning("%s: reconnected after %.1f s", self.name,
                                    time.monotonic() - start)
                    return True
            cap.release()
        return False

    def __iter__(self) -> Iterator[Frame]:
        if self._image is not None:
            yield Frame(self.name, 0, 0.0, self._image)
            return
        shapes = self._shapes()
        try:
            yield from self._read(shapes)
        finally:
            if shapes is not None:
                shapes.close()

    def _shapes(self) -> Shapes | None:
        """What keeps each frame at its own shape within the first's: a file's (read twice,
        its key frames alone), a pipe's (from its tee), a live link's (as its capture reads
        them); None for a webcam and a recorded file behind a link."""
        if self._tee is not None:
            return PipedShapes(self._tee, self.size, self.format.sar, self.name)
        if self.live and self.url:
            return LiveShapes(lambda: getattr(self._cap, "shape", None), self.size,
                              self.format.sar, self.name)
        if self.live or self.url:
            return None
        return Shapes(self.reads, self.size, self.format.sar, self._turned, self.start, self.name)

    def _read(self, shapes: Shapes | None) -> Iterator[Frame]:
        index, bad, last, ended = 0, 0, None, False
        # the last steps between two frames: its rate's, or more (an AVI copied from a video
        # timed in ms is of 1000 fps, each frame held 41 or 42 slots)
        steps: collections.deque = collections.deque(maxlen=16)
        runs, part, offset = TimestampRuns(), 0, 0.0  # timestamps starting again
        fresh, again = time.monotonic(), False  # a link's last new frame; reopened since
        landing = self._seek() if self.start and not self.live else False
        while True:
            with self._lock:
                if self._cap is None:
                    break
                cap, self._reading = self._cap, True
            ok, image = cap.read()  # may stall on a stream: close() waits for it to return
            with self._lock:
                self._reading = False
                if self._closing:
                    self._release()
                    break
            if not ok or image is None:
                if self.live:
                    # opened again and nothing new for --reconnect (a live playlist that
                    # stopped growing: a recording cut off, an encoder gone): given up
                    stalled = index and self.url and again \
                        and time.monotonic() - fresh > self.reconnect
                    if not stalled and self._reopen(last if index else None):
                        again = True
                        continue
                    if self._closing:
                        break
                    dropped_at = last or 0.0
                    if not index:
                        raise SourceError(f"{self.name}: no frame could be read from it in "
                                          f"{self.reconnect:g} s (--reconnect)")
                    raise SourceError(
                        f"{self.name}: the stream dropped at {dropped_at:.1f} s and did not "
                        f"come back within {self.reconnect:g} s (--reconnect)" if self.reconnect
                        > 0 else f"{self.name}: the stream dropped at {dropped_at:.1f} s "
                        f"(--reconnect 0: not reopened)")
                if landing:  # the seek left nothing to read (a server that cannot seek)
                    landing = False
                    self._rewind(shapes)
                    continue
                bad += 1
                if self.frame_count is None or index + bad > self.frame_count \
                        or bad > _MAX_BAD_READS:
                    break
                continue
            fresh, again = time.monotonic(), False
            time_s = self._timestamp(index)
            if time_s is None:  # a live stream's catching up (see StreamClock)
                self.passed_over += 1
                index += 1
                continue
            if not self.live and runs.part(time_s) != part:  # two recordings joined: the
                part, offset = runs.count, (last or 0.0) + 1 / self.fps - time_s  # next on
            time_s += offset
            if landing:  # the first frame after the seek: its number, or read from the start
                landing = False
                index = self._index_at(time_s)
                if index is None:  # landed past --start (or cannot tell): frames before it
                    self._rewind(shapes)
                    index, runs, part, offset = 0, TimestampRuns(), 0, 0.0
                    continue
            if self.end is not None and time_s >= self.end:
                ended = True
                break
            if time_s < self.start:  # the lead-in of the seek, passed over
                index += 1
                continue
            if bad and last is not None and time_s - last > 1.5 / self.fps:
                log.warning("%s: undecodable frames between %.3f s and %.3f s skipped",
                            self.name, last, time_s)
            if last is not None:
                steps.append(time_s - last)
            bad, last = 0, time_s
            image = as_bgr(image)
            yield Frame(self.name, index, time_s,
                        shapes.fit(image, time_s, part, offset) if shapes else image,
                        wall_time=self.wall_origin + time_s if self.live else None)
            index += 1
        if self._closing:
            return
        if last is None and self.piped:
            raise SourceError(f"no frame could be read from standard input ({PIPED})")
        if last is None and (self.start or ended):
            to = "its end" if self.end is None else f"--end {self.end:g} s"
            raise OutOfRange(f"{self.name}: no frame from --start {self.start:g} s to {to}")
        if last is None and self._indexed:  # a file cut in its index (or all corrupt)
            raise SourceError(f"cannot read video: {self.name} (none of the {self._indexed} "
                              "frames its index lists could be decoded: truncated or corrupt)")
        if ended:
            return
        step = max([*steps, 1 / self.fps])
        end = (last or 0.0) + step  # (the last frame held as long as the longest of late)
        if self._indexed and index < self._indexed:
            log.warning("%s: %d of the %d frames its index lists are decodable (truncated or "
                        "corrupt stream)", self.name, index, self._indexed)
        elif self.duration and end < self.duration - 1.5 * step:
            log.warning("%s: the stream ends at %.2f s of %.2f s (truncated or corrupt); "
                        "%d frames decoded", self.name, end, self.duration, index)

    def frame_at(self, index: int, time_s: float) -> np.ndarray | None:
        """Frame ``index`` (shown at ``time_s``) of a file, by a seek, as reading it gives it
        (upright, at its own shape), for a report's thumbnails; asked in time order; None
        where it cannot be read."""
        if self._image is not None:
            return self._image
        if self._cap is None or self.live or self.piped:
            return None
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if self._seen is None and not self.url:
            self._seen = Shapes(self.reads, self.size, self.format.sar, self._turned,
                                 name=self.name, quiet=True)
        image = as_bgr(image)
        return self._seen.fit(image, time_s) if self._seen is not None else image

    def _seek(self) -> bool:
        """Move the capture to a second before ``start``; True where it moved."""
        if self.start <= 1.0:
            return False
        return bool(self._cap.set(cv2.CAP_PROP_POS_MSEC, (self.start - 1.0) * 1000))

    def _index_at(self, time_s: float) -> int | None:
        """The number of the frame at ``time_s`` in the whole file (the frames before it, by
        the container's timestamps, read with PyAV up to it without decoding), or None where
        a frame at or after ``start`` lies before it or the file does not say."""
        import av

        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if msec <= 0:
            return None
        try:
            with av.open(self.reads, timeout=NETWORK_TIMEOUT_MS / 1000) as container:
                stream = container.streams.video[0]
                first, base = stream.start_time or 0, float(stream.time_base)
                past, pts = first + (time_s + 2.0) / base, []
                for packet in container.demux(stream):  # in decoding order: up to a little
                    if packet.pts is not None and packet.size:  # past the frame; not those
                        if not packet.is_discard:  # its edit list hides (a clip cut)
                            pts.append(packet.pts)
                        if packet.dts is not None and packet.dts > past:
                            break
                times = sorted((p - first) * base for p in pts)
        except (OSError, IndexError, av.FFmpegError, ValueError):
            return None
        index = bisect.bisect_left(times, time_s - SAME_TIME_S)
        skipped = bisect.bisect_left(times, self.start - SAME_TIME_S) < index
        return None if skipped else index

    def _rewind(self, shapes: Shapes | None = None) -> None:
        """Read the file again from its first frame (its ``shapes`` too)."""
        if shapes is not None:
            shapes.restart()
        with self._lock:
            self._release()
            self._cap = self._capture()  # a link to a recorded file: with its timeouts
            self._cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)

    def _timestamp(self, index: int) -> float | None:
        if self.live:  # the clock at capture, from the first frame
            now = time.monotonic()
            if self.origin is None:  # and the wall clock then: the rest follow the monotonic
                self.origin, self.wall_origin = now, time.time()  # one (no NTP step)
            if self._clock is not None:
                msec = self._cap.get(cv2.CAP_PROP_POS_MSEC) if self._cap is not None else -1
                due = self._clock.due(msec / 1000 if msec >= 0 else None, now)
                if due is None:
                    return None
                now = due
                if self.sound is not None and msec >= 0:  # its sound timed by the picture
                    self.sound.anchor(msec / 1000, now - self.origin)
            elif self._microphone is not None:  # a webcam's: both timed by our clock
                self.sound.anchor(now, now - self.origin)
            return now - self.origin
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC) if self._cap is not None else -1
        # 0 past the first frame: no timestamps, where none came before (else a run of them
        # starting again: two recordings joined, see TimestampRuns)
        if msec < 0 or (msec == 0 and index > 0 and not self._stamped):
            return index / self.fps
        self._stamped = self._stamped or msec > 0
        return msec / 1000.0

    def close(self) -> None:
        """Release the input; if another thread is inside a read (a stalled stream), the
        release happens in that thread as soon as the read returns, never under it."""
        with self._lock:
            self._closing = True
            if not self._reading:
                self._release()

    def _release(self) -> None:
        if self._seen is not None:
            self._seen.close()
            self._seen = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self._microphone is not None:
            self._microphone.close()
        for folder in self._copies:  # an output video has taken its sound from them
            shutil.rmtree(folder, ignore_errors=True)
        if self.sound is not None:  # at the end of the ``with``: an output video took it
            self.sound.close()
        if self._tee is not None:
            self._tee.close()


def open_source(spec: str | int | Path, reconnect: float = RECONNECT_S, start: float = 0.0,
                end: float | None = None, sound: bool | str = False,
                camera: tuple[tuple[int, int] | None, float | None] = (None, None),
                microphone: str | None = None) -> Source:
    """Open a webcam index ("0"), a stream URL, or a video/image file; ``reconnect``: how
    long a live source that dropped is tried again (0: never); ``start``, ``end``: the part
    of a file to read, in seconds of its time (a live source: ``end`` alone); ``sound``:
    standard input's or a live link's audio kept for an output video (:attr:`Source.sound`;
    ``"live"``: as it comes, for a video sent on: its ``heard()``);
    ``camera``: a webcam's size (width, height) and rate to ask for, each None for the
    camera's own (OpenCV's, 640×480 for most); ``microphone``: a webcam's sound, where
    ``sound``, heard by this device (:mod:`streamfer.sources.microphone`)."""
    return Source(as_read(str(spec)), reconnect, start, end, sound, camera, microphone)
