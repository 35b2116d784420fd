"""Sinks: the annotated video (a photo's annotated copy; or sent live as it is made, to a
server or standard output), the frame-level CSV and the live window.

Each is a context manager that finalises what it holds on exit, errors and Ctrl-C
included: the video is flushed, closed and renamed into place (the source's audio muxed in),
CSV rows are flushed as they are written, the window is destroyed. One concept a module:

- :mod:`~streamfer.sinks.video` — :class:`VideoSink`, the annotated video file
- :mod:`~streamfer.sinks.stream` — :class:`StreamSink`, the video sent live
- :mod:`~streamfer.sinks.photo` — :class:`PhotoSink`, a photo's annotated copy
- :mod:`~streamfer.sinks.table` — :class:`CSVSink`, the frame-level CSV
- :mod:`~streamfer.sinks.window` — :class:`Window`, the live window
- :mod:`~streamfer.sinks.names` — an output's name checked before any work
- :mod:`~streamfer.sinks.pacing` — :class:`Pacer`, frames at their own pace

Example:
    >>> from streamfer.sinks import CSVSink, VideoSink
    >>> with VideoSink("out.mp4", fps=30, size=(640, 480), audio_from="in.mp4") as video, \\
    ...         CSVSink("out.csv") as table:                           # doctest: +SKIP
    ...     video.write(frame_image, time_s=frame.time_s)
    ...     table.write(frame)
"""

from streamfer.sinks.errors import SinkError
from streamfer.sinks.names import (
                                   CONTAINERS,
                                   PHOTOS,
                                   STDOUT,
                                   Inputs,
                                   check_distinct,
                                   check_name,
                                   check_output,
)
from streamfer.sinks.pacing import Pacer
from streamfer.sinks.photo import PhotoSink
from streamfer.sinks.stream import (
    STREAMED,
    StreamSink,
    check_stream,
    is_playlist,
    is_stream,
    stream_name,
)
from streamfer.sinks.table import CSV_COLUMNS, WALL_TIME, CSVSink, wall_clock
from streamfer.sinks.video import VideoSink
from streamfer.sinks.window import Window, fitted, screen_size

__all__ = ["CONTAINERS", "CSV_COLUMNS", "PHOTOS", "STDOUT", "STREAMED", "WALL_TIME", "CSVSink",
           "Inputs", "Pacer", "PhotoSink", "SinkError", "StreamSink", "VideoSink", "Window",
           "check_distinct", "check_name", "check_output", "check_stream", "fitted",
           "is_playlist", "is_stream", "screen_size", "stream_name", "wall_clock"]
