"""What FFmpeg (PyAV) reads of a video that OpenCV does not tell: its pixels' shape, colour
tags, field order, duration, indexed frame count and other tracks; why a file is no video;
whether OpenCV converts HDR.

Example:
    >>> from streamfer.sources.probe import probe
    >>> video_format, duration, frames, note = probe("clip.mp4")    # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import shlex
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from streamfer.frame import VideoFormat
from streamfer.sources.hls import listed_files
from streamfer.sources.streams import NETWORK_TIMEOUT_MS, dash_manifest, through_a_pipe

# FFmpeg's codes (H.273) of the primaries and transfers that the FFmpeg in opencv-python 5
# converts when it makes BGR frames (seen: BT.2020, DCI-P3, Display P3; PQ, HLG), where
# BT.601's and BT.709's pass as they are
_WIDE_GAMUT, _HDR = (9, 11, 12), (16, 18)


@functools.cache
def opencv_makes_sdr() -> bool:
    """Whether this OpenCV hands a wide-gamut or HDR video's frames over converted to BT.709
    SDR (an iPhone's HLG, a film's PQ: the FFmpeg of opencv-python 5 does, tone mapped;
    earlier ones gave the signal as it was). Told once a process from a clip of two frames
    of mid grey tagged BT.2020 and PQ, written and read back: converted, its grey comes out
    brighter (tone mapped: 98 → 110)."""
    import tempfile

    import av

    with tempfile.TemporaryDirectory(prefix="streamfer-hdr-") as folder:
        path = os.path.join(folder, "grey.mp4")
        try:
            with av.open(path, "w") as out:
                stream = out.add_stream("libx264", rate=25)
                stream.width = stream.height = 64
                stream.pix_fmt = "yuv420p"
                cc = stream.codec_context
                cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, 16, 9, 1
                for _ in range(2):
                    frame = av.VideoFrame(64, 64, "yuv420p")
                    for plane, value in zip(frame.planes, (100, 128, 128)):
                        plane.update(bytes([value]) * plane.buffer_size)
                    out.mux(stream.encode(frame))
                out.mux(stream.encode(None))
            capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
            ok, image = capture.read()
            capture.release()
        except (OSError, av.FFmpegError, cv2.error):
            return False
    return bool(ok) and abs(float(image.mean()) - 98) > 6


def probe(path: str) -> tuple[VideoFormat, float | None, int | None, str | None]:
    """The first video stream's sample aspect ratio, colour tags and field order, its
    duration (s), the frame count its container's index lists, less those its edit list
    hides (exact; None where there is no index, as in Matroska, whose counts are
    estimates), as FFmpeg reads them (PyAV), and what a run should say of its other video
    tracks (:func:`_other_tracks`); unknowns stay None."""
    import av

    try:
        with av.open(path, timeout=NETWORK_TIMEOUT_MS / 1000) as container:
            stream = container.streams.video[0]
            cc = stream.codec_context
            sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
            duration = float(stream.duration * stream.time_base) if stream.duration else (
                container.duration / 1e6 if container.duration else None)
            tags = {t: (int(getattr(cc, t)) if getattr(cc, t, 2) not in (None, 0, 2) else None)
                    for t in ("colorspace", "color_primaries", "color_trc")}  # 2: unspecified
            rng = int(cc.color_range) if cc.color_range else None
            if (tags["color_primaries"] in _WIDE_GAMUT or tags["color_trc"] in _HDR) \
                    and opencv_makes_sdr():  # the frames come as BT.709 SDR: so is the output
                tags, rng = {t: 1 for t in tags}, 1
            fields = int(cc.field_order or 0)  # AVFieldOrder: 2-5 interlaced, 1 progressive
            fmt = VideoFormat(Fraction(sar) if sar and sar != 1 else None, rng, **tags,
                              field_order=fields if 2 <= fields <= 5 else None,
                              timecode=_timecode(container, stream))
            frames = stream.frames - _edited_out(container, stream) if stream.frames else None
            listed = getattr(stream, "index_entries", ()) \
                if container.format.name == "avi" else ()  # (PyAV 17 on)
            if frames and len(listed) > 1:
                # an AVI's empty chunks hold the frame before over their slots (a capture's
                # dropped frames; a copy of a video timed in ms, FFmpeg's -c copy: 1000 slots
                # a second, 42 a frame): its header counts them; its index, whole to the
                # last frame (a cut-off file's is what a scan found so far), lists frames
                # alone; the last frame holds at most as many slots as the most one held
                slots = np.fromiter((entry.timestamp for entry in listed), np.int64,
                                    len(listed))
                if slots[-1] < stream.frames <= slots[-1] + max(1, int(np.diff(slots).max())):
                    frames = min(frames, len(listed))
            return fmt, duration, frames or None, _other_tracks(path, container)
    except (OSError, IndexError, av.FFmpegError, ValueError):
        return VideoFormat(), None, None, None


def _timecode(container, stream) -> str | None:
    """The timecode of a file's first frame, where it has one: its picture's (a MOV's
    ``tmcd`` track, an MXF's, a camera's), else its own or a data track's."""
    for tags in (stream.metadata, container.metadata,
                 *(other.metadata for other in container.streams if other.type == "data")):
        if tags.get("timecode"):
            return tags["timecode"]
    return None


