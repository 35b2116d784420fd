"""Frame sources: a webcam index, a video or image file, a folder of videos, or a stream URL.

A :class:`Source` is a context manager and an iterator of :class:`~streamfer.frame.Frame`
with the container's own timestamps (``time_s``), so variable-frame-rate footage stays
aligned. Rotation metadata of phone videos is applied (OpenCV's auto-orientation, on).

Example:
    >>> from streamfer.sources import open_source
    >>> with open_source("clip.mp4") as source:                # doctest: +SKIP
    ...     print(source.fps, source.size, source.frame_count)
    ...     for frame in source:
    ...         pass
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from streamfer.frame import Frame

log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
              ".ts", ".3gp"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
_MAX_BAD_READS = 8  # consecutive undecodable frames skipped before a stream counts as ended


class SourceError(RuntimeError):
    """A source cannot be opened or read."""


def is_webcam(spec: str) -> bool:
    return spec.isdigit()


def is_url(spec: str) -> bool:
    return "://" in spec


def list_videos(folder: Path) -> list[Path]:
    """Video files below ``folder`` (recursively), in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTS and p.is_file())


class Source:
    """Frames of one input. ``frame_count`` is None where the input does not say (cameras)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.name = spec
        self.live = is_webcam(spec) or is_url(spec)
        self._image: np.ndarray | None = None
        self._cap: cv2.VideoCapture | None = None
        self.fps, self.size, self.frame_count = 0.0, (0, 0), None
        self._open()

    def _open(self) -> None:
        spec = self.spec
        if not self.live:
            path = Path(spec)
            if not path.is_file():
                raise SourceError(f"no such file: {spec}")
            if path.stat().st_size == 0:
                raise SourceError(f"empty file: {spec}")
            self.name = path.name
            if path.suffix.lower() in IMAGE_EXTS:
                self._image = cv2.imread(spec, cv2.IMREAD_COLOR)
                if self._image is None:
                    raise SourceError(f"cannot decode image: {spec}")
                h, w = self._image.shape[:2]
                self.fps, self.size, self.frame_count = 1.0, (w, h), 1
                return
        cap = cv2.VideoCapture(int(spec) if is_webcam(spec) else spec)
        if not cap.isOpened():
            what = "camera" if is_webcam(spec) else "video"
            raise SourceError(f"cannot open {what}: {spec}")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # phone videos: frames upright, size too
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 and not self.live else None
        if not self.live and self.size[0] * self.size[1] == 0:
            cap.release()
            raise SourceError(f"cannot decode video: {spec}")

    def __iter__(self) -> Iterator[Frame]:
        if self._image is not None:
            yield Frame(self.name, 0, 0.0, self._image)
            return
        index, bad = 0, 0
        while self._cap is not None:
            ok, image = self._cap.read()
            if not ok or image is None:
                bad += 1
                if self.live or self.frame_count is None or index + bad > self.frame_count \
                        or bad > _MAX_BAD_READS:
                    break
                continue
            if bad:
                log.warning("%s: skipped %d undecodable frame(s) before frame %d",
                            self.name, bad, index)
                bad = 0
            yield Frame(self.name, index, self._timestamp(index), _as_bgr(image))
            index += 1
        if self.frame_count and index < self.frame_count:
            log.warning("%s: %d of %d frames decodable (truncated or corrupt stream)",
                        self.name, index, self.frame_count)

    def _timestamp(self, index: int) -> float:
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC) if self._cap is not None else -1
        if self.live or msec < 0 or (msec == 0 and index > 0):
            return index / self.fps
        return msec / 1000.0

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def open_source(spec: str | int | Path) -> Source:
    """Open a webcam index ("0"), a stream URL, or a video/image file."""
    return Source(str(spec))
