"""The annotated video sent live as it is made: to an RTMP server, over TCP or UDP as
MPEG-TS, to standard output, or into an HLS playlist on disk, with a file's, a pipe's or a
live link's sound; its key hidden where it is shown, cut connections made again within
``--reconnect``.

Example:
    >>> from streamfer.sinks import StreamSink
    >>> with StreamSink("rtmp://localhost/live/KEY", fps=30, size=(1280, 720)) as sent:
    ...     sent.write(frame_image, time_s=frame.time_s)           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamfer.files import cannot_write, unwritable
from streamfer.frame import VideoFormat
from streamfer.sinks.errors import SinkError
from streamfer.sinks.names import STDOUT
from streamfer.sinks.pacing import Pacer
from streamfer.sinks.video import TIME_BASE, VideoSink

log = logging.getLogger(__name__)

# Where the annotated video can be sent as it is made, and the container each way takes
STREAMED = {"rtmp": "flv", "rtmps": "flv", "tcp": "mpegts", "udp": "mpegts"}
# An HLS playlist's: segments of 2 s (a key frame every 2 s), every one kept and listed, an
# event's playlist (it grows; #EXT-X-ENDLIST once the run ends), each file written whole
# before it is named (a player never reads half a segment)
_PLAYLIST = {"hls_time": "2", "hls_list_size": "0", "hls_playlist_type": "event",
             "hls_flags": "independent_segments+temp_file"}
_GAP_S = 0.04  # a sound that resumes this much after where it got to: a gap kept, not closed


def is_stream(output: str | Path | None) -> bool:
    """True where ``output`` is a link to send the video to (``rtmp://…``), ``-``
    (standard output, MPEG-TS, for a player or another program) or an HLS playlist
    (``live.m3u8``, :func:`is_playlist`), not a video file."""
    return output is not None and ("://" in str(output) or str(output) == STDOUT
                                   or is_playlist(output))


def is_playlist(output: str | Path | None) -> bool:
    """True where ``output`` names an HLS playlist on disk (``out/live.m3u8``): the video
    written as it is made, in segments beside it, for a browser or a player to follow."""
    return output is not None and "://" not in str(output) \
        and str(output).lower().endswith(".m3u8")


def segment_pattern(playlist: str) -> str:
    """Where an HLS playlist's segments go, as FFmpeg's pattern: beside it, its name and a
    number (``out/live.m3u8``: ``out/live0.ts``, ``out/live1.ts``, …). A ``%`` of its name
    is written ``_`` there: FFmpeg's default read it as part of the pattern (``x%03d.m3u8``'s
    segments were ``x0000.ts``; ``100%.m3u8`` could not be written at all), and its HLS
    writer has no escape for one (``%%`` stays two).

    >>> segment_pattern("out/100% live.m3u8")
    'out/100_ live%d.ts'
    """
    folder, name = os.path.split(playlist)
    stem = name[:-len(".m3u8")] if name.lower().endswith(".m3u8") else name
    return os.path.join(folder, stem.replace("%", "_") + "%d.ts")


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
    if is_playlist(url):
        if "%" in os.path.dirname(url):  # FFmpeg's pattern: no escape (segment_pattern)
            raise SinkError(cannot_write(Path(url), (
                "FFmpeg's HLS writer reads a % in its folder's name as its segments' number "
                "(they went nowhere): give a folder without one")))
        if why := unwritable(Path(url)):
            raise SinkError(cannot_write(Path(url), why))
        return "hls"
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
                        "(MPEG-TS, to a player or a relay: ffplay, ffmpeg, VLC), a file, or an "
                        "HLS playlist (out/live.m3u8)"
                        + ("; for SRT relay it: --output udp://127.0.0.1:5000 and ffmpeg "
                           "-i udp://127.0.0.1:5000 -c copy -f mpegts srt://…"
                           if scheme == "srt" else ""))
    return STREAMED[scheme]


class StreamSink(VideoSink):
    """The annotated video sent live as it is made (``--output rtmp://…``, ``tcp://…``,
    ``udp://…``, ``-``: standard output, or ``live.m3u8``: an HLS playlist, its segments
    beside it, :data:`_PLAYLIST`): H.264 at low delay (x264's ``zerolatency``, a key
    frame every two seconds, so a viewer who joins has a picture within two), its rate capped
    for the network; with the first sound track of ``audio_from`` (a file, or a piped video's
    tee: :class:`_Sound`), in step with the picture. Each frame at its timestamp; ``paced`` (a
    file's frames, which come as fast as they are made): sent at the pace of those timestamps,
    as a live source's come, for a server that plays what it gets as it gets it. The connection
    is made here, so a server that is not there is said before any frame is read. A stream cut
    mid-run (the server restarted, the network gone) is connected again, with backoff, for up to
    ``reconnect`` seconds, as a source is (each cut and return said in one warning; the frames
    made meanwhile are not sent, the CSV misses none), then a :class:`SinkError` at the next
    frame; standard output's reader gone is a :class:`BrokenPipeError` (as ``--csv -``'s).
    Nothing is left on disk but a playlist's segments."""

    _from_first = False  # its sound is sent by the frames' own times

    def __init__(self, url: str, fps: float, size: tuple[int, int],
                 fmt: VideoFormat | None = None, paced: bool = False,
                 reconnect: float = 0.0, audio_from: str | Path | None = None) -> None:
        self._format = check_stream(url)
        self.path, self.url = stream_name(url), url
        self.size, self.fps, self.frames = tuple(size), fps, 0
        self._fmt, self._start, self.whole = fmt or VideoFormat(), 0.0, True
        self._pad = (size[1] % 2, size[0] % 2)
        self._pacer = Pacer() if paced else None
        self._reconnect = 0.0 if url == STDOUT or self._format == "hls" else reconnect
        self._lock = threading.Lock()
        self._cut: tuple[float, float] | None = None  # while cut: (when, the video's time)
        self._base: int | None = None  # the pts the connection's video starts from
        self._unsent, self._closing = 0, False
        self._sound = _Sound.of(audio_from) if audio_from is not None else None
        self._sent_pts: int | None = None  # the last frame sent (the sound goes as far)
        pixels = size[0] * size[1]
        rate = max(500_000, round(pixels * min(fps, 60) * 0.07))  # 1080p30: 4.4 Mb/s
        self._options = {
            "preset": "superfast" if pixels > 1920 * 1088 else "veryfast",
            "tune": "zerolatency", "crf": "23", "maxrate": str(rate), "bufsize": str(2 * rate),
            "g": str(max(1, round(2 * fps))), "x264-params": "scenecut=0"}
        try:  # connected now: a server that is not there is said before the first frame
            self._container, stream, self._audio = self._connect()
        except SinkError:
            self._container = None
            if self._sound is not None:
                self._sound.close()
            raise
        self._begin("libx264", self._options, stream)

    def _connect(self):
        """A new connection, its video stream and its sound's (None without), its header
        sent; else :class:`SinkError`."""
        import av

        options = {"flvflags": "no_duration_filesize"} if self._format == "flv" else \
            _PLAYLIST | {"hls_segment_filename": segment_pattern(self.url)} \
            if self._format == "hls" else {}
        container = None
        try:
            if self._format == "hls":  # its folders made, as a video file's are
                Path(self.url).parent.mkdir(parents=True, exist_ok=True)
            container = av.open("pipe:1" if self.url == STDOUT else self.url, "w",
                                format=self._format, options=options, timeout=10)
            stream = self._add_video(container, "libx264", self._options)
            audio = self._sound.add_to(container) if self._sound is not None else None
            container.start_encoding()
            return container, stream, audio
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
        if self._format == "hls":
            return f"cannot write the video to {self.path}: {why}"
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
                container, stream, audio = self._container, self._stream, self._audio
                if self._base is None:  # each connection's video from 0, its sound too
                    self._base = pts
                    if self._sound is not None:
                        self._sound.begin(audio, float(pts * TIME_BASE))
            try:
                container.mux(stream.encode(self._picture(image, pts - self._base)))
                self._sent_pts = pts
                if self._sound is not None:  # as far as the frame after it
                    container.mux(self._sound.until(float(pts * TIME_BASE) + 2 / self.fps))
            except Exception as exc:
                if self._reconnect <= 0:
                    self._failed = exc
                    continue
                self._cut_off(exc, float(pts * TIME_BASE), container)

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
                container, *stream = self._connect()
            except SinkError:
                continue
            with self._lock:
                if self._closing:
                    with contextlib.suppress(Exception):
                        container.close()
                    return
                self._container, (self._stream, self._audio), self._base = container, stream, None
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
                if self._sound is not None and self._base is not None:  # to the end
                    container.mux(self._sound.finish(float(self._sent_pts * TIME_BASE)
                                                     + 1 / self.fps))
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
            if self._sound is not None:
                self._sound.close()
        if self._failed is not None:
            raise SinkError(self._cannot(self._failed))


