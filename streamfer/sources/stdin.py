"""Standard input (``--source -``): read by OpenCV, and beside it by PyAV for what OpenCV
does not give.

OpenCV reads a piped video from file descriptor 0; it has no use for its audio, and it
gives every frame at its first frame's size, a picture that changes shape midway (two
recordings piped one after the other, landscape then portrait) stretched into it. A pipe
can be read only once: :class:`StdinTee` puts a pipe of its own in place of descriptor 0,
and a thread copies what comes in into it and, first, into a second pipe that PyAV
demuxes as it comes: each video key frame (where a new shape may begin) is decoded on its
own and its shape kept with its time (:meth:`StdinTee.key_frames`); where ``sound``, its
audio streams' packets (a broadcast's languages) are copied, not decoded, into a Matroska
file in a temporary folder (NUT where Matroska does not take one:
:func:`~streamfer.sources.sound.sound_file`; a minute of AAC at 160 kb/s is about 1.2 MB,
where the whole stream would be the video's size), with when its first sound comes after
the first picture.
The output video takes it when it is finished (:meth:`StdinTee.take`). Where ``sound`` is
``"live"`` (the video sent on as it is made), the first audio stream is decoded as it comes
instead, its frames given in turn (:meth:`StdinTee.heard`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

from streamfer.frame import TimestampRuns
from streamfer.sources.sound import Heard, sound_file

log = logging.getLogger(__name__)

STDIN = "-"  # the source that means standard input (``--source -``)
STDIN_NAME = "stdin"  # what names it in the CSV, the summary and the report
NOT_SOUGHT = "standard input cannot be sought: --start is for files (--end stops it at that time)"
# how to pipe a video in, said where what came is not read
PIPED = ("pipe MPEG-TS or Matroska: an MP4 or MOV with its index at its end, as most are "
         "written, cannot come through a pipe; ffmpeg -i x -c copy -f mpegts - | …")
_CHUNK = 1 << 16
_WAIT_S = 2.0  # the most a frame waits for the demuxer to know its shape (then: as it was)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Reader:
    """The demuxer's end of its pipe, as a file PyAV reads: it counts what it has read and
    says when it waits for more (having then had, and demuxed, all that came)."""

    def __init__(self, fd: int, changed: threading.Condition) -> None:
        self.fd, self.changed = fd, changed
        self.read_bytes, self.blocked = 0, False

    def read(self, size: int = -1) -> bytes:
        with self.changed:
            self.blocked = True
            self.changed.notify_all()
        data = os.read(self.fd, size if size > 0 else _CHUNK)
        with self.changed:
            self.read_bytes += len(data)
            self.blocked = False
        return data


class StdinTee:
    """A tee of standard input: the video for OpenCV on descriptor 0; its key frames'
    shapes (:meth:`key_frames`) and, where ``sound``, its audio streams kept in
    :attr:`path` (:meth:`take` when the picture is written; :meth:`close` after) — or,
    ``sound="live"``, its first one's frames as they come (:meth:`heard`)."""

    def __init__(self, sound: bool | str = False) -> None:
        kept = bool(sound) and sound != "live"
        self._folder = Path(tempfile.mkdtemp(prefix="streamfer-stdin-")) if kept else None
        self.path: Path | None = None  # the sound kept (sound_file), once the input opened
        self.live = sound == "live"
        self._heard = Heard()  # live: its first sound track, decoded as it comes
        self.delay: float | None = None  # its first sound, in seconds after the first picture
        self.changed = threading.Condition()  # what the demuxer knows, changed
        # each key frame's (part, time from the first frame), ((w, h), pixels' aspect); the
        # part: the run of timestamps it is in (streamfer.frame.TimestampRuns)
        self.keys: list[tuple[tuple[int, float], tuple[tuple[int, int], Fraction]]] = []
        self.until: tuple[int, float] = (0, -1.0)  # the latest video packet demuxed
        self.written, self.ended = 0, False  # bytes into the demuxer's pipe; its end
        self._reader: _Reader | None = None
        self._runs = TimestampRuns()
        self._saved = os.dup(0)  # what the other program writes into: the copier's
        self._restore = os.dup(0)  # and close()'s, to put back
        read, self._picture = os.pipe()
        os.dup2(read, 0)  # OpenCV's pipe:0 is ours now
        os.close(read)
        demuxed, self._beside = os.pipe()
        self._lock = threading.Lock()
        self._closed = False
        self._copier = threading.Thread(target=self._copy, name="stdin-tee", daemon=True)
        self._demuxer = threading.Thread(target=self._demux, args=(demuxed,),
                                         name="stdin-demux", daemon=True)
        self._demuxer.start()
        self._copier.start()

    def _copy(self) -> None:
        """What comes in, to the demuxer's pipe first (it has all the picture has), then to
        OpenCV's; ends at the input's end, or where OpenCV's end is closed (the run ended)."""
        try:
            while chunk := os.read(self._saved, _CHUNK):
                with self._lock:
                    if self._beside is not None:
                        with self.changed:
                            self.written += len(chunk)
                        try:
                            _write_all(self._beside, chunk)
                        except OSError:  # its reader is gone (it could not read it)
                            self._cut()
                _write_all(self._picture, chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._cut()
            os.close(self._picture)  # OpenCV reads the end of the input
            os.close(self._saved)

    def _cut(self) -> None:  # under the lock
        if self._beside is not None:
            os.close(self._beside)
            self._beside = None

    def _demux(self, fd: int) -> None:
        import av

        out = None
        try:
            self._reader = _Reader(fd, self.changed)
            with av.open(self._reader, "r") as source:
                if not source.streams.video:
                    return
                video = source.streams.video[0]
                audio = list(source.streams.audio) if self._folder or self.live else []
                if self.live:  # (its first track alone: the one sent)
                    audio = audio[:1]
                self._heard.opened(audio[0].codec_context.channels if audio else 0)
                base, first = video.time_base, video.start_time or 0
                decoder = video.codec_context
                decoder.thread_count = 1
                intra = decoder.codec.intra_only  # every frame a key frame: no shape change
                start = float(first * base)
                kept = {}
                if audio and not self.live:
                    out, kept, self.path = sound_file(self._folder, audio)
                for packet in source.demux(video, *audio):
                    if packet.pts is None or not packet.size:
                        continue
                    if packet.stream is video:
                        self._video_packet(packet, decoder, first, base, intra)
                        continue
                    at = float(packet.pts * packet.time_base)
                    if self.live:  # its time from the first picture
                        self._heard.packet(packet, -start)
                        continue
                    if at < start:  # before the first picture: not in the output
                        continue
                    if self.delay is None:  # the file's timeline starts at its first
                        self.delay = at - start
                    packet.stream = kept[packet.stream_index]
                    out.mux(packet)
        except Exception as exc:  # noqa: BLE001 (a bonus: the run goes on without it)
            log.debug("standard input read beside OpenCV no further: %s", exc)
            if out is None:
                self.delay = None
        finally:
            if out is not None:
                try:
                    out.close()
                except Exception:  # noqa: BLE001
                    self.delay = None
            self._heard.opened(0)  # (where it never came to the sound: none)
            with self.changed:
                self.ended = True
                self.changed.notify_all()
            os.close(fd)  # the copier then stops writing to its pipe

    def _video_packet(self, packet, decoder, first: int, base: Fraction, intra: bool) -> None:
        """A video packet demuxed: its time known; a key frame's shape (decoded on its own,
        as :class:`streamfer.sources.Shapes` does a file's) kept."""
        decoded = packet.pts if packet.dts is None else packet.dts  # see frame.TimestampRuns
        at = (self._runs.part(float((decoded - first) * base)),
              float((packet.pts - first) * base))
        if packet.is_keyframe and not intra:
            frames = decoder.decode(packet) + decoder.decode(None)
            sar = Fraction(decoder.sample_aspect_ratio or 1) or Fraction(1)
            decoder.flush_buffers()
            if frames:
                with self.changed:
                    self.keys.append((at, ((frames[0].width, frames[0].height), sar)))
        with self.changed:
            self.until = max(self.until, at)
            self.changed.notify_all()

    def channels(self) -> int:
        """The live sound's channels, 0 where it has none: known once the demuxer has
        opened the input (:meth:`Heard.channels <streamfer.sources.sound.Heard.channels>`)."""
        return self._heard.channels()

    def heard(self):
        """The next frame of live sound that came, ``(time from the first picture, frame)``,
        or None (:meth:`Heard.heard <streamfer.sources.sound.Heard.heard>`)."""
        return self._heard.heard()

    def key_frames(self, at: tuple[int, float], since: int = 0
                   ) -> list[tuple[tuple[int, float], tuple[tuple[int, int], Fraction]]]:
        """The key frames demuxed so far (:attr:`keys`), from the ``since``-th on, once the
        demuxer has come to ``at`` (part, time: a video packet of then, all that came read,
        or its end; at most :data:`_WAIT_S`)."""
        deadline = time.monotonic() + _WAIT_S
        with self.changed:
            while not (self.until >= at or self.ended or self._reader is not None and
                       self._reader.blocked and self._reader.read_bytes == self.written):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(min(left, 0.05))
            return self.keys[since:]

    def take(self) -> tuple[Path, float] | None:
        """The sound kept up to now and its delay after the first picture, or None where
        there was none (or it could not be read): what came in so far is the end of it."""
        if self._folder is None:
            return None
        with self._lock:
            self._cut()
        self._demuxer.join(timeout=10)
        if self._demuxer.is_alive() or self.delay is None or self.path is None \
                or not self.path.is_file():
            return None
        return self.path, self.delay

    def close(self) -> None:
        """Descriptor 0 back as it was (our pipe's end goes, so the copier stops), and the
        kept sound removed."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._cut()
        os.dup2(self._restore, 0)
        os.close(self._restore)
        self._demuxer.join(timeout=10)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
