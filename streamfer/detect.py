"""Face detection with the MediaPipe Tasks ``FaceDetector`` and square face crops.

Example:
    >>> from streamfer.detect import FaceDetector
    >>> with FaceDetector() as detector:                       # doctest: +SKIP
    ...     frame = detector.detect(frame)      # adds Face(box, det_score, crop) to frame.faces
"""

from __future__ import annotations

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
DETECT_MAX_SIDE = 1280  # frames larger than this are shrunk before detection (boxes scaled back)


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


class FaceDetector:
    """MediaPipe BlazeFace: ``model="short"`` (faces within ~2 m: webcams, selfies),
    ``"full"`` (farther, smaller faces) or ``"both"`` (the two merged: a face either finds,
    overlaps resolved by the higher score; recorded footage, where faces are near and far).
    ``level``: crop a tilted head upright (turned by its eye line, as FER+'s faces are)."""

    def __init__(self, model: str = "both", model_path: str | Path | None = None,
                 min_score: float = 0.6, min_face: int = 0, margin: float = MARGIN,
                 level: bool = True) -> None:
        if model not in (*MODELS, "both"):
            raise ValueError(f"detector model must be short, full or both, not {model!r}")
        if model == "both" and model_path is not None:
            raise ValueError("a detector file path names one model: use short or full")
        names = ("short", "full") if model == "both" else (model,)
        self._detectors = []
        try:
            for name in names:
                self._detectors.append(_open(resolve(MODELS[name], model_path), min_score))
        except BaseException:
            self.close()
            raise
        self.min_face, self.margin, self.level = min_face, margin, level

    def detect(self, frame: Frame) -> Frame:
        """Add one :class:`Face` per detected face (box clipped to the frame, head roll from its
        eyes, crop 100×100 levelled by it)."""
        import mediapipe as mp

        ih, iw = frame.image.shape[:2]
        # the models see 128 or 192 px: a large frame is shrunk first (4K: 3× less to convert)
        scale = min(1.0, DETECT_MAX_SIDE / max(ih, iw))
        small = frame.image if scale == 1 else cv2.resize(
            frame.image, (round(iw * scale), round(ih * scale)), interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
        found: list[tuple[tuple[int, int, int, int], float, float]] = []
        for detector in self._detectors:
            for det in detector.detect(image).detections:
                b = det.bounding_box
                x0, y0 = max(0, b.origin_x / scale), max(0, b.origin_y / scale)
                x1 = min(iw, (b.origin_x + b.width) / scale)
                y1 = min(ih, (b.origin_y + b.height) / scale)
                if x1 - x0 < max(2, self.min_face) or y1 - y0 < max(2, self.min_face):
                    continue
                score = float(det.categories[0].score) if det.categories else 0.0
                x0, y0, x1, y1 = (round(v) for v in (x0, y0, x1, y1))
                roll = eye_roll(det.keypoints, iw, ih) if self.level else 0.0
                found.append(((x0, y0, x1 - x0, y1 - y0), score, roll))
        kept: list[tuple[tuple[int, int, int, int], float, float]] = []
        for box, score, roll in sorted(found, key=lambda f: -f[1]):  # the two models' overlaps
            if all(iou(box, other) < 0.3 for other, _, _ in kept):
                kept.append((box, score, roll))
        for box, score, roll in sorted(kept, key=lambda f: (f[0][0], f[0][1])):
            crop = square_crop(frame.image, box, self.margin, roll=roll)
            frame.faces.append(Face(box, score, crop, roll=roll))
        return frame

    def close(self) -> None:
        with native_stderr_silenced():
            for detector in self._detectors:
                detector.close()
        self._detectors = []

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open(path: Path, min_score: float):
    import mediapipe as mp
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

