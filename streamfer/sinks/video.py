"""The annotated video file: each frame at its own timestamp, the input's size, pixels'
shape and colour tags, encoded in a thread of its own; the input's sound, subtitles,
chapters and tags carried over when it is finished.

Example:
    >>> from streamfer.sinks import VideoSink
    >>> with VideoSink("out.mp4", fps=30, size=(640, 480), audio_from="in.mp4") as video:
    ...     video.write(frame_image, time_s=frame.time_s)          # doctest: +SKIP
"""

from __future__ import annotations

import errno
import functools
import io
import logging
import os
import queue
import re
import signal
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamfer.files import cannot_write, part_path
from streamfer.frame import VideoFormat
from streamfer.sinks.errors import SinkError
from streamfer.sinks.names import CONTAINERS, check_output

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)  # the outputs' timestamps: in MPEG's 90 kHz ticks
_MATRIX = {1: "ITU709", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
# What a video killed outright (no close) keeps. MP4 and MOV hold their index at their end:
# such a file opened in no player. They are written in fragments of a second, each whole
# on disk as it is done, and made plain files as they are closed (FFmpeg 7.1's
# hybrid_fragmented; its first frame shown at 0 without an edit list, where B-frames delay
# it: negative_cts_offsets); Matroska and WebM in clusters of a second, each on disk as it
# is done (they kept 5 s or more in memory)
_FRAGMENTED = {"movflags": "+frag_keyframe+empty_moov+hybrid_fragmented+negative_cts_offsets",
               "frag_duration": "1000000", "flush_packets": "1"}
_CLUSTERED = {"cluster_time_limit": "1000", "flush_packets": "1"}
_KEPT_AS_WRITTEN = {".mp4": _FRAGMENTED, ".mov": _FRAGMENTED, ".m4v": _FRAGMENTED,
                    ".mkv": _CLUSTERED, ".webm": _CLUSTERED}
# FFmpeg's last line naming one of these (a full disk while the audio is muxed in) is a
# write that failed, not audio that cannot be carried over
_DISK_REFUSALS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


class VideoSink:
    """The annotated video: each frame at its own timestamp (variable frame rate kept), the
    input's size (odd sizes padded by one pixel to the even size 4:2:0 needs), sample aspect
    ratio and colour tags, the audio of ``audio_from`` carried over, with its subtitles,
    chapters and tags (a file, or what keeps the sound of a pipe: an object whose ``take()``
    gives its file and its delay after the first picture, or None; see
    :mod:`streamfer.sources.stdin`); encoded in-process by
    FFmpeg's libraries (PyAV). ``start``: the input's time that becomes the video's 0 (a
    part of the input, from ``--start``: its frames and its audio from there).

    The file appears under its name only when finalised, which ``close`` always does: an
    interrupted run leaves a playable video of every frame written so far, and a run that
    wrote no frame leaves no file. With ``whole_only`` (folder runs), it appears under its name
    only once :meth:`finish` said the input ran to its end; otherwise it stays its part file.
    A failure of the encoder leaves the part file as it is and is raised as one
    :class:`SinkError` (by the next :meth:`write`, or by :meth:`close`).

    Colour conversion and encoding run in a thread of their own, fed by a short queue
    (``close`` waits for every frame in it), so they overlap the rest of the pipeline. x264's
    preset is ``veryfast``, and ``superfast`` for frames larger than 1080p, where
    ``veryfast`` took 102 ms a 4K frame on 2 cores and ``superfast`` 56 ms (files ~2.4× larger).
    """

    _time_base = TIME_BASE  # of the frames' timestamps (an AVI's: its frame rate's)
    _from_first = True  # the video's 0 is its first frame's time, its sound from then on

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int],
                 audio_from=None, fmt: VideoFormat | None = None,
                 quality: int = 23, whole_only: bool = False, start: float = 0.0) -> None:
        import av

        self.path = check_output(path, (audio_from,) if isinstance(audio_from, (str, Path))
                                 else ())
        self.size, self.fps, self.frames = tuple(size), fps, 0
        self._audio_from, self._fmt = audio_from, fmt or VideoFormat()
        self._start = start  # the input's time of the video's 0 (a part of it: --start)
        self._pad = (size[1] % 2, size[0] % 2)
        self.whole = not whole_only
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._part = part_path(self.path)
        codec = CONTAINERS[self.path.suffix.lower()]
        options = _KEPT_AS_WRITTEN.get(self.path.suffix.lower(), {})
        coding = {}
        if self.path.suffix.lower() == ".avi":
            # AVI has no timestamps: a frame's slot at its rate is its time (an empty chunk
            # holds the frame before over a slot), and frames in the order they are shown,
            # no B-frames. At 90 kHz ticks it said 600 fps, and a player shows B-frames'
            # pictures late: the picture a frame after its sound, at 25 fps
            self._time_base = 1 / Fraction(fps).limit_denominator(1001000)
            coding = {"bf": "0"}
        if options is _FRAGMENTED and not _fragments_kept():
            options = {}
        try:
            self._container = av.open(str(self._part), "w", options=dict(options))
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(cannot_write(self.path, exc)) from None
        preset = "superfast" if size[0] * size[1] > 1920 * 1088 else "veryfast"
        self._begin(codec, {"crf": str(quality), "preset": preset, **coding} if codec == "libx264"
                    else {"crf": str(quality + 8), "b": "0", "deadline": "realtime",
                          "cpu-used": "8"})

    def _begin(self, codec: str, options: dict, stream=None) -> None:
        """The video stream in ``self._container`` (:meth:`_add_video`, or ``stream`` where
        it was added) and the encoding thread."""
        self._stream = stream or self._add_video(self._container, codec, options)
        self._last_pts = None
        self._reformat = {"format": "yuv420p"}
        if self._fmt.colorspace in _MATRIX:  # the inverse of the matrix the decoder used
            self._reformat["dst_colorspace"] = _MATRIX[self._fmt.colorspace]
        if self._fmt.color_range == 2:
            self._reformat["dst_color_range"] = "JPEG"
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._encode_all, name="encode", daemon=True)
        self._thread.start()

    def _add_video(self, container, codec: str, options: dict):
        """A video stream added to ``container``: ``codec`` with its ``options``, the size,
        pixels and colour of the input."""
        import av

        size, fps = self.size, self.fps
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001000))
        stream.width, stream.height = size[0] + self._pad[1], size[1] + self._pad[0]
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = self._time_base
        stream.options = options
        cc = stream.codec_context
        if self._fmt.sar:
            cc.sample_aspect_ratio = self._fmt.sar
        if self._fmt.field_order and codec == "libx264":  # interlaced as it came: a player
            cc.flags |= av.codec.context.Flags.interlaced_dct | \
                av.codec.context.Flags.interlaced_me  # deinterlaces it as it did the input
            top = self._fmt.field_order in (2, 4)  # AV_FIELD_TT, AV_FIELD_TB
            stream.options = {**stream.options, "x264-params": "tff=1" if top else "bff=1"}
            cc.field_order = self._fmt.field_order
        for tag in ("color_range", "colorspace", "color_primaries", "color_trc"):
            if getattr(self._fmt, tag) is not None:
                setattr(cc, tag, getattr(self._fmt, tag))
        return stream

    def _cannot(self, why) -> str:
        """What a failure of this output is called (see :func:`cannot_write`)."""
        return cannot_write(self.path, why)

    def write(self, image: np.ndarray, time_s: float | None = None) -> None:
        """Add a BGR frame shown from ``time_s`` on (default: one frame after the last)."""
        import cv2

        if self._failed is not None:
            raise SinkError(self._cannot(self._failed))
        if image.shape[1::-1] != self.size:
            raise SinkError(f"frame size {image.shape[1::-1]} differs from the video's {self.size}")
        if any(self._pad):
            image = cv2.copyMakeBorder(image, 0, self._pad[0], 0, self._pad[1],
                                       cv2.BORDER_REPLICATE)
        if self._from_first and self._last_pts is None and time_s is not None:
            # a part from --start 2.5 s whose first frame is due at 2.52 s: FFmpeg starts
            # the file at its first frame (the sound's carrying over; an AVI's first slot),
            # so the sound carried over starts there too (it was a frame's part early)
            self._start = max(self._start, time_s)
            if timecode := self._fmt.timecode_at(self._start, self.fps):  # its first frame's
                self._stream.metadata["timecode"] = timecode  # (an AVI holds none)
        step = 1 / (self.fps * self._time_base)
        pts = None if time_s is None else round(max(0.0, time_s - self._start) / self._time_base)
        if self._last_pts is not None and (pts is None or pts <= self._last_pts):
            pts = self._last_pts + max(1, round(step)) if pts is None else self._last_pts + 1
        pts = 0 if pts is None else pts
        item = (np.ascontiguousarray(image), pts)
        while True:  # never wait on an encoder that has stopped
            if self._failed is not None or not self._thread.is_alive():
                raise SinkError(self._cannot(self._failed or "the encoder stopped"))
            try:
                self._queue.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        self._last_pts = pts
        self.frames += 1

    def _encode_all(self) -> None:
        """The encoding thread: convert and encode queued frames until the ``None`` that
        ``close`` sends; after a failure, keep taking frames (so nobody waits) and drop them."""
        while (item := self._queue.get()) is not None:
            if self._failed is not None:
                continue
            image, pts = item
            try:
                self._container.mux(self._stream.encode(self._picture(image, pts)))
            except Exception as exc:  # any failure: the run ends with it, nobody waits
                self._failed = exc

    def _picture(self, image: np.ndarray, pts: int):
        """``image`` (BGR) as the encoder takes it, at ``pts``."""
        import av

        frame = av.VideoFrame(image.shape[1], image.shape[0], "bgr24")
        if frame.planes[0].line_size == image.shape[1] * 3:
            frame.planes[0].update(image)  # one copy, where from_ndarray made two
        else:
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame = frame.reformat(**self._reformat)
        frame.pts, frame.time_base = pts, self._time_base
        return frame

    def finish(self) -> None:
        """Every frame is written: :meth:`close` puts the video under its name."""
        self.whole = True

    def close(self) -> None:
        """Encode what is queued, flush the encoder and finalise; rename into place (with
        the audio muxed in). After a failure of the encoding thread, what it encoded stays
        the part file and the failure is raised here."""
        container = getattr(self, "_container", None)
        if container is None:
            return
        thread = getattr(self, "_thread", None)
        try:
            if thread is not None and thread.is_alive():
                while thread.is_alive():  # the thread takes every item, even after a failure
                    try:
                        self._queue.put(None, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                thread.join()
            if self.frames and self._failed is None:
                try:
                    container.mux(self._stream.encode(None))
                except Exception as exc:
                    self._failed = exc
        finally:
            self._container = None
            try:
                container.close()
            except Exception as exc:
                self._failed = self._failed or exc
        if self._failed is not None:
            kept = self.frames and self._part.is_file() and self._part.stat().st_size
            if not kept:  # nothing of it on the disk (refused at its first write)
                self._part.unlink(missing_ok=True)
            raise SinkError(cannot_write(self.path, self._failed)
                            + (f" (what was encoded is left as {self._part.name})" if kept
                               else ""))
        if not self.frames:
            self._part.unlink(missing_ok=True)
        elif self.whole:  # else it stays its part file (the caller says so)
            end = (self._last_pts * self._time_base) + Fraction(1) / Fraction(self.fps)
            sound = self._audio_from
            if hasattr(sound, "take"):  # a pipe's, kept as it came: (file, delay) or None
                taken = sound.take()
                if taken and (carried := _carried(taken[0])) is not None and carried.any:
                    self._carry_over(float(end), taken[0], carried, delay=taken[1])
                    return
            elif sound and (carried := _carried(sound)) is not None and carried.any:
                # our video's 0 is the input's first frame; FFmpeg reads the audio from the
                # input's start, before it where the picture starts late (0.84 s late)
                self._carry_over(float(end), sound, carried, skip=self._start + carried.lead)
                return
            os.replace(self._part, self.path)

    def _carry_over(self, seconds: float, source, carried: _Carried, skip: float = 0.0,
                    delay: float = 0.0) -> None:
        """What the output keeps of ``source`` besides its picture, from ``skip`` seconds of
        it, or ``delay`` seconds after the video's start: every audio track (a film's
        languages, an interview's microphones) and every subtitle track the output's
        container holds, each with its language and default flag as it came; its chapters
        and its tags (title, recording date, place). Where one of the tracks cannot be
        carried over, the rest are, and that is said."""
        suffix = self.path.suffix.lower()
        subtitles, left = carried.subtitles_for(suffix)
        if left:
            log.warning("%s: %s", self.path.name, left)
        audio = [f"1:a:{i}" for i in range(carried.audio)]
        tries = [(audio, subtitles, None)]
        if subtitles:
            tries.append((audio, [], "its subtitles not carried over ({})"))
        if len(audio) > 1:
            tries.append((audio[:1], [], "its first audio track alone carried over"
                          + (", and no subtitles" if subtitles else "") + " (the others: {})"))
        why = ""
        for tracks, subs, dropped in tries:
            code, said = self._mux(seconds, source, tracks, skip, delay, subs)
            if code == 0:
                if dropped:  # FFmpeg's first line of the full try says why
                    log.warning("%s: %s", self.path.name, dropped.format(why))
                self._part.unlink(missing_ok=True)
                return
            if (refused := self._refused(code, said)) is not None:  # the video is not whole
                raise SinkError(cannot_write(self.path, OSError(refused, os.strerror(refused)))
                                + f" (what was encoded is left as {self._part.name})")
            if dropped is None:
                why = said[0]
        # keep the video even if nothing else can be carried over; FFmpeg's first line
        # says why ("Unsupported channel layout"), its last only that nothing was written
        log.warning("%s: %s not carried over: %s", self.path.name,
                    ("audio and subtitles" if subtitles else "audio") if audio else
                    "subtitles" if subtitles else "chapters and tags", why)
        os.replace(self._part, self.path)

    def _mux(self, seconds: float, source, audio: list[str], skip: float, delay: float,
             subtitles: list[tuple[str, str]]) -> tuple[int, list[str]]:
        """FFmpeg's exit status and lines muxing the ``audio`` tracks of ``source`` (input
        1, each a ``-map``), its ``subtitles`` (each a ``-map`` and the codec it is written
        with), chapters and tags into the video; on success the result is in place under
        the output's name."""
        import imageio_ffmpeg

        tmp = part_path(self.path, "mux")
        suffix = self.path.suffix.lower()
        sound = "libopus" if suffix == ".webm" else "aac"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(self._part),
               *(["-ss", f"{skip:.6f}"] if skip else []),
               *(["-itsoffset", f"{delay:.6f}"] if delay else []),
               "-i", str(source), "-map", "0:v:0",
               *(x for track in [*audio, *(m for m, _ in subtitles)] for x in ("-map", track)),
               "-map_metadata", "1", "-map_chapters", "1", "-c:v", "copy",
               "-c:a", sound, "-b:a", "160k",
               *(x for i, (_, codec) in enumerate(subtitles) for x in (f"-c:s:{i}", codec)),
               *(["-bsf:s", _FROM_ZERO] if subtitles else []),
               "-t", f"{seconds:.3f}",
               # an AVI's slots are its time: with -t, FFmpeg moved every frame after the
               # first one slot later, making its timestamps not negative
               *(["-avoid_negative_ts", "disabled"] if suffix == ".avi" else []), str(tmp)]
        # its own session: a Ctrl-C at the terminal reaches us, not this last step
        done = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True)
        if done.returncode == 0:
            os.replace(tmp, self.path)
            return 0, []
        tmp.unlink(missing_ok=True)
        said = done.stderr.strip().splitlines() or ["ffmpeg failed"]
        return done.returncode, [re.sub(r"^(\[[^\]]*\] )+", "", line)  # "[aac @ 0x55…] "
                                 for line in said]

    @staticmethod
    def _refused(code: int, said: list[str]) -> int | None:
        """The errno of a mux the disk refused (full, over ``ulimit -f``), or None."""
        if code == -getattr(signal, "SIGXFSZ", 0):  # ulimit -f (POSIX)
            return errno.EFBIG
        return next((e for e in _DISK_REFUSALS for line in said if os.strerror(e) in line),
                    None)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class _Carried:
    """What a file holds besides its picture that an output keeps: ``audio`` tracks,
    ``subtitles`` (each a codec name and whether it is text), and ``extras``, chapters or
    tags (title, recording date, place); ``lead``: how long its first video stream starts
    after the file itself (its sound, as a rule: ``face_recognition``'s clip has its picture
    from 0.852 s, its sound from 0.008 s), in seconds, 0 where it does not say."""

    lead: float = 0.0
    audio: int = 0
    subtitles: tuple[tuple[str, bool], ...] = ()
    extras: bool = False

    @property
    def any(self) -> bool:
        return bool(self.audio or self.subtitles or self.extras)

    def subtitles_for(self, suffix: str) -> tuple[list[tuple[str, str]], str | None]:
        """Each subtitle track a ``suffix`` output holds, as its ``-map`` and the codec it
        is written with (Matroska copies what it holds and takes other text as SubRip; MP4,
        MOV and WebM hold text, MP4 a DVD's pictures too; AVI none), and what is to be said
        of those it does not hold."""
        kept, left = [], []
        for i, (codec, text) in enumerate(self.subtitles):
            written = "copy" if codec in _SUBTITLES_COPIED.get(suffix, ()) else \
                _SUBTITLES_AS.get(suffix) if text else None
            if written:
                kept.append((f"1:s:{i}", written))
            else:
                left.append(codec)
        if not left:
            return kept, None
        holds = {".avi": "none", ".mkv": "text and DVD, Blu-ray and DVB pictures",
                 ".mp4": "text and DVD pictures"}.get(suffix, "text alone")
        return kept, (f"{len(left)} of its {len(self.subtitles)} subtitle tracks not carried "
                      f"over ({', '.join(left)}: {suffix} holds {holds})")


