"""Frame sources: a webcam index, a video or image file, a folder of them, or a stream URL.

A :class:`Source` is a context manager and an iterator of :class:`~streamfer.frame.Frame`.
A file's frames carry the container's own timestamps (``time_s``), so variable-frame-rate
footage stays aligned; rotation metadata of phone videos is applied (OpenCV's
auto-orientation, on). A live source (a webcam, a stream) is stamped by the clock at capture
(monotonic seconds from its first frame), so a camera that delivers fewer frames than it
announces, or drops some, keeps true times; a stream that drops is reopened, with backoff,
for up to ``reconnect`` seconds (each drop and reconnect logged in one line; frame numbers
go on and ``time_s`` shows the gap), and then it ends with one :class:`SourceError`.
A link to a recorded file (``http(s)://`` with a duration) is read as a file.

A time range (``start``, ``end``: seconds of the input's time, the ``time_s`` of its frames)
reads part of a file: it seeks to a second before ``start`` and passes over the frames before
it, so the first frame is the first at or after ``start`` even where the container's seek
lands late or fails (read again from the beginning then), and frames keep the numbers and
timestamps they have in the whole file. A live source takes ``end`` alone: it stops ``end`` seconds
after its first frame.

Example:
    >>> from streamfer.sources import open_source
    >>> with open_source("clip.mp4") as source:                # doctest: +SKIP
    ...     print(source.fps, source.size, source.frame_count)
    ...     for frame in source:
    ...         pass
"""

from __future__ import annotations

import bisect
import collections
import errno
import functools
import itertools
import logging
import os
import re
import shlex
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from natsort import natsorted, ns

from streamfer.assets import native_stderr_silenced
from streamfer.files import opencv_name, printable
from streamfer.frame import Frame, TimestampRuns, VideoFormat

log = logging.getLogger(__name__)

# The files a folder run takes: every kind a run of one file reads (FFmpeg, OpenCV), each
# checked by a run of its own (camcorders' .mts/.m2ts, broadcast .mxf, DVD .vob, DV, animated
# GIFs; AVIF, JPEG 2000, Netpbm, Targa photos)
VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
              ".ts", ".3gp", ".3g2", ".mts", ".m2ts", ".mxf", ".ogv", ".vob", ".dv", ".asf",
              ".f4v", ".m2v", ".m1v", ".qt", ".gif", ".apng"}
HEIF_EXTS = {".heic", ".heif", ".hif"}  # phones' photos: read by libheif (pillow-heif)
IMAGE_EXTS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff",
              ".avif", ".jp2", ".tga", ".pbm", ".pgm", ".ppm", ".pnm", *HEIF_EXTS}
# Photo and video kinds a folder run cannot read here, said (not passed over in silence):
# mimetypes' image/ and video/ names, and these it may not know
_OTHER_MEDIA = {".jxl", ".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf",
                ".orf", ".rw2", ".psd", ".braw", ".r3d"}
_MAX_BAD_READS = 8  # consecutive undecodable frames skipped before a stream counts as ended
RECONNECT_S = 30.0  # how long a live source that dropped is tried again, by default
_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)  # waits between reconnect attempts (then the last, again)
_SAME_TIME_S = 1e-4  # timestamps closer than this are one frame's (OpenCV's vs PyAV's)
# Key frames this close together (this many within this many seconds): a stream of key
# frames alone, whose shape is not followed (see _Shapes)
_DENSE_KEYS = (16, 2.0)
_NETWORK_TIMEOUT_MS = 5000  # a stream's open and each read give up after this
_NOTHING_CAME = f"nothing came in {_NETWORK_TIMEOUT_MS / 1000:g} s"
STDIN = "-"  # the source that means standard input (``--source -``)
STDIN_NAME = "stdin"  # what names it in the CSV, the summary and the report
NOT_SOUGHT = "standard input cannot be sought: --start is for files (--end stops it at that time)"
_PIPED = ("pipe MPEG-TS or Matroska: an MP4 or MOV with its index at its end, as most are "
          "written, cannot come through a pipe; ffmpeg -i x -c copy -f mpegts - | …")
# OpenCV's own lines when a camera index does not open ("[ERROR:0@0.1] global
# obsensor_uvc_stream_channel.cpp:163 getStreamChannelGroup Camera index out of range"):
# the caller says it in one line of its own
_CAMERA_PROBE_NOISE = re.compile(r"^\[ ?(ERROR|WARN|INFO)[^\]]*\] global ")
# ... and FFmpeg's, when a stream's server does not answer ("[tcp @ 0x55…] Connection to
# tcp://127.0.0.1:9000 failed: Connection refused"): a drop is said in one line of ours
_STREAM_OPEN_NOISE = re.compile(r"^\[ ?(ERROR|WARN|INFO)[^\]]*\] global |^\[\w+ @ 0x[0-9a-f]+\] ")


class SourceError(RuntimeError):
    """A source cannot be opened or read."""


class OutOfRange(SourceError):
    """A file holds no frame in the time range asked for (``--start``/``--end``)."""


def attempts(within: float, stopped) -> Iterator[int]:
    """The attempts to connect again after a drop, each after a wait of backoff
    (:data:`_BACKOFF_S`), for up to ``within`` seconds from now; none more once ``stopped()``
    (checked through each wait)."""
    start = time.monotonic()
    for attempt in itertools.count():
        deadline = min(time.monotonic() + _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)],
                       start + within)
        while time.monotonic() < deadline:
            if stopped():
                return
            time.sleep(0.05)
        if time.monotonic() - start >= within or stopped():
            return
        yield attempt


