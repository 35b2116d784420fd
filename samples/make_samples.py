"""(Re)make the sample media: ``python samples/make_samples.py``.

- ``samples/astronaut.mp4``: 3 s, 320×240, 15 fps; the public-domain NASA portrait of
  Eileen Collins (scikit-image's ``astronaut``) drifting and zooming across the frame.
- ``samples/annotated_frame.png``: one frame of that clip as the pipeline annotates it
  with the shipped default model (the picture in the README).
- ``samples/crowd_frame.jpg``: a wide shot as the pipeline annotates it: 20 copies of that
  face (and its mirror image), 28 to 200 px, walking over scikit-image's rocket photo at
  1920×1080 (``streamfer.tools.bench.make_crowd_clip``); compact titles, panels for the
  largest faces only.
- ``samples/report.png``: the analyst's report of that clip (``run --report``) as headless
  Chromium shows it (Debian's ``chromium``; skipped where it is not installed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SIZE, FPS, SECONDS = (320, 240), 15, 3


def make_clip(path: Path) -> Path:
    from skimage import data

    from streamfer.sinks import VideoSink

    face = cv2.cvtColor(data.astronaut()[0:300, 90:390], cv2.COLOR_RGB2BGR)
    frames = []
    n = FPS * SECONDS
    for i in range(n):
        t = i / (n - 1)
        scale = 0.55 + 0.2 * t
        small = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = np.full((SIZE[1], SIZE[0], 3), (70, 60, 50), np.uint8)
        x, y = int(10 + 120 * t), int(30 - 25 * t)
        h, w = small.shape[:2]
        h, w = min(h, SIZE[1] - y), min(w, SIZE[0] - x)
        canvas[y:y + h, x:x + w] = small[:h, :w]
        frames.append(canvas)
    with VideoSink(path, FPS, SIZE) as video:
        for frame in frames:
            video.write(frame)
    return path


def annotate(clip: Path, png: Path) -> None:
    out = HERE / ".annotated.mp4"
    subprocess.run([sys.executable, str(HERE.parent / "run_stream.py"), "--source", str(clip),
                    "--output", str(out), "--quiet"], check=True)
    cap = cv2.VideoCapture(str(out))
    cap.set(cv2.CAP_PROP_POS_FRAMES, FPS * SECONDS // 2)
    ok, frame = cap.read()
    cap.release()
    out.unlink()
    if not ok:
        raise SystemExit("could not read the annotated clip back")
    cv2.imwrite(str(png), frame)


def crowd(jpg: Path, frames: int = 24) -> None:
    import tempfile

    from streamfer.tools.bench import make_crowd_clip

    sides = np.linspace(28, 200, 20).round().astype(int).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_crowd_clip(Path(tmp) / "crowd.mp4", frames, sides=sides)
        out = Path(tmp) / "annotated.mp4"
        subprocess.run([sys.executable, str(HERE.parent / "run_stream.py"), "--source",
                        str(clip), "--output", str(out), "--quiet"], check=True)
        cap = cv2.VideoCapture(str(out))
        cap.set(cv2.CAP_PROP_POS_FRAMES, frames // 2)
        ok, frame = cap.read()
        cap.release()
    if not ok:
        raise SystemExit("could not read the annotated crowd clip back")
    cv2.imwrite(str(jpg), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])


def report(clip: Path, png: Path) -> bool:
    import shutil
    import tempfile

    chromium = shutil.which("chromium")
    if not chromium:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        subprocess.run([sys.executable, str(HERE.parent / "run_stream.py"), "--source",
                        str(clip), "--csv", str(Path(tmp) / "frames.csv"), "--report",
                        str(page), "--quiet"], check=True)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={png}",
                        "--window-size=1000,620", page.as_uri()], check=True,
                       capture_output=True, timeout=120)
    return True


if __name__ == "__main__":
    clip = make_clip(HERE / "astronaut.mp4")
    annotate(clip, HERE / "annotated_frame.png")
    crowd(HERE / "crowd_frame.jpg")
    made = report(clip, HERE / "report.png")
    print(f"wrote {clip}, {HERE / 'annotated_frame.png'}, {HERE / 'crowd_frame.jpg'}"
          + (f" and {HERE / 'report.png'}" if made else " (no Chromium: no report.png)"))
