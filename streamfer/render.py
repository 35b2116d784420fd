"""Overlay: a box per face, its id and active emotions, and six score bars.

Line widths, text and bars scale with the frame, so the overlay reads the same at 320p and 4K.

Example:
    >>> from streamfer.render import Renderer
    >>> image = Renderer().annotate(frame)          # doctest: +SKIP  (a new BGR image)
"""

from __future__ import annotations

import cv2
import numpy as np

from streamfer.frame import Face, Frame
from streamfer.labels import EMOTIONS

# BGR colours, one per emotion, in EMOTIONS order.
COLOURS = ((0, 215, 255), (180, 105, 255), (60, 160, 60), (80, 220, 80), (220, 140, 40),
           (40, 40, 230))
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class Renderer:
    def __init__(self, labels: tuple[str, ...] = EMOTIONS, bars: bool = True) -> None:
        self.labels, self.bars = labels, bars

    def annotate(self, frame: Frame) -> np.ndarray:
        """A copy of ``frame.image`` with every face drawn on it."""
        image = frame.image.copy()
        scale = max(image.shape[:2]) / 1000.0
        for face in frame.faces:
            self._draw_face(image, face, scale)
        return image

    def _draw_face(self, image: np.ndarray, face: Face, scale: float) -> None:
        x, y, w, h = face.box
        thick = max(1, round(2 * scale))
        font = max(0.35, 0.6 * scale)
        colour = COLOURS[self.labels.index(face.labels[0])] if face.labels else (230, 230, 230)
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, thick, cv2.LINE_AA)
        title = f"#{face.face_id} " + (", ".join(face.labels) if face.labels else "-")
        (tw, th), base = cv2.getTextSize(title, _FONT, font, thick)
        ty = y - base - thick if y - th - base - thick > 0 else y + h + th + thick
        tx = max(0, min(x, image.shape[1] - tw))
        cv2.rectangle(image, (tx, ty - th - base // 2), (tx + tw, ty + base), (0, 0, 0), -1)
        cv2.putText(image, title, (tx, ty), _FONT, font, colour, thick, cv2.LINE_AA)
        scores = face.smoothed if face.smoothed is not None else face.scores
        if self.bars and scores is not None:
            self._draw_bars(image, face, scores, scale)

    def _draw_bars(self, image: np.ndarray, face: Face, scores: np.ndarray, scale: float) -> None:
        x, y, w, h = face.box
        ih, iw = image.shape[:2]
        font = max(0.3, 0.42 * scale)
        (label_w, text_h), _ = cv2.getTextSize("Happiness", _FONT, font, 1)
        label_w += 4
        bar_h = text_h + max(3, round(4 * scale))
        bar_w = max(40, round(110 * scale))
        left = x + w + 4 if x + w + 4 + label_w + bar_w < iw else max(0, x - label_w - bar_w - 4)
        top = min(max(0, y), max(0, ih - len(scores) * (bar_h + 2)))
        for i, (label, score) in enumerate(zip(self.labels, scores)):
            by = top + i * (bar_h + 2)
            cv2.rectangle(image, (left, by), (left + label_w + bar_w, by + bar_h), (0, 0, 0), -1)
            cv2.putText(image, label, (left + 2, by + (bar_h + text_h) // 2), _FONT, font,
                        (255, 255, 255), 1, cv2.LINE_AA)
            bx = left + label_w
            fill = int(round(bar_w * float(np.clip(score, 0, 1))))
            cv2.rectangle(image, (bx, by + 1), (bx + fill, by + bar_h - 1), COLOURS[i], -1)
