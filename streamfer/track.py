"""Stable integer face ids across frames.

Faces are matched to live tracks by IoU with a centre-distance fallback, solved as an
assignment problem (SciPy's Hungarian solver), with each track's box predicted one step
ahead by its velocity, so that moving faces, and faces that cross, keep their ids. A match
is refused when the face's size changes more than a moving face's can between frames
(``max_scale_change``), and every track ends at a scene cut (the frame's colour histogram
jumps: OpenCV's Bhattacharyya distance above ``cut_distance``), so an id never passes from
one person to another across a cut.

A new face gets its id only when it is found in ``min_hits`` consecutive analysed frames:
a detector's one-frame flicker gets no id, no CSV row and no overlay (faces in a source's
first frame get theirs at once, so a photo has its faces). A track survives ``max_missed``
frames without a detection, so a missed detection or two keeps the id.

Example (it sets each face's ``face_id``):
    >>> import numpy as np
    >>> from streamfer.frame import Face, Frame
    >>> from streamfer.track import Tracker
    >>> tracker = Tracker()
    >>> frame = Frame("clip.mp4", 0, 0.0, np.zeros((240, 320, 3), np.uint8), analysed=True)
    >>> frame.faces.append(Face(box=(100, 60, 80, 80), det_score=0.9))
    >>> tracker.update(frame).faces[0].face_id
    1
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from streamfer.frame import Frame, iou


@dataclass
class _Track:
    box: np.ndarray  # x, y, w, h (float)
    velocity: np.ndarray
    face_id: int = 0  # 0: tentative (not yet seen in min_hits frames)
    missed: int = 0
    hits: int = 1

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity * (1 + self.missed)


def _affinity(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two x,y,w,h boxes, or a smaller centre-distance score when they do not
    overlap (within one face size of the track's box ``a``)."""
    overlap = iou(a, b)
    if overlap > 0:
        return overlap
    centre = np.hypot((a[0] + a[2] / 2) - (b[0] + b[2] / 2), (a[1] + a[3] / 2) - (b[1] + b[3] / 2))
    return max(0.0, 0.3 * (1 - centre / max(a[2], a[3])))  # < 0.3: an overlap always wins


def _scale_change(a: np.ndarray, b: np.ndarray) -> float:
    return max(a[2] / b[2], b[2] / a[2])


def _look(image: np.ndarray) -> np.ndarray:
    """A frame's hue/saturation histogram, on a thumbnail (scene-cut detection)."""
    step = max(1, min(image.shape[:2]) // 144)  # every n-th pixel first: 4K costs what SD does
    small = cv2.resize(image[::step, ::step], (64, 36), interpolation=cv2.INTER_AREA)
    hist = cv2.calcHist([cv2.cvtColor(small, cv2.COLOR_BGR2HSV)], [0, 1], None, [16, 8],
                        [0, 180, 0, 256])
    return cv2.normalize(hist, hist).flatten()


class Tracker:
    """Assigns ``face_id`` to each face of each frame and drops the faces of tentative
    tracks; ids are never reused. ``cut_distance=None`` turns scene-cut detection off."""

    def __init__(self, max_missed: int = 15, min_affinity: float = 0.05, min_hits: int = 2,
                 max_scale_change: float = 1.5, cut_distance: float | None = 0.35) -> None:
        self.max_missed, self.min_affinity, self.min_hits = max_missed, min_affinity, min_hits
        self.max_scale_change, self.cut_distance = max_scale_change, cut_distance
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._frames = 0
        self._look: np.ndarray | None = None
        self.cuts = 0

    @property
    def live_ids(self) -> set[int]:
        return {t.face_id for t in self._tracks if t.face_id}

    def _cut(self, frame: Frame) -> bool:
        if self.cut_distance is None or frame.image is None or frame.image.size == 0:
            return False
        look, self._look = self._look, _look(frame.image)
        return look is not None and cv2.compareHist(
            look, self._look, cv2.HISTCMP_BHATTACHARYYA) > self.cut_distance

    def update(self, frame: Frame) -> Frame:
        if self._cut(frame):
            self._tracks, self.cuts = [], self.cuts + 1
        boxes = [np.asarray(f.box, np.float64) for f in frame.faces]
        matched: dict[int, _Track] = {}
        if self._tracks and boxes:
            cost = np.array([[self._cost(t, b) for b in boxes] for t in self._tracks])
            for ti, fi in zip(*linear_sum_assignment(cost)):
                if -cost[ti, fi] >= self.min_affinity:
                    matched[fi] = self._tracks[ti]
        for track in self._tracks:
            track.missed += 1
        kept = []
        for fi, (face, box) in enumerate(zip(frame.faces, boxes)):
            track = matched.get(fi)
            if track is None:
                track = _Track(box, np.zeros(4))
                self._tracks.append(track)
            else:
                step = (box - track.box) / track.missed
                track.velocity = 0.5 * track.velocity + 0.5 * step
                track.box, track.hits = box, track.hits + 1
            track.missed = 0
            if not track.face_id and (track.hits >= self.min_hits or self._frames == 0):
                track.face_id, self._next_id = self._next_id, self._next_id + 1
            if track.face_id:
                face.face_id = track.face_id
                kept.append(face)
        frame.faces = kept
        # a tentative track that misses a frame was a flicker
        self._tracks = [t for t in self._tracks
                        if t.missed <= (self.max_missed if t.face_id else 0)]
        self._frames += 1
        return frame

    def _cost(self, track: _Track, box: np.ndarray) -> float:
        if _scale_change(track.box, box) > self.max_scale_change:
            return 0.0
        return -_affinity(track.predicted(), box)
