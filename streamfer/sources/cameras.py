"""Webcams: by index or by their Linux device, and why one cannot open, said before the
models load.

Example:
    >>> from streamfer.sources.cameras import camera_index
    >>> camera_index("0"), camera_index("clip.mp4")
    (0, None)
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from streamfer.sources.errors import SourceError
from streamfer.sources.streams import is_url

# OpenCV's own lines when a camera index does not open ("[ERROR:0@0.1] global
# obsensor_uvc_stream_channel.cpp:163 getStreamChannelGroup Camera index out of range"):
# the caller says it in one line of its own
CAMERA_PROBE_NOISE = re.compile(r"^\[ ?(ERROR|WARN|INFO)[^\]]*\] global ")
_VIDEO_NODE = re.compile(r"/dev/video(\d+)")  # a camera's device on Linux (V4L2)


def camera_index(spec: str) -> int | None:
    """A webcam's index: ``"0"``, or on Linux its device's path — ``/dev/video0``, or a name
    that links to it, as ``/dev/v4l/by-id/usb-…-video-index0`` (the same camera after a
    reboot or a replug, where the index may change); None for any other source, and for a
    ``/dev/v4l/`` name that links to no device now (the camera unplugged)."""
    if spec.isdigit():
        return int(spec)
    if not is_url(spec):  # a path: followed to its device
        found = _VIDEO_NODE.fullmatch(os.path.realpath(spec))
        return int(found.group(1)) if found else None
    return None


def is_webcam(spec: str) -> bool:
    """True for a webcam: its index, or its device's path (:func:`camera_index`), a
    ``/dev/v4l/`` name included where its camera is unplugged (said when it cannot open)."""
    return camera_index(spec) is not None or spec.startswith("/dev/v4l/")


def check_camera(spec: str) -> None:
    """:class:`SourceError` where webcam ``spec`` cannot be opened as Linux tells (no such
    device, none at all, or not ours): said before the models load — a run opens its
    camera after them, so that its first frame is fresh."""
    if why := _no_camera(camera_index(spec)):
        raise SourceError(f"cannot open camera: {spec} ({why})")


def _no_camera(index: int | None, devices: Path = Path("/dev")) -> str | None:
    """Why camera ``index`` would not open, where Linux tells (its ``/dev/video*`` nodes):
    none here, which there are, or no permission on it; None elsewhere or where it is there
    and ours to open (busy in another program, or not a camera). ``index`` None: a
    ``/dev/v4l/`` name that links to no device now."""
    if not sys.platform.startswith("linux") or not devices.is_dir():
        return None
    found = sorted(int(p.name[5:]) for p in devices.glob("video*") if p.name[5:].isdigit())
    if not found:
        return "this machine shows no camera: no /dev/video*"
    if index is None:
        return ("it links to no device now (the camera unplugged?); the video devices here: "
                + ", ".join(map(str, found)))
    if index not in found:
        return f"no /dev/video{index}; the video devices here: {', '.join(map(str, found))}"
    node = devices / f"video{index}"
    if not os.access(node, os.R_OK | os.W_OK):
        return f"no permission on {node}: join its group (ls -l {node}), then log in again"
    return None
