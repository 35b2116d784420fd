"""The one result type that flows between stages: a :class:`Frame` holding its :class:`Face` s.

Sources create a ``Frame``; detect adds faces (box, score, roll, crop); track sets ``face_id``;
classify sets ``scores``; smooth sets ``smoothed`` and ``labels``; render and the sinks read it.
Beside it, what a frame's pixels and time are read with: :class:`VideoFormat` (how its pixels
are seen), :class:`TimestampRuns` (where its input's timestamps start again, its time goes on).

Example:
    >>> import numpy as np
    >>> frame = Frame(source="clip.mp4", index=0, time_s=0.0, image=np.zeros((4, 4, 3), np.uint8))
    >>> frame.faces.append(Face(box=(0, 0, 2, 2), det_score=0.9))
    >>> frame.faces[0].face_id
    -1
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    det_score: float
    crop: np.ndarray | None = None  # 100×100×3 RGB uint8, the head levelled
    roll: float = 0.0  # head tilt, degrees clockwise as seen (eye line); the crop undoes it
    face_id: int = -1
    scores: np.ndarray | None = None  # raw sigmoid outputs, EMOTIONS order
    smoothed: np.ndarray | None = None
    labels: tuple[str, ...] = ()
    classified: bool = False  # whether the model ran on this face in this frame


def iou(a, b) -> float:
    """Intersection over union of two ``x, y, w, h`` boxes (0 where they do not overlap).

    >>> iou((0, 0, 10, 10), (5, 0, 10, 10))
    0.3333333333333333
    """
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = float(iw * ih)
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


@dataclass
class Frame:
    source: str
    index: int
    time_s: float
    image: np.ndarray  # H×W×3 BGR uint8, as OpenCV delivers it
    faces: list[Face] = field(default_factory=list)
    analysed: bool = False  # False: skipped by --every/--max-fps, faces carried over
    # a live source's (webcam, stream): when it was captured, seconds since the Unix epoch
    # (the wall clock at its first frame, plus time_s); None for a file
    wall_time: float | None = None


@dataclass
class VideoFormat:
    """What a video output carries over from its input besides size and timing: the sample
    aspect ratio (non-square pixels), the colour tags and the field order of an interlaced
    picture (FFmpeg's numbers; None: unset or progressive), and the timecode of its first
    frame (a camera's or an edit's, which an editor lines clips up by)."""

    sar: Fraction | None = None
    color_range: int | None = None
    colorspace: int | None = None
    color_primaries: int | None = None
    color_trc: int | None = None
    field_order: int | None = None  # interlaced (a DVD, a broadcast, 1080i): 2 top field first
    timecode: str | None = None  # SMPTE, HH:MM:SS:FF (HH:MM:SS;FF: drop-frame)

    def timecode_at(self, seconds: float, fps: float) -> str | None:
        """The timecode of the frame ``seconds`` after the first, at ``fps`` (its frames
        counted at the timecode's whole rate: 30 for 29.97; drop-frame skips the numbers
        SMPTE skips, two a minute but every tenth at 29.97). None without one.

        >>> VideoFormat(timecode="10:00:00:00").timecode_at(1.6, 25)
        '10:00:01:15'
        >>> VideoFormat(timecode="00:00:59;29").timecode_at(1 / 29.97, 29.97)
        '00:01:00;02'
        """
        parts = re.fullmatch(r"(\d+):(\d\d):(\d\d)([:;.,])(\d+)", self.timecode or "")
        if parts is None:
            return self.timecode
        h, m, s, mark, f = parts.groups()
        base = max(1, round(fps))
        skip = 2 * base // 30 if mark in ";," and base in (30, 60) else 0  # numbers a minute
        minutes = 60 * int(h) + int(m)
        n = ((60 * minutes + int(s)) * base + int(f) - skip * (minutes - minutes // 10)
             + round(seconds * fps))
        if skip:
            tens, rest = divmod(n, 600 * base - 9 * skip)
            n += 9 * skip * tens + (skip * ((rest - skip) // (60 * base - skip))
                                    if rest > skip else 0)
        return (f"{n // (3600 * base) % 24:02d}:{n // (60 * base) % 60:02d}:"
                f"{n // base % 60:02d}{mark}{n % base:02d}")

    @property
    def pixel_aspect(self) -> Fraction | None:
        """The sample aspect ratio where it is one a picture is made with (from 1:4 to 4:1:
        a DVD's 64:45, HDV's 4:3, an anamorphic lens's 2:1), else None — a header's
        nonsense (60:1) would stretch a frame 60 times to look at it."""
        return self.sar if self.sar and Fraction(1, 4) <= self.sar <= 4 else None


class TimestampRuns:
    """The runs of a stream's timestamps (:meth:`part` of each): where its timestamps go
    back, they start again — two recordings joined (``cat a.ts b.ts``, a recorder's files),
    each timed from its own 0. Frames come in the order they are shown, packets in the
    order they are decoded (their ``dts``): in each, the timestamps of one run only go on.
    Its frames are then timed on from the last before (time_s went back to 0 in the CSV,
    and the video's frames were crowded into a moment), and its key frames' shapes matched
    run by run."""

    def __init__(self) -> None:
        self.count, self.latest = 0, None

    def part(self, time_s: float) -> int:
        if self.latest is not None and time_s < self.latest:
            self.count += 1
        self.latest = time_s
        return self.count
