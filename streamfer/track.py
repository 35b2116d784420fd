"""Stable integer face ids across frames.

Faces are matched to live tracks by IoU with a centre-distance fallback, solved as an
assignment problem (SciPy's Hungarian solver); a track survives ``max_missed`` frames
without a detection, so a missed detection or two keeps the id. Boxes are predicted with a
constant-velocity step so a moving face keeps its id.

Example:
    >>> from streamfer.track import Tracker
    >>> tracker = Tracker()
    >>> frame = tracker.update(frame)        # doctest: +SKIP  (sets face.face_id)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamfer.frame import Frame


@dataclass
class _Track:
    face_id: int
    box: np.ndarray  # x, y, w, h (float)
    velocity: np.ndarray
    missed: int = 0

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity * (1 + self.missed)


def _affinity(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two x,y,w,h boxes, or a smaller centre-distance score when they do not overlap."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    if inter > 0:
        return inter / union
    centre = np.hypot((a[0] + a[2] / 2) - (b[0] + b[2] / 2), (a[1] + a[3] / 2) - (b[1] + b[3] / 2))
    scale = max(a[2], a[3], b[2], b[3])
    return max(0.0, 0.3 * (1 - centre / scale))  # < 0.3: an overlap always wins


class Tracker:
    """Assigns ``face_id`` to each face of each frame; ids are never reused."""

    def __init__(self, max_missed: int = 5, min_affinity: float = 0.05) -> None:
        self.max_missed, self.min_affinity = max_missed, min_affinity
        self._tracks: list[_Track] = []
        self._next_id = 1

    @property
    def live_ids(self) -> set[int]:
        return {t.face_id for t in self._tracks}

    def update(self, frame: Frame) -> Frame:
        boxes = [np.asarray(f.box, np.float64) for f in frame.faces]
        matched: dict[int, _Track] = {}
        if self._tracks and boxes:
            cost = np.array([[-_affinity(t.predicted(), b) for b in boxes] for t in self._tracks])
            for ti, fi in zip(*linear_sum_assignment(cost)):
                if -cost[ti, fi] >= self.min_affinity:
                    matched[fi] = self._tracks[ti]
        for track in self._tracks:
            track.missed += 1
        for fi, (face, box) in enumerate(zip(frame.faces, boxes)):
            track = matched.get(fi)
            if track is None:
                track = _Track(self._next_id, box, np.zeros(4))
                self._next_id += 1
                self._tracks.append(track)
            else:
                step = (box - track.box) / track.missed
                track.velocity = 0.5 * track.velocity + 0.5 * step
                track.box = box
            track.missed = 0
            face.face_id = track.face_id
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return frame
