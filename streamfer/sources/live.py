"""A live link (an IP camera's RTSP, a server's RTMP, live HLS, MPEG-TS over UDP, TCP or
HTTP) read by PyAV: its picture frame by frame as OpenCV gives one, and, in the same
connection, its sound.

OpenCV reads a link's picture and drops its sound (its audio API is not in its FFmpeg
backend for links), and a second connection for the sound would not do: an RTMP server
or a camera may take one viewer, and two connections' timestamps need not agree.
:class:`LiveCapture` stands where ``cv2.VideoCapture`` stood for a live link (the part of
it :class:`~streamfer.sources.reader.Source` uses); its sound's packets go to the run's
:class:`LiveSound`, which outlives each connection (a stream that drops and comes back is
one run) and times them by the picture: a packet of stream time ``pts`` is at ``pts``
plus what the first frame at or after it was given, ``time_s − pts``
(:meth:`LiveSound.anchor`; a live stream's frames are timed by our clock, see
:class:`~streamfer.sources.streams.StreamClock`). A sound that would overlap the one
before (a connection's bursts) is let go; the time a dropped stream was away stays
silent. Kept for an output video (packets copied, not decoded, into a Matroska file, or
NUT: :meth:`LiveSound.take`, as standard input's :class:`~streamfer.sources.stdin.StdinTee`
does), or decoded as it comes for a video sent on (:meth:`LiveSound.heard`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from streamfer.sources.sound import HEARD_S, Heard, sound_file

log = logging.getLogger(__name__)

def capture_options() -> dict[str, str]:
    """FFmpeg's options for opening a link, from ``OPENCV_FFMPEG_CAPTURE_OPTIONS``
    (``rtsp_transport;tcp|user_agent;cam-viewer``: OpenCV's form, which users of OpenCV set
    for their cameras and which OpenCV honoured when it read the links)."""
    said = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS", "")
    pairs = (item.split(";", 1) for item in said.split("|") if ";" in item)
    return {key.strip(): value.strip() for key, value in pairs if key.strip()}


class LiveSound:
    """A live link's first sound track, over its connections (or a webcam's microphone:
    :mod:`streamfer.sources.microphone`): kept in a file (Matroska or NUT; ``live=False``:
    :meth:`take`) or decoded as it comes (``live=True``: :meth:`heard`), timed by the
    picture (:meth:`anchor`)."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self._folder = None if live else Path(tempfile.mkdtemp(prefix="streamfer-live-"))
        self.path: Path | None = None  # the sound kept (sound_file), once a connection had it
        self.delay: float | None = None  # its first sound, in seconds after the first picture
        self._lock = threading.Lock()
        self._offset: float | None = None  # time_s − pts of the last frame given, this one's
        self._waiting: deque = deque()  # its packets before a frame timed them
        self._end = 0.0  # where the sound kept so far ends (time from the first picture)
        self._out = self._track = None  # the file it is kept in, its stream
        self._heard = Heard()  # live: decoded as it comes
        self._refused = False  # no file would take it (not tried again)
        self._closed = False

    # the capture's side (the reading thread)
    def connected(self, track) -> None:
        """A connection opened, its sound ``track`` (None: it has none)."""
        with self._lock:
            self._offset = None
            self._waiting.clear()
            self._heard.opened(track.codec_context.channels if track is not None else 0)
            if track is not None and not self.live and self.path is None \
                    and not self._refused and not self._closed:  # (its first sound's file)
                try:
                    self._out, kept, self.path = sound_file(self._folder, [track])
                    self._track = kept[track.index]
                except ValueError as exc:  # no container takes it: the picture alone
                    self._refused = True
                    log.warning("the stream's sound cannot be kept (%s): the video is written "
                                "without it", exc)

    def packet(self, packet, pts: float) -> None:
        """A packet of the sound, at ``pts`` (s) of the stream's time (the picture's): it
        waits for the frame of its time (a decoder gives a frame some packets after its
        own, and a frame may be passed over)."""
        with self._lock:
            self._waiting.append((pts, packet))
            while len(self._waiting) > 1 and self._waiting[-1][0] - self._waiting[0][0] \
                    > HEARD_S:
                self._waiting.popleft()

    def anchor(self, pts: float, time_s: float) -> None:
        """The frame of stream time ``pts`` is at ``time_s``: the sound up to it timed so
        (a picture held or hurried, as a live stream's is where it came in a burst or
        stopped, takes its sound with it)."""
        with self._lock:
            self._offset = time_s - pts
            while self._waiting and self._waiting[0][0] <= pts:
                at, packet = self._waiting.popleft()
                self._place(packet, at + self._offset)

    def _place(self, packet, at: float) -> None:  # under the lock
        import av

        duration = float(packet.duration * packet.time_base) if packet.duration else 0.0
        if at < 0 or self._closed:  # before the first picture
            return
        if at < self._end:  # over sound already kept (the picture's clock caught up): let
            if self._end - at > duration / 2:  # go, or, where half of it is past that, put
                return  # after it (never later than half a packet, so no lag adds up)
            at = self._end
        self._end = at + duration
        if self.live:
            self._heard.packet(packet, at - float(packet.pts * packet.time_base))
            return
        if self._out is None:
            return
        if self.delay is None:
            self.delay = at
        base = self._track.time_base or Fraction(1, 1000)
        packet.stream = self._track
        packet.pts = packet.dts = round(at / base)
        packet.time_base = base
        try:
            self._out.mux(packet)
        except (av.FFmpegError, ValueError, OSError) as exc:  # the kept sound ends here
            log.debug("a live link's sound kept no further: %s", exc)
            self._end = float("inf")

    # the sinks' side
    def take(self) -> tuple[Path, float] | None:
        """The sound kept up to now and its delay after the first picture, or None where
        there was none: an output video's, as it is finished."""
        with self._lock:
            while self._waiting and self._offset is not None:  # its last moment, after the
                at, packet = self._waiting.popleft()  # last frame's start
                self._place(packet, at + self._offset)
            out, self._out = self._out, None
            self._end = float("inf")  # nothing more
            if out is not None:
                try:
                    out.close()
                except Exception:  # noqa: BLE001 (the video without its sound)
                    return None
        if self.delay is None or self.path is None or not self.path.is_file():
            return None
        return self.path, self.delay

    def channels(self) -> int:
        """The sound's channels, 0 where it has none: known once a connection opened
        (:meth:`Heard.channels <streamfer.sources.sound.Heard.channels>`)."""
        return self._heard.channels()

    def heard(self):
        """The next frame of sound that came, ``(time from the first picture, frame)``, or
        None (:meth:`Heard.heard <streamfer.sources.sound.Heard.heard>`)."""
        return self._heard.heard()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            out, self._out = self._out, None
        if out is not None:
            try:
                out.close()
            except Exception:  # noqa: BLE001
                pass
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