_VIDEO_NODE = re.compile(r"/dev/video(\d+)")  # a camera's device on Linux (V4L2)


def camera_index(spec: str) -> int | None:
    """A webcam's index: ``"0"``, or on Linux its device's path — ``/dev/video0``, or a name
    that links to it, as ``/dev/v4l/by-id/usb-…-video-index0`` (the same camera after a
    reboot or a replug, where the index may change); None for any other source, and for a
    ``/dev/v4l/`` name that links to no device now (the camera unplugged)."""
    if spec.isdigit():
        return int(spec)
    if not is_url(spec):  # a path: followed to its device
        found = _VIDEO_NODE.fullmatch(os.path.realpath(spec))
        return int(found.group(1)) if found else None
    return None


def is_webcam(spec: str) -> bool:
    """True for a webcam: its index, or its device's path (:func:`camera_index`), a
    ``/dev/v4l/`` name included where its camera is unplugged (said when it cannot open)."""
    return camera_index(spec) is not None or spec.startswith("/dev/v4l/")


def is_url(spec: str) -> bool:
    return "://" in spec


# A query's (or a path's, as some cameras take them) parameters that hold a secret:
# ``password=``, ``pwd=`` (Foscam), ``token=``, ``access_token=``, ``api_key=``, a signed
# link's ``X-Amz-Signature=`` and ``X-Amz-Credential=``, ``sig=``, ``auth=``, ``key=``
_SECRET_PARAM = re.compile(
    r"(?i)(?<=[?&;/])((?:[\w.-]*[_.-])?(?:pass|passwd|password|pwd|psw|token|secret|key|"
    r"apikey|auth|authorization|sig|signature|credential|credentials)=)[^&;#/]*")


def redacted(url: str) -> str:
    """A link as it is shown and written (messages, the progress bar, the CSV's ``source``,
    the report), its secrets masked: the password of its user part (``rtsp://admin:****@cam``;
    a user part without one is masked whole, a token as pip masks it) and the values of its
    parameters that hold one. Anything not a link is returned as it is.

    Example:
        >>> redacted("rtsp://admin:s3cret@cam.local:554/Streaming/Channels/101")
        'rtsp://admin:****@cam.local:554/Streaming/Channels/101'
        >>> redacted("http://cam/videostream.cgi?user=admin&pwd=s3cret&rate=0")
        'http://cam/videostream.cgi?user=admin&pwd=****&rate=0'
        >>> redacted("https://ghp_abc123@example.com/clip.mp4"), redacted("clip.mp4")
        ('https://****@example.com/clip.mp4', 'clip.mp4')
    """
    if not is_url(url):
        return url
    scheme, _, rest = url.partition("://")
    cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority, rest = rest[:cut], rest[cut:]
    user, at, host = authority.rpartition("@")
    if at:
        name, colon, _ = user.partition(":")
        authority = f"{name}:****@{host}" if colon else f"****@{host}"
    return f"{scheme}://{authority}" + _SECRET_PARAM.sub(r"\1****", rest)


def recorded(url: str) -> tuple[VideoFormat, float | None, int | None, str | None] | None:
    """The probe (``_probe``) of a link to a recorded file (a known duration, as FFmpeg
    reads it), or None for a live stream. Only ``http(s)``/``ftp`` links can be either;
    rtsp, rtmp, srt, udp, tcp are live."""
    if url.split("://", 1)[0].lower() not in ("http", "https", "ftp"):
        return None
    probed = _probe(url)
    return probed if probed[1] is not None else None


def list_media(folder: Path, skip: tuple[Path, ...] = (),
               left_out: list[Path] | None = None, marked: tuple[str, ...] = (),
               outputs: list[Path] | None = None) -> list[Path]:
    """Video and photo files below ``folder`` (recursively, through linked folders too, each
    folder once), in the order a file manager shows them (``clip2`` before ``clip10``, ``a``
    before ``B``, a folder's files together); never a hidden file or one in a hidden folder
    (our part files are hidden) nor anything below a folder of ``skip`` (a run's own output
    folders, when they lie inside ``folder``). A folder that cannot be listed is said (a
    warning). ``left_out``, if given, gets the photos and videos of kinds not read
    (``.jxl``, camera raw files), in the same order. A folder below ``folder`` holding a
    file named in ``marked`` (an earlier run's output folder, by its done-record) is not
    listed either, and is added to ``outputs`` if given."""
    folder = Path(folder)
    skip = tuple(Path(s).resolve() for s in skip)
    found, other, seen = [], [], set()

    def unlisted(exc: OSError) -> None:
        log.warning("cannot list %s: %s", exc.filename, exc.strerror or exc)

    links: list[Path] = []  # folders linked to: listed after every folder itself, so a
    # folder also linked to is listed under its own path, whatever order the disk gives

    def walk(top: Path, follow: bool) -> None:
        for root, dirs, files in os.walk(top, onerror=unlisted, followlinks=follow):
            here = Path(root)
            try:
                st = here.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:  # listed already (or a loop)
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            if here != folder:  # a run's output folder: this run's, or an earlier one's
                ours = any(here.resolve().is_relative_to(s) for s in skip)
                if ours or any(name in files for name in marked):
                    if outputs is not None and not ours:
                        outputs.append(here)
                    dirs[:] = []
                    continue
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if not follow:
                links.extend(here / d for d in dirs if (here / d).is_symlink())
            for name in files:
                p = here / name
                ours = p.suffix.lower() in VIDEO_EXTS | IMAGE_EXTS
                if name.startswith(".") \
                        or not ours and (left_out is None or not _other_media(p)):
                    continue
                if any(p.resolve().is_relative_to(s) for s in skip) or not p.is_file():
                    continue
                (found if ours else other).append(p)

    walk(folder, follow=False)
    for link in sorted(links):
        walk(link, follow=True)
    if left_out is not None:
        left_out.extend(natsorted(other, alg=ns.PATH | ns.IGNORECASE))
    return natsorted(found, alg=ns.PATH | ns.IGNORECASE)


