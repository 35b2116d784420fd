"""A video whose picture changes shape midway, each frame kept at its own shape within the
first's, with bars, as a player shows it."""

from __future__ import annotations

import logging
from fractions import Fraction

import cv2
import numpy as np

from streamfer.frame import TimestampRuns

log = logging.getLogger(__name__)

SAME_TIME_S = 1e-4  # timestamps closer than this are one frame's (OpenCV's vs PyAV's)
# Key frames this close together (this many within this many seconds): a stream of key
# frames alone, whose shape is not followed (see Shapes)
_DENSE_KEYS = (16, 2.0)


class Shapes:
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
        self._advance((part, time_s - offset + SAME_TIME_S))
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


class PipedShapes(Shapes):
    """:class:`Shapes` of standard input, which cannot be read twice: its key frames come
    from the demuxer beside OpenCV (:meth:`streamfer.sources.stdin.StdinTee.key_frames`)."""

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


class LiveShapes(Shapes):
    """:class:`Shapes` of a live link, whose capture says each frame's own shape as it
    reads it (``shape_read()``: ((w, h), pixels' aspect), or None)."""

    def __init__(self, shape_read, size: tuple[int, int], sar: Fraction | None,
                 name: str) -> None:
        self._shape_read = shape_read
        super().__init__("", size, sar, name=name)

    def restart(self) -> None:
        self.shape, self._place = (self.size, self.sar), None

    def _advance(self, at: tuple[int, float]) -> None:
        if (shape := self._shape_read()) is not None:
            self._shaped(at, shape)

    def close(self) -> None:
        pass


def _shape(w: int, h: int, sar: Fraction) -> str:
    """A picture's size, and its pixels' shape where they are not square."""
    return f"{w}×{h}" + (f" of {sar.numerator}:{sar.denominator} pixels" if sar != 1 else "")
