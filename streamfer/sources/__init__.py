"""Frame sources: a webcam index, a video or image file, a folder of them, standard input,
or a stream URL — each read as frames with true timestamps.

One concept a module:

- :mod:`~streamfer.sources.reader` — :class:`Source`, reading one input (``open_source``)
- :mod:`~streamfer.sources.media` — which files are photos and videos; a folder's list
- :mod:`~streamfer.sources.cameras` — webcams, by index or Linux device
- :mod:`~streamfer.sources.microphone` — a webcam's sound, read beside its picture
- :mod:`~streamfer.sources.streams` — links, their secrets masked; a live stream's clock
- :mod:`~streamfer.sources.stdin` — a video piped in, its sound and shapes read beside
- :mod:`~streamfer.sources.hls` — HLS playlists as a video: a master's rendition, its files
- :mod:`~streamfer.sources.live` — a live link read by PyAV, its sound timed by its picture
- :mod:`~streamfer.sources.sound` — a source's sound read beside its picture: kept, or heard
- :mod:`~streamfer.sources.probe` — what FFmpeg reads of a file that OpenCV does not tell
- :mod:`~streamfer.sources.shapes` — a picture that changes shape midway
- :mod:`~streamfer.sources.photos` — photos upright, and what a copy carries of them

Example:
    >>> from streamfer.sources import open_source
    >>> with open_source("clip.mp4") as source:                # doctest: +SKIP
    ...     print(source.fps, source.size, source.frame_count)
    ...     for frame in source:
    ...         pass
"""

from streamfer.sources.cameras import camera_index, check_camera, is_webcam
from streamfer.sources.errors import OutOfRange, SourceError
from streamfer.sources.media import HEIF_EXTS, IMAGE_EXTS, VIDEO_EXTS, animation_frames, list_media
from streamfer.sources.photos import photo_metadata, read_photo
from streamfer.sources.probe import opencv_makes_sdr, recorded
from streamfer.sources.reader import Source, open_source
from streamfer.sources.stdin import NOT_SOUGHT, STDIN, STDIN_NAME
from streamfer.sources.streams import RECONNECT_S, as_read, attempts, is_url, redacted

__all__ = ["HEIF_EXTS", "IMAGE_EXTS", "NOT_SOUGHT", "RECONNECT_S", "STDIN", "STDIN_NAME",
           "VIDEO_EXTS", "OutOfRange", "Source", "SourceError", "animation_frames", "as_read",
           "attempts", "camera_index", "check_camera", "is_url", "is_webcam", "list_media",
           "open_source", "opencv_makes_sdr", "photo_metadata", "read_photo", "recorded",
           "redacted"]
