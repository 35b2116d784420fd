"""Face detection with the MediaPipe Tasks ``FaceDetector`` and square face crops.

BlazeFace sees 128 (short range) or 192 px (full range): a whole 1080p frame is shrunk ten
times and a 100-px face becomes a 10-px one, below what the model finds. Large frames are
therefore also looked at in tiles (see :func:`tile_grid`): square parts of the frame sized
so that a face of the smallest size wanted (``min_face``, at least :data:`TILE_FACE`) comes
out large enough for the full-range model. A sweep over every tile costs many detections,
so each analysed frame looks at a share of the tiles in turn (the whole grid every
``tiles`` analysed frames; a source's first frame, a photo, at once), and a face found once
is looked for again on every frame in a small square around where it was (its *region*,
with the short-range model, the face large in it). The whole frame is still seen on every
frame, for the large faces. Measured on the synthetic footage of the tests (README).

Example:
    >>> from streamfer.detect import FaceDetector
    >>> with FaceDetector() as detector:                       # doctest: +SKIP
    ...     frame = detector.detect(frame)      # adds Face(box, det_score, crop) to frame.faces
"""

from __future__ import annotations

import weakref
from pathlib import Path

import cv2
import numpy as np

from streamfer.assets import native_stderr_silenced, resolve
from streamfer.frame import Face, Frame, iou
from streamfer.model import INPUT_SIZE

MODELS = {"short": "face_detection_short_range.tflite",
          "full": "face_detection_full_range_sparse.tflite"}


# How FER+ frames its faces, measured with this detector on 536 FER+ Valid faces (each padded
# into a larger canvas so the detector sees it whole): the image side is 1.20× the box side
# (median; quartiles 1.10–1.37) and the box centre lies 0.057 of the image side below the
# image centre. Crops framed the same way look to the model like its training faces.
MARGIN = 0.2
RAISE = 0.057
MAX_ROLL = 45.0  # degrees: eye lines steeper than this are taken for wrong keypoints
# frames larger than this are shrunk (by a whole factor: OpenCV's fast path; 1080p and 4K to
# 640×360) before the whole frame is looked at, boxes scaled back; the models see 192 at most
DETECT_MAX_SIDE = 640

# What the full-range model finds, measured on real faces (../shared/media) pasted into real
# backgrounds, one 192-px image each: faces of 12 px or more 100 %, 10 px 95 %, 8 px 85 %;
# the short-range model (128 px): 16 px 100 %, 13 px 51 %.
FULL_SIDE, FULL_FACE = 192, 12  # the full-range model's input, the face side it finds
SHORT_SIDE = 128
TILE_FACE = 24  # tiles look for faces down to this side (or --min-face, if larger)
TILE_PERIOD = 16  # default: the whole grid every 16 analysed frames (README: measured)
REGION = 2.5  # a known face is looked for in a square 2.5 times its side (motion)
TILE_SCORE = 0.15  # a face new in a tile (or to be followed) needs min_score + this
MOSAIC = 2  # the regions of up to 2×2 known faces go through the short-range model at once


