"""A photo's annotated copy, in the format its name says, with the photo's colour profile
and EXIF."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from streamfer.files import cannot_write, write_atomically
from streamfer.sinks.errors import SinkError
from streamfer.sinks.names import check_output
from streamfer.sources import photo_metadata


class PhotoSink:
    """A photo's annotated copy, as :class:`VideoSink` takes frames (``write``, ``finish``,
    ``close``): the image written last, in the format of the name's suffix (:data:`PHOTOS`;
    JPEG at quality 95), at the photo's own size, with the colour profile of the photo in
    ``inputs`` (its pixels are the photo's: shown without it, a Display P3 photo's colours
    look washed out) and its EXIF, upright (when and where it was taken: a photo library
    sorts and maps the copy with the photo; :func:`~streamfer.sources.photo_metadata`);
    ``.bmp`` holds neither. It appears under its name only when closed after a frame, all
    of it or nothing (:func:`streamfer.files.write_atomically`)."""

    def __init__(self, path: str | Path, inputs=()) -> None:
        self.path = check_output(path, inputs, photo=True)
        self.frames, self._image = 0, None
        self._profile, self._exif = photo_metadata(inputs[0]) if inputs else (None, None)

    def write(self, image: np.ndarray, time_s: float | None = None) -> None:
        self._image, self.frames = image, self.frames + 1

    def finish(self) -> None:
        """A photo is whole once its one frame is written: nothing to mark."""

    def close(self) -> None:
        import cv2

        image, self._image = self._image, None
        if image is None:
            return
        suffix = self.path.suffix.lower()
        if (self._profile or self._exif) and suffix != ".bmp":  # Pillow writes them in
            from PIL import Image

            data = io.BytesIO()
            Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).save(
                data, format={".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG",
                              ".webp": "WEBP"}[suffix], quality=95, lossless=suffix == ".webp",
                **{k: v for k, v in (("icc_profile", self._profile), ("exif", self._exif))
                   if v})
            data = np.frombuffer(data.getvalue(), np.uint8)
        else:
            ok, data = cv2.imencode(suffix, image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise SinkError(cannot_write(self.path, "OpenCV could not encode it"))
        try:
            write_atomically(self.path, data.tobytes())
        except OSError as exc:
            raise SinkError(cannot_write(self.path, exc)) from None

    def __enter__(self) -> PhotoSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