class _Sound:
    """A source's sound, sent with its picture: a file's first track (:class:`_FileSound`),
    or a piped video's or a live link's as it comes (:meth:`StdinTee.heard
    <streamfer.sources.stdin.StdinTee.heard>`, :meth:`LiveSound.heard
    <streamfer.sources.live.LiveSound.heard>`),
    encoded beside the frames (AAC at 48 kHz, mono as it came or else stereo: what FLV and
    MPEG-TS players and video sites take, whatever it was) at the times it comes with,
    against its picture's (OpenCV's frame times count from the video track's start). Each
    connection's sound starts with its first frame: what comes before it (a file whose sound
    starts first, ``--start``, the time a cut stream was away) is not sent. A sound that
    resumes later than where it got to (a live link that dropped, or whose picture was held)
    goes on at its own time, the gap kept."""

    RATE = 48000
    _TIME_BASE = Fraction(1, RATE)

    def __init__(self, channels: int, take) -> None:
        # (a mono track made stereo would be 3 dB quieter: its one channel is the centre)
        self._layout = "mono" if channels == 1 else "stereo"
        self._take = take  # the next (time from the picture's start, frame); None: not now
        self._held = None  # a decoded frame past the time asked for: sent next time
        self._stream, self._at, self._resampler, self._sent = None, 0.0, None, 0
        self._heard_as = None  # the frames' format, layout and rate the resampler takes
        self._next = 0.0  # where the sound sent so far ends (a gap after it: a live link's)

    @classmethod
    def of(cls, source) -> _Sound | None:
        """The sound of ``source`` (a file's path or link, or what hears a piped video's or
        a live link's: ``channels()`` and ``heard()``), or None where it has none (or it
        cannot be read)."""
        import av

        if hasattr(source, "heard"):
            channels = source.channels()
            return cls(channels, source.heard) if channels else None
        try:  # (a link to a recorded file: bounded, as its reading is)
            container = av.open(str(source), timeout=10)
        except (OSError, av.FFmpegError, ValueError):
            return None
        if not container.streams.audio:
            container.close()
            return None
        return _FileSound(container)

    def add_to(self, container):
        """Its stream in ``container`` (a connection's)."""
        stream = container.add_stream("aac", rate=self.RATE)
        stream.layout = self._layout
        stream.codec_context.bit_rate = 128_000
        return stream

    def begin(self, stream, at: float) -> None:
        """A connection's sound, into ``stream``, from ``at`` (the time of its first
        frame)."""
        self._stream, self._at, self._resampler, self._heard_as = stream, at, None, None
        self._next = at

    def until(self, time_s: float) -> list:
        """The packets of its sound up to ``time_s`` (of the picture's time), as far as it
        has come."""
        packets = []
        while True:
            if self._held is None:
                self._held = self._take()
                if self._held is None:
                    return packets
            at, frame = self._held
            if at >= time_s:
                return packets
            self._held = None
            if at + frame.samples / frame.sample_rate > self._at:  # (before this connection's
                packets += self._resampled(frame, at)  # first frame: not sent)

    def _resampled(self, frame, at: float) -> list:
        """The packets of ``frame`` (at ``at``), resampled; the resampler made at a
        connection's first frame, and again where the sound changes (a broadcast's 5.1 and
        stereo, two recordings joined: it takes one kind alone), what it held sent first."""
        packets = []
        if self._resampler is not None and at > self._next + _GAP_S:  # a live link's picture
            packets = self._encoded(self._resampler.resample(None))  # held, or the link
            self._resampler = self._heard_as = None  # away: the sound goes on at its time
            self._next = at
        self._next = max(self._next, at) + frame.samples / frame.sample_rate
        heard_as = (frame.format.name, frame.layout.name, frame.sample_rate)
        if heard_as != self._heard_as:
            import av

            if self._resampler is None:  # the samples from here on (before it: < 0)
                self._sent = round((at - self._at) * self.RATE)
            else:
                packets += self._encoded(self._resampler.resample(None))
            self._resampler, self._heard_as = av.AudioResampler(
                "fltp", self._layout, self.RATE,
                frame_size=self._stream.codec_context.frame_size), heard_as
        frame.pts = None
        return packets + self._encoded(self._resampler.resample(frame))

    def _encoded(self, frames) -> list:
        packets = []
        for frame in frames:  # each from the sample after the last: one track, no gaps
            frame.pts, frame.time_base = self._sent, self._TIME_BASE
            self._sent += frame.samples
            if frame.pts >= 0:  # (the part before the connection's first frame: not sent)
                packets += self._stream.encode(frame)
        return packets

    def finish(self, time_s: float) -> list:
        """The packets of its sound up to ``time_s`` (the picture's end), and the last."""
        packets = self.until(time_s)
        if self._resampler is not None:
            packets += self._encoded(self._resampler.resample(None))
        return packets + self._stream.encode(None)

    def close(self) -> None:
        pass