def _other_media(path: Path) -> bool:
    """A photo or video by its name, of a kind a folder run does not read."""
    import mimetypes

    suffix, kind = path.suffix.lower(), mimetypes.guess_type(path.name)[0] or ""
    return suffix not in VIDEO_EXTS | IMAGE_EXTS \
        and (suffix in _OTHER_MEDIA or kind.startswith(("image/", "video/")))


class Source:
    """Frames of one input. ``frame_count`` is None where the input does not say (cameras)."""

    def __init__(self, spec: str, reconnect: float = RECONNECT_S, start: float = 0.0,
                 end: float | None = None, sound: bool = False,
                 camera: tuple[tuple[int, int] | None, float | None] = (None, None)) -> None:
        self.spec = spec
        self._camera = camera  # a webcam's size and rate asked for (None: its own)
        # standard input's sound, kept where ``sound`` (streamfer.stdin), until the ``with``
        self.sound = None  # ends (close() lets the capture go, earlier)
        self._tee = None  # standard input's reader beside OpenCV (streamfer.stdin)
        self._stamped = False  # a frame past its first had a timestamp
        self._keep_sound = sound
        self.name = redacted(spec)  # a link's password is not shown, nor written
        self.piped = spec == STDIN  # a stream from another program: read once, in order
        self.url = is_url(spec)
        self._probed = recorded(spec) if self.url else None  # read once over the network
        self.live = is_webcam(spec) or self.url and self._probed is None
        self.reconnect = reconnect
        self.start, self.end = start, end
        self.origin: float | None = None  # live: time.monotonic() at the first frame
        # a stream's frames timed by its own clock (a webcam's: by ours, as read)
        self._clock = _StreamClock() if self.live and self.url else None
        self.passed_over = 0  # its frames the catching up passed over
        self.wall_origin = 0.0  # live: time.time() at the first frame
        self._image: np.ndarray | None = None
        self.photo = False  # an image file: one frame
        self._cap: cv2.VideoCapture | None = None
        self.format, self.duration = VideoFormat(), None  # duration: the container's, s
        self.note: str | None = None  # a warning a run of it gives (which track it reads)
        self._indexed: int | None = None  # frames the container's index lists (mp4, mov)
        self._turned = False  # its frames come turned upright (a phone's 90° or 270°)
        self._seen: _Shapes | None = None  # the shapes of frames read by frame_at
        self._lock = threading.Lock()
        self._reading = self._closing = False
        self.fps, self.size, self.frame_count = 0.0, (0, 0), None
        if start and self.live:  # refused before a connection is made
            raise SourceError(f"{self.name}: a live source starts now; --start is for files "
                              "(--end stops a live source that long after its first frame)")
        if start and self.piped:
            raise SourceError(NOT_SOUGHT)
        self._open()

    def _open(self) -> None:
        spec = self.spec
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
                raise SourceError(f"not a file: {spec}" if path.exists()
                                  else f"no such file: {spec}")
            if spec.endswith("/"):  # Path drops the slash; FFmpeg would not find a folder
                raise SourceError(f"{spec} names a folder, but {path} is a file: drop the /")
            if path.stat().st_size == 0:
                raise SourceError(f"empty file: {spec}")
            if _other_media(path):  # as a folder run leaves it out (FFmpeg's noise unsaid)
                raise SourceError(f"cannot read {spec}: a kind of photo or video streamfer "
                                  "does not read (convert it: JPEG, PNG or MP4)")
            self.name = printable(path.name)
            if path.suffix.lower() in IMAGE_EXTS:
                self._image = read_photo(spec)
                if self._image is None:
                    raise SourceError(f"cannot decode image: {spec}")
                h, w = self._image.shape[:2]
                self.fps, self.size, self.frame_count, self.photo = 1.0, (w, h), 1, True
                return
        began = time.monotonic()
        cap = self._capture()
        waited = time.monotonic() - began >= _NETWORK_TIMEOUT_MS / 1000
        if not cap.isOpened() and waited and self.url and self.live and self.reconnect > 0:
            cap = self._wait_for_picture(cap, began)
        if not cap.isOpened():
            what = "camera" if is_webcam(spec) else "stream" if self.live else "video"
            said = f"cannot open {what}: {redacted(spec)}"
            if self.url:  # OpenCV's wait ran out (UDP: no packet): not waited out again
                took = time.monotonic() - began
                why = (f"no picture came in {took:.0f} s" if took > 1.5 * _NETWORK_TIMEOUT_MS
                       / 1000 else _NOTHING_CAME) if waited else _unreachable(spec)
                raise SourceError(said + (f" ({why})" if why else ""))
            if is_webcam(spec):
                check_camera(spec)
                raise SourceError(said)
            raise SourceError(_unreadable(spec, said))
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # phone videos: frames upright, size too
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 and not self.live else None
        if not self.live and self.size[0] * self.size[1] == 0:
            cap.release()
            said = f"cannot decode video: {redacted(spec)}"
            raise SourceError(said if self.url else _unreadable(spec, said))
        if not self.live:
            self.format, self.duration, self._indexed, self.note = \
                self._probed or _probe(spec)
            if self._indexed and self.frame_count and self._indexed < self.frame_count:
                self.frame_count = self._indexed  # OpenCV's counts the hidden frames too
            self._turned = round(cap.get(cv2.CAP_PROP_ORIENTATION_META)) % 180 == 90
            if self._turned:
                # the frames come turned upright: their pixels' width is the stream's height,
                # and their lines are columns (no fields to keep)
                self.format = replace(self.format, field_order=None, sar=1 / self.format.sar
                                      if self.format.sar else None)
        else:  # a live stream (a broadcast's MPEG-TS may be a DVD's 64:45) or a camera
            self.format = VideoFormat(_pixel_aspect(cap))
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
        from streamfer.stdin import StdinTee

        self._tee = StdinTee(sound=self._keep_sound)  # its shapes and sound, read beside
        self.sound = self._tee if self._keep_sound else None
        self._cap = self._capture()
        if not self._cap.isOpened():
            self._tee.close()  # no ``with`` will end it: its folder goes now
            raise SourceError(f"cannot read standard input as video ({_PIPED})")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.format = VideoFormat(_pixel_aspect(self._cap))

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
            with native_stderr_silenced(_CAMERA_PROBE_NOISE):
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
        if self.url:  # bounded: a server that stops answering is a drop, not a hang
            with native_stderr_silenced(_STREAM_OPEN_NOISE):
                return cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _NETWORK_TIMEOUT_MS,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, _NETWORK_TIMEOUT_MS])
        with opencv_name(self.spec) as name:  # FFmpeg holds the file open: the link can go
            return cv2.VideoCapture(name)

    def _wait_for_picture(self, cap: cv2.VideoCapture, began: float) -> cv2.VideoCapture:
        """A live link whose open ran out of time: FFmpeg saw no picture, because nothing came
        or because it was joined between two key frames (MPEG-TS over UDP with a key frame
        every 10 s could not be started at all: 'nothing came in 5 s'); opened again until
        one comes, for up to ``reconnect`` seconds from ``began``, said once."""
        log.warning("%s: no picture in %g s (nothing came, or no key frame yet); waiting "
                    "(for up to %g s, --reconnect)", self.name, _NETWORK_TIMEOUT_MS / 1000,
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
        # a file's frames each at its own shape (a local file's: read twice, key frames alone)
        shapes = _PipedShapes(self._tee, self.size, self.format.sar, self.name) \
            if self._tee is not None else None if self.live or self.url else \
            _Shapes(self.spec, self.size, self.format.sar, self._turned, self.start, self.name)
        try:
            yield from self._read(shapes)
        finally:
            if shapes is not None:
                shapes.close()

    def _read(self, shapes: _Shapes | None) -> Iterator[Frame]:
        index, bad, last, ended = 0, 0, None, False
        runs, part, offset = TimestampRuns(), 0, 0.0  # timestamps starting again
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
                    if self._reopen(last if index else None):
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
            time_s = self._timestamp(index)
            if time_s is None:  # a live stream's catching up (see _StreamClock)
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
            bad, last = 0, time_s
            image = _as_bgr(image)
            yield Frame(self.name, index, time_s,
                        shapes.fit(image, time_s, part, offset) if shapes else image,
                        wall_time=self.wall_origin + time_s if self.live else None)
            index += 1
        if self._closing:
            return
        if last is None and self.piped:
            raise SourceError(f"no frame could be read from standard input ({_PIPED})")
        if last is None and (self.start or ended):
            to = "its end" if self.end is None else f"--end {self.end:g} s"
            raise OutOfRange(f"{self.name}: no frame from --start {self.start:g} s to {to}")
        if ended:
            return
        end = (last or 0.0) + 1 / self.fps
        if self._indexed and index < self._indexed:
            log.warning("%s: %d of the %d frames its index lists are decodable (truncated or "
                        "corrupt stream)", self.name, index, self._indexed)
        elif self.duration and end < self.duration - 1.5 / self.fps:
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
            self._seen = _Shapes(self.spec, self.size, self.format.sar, self._turned,
                                 name=self.name, quiet=True)
        image = _as_bgr(image)
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
            with av.open(self.spec, timeout=_NETWORK_TIMEOUT_MS / 1000) as container:
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
        index = bisect.bisect_left(times, time_s - _SAME_TIME_S)
        skipped = bisect.bisect_left(times, self.start - _SAME_TIME_S) < index
        return None if skipped else index

    def _rewind(self, shapes: _Shapes | None = None) -> None:
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
        if self._tee is not None:  # at the end of the ``with``: an output video took its sound
            self._tee.close()


class _StreamClock:
    """When each frame of a live stream is due, on our monotonic clock. A stream may come in
    bursts — live HLS a segment at a time, an encoder's first half second at once, a network
    that held packets back —; timed as read, a burst's frames had one moment (the CSV's
    ``time_s`` said 24 frames in 30 ms, then nothing for a second, and the video showed them
    so), and the newest-frame rule passed over all but the last few: a 24 fps HLS stream was
    analysed 3 times a second. A frame is now due a step of its own timestamps (its pts)
    after the frame before, as a player plays them — but never before it is read, and never
    held longer than the longest wait between two reads of the last ten seconds, times 1.5
    (a burst is spread until the next one comes, and no further): a stream's clock that
    runs fast (MJPEG over HTTP has no timestamps: FFmpeg makes them at a rate it guesses,
    25 fps for a 40 fps camera) cannot delay it more than that, and a stream joined with a
    backlog (HLS's first three segments, read at once) is not played late: its frames are due
    as read, the newest taken. A frame that would be due before one already given (a delay
    once needed, given back once such waits stop) is passed over (:meth:`due` gives None)."""

    WINDOW_S = 10.0  # how long the longest wait between two reads is kept in mind
    MAX_STEP_S = 1.0  # a step of the stream's clock past this, or back, is no step to keep

    def __init__(self) -> None:
        self.waits: collections.deque = collections.deque()  # (read at, wait before it)
        self.read: float | None = None  # when the last frame was read
        self.pts: float | None = None  # its timestamp
        self.last: float | None = None  # when the last frame given was due

    def due(self, pts: float | None, now: float) -> float | None:
        """When the frame of stream time ``pts`` (s; None: the stream has none), read at
        ``now``, is due: ``now`` or later, after the frame before; None where it is passed
        over."""
        if self.read is not None:
            self.waits.append((now, now - self.read))
        self.read = now
        while self.waits and self.waits[0][0] < now - self.WINDOW_S:
            self.waits.popleft()
        hold = 1.5 * max((wait for _, wait in self.waits), default=0.0)
        step = None if pts is None or self.pts is None else pts - self.pts
        if pts is not None:
            self.pts = pts
        if self.last is None or step is None or not 0 < step <= self.MAX_STEP_S:
            step, due = None, now  # the first frame, or no step to go by: as read
        else:
            due = max(now, min(self.last + step, now + hold))
        if self.last is not None and due <= self.last:
            if step is not None:
                return None
            due = self.last + 1e-3
        self.last = due
        return due


class _Shapes:
    """The shape each frame of a file had before OpenCV made it its first frame's. A file
    whose picture changes shape midway — a browser's recording of a call (the phone turned:
    640×480, then 480×640), two recordings joined, a broadcast switching between 4:3 and
    16:9 (720×576 both, its pixels 16:15, then 64:45) — came at its first size and was
    shown at its first pixels' shape, its faces with it (a 4:3 part of a 16:9 file a third
    wider). Its key frames (where a new shape begins) are decoded alongside the reading,
    each on its own, as far as the frame read (PyAV; the rest of the file is read, not
    decoded); a frame whose picture, as seen, is not of the first's shape is fitted back into
    the first's, with bars, as a player shows it, and that is said once. A change of size
    alone (an adaptive stream's 1080p to 720p) needs nothing."""

    def __init__(self, path: str, size: tuple[int, int], sar: Fraction | None = None,
                 turned: bool = False, start: float = 0.0, name: str = "",
                 quiet: bool = False) -> None:
        self.path, self.size, self.sar, self.turned = path, tuple(size), sar or Fraction(1), turned
        self.start, self.name, self._said = start, name, quiet  # quiet: nothing said
        self.restart()

    def restart(self) -> None:
        """From the first frame again (from ``start`` on)."""
        self.close()
        self.shape, self._place = (self.size, self.sar), None
        self._keys = self._key_frames(self.start)
        self._next = next(self._keys, None)

    def _key_frames(self, start: float):
        """((part, time from the first frame), ((w, h), pixels' aspect)), upright, of each
        key frame from the one at or before ``start`` on (part: the run of timestamps it is
        in, see :class:`TimestampRuns`); nothing more once the file cannot be read, nor where
        every frame is a key frame (ProRes, MJPEG, DV, an all-intra H.264: each would be
        decoded twice, and their shape does not change)."""
        import av

        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                if stream.codec_context.codec.intra_only:
                    return
                decoder = stream.codec_context
                decoder.thread_count = 1
                first, base = stream.start_time or 0, stream.time_base
                if start > 1.0:  # to the key frame before it
                    container.seek(first + int((start - 1.0) / base), stream=stream)
                times, runs = [], TimestampRuns()
                for packet in container.demux(stream):
                    if not packet.size or packet.pts is None:
                        continue
                    decoded = packet.pts if packet.dts is None else packet.dts
                    part = runs.part(float((decoded - first) * base))
                    if not packet.is_keyframe:
                        continue
                    # the key frame alone, decoded on its own (it needs no other; not every
                    # decoder passes over the rest when told to)
                    frames = decoder.decode(packet) + decoder.decode(None)
                    sar = Fraction(decoder.sample_aspect_ratio or 1) or Fraction(1)
                    decoder.flush_buffers()
                    if not frames:
                        continue
                    times.append(float((packet.pts - first) * base))
                    if len(times) == _DENSE_KEYS[0] and times[-1] - times[0] < _DENSE_KEYS[1]:
                        return
                    w, h = frames[0].width, frames[0].height
                    yield (part, times[-1]), ((h, w), 1 / sar) if self.turned else ((w, h), sar)
        except (OSError, IndexError, av.FFmpegError, ValueError, ZeroDivisionError):
            return

    def fit(self, image: np.ndarray, time_s: float, part: int = 0,
            offset: float = 0.0) -> np.ndarray:
        """``image``, the frame at ``time_s``, at its own shape within the first's (as seen,
        in the first's pixels); where its timestamps start again (:class:`TimestampRuns`), in the
        ``part``-th run of them, timed on by ``offset`` (its own timestamp ``time_s -
        offset``)."""
        self._offset = offset  # (the time said where its shape changes)
        self._advance((part, time_s - offset + _SAME_TIME_S))
        if self._place is None:
            return image
        x, y, w, h = self._place
        out = np.zeros_like(image)
        out[y:y + h, x:x + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return out

    def _advance(self, at: tuple[int, float]) -> None:
        """The shape of the frame ``at`` (part, time): its key frame's."""
        while self._next is not None and self._next[0] <= at:
            self._shaped(*self._next)
            self._next = next(self._keys, None)

    def _shaped(self, at: tuple[int, float], shape: tuple[tuple[int, int], Fraction]) -> None:
        if shape != self.shape:  # where it goes: worked out once a shape
            self.shape = shape
            self._place = self._placed(at[1] + self._offset)

    def _placed(self, since: float) -> tuple[int, int, int, int] | None:
        """Where a frame of the current shape goes in the first's (x, y, w, h), or None
        where it is the first's shape as seen; the first time it is not, that is said."""
        ((w, h), sar), (width, height) = self.shape, self.size
        seen, first = w * sar / h, width * self.sar / height  # the pictures' shapes, as seen
        if abs(seen - first) <= 0.01 * first:
            return None
        if not self._said:
            self._said = True
            log.warning("%s: its picture changes shape at %.2f s (%s, then %s): each frame is "
                        "kept at its own shape within %d×%d, with bars, as a player shows it",
                        self.name, since, _shape(width, height, self.sar), _shape(w, h, sar),
                        width, height)
        fitted = (max(1, round(width * min(1.0, seen / first))),  # narrower: bars at the
                  max(1, round(height * min(1.0, first / seen))))  # sides; wider: above, below
        return (width - fitted[0]) // 2, (height - fitted[1]) // 2, *fitted

    def close(self) -> None:
        keys = getattr(self, "_keys", None)
        if keys is not None:
            keys.close()  # the file it holds open, closed


class _PipedShapes(_Shapes):
    """:class:`_Shapes` of standard input, which cannot be read twice: its key frames come
    from the demuxer beside OpenCV (:meth:`streamfer.stdin.StdinTee.key_frames`)."""

    def __init__(self, tee, size: tuple[int, int], sar: Fraction | None, name: str) -> None:
        self._tee, self._taken = tee, 0
        super().__init__("", size, sar, name=name)

    def restart(self) -> None:
        self.shape, self._place = (self.size, self.sar), None

    def _advance(self, at: tuple[int, float]) -> None:
        for since, shape in self._tee.key_frames(at, self._taken):
            if since > at:
                break
            self._shaped(since, shape)
            self._taken += 1

    def close(self) -> None:
        pass


def _shape(w: int, h: int, sar: Fraction) -> str:
    """A picture's size, and its pixels' shape where they are not square."""
    return f"{w}×{h}" + (f" of {sar.numerator}:{sar.denominator} pixels" if sar != 1 else "")


# FFmpeg's codes (H.273) of the primaries and transfers that the FFmpeg in opencv-python 5
# converts when it makes BGR frames (seen: BT.2020, DCI-P3, Display P3; PQ, HLG), where
# BT.601's and BT.709's pass as they are
_WIDE_GAMUT, _HDR = (9, 11, 12), (16, 18)


@functools.cache
def opencv_makes_sdr() -> bool:
    """Whether this OpenCV hands a wide-gamut or HDR video's frames over converted to BT.709
    SDR (an iPhone's HLG, a film's PQ: the FFmpeg of opencv-python 5 does, tone mapped;
    earlier ones gave the signal as it was). Told once a process from a clip of two frames
    of mid grey tagged BT.2020 and PQ, written and read back: converted, its grey comes out
    brighter (tone mapped: 98 → 110)."""
    import tempfile

    import av

    with tempfile.TemporaryDirectory(prefix="streamfer-hdr-") as folder:
        path = os.path.join(folder, "grey.mp4")
        try:
            with av.open(path, "w") as out:
                stream = out.add_stream("libx264", rate=25)
                stream.width = stream.height = 64
                stream.pix_fmt = "yuv420p"
                cc = stream.codec_context
                cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, 16, 9, 1
                for _ in range(2):
                    frame = av.VideoFrame(64, 64, "yuv420p")
                    for plane, value in zip(frame.planes, (100, 128, 128)):
                        plane.update(bytes([value]) * plane.buffer_size)
                    out.mux(stream.encode(frame))
                out.mux(stream.encode(None))
            capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
            ok, image = capture.read()
            capture.release()
        except (OSError, av.FFmpegError, cv2.error):
            return False
    return bool(ok) and abs(float(image.mean()) - 98) > 6


def _probe(path: str) -> tuple[VideoFormat, float | None, int | None, str | None]:
    """The first video stream's sample aspect ratio, colour tags and field order, its
    duration (s), the frame count its container's index lists, less those its edit list
    hides (exact; None where there is no index, as in Matroska, whose counts are
    estimates), as FFmpeg reads them (PyAV), and what a run should say of its other video
    tracks (:func:`_other_tracks`); unknowns stay None."""
    import av

    try:
        with av.open(path, timeout=_NETWORK_TIMEOUT_MS / 1000) as container:
            stream = container.streams.video[0]
            cc = stream.codec_context
            sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
            duration = float(stream.duration * stream.time_base) if stream.duration else (
                container.duration / 1e6 if container.duration else None)
            tags = {t: (int(getattr(cc, t)) if getattr(cc, t, 2) not in (None, 0, 2) else None)
                    for t in ("colorspace", "color_primaries", "color_trc")}  # 2: unspecified
            rng = int(cc.color_range) if cc.color_range else None
            if (tags["color_primaries"] in _WIDE_GAMUT or tags["color_trc"] in _HDR) \
                    and opencv_makes_sdr():  # the frames come as BT.709 SDR: so is the output
                tags, rng = {t: 1 for t in tags}, 1
            fields = int(cc.field_order or 0)  # AVFieldOrder: 2-5 interlaced, 1 progressive
            fmt = VideoFormat(Fraction(sar) if sar and sar != 1 else None, rng, **tags,
                              field_order=fields if 2 <= fields <= 5 else None)
            frames = stream.frames - _edited_out(container, stream) if stream.frames else None
            return fmt, duration, frames or None, _other_tracks(path, container)
    except (OSError, IndexError, av.FFmpegError, ValueError):
        return VideoFormat(), None, None, None


def _other_tracks(path: str, container) -> str | None:
    """A file of several video tracks (a multi-camera recording, a preview track before the
    film) is read by its first, as OpenCV reads it: where another looks like the main one (a
    player's default, or larger), the warning a run gives, with the command that makes a
    file of that one; else None."""
    import av

    tracks = [s for s in container.streams.video
              if not s.disposition & av.stream.Disposition.attached_pic]  # cover art
    if len(tracks) < 2:
        return None
    first = tracks[0]
    area = [s.codec_context.width * s.codec_context.height for s in tracks]
    marked = [k for k, s in enumerate(tracks) if s.disposition & av.stream.Disposition.default]
    main = next((k for k in marked if k), None) if 0 not in marked else None
    why = "marked default"
    if main is None and max(area) > area[0]:
        main, why = area.index(max(area)), "the largest"
    if main is None:
        return None
    name, other = Path(path).name, tracks[main].codec_context
    return (f"{name}: its first of {len(tracks)} video tracks ({first.codec_context.width}×"
            f"{first.codec_context.height}) is read, not track {main + 1} ({other.width}×"
            f"{other.height}, {why}); to read that one: ffmpeg -i {shlex.quote(name)} -map "
            f"0:v:{main} -map '0:a?' -c copy "
            f"{shlex.quote(f'{Path(name).stem}.track{main + 1}{Path(name).suffix}')}")


def _pixel_aspect(cap: cv2.VideoCapture) -> Fraction | None:
    """The sample aspect ratio OpenCV's FFmpeg reads from a stream it has opened (None: square
    pixels, or not said: a camera)."""
    num, den = int(cap.get(cv2.CAP_PROP_SAR_NUM)), int(cap.get(cv2.CAP_PROP_SAR_DEN))
    return Fraction(num, den) if num > 0 and den > 0 and num != den else None


def _edited_out(container, stream, look: int = 1000) -> int:
    """How many of the frames at the start of ``stream`` its edit list hides: a clip cut
    from a longer one without re-encoding (``ffmpeg -ss … -c copy``, a phone's trim) keeps
    the frames from the key frame before the cut, and an encoder's first frames may be
    hidden too (FFmpeg marks them to be dropped; OpenCV never shows them). Read from the
    packets (not decoded) until 16 shown ones have come (H.264 reorders at most 16), ``look``
    at most."""
    import av

    hidden = shown = 0
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= look or shown >= 16:
                break
            if packet.size:  # not the flush packet at the end
                hidden += packet.is_discard
                shown += not packet.is_discard
    except (OSError, av.FFmpegError):  # a damaged file: said when it is read, if at all
        pass
    return hidden


def check_camera(spec: str) -> None:
    """:class:`SourceError` where webcam ``spec`` cannot be opened as Linux tells (no such
    device, none at all, or not ours): said before the models load — a run opens its
    camera after them, so that its first frame is fresh."""
    if why := _no_camera(camera_index(spec)):
        raise SourceError(f"cannot open camera: {spec} ({why})")


def _no_camera(index: int | None, devices: Path = Path("/dev")) -> str | None:
    """Why camera ``index`` would not open, where Linux tells (its ``/dev/video*`` nodes):
    none here, which there are, or no permission on it; None elsewhere or where it is there
    and ours to open (busy in another program, or not a camera). ``index`` None: a
    ``/dev/v4l/`` name that links to no device now."""
    if not sys.platform.startswith("linux") or not devices.is_dir():
        return None
    found = sorted(int(p.name[5:]) for p in devices.glob("video*") if p.name[5:].isdigit())
    if not found:
        return "this machine shows no camera: no /dev/video*"
    if index is None:
        return ("it links to no device now (the camera unplugged?); the video devices here: "
                + ", ".join(map(str, found)))
    if index not in found:
        return f"no /dev/video{index}; the video devices here: {', '.join(map(str, found))}"
    node = devices / f"video{index}"
    if not os.access(node, os.R_OK | os.W_OK):
        return f"no permission on {node}: join its group (ls -l {node}), then log in again"
    return None


def _unreachable(url: str) -> str | None:
    """Why a link OpenCV could not open is out of reach, in FFmpeg's words where it says
    (``Connection refused``, ``Server returned 404 Not Found``, ``Failed to resolve hostname
    cam.local: Name or service not known``); None where FFmpeg opens it after all."""
    import av
    import av.logging

    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as said:
            with av.open(url, timeout=_NETWORK_TIMEOUT_MS / 1000):
                return None
    except av.ExitError:  # FFmpeg's wait ran out: a server that says nothing (UDP: no packet)
        return _NOTHING_CAME
    except (OSError, av.FFmpegError, ValueError) as exc:
        if isinstance(exc, av.error.InvalidDataError) and (page := _web_page(url)):
            return page
        if getattr(exc, "errno", None) not in (None, errno.EIO) and exc.strerror:
            return exc.strerror  # its own words: Connection refused, 404 Not Found
        lines = [line.strip() for _, _, line in said if line.strip()]
        return lines[-1] if lines else getattr(exc, "strerror", None) or str(exc)
    finally:
        av.logging.set_level(level)


def _web_page(url: str) -> str | None:
    """Why FFmpeg found no media at an http(s) link, where the link is a web page (a video
    site's ``watch?v=`` page, a camera's settings page: FFmpeg said only "Invalid data found
    when processing input"); None where it is not one, or cannot be told."""
    import http.client
    import urllib.request

    if url.split("://", 1)[0].lower() not in ("http", "https"):
        return None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={
                "User-Agent": "streamfer"}), timeout=_NETWORK_TIMEOUT_MS / 1000) as reply:
            kind = reply.headers.get_content_type()
    except (OSError, ValueError, http.client.HTTPException):
        return None
    if kind not in ("text/html", "application/xhtml+xml"):
        return None
    return (f"a web page ({kind}), not a video: a video site's page is not its video; give "
            "the video's own link (yt-dlp -g prints it) or a file")


