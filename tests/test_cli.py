"""End to end through the command line, as a user runs it (real detector, real model)."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import pytest
from conftest import ROOT, compose, frame_count, has_audio, write_video

pytestmark = pytest.mark.usefixtures("detector_ready")


def run_cli(*args, env=None, timeout=300):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "run_stream.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=environment)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_one_line_error(done):
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # nothing else either


def test_annotated_copy_and_csv_of_a_clip(tmp_path, face_clip):
    out, table = tmp_path / "annotated.mp4", tmp_path / "frames.csv"
    done = run_cli("--source", face_clip, "--output", out, "--csv", table, "--quiet")
    assert done.returncode == 0, done.stderr
    native = ("W0000", "I0000", "Logging before InitGoogle", "INFO:")
    assert not [line for line in done.stderr.splitlines() if line.startswith(native)]
    assert frame_count(out) == (24, 30.0, (640, 480))
    assert has_audio(out)
    rows = read_csv(table)
    assert len(rows) >= 22  # the face is found in (nearly) every frame
    assert len({r["face_id"] for r in rows}) == 1  # and keeps one id while it moves
    for r in rows:
        assert float(r["time_s"]) == pytest.approx(int(r["frame"]) / 30, abs=1e-3)
        assert r["classified"] == "1"
        assert all(0 <= float(r[k]) <= 1 for k in r if k.startswith(("raw_", "smooth_")))
    xs = [int(r["x"]) for r in rows]
    assert xs[-1] - xs[0] > 200  # it really moved
    first = cv2.VideoCapture(str(out)).read()[1]
    original = cv2.VideoCapture(str(face_clip)).read()[1]
    assert cv2.absdiff(first, original).mean() > 0.5  # the overlay is drawn


def test_every_nth_frame(tmp_path, face_clip):
    out, table = tmp_path / "a.mp4", tmp_path / "a.csv"
    done = run_cli("-s", face_clip, "-o", out, "--csv", table, "--every", "4", "-q",
                   "--threshold", "Happiness=0.3", "--smooth", "window:3")
    assert done.returncode == 0, done.stderr
    assert frame_count(out)[0] == 24
    assert sorted({int(r["frame"]) for r in read_csv(table)}) == list(range(0, 24, 4))


@pytest.mark.parametrize("content,expected", [
    (None, "no such file"), (b"", "empty file"), (b"not a video\n" * 100, "cannot open video")])
def test_bad_input_is_one_line_and_nonzero(tmp_path, content, expected):
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    done = run_cli("--source", path, "--csv", tmp_path / "x.csv")
    assert_one_line_error(done)
    assert expected in done.stderr


@pytest.mark.parametrize("args,expected", [
    (["--source", "9", "--csv", "x.csv"], "cannot open camera"),
    (["--source", "{clip}", "--show"], "no display"),
    (["--source", "{clip}"], "nothing to do"),
    (["--source", "{clip}", "--csv", "x.csv", "--threshold", "Joy=0.3"], "--threshold"),
    (["--source", "{clip}", "--csv", "x.csv", "--smooth", "fast"], "--smooth"),
    (["--source", "{clip}", "--csv", "x.csv", "--model", str(ROOT / "README.md")],
     "not a streamfer model file"),
])
def test_usage_errors_are_one_line(tmp_path, face_clip, args, expected):
    args = [a.format(clip=face_clip) for a in args]
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
    done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert expected in done.stderr


def test_folder_batch_skips_broken_files_and_resumes(tmp_path, face_clip, face_bgr):
    footage = tmp_path / "footage"
    (footage / "day2").mkdir(parents=True)
    shutil.copy(face_clip, footage / "a.mp4")
    write_video(footage / "day2" / "b.mov",
                [compose(face_bgr, (321, 239), 5, 5, scale=0.75) for _ in range(6)], fps=12)
    (footage / "broken.mp4").write_text("not a video")
    (footage / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    done = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out, "-q")
    assert done.returncode == 1  # one input failed ...
    assert "Traceback" not in done.stderr and "broken.mp4" in done.stderr
    assert frame_count(out / "a.mp4")[0] == 24  # ... and the batch went on
    assert frame_count(out / "day2" / "b.mp4")[:3] == (6, 12.0, (321, 239))
    assert len(read_csv(out / "day2" / "b.csv")) == 6
    again = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out, "-q")
    assert again.stderr.count("skipped") == 2


def test_ctrl_c_keeps_what_was_written(tmp_path, face_bgr):
    frames = [compose(face_bgr, (640, 480), 40 + (i % 60) * 4, 60, scale=1.0) for i in range(600)]
    clip = write_video(tmp_path / "long.mp4", frames)
    out, table = tmp_path / "o.mp4", tmp_path / "o.csv"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), "-s", clip, "-o", out,
                             "--csv", table, "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and (not table.exists() or len(read_csv(table)) < 10):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    rows = read_csv(table)
    written = frame_count(out)[0]
    assert 10 <= len(rows) < 600
    assert len(rows) - 3 <= written <= len(rows) + 3  # the video holds the same frames