def square_crop(image: np.ndarray, box: tuple[int, int, int, int], margin: float = MARGIN,
                size: int = INPUT_SIZE, raise_: float = RAISE, roll: float = 0.0) -> np.ndarray:
    """Square crop around ``box`` (x, y, w, h) grown by ``margin`` and centred ``raise_`` of
    its side above the box centre (FER+'s framing), padded at the borders by edge replication
    so the face keeps its aspect, resized to size×size; BGR in, RGB out. ``roll``: the head's
    tilt in degrees (its eye line, clockwise as seen): the crop is turned with the head, so
    the face comes out upright as FER+'s faces are."""
    x, y, w, h = box
    side = round(max(w, h) * (1 + margin))
    turn = np.deg2rad(roll)
    # the crop's centre lies above the box centre along the head's own up direction
    cx = x + w / 2 + raise_ * side * np.sin(turn)
    cy = y + h / 2 - raise_ * side * np.cos(turn)
    # an upright square that holds the turned one, cut and shrunk first (area averaging keeps
    # large faces free of aliasing), then turned about its centre and its middle kept
    cover = side * (abs(np.cos(turn)) + abs(np.sin(turn)))
    out = int(np.ceil(size * cover / side / 2)) * 2 if roll else size
    outer = int(round(side * out / size))
    x0, y0 = int(round(cx - outer / 2)), int(round(cy - outer / 2))
    ih, iw = image.shape[:2]
    pads = (max(0, -y0), max(0, y0 + outer - ih), max(0, -x0), max(0, x0 + outer - iw))
    crop = image[max(0, y0):min(ih, y0 + outer), max(0, x0):min(iw, x0 + outer)]
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if outer > out else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (out, out), interpolation=interp)
    if roll:
        turned = cv2.getRotationMatrix2D(((out - 1) / 2, (out - 1) / 2), roll, 1.0)
        turned[:, 2] -= (out - size) / 2  # keep the middle size×size
        crop = cv2.warpAffine(crop, turned, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def eye_roll(keypoints, width: int, height: int) -> float:
    """The head's tilt (degrees, clockwise as seen) from BlazeFace's first two keypoints, the
    eyes (normalised); 0 where they are missing or the angle is beyond ``MAX_ROLL`` (on the
    real footage measured, such eye lines came from misplaced keypoints or from no face)."""
    if not keypoints or len(keypoints) < 2:
        return 0.0
    a, b = keypoints[:2]
    roll = float(np.degrees(np.arctan2((b.y - a.y) * height, (b.x - a.x) * width)))
    return roll if abs(roll) <= MAX_ROLL else 0.0


def tile_grid(width: int, height: int, min_face: int = 0) -> list[tuple[int, int, int]]:
    """Square tiles ``(x, y, side)`` over a ``width``×``height`` frame, in levels: the finest
    tiles are sized so that a face of ``max(min_face, TILE_FACE)`` px comes out large enough
    for the full-range model, each next level's twice as large, up to the level whose tiles
    hold the largest face the whole frame alone misses; neighbours overlap by more than the
    largest face their level must find (so every such face lies whole in one tile). ``[]``
    where the whole frame is enough.

    >>> [len(tile_grid(*size)) for size in ((1920, 1080), (3840, 2160), (640, 360))]
    [32, 116, 2]
    >>> tile_grid(320, 240)
    []
    """
    reach = FULL_FACE * max(width, height) / FULL_SIDE  # the smallest face the whole frame finds
    low, tiles = max(min_face, TILE_FACE), []
    while low < reach:
        side = min(round(low * FULL_SIDE / FULL_FACE), width, height)
        last = side >= 2 * reach or side == min(width, height)  # holds the whole frame's misses
        overlap = min(round(1.25 * (reach if last else 2 * low)), side // 2)
        spans = []
        for extent in (width, height):
            n = max(1, int(np.ceil((extent - overlap) / (side - overlap))))
            spans.append([round(i * (extent - side) / (n - 1)) if n > 1 else 0 for i in range(n)])
        tiles += [(x, y, side) for y in spans[1] for x in spans[0]]
        if last:
            break
        low *= 2
    return tiles


Found = tuple[tuple[int, int, int, int], float, float]  # box, score, roll


class FaceDetector:
    """MediaPipe BlazeFace: ``model="short"`` (faces within ~2 m: webcams, selfies),
    ``"full"`` (farther, smaller faces) or ``"both"`` (the two merged: a face either finds,
    overlaps resolved by the higher score; recorded footage, where faces are near and far).
    ``level``: crop a tilted head upright (turned by its eye line, as FER+'s faces are).
    ``tiles``: how many analysed frames one sweep over every tile of a large frame takes
    (1: every tile on every frame; 0: the whole frame only; None: :data:`TILE_PERIOD`);
    see the module's text.
    One detector follows one source at a time: :meth:`reset` between sources, with the
    source's pixel aspect (a DVD's, a DV or HDV camcorder's video has non-square pixels: its
    faces are found and cropped as they are seen, the frame stretched to square pixels, and
    their boxes given back in the frame's own pixels)."""

    def __init__(self, model: str = "both", model_path: str | Path | None = None,
                 min_score: float = 0.6, min_face: int = 0, margin: float = MARGIN,
                 level: bool = True, tiles: int | None = None) -> None:
        if model not in (*MODELS, "both"):
            raise ValueError(f"detector model must be short, full or both, not {model!r}")
        if model == "both" and model_path is not None:
            raise ValueError("a detector file path names one model: use short or full")
        names = ("short", "full") if model == "both" else (model,)
        self._detectors, self._models = [], {}
        # closed at exit too if never closed: MediaPipe's own finaliser, left to the
        # interpreter's teardown, fails with a traceback on finding its C library gone
        self._closer = weakref.finalize(self, _close_all, self._models)
        try:
            for name in names:
                self._models[name] = _open(resolve(MODELS[name], model_path), min_score)
                self._detectors.append(self._models[name])
            if tiles is None or tiles:  # tiles need the full-range model, regions short-range
                for name in ("full", "short"):
                    if name not in self._models:
                        self._models[name] = _open(resolve(MODELS[name]), min_score)
        except BaseException:
            self.close()
            raise
        self.min_face, self.margin, self.level = min_face, margin, level
        self.tile_score = min(0.95, min_score + TILE_SCORE)
        self.tiles = TILE_PERIOD if tiles is None else max(0, int(tiles))
        self.reset()

    def reset(self, pixel_aspect: float | None = None) -> None:
        """Forget the faces found so far and start the tile sweep again (a new source, whose
        pixels are ``pixel_aspect`` times as wide as tall: its sample aspect ratio; None: 1)."""
        aspect = float(pixel_aspect or 1)
        # stretched, not shrunk: no detail of the face is lost (a DVD's 64:45 widens 1.42×)
        self._stretch = (max(1.0, aspect), max(1.0, 1 / aspect)) if aspect != 1 else None
        self._known: list[tuple[int, int, int, int]] = []
        self._unsure: list[tuple[int, int, int, int]] = []
        self._next_tile, self._first = 0, True
        self._grid: tuple[tuple[int, int], list] = ((0, 0), [])

    def grid(self, width: int, height: int) -> list[tuple[int, int, int]]:
        """The tiles this detector looks at in a ``width``×``height`` frame."""
        if not self.tiles:
            return []
        if self._grid[0] != (width, height):
            self._grid = ((width, height), tile_grid(width, height, self.min_face))
        return self._grid[1]

    def detect(self, frame: Frame) -> Frame:
        """Add one :class:`Face` per detected face (box clipped to the frame, head roll from its
        eyes, crop 100×100 levelled by it)."""
        image = frame.image
        if self._stretch:  # non-square pixels: looked at as seen (boxes given back below)
            sx, sy = self._stretch
            image = cv2.resize(image, (round(image.shape[1] * sx), round(image.shape[0] * sy)),
                               interpolation=cv2.INTER_LINEAR)
        ih, iw = image.shape[:2]
        # the models see 128 or 192 px: a large frame is shrunk first (less to convert)
        factor = int(np.ceil(max(ih, iw) / DETECT_MAX_SIDE))
        scale = 1 / factor
        small = image if factor == 1 else cv2.resize(
            image, (iw // factor, ih // factor), interpolation=cv2.INTER_AREA)
        rgb = _mp_image(small)
        found = [f for detector in self._detectors
                 for f in self._found(detector, rgb, 0, 0, scale, iw, ih)]
        grid, followed = self.grid(iw, ih), []
        if grid:
            # the faces followed, each looked for around where it was if not found already
            lost = [box for box in self._known if all(iou(box, b) < 0.3 for b, _, _ in found)]
            for n in range(0, len(lost), MOSAIC ** 2):
                followed += self._look_around(image, lost[n:n + MOSAIC ** 2])
            found += followed
            # and a share of the tiles (all of them on a source's first frame)
            share = len(grid) if self._first else int(np.ceil(len(grid) / self.tiles))
            for n in range(share):
                tile = grid[(self._next_tile + n) % len(grid)]
                # a face new in a tile must be surer than one followed: tiles see much
                # background close up (on the faceless clips: cartoon faces at 0.6-0.7)
                found += [f for f in self._look(self._models["full"], image, tile, FULL_SIDE)
                          if f[1] >= self.tile_score and min(f[0][2:]) >= TILE_FACE * 0.8]
            self._next_tile = (self._next_tile + share) % len(grid)
        self._first = False
        kept: list[Found] = []
        for box, score, roll in sorted(found, key=lambda f: -f[1]):  # overlaps: the best kept
            if all(iou(box, other) < 0.3 for other, _, _ in kept):
                kept.append((box, score, roll))
        # followed from now on: the sure faces, those followed so far and those found on two
        # frames in a row (a face found once at the bare min_score, a flicker as often as
        # not, is not followed)
        known, unsure = [], []
        for box, score, _ in kept:
            sure = score >= self.tile_score or any(
                iou(box, other) >= 0.3 for other in (*self._known, *self._unsure))
            (known if sure else unsure).append(box)
        self._known, self._unsure = known, unsure
        for box, score, roll in sorted(kept, key=lambda f: (f[0][0], f[0][1])):
            crop = square_crop(image, box, self.margin, roll=roll)
            if self._stretch:
                box = _unstretched(box, *self._stretch, *frame.image.shape[1::-1])
            frame.faces.append(Face(box, score, crop, roll=roll))
        return frame

    def _look(self, detector, image: np.ndarray, square: tuple[int, int, int],
              side: int) -> list[Found]:
        """Detections in the square ``(x, y, side)`` of ``image``, shrunk to the model's
        ``side`` first (area averaging: no aliasing), in frame coordinates."""
        x, y, s = square
        part = image[y:y + s, x:x + s]
        scale = min(1.0, side / max(part.shape[:2]))
        if scale < 1:
            part = cv2.resize(part, (round(part.shape[1] * scale), round(part.shape[0] * scale)),
                              interpolation=cv2.INTER_AREA)
        ih, iw = image.shape[:2]
        return self._found(detector, _mp_image(part), x, y, scale, iw, ih)

    def _look_around(self, image: np.ndarray, boxes: list) -> list[Found]:
        """Detections in the regions around ``boxes`` (at most MOSAIC² of them), looked at in
        one call: each region scaled to a cell of a MOSAIC×MOSAIC mosaic of the short-range
        model's input (the face ~26 px there); a detection belongs to the cell its centre
        lies in."""
        cell = SHORT_SIDE // MOSAIC
        mosaic = np.zeros((SHORT_SIDE, SHORT_SIDE, 3), np.uint8)
        ih, iw = image.shape[:2]
        regions = [_region(box, iw, ih) for box in boxes]
        for n, (x, y, side) in enumerate(regions):
            r, c = divmod(n, MOSAIC)
            interp = cv2.INTER_AREA if side > cell else cv2.INTER_LINEAR
            mosaic[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = cv2.resize(
                image[y:y + side, x:x + side], (cell, cell), interpolation=interp)
        found = []
        for box, score, roll in self._found(self._models["short"], _mp_image(mosaic), 0, 0,
                                            1.0, SHORT_SIDE, SHORT_SIDE, min_side=2):
            r, c = (int((v + d / 2) // cell) for v, d in ((box[1], box[3]), (box[0], box[2])))
            n = r * MOSAIC + c
            if n >= len(regions) or c >= MOSAIC:
                continue
            x, y, side = regions[n]
            k = side / cell
            x0, y0 = max(0, box[0] - c * cell), max(0, box[1] - r * cell)
            x1, y1 = min(cell, box[0] + box[2] - c * cell), min(cell, box[1] + box[3] - r * cell)
            face = (round(x + x0 * k), round(y + y0 * k), round((x1 - x0) * k),
                    round((y1 - y0) * k))
            if min(face[2], face[3]) >= max(2, self.min_face):
                found.append((face, score, roll))
        return found

    def _found(self, detector, rgb, x: int, y: int, scale: float, iw: int, ih: int,
               min_side: int | None = None) -> list[Found]:
        """``detector``'s faces in ``rgb`` (a part of the frame at ``x, y``, shrunk by
        ``scale``), as frame boxes clipped to the ``iw``×``ih`` frame, none narrower than
        ``min_side`` (default: ``min_face``; a mosaic's caller holds its faces to it once they
        are in frame pixels)."""
        limit = max(2, self.min_face if min_side is None else min_side)
        found = []
        for det in detector.detect(rgb).detections:
            b = det.bounding_box
            x0, y0 = max(0, x + b.origin_x / scale), max(0, y + b.origin_y / scale)
            x1 = min(iw, x + (b.origin_x + b.width) / scale)
            y1 = min(ih, y + (b.origin_y + b.height) / scale)
            if x1 - x0 < limit or y1 - y0 < limit:
                continue
            score = float(det.categories[0].score) if det.categories else 0.0
            x0, y0, x1, y1 = (round(v) for v in (x0, y0, x1, y1))
            roll = eye_roll(det.keypoints, rgb.width, rgb.height) if self.level else 0.0
            found.append(((x0, y0, x1 - x0, y1 - y0), score, roll))
        return found

    def close(self) -> None:
        self._closer()
        self._detectors = []

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _unstretched(box, sx: float, sy: float, iw: int, ih: int) -> tuple[int, int, int, int]:
    """A box of the frame stretched ``sx``×``sy`` (to square pixels), in the ``iw``×``ih``
    frame's own pixels."""
    x0, y0 = round(box[0] / sx), round(box[1] / sy)
    x1, y1 = min(iw, round((box[0] + box[2]) / sx)), min(ih, round((box[1] + box[3]) / sy))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def _region(box, iw: int, ih: int) -> tuple[int, int, int]:
    """The square, REGION times the face's side, centred on ``box``, inside the frame."""
    x, y, w, h = box
    side = min(round(max(w, h) * REGION), iw, ih)
    x0 = int(np.clip(round(x + w / 2 - side / 2), 0, iw - side))
    y0 = int(np.clip(round(y + h / 2 - side / 2), 0, ih - side))
    return x0, y0, side


def _close_all(models: dict) -> None:
    with native_stderr_silenced():
        for detector in models.values():
            detector.close()
    models.clear()


def _mediapipe():
    """``mediapipe``, imported without TensorFlow: MediaPipe Tasks imports all of TensorFlow,
    where it is installed (it is, for training), for a decorator of its API docs alone
    (``optional_dependencies.doc_controls``), which costs every run seconds and hundreds of
    MB. The module is given here as MediaPipe defines it where TensorFlow is absent."""
    import sys
    import types

    name = "mediapipe.tasks.python.core.optional_dependencies"
    if name not in sys.modules:
        stub = types.ModuleType(name, "MediaPipe Tasks' optional dependencies, without "
                                "TensorFlow (streamfer.detect)")
        stub.doc_controls = types.SimpleNamespace(do_not_generate_docs=lambda x: x)
        sys.modules[name] = stub
    try:
        import mediapipe
    except ImportError:  # a MediaPipe that wants more of that module: its own, TensorFlow too
        for module in [m for m in sys.modules if m.split(".")[0] == "mediapipe"]:
            del sys.modules[module]
        import mediapipe
    return mediapipe


def _mp_image(bgr: np.ndarray):
    mp = _mediapipe()

    rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)


def _open(path: Path, min_score: float):
    mp = _mediapipe()
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import FaceDetector as MPFaceDetector
    from mediapipe.tasks.python.vision import FaceDetectorOptions

    options = FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                  min_detection_confidence=min_score)
    with native_stderr_silenced():  # LiteRT logs INFO lines straight to fd 2
        detector = MPFaceDetector.create_from_options(options)
        # and a warning on the first inference (input alignment): run it here, silenced
        detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                 data=np.zeros((128, 128, 3), np.uint8)))
    return detector