def _unreadable(path: str, said: str) -> str:
    """Why a file OpenCV cannot read as a video is none, in a line, where PyAV tells: it holds
    no video (an audio file, a subtitle track), or it is no format FFmpeg reads; else
    ``said``, OpenCV's failure as it was."""
    import av

    try:
        with av.open(path) as container:
            kinds = sorted({s.type for s in container.streams} - {"video"})
            if not container.streams.video:
                return (f"no video in {path}: it holds {' and '.join(kinds)} only" if kinds
                        else f"no video in {path}: it holds no stream")
    except (OSError, av.FFmpegError, ValueError):
        return f"cannot open video: {path} (not a video or photo format FFmpeg reads)"
    return said


def read_photo(path: str) -> np.ndarray | None:
    """A photo, BGR, upright (its EXIF orientation applied): by OpenCV, else by FFmpeg
    (Targa, and JPEG 2000 with subsampled colour, which OpenCV's reader refuses); a phone's
    HEIC by libheif (its grid of tiles whole and its rotation applied, where FFmpeg gives
    the first tile as it is stored); None where none decodes it (OpenCV's complaint unsaid:
    FFmpeg may read it, else our line says)."""
    if Path(path).suffix.lower() in HEIF_EXTS:
        import pillow_heif

        try:
            heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
            pixels = np.asarray(heif)
        except (OSError, ValueError, RuntimeError):
            return None
        if pixels.ndim == 2 or pixels.shape[2] < 3:  # grey (L, or LA: its alpha dropped)
            return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0] if pixels.ndim == 3
                                                     else pixels), cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2BGR)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        with opencv_name(path) as name:
            image = cv2.imread(name, cv2.IMREAD_COLOR)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is not None:
        return image
    import av

    try:
        with av.open(path) as container:
            for picture in container.decode(video=0):
                return picture.to_ndarray(format="bgr24")
    except (OSError, av.FFmpegError, ValueError, IndexError):
        pass
    return None