def recorded(url: str) -> tuple[VideoFormat, float | None, int | None, str | None] | None:
    """The probe (``probe``) of a link to a recorded file (a known duration, as FFmpeg
    reads it), or None for a live stream. Only ``http(s)``/``ftp`` links can be either;
    rtsp, rtmp, srt, udp, tcp are live."""
    if url.split("://", 1)[0].lower() not in ("http", "https", "ftp"):
        return None
    probed = probe(url)
    return probed if probed[1] is not None else None


def _other_tracks(path: str, container) -> str | None:
    """A file of several video tracks (a multi-camera recording, a preview track before the
    film) is read by its first, as OpenCV reads it: where another looks like the main one (a
    player's default, or larger), the warning a run gives, with the command that makes a
    file of that one; else None."""
    import av

    tracks = [s for s in container.streams.video
              if not s.disposition & av.stream.Disposition.attached_pic]  # cover art
    if len(tracks) < 2:
        return None
    first = tracks[0]
    area = [s.codec_context.width * s.codec_context.height for s in tracks]
    marked = [k for k, s in enumerate(tracks) if s.disposition & av.stream.Disposition.default]
    main = next((k for k in marked if k), None) if 0 not in marked else None
    why = "marked default"
    if main is None and max(area) > area[0]:
        main, why = area.index(max(area)), "the largest"
    if main is None:
        return None
    name, other = Path(path).name, tracks[main].codec_context
    return (f"{name}: its first of {len(tracks)} video tracks ({first.codec_context.width}×"
            f"{first.codec_context.height}) is read, not track {main + 1} ({other.width}×"
            f"{other.height}, {why}); to read that one: ffmpeg -i {shlex.quote(name)} -map "
            f"0:v:{main} -map '0:a?' -c copy "
            f"{shlex.quote(f'{Path(name).stem}.track{main + 1}{Path(name).suffix}')}")


def pixel_aspect(cap: cv2.VideoCapture) -> Fraction | None:
    """The sample aspect ratio OpenCV's FFmpeg reads from a stream it has opened (None: square
    pixels, or not said: a camera)."""
    num, den = int(cap.get(cv2.CAP_PROP_SAR_NUM)), int(cap.get(cv2.CAP_PROP_SAR_DEN))
    return Fraction(num, den) if num > 0 and den > 0 and num != den else None


def _edited_out(container, stream, look: int = 1000) -> int:
    """How many of the frames at the start of ``stream`` its edit list hides: a clip cut
    from a longer one without re-encoding (``ffmpeg -ss … -c copy``, a phone's trim) keeps
    the frames from the key frame before the cut, and an encoder's first frames may be
    hidden too (FFmpeg marks them to be dropped; OpenCV never shows them). Read from the
    packets (not decoded) until 16 shown ones have come (H.264 reorders at most 16), ``look``
    at most."""
    import av

    hidden = shown = 0
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= look or shown >= 16:
                break
            if packet.size:  # not the flush packet at the end
                hidden += packet.is_discard
                shown += not packet.is_discard
    except (OSError, av.FFmpegError):  # a damaged file: said when it is read, if at all
        pass
    return hidden


_CUT_SHORT = ("cannot open video: {} (an MP4 or MOV cut short: its index, the moov box most "
              "recorders write at its end, is missing or cut — a recording stopped by a flat "
              "battery, or a copy or download not finished; untrunc mends a camera's with a "
              "whole file from the same camera)")


def unreadable(path: str, said: str) -> str:
    """Why a file OpenCV cannot read as a video is none, in a line, where PyAV tells: it holds
    no video (an audio file, a subtitle track), it is an MP4 cut short, a DASH manifest, a
    player's playlist, or it is no format FFmpeg reads; else
    ``said``, OpenCV's failure as it was."""
    import av

    try:
        with av.open(path) as container:
            kinds = sorted({s.type for s in container.streams} - {"video"})
            if not container.streams.video:
                return (f"no video in {path}: it holds {' and '.join(kinds)} only" if kinds
                        else _CUT_SHORT.format(path) if index_missing(path)
                        else f"no video in {path}: it holds no stream")
    except (OSError, av.FFmpegError, ValueError):
        if (files := listed_files(path)) is not None:  # a player's list (VLC's, Winamp's)
            return (f"cannot open video: {path} (a playlist of {files} file"
                    f"{'s' * (files != 1)}, not a video: give their folder, or each one)")
        try:
            with open(path, "rb") as f:
                head = f.read(1024)
        except OSError:
            head = b""
        if dash_manifest(head):
            return f"cannot open video: {path} ({through_a_pipe(path)})"
        if index_missing(path):
            return _CUT_SHORT.format(path)
        return f"cannot open video: {path} (not a video or photo format FFmpeg reads)"
    return said


def index_missing(path: str | Path) -> bool:
    """An MP4 or MOV (ISO base media: its first box ``ftyp``) whose top-level boxes hold no
    whole ``moov``, the index of its frames, which most recorders write last: the file was
    cut before it, or in it."""
    try:
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            at, first = 0, True
            while at + 8 <= end:
                f.seek(at)
                head = f.read(16)
                size, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if first and kind != b"ftyp":
                    return False
                first = False
                if size == 1 and len(head) == 16:  # a 64-bit size follows
                    size = int.from_bytes(head[8:16], "big")
                elif size == 0:  # to the end of the file
                    size = end - at
                if size < 8:
                    return False  # no box: not an MP4 as told
                if kind == b"moov":
                    return at + size > end
                at += size
    except OSError:
        return False
    return not first
