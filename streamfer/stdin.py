"""Standard input (``--source -``) with its sound kept for the output video.

OpenCV reads a piped video from file descriptor 0 and has no use for its audio; a pipe can be
read only once. :class:`StdinSound` puts a pipe of its own in place of descriptor 0 and a
thread copies what comes in into it and, beside, into a second pipe that PyAV demuxes: its
audio streams' packets (a broadcast's languages) are copied, not decoded, into a Matroska
file in a temporary folder (a minute of AAC at 160 kb/s is about 1.2 MB, where the whole
stream would be the video's size), with when its first sound comes after the first
picture. The output video takes it when it is finished (:meth:`StdinSound.take`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class StdinSound:
    """A tee of standard input: the video for OpenCV on descriptor 0, its audio streams kept
    in :attr:`path`. :meth:`take` when the picture is written; :meth:`close` after."""

    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="streamfer-stdin-"))
        self.path = self._folder / "sound.mka"
        self.delay: float | None = None  # its first sound, in seconds after the first picture
        self._saved = os.dup(0)  # what the other program writes into: the copier's
        self._restore = os.dup(0)  # and close()'s, to put back
        read, self._picture = os.pipe()
        os.dup2(read, 0)  # OpenCV's pipe:0 is ours now
        os.close(read)
        sound_read, self._sound = os.pipe()
        self._lock = threading.Lock()
        self._closed = False
        self._copier = threading.Thread(target=self._copy, name="stdin-tee", daemon=True)
        self._demuxer = threading.Thread(target=self._keep_sound, args=(sound_read,),
                                         name="stdin-sound", daemon=True)
        self._demuxer.start()
        self._copier.start()

    def _copy(self) -> None:
        """What comes in, to the sound's pipe first (it has all the picture has), then to
        OpenCV's; ends at the input's end, or where OpenCV's end is closed (the run ended)."""
        try:
            while chunk := os.read(self._saved, _CHUNK):
                with self._lock:
                    if self._sound is not None:
                        try:
                            _write_all(self._sound, chunk)
                        except OSError:  # no sound in it: its reader is gone
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
        if self._sound is not None:
            os.close(self._sound)
            self._sound = None

    def _keep_sound(self, fd: int) -> None:
        import av

        try:
            with av.open(f"pipe:{fd}", "r") as source:
                if not source.streams.audio or not source.streams.video:
                    return
                audio, video = list(source.streams.audio), source.streams.video[0]
                first = float((video.start_time or 0) * video.time_base)
                with av.open(str(self.path), "w", format="matroska") as out:
                    kept = {}  # each audio stream's in the file: language, default flag
                    for track in audio:
                        kept[track.index] = out.add_stream_from_template(track)
                        kept[track.index].metadata.update(track.metadata)
                        kept[track.index].disposition = track.disposition
                    for packet in source.demux(audio):
                        if packet.pts is None or not packet.size:
                            continue
                        at = float(packet.pts * packet.time_base)
                        if at < first:  # before the first picture: not in the output
                            continue
                        if self.delay is None:  # the file's timeline starts at its first
                            self.delay = at - first
                        packet.stream = kept[packet.stream_index]
                        out.mux(packet)
        except Exception as exc:  # noqa: BLE001 (the sound is a bonus: the run goes on)
            log.debug("standard input's sound not kept: %s", exc)
            self.delay = None
        finally:
            os.close(fd)  # the copier then stops writing to its pipe

    def take(self) -> tuple[Path, float] | None:
        """The sound kept up to now and its delay after the first picture, or None where
        there was none (or it could not be read): what came in so far is the end of it."""
        with self._lock:
            self._cut()
        self._demuxer.join(timeout=10)
        if self._demuxer.is_alive() or self.delay is None or not self.path.is_file():
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
        shutil.rmtree(self._folder, ignore_errors=True)