# The subtitles an output container holds: text ones written as what, and those copied as
# they are (by their decoder's names, as PyAV gives them)
_SUBTITLES_AS = {".mkv": "srt", ".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text",
                 ".webm": "webvtt"}
_DVD = {"dvdsub", "dvd_subtitle"}  # pictures; MOV and M4V hold text alone
_SUBTITLES_COPIED = {".mkv": {"srt", "subrip", "ass", "ssa", "webvtt", "pgssub",
                              "hdmv_pgs_subtitle", "dvbsub", "dvb_subtitle"} | _DVD,
                     ".mp4": {"mov_text"} | _DVD, ".m4v": {"mov_text"}, ".mov": {"mov_text"},
                     ".webm": {"webvtt"}}
# Subtitles from the output's 0 on: FFmpeg cuts an input's audio at ``-ss``, not its
# subtitles, and where one started before it, the muxer shifted every track to make its time
# non-negative (the picture of a part from 1 s began 0.8 s late). Cues that ended before the
# output's 0 are dropped, one under way is cut to start there.
_FROM_ZERO = ("noise=drop=lte(pts*tb+duration*tb\\,0),"
              "setts=pts=max(PTS\\,0):dts=max(DTS\\,0):duration=DURATION+min(PTS\\,0)")
# A container's tags that describe the file, not what it shows (not worth a remux alone)
_FILE_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder"}


