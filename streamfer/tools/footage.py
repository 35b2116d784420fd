"""Footage with known faces: real face photos pasted, moving, over real background frames,
at chosen sizes, for measuring detection (recall per face size, false positives, ids) on
wide, high-resolution shots that no sample clip covers.

Example (``truth``: one x, y, w, h a face):
    >>> import numpy as np
    >>> from streamfer.tools.footage import Crowd, face_patch
    >>> photo, background = np.full((200, 200, 3), 128, np.uint8), np.zeros((1080, 1920, 3))
    >>> crowd = Crowd([face_patch(photo, (50, 50, 100, 100))], [background], (1920, 1080),
    ...               sides=[32, 64])
    >>> image, truth = crowd.frame(0)
    >>> image.shape, [round(w) for x, y, w, h in truth]
    ((1080, 1920, 3), [32, 64])
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


# The real faces of ../shared/media used to build wide shots (tests and `bench --detectors`).
PHOTOS = ("pyfeat_0-f1-su-ph_surprise.jpg", "pyfeat_0-f15-hao-ph_happy_open.jpg",
          "pyfeat_15-f13-anc-ph_anger_closed.jpg", "pyfeat_45-m7-di-ph_disgust.jpg",
          "pyfeat_single_face_smile.jpg", "pyfeat_multi_face_5people.jpg")
SIDES = (24, 26, 28, 30, 32, 36, 40, 48, 56, 64, 80, 100, 128, 160, 200)
SIZE_BINS = {"24-32": (24, 32), "32-48": (32, 48), "48-100": (48, 100), "100+": (100, 10_000)}


MEDIA_CLIPS = ("face_recognition_short_hamilton_clip.mp4", "pyfeat_no_face_cartoon.mp4",
               "pyfeat_face_noface_hevc.mov")


def media_missing(media: Path) -> list[str]:
    """The files :func:`detector_rows` needs that ``media`` lacks."""
    return [n for n in (*PHOTOS, *MEDIA_CLIPS) if not (Path(media) / n).is_file()]


def media_patches(media: Path) -> list[Patch]:
    """Every face of :data:`PHOTOS` in ``media``, boxed by the product's own detector."""
    from streamfer.detect import FaceDetector
    from streamfer.frame import Frame

    out = []
    with FaceDetector(tiles=0) as detector:
        for name in PHOTOS:
            image = cv2.imread(str(Path(media) / name))
            for face in detector.detect(Frame(name, 0, 0.0, image)).faces:
                out.append(face_patch(image, face.box))
    return out


def media_backgrounds(media: Path) -> list[np.ndarray]:
    """The frames of ``media``'s HEVC clip after its face has left (real, faceless)."""
    from streamfer.sources import open_source

    with open_source(Path(media) / "pyfeat_face_noface_hevc.mov") as source:
        return [f.image for f in source if f.index >= 90]


def recall(found: list[list], truth: list[list], bins=SIZE_BINS) -> dict[str, float]:
    """Per face-size bin (by the true box's side), the share of true face-frames matched by
    a found box; and ``"extra"``: found boxes matching no true face, in all."""
    hits = {name: [0, 0] for name in bins}
    extra = 0
    for boxes, true in zip(found, truth):
        matched = matches(true, boxes)
        extra += len(boxes) - sum(m is not None for m in matched)
        for box, m in zip(true, matched):
            for name, (lo, hi) in bins.items():
                if lo <= box[2] < hi:
                    hits[name][0] += m is not None
                    hits[name][1] += 1
    out = {name: h / n for name, (h, n) in hits.items() if n}
    out["extra"] = extra
    return out


def detector_rows(media: Path, settings=(("both", 0), ("both", 8), ("both", 16), ("both", 32),
                                         ("full", 16))) -> list[dict]:
    """The detector table: for each ``(detector, tiles)``, on wide shots built from
    ``media``'s faces (1920×1080, the 15 :data:`SIDES`, 60 frames; 3840×2160, every other
    side, 30 frames) recall per face size, extra boxes and detection ms a frame; on
    ``media``'s clips, what the CSV would hold (detector and tracker on every frame): rows
    of the stage clip, the five-people photo and the cartoon, ids in the HEVC clip's faceless
    half (frames 85 on)."""
    import time

    from streamfer.detect import FaceDetector
    from streamfer.frame import Frame
    from streamfer.sources import open_source
    from streamfer.track import Tracker

    media = Path(media)
    patches, backgrounds = media_patches(media), media_backgrounds(media)
    shots = {"1080p": Crowd(patches, backgrounds, (1920, 1080), list(SIDES), 60, seed=1),
             "4K": Crowd(patches, backgrounds, (3840, 2160), list(SIDES[::2]), 30, seed=2)}
    frames = {name: [shot.frame(i) for i in range(shot.frames)] for name, shot in shots.items()}
    clips = {"stage": "face_recognition_short_hamilton_clip.mp4",
             "5 people": "pyfeat_multi_face_5people.jpg",
             "cartoon": "pyfeat_no_face_cartoon.mp4", "HEVC": "pyfeat_face_noface_hevc.mov"}
    rows = []
    for model, tiles in settings:
        row = {"detector": model, "tiles": tiles or "off"}
        with FaceDetector(model, tiles=tiles) as detector:
            for name, shot in frames.items():
                detector.reset()
                start, found = time.perf_counter(), []
                for i, (image, _) in enumerate(shot):
                    faces = detector.detect(Frame(name, i, i / 30, image.copy())).faces
                    found.append([f.box for f in faces])
                row[name] = recall(found, [t for _, t in shot])
                row[name]["ms"] = 1000 * (time.perf_counter() - start) / len(shot)
            for name, file in clips.items():
                detector.reset()
                tracker, rows_, late_ids = Tracker(), 0, set()
                with open_source(media / file) as source:
                    for frame in source:
                        faces = tracker.update(detector.detect(frame)).faces
                        rows_ += len(faces)
                        if frame.index >= 85:
                            late_ids |= {f.face_id for f in faces}
                row[name] = len(late_ids) if name == "HEVC" else rows_
        rows.append(row)
    return rows
