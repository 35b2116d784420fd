"""Photos: read upright (HEIC by libheif, what OpenCV refuses by FFmpeg), and what an
annotated copy carries of the original (its colour profile, its EXIF).

Example:
    >>> from streamfer.sources.photos import read_photo
    >>> read_photo("group.jpg").shape                              # doctest: +SKIP
    (1080, 1920, 3)
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from streamfer.files import opencv_name
from streamfer.sources.media import HEIF_EXTS


def read_photo(path: str) -> np.ndarray | None:
    """A photo, BGR, upright (its EXIF orientation applied): by OpenCV, else by FFmpeg
    (Targa, and JPEG 2000 with subsampled colour, which OpenCV's reader refuses); a phone's
    HEIC by libheif (its grid of tiles whole and its rotation applied, where FFmpeg gives
    the first tile as it is stored); None where none decodes it (OpenCV's complaint unsaid:
    FFmpeg may read it, else our line says)."""
    if Path(path).suffix.lower() in HEIF_EXTS:
        import pillow_heif

        try:
            heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
            pixels = np.asarray(heif)
        except (OSError, ValueError, RuntimeError):
            return None
        if pixels.ndim == 2 or pixels.shape[2] < 3:  # grey (L, or LA: its alpha dropped)
            return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0] if pixels.ndim == 3
                                                     else pixels), cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2BGR)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        with opencv_name(path) as name:
            image = cv2.imread(name, cv2.IMREAD_COLOR)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is not None:
        return image
    import av

    try:
        with av.open(path) as container:
            for picture in container.decode(video=0):
                return picture.to_ndarray(format="bgr24")
    except (OSError, av.FFmpegError, ValueError, IndexError):
        pass
    return None


def photo_metadata(path: str | Path) -> tuple[bytes | None, bytes | None]:
    """What a photo's annotated copy carries of it: its ICC colour profile (an iPhone's
    Display P3, a camera's Adobe RGB) and its EXIF (when it was taken, the camera, the
    place), as its file holds them — the EXIF's orientation set upright, as the copy's
    pixels are (a viewer would turn it again), and its thumbnail, the photo unannotated,
    left out; a profile of another colour space than the copy's RGB (a black-and-white
    photo's Gray Gamma 2.2, a print's CMYK: the copy's pixels are RGB) left out too. None
    for either where the photo has none, or it cannot be read."""
    from PIL import Image

    try:
        if Path(path).suffix.lower() in HEIF_EXTS:
            import pillow_heif

            info = dict(pillow_heif.open_heif(path).info)
        else:
            with Image.open(path) as image:  # the header alone
                info = dict(image.info)
    except (OSError, ValueError, RuntimeError, SyntaxError):
        return None, None
    exif = None
    if info.get("exif"):
        try:
            tags = Image.Exif()
            tags.load(info["exif"])
            if _ORIENTATION in tags:
                tags[_ORIENTATION] = 1
            exif = tags.tobytes() if tags else None  # IFD0 and its own (Exif, GPS) alone
        except (OSError, ValueError, KeyError, TypeError, SyntaxError, struct.error):
            exif = None
    profile = info.get("icc_profile") or None
    return (profile if profile and profile[16:20] == b"RGB " else None), exif  # its space


_ORIENTATION = 0x0112  # EXIF's Orientation tag


def as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
