"""A source's sound, read beside its picture where OpenCV gives none (a video piped in, a
live link): kept as it comes for an output video (:func:`sound_file`), or decoded as it
comes for a video sent on (:class:`Heard`)."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

HEARD_S = 30.0  # the most sound decoded as it came that nothing took (a sent stream cut)
WAIT_S = 2.0  # the most a sent stream waits to know whether its source has sound


def sound_file(folder: Path, tracks) -> tuple:
    """A file in ``folder`` that keeps ``tracks``' packets as they come (copied, not
    decoded), and each track's stream in it: ``(container, {track index: stream}, path)``.
    Matroska, or NUT (FFmpeg's own, which takes every codec FFmpeg has) where Matroska does
    not take one of them: an IP camera's G.711 (``pcm_alaw``, ``pcm_mulaw``) was left out.
    Each stream keeps its track's language and default flag. ValueError where neither
    takes them."""
    import av

    for name, kind in (("sound.mka", "matroska"), ("sound.nut", "nut")):
        path = folder / name
        out = av.open(str(path), "w", format=kind)
        try:
            kept = {track.index: out.add_stream_from_template(track) for track in tracks}
        except ValueError as exc:
            refused = exc
            try:
                out.close()
            except Exception:  # noqa: BLE001 (nothing written yet)
                pass
            path.unlink(missing_ok=True)
            continue
        for track in tracks:
            kept[track.index].metadata.update(track.metadata)
            kept[track.index].disposition = track.disposition
        return out, kept, path
    raise refused


class Heard:
    """Sound decoded as it comes, for a video sent on: its frames in turn, each with its
    time from the first picture (:meth:`heard`; the oldest let go past :data:`HEARD_S`,
    where nothing took them), and its channels once its source says (:meth:`channels`)."""

    def __init__(self) -> None:
        self._frames: deque = deque()  # (time from the first picture, decoded frame)
        self._channels: int | None = None  # 0: none
        self._changed = threading.Condition()

    def opened(self, channels: int) -> None:
        """Its source has ``channels`` (0: no sound) — known once; a later connection's
        sound counts where the first had none."""
        with self._changed:
            if self._channels is None or channels and not self._channels:
                self._channels = channels
                self._changed.notify_all()

    def packet(self, packet, shift: float) -> None:
        """A packet of the sound, decoded: each frame at its timestamp (else its packet's)
        plus ``shift`` seconds. A damaged packet is a moment's sound left out."""
        import av

        try:
            frames = packet.decode()
        except (av.FFmpegError, ValueError):
            return
        for frame in frames:
            pts, base = (frame.pts, frame.time_base) if frame.pts is not None \
                else (packet.pts, packet.time_base)
            at = float(pts * (base or packet.time_base)) + shift
            with self._changed:
                self._frames.append((at, frame))
                while self._frames and self._frames[0][0] < at - HEARD_S:
                    self._frames.popleft()

    def channels(self) -> int:
        """Its channels, 0 where it has none (waited for, :data:`WAIT_S` at most)."""
        deadline = time.monotonic() + WAIT_S
        with self._changed:
            while self._channels is None and time.monotonic() < deadline:
                self._changed.wait(0.05)
            return self._channels or 0

    def heard(self):
        """The next frame that came, ``(time from the first picture, frame)``, or None
        where none has come since (more may come)."""
        with self._changed:
            return self._frames.popleft() if self._frames else None
