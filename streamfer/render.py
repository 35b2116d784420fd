"""Overlay: a box per face, its id and active emotions, and six score bars.

Line widths, text and bars scale with the frame, so the overlay reads the same at 320p and 4K;
titles and panels never cover a face or each other (see :meth:`Renderer.layout`).

Example (a new BGR image; the frame's own is left as it was):
    >>> import numpy as np
    >>> from streamfer.frame import Face, Frame
    >>> from streamfer.render import Renderer
    >>> frame = Frame("clip.mp4", 0, 0.0, np.zeros((240, 320, 3), np.uint8))
    >>> frame.faces.append(Face(box=(100, 60, 80, 80), det_score=0.9, face_id=1))
    >>> image = Renderer().annotate(frame)
    >>> image.shape, image is frame.image, bool(frame.image.any())
    ((240, 320, 3), False, False)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import cv2
import numpy as np

from streamfer.frame import Face, Frame
from streamfer.labels import EMOTIONS

# BGR colours, one per emotion, in EMOTIONS order.
COLOURS = ((0, 215, 255), (180, 105, 255), (60, 160, 60), (80, 220, 80), (220, 140, 40),
           (40, 40, 230))
_FONT = cv2.FONT_HERSHEY_SIMPLEX


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass
class Placement:
    """Where one face's overlay goes: its title (id and labels) and, where there is room,
    its score panel; ``None`` for a panel that fits nowhere (the title alone is drawn)."""

    face: Face
    title: Rect
    panel: Rect | None
    text: str = ""  # the title's text: full, compact ("#3 Sadness") or the id alone


class Renderer:
    """Draws each face's box, a title (id and active emotions) and a panel of six score bars.

    Titles and panels are placed so that they cover no face and no other title or panel:
    every face's title first, then the panels, largest face first: right of its face, else
    left, below or above; where it fits nowhere the face has its title alone. In a crowd
    (``CROWD`` faces or more) titles are compact and only the ``CROWD_PANELS`` largest faces
    get a panel (the CSV has every face's scores). Sizes scale with the frame.
    """

    CROWD, CROWD_PANELS = 10, 4

    def __init__(self, labels: tuple[str, ...] = EMOTIONS, bars: bool = True) -> None:
        self.labels, self.bars = labels, bars
        self._over: list[np.ndarray] | None = None  # non-square pixels' canvases

    def annotate(self, frame: Frame, pixel_aspect: float | None = None,
                 mirrored: bool = False) -> np.ndarray:
        """A copy of ``frame.image`` with every face drawn on it. ``pixel_aspect``: the
        frame's sample aspect ratio; where its pixels are not square (a DVD's 64:45) the
        overlay is drawn as it will be seen, then fitted to the frame's pixels (its text
        was as much wider on screen). ``mirrored``: the picture as a mirror shows it (a
        selfie view), its overlay drawn on it the right way round, readable."""
        if mirrored:
            iw = frame.image.shape[1]
            frame = replace(frame, image=cv2.flip(frame.image, 1), faces=[
                replace(f, box=(iw - f.box[0] - f.box[2], *f.box[1:])) for f in frame.faces])
        image = frame.image if mirrored else frame.image.copy()
        aspect = float(pixel_aspect or 1)
        if aspect == 1 or not frame.faces:
            scale = max(image.shape[:2]) / 1000.0
            for place in self.layout(frame.faces, image.shape, scale):
                self._draw(image, place, scale)
            return image
        ih, iw = image.shape[:2]
        seen = max(1, round(iw * aspect))
        faces = [replace(f, box=(round(f.box[0] * aspect), f.box[1],
                                 max(1, round(f.box[2] * aspect)), f.box[3]))
                 for f in frame.faces]
        # laid out and drawn at the size it is seen: the boxes straight on the frame (lines
        # stay lines), titles and panels over black and over white — the two give each
        # pixel's coverage (the text is antialiased) and its colour times it — then fitted
        # into the frame's pixels, rectangle by rectangle
        if self._over is None or self._over[0].shape != (ih, seen, 3):  # kept: made once
            self._over = [np.zeros((ih, seen, 3), np.uint8),
                          np.full((ih, seen, 3), 255, np.uint8)]
        over = self._over
        scale = max(ih, seen) / 1000.0
        rects = []
        for face in frame.faces:
            self._box(image, face, scale)
        for place in self.layout(faces, over[0].shape, scale):
            for canvas in over:
                self._draw(canvas, place, scale, box=False)
            # (a filled cv2.rectangle takes its far corner too: one pixel more)
            rects += [(r[0], r[1], min(seen, r[2] + 1), min(ih, r[3] + 1))
                      for r in (place.title, place.panel) if r]
        for x0, y0, x1, y1 in rects:
            a0, a1 = int(x0 / aspect), min(iw, int(np.ceil(x1 / aspect)))
            d0, d1 = round(a0 * aspect), min(seen, round(a1 * aspect))
            black, white = (c[y0:y1, d0:d1].astype(np.float32) for c in over)
            alpha = 1 - (white[..., :1] - black[..., :1]) / 255  # one channel tells
            size = (a1 - a0, y1 - y0)
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)[..., None]
            colour = cv2.resize(black, size, interpolation=cv2.INTER_AREA)
            part = image[y0:y1, a0:a1]
            part[:] = np.clip(part * (1 - alpha) + colour + 0.5, 0, 255).astype(np.uint8)
        for (x0, y0, x1, y1), fill in itertools.product(rects, (0, 255)):
            over[fill // 255][y0:y1, x0:x1] = fill  # all that was drawn on them
        return image

    def _sizes(self, scale: float) -> dict:
        thick = max(1, round(2 * scale))
        title_font, bar_font = max(0.35, 0.6 * scale), max(0.3, 0.42 * scale)
        (label_w, text_h), _ = cv2.getTextSize("Happiness", _FONT, bar_font, 1)
        bar_h = text_h + max(3, round(4 * scale))
        return {"thick": thick, "title_font": title_font, "bar_font": bar_font,
                "label_w": label_w + 4, "text_h": text_h, "bar_h": bar_h,
                "bar_w": max(40, round(110 * scale)), "gap": max(2, round(4 * scale))}

    @staticmethod
    def _titles(face: Face) -> tuple[str, str, str]:
        """The title in full, compact (the first label) and as the id alone."""
        first = face.labels[0] if face.labels else "-"
        return (f"#{face.face_id} " + (", ".join(face.labels) if face.labels else "-"),
                f"#{face.face_id} {first}" + ("+" if len(face.labels) > 1 else ""),
                f"#{face.face_id}")

    def layout(self, faces: list[Face], shape: tuple, scale: float) -> list[Placement]:
        """Titles and panels for ``faces`` in a frame of ``shape`` (h, w, …), none covering
        a face box or another title or panel (titles may sit inside their own box when
        nothing else is free)."""
        ih, iw = shape[:2]
        z = self._sizes(scale)
        boxes = [(x, y, x + w, y + h) for x, y, w, h in (f.box for f in faces)]
        taken: list[Rect] = list(boxes)
        crowd = len(faces) >= self.CROWD
        placements = []
        for face, box in sorted(zip(faces, boxes), key=lambda fb: (fb[1][1], fb[1][0])):
            x0, y0, x1, y1 = box
            title = None
            for text in dict.fromkeys(self._titles(face)[crowd:]):  # full, then shorter
                (tw, th), base = cv2.getTextSize(text, _FONT, z["title_font"], z["thick"])
                tw, th = tw + 4, th + base + 4
                title = self._free(taken, iw, ih, [
                    (x0, y0 - th - 1, tw, th), (x0, y1 + 1, tw, th),
                    (x1 - tw, y0 - th - 1, tw, th), (x1 + 1, y0, tw, th),
                    (x0 - tw - 1, y0, tw, th)])
                if title:
                    break
            if title is None:  # nowhere free: the id, inside its own box (clipped to it)
                title = self._clamp((x0 + 1, y0 + 1, min(tw, x1 - x0 - 2), th), iw, ih)
            taken.append(title)
            placements.append(Placement(face, title, None, text))
        if not self.bars:
            return placements
        pw, ph = z["label_w"] + z["bar_w"], len(self.labels) * (z["bar_h"] + 2)
        g = z["gap"]
        largest = sorted(placements, key=lambda p: -p.face.box[2] * p.face.box[3])
        for place in largest[:self.CROWD_PANELS] if crowd else largest:
            if place.face.smoothed is None and place.face.scores is None:
                continue
            x, y, w, h = place.face.box
            x0, y0, x1, y1 = x, y, x + w, y + h
            th = place.title[3] - place.title[1]
            place.panel = self._free(taken, iw, ih, [
                (x1 + g, y0, pw, ph), (x0 - g - pw, y0, pw, ph),
                (x0, y1 + g + th, pw, ph), (x0, y0 - g - th - ph, pw, ph),
                (x1 + g, y1 - ph, pw, ph), (x0 - g - pw, y1 - ph, pw, ph)])
            if place.panel:
                taken.append(place.panel)
        return placements

    @staticmethod
    def _clamp(rect, iw: int, ih: int) -> Rect:
        x, y, w, h = rect
        x, y = max(0, min(x, iw - w)), max(0, min(y, ih - h))
        return (x, y, x + w, y + h)

    def _free(self, taken: list[Rect], iw: int, ih: int, candidates) -> Rect | None:
        """The first candidate (x, y, w, h), nudged into the frame, that overlaps nothing."""
        for x, y, w, h in candidates:
            if w > iw or h > ih:
                continue
            rect = self._clamp((x, y, w, h), iw, ih)
            if not any(_overlaps(rect, other) for other in taken):
                return rect
        return None

    def _colour(self, face: Face) -> tuple[int, int, int]:
        return COLOURS[self.labels.index(face.labels[0])] if face.labels else (230, 230, 230)

    def _box(self, image: np.ndarray, face: Face, scale: float) -> None:
        x, y, w, h = face.box
        cv2.rectangle(image, (x, y), (x + w, y + h), self._colour(face),
                      self._sizes(scale)["thick"], cv2.LINE_AA)

    def _draw(self, image: np.ndarray, place: Placement, scale: float,
              box: bool = True) -> None:
        """``place`` drawn on ``image``: its title and panel, and the face's box (``box``)."""
        z, face = self._sizes(scale), place.face
        colour = self._colour(face)
        if box:
            self._box(image, face, scale)
        tx0, ty0, tx1, ty1 = place.title
        area = image[ty0:ty1, tx0:tx1]  # drawing into the view clips the text to it
        area[:] = 0
        _, base = cv2.getTextSize(place.text, _FONT, z["title_font"], z["thick"])
        cv2.putText(area, place.text, (2, ty1 - ty0 - base - 2), _FONT, z["title_font"],
                    colour, z["thick"], cv2.LINE_AA)
        scores = face.smoothed if face.smoothed is not None else face.scores
        if place.panel is None or scores is None:
            return
        left, top = place.panel[:2]
        for i, (label, score) in enumerate(zip(self.labels, scores)):
            by = top + i * (z["bar_h"] + 2)
            cv2.rectangle(image, (left, by), (left + z["label_w"] + z["bar_w"], by + z["bar_h"]),
                          (0, 0, 0), -1)
            cv2.putText(image, label, (left + 2, by + (z["bar_h"] + z["text_h"]) // 2), _FONT,
                        z["bar_font"], (255, 255, 255), 1, cv2.LINE_AA)
            bx = left + z["label_w"]
            fill = int(round(z["bar_w"] * float(np.clip(score, 0, 1))))
            cv2.rectangle(image, (bx, by + 1), (bx + fill, by + z["bar_h"] - 1), COLOURS[i], -1)