def _carried(path: str | Path) -> _Carried | None:
    """What ``path`` holds besides its picture (:class:`_Carried`), or None where it cannot
    be read. One open of the file (a link's: one request)."""
    import av

    try:
        with av.open(str(path)) as container:
            subtitles = tuple(
                (s.codec_context.name, s.codec_context.codec.text_sub)
                for s in container.streams.subtitles if s.codec_context is not None)
            extras = bool(container.chapters()) or any(
                key.lower() not in _FILE_TAGS for key in container.metadata)
            lead, video = 0.0, container.streams.video[0] if container.streams.video else None
            if video is not None and video.start_time is not None \
                    and container.start_time is not None:
                lead = max(0.0, float(video.start_time * video.time_base)
                           - container.start_time / av.time_base)
            return _Carried(lead, len(container.streams.audio), subtitles, extras)
    except (OSError, av.FFmpegError):
        return None


@functools.cache
def _fragments_kept() -> bool:
    """Whether this FFmpeg writes an MP4 in fragments and makes it a plain one at its end
    (7.1 and later; an earlier one writes it plain, as it was)."""
    import av

    try:
        with av.open(io.BytesIO(), "w", format="mp4", options=dict(_FRAGMENTED)) as probe:
            stream = probe.add_stream("mpeg4", rate=25)
            stream.width = stream.height = 16
            probe.start_encoding()
        return True
    except (av.FFmpegError, ValueError):
        return False