class LiveCapture:
    """A live link's connection, read as ``cv2.VideoCapture`` reads one (the calls
    :class:`~streamfer.sources.reader.Source` makes): ``isOpened``, ``read`` (a BGR frame at
    the size it opened with), ``get`` (its size, rate, pixels' aspect and the last frame's
    time), ``release``; each open and read given up after ``timeout_s``. Its sound, where
    ``sound``, goes to it (:class:`LiveSound`). :attr:`shape` is the last frame's own
    ((w, h), pixels' aspect): a picture that changes shape is stretched to the first's, as
    OpenCV does, and :class:`~streamfer.sources.shapes.LiveShapes` fits it back."""

    def __init__(self, url: str, timeout_s: float, sound: LiveSound | None = None,
                 read_timeout_s: float | None = None, after: float | None = None,
                 replayed_s: float = 0.0) -> None:
        """``read_timeout_s``: each read's (``timeout_s`` where None: a live HLS link's is
        longer, as its next segment can be that long in coming); ``after``, ``replayed_s``:
        what a connection again passes over, its frames and sound of stream time in
        (``after`` − ``replayed_s``, ``after``] — where the last connection got to (its
        :attr:`last_at`): a live HLS link opened again starts three segments back, and they
        were read."""
        import av
        from av.stream import Discard

        self._container = self._video = self._audio = None
        self._sound, self._frames = sound, deque()
        self._pts: float | None = None  # the last frame's time (s), from the stream's start
        self.last_at: float | None = after  # the last frame's own time stamp (s) read, or
        self._seen = (after - replayed_s, after) if after is not None else None  # before
        self.size, self.fps, self.sar = (0, 0), 0.0, None
        self.shape: tuple[tuple[int, int], Fraction] | None = None
        self.why: str | None = None  # why it opened with no picture, where it can be told
        try:
            self._container = av.open(url, timeout=(timeout_s, read_timeout_s or timeout_s),
                                      options=capture_options())
        except (OSError, av.FFmpegError, ValueError):
            return
        video, audio = _chosen(self._container)
        if video is None:  # no picture (or none known yet: joined between two key frames)
            if audio is not None and not self._container.streams.video:
                self.why = "it has sound and no picture"  # (asked again, a server of one
            self.release()  # connection refused it: "Connection refused")
            return
        self._video = video
        video.thread_type = "AUTO"
        context = video.codec_context
        self.size = (context.width, context.height)
        sar = context.sample_aspect_ratio
        self.sar = Fraction(sar) if sar and sar != 1 else None
        rate = video.average_rate or video.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self.shape = (self.size, self.sar or Fraction(1))
        self._start = video.start_time * video.time_base if video.start_time is not None \
            else None
        if sound is not None:
            self._audio = audio
            sound.connected(audio)
        for stream in self._container.streams:  # not fetched (an HLS link's other
            if stream is not video and stream is not self._audio:  # renditions), nor read
                stream.discard = Discard.all
        self._packets = self._container.demux(*filter(None, (video, self._audio)))

    def isOpened(self) -> bool:  # noqa: N802 (cv2.VideoCapture's name)
        return self._video is not None

    def _read_before(self, at: float | None, keep: bool = False) -> bool:
        """True where stream time ``at`` was read by the connection before (see ``after``);
        a picture past it ends the look (``keep``: a sound's does not)."""
        if self._seen is None or at is None:
            return False
        if at > self._seen[1]:
            if not keep:
                self._seen = None  # past it: the rest is new
            return False
        return at > self._seen[0]

    def read(self) -> tuple[bool, np.ndarray | None]:
        import av

        while True:
            while not self._frames:
                if self._video is None:
                    return False, None
                try:
                    packet = next(self._packets)
                except StopIteration:
                    return False, None
                except (OSError, av.FFmpegError, ValueError):  # cut, or nothing came in time
                    return False, None
                if packet.stream is self._audio:
                    if packet.pts is not None and packet.size and not self._read_before(
                            float(packet.pts * packet.time_base), keep=True):
                        self._sound.packet(packet, float(packet.pts * packet.time_base
                                                         - (self._start or 0)))
                    continue
                try:
                    self._frames.extend(packet.decode())
                except (av.FFmpegError, ValueError):  # a damaged packet: as OpenCV, on
                    continue
            frame = self._frames.popleft()
            at = frame.pts * frame.time_base if frame.pts is not None else None
            if not self._read_before(None if at is None else float(at)):
                break
        if at is not None:
            self.last_at = float(at)
            if self._start is None:
                self._start = at
            self._pts = float(at - self._start)
        sar = Fraction(self._video.codec_context.sample_aspect_ratio or 1) or Fraction(1)
        self.shape = ((frame.width, frame.height), sar)
        image = frame.to_ndarray(format="bgr24")
        if (frame.width, frame.height) != self.size:  # stretched to the first's, as OpenCV
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        return True, image

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            return float(self.size[0])
        if prop == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(self.size[1])
        if prop == cv2.CAP_PROP_POS_MSEC:
            return -1.0 if self._pts is None else self._pts * 1000
        if prop in (cv2.CAP_PROP_SAR_NUM, cv2.CAP_PROP_SAR_DEN):
            sar = self.sar or Fraction(1)
            return float(sar.numerator if prop == cv2.CAP_PROP_SAR_NUM else sar.denominator)
        return 0.0  # the frame count (none), orientation (none in a stream)

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        container, self._container, self._video = self._container, None, None
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 (a connection already gone)
                pass


def _chosen(container) -> tuple:
    """The picture a live link is read by and its sound, each None where it has none (a
    picture whose size is not known yet is none): of an
    HLS link's renditions (a master playlist: 1080p, 720p, 360p…), the largest — FFmpeg
    and OpenCV read its first, often its smallest: far faces lost — and that rendition's
    sound (the first audio after its picture, before the next picture), else the first."""
    videos = [s for s in container.streams.video
              if s.codec_context.width and s.codec_context.height]
    if not videos:
        return None, next(iter(container.streams.audio), None)
    video = max(videos, key=lambda s: (s.codec_context.width * s.codec_context.height,
                                       s.codec_context.bit_rate or 0, -s.index))
    after = [s.index for s in container.streams.video if s.index > video.index]
    tracks = list(container.streams.audio)
    own = [a for a in tracks if video.index < a.index < min(after, default=a.index + 1)]
    return video, (own or tracks or [None])[0]
