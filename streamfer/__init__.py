"""streamfer: facial emotions on video streams (capture → detect → classify → render).

The command line (``streamfer run``, ``python run_stream.py``) is the main way in; from Python,
:func:`analyze` yields each frame of a source with its faces, ids, scores and labels, and
:class:`Pipeline` with :class:`Settings` runs a source into an annotated video and a CSV.
Importing the package changes nothing in the process (no environment variable, no import
hook): the command line quiets the native libraries' logs itself (:mod:`streamfer.logs`).

Example:
    >>> import streamfer
    >>> for frame in streamfer.analyze("samples/astronaut.mp4", progress=False):
    ...     for face in frame.faces:
    ...         print(frame.index, round(frame.time_s, 3), face.face_id, face.labels)
    ...     if frame.index == 1:
    ...         break
    0 0.0 1 ('Happiness',)
    1 0.067 1 ('Happiness',)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["Face", "Frame", "Pipeline", "Settings", "analyze"]

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from streamfer.frame import Face, Frame
    from streamfer.pipeline import Pipeline, Settings


def analyze(source: str | int | Path, **settings) -> Iterator[Frame]:
    """Each frame of ``source`` (a video or image file, a webcam index or a stream URL) with
    its faces: ``box``, ``face_id``, raw ``scores``, ``smoothed`` scores and ``labels`` (in
    the model's label order, :data:`streamfer.labels.EMOTIONS`). ``settings`` are
    :class:`Settings`' fields (``backend``, ``smoothing``, ``thresholds``, ``every``, …); the
    detector and the model load once, when the iteration starts.

    Example:
        >>> import streamfer
        >>> frames = streamfer.analyze("samples/astronaut.mp4", every=2, progress=False)
        >>> sum(1 for frame in frames if frame.analysed)  # 45 frames, every other one analysed
        23
    """
    from streamfer.pipeline import Pipeline, Settings
    from streamfer.sources import open_source

    s = Settings(**settings)
    # the source first: a wrong path is said at once, before the models spend their load
    with open_source(source, s.reconnect, s.start, s.end) as opened, Pipeline(s) as pipeline:
        yield from pipeline.analyze(opened)


def __getattr__(name: str):
    """``Pipeline``, ``Settings``, ``Frame`` and ``Face`` on first use, so that importing
    the package loads none of the stages' libraries."""
    if name in ("Pipeline", "Settings"):
        from streamfer import pipeline

        return getattr(pipeline, name)
    if name in ("Frame", "Face"):
        from streamfer import frame

        return getattr(frame, name)
    raise AttributeError(f"module 'streamfer' has no attribute {name!r}")