class _FileSound(_Sound):
    """A file's first sound track, decoded as the frames go (sought where a connection
    starts far into it: ``--start``); a track that stops decoding is said once, and the
    picture goes on alone."""

    def __init__(self, container) -> None:
        self._container, self._track = container, container.streams.audio[0]
        video = container.streams.video[0] if container.streams.video else None
        self._origin = float(video.start_time * video.time_base) \
            if video is not None and video.start_time is not None else 0.0
        self._frames = self._decoded()
        super().__init__(self._track.codec_context.channels, lambda: next(self._frames, None))

    def _decoded(self):
        """(time from the picture's start, frame) of each decoded frame of the track."""
        import av

        at = 0.0
        try:
            for frame in self._container.decode(self._track):
                if frame.pts is not None:
                    at = float(frame.pts * frame.time_base) - self._origin
                    yield at, frame
        except (OSError, av.FFmpegError, ValueError) as exc:
            log.warning("the sound sent stops at %.1f s (%s); the picture goes on",
                        max(0.0, at), exc)

    def begin(self, stream, at: float) -> None:
        super().begin(stream, at)
        if self._held is not None and self._held[0] < at - 2.0 \
                or self._held is None and at > 2.0:  # far ahead (--start): sought
            self._frames.close()
            self._container.seek(int((at - 1.0 + self._origin) / self._track.time_base),
                                 stream=self._track)
            self._frames, self._held = self._decoded(), None

    def close(self) -> None:
        self._frames.close()
        self._container.close()
