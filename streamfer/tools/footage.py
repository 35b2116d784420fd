"""Footage with known faces: real face photos pasted, moving, over real background frames,
at chosen sizes, for measuring detection (recall per face size, false positives, ids) on
wide, high-resolution shots that no sample clip covers.

Example:
    >>> from streamfer.tools.footage import Crowd, face_patch
    >>> crowd = Crowd([face_patch(photo, box)], [background], (1920, 1080), sides=[32, 64])
    >>> image, truth = crowd.frame(0)      # doctest: +SKIP  (truth: one x, y, w, h a face)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class Patch:
    image: np.ndarray  # BGR, square, the face with hair and some surroundings
    mask: np.ndarray  # float32 0..1, an elliptic feathered mask of the head
    box: tuple[float, float, float, float]  # the face's x, y, w, h in ``image``


def face_patch(image: np.ndarray, box, grow: float = 1.8) -> Patch:
    """The square ``grow`` times the face ``box`` (x, y, w, h, as the detector gives it)
    around its centre, the borders replicated where it leaves ``image``."""
    x, y, w, h = box
    side = int(max(w, h) * grow)
    x0, y0 = int(x + w / 2 - side / 2), int(y + h / 2 - side / 2)
    padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_REPLICATE)
    part = padded[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side].copy()
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (side // 2, side // 2), (int(w * 0.75), int(h * 0.9)), 0, 0, 360, 1, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), side * 0.06)
    return Patch(part, mask, (x - x0, y - y0, w, h))


class Crowd:
    """``len(sides)`` faces (``patches`` in turn), face k with a box side of ``sides[k]`` px
    growing by ``grow`` over ``frames`` frames (walking toward the camera), each moving on its
    own path inside its own cell of a grid over the frame (faces never overlap), pasted over
    ``backgrounds`` (frames in turn, resized to ``size``)."""

    def __init__(self, patches: list[Patch], backgrounds: list[np.ndarray], size: tuple[int, int],
                 sides: list[int], frames: int = 60, grow: float = 1.15, seed: int = 0) -> None:
        self.patches, self.size, self.sides, self.frames, self.grow = patches, size, sides, \
            frames, grow
        self.backgrounds = backgrounds
        n = len(sides)
        cols = int(np.ceil(np.sqrt(n * size[0] / size[1])))
        rows = int(np.ceil(n / cols))
        rng = np.random.default_rng(seed)
        cells = rng.permutation(cols * rows)[:n]
        self._cells = [((c % cols) * size[0] / cols, (c // cols) * size[1] / rows,
                        size[0] / cols, size[1] / rows) for c in cells]
        self._phase = rng.uniform(0, 2 * np.pi, (n, 2))

    def box(self, k: int, i: int) -> tuple[float, float, float, float]:
        """Face ``k``'s box in frame ``i``."""
        side = self.sides[k] * self.grow ** (i / max(1, self.frames - 1))
        cx, cy, cw, ch = self._cells[k]
        # a walker's pace: at most ~0.15 of the face's side a frame (a person of 8 face
        # heights walking across at 1.4 m/s, 30 fps), inside the cell
        pace = 0.15 * side * max(1, self.frames - 1) / (2 * np.pi)
        room_x, room_y = (min(max(0.0, c - side * 1.9), 2 * pace) for c in (cw, ch))
        t = i / max(1, self.frames - 1)
        x = cx + (cw - side) / 2 + room_x / 2 * np.sin(self._phase[k, 0] + 2 * np.pi * t)
        y = cy + (ch - side) / 2 + room_y / 2 * np.sin(self._phase[k, 1] + 2 * np.pi * t)
        return (x, y, side, side)

    def frame(self, i: int) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
        """Frame ``i`` (BGR) and the box of each face in it."""
        canvas = cv2.resize(self.backgrounds[i % len(self.backgrounds)], self.size,
                            interpolation=cv2.INTER_LINEAR)
        boxes = []
        for k in range(len(self.sides)):
            box = self.box(k, i)
            _paste(canvas, self.patches[k % len(self.patches)], box)
            boxes.append(box)
        return canvas, boxes

    def write(self, path: Path, fps: float = 30.0) -> list[list[tuple[float, ...]]]:
        """The clip as a video file; returns each frame's boxes."""
        from streamfer.sinks import VideoSink

        truth = []
        with VideoSink(path, fps, self.size) as video:
            for i in range(self.frames):
                image, boxes = self.frame(i)
                video.write(image)
                truth.append(boxes)
        return truth


def _paste(canvas: np.ndarray, patch: Patch, box) -> None:
    """``patch`` scaled so its face fills ``box``, blended in by its mask."""
    k = box[2] / patch.box[2]
    n = max(2, int(round(patch.image.shape[0] * k)))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    image = cv2.resize(patch.image, (n, n), interpolation=interp).astype(np.float32)
    mask = cv2.resize(patch.mask, (n, n), interpolation=cv2.INTER_LINEAR)[..., None]
    x0 = int(round(box[0] - patch.box[0] * k))
    y0 = int(round(box[1] - patch.box[1] * k))
    h, w = canvas.shape[:2]
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + n), min(h, y0 + n)
    if xb <= xa or yb <= ya:
        return
    under = canvas[ya:yb, xa:xb].astype(np.float32)
    part, alpha = image[ya - y0:yb - y0, xa - x0:xb - x0], mask[ya - y0:yb - y0, xa - x0:xb - x0]
    canvas[ya:yb, xa:xb] = (under * (1 - alpha) + part * alpha).round().astype(np.uint8)


def matches(truth, boxes, min_iou: float = 0.3) -> list[int | None]:
    """For each true box, the index of the found box that overlaps it best (IoU at least
    ``min_iou``; each found box used once), or None."""
    from streamfer.frame import iou

    used, out = set(), []
    for t in truth:
        scores = [(iou(t, b), j) for j, b in enumerate(boxes) if j not in used]
        best = max(scores, default=(0.0, None))
        if best[0] >= min_iou:
            used.add(best[1])
            out.append(best[1])
        else:
            out.append(None)
    return out
