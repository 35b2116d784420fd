"""Sinks: the annotated video, the frame-level CSV and the live window.

Each is a context manager that finalises what it holds on exit, errors and Ctrl-C
included: the video is closed (and the source's audio muxed in), CSV rows are flushed as
they are written, the window is destroyed.

Example:
    >>> from streamfer.sinks import CSVSink, VideoSink
    >>> with VideoSink("out.mp4", fps=30, size=(640, 480), audio_from="in.mp4") as video, \\
    ...         CSVSink("out.csv") as table:                           # doctest: +SKIP
    ...     video.write(image)
    ...     table.write(frame)
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
from pathlib import Path

import numpy as np

from streamfer.frame import Frame
from streamfer.labels import EMOTIONS

log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """An output cannot be written or shown."""


def _slug(label: str) -> str:
    return label.lower()


CSV_COLUMNS = (["source", "frame", "time_s", "face_id", "x", "y", "w", "h", "det_score"]
               + [f"raw_{_slug(e)}" for e in EMOTIONS] + [f"smooth_{_slug(e)}" for e in EMOTIONS]
               + ["labels", "classified"])


class CSVSink:
    """One row per face per frame, flushed frame by frame."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(CSV_COLUMNS)
        self.rows = 0

    def write(self, frame: Frame) -> None:
        for face in frame.faces:
            raw = face.scores if face.scores is not None else [np.nan] * len(EMOTIONS)
            smooth = face.smoothed if face.smoothed is not None else raw
            self._writer.writerow(
                [frame.source, frame.index, f"{frame.time_s:.4f}", face.face_id, *face.box,
                 f"{face.det_score:.3f}", *(f"{s:.4f}" for s in raw),
                 *(f"{s:.4f}" for s in smooth), ";".join(face.labels), int(face.classified)])
            self.rows += 1
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> CSVSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoSink:
    """H.264 MP4 with the input's size and fps; the audio of ``audio_from`` is carried over.

    Frames stream to FFmpeg (from imageio-ffmpeg) as they come; on close the file is
    finalised, so an interrupted run leaves a playable video of the frames written so far.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int],
                 audio_from: str | Path | None = None, quality: int = 23) -> None:
        import imageio_ffmpeg

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size, self.fps, self.frames = size, fps, 0
        self._audio_from = audio_from
        self._ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        self._video_path = self.path.with_name(f".{self.path.stem}.video{self.path.suffix}")
        odd = size[0] % 2 or size[1] % 2  # 4:2:0 needs even sizes; 4:4:4 keeps odd ones exact
        self._writer = imageio_ffmpeg.write_frames(
            str(self._video_path), size, fps=fps, codec="libx264", quality=None,
            pix_fmt_in="bgr24", pix_fmt_out="yuv444p" if odd else "yuv420p",
            macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-crf", str(quality), "-preset", "veryfast"])
        self._writer.send(None)

    def write(self, image: np.ndarray) -> None:
        if image.shape[1::-1] != tuple(self.size):
            raise SinkError(f"frame size {image.shape[1::-1]} differs from the video's {self.size}")
        self._writer.send(np.ascontiguousarray(image))
        self.frames += 1

    def close(self) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.close()
        if self._audio_from and self.frames and _has_audio(self._ffmpeg, self._audio_from):
            self._mux_audio()
        else:
            os.replace(self._video_path, self.path)

    def _mux_audio(self) -> None:
        tmp = self.path.with_name(f".{self.path.stem}.mux{self.path.suffix}")
        cmd = [self._ffmpeg, "-y", "-v", "error", "-i", str(self._video_path),
               "-i", str(self._audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
               "-c:a", "aac", "-b:a", "160k", "-t", f"{self.frames / self.fps:.3f}", str(tmp)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0:
            os.replace(tmp, self.path)
            self._video_path.unlink(missing_ok=True)
        else:  # keep the video even if the audio cannot be carried over
            log.warning("%s: audio not carried over: %s", self.path.name,
                        done.stderr.strip().splitlines()[-1:] or "ffmpeg failed")
            tmp.unlink(missing_ok=True)
            os.replace(self._video_path, self.path)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _has_audio(ffmpeg: str, path: str | Path) -> bool:
    probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True,
                           text=True)
    return "Audio:" in probe.stderr


class Window:
    """A live OpenCV window; ``show`` returns False once the user pressed q or Esc."""

    def __init__(self, title: str = "streamfer") -> None:
        import cv2

        if os.name != "nt" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("no display to show a window on (DISPLAY is not set); "
                            "use --output/--csv instead of --show")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise SinkError("this OpenCV build has no GUI support; "
                            "pip install opencv-python to use --show") from None
        self.title = title

    def show(self, image: np.ndarray) -> bool:
        import cv2

        cv2.imshow(self.title, image)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)
        cv2.waitKey(1)

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