def photo_metadata(path: str | Path) -> tuple[bytes | None, bytes | None]:
    """What a photo's annotated copy carries of it: its ICC colour profile (an iPhone's
    Display P3, a camera's Adobe RGB) and its EXIF (when it was taken, the camera, the
    place), as its file holds them — the EXIF's orientation set upright, as the copy's
    pixels are (a viewer would turn it again), and its thumbnail, the photo unannotated,
    left out; a profile of another colour space than the copy's RGB (a black-and-white
    photo's Gray Gamma 2.2, a print's CMYK: the copy's pixels are RGB) left out too. None
    for either where the photo has none, or it cannot be read."""
    from PIL import Image

    try:
        if Path(path).suffix.lower() in HEIF_EXTS:
            import pillow_heif

            info = dict(pillow_heif.open_heif(path).info)
        else:
            with Image.open(path) as image:  # the header alone
                info = dict(image.info)
    except (OSError, ValueError, RuntimeError, SyntaxError):
        return None, None
    exif = None
    if info.get("exif"):
        try:
            tags = Image.Exif()
            tags.load(info["exif"])
            if _ORIENTATION in tags:
                tags[_ORIENTATION] = 1
            exif = tags.tobytes() if tags else None  # IFD0 and its own (Exif, GPS) alone
        except (OSError, ValueError, KeyError, TypeError, SyntaxError, struct.error):
            exif = None
    profile = info.get("icc_profile") or None
    return (profile if profile and profile[16:20] == b"RGB " else None), exif  # its space


_ORIENTATION = 0x0112  # EXIF's Orientation tag


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def open_source(spec: str | int | Path, reconnect: float = RECONNECT_S, start: float = 0.0,
                end: float | None = None, sound: bool = False,
                camera: tuple[tuple[int, int] | None, float | None] = (None, None)) -> Source:
    """Open a webcam index ("0"), a stream URL, or a video/image file; ``reconnect``: how
    long a live source that dropped is tried again (0: never); ``start``, ``end``: the part
    of a file to read, in seconds of its time (a live source: ``end`` alone); ``sound``:
    standard input's audio kept for an output video (:attr:`Source.sound`); ``camera``: a
    webcam's size (width, height) and rate to ask for, each None for the camera's own
    (OpenCV's, 640×480 for most)."""
    return Source(str(spec), reconnect, start, end, sound, camera)
