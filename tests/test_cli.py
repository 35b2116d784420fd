"""End to end through the command line, as a user runs it (real detector, real model)."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from ctypes import util as ctypes_util
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (
    DETECTOR_FILES,
    QUIETING,
    ROOT,
    close_window,
    compose,
    flash_and_click,
    flash_clip,
    frame_count,
    has_audio,
    recordings,
    run_on_terminal,
    write_hls,
    write_video,
)


@pytest.fixture(autouse=True)
def _detector(request):
    """Every run here loads the detector (from ../shared/weights: skipped without it), but
    those marked ``before_models``: what is said before the models load runs anywhere."""
    if request.node.get_closest_marker("before_models") is None:
        request.getfixturevalue("detector_ready")


def run_cli(*args, env=None, timeout=300, cwd=None):
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING} | (env or {})
    return subprocess.run([sys.executable, str(ROOT / "run_stream.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=environment,
                          cwd=cwd)


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
    native = ("W0000", "I0000", "Logging before InitGoogle", "INFO:", "WARNING: All log")
    assert not [line for line in done.stderr.splitlines() if line.startswith(native)]
    said = [line for line in done.stderr.splitlines() if not line.startswith("first run")]
    assert len(said) == 1, done.stderr  # the summary line (after one-time conversions)
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


def test_csv_to_standard_output_is_the_csv_and_a_reader_that_stops_stops_the_run(
        tmp_path, face_clip, face_bgr):
    """--csv -: the rows on standard output, the progress bar and the run's lines on standard
    error (the bar went to standard output and '-' was a file of that name); a reader that
    stops (``| head``) ends the run in one line, its video kept, exit 141 as for SIGPIPE."""
    table = tmp_path / "frames.csv"
    assert run_cli("-s", face_clip, "--csv", table, "-q").returncode == 0
    done = run_cli("-s", face_clip, "--csv", "-", cwd=tmp_path)  # with its progress bar
    assert done.returncode == 0, done.stderr
    assert done.stdout == table.read_text()  # (each read with universal newlines)
    assert "24/24" in done.stderr and not (tmp_path / "-").exists()
    long = write_video(tmp_path / "long.mp4", [compose(face_bgr, (320, 240), 5 + i % 50, 5,
                                                       scale=0.7) for i in range(600)])
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), "-s", str(long),
                             "--csv", "-", "-o", str(tmp_path / "part.mp4"), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment)
    try:
        header, first = proc.stdout.readline(), proc.stdout.readline()
        proc.stdout.close()  # the reader goes
        err = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert header.startswith("source,frame,time_s") and first.startswith("long.mp4,0,")
    assert proc.returncode == 141, err
    assert "stopped: standard output was closed" in err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert 0 < frame_count(tmp_path / "part.mp4")[0] < 600


def test_every_nth_frame(tmp_path, face_clip):
    out, table = tmp_path / "a.mp4", tmp_path / "a.csv"
    done = run_cli("-s", face_clip, "-o", out, "--csv", table, "--every", "4", "-q",
                   "--threshold", "Happiness=0.3", "--smooth", "window:3")
    assert done.returncode == 0, done.stderr
    assert frame_count(out)[0] == 24
    assert sorted({int(r["frame"]) for r in read_csv(table)}) == list(range(0, 24, 4))


@pytest.mark.before_models
@pytest.mark.parametrize("content,expected", [
    (None, "no such file"), (b"", "empty file"), (b"not a video\n" * 100, "cannot open video")])
def test_bad_input_is_one_line_and_nonzero(tmp_path, content, expected):
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    done = run_cli("--source", path, "--csv", tmp_path / "x.csv")
    assert_one_line_error(done)
    assert expected in done.stderr


@pytest.mark.before_models
def test_missing_camera_is_one_line(tmp_path):
    """Said before the models load (an empty cache: nothing to load them from here; a first
    run took ten seconds to build the int8 file, then said it). OpenCV logs its own "Camera
    index out of range" line on some builds: not shown."""
    done = run_cli("--source", "9", "--csv", tmp_path / "x.csv",
                   env={"STREAMFER_HOME": str(tmp_path / "empty")})
    assert_one_line_error(done)
    assert "cannot open camera: 9" in done.stderr
    if sys.platform.startswith("linux") and not list(Path("/dev").glob("video*")):
        assert "(this machine shows no camera: no /dev/video*)" in done.stderr  # it said none


@pytest.mark.before_models
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's /dev/video* names")
def test_a_camera_device_path_not_there_is_a_camera_not_a_file(tmp_path):
    """/dev/video97 (or a /dev/v4l/by-id name, its camera unplugged): it said 'no such file',
    as if a video's name were mistyped."""
    for spec in ("/dev/video97", "/dev/v4l/by-id/usb-Nobody_Cam-video-index0"):
        done = run_cli("--source", spec, "--csv", tmp_path / "x.csv")
        assert_one_line_error(done)
        assert f"cannot open camera: {spec}" in done.stderr, done.stderr
        assert not (tmp_path / "x.csv").exists()
    from streamfer.sources.cameras import _no_camera

    (tmp_path / "video0").touch()
    assert _no_camera(None, tmp_path) == ("it links to no device now (the camera unplugged?); "
                                          "the video devices here: 0")


@pytest.mark.before_models
def test_a_camera_index_not_there_names_the_ones_that_are(tmp_path):
    """Linux lists its cameras as /dev/video*: a wrong index is told which there are."""
    from streamfer.sources.cameras import _no_camera

    for name in ("video0", "video2", "vhci"):
        (tmp_path / name).touch()
    assert _no_camera(5, tmp_path) == "no /dev/video5; the video devices here: 0, 2"
    assert _no_camera(2, tmp_path) is None  # there and ours: busy, or not a camera


def test_closing_the_window_ends_the_run_as_q_does_with_its_outputs_kept(tmp_path, media,
                                                                          display):
    """--show: the window closed with its title bar's × came back on the next frame (OpenCV
    opens a new one) and the run went on — a webcam's for ever. It now ends the run as q
    does: exit 0, its summary, the video and the CSV kept, no window left. Its title says
    what it shows (two runs' windows were both "streamfer") and the frames a second (nothing
    did, the progress bar being off with --show)."""
    import imageio_ffmpeg

    if not ctypes_util.find_library("X11"):
        pytest.skip("needs libX11 (Xvfb's) to close the window as a window manager does")
    clip = tmp_path / "long.mp4"  # 30 s, shown at its own pace: it cannot end by itself
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-stream_loop", "2", "-i",
                    str(media / "pyfeat_WolfgangLanger_Pexels_sad_to_happy.mp4"), "-c", "copy",
                    str(clip)], check=True)
    table, out = tmp_path / "shown.csv", tmp_path / "shown.mp4"
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), "-s", str(clip),
                             "--show", "--csv", str(table), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**environment, "DISPLAY": display, "WAYLAND_DISPLAY": ""})
    try:
        deadline = time.monotonic() + 240
        while not (table.is_file() and len(read_csv(table)) >= 10) \
                and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate(timeout=30)[1]
        time.sleep(1.5)  # a second's rate in the title
        [title] = close_window(display, "streamfer")
        assert re.fullmatch(r"streamfer · long\.mp4 · \d+\.\d fps", title), title
        _, err = proc.communicate(timeout=20)  # before: still running, its window back
    finally:
        proc.kill()
    assert proc.returncode == 0 and re.match(r"long\.mp4: (\d+) frames", err), err
    shown = int(re.match(r"long\.mp4: (\d+) frames", err)[1])
    assert shown < 700 and frame_count(out)[0] == shown and len(read_csv(table)) == shown
    assert close_window(display, "streamfer") == []


def test_a_photo_stays_on_screen_until_asked_to_go_with_its_outputs_written(tmp_path,
                                                                            media, display):
    """--show with a photo: its outputs are written, then its window stays (it used to
    close at once, after a millisecond) until q, Esc, the window closed or a Ctrl-C."""
    table, copy = tmp_path / "faces.csv", tmp_path / "annotated.png"
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), "-s",
                             str(media / "pyfeat_single_face_smile.jpg"), "--show", "--csv",
                             str(table), "-o", str(copy)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**environment, "DISPLAY": display, "WAYLAND_DISPLAY": ""})
    try:
        deadline = time.monotonic() + 240
        while not (table.is_file() and copy.is_file()) and time.monotonic() < deadline \
                and proc.poll() is None:
            time.sleep(0.2)
        assert table.is_file() and copy.is_file(), proc.communicate(timeout=30)[1]
        time.sleep(3)
        assert proc.poll() is None  # still showing the photo
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    rows = read_csv(table)
    assert len(rows) == 1 and rows[0]["labels"] == "Happiness"


# a model's other files given as --model: it said "(UnicodeDecodeError)", "(KeyError)"
MODEL_WEIGHTS = ("default.weights.npz is not a streamfer model file (not JSON: it is a model's "
                 "weights; give its model file, default.json)")
MODEL_INT8 = ("default.int8.json is not a streamfer model file (no 'weights' field: it is a "
              "model's int8 ranges; give its model file, default.json)")
# what the cases below say once the models have loaded (the others: before)
SAID_AFTER_THE_MODELS = {"no display", "not a streamfer model file", MODEL_WEIGHTS, MODEL_INT8,
                         "no frame from --start 0.501 s to --end 0.502 s",
                         "cannot write /proc/streamfer.mp4: "}


@pytest.mark.parametrize("args,expected", [
    (["--source", "{clip}", "--show"], "no display"),
    (["--source", "{clip}"], "nothing to do"),
    # an empty --source (an unset shell variable) was the current folder, run whole
    (["--source", "", "--csv-dir", "c", "--csv", "x.csv"], "--source is empty"),
    (["--source", "/dev/null", "--csv", "x.csv"], "not a file: /dev/null"),
    (["--source", "{clip}", "--csv", "x.csv", "--threshold", "Joy=0.3"], "--threshold"),
    # a threshold outside the scores' range labelled every face or none (it was taken)
    (["--source", "{clip}", "--csv", "x.csv", "--threshold", "2"], "a score from 0 to 1"),
    (["--source", "{clip}", "--csv", "x.csv", "--threshold", "Anger=-0.1"],
     "--threshold: Anger=-0.1: a threshold is a score from 0 to 1"),
    # the value that is out of range, as written (it was the dict {'Happiness': 0.5, ...})
    (["--source", "{clip}", "--csv", "x.csv", "--threshold", "happiness=0.5,anger=2"],
     "Invalid value for --threshold: Anger=2: a threshold is a score from 0 to 1"),
    (["--source", "{clip}", "--csv", "x.csv", "--threshold", "nan"], "a score from 0 to 1"),
    (["--source", "{clip}", "--csv", "x.csv", "--smooth", "fast"], "--smooth"),
    (["--source", "{clip}", "--csv", "x.csv", "--smooth", "window:0"], "--smooth"),
    (["--source", "{clip}", "--csv", "x.csv", "--smooth", "window:-2"], "--smooth"),
    (["--source", "{clip}", "--csv", "x.csv", "--tiles", "many"], "--tiles"),
    (["--source", "{clip}", "--csv", "x.csv", "--tiles", "0"], "--tiles"),
    (["--source", "{clip}", "--csv", "x.csv", "--model", str(ROOT / "README.md")],
     "not a streamfer model file"),
    (["--source", "{clip}", "--csv", "x.csv", "--model",
      str(ROOT / "models" / "default.weights.npz")], MODEL_WEIGHTS),
    (["--source", "{clip}", "--csv", "x.csv", "--model",
      str(ROOT / "models" / "default.int8.json")], MODEL_INT8),
    (["--source", "{clip}", "--csv", "x.csv", "--start", "5"], "--start 5 s is not before its "
     "end (0.80 s)"),
    (["--source", "{clip}", "--csv", "x.csv", "--start", "0.5", "--end", "0.2"],
     "--end (0.2 s) must come after --start (0.5 s)"),
    (["--source", "{clip}", "--csv", "x.csv", "--start", "1:75"], "[H:]M:S"),
    (["--source", "0", "--csv", "x.csv", "--start", "2"], "a webcam starts now"),
    (["--source", "{clip}", "--csv", "x.csv", "--camera-size", "1280x720"],
     "--camera-size/--camera-fps ask a webcam for its mode: give one (--source 0)"),
    (["--source", "0", "--csv", "x.csv", "--camera-size", "1280"],
     "'1280': use WIDTHxHEIGHT in pixels (1280x720)"),
    (["--source", "{clip}", "--csv", "x.csv", "--selfie-view"],
     "--selfie-view is how --show's window shows the picture: give --show"),
    (["--source", "{clip}", "--microphone", "-o", "x.mp4"],
     "--microphone is a webcam's sound (--source 0): a video's or a stream's own sound is "
     "kept in --output without it"),
    (["--source", "0", "--microphone", "--csv", "x.csv"],
     "--microphone keeps the webcam's sound in the video: give --output"),
    # found while reading the file: raised from the decoding thread (it was lost: exit 0)
    (["--source", "{clip}", "--csv", "x.csv", "--start", "0.501", "--end", "0.502"],
     "no frame from --start 0.501 s to --end 0.502 s"),
    # an output that cannot be written fails before the model loads (it failed at the end of
    # the run, or when its first row came, in the words of the OS)
    (["--source", "{clip}", "--csv", "x.csv", "-o", "{clip}/x.mp4"],
     "cannot write {clip}/x.mp4: {clip} is a file, not a folder"),
    (["--source", "{clip}", "--csv", "{clip}/sub/x.csv"], "{clip} is a file, not a folder"),
    (["--source", "{clip}", "--csv", "x.csv", "--report", "{clip}/r.html"],
     "cannot write {clip}/r.html"),
    (["--source", "{folder}", "--csv-dir", "{clip}/c"], "{clip} is a file, not a folder"),
    # a page over a folder failed after the run ("[Errno 21] Is a directory")
    (["--source", "{clip}", "--csv", "x.csv", "--report", "{folder}"],
     "it is a folder, not a file"),
    # an output the OS refuses late (a folder root may not write in) does not claim to
    # have left a part file that was never made
    (["--source", "{clip}", "-o", "/proc/streamfer.mp4"],
     "cannot write /proc/streamfer.mp4: "),
    (["--source", "{clip}", "--csv", "-", "--report", "r.html"], "--csv - leaves none"),
    (["--source", "{folder}", "--csv-dir", "c", "--csv", "-"],
     "--csv - (standard output) is for one source's rows"),
    # two outputs named alike: the one finalised last replaced the other (exit 0)
    (["--source", "{clip}", "--csv", "x.mp4", "-o", "x.mp4"],
     "--output and --csv name the same file (x.mp4)"),
    (["--source", "{clip}", "--csv", "x.csv", "--report", "./x.csv"],
     "--csv and --report name the same file"),
    (["--source", "{folder}", "--output-dir", "out", "--csv-dir", "c", "--csv", "out/face.mp4"],
     "--csv and face.mp4's output name the same file"),
    # an output named as another format: a CSV in x.mp4, the page in r.pdf, a folder of
    # pages in p.html/ were written so (exit 0)
    (["--source", "{clip}", "--csv", "x.mp4"],
     "cannot write a CSV as 'x.mp4': it would be taken for a video; name it x.csv"),
    (["--source", "{clip}", "--csv", "x.csv", "--report", "r.pdf"], "name it r.html"),
    (["--source", "{folder}", "--csv-dir", "out", "--report", "p.html"],
     "name a folder, not 'p.html'"),
    # a folder misspelt, or a quoted pattern, with a folder's options: it said "--output-dir/
    # --csv-dir are for folder sources; use --output/--csv", as if a folder were not meant
    (["--source", "{folder}/footgae/", "--output-dir", "out"],
     "no such folder: {folder}/footgae/"),
    (["--source", "{folder}/footgae", "--csv-dir", "out", "--dry-run"],
     "no such folder: {folder}/footgae"),
    (["--source", "{folder}/*.mp4", "--csv-dir", "out"],
     "no such folder: {folder}/*.mp4 (a pattern matching 1 file: give its folder, "
     "--source {folder}/)"),
    # a file named as a folder: "not a video or photo format FFmpeg reads" of a good file
    (["--source", "{clip}/", "--csv", "x.csv"], "face.mp4 is a file: drop the /"),
])
@pytest.mark.before_models
def test_usage_errors_are_one_line(tmp_path, face_clip, args, expected, request):
    if expected in SAID_AFTER_THE_MODELS:
        request.getfixturevalue("detector_ready")
    args = [a.format(clip=face_clip, folder=face_clip.parent) for a in args]
    expected = expected.format(clip=face_clip, folder=face_clip.parent)
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
    done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert expected in done.stderr and "left as" not in done.stderr
    assert not (tmp_path / "x.csv").exists()  # nothing written (a run stopped before its
    # first row left a CSV of its header alone, as a whole run without faces writes it)
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "out").exists()


def test_folder_batch_skips_broken_files_and_resumes(tmp_path, face_clip, face_bgr):
    footage = tmp_path / "footage"
    (footage / "day2").mkdir(parents=True)
    shutil.copy(face_clip, footage / "a.mp4")
    write_video(footage / "day2" / "b.mov",
                [compose(face_bgr, (320, 240), 5, 5, scale=0.75) for _ in range(6)], fps=12)
    (footage / "broken.mp4").write_text("not a video")
    (footage / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    done = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out, "-q")
    assert done.returncode == 1  # one input failed ...
    assert "Traceback" not in done.stderr and "broken.mp4" in done.stderr
    assert frame_count(out / "a.mp4")[0] == 24  # ... and the batch went on
    assert frame_count(out / "day2" / "b.mov")[:3] == (6, 12.0, (320, 240))
    rows = read_csv(out / "day2" / "b.mov.csv")
    assert len(rows) == 6 and {r["source"] for r in rows} == {"day2/b.mov"}
    again = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out, "-q")
    assert again.stderr.count("│ skipped") == 2
    assert "day2/b.mov" in again.stderr  # the summary names inputs by relative path


@pytest.mark.parametrize("name", ["moving.webp", "moving.png"])
def test_an_animated_webp_or_png_is_read_as_the_video_it_is(tmp_path, face_bgr, name):
    """An animated WebP (the web's GIF now) or an APNG named ``.png`` was read as a photo:
    its first frame alone, not a word of the others. It is a video now, each frame at its
    own duration: a row each, an annotated video; in a folder run its output is a video
    (``moving.webp.mp4``), and a still one stays a photo."""
    from PIL import Image

    footage, out = tmp_path / "footage", tmp_path / "out"
    footage.mkdir()
    frames = [compose(face_bgr, (320, 240), 20 + 30 * i, 20, scale=0.6) for i in range(5)]
    images = [Image.fromarray(np.ascontiguousarray(frame[..., ::-1])) for frame in frames]
    images[0].save(footage / name, save_all=True, append_images=images[1:],
                   duration=[100, 300, 100, 100, 200], loop=0)
    cv2.imwrite(str(footage / "still.png"), frames[0])
    table = tmp_path / "t.csv"
    done = run_cli("-s", footage / name, "--csv", table, "--csv-empty-frames",
                   "-o", tmp_path / "moving.mp4", "-q")
    assert done.returncode == 0, done.stderr
    rows = read_csv(table)
    assert [row["time_s"] for row in rows] == ["0.0000", "0.1000", "0.4000", "0.5000",
                                                "0.6000"]
    assert all(row["face_id"] for row in rows)
    assert frame_count(tmp_path / "moving.mp4")[0] == 5
    done = run_cli("-s", footage, "--output-dir", out, "-q")
    assert done.returncode == 0, done.stderr
    assert frame_count(out / f"{name}.mp4")[0] == 5
    assert cv2.imread(str(out / "still.png")).shape == (240, 320, 3)


def test_a_path_given_with_a_quoted_tilde_is_in_the_home_folder(tmp_path, face_clip):
    """``--csv "~/My Videos/x.csv"`` — quoted for its space, or from a script's argument list
    or a config, where no shell reads the ``~`` — made a folder named ``~`` in the current one
    and wrote there; ``--source "~/…"`` was "no such file". Each path takes the home folder
    now, as the shell would have, for a run and a report alike."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "My Videos").mkdir(parents=True)
    work.mkdir()
    shutil.copy(face_clip, home / "My Videos" / "clip.mp4")
    done = run_cli("-s", "~/My Videos/clip.mp4", "--csv", "~/My Videos/x.csv", "-o",
                   "~/out/x.mp4", "--report", "~/out/x.html", "-q", cwd=work,
                   env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert len(read_csv(home / "My Videos" / "x.csv")) == 24
    assert frame_count(home / "out" / "x.mp4")[0] == 24 and (home / "out" / "x.html").is_file()
    done = run_cli("-s", "~/My Videos", "--csv-dir", "~/csvs", "-q", cwd=work,
                   env={"HOME": str(home)})
    assert done.returncode == 0 and (home / "csvs" / "clip.mp4.csv").is_file(), done.stderr
    assert not list(work.iterdir())  # no folder named ~ here


def test_an_animated_avif_is_read_as_a_video(tmp_path, face_bgr):
    """An animated AVIF was read as its still picture (FFmpeg lists the animation as a
    second video track, which OpenCV does not pick), first without a word, then with a
    warning and the command that made it a video. Its frames are read now, at their times,
    as an animated WebP's are: a video out, the CSV a row a frame; in a folder run too. A
    still AVIF is a photo."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    frames = [compose(face_bgr, (320, 240), 20 + 10 * i, 20, scale=0.6) for i in range(10)]
    clip = write_video(tmp_path / "clip.mp4", frames, fps=10)
    footage = tmp_path / "footage"
    footage.mkdir()
    for name, extra in (("moving.avif", []), ("still.avif", ["-frames:v", "1"])):
        made = subprocess.run([ffmpeg, "-v", "error", "-i", str(clip), *extra, "-c:v",
                               "libaom-av1", "-cpu-used", "8", "-f", "avif",
                               str(footage / name)], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
    done = run_cli("-s", footage / "moving.avif", "-o", "m.mp4", "--csv", "m.csv", "-q",
                   cwd=tmp_path)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    rows = read_csv(tmp_path / "m.csv")
    assert [r["frame"] for r in rows] == [str(i) for i in range(10)]
    assert [float(r["time_s"]) for r in rows] == pytest.approx([i / 10 for i in range(10)])
    assert frame_count(tmp_path / "m.mp4")[0] == 10
    done = run_cli("-s", footage, "--output-dir", "out", "--csv-dir", "out", "-q", cwd=tmp_path)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name[0] != ".") == [
        "moving.avif.csv", "moving.avif.mp4", "still.avif.csv", "still.avif.png"]
    assert len(read_csv(tmp_path / "out" / "moving.avif.csv")) == 10
    assert len(read_csv(tmp_path / "out" / "still.avif.csv")) == 1
    assert not list(Path(tempfile.gettempdir()).glob("streamfer-avif-*"))  # its copy gone


def test_a_folder_of_photos_and_videos_gets_annotated_copies_and_a_csv_each(tmp_path,
                                                                            face_clip, face_bgr):
    """Photos in a folder run: each gets its annotated copy under its own name (a format we
    cannot write, .tif, gains .png) at its own size and a CSV of its faces, beside the
    videos' outputs; a rerun skips them all. A folder of photos alone used to be refused
    ("no video files")."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    (footage / "stills").mkdir(parents=True)
    shutil.copy(face_clip, footage / "a.mp4")
    photo = compose(face_bgr, (400, 300), 50, 0, scale=0.9)
    cv2.imwrite(str(footage / "stills" / "b.jpg"), photo)
    cv2.imwrite(str(footage / "stills" / "c.png"), photo[:, ::-1])
    cv2.imwrite(str(footage / "d.tif"), photo)
    done = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out, "-q")
    assert done.returncode == 0, done.stderr
    assert re.search(r"stills/b\.jpg\s*│\s*1\s*│\s*1\s*│\s*—\s*│\s*ok", done.stderr)  # no fps
    assert frame_count(out / "a.mp4")[0] == 24
    for name, copy in (("stills/b.jpg", "stills/b.jpg"), ("stills/c.png", "stills/c.png"),
                       ("d.tif", "d.tif.png")):
        annotated = cv2.imread(str(out / copy))
        assert annotated.shape == photo.shape, name
        assert np.abs(annotated.astype(int) - cv2.imread(str(footage / name))).max() > 50
        rows = read_csv(out / f"{name}.csv")
        assert len(rows) == 1 and rows[0]["source"] == name and rows[0]["frame"] == "0"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and not p.name.startswith(".")) == sorted(
        ["a.mp4", "a.mp4.csv", "d.tif.png", "d.tif.csv", "stills/b.jpg", "stills/b.jpg.csv",
         "stills/c.png", "stills/c.png.csv"])
    again = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out, "-q")
    assert again.returncode == 0 and again.stderr.count("│ skipped") == 4, again.stderr


def test_an_hls_recording_in_a_folder_is_one_video(tmp_path, face_clip):
    """A folder holding an HLS recording (a VOD downloaded with its segments, a recorder's
    HLS output: a master playlist, its renditions' playlists, their 1 s segments) was run
    as a video a segment, each rendition's: eight inputs of a second of picture each, the
    playlist left out. It is one input, its master playlist, read at its largest rendition
    (as `--source master.m3u8` reads it); a player's ``.m3u`` list of videos hides none."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    (footage / "lecture").mkdir(parents=True)
    write_hls(footage / "lecture")
    shutil.copy(face_clip, footage / "a.mp4")
    (footage / "mine.m3u").write_text("#EXTM3U\n#EXTINF:1,a\na.mp4\n")
    listing = run_cli("--source", footage, "--output-dir", out, "--dry-run")
    assert listing.returncode == 0, listing.stderr
    assert re.findall(r"^│ (\S+)", listing.stderr, re.M) == ["a.mp4", "lecture/master.m3u8"]
    done = run_cli("--source", footage, "--output-dir", out, "-q")
    assert done.returncode == 0, done.stderr
    assert frame_count(out / "lecture" / "master.m3u8.mp4") == (100, 25, (640, 360))
    assert has_audio(out / "lecture" / "master.m3u8.mp4") and frame_count(out / "a.mp4")[0] == 24
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and not p.name.startswith(".")) == ["a.mp4",
                                                                     "lecture/master.m3u8.mp4"]


@pytest.mark.parametrize("renditions", ["one", "a master's two"])
def test_an_hls_recording_cut_off_before_its_end_is_read_to_where_it_stops(tmp_path,
                                                                          renditions):
    """A recorder killed while it wrote HLS leaves its playlist without an end mark
    (``#EXT-X-ENDLIST``); FFmpeg reads such a playlist as a live one, and at its last
    segment waits for more — the run hung there (1,000 reloads: a quarter of an hour of
    1 s segments). It is read as far as it lists, picture and sound, said once, and the
    ended copies of its playlists are removed after."""
    write_hls(tmp_path)
    for playlist in tmp_path.glob("v*.m3u8"):
        playlist.write_text(playlist.read_text().replace("#EXT-X-ENDLIST\n", ""))
    if renditions == "one":
        (tmp_path / "master.m3u8").unlink()
    source = tmp_path / ("v1.m3u8" if renditions == "one" else "master.m3u8")
    scratch, out = tmp_path / "scratch", tmp_path / "out.mkv"
    scratch.mkdir()
    done = run_cli("--source", source, "--output", out, "--csv", tmp_path / "x.csv", "-q",
                   env={**os.environ, "TMPDIR": str(scratch)}, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("has no end mark (#EXT-X-ENDLIST") == 1, done.stderr
    assert f"{source.name} has no end mark" in done.stderr  # as the run names it
    assert f"/{source.name} has no end mark" not in done.stderr
    assert "read as far as it lists now, 4 segments" in done.stderr
    assert frame_count(out) == (100, 25, (640, 360)) and has_audio(out)
    assert len(read_csv(tmp_path / "x.csv")) == 0  # (a test picture: no face)
    assert not list(scratch.glob("streamfer-*"))


@pytest.mark.before_models
def test_a_long_batchs_summary_lists_the_inputs_that_need_a_look(capsys):
    """The summary of 20,000 inputs was 20,000 rows (6.5 s to draw), the one that failed
    somewhere among them. Past 100 inputs the table lists those not ok or skipped (done)
    alone, and says how many it leaves out; the totals line is as before, in thousands."""
    from streamfer.cli.run import _summary
    from streamfer.pipeline import RunStats

    results = [RunStats(f"cam{i % 50}/clip{i}.mp4", frames=10, faces=10) for i in range(2500)]
    results[7].status = "failed: cannot open video: cam7/clip7.mp4"
    results[900].status = "skipped (done)"
    with pytest.raises(SystemExit) as ended:
        _summary(results)
    assert ended.value.code == 1
    shown = capsys.readouterr().err
    assert len(re.findall(r"^│ cam", shown, re.M)) == 1 and "cam7/clip7.mp4" in shown, shown
    assert "2,499 more inputs not listed: ok or skipped (done)" in shown
    assert shown.rstrip().endswith("2,500 inputs: 2,498 ok, 1 skipped (done), 1 failed")
    few = [RunStats(f"clip{i}.mp4", frames=10, faces=10) for i in range(100)]
    _summary(few)
    assert len(re.findall(r"^│ clip", capsys.readouterr().err, re.M)) == 100


def test_two_runs_into_one_output_folder_do_each_input_once(tmp_path, face_clip):
    """Two runs of one folder into one output folder at once (a nightly job started while
    last night's still runs, two terminals to use more cores): each did every input, both
    writing the same part files. Now an input under way in one run is passed over by the
    other ('skipped (another run is doing it)'), and each input is done once."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    footage.mkdir()
    for i in range(6):
        shutil.copy(face_clip, footage / f"c{i}.mp4")
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    runs = [subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), "--source",
                              str(footage), "--output-dir", str(out), "--csv-dir", str(out),
                              "-q"], stderr=subprocess.PIPE, text=True, env=environment)
            for _ in range(2)]
    said = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], said
    done = [len(re.findall(r"│ ok\s*│", text)) for text in said]
    assert sum(done) == 6, said  # each input once, by one run or the other
    passed = sum(len(re.findall(r"│ skipped \((done|another run is doing it)\)", text))
                 for text in said)
    assert passed == 6, said  # and passed over by the other
    for i in range(6):
        assert frame_count(out / f"c{i}.mp4")[0] == 24
        assert len(read_csv(out / f"c{i}.mp4.csv")) == 24
    assert not (out / ".streamfer-claims").exists()
    assert set(json.loads((out / ".streamfer-done.json").read_text())) == \
        {f"c{i}.mp4" for i in range(6)}


def test_a_folder_run_goes_on_where_its_record_cannot_be_written(tmp_path, face_bgr):
    """The disk refusing the done-record's journal (here: a folder where the journal goes)
    ended the run at the first input done, with one Error line and no summary: the other
    inputs were not done, and those done were not said. Now each input so done is said in
    a warning (a rerun does it again) and the run goes on to its summary."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    footage.mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(footage / name), compose(face_bgr, (400, 300), 50, 0, scale=0.9))
    (out / ".streamfer-done.json.log").mkdir(parents=True)
    done = run_cli("--source", footage, "--csv-dir", out, "-q")
    assert done.returncode == 0, done.stderr
    assert "2 inputs: 2 ok" in done.stderr, done.stderr
    warned = [line for line in done.stderr.splitlines() if "not recorded" in line]
    assert len(warned) == 2 and warned[0].startswith("warning: a.jpg: done, but not recorded "
                                                     "(cannot write "), warned
    assert len(read_csv(out / "b.jpg.csv")) == 1


def test_a_folder_run_takes_every_kind_of_file_a_run_of_one_reads(tmp_path, face_clip,
                                                                   face_bgr):
    """A camcorder's .mts, an animated GIF, an AVIF and a Targa photo: each read by a run of
    the file alone, each passed over in silence by a folder run (only .mp4 … .3gp, .jpg …
    .tif were listed). Now they are its inputs, and a kind it cannot read (a camera's raw
    file) is said, not passed over; a text file beside them is no photo and is not said."""
    import imageio_ffmpeg

    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i"]
    footage = tmp_path / "footage"
    footage.mkdir()
    photo = footage / "still.png"
    cv2.imwrite(str(photo), compose(face_bgr, (400, 300), 50, 0, scale=0.9))
    subprocess.run([*ffmpeg, face_clip, "-c:v", "libx264", "-c:a", "aac", "-f", "mpegts",
                    footage / "00001.MTS"], check=True)
    subprocess.run([*ffmpeg, face_clip, "-frames:v", "10", footage / "wave.gif"], check=True)
    subprocess.run([*ffmpeg, photo, footage / "still.tga"], check=True)
    subprocess.run([*ffmpeg, photo, footage / "still.avif"], check=True)
    photo.unlink()
    (footage / "IMG_0001.CR2").write_bytes(b"\0" * 64)
    (footage / "notes.txt").write_text("shot on the 3rd")
    out = tmp_path / "out"
    done = run_cli("--source", footage, "--csv-dir", out, "-q")
    assert done.returncode == 0, done.stderr
    assert "4 inputs: 4 ok" in done.stderr, done.stderr
    for name, frames in (("00001.MTS", 24), ("wave.gif", 10), ("still.tga", 1),
                         ("still.avif", 1)):
        rows = read_csv(out / f"{name}.csv")
        assert len(rows) == frames and all(row["face_id"] for row in rows), name
    said = [line for line in done.stderr.splitlines() if "left out" in line]
    assert len(said) == 1 and "IMG_0001.CR2" in said[0] and "notes" not in said[0], said
    raw = run_cli("--source", footage / "IMG_0001.CR2", "--csv", tmp_path / "h.csv")
    assert raw.returncode == 1 and raw.stderr.count("\n") == 1, raw.stderr
    assert "IMG_0001.CR2: a kind of photo or video streamfer does not read" in raw.stderr
    one = run_cli("--source", footage / "still.tga", "--output", tmp_path / "still.png", "-q")
    assert one.returncode == 0, one.stderr  # a photo: its annotated copy (was: "a video")
    assert cv2.imread(str(tmp_path / "still.png")).shape == (300, 400, 3)


def test_a_folder_run_shows_one_bar_for_the_folder_above_the_inputs_own(tmp_path, face_clip):
    """On a terminal a folder run drew one bar per input, left on screen (a thousand lines for
    a thousand files), none for the batch: no place in it, no ETA for the whole. Now the
    folder's bar counts the frames of every input to do, with the input under way beneath it,
    and the failed input counts none."""
    footage = tmp_path / "footage"
    footage.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(face_clip, footage / name)
    (footage / "c.mp4").write_text("not a video")
    code, lines = run_on_terminal("-s", footage, "--csv-dir", tmp_path / "out")
    assert code == 1, lines[-10:]  # c.mp4 failed
    bars = [line for line in lines if line.startswith("footage/ input ")]
    assert bars and bars[-1].startswith("footage/ input 3 of 3"), lines[-10:]
    assert " 48/48 " in bars[-1] and "ETA" in bars[-1]
    assert any(line.startswith("footage/ input 2 of 3") and "/48 " in line for line in bars)
    assert any(line.startswith("b.mp4 ") and "/24 " in line for line in lines)


def test_names_with_brackets_or_colons_are_shown_as_they_are(tmp_path, face_clip):
    """A downloader's "Title [id].mp4", an "Interview [2023].mp4": rich took the brackets for
    its markup, so the summary listed "Title .mp4" (and "[bold]x.mp4" as "x.mp4" in bold),
    ":smile:" became an emoji, and the bar on a terminal said "clip .mp4". Now every name
    is shown as it is."""
    footage = tmp_path / "footage"
    footage.mkdir()
    names = ("Title [dQw4w9WgXcQ].mp4", "[bold]x.mp4", "a :smile: b.mp4")
    for name in names:
        shutil.copy(face_clip, footage / name)
    done = run_cli("-s", footage, "--csv-dir", tmp_path / "out", "-q", env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    listed = [line.strip("│ ").split("│")[0].strip() for line in done.stderr.splitlines()
              if line.startswith("│")]
    assert sorted(listed) == sorted(names), done.stderr
    code, lines = run_on_terminal("-s", footage / names[0], "--csv", tmp_path / "one.csv")
    assert code == 0, lines[-10:]
    assert any(line.startswith(f"{names[0]} ") and "24/24" in line for line in lines), lines


def test_a_folder_runs_csv_joins_every_inputs_rows_in_one_file(tmp_path, face_clip,
                                                                face_bgr):
    """--csv with a folder source (and --csv-dir): one file holding every input's rows
    under one header, in the plan's order, each row's source its input's relative path;
    a rerun that skips every input writes the same file; refused in one line without
    --csv-dir or inside it; none written where no input was done."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    (footage / "stills").mkdir(parents=True)
    shutil.copy(face_clip, footage / "a.mp4")
    cv2.imwrite(str(footage / "stills" / "b.jpg"), compose(face_bgr, (400, 300), 50, 0, 0.9))
    joined = tmp_path / "all.csv"
    done = run_cli("--source", footage, "--csv-dir", out, "--csv", joined, "-q")
    assert done.returncode == 0, done.stderr
    assert "the CSVs of 2 of 2 inputs joined" in done.stderr
    parts = [(out / "a.mp4.csv").read_text(), (out / "stills" / "b.jpg.csv").read_text()]
    header = parts[0].splitlines()[0]
    assert joined.read_text() == parts[0] + parts[1].split("\n", 1)[1]
    rows = read_csv(joined)
    assert [r["source"] for r in rows] == ["a.mp4"] * (len(parts[0].splitlines()) - 1) \
        + ["stills/b.jpg"]
    assert joined.read_text().count(header) == 1
    before = joined.read_text()
    joined.unlink()
    again = run_cli("--source", footage, "--csv-dir", out, "--csv", joined, "-q")
    assert again.returncode == 0 and again.stderr.count("│ skipped") == 2, again.stderr
    assert joined.read_text() == before
    for args, said in ((["--csv", joined], "give --csv-dir too"),
                       (["--csv-dir", out, "--csv", out / "all.csv"], "outside --csv-dir")):
        refused = run_cli("--source", footage, *args)
        assert_one_line_error(refused)
        assert said in refused.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.mp4").write_text("not a video")
    failed = run_cli("--source", broken, "--csv-dir", tmp_path / "o2", "--csv",
                     tmp_path / "none.csv", "-q")
    assert failed.returncode == 1 and "not written: no input was done" in failed.stderr
    assert not (tmp_path / "none.csv").exists()


def test_folder_batch_outputs_never_collide(tmp_path, face_clip):
    """x.mp4, x.mov and sub/x.mp4 get three outputs, each traceable to its input."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    (footage / "sub").mkdir(parents=True)
    for name in ("x.mp4", "x.mov", "sub/x.mp4"):
        shutil.copy(face_clip, footage / name)
    done = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out, "-q")
    assert done.returncode == 0, done.stderr
    for name in ("x.mp4", "x.mov", "sub/x.mp4"):
        assert frame_count(out / name)[0] == 24
        assert {r["source"] for r in read_csv(out / f"{name}.csv")} == {name}
    assert "0 │ 0 │ 0.0" not in done.stderr


@pytest.mark.before_models
def test_outputs_that_would_overwrite_an_input_are_refused(tmp_path, face_clip):
    footage = tmp_path / "footage"
    footage.mkdir()
    shutil.copy(face_clip, footage / "a.mp4")
    before = (footage / "a.mp4").read_bytes()
    for args in (["-s", footage / "a.mp4", "-o", footage / "a.mp4"],
                 ["-s", footage / "a.mp4", "-o", footage / ".." / "footage" / "a.mp4"],
                 ["-s", footage / "a.mp4", "--csv", footage / "a.mp4"],
                 ["-s", footage, "--output-dir", footage]):
        done = run_cli(*args)
        assert_one_line_error(done)
        assert "is the input" in done.stderr
    assert (footage / "a.mp4").read_bytes() == before


@pytest.mark.before_models
@pytest.mark.parametrize("name", ["clip.gif", "noext"])
def test_unwritable_output_formats_fail_before_any_work(tmp_path, face_clip, name):
    done = run_cli("-s", face_clip, "-o", tmp_path / name, "--csv", tmp_path / "x.csv")
    assert_one_line_error(done)
    assert "name it .mp4" in done.stderr and "or .m3u8 (an HLS playlist)" in done.stderr
    assert not list(tmp_path.iterdir())  # no CSV, no broken video


def test_csv_can_mark_analysed_frames_without_faces(tmp_path, face_bgr):
    frames = [compose(face_bgr, (320, 240), 20, 10, scale=0.6) if i < 6
              else np.full((240, 320, 3), 90, np.uint8) for i in range(12)]
    clip = write_video(tmp_path / "half.mp4", frames)
    table = tmp_path / "t.csv"
    done = run_cli("-s", clip, "--csv", table, "--every", "3", "--csv-empty-frames", "-q")
    assert done.returncode == 0, done.stderr
    rows = read_csv(table)
    assert [int(r["frame"]) for r in rows] == [0, 3, 6, 9]  # every analysed frame, once
    assert [r["face_id"] == "" for r in rows] == [False, False, True, True]


@pytest.mark.parametrize("moment, stop", [(1.0, "SIGINT"), (6.0, "SIGINT"), ("10 rows", "SIGINT"),
                                          ("120 rows", "SIGINT"), (1.0, "SIGTERM"),
                                          ("10 rows", "SIGTERM")])
def test_ctrl_c_at_any_moment_keeps_a_playable_video_of_the_csv_frames(tmp_path, face_bgr,
                                                                       moment, stop):
    """From start-up (imports, model loading) to mid-run: exit 130, one line, and the video
    (if any frame was written) plays and holds every frame that has a CSV row. SIGTERM
    (``kill``, ``timeout``, a scheduler) the same: it killed the run outright, the video left
    an unplayable part file of 48 bytes."""
    frames = [compose(face_bgr, (640, 480), 40 + (i % 60) * 4, 60, scale=1.0) for i in range(600)]
    clip = write_video(tmp_path / "long.mp4", frames)
    out, table = tmp_path / "o.mp4", tmp_path / "o.csv"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), "-s", clip, "-o", out,
                             "--csv", table, "-q"], stderr=subprocess.PIPE, text=True)
    if isinstance(moment, float):
        time.sleep(moment)
    else:
        deadline, wanted = time.time() + 240, int(moment.split()[0])
        while time.time() < deadline and (not table.exists() or len(read_csv(table)) < wanted):
            time.sleep(0.2)
    proc.send_signal(getattr(signal, stop))
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted")
    rows = read_csv(table) if table.exists() else []
    assert len(rows) < 600
    if rows:
        assert frame_count(out)[0] >= max(int(r["frame"]) for r in rows) + 1
    elif out.exists():  # a video appears only once a frame was written, and then it plays
        assert frame_count(out)[0] >= 1
    assert not list(tmp_path.glob(".*part*"))  # nothing half-written left beside it


@pytest.mark.parametrize("nohup", [False, True], ids=["hang-up", "under nohup"])
def test_a_terminal_that_hangs_up_ends_the_run_as_ctrl_c_does(tmp_path, face_bgr, nohup):
    """The run's terminal gone (an ssh session dropped, its window closed): the shell passes
    the hang-up (SIGHUP) on to the run, which it killed outright, the video and CSV left
    part files. It ends as a Ctrl-C does now (exit 130, the video finalised with every CSV
    row's frame), what it still shows going nowhere: the terminal fails every write. Under
    ``nohup`` the hang-up stays ignored and the run goes on to its end."""
    import fcntl
    import pty
    import select
    import termios

    if nohup and not shutil.which("nohup"):
        pytest.skip("no nohup here")
    frames = [compose(face_bgr, (640, 480), 40 + (i % 60) * 4, 60, scale=1.0) for i in range(600)]
    clip = write_video(tmp_path / "long.mp4", frames)
    out, table = tmp_path / "o.mp4", tmp_path / "o.csv"
    leader, follower = pty.openpty()

    def on_its_terminal() -> None:  # the pseudo-terminal is the run's own, as a login's is
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([*(["nohup"] if nohup else []), sys.executable,
                             str(ROOT / "run_stream.py"), "-s", clip, "-o", out, "--csv", table,
                             "--csv-empty-frames"], stdin=follower, stdout=follower,
                            stderr=follower, cwd=tmp_path, start_new_session=True,
                            preexec_fn=on_its_terminal,
                            env={k: v for k, v in os.environ.items() if k not in QUIETING})
    os.close(follower)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None \
                and (not table.exists() or len(read_csv(table)) < 10):
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    os.read(leader, 65536)  # what a terminal shows: the progress bar
                except OSError:  # no one has it open (nohup's run writes to nohup.out)
                    time.sleep(0.2)
        os.close(leader)  # the terminal hangs up (the kernel tells the run, its session's
        time.sleep(0.5)  # leader), and a shell would pass it on too: one hang-up, said twice
        os.killpg(proc.pid, signal.SIGHUP)
        returncode = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = read_csv(table)
    assert returncode == (0 if nohup else 130), (tmp_path / "nohup.out").read_text() \
        if nohup else returncode
    assert len(rows) == 600 if nohup else 10 <= len(rows) < 600  # a row a frame
    assert frame_count(out)[0] >= max(int(r["frame"]) for r in rows) + 1
    assert not list(tmp_path.glob(".*part*"))


# A library that swallows a KeyboardInterrupt raised inside it (a bare ``except:``): how a
# Ctrl-C at the wrong moment used to be lost, the run going on to the end with exit 0.
SWALLOWING_PROBE = """
import os, signal, sys
import streamfer.sources.reader as reader
probe, calls = reader.probe, []
def swallowing_probe(path):
    calls.append(path)
    if len(calls) == {call}:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(10**6))  # Python code: the handler runs in here
        except KeyboardInterrupt:
            pass
    return probe(path)
reader.probe = swallowing_probe
sys.argv = ["run_stream.py", *sys.argv[1:]]
from streamfer.cli.run import run
run()
"""


@pytest.mark.parametrize("call", [1, 2], ids=["checking the input", "opening it to run"])
def test_ctrl_c_inside_a_library_that_swallows_it_still_stops_the_run(tmp_path, face_bgr,
                                                                      call):
    frames = [compose(face_bgr, (320, 240), 20 + i, 10, scale=0.6) for i in range(60)]
    clip = write_video(tmp_path / "clip.mp4", frames)
    out, table = tmp_path / "o.mp4", tmp_path / "o.csv"
    done = subprocess.run([sys.executable, "-c", SWALLOWING_PROBE.format(call=call), "-s", clip,
                           "-o", out, "--csv", table, "-q"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("interrupted")
    assert not (table.exists() and read_csv(table))  # stopped before the first frame
    assert not out.exists()


def test_variable_frame_rate_keeps_its_timestamps_in_the_csv_and_the_video(tmp_path, face_bgr):
    from test_sources_detect_sinks import probe

    from streamfer.sinks import VideoSink

    times = [0.0, 0.033, 0.067, 0.1, 0.6, 0.633, 1.5, 1.533, 1.567, 2.0]
    clip = tmp_path / "vfr.mp4"
    with VideoSink(clip, 30, (320, 240)) as video:
        for i, t in enumerate(times):
            video.write(compose(face_bgr, (320, 240), 20 + 4 * i, 10, scale=0.6), t)
    out, table = tmp_path / "o.mp4", tmp_path / "o.csv"
    done = run_cli("-s", clip, "-o", out, "--csv", table, "--csv-empty-frames", "-q")
    assert done.returncode == 0, done.stderr
    by_frame = {int(r["frame"]): float(r["time_s"]) for r in read_csv(table)}
    np.testing.assert_allclose([by_frame[i] for i in range(len(times))], times, atol=2e-3)
    np.testing.assert_allclose(probe(out)[4], times, atol=2e-3)


def test_face_cadence_with_every_classifies_every_face_again(tmp_path, face_bgr):
    """--every 2 --face-cadence 2: each face runs the model every other analysed frame (the
    cadence counts analysed frames, not frame indices, so no face is starved)."""
    frames = []
    for i in range(24):
        canvas = compose(face_bgr, (640, 300), 10 + i, 10, scale=0.8)
        canvas[10:250, 330:570] = cv2.resize(face_bgr, (240, 240))
        frames.append(canvas)
    clip = write_video(tmp_path / "two.mp4", frames)
    table = tmp_path / "t.csv"
    done = run_cli("-s", clip, "--csv", table, "--every", "2", "--face-cadence", "2", "-q")
    assert done.returncode == 0, done.stderr
    rows = read_csv(table)
    ids = {r["face_id"] for r in rows}
    assert len(ids) == 2
    for face_id in ids:
        classified = [r for r in rows if r["face_id"] == face_id and r["classified"] == "1"]
        assert len(classified) >= 5  # 12 analysed frames: the first, then every other one


def test_non_square_pixels_and_colour_tags_are_carried_end_to_end(tmp_path, face_bgr):
    import imageio_ffmpeg
    from test_sources_detect_sinks import probe

    plain = write_video(tmp_path / "p.mp4", [compose(face_bgr, (512, 480), 100, 60)] * 6)
    clip = tmp_path / "sar.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(plain),
                    "-vf", "setsar=15/16", "-c:v", "libx264", "-colorspace", "bt709",
                    "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
                    str(clip)], check=True)
    out = tmp_path / "o.mp4"
    done = run_cli("-s", clip, "-o", out, "-q")
    assert done.returncode == 0, done.stderr
    _, size, sar, tags, times = probe(out)
    assert (size, str(sar), tags, len(times)) == ((512, 480), "15/16", (1, 1), 6)


@pytest.mark.parametrize("transfer", ["arib-std-b67", "smpte2084", "bt709"])
def test_an_hdr_or_wide_gamut_video_is_written_as_the_frames_the_run_saw(tmp_path, transfer):
    """An iPhone's HLG, a film's PQ, a BT.2020 master: OpenCV (the FFmpeg of opencv-python 5)
    hands their frames over converted to BT.709 SDR, and the output was written with the
    input's tags (BT.2020, PQ/HLG) on those SDR pixels: played, tone mapped a second time
    (an HLG grey of 114 shown at 127, its colours shifted). Now it is tagged as what it holds:
    read back, the annotated video gives the frames the run saw (where OpenCV passes the
    signal on as it is, the input's tags go on as before)."""
    import av
    import imageio_ffmpeg

    clip, out = tmp_path / f"{transfer}.mp4", tmp_path / "out.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i",
                    "smptehdbars=s=320x180:r=25:d=1", "-vf",
                    "scale=out_color_matrix=bt2020:out_range=tv,format=yuv420p", "-c:v",
                    "libx264", "-x264-params",
                    f"colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc", str(clip)],
                   check=True)
    done = run_cli("-s", clip, "-o", out, "-q")  # bars: no face, nothing drawn on them
    assert done.returncode == 0, done.stderr

    def frames(path):
        capture = cv2.VideoCapture(str(path))
        read = [capture.read()[1].astype(float) for _ in range(10)]
        capture.release()
        return np.stack(read)

    # before: 13.2 (HLG), 17.4 (PQ), 6.3 (BT.2020 SDR) grey levels on average; now 2.4
    assert np.abs(frames(out) - frames(clip)).mean() < 4
    from streamfer.sources import opencv_makes_sdr

    with av.open(str(out)) as container:
        cc = container.streams.video[0].codec_context
        tags = (int(cc.color_primaries), int(cc.color_trc), int(cc.colorspace))
    assert tags == ((1, 1, 1) if opencv_makes_sdr() else (9, {"arib-std-b67": 18,
                                                              "smpte2084": 16,
                                                              "bt709": 1}[transfer], 9))


def test_a_pixel_aspect_no_picture_is_made_with_is_said_and_not_followed(tmp_path, face_clip):
    """A header's 60:1 (nonsense: no camera makes such pixels) stretched each frame 60 times
    to look for faces in it, and none was found (640×480 to 38,400×480; a 1080p frame would
    have taken 370 MB). Now it is said, once, and the faces are read in the stored pixels;
    the output still carries it over, as it came."""
    import imageio_ffmpeg
    from test_sources_detect_sinks import probe

    clip = tmp_path / "bogus.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(face_clip),
                    "-vf", "setsar=60/1", "-c:v", "libx264", str(clip)], check=True)
    table, out = tmp_path / "b.csv", tmp_path / "b.mp4"
    done = run_cli("-s", clip, "--csv", table, "-o", out, "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning:") == 1 and "bogus.mp4: its pixel aspect ratio 60:1 is " \
        "none a picture is made with: its faces are read in its stored pixels" in done.stderr
    rows = read_csv(table)
    assert len(rows) == 24 and all(abs(int(r["w"]) - int(r["h"])) <= 4 for r in rows)
    assert str(probe(out)[2]) == "60"


def test_max_fps_samples_on_a_fixed_grid_of_the_inputs_time(tmp_path, face_bgr):
    """25 fps input, --max-fps 10: one analysed frame in each 0.1 s slot, i.e. 10 a second
    (counting from the last analysed frame gave ~8)."""
    clip = write_video(tmp_path / "c.mp4", [compose(face_bgr, (320, 240), 10, 10, scale=0.6)
                                            for _ in range(50)], fps=25)
    table = tmp_path / "c.csv"
    done = run_cli("-s", clip, "--csv", table, "--max-fps", "10", "--csv-empty-frames", "-q")
    assert done.returncode == 0, done.stderr
    frames = {int(r["frame"]) for r in read_csv(table)}
    assert len(frames) == 20  # 2 s of input at 10 analysed frames a second


def test_outputs_and_hidden_files_under_the_source_folder_are_never_inputs(tmp_path,
                                                                            face_clip):
    """out/ inside the footage folder, and a part file left by a killed run: a rerun takes
    the one real input only (it was refused as a whole before)."""
    footage = tmp_path / "footage"
    footage.mkdir()
    shutil.copy(face_clip, footage / "a.mp4")
    shutil.copy(face_clip, footage / ".a.part.mp4")  # as a killed run leaves it
    out = footage / "out"
    for _ in range(2):
        done = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out, "-q",
                       "--force")
        assert done.returncode == 0, done.stderr
        assert "a.mp4" in done.stderr and "out/a.mp4" not in done.stderr
        assert ".a.part" not in done.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["a.mp4", "a.mp4.csv"]


def test_a_dry_run_lists_what_a_folder_run_would_do_and_writes_nothing(tmp_path, face_clip):
    """Before a run over lots of footage: which inputs it would do (a new file, one whose
    settings changed) and which it would skip, with the frames to read, in a second and
    with nothing loaded or written (there was no way but to start it)."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    footage.mkdir()
    shutil.copy(face_clip, footage / "a.mp4")
    assert run_cli("--source", footage, "--csv-dir", out, "-q").returncode == 0
    shutil.copy(face_clip, footage / "b.mp4")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    dry = run_cli("--source", footage, "--csv-dir", out, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert re.search(r"a\.mp4\s*│\s*—\s*│ skipped \(done\)", dry.stderr), dry.stderr
    assert re.search(r"b\.mp4\s*│\s*24\s*│ to do", dry.stderr), dry.stderr
    assert "2 inputs: 1 to do, 1 skipped (done) (24 frames to read)" in dry.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before
    changed = run_cli("--source", footage, "--csv-dir", tmp_path / "new", "--dry-run",
                      "--every", "2")
    assert "2 inputs: 2 to do (48 frames to read)" in changed.stderr, changed.stderr
    assert not (tmp_path / "new").exists()
    one = run_cli("--source", footage / "a.mp4", "--csv", tmp_path / "a.csv", "--dry-run")
    assert one.returncode == 1 and "give a folder" in one.stderr, one.stderr


def test_a_dry_run_says_which_inputs_another_run_has_under_way(tmp_path, face_clip):
    """While last night's run still works through a folder, a dry run listed the input it
    had under way as 'to do'; it is 'skipped (another run is doing it)', as the run would
    have it, and the dry run still writes nothing."""
    from streamfer.batch import FolderRun
    from streamfer.pipeline import Settings

    footage, out = tmp_path / "footage", tmp_path / "out"
    footage.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(face_clip, footage / name)
    other = FolderRun.plan(footage, None, out, Settings(progress=False))  # another run's
    assert other.claim(other.todo[0])  # lock on a.mp4, as it holds it while at work
    before = sorted(str(p) for p in out.rglob("*"))
    dry = run_cli("--source", footage, "--csv-dir", out, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert re.search(r"a\.mp4\s*│\s*—\s*│ skipped \(another run is doing it\)", dry.stderr), \
        dry.stderr
    assert "2 inputs: 1 to do, 1 skipped (another run is doing it) (24 frames to read)" \
        in dry.stderr, dry.stderr
    assert sorted(str(p) for p in out.rglob("*")) == before
    other.release(other.todo[0])
    dry = run_cli("--source", footage, "--csv-dir", out, "--dry-run")
    assert "2 inputs: 2 to do (48 frames to read)" in dry.stderr, dry.stderr


def test_a_long_dry_run_lists_the_inputs_to_do(tmp_path, face_bgr):
    """A nightly folder of 120 done photos and two new ones: the dry run listed all 122 rows,
    the two to do somewhere among them (and 20,000 rows took 6.5 s to draw). Past 100 inputs
    it lists those to do, and says how many it leaves out."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    footage.mkdir()
    small = cv2.resize(face_bgr, (96, 96))
    for i in range(120):
        cv2.imwrite(str(footage / f"p{i:03d}.jpg"), small)
    assert run_cli("--source", footage, "--csv-dir", out, "-q").returncode == 0
    for name in ("new1.jpg", "new2.jpg"):
        cv2.imwrite(str(footage / name), small)
    dry = run_cli("--source", footage, "--csv-dir", out, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert re.findall(r"^│ (\S+)", dry.stderr, re.M) == ["new1.jpg", "new2.jpg"], dry.stderr
    assert "120 more inputs not listed: skipped (done)" in " ".join(dry.stderr.split())
    assert "122 inputs: 2 to do, 120 skipped (done) (2 frames to read)" in dry.stderr


def test_a_file_named_in_latin_1_bytes_is_read_named_and_reported(tmp_path, face_clip,
                                                                  face_bgr):
    """A name that is not UTF-8 (copied from an old Windows disk or a zip: 'café' in Latin-1
    bytes) crashed the run outright (OpenCV's reader: a segmentation fault, no line said, the
    other inputs not done). Now it is read, its outputs keep its bytes, and where its name is
    text (the CSV's source, the summary, the record, the report) it is written ``caf\\xe9``,
    as ``ls -b`` does."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    footage.mkdir()
    latin = os.fsdecode(b"caf\xe9.mp4")
    clip = write_video(tmp_path / "c.mp4", [compose(face_bgr, (320, 240), 10, 10, scale=0.6)]
                       * 50, fps=25)  # 2 s: its face is on the report's page, not folded
    os.rename(clip, footage / latin)
    shutil.copy(face_clip, footage / "b\nc.mp4")  # a newline broke the summary's row
    done = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out,
                   "--csv", tmp_path / "all.csv")
    assert done.returncode == 0, done.stderr
    assert re.search(r"caf\\xe9\.mp4 +│ +50 │.*│ ok", done.stderr), done.stderr
    assert re.search(r"b\\x0ac\.mp4 +│ +24 │.*│ ok", done.stderr), done.stderr
    assert (out / latin).is_file() and (out / (latin + ".csv")).is_file()
    assert {r["source"] for r in read_csv(tmp_path / "all.csv")} == {"caf\\xe9.mp4",
                                                                     "b\\x0ac.mp4"}
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 1 + 50 + 24  # a row a line
    again = run_cli("--source", footage, "--output-dir", out, "--csv-dir", out)
    assert "2 inputs: 2 skipped (done)" in again.stderr, again.stderr
    one = run_cli("--source", footage / latin, "--csv", tmp_path / "one.csv",
                  "--report", tmp_path / "one.html", cwd=footage)
    assert one.returncode == 0 and "no thumbnails" not in one.stderr, one.stderr
    page = (tmp_path / "one.html").read_text(encoding="utf-8")
    assert "streamfer report: caf\\xe9.mp4" in page and "data:image/png" in page
    pages = subprocess.run([sys.executable, "-m", "streamfer", "report", str(out), "-o",
                            str(tmp_path / "pages"), "--video", str(footage)],
                           capture_output=True, text=True, timeout=300)
    assert pages.returncode == 0, pages.stderr
    index = (tmp_path / "pages" / "index.html").read_text(encoding="utf-8")
    assert "href='caf%E9.mp4.html'>caf\\xe9.mp4.csv</a>" in index, index
    assert "data:image/png" in (tmp_path / "pages" / (latin + ".html")).read_text()


@pytest.mark.parametrize("start", [None, "0.48", "0.5"])
def test_the_output_s_sound_is_in_time_with_its_picture_where_the_picture_starts_late(
        tmp_path, start):
    """A file whose picture starts after its sound (face_recognition's clip: the video at
    0.852 s, the audio at 0.008 s) came out with its sound 0.84 s late: the video was
    written from its first frame at 0 and the audio from the file's start. Here the flash
    and the click of one moment, the picture 0.5 s after the sound: written, they are
    heard as seen (they were 0.5 s apart), from the start and from --start alike. A
    --start between two frames (0.5 s, the next frame at 0.52 s) had the sound that part
    of a frame late (0.02 s): the file starts at its first frame, and its sound now too."""
    clip = flash_clip(tmp_path / "late.mp4", lead_s=0.5)
    seen, heard = flash_and_click(clip)
    assert abs(seen - heard) < 0.01
    out = tmp_path / "out.mp4"
    done = run_cli("-s", clip, "-o", out, "-q", *(("--start", start) if start else ()))
    assert done.returncode == 0, done.stderr
    seen, heard = flash_and_click(out)
    first = {None: 0.0, "0.48": 0.48, "0.5": 0.52}[start]  # the first frame written
    assert abs(seen - (1.2 - first)) < 0.005, seen  # the picture's own timing
    assert abs(heard - seen) < 0.005, (seen, heard)


@pytest.mark.parametrize("start", [None, "0.5"])
def test_an_avi_is_written_at_its_frame_rate_each_frame_in_the_slot_of_its_time(tmp_path,
                                                                                start):
    """AVI has no timestamps: a frame's time is its slot at the file's rate. It was written
    at 90 kHz ticks, which FFmpeg's AVI made 600 fps (a 3 s clip at 25 fps: 1,800 slots for
    75 frames, which an editor imports as a 600 fps clip), with B-frames, whose order AVI
    cannot hold (FFmpeg read them out of order in time: the picture late on its sound), and
    its sound carried over moved every frame after the first one slot later. Now the
    input's rate, no B-frames, each frame in its slot; the click with its flash, 21 ms after
    (AAC's priming, which AVI has no edit list to trim). A part from --start 0.5 s, its
    first frame due at 0.52 s, had that frame held over two slots and every other one slot
    late: FFmpeg's AVI puts the first frame in the first slot."""
    import av
    from av.video.frame import PictureType

    clip = flash_clip(tmp_path / "late.mp4", lead_s=0.5)
    out = tmp_path / "out.avi"
    done = run_cli("-s", clip, "-o", out, "-q", *(("--start", start) if start else ()))
    assert done.returncode == 0, done.stderr
    first = 13 if start else 0  # the first frame written: 0.52 s
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        slots = [entry.timestamp for entry in stream.index_entries]
        assert (stream.average_rate, stream.frames) == (25, 75 - first)
        frames = [(frame.pict_type, frame.to_ndarray(format="gray").mean())
                  for frame in container.decode(stream)]  # in the order they are stored
    assert slots == list(range(75 - first)) and PictureType.B not in {k for k, _ in frames}
    white = next(k for k, (_, grey) in enumerate(frames) if grey > 128)
    assert slots[white] == 30 - first  # 1.2 s
    heard = flash_and_click(out)[1]
    assert 0 <= heard - slots[white] / 25 < 0.03, heard  # (AAC, untrimmed)


@pytest.mark.parametrize("rate,timecode,start,expected,out", [
    ("25", "10:00:00:00", None, "10:00:00:00", "out.mov"),
    ("25", "10:00:00:00", "1.6", "10:00:01:15", "out.mp4"),
    ("30000/1001", "00:00:59;28", "0.1", "00:01:00;03", "out.mkv"),  # drop-frame: ;00, ;01
    ("30000/1001", "00:59:59;28", "0.1", "01:00:00;01", "out.mov"),  # (but every tenth)
])
def test_the_output_keeps_the_inputs_timecode(tmp_path, rate, timecode, start, expected,
                                              out):
    """A camera's or an edit's timecode (a MOV's tmcd track: what an editor lines clips up
    by) was lost: the annotated copy started at 00:00:00:00. It keeps its first frame's, a
    part from --start the timecode of its own first frame (drop-frame counted as SMPTE
    counts it); MP4 and MOV as a tmcd track, Matroska as a tag."""
    import av
    import imageio_ffmpeg

    clip = tmp_path / "shot.mov"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc=size=160x120:rate={rate}", "-f", "lavfi", "-i", "sine", "-t", "3",
                    "-c:v", "libx264", "-c:a", "aac", "-timecode", timecode, str(clip)],
                   check=True)
    done = run_cli("-s", clip, "-o", tmp_path / out, "-q",
                   *(("--start", start) if start else ()))
    assert done.returncode == 0, done.stderr
    with av.open(str(tmp_path / out)) as container:
        tags = container.streams.video[0].metadata
        assert (tags.get("timecode") or tags.get("TIMECODE")) == expected, tags
        if out != "out.mkv":
            assert [stream.type for stream in container.streams] == ["video", "audio",
                                                                      "data"]  # tmcd


def test_long_names_are_written_where_the_file_system_takes_them(tmp_path, face_bgr):
    """A legal output name of 255 bytes (85 CJK characters are as many) was refused after the
    work, 'File name too long', by the hidden file it is written as first (six bytes more);
    a name over the limit said so in the system's words ('[Errno 36] …') and, for a folder
    run, only once that input's video was encoded. Now the first is written, with its audio,
    and the second is one line before any work."""
    clip = write_video(tmp_path / "c.mp4", [compose(face_bgr, (320, 240), 10, 10, scale=0.6)]
                       * 12, audio=True)
    longest = "a" * 251 + ".mp4"
    done = run_cli("-s", clip, "-o", tmp_path / longest, "-q")
    assert done.returncode == 0, done.stderr
    assert has_audio(tmp_path / longest) and frame_count(tmp_path / longest)[0] == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.mp4", longest])  # no part
    over = run_cli("-s", clip, "--csv", tmp_path / (longest + ".csv"), "-q")
    assert_one_line_error(over)
    assert f"cannot write {tmp_path / longest}.csv: its name is 259 bytes long, over the 255 " \
        "a file system takes" in over.stderr
    footage = tmp_path / "footage"
    footage.mkdir()
    shutil.copy(clip, footage / ("b" * 250 + ".mp4"))
    shutil.copy(clip, footage / "short.mp4")
    # a folder run: that input fails (said before the work, in the dry run too), the rest
    # is done (it refused the whole batch, a thousand files for one name)
    args = ("-s", footage, "--output-dir", tmp_path / "out", "--csv-dir", tmp_path / "out")
    said = f"cannot write {tmp_path / 'out' / ('b' * 250)}.mp4.csv: its name is 258 bytes " \
        "long, over the 255 a file system takes (give the input a shorter name)"
    dry = run_cli(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 inputs: 1 to do, 1 failed" in dry.stderr, dry.stderr
    batch = run_cli(*args)
    assert batch.returncode == 1, batch.stderr
    assert said in " ".join(batch.stderr.split()), batch.stderr
    assert "2 inputs: 1 ok, 1 failed" in batch.stderr, batch.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        [".streamfer-done.json", "short.mp4", "short.mp4.csv"]
    assert list(json.loads((tmp_path / "out" / ".streamfer-done.json").read_text())) \
        == ["short.mp4"]


def test_a_cache_that_cannot_be_written_is_stood_in_for(tmp_path, face_clip, streamfer_home):
    """A read-only cache home (a container's, or one an administrator filled with the
    detector files) ended the run at once: '[Errno 30] Read-only file system: …/onnx'. Now
    what is built goes to a folder of the run's own, removed at its end, and a warning says
    so (a tmpfs mounted read-only: root writes through a folder's permissions)."""
    import tempfile

    home = tmp_path / "home"
    home.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(home)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs to mount a file system (root) to make a read-only home")
    try:
        for name in DETECTOR_FILES:
            shutil.copy(streamfer_home / name, home / name)
        subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
        before = set(Path(tempfile.gettempdir()).glob("streamfer-cache-*"))
        done = run_cli("-s", face_clip, "--csv", tmp_path / "x.csv", "-q",
                       env={"STREAMFER_HOME": str(home)})
        assert done.returncode == 0, done.stderr
        said = [line for line in done.stderr.splitlines() if line.startswith("warning")]
        assert said == [f"warning: cannot write the cache in {home} (Read-only file system): "
                        "what is built is kept for this run only (set STREAMFER_HOME to a "
                        "folder you can write to keep it)"], done.stderr
        assert len(read_csv(tmp_path / "x.csv")) == 24
        assert set(Path(tempfile.gettempdir()).glob("streamfer-cache-*")) == before
    finally:
        subprocess.run(["umount", str(home)], check=True)


def test_a_video_piped_into_standard_input_is_a_source(tmp_path, face_clip):
    """``ffmpeg … -f mpegts - | streamfer run --source -`` (another program's output, a
    camera relayed): it was 'no such file: -'. Now its frames are read in order and timed
    by its container, as the file's; an MP4 with its index at its end (out of a pipe's
    reach) and --start (a pipe cannot be sought) are one line each."""
    import imageio_ffmpeg

    ts = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(face_clip),
                         "-c", "copy", "-f", "mpegts", "-"], capture_output=True,
                        check=True).stdout
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}

    def piped(data, *args):
        return subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "-s", "-",
                               *map(str, args)], input=data, capture_output=True,
                              timeout=300, env=environment)

    done = piped(ts, "--csv", tmp_path / "p.csv", "-o", tmp_path / "p.mp4", "-q")
    assert done.returncode == 0, done.stderr.decode()
    assert run_cli("-s", face_clip, "--csv", tmp_path / "f.csv", "-q").returncode == 0
    rows, direct = read_csv(tmp_path / "p.csv"), read_csv(tmp_path / "f.csv")
    assert {r["source"] for r in rows} == {"stdin"} and len(rows) == len(direct) == 24
    assert [r["time_s"] for r in rows] == [r["time_s"] for r in direct]
    assert frame_count(tmp_path / "p.mp4")[0] == 24 and has_audio(tmp_path / "p.mp4")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-stream_loop", "20", "-i",
                    str(face_clip), "-c", "copy", str(tmp_path / "end.mp4")],
                   check=True)  # its index at its end, past what FFmpeg holds of a pipe
    mp4 = piped((tmp_path / "end.mp4").read_bytes(), "--csv", tmp_path / "m.csv")
    said = mp4.stderr.decode()
    assert mp4.returncode == 1 and "Traceback" not in said
    assert "standard input (pipe MPEG-TS or Matroska: an MP4 or MOV with its index at" in said
    sought = piped(ts, "--csv", tmp_path / "s.csv", "--start", "0.5")
    assert sought.returncode != 0 and sought.stderr.decode().strip() == (
        "Error: standard input cannot be sought: --start is for files (--end stops it at that "
        "time)")
    # nothing piped (the command before the | failed: a file misspelt): it said "cannot read
    # standard input as video (pipe MPEG-TS or Matroska: …)", as of a wrong format
    empty = piped(b"", "--csv", tmp_path / "e.csv")
    assert empty.returncode == 1 and empty.stderr.decode().strip() == (
        "Error: standard input was empty: nothing came through the pipe (did the command before "
        "the | fail?)")
    assert not (tmp_path / "e.csv").exists()


def test_a_piped_picture_that_changes_shape_keeps_each_frames_shape(tmp_path, face_bgr,
                                                                     detector_ready):
    """Two recordings piped one after the other (`cat land.ts port.ts | streamfer -s -`),
    landscape then portrait: the portrait part came at the first's shape, stretched, and
    its face was found on no frame of it; each recording timed from its own 0, time_s went
    back to 0 where the second began. A file's is followed by reading its key frames a
    second time, which a pipe cannot give: they are now read beside OpenCV, as the pipe
    comes (streamfer.sources.stdin), and the second recording timed on from the first."""
    both, wide, tall = recordings(tmp_path, face_bgr)
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "-s", "-", "--csv",
                           tmp_path / "both.csv", "--csv-empty-frames", "-o",
                           tmp_path / "both.mp4"], input=both.read_bytes(),
                          capture_output=True, timeout=300, env=environment)
    said = done.stderr.decode()
    assert done.returncode == 0, said
    rows = read_csv(tmp_path / "both.csv")
    times = [float(r["time_s"]) for r in rows]
    assert len(rows) == 30 and all(b > a for a, b in zip(times, times[1:])), times
    found = [int(r["frame"]) for r in rows if r["face_id"]]
    assert len([f for f in found if f < 15]) >= 14 and len([f for f in found if f >= 15]) >= 14
    assert ("stdin: its picture changes shape at 1.00 s (640×480, then 360×480): each frame "
            "is kept at its own shape within 640×480, with bars, as a player shows it") in said
    assert frame_count(tmp_path / "both.mp4")[0] == 30


@pytest.mark.parametrize("container", ["mpegts", "matroska"])
def test_a_piped_video_s_sound_is_carried_over_in_time(tmp_path, container):
    """A video piped in lost its sound (a pipe is read once, by OpenCV, which reads no
    audio). Now its audio streams are kept as they come and muxed in, in time with the
    picture: the flash and the click of one moment (the picture 0.5 s after the sound, and
    MPEG-TS's own offsets) are seen and heard together; --end cuts both; without audio,
    a video as before, and nothing is left in the temporary folder."""
    import tempfile

    import av
    import imageio_ffmpeg

    clip = flash_clip(tmp_path / "late.mp4", lead_s=0.5)
    data = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(clip),
                           "-c", "copy", "-f", container, "-"], capture_output=True,
                          check=True).stdout
    silent = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(clip),
                             "-an", "-c", "copy", "-f", container, "-"], capture_output=True,
                            check=True).stdout
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    kept = set(Path(tempfile.gettempdir()).glob("streamfer-stdin-*"))

    def piped(data, *args):
        return subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "-s", "-", "-q",
                               *map(str, args)], input=data, capture_output=True,
                              timeout=300, env=environment)

    done = piped(data, "-o", tmp_path / "p.mp4")
    assert done.returncode == 0, done.stderr.decode()
    seen, heard = flash_and_click(tmp_path / "p.mp4")
    assert abs(seen - 1.2) < 0.02 and abs(heard - seen) < 0.045, (seen, heard)
    # a broadcast's second language: every audio stream, with its language (the first alone
    # was kept before)
    two = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(clip),
                          "-f", "lavfi", "-i", "sine=duration=3", "-map", "0", "-map", "1:a",
                          "-c:v", "copy", "-c:a", "aac", "-metadata:s:a:0", "language=eng",
                          "-metadata:s:a:1", "language=fra", "-f", container, "-"],
                         capture_output=True, check=True).stdout
    both = piped(two, "-o", tmp_path / "two.mp4")
    assert both.returncode == 0, both.stderr.decode()
    with av.open(str(tmp_path / "two.mp4")) as out:
        assert [a.language for a in out.streams.audio] == ["eng", "fra"]
    assert abs(flash_and_click(tmp_path / "two.mp4")[1] - heard) < 0.025  # the first's click
    if container == "matroska":  # an IP camera's G.711, which Matroska's muxer does not
        alaw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i",  # take:
                               str(clip), "-c:v", "copy", "-c:a", "pcm_alaw", "-ar", "8000",
                               "-f", container, "-"], capture_output=True, check=True).stdout
        done = piped(alaw, "-o", tmp_path / "alaw.mp4")  # it was left out
        assert done.returncode == 0, done.stderr.decode()
        assert has_audio(tmp_path / "alaw.mp4"), "picture only"
        seen, heard = flash_and_click(tmp_path / "alaw.mp4")
        assert abs(heard - seen) < 0.045, (seen, heard)
    cut = piped(data, "-o", tmp_path / "cut.mp4", "--end", "1")
    assert cut.returncode == 0, cut.stderr.decode()
    assert has_audio(tmp_path / "cut.mp4") and frame_count(tmp_path / "cut.mp4")[0] == 25
    none = piped(silent, "-o", tmp_path / "silent.mp4")
    assert none.returncode == 0 and none.stderr.decode().startswith("stdin: 75 frames"), \
        none.stderr.decode()
    assert not has_audio(tmp_path / "silent.mp4")
    assert frame_count(tmp_path / "silent.mp4")[0] == 75
    bad = piped(b"not a video\n", "-o", tmp_path / "bad.mp4")  # its kept sound's folder too
    assert bad.returncode == 1 and bad.stderr.decode().startswith("Error: cannot read "
                                                                 "standard input"), bad.stderr
    assert set(Path(tempfile.gettempdir()).glob("streamfer-stdin-*")) == kept


def test_a_piped_video_sent_on_goes_with_its_sound(tmp_path):
    """streamfer a filter between two programs (`ffmpeg … -f mpegts - | streamfer -s - -o -
    | ffplay -`, or on to a server) sent the picture alone: the sound that came in with it
    was lost. It goes on with the picture now, as it comes, in step with it (the flash and
    the click of one moment, the picture 0.5 s after the sound), and no longer than it."""
    import imageio_ffmpeg

    clip = flash_clip(tmp_path / "late.mp4", lead_s=0.5)
    data = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(clip),
                           "-c", "copy", "-f", "mpegts", "-"], capture_output=True,
                          check=True).stdout
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    sent = tmp_path / "sent.ts"
    with open(sent, "wb") as out:
        done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "-s", "-", "-o",
                               "-", "-q"], input=data, stdout=out, stderr=subprocess.PIPE,
                              timeout=300, env=environment)
    assert done.returncode == 0, done.stderr.decode()
    assert has_audio(sent), "picture only"
    seen, heard = flash_and_click(sent)
    assert abs(heard - seen) < 0.03, (seen, heard)
    assert frame_count(sent)[0] == 75


def test_native_noise_is_kept_off_standard_error_whenever_it_comes(streamfer_home):
    """LiteRT warns, once a process, where MediaPipe's input tensor for a frame happens not
    to be 64-byte aligned: on any frame of a run (the detector's silenced warm-up did not
    always take it; CI saw the two lines before a piped run's summary). The programs' entry
    points now drop such lines whenever native code writes them, and pass on the rest: a
    native error, a crash's last words (the filter outlives the program), Python's own
    lines; a terminal stays one for the progress bar (run_on_terminal's tests)."""
    program = (
        "import os, sys, numpy as np\n{filter}"
        "from streamfer.assets import resolve\n"
        "from streamfer.detect import _mediapipe\n"
        "mp = _mediapipe()\n"
        "from mediapipe.tasks.python import BaseOptions\n"
        "from mediapipe.tasks.python.vision import FaceDetector, FaceDetectorOptions\n"
        "path = str(resolve('face_detection_short_range.tflite'))\n"
        "detector = FaceDetector.create_from_options(FaceDetectorOptions(\n"
        "    base_options=BaseOptions(model_asset_path=path)))\n"
        "detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB,\n"
        "                         data=np.zeros((360, 640, 3), np.uint8)))\n"
        "print('said', file=sys.stderr)\n"
        "os.write(2, b'E0000 a native error\\n')\n"
        "os.write(2, b'F0000 last words\\n')\n"
        "os.abort()\n")
    # glibc maps a block this large on its own, 16 bytes into a page: the tensor is
    # misaligned on the first frame, every time (an ordinary heap places it by chance)
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING} | {
        "MALLOC_MMAP_THRESHOLD_": "65536"}

    def run(prologue):
        return subprocess.run([sys.executable, "-c", program.format(filter=prologue)],
                              capture_output=True, text=True, timeout=120, env=environment)

    bare = run("")
    assert "Input tensor memory is not aligned" in bare.stderr, bare.stderr  # it is there
    ours = run("from streamfer.logs import filter_native_stderr\nfilter_native_stderr()\n")
    assert ours.returncode == -signal.SIGABRT
    assert sorted(ours.stderr.splitlines()) == ["E0000 a native error", "F0000 last words",
                                                "said"], ours.stderr


def test_an_iphone_s_heic_photo_is_read_upright(tmp_path, face_bgr):
    """An iPhone's photos are HEIC: a folder of them was left out ('kinds of photo or video
    streamfer does not read') and one alone refused. Now each is read by libheif (through
    pillow-heif: a phone's grid of tiles whole, its rotation applied; an alpha channel
    dropped, a grey one made colour), and annotated as a PNG beside its CSV."""
    import pillow_heif
    from PIL import Image

    footage = tmp_path / "footage"
    footage.mkdir()
    upright = compose(face_bgr, (300, 400), 20, 40, scale=0.9)
    rgb = Image.fromarray(cv2.cvtColor(upright, cv2.COLOR_BGR2RGB))
    pillow_heif.from_pillow(rgb).save(footage / "IMG_0001.HEIC", quality=90)
    pillow_heif.from_pillow(rgb.convert("RGBA")).save(footage / "IMG_0002.heif", quality=90)
    pillow_heif.from_pillow(rgb.convert("L")).save(footage / "IMG_0003.HEIC", quality=90)
    done = run_cli("--source", footage, "--output-dir", tmp_path / "out", "--csv-dir",
                   tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr
    assert "3 inputs: 3 ok" in done.stderr and "left out" not in done.stderr, done.stderr
    rows = read_csv(tmp_path / "out" / "IMG_0001.HEIC.csv")
    assert len(rows) == 1 and rows[0]["face_id"] == "1", rows
    annotated = cv2.imread(str(tmp_path / "out" / "IMG_0001.HEIC.png"))
    assert annotated.shape == (400, 300, 3)
    one = run_cli("--source", footage / "IMG_0001.HEIC", "--csv", tmp_path / "one.csv", "-q")
    assert one.returncode == 0, one.stderr
    assert read_csv(tmp_path / "one.csv")[0]["x"] == rows[0]["x"]


def test_a_photo_s_colour_profile_goes_with_its_annotated_copy(tmp_path, media, face_bgr):
    """A photo's colours are what its ICC profile says they are (an iPhone's Display P3, a
    camera's Adobe RGB; the smiling face in ../shared/media carries a Mac display's): its
    annotated copy had no profile, so a viewer showed the photo's pixels as sRGB (a P3
    photo's colours washed out).
    The copy now carries the photo's profile (.jpg, .png, .webp; an iPhone HEIC's too); a
    photo without one gives a copy without one, as before, and so does one whose profile is
    of another colour space than the copy's RGB (it carried a grey one into an RGB file)."""
    import pillow_heif
    from PIL import Image

    photo = media / "pyfeat_single_face_smile.jpg"
    with Image.open(photo) as image:
        profile = image.info["icc_profile"]
        heic = pillow_heif.from_pillow(image)
    heic.info["icc_profile"] = profile
    heic.save(tmp_path / "IMG_0001.HEIC", quality=90)
    plain = tmp_path / "plain.jpg"
    cv2.imwrite(str(plain), compose(face_bgr, (400, 360), 50, 30, scale=1.0))
    grey = tmp_path / "bw.jpg"  # black and white, its profile a grey one (a print's CMYK
    with Image.open(photo) as image:  # alike): not the RGB copy's, so not carried
        image.convert("L").save(grey, icc_profile=profile[:16] + b"GRAY" + profile[20:])
    for source, out in ((photo, "smile.jpg"), (photo, "smile.webp"),
                        (tmp_path / "IMG_0001.HEIC", "iphone.png"), (plain, "plain.jpg"),
                        (grey, "bw.jpg")):
        done = run_cli("-s", source, "-o", tmp_path / "out" / out, "-q")
        assert done.returncode == 0, done.stderr
        with Image.open(tmp_path / "out" / out) as copy:
            kept = copy.info.get("icc_profile")
            assert copy.size == Image.open(source).size
        assert kept == (None if source in (plain, grey) else profile), out  # before: None


def test_a_photo_s_exif_goes_with_its_annotated_copy_upright(tmp_path, media, face_bgr):
    """A phone's photo says when, where and with what it was taken (EXIF), which a photo
    library sorts and maps by: its annotated copy had none. The copy now carries it, its
    orientation upright as its pixels are (a phone's photo stored sideways with Orientation
    6 is turned once, not twice); a photo without EXIF gives a copy without."""
    from PIL import Image

    with Image.open(media / "pyfeat_single_face_smile.jpg") as image:
        upright = image.convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: shown turned 90° clockwise
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15"
    exif.get_ifd(0x8769)[0x9003] = "2026:12:06 14:03:21"  # DateTimeOriginal
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    phone = tmp_path / "IMG_0002.jpg"  # stored sideways, as a phone held in portrait does
    upright.transpose(Image.Transpose.ROTATE_90).save(phone, exif=exif, quality=95)
    plain = tmp_path / "plain.jpg"
    cv2.imwrite(str(plain), compose(face_bgr, (400, 360), 50, 30, scale=1.0))
    seen = np.asarray(upright.resize((64, 64)), np.float32)
    for source, out in ((phone, "phone.jpg"), (phone, "phone.png"), (phone, "phone.webp"),
                        (plain, "plain.jpg")):
        done = run_cli("-s", source, "-o", tmp_path / "out" / out, "-q")
        assert done.returncode == 0, done.stderr
        with Image.open(tmp_path / "out" / out) as copy:
            kept, size = copy.getexif(), copy.size
            pixels = np.asarray(copy.convert("RGB").resize((64, 64)), np.float32)
        if source == plain:
            assert not kept, out
            continue
        assert size == upright.size and np.abs(pixels - seen).mean() < 20, out  # upright
        assert kept.get(0x0112) == 1 and kept.get(0x0110) == "iPhone 15", out  # before: {}
        assert kept.get_ifd(0x8769).get(0x9003) == "2026:12:06 14:03:21", out
        assert kept.get_ifd(0x8825).get(1) == "N", out


def test_the_first_run_says_what_its_seconds_of_work_are(tmp_path, face_clip, streamfer_home):
    """A machine's first run builds the int8 model and measures the engines — about ten
    seconds in which the command said nothing (on a terminal, a blank line until the bar).
    It now says what it does, once: a later run says nothing of it."""
    home = tmp_path / "home"
    home.mkdir()
    for name in DETECTOR_FILES:
        shutil.copy(streamfer_home / name, home / name)
    first, again = (run_cli("-s", face_clip, "--csv", tmp_path / "x.csv", "-q",
                            env={"STREAMFER_HOME": str(home)}) for _ in range(2))
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert first.stderr.splitlines()[:2] == [
        "first run of this model here: building its int8 file once (about ten seconds), "
        f"cached in {home / 'onnx'}",
        "first run on this CPU: measuring which int8 engine runs the model faster, once (a "
        "few seconds)"], first.stderr
    assert "first run" not in again.stderr, again.stderr


def test_several_files_given_as_the_source_are_one_line_that_says_how(tmp_path, face_clip):
    """``--source footage/*.mp4``: the shell's list ended in click's 'Got unexpected extra
    arguments (b.mp4 c.mp4 …)' with every name, and a quoted pattern in 'no such file'. Both
    now say that a run takes one input, or the folder."""
    for name in ("a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4"):
        shutil.copy(face_clip, tmp_path / name)
    files = sorted(str(p) for p in tmp_path.glob("*.mp4"))
    listed = run_cli("--source", *files, "--csv", tmp_path / "x.csv")
    assert listed.returncode == 2, listed.stderr
    assert listed.stderr.splitlines()[-1] == (
        f"Error: --source takes one input; these came after it: {files[1]}, {files[2]}, "
        f"{files[3]} and 1 more (a shell pattern? give the folder of the files: --source "
        "footage/)"), listed.stderr
    quoted = run_cli("--source", tmp_path / "*.mp4", "--csv", tmp_path / "x.csv")
    assert quoted.returncode == 1 and quoted.stderr == (
        f"Error: no such file: {tmp_path}/*.mp4 (a pattern matching 5 files: give one file, "
        "or their folder)\n"), quoted.stderr


def test_a_numbered_image_sequence_is_one_line_that_says_how(tmp_path, face_bgr):
    """``--source 'frames/img_%04d.png'`` (FFmpeg's way to name an image sequence) was 'no
    such file' alone; now it says what to do: the folder, or a video made of them, with the
    command (which, run, makes a video the next run reads)."""
    import imageio_ffmpeg

    frames = tmp_path / "frames"
    frames.mkdir()
    for n in range(1, 4):
        cv2.imwrite(str(frames / f"img_{n:04d}.png"), face_bgr)
    done = run_cli("--source", frames / "img_%04d.png", "--csv", tmp_path / "x.csv")
    assert done.returncode == 1 and done.stderr == (
        f"Error: no such file: {frames}/img_%04d.png (a numbered sequence of 3 files: give "
        f"their folder, each read as a photo, or make them a video first: ffmpeg -framerate "
        f"25 -i '{frames}/img_%04d.png' -pix_fmt yuv420p frames.mp4)\n"), done.stderr
    made = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-framerate", "25",
                           "-i", str(frames / "img_%04d.png"), "-pix_fmt", "yuv420p",
                           str(tmp_path / "frames.mp4")])
    assert made.returncode == 0
    done = run_cli("--source", tmp_path / "frames.mp4", "--csv", tmp_path / "x.csv", "-q")
    assert done.returncode == 0 and len(read_csv(tmp_path / "x.csv")) == 3, done.stderr


def test_an_earlier_runs_output_folder_under_the_source_folder_is_not_an_input(tmp_path,
                                                                               face_clip):
    """footage/annotated/, the output of yesterday's run with --output-dir
    footage/annotated, and today's run into another folder: its annotated videos were
    taken as footage (annotated twice, and their CSVs beside the real ones'). Now a folder
    holding a done-record is passed over, and said."""
    footage = tmp_path / "footage"
    footage.mkdir()
    shutil.copy(face_clip, footage / "a.mp4")
    first = run_cli("--source", footage, "--output-dir", footage / "annotated", "-q")
    assert first.returncode == 0, first.stderr
    out = tmp_path / "csv"
    done = run_cli("--source", footage, "--csv-dir", out, "-q")
    assert done.returncode == 0, done.stderr
    assert "1 input: 1 ok" in done.stderr, done.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv")) == ["a.mp4.csv"]
    said = [line for line in done.stderr.splitlines() if "earlier run" in line]
    assert len(said) == 1 and "annotated" in said[0], done.stderr


def test_a_file_failing_inside_a_library_is_reported_with_its_cause_and_the_batch_goes_on(
        tmp_path, face_clip, face_bgr):
    """Any error a file raises (here a ValueError from inside the detector, as OpenCV or
    MediaPipe raise them) fails that file alone, with its own cause in the summary; it
    used to abort the whole batch."""
    footage = tmp_path / "footage"
    footage.mkdir()
    shutil.copy(face_clip, footage / "a.mp4")  # 640×480: the probe's detector fails on it
    write_video(footage / "b.mp4", [compose(face_bgr, (320, 240), 5, 5, scale=0.75)
                                    for _ in range(6)])
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE_FAILING_DETECTOR)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(probe), "--source", str(footage),
                           "--output-dir", str(out), "--csv-dir", str(out), "-q"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 1, done.stderr  # one input failed ...
    assert "Traceback" not in done.stderr
    assert "ValueError: bad frame from the detector" in done.stderr
    assert frame_count(out / "b.mp4")[0] == 6  # ... and the other was done
    assert not (out / "a.mp4").exists() and not (out / "a.mp4.csv").exists()  # not as done


PROBE_FAILING_DETECTOR = """
import sys
from streamfer import detect
real = detect.FaceDetector.detect
def failing(self, frame):
    if frame.image.shape[1] == 640:
        raise ValueError("bad frame from the detector")
    return real(self, frame)
detect.FaceDetector.detect = failing
sys.argv = ["run_stream.py", *sys.argv[1:]]
from streamfer.cli.run import run
run()
"""


def test_a_folder_run_interrupted_mid_file_leaves_that_file_as_part_files(tmp_path, face_bgr):
    """Ctrl-C mid-file in a folder run: exit 130, the summary says so, and that input's
    video and CSV stay hidden part files (they used to be renamed to their final names,
    truncated files that looked finished); a rerun does it again, whole. An input finished
    by an earlier run stays 'skipped (done)' in the summary (it said 'not started')."""
    footage = tmp_path / "footage"
    footage.mkdir()
    cv2.imwrite(str(footage / "z.jpg"), face_bgr)  # done first: after long.mp4 in the plan
    out = tmp_path / "out"
    first = run_cli("-s", footage, "--output-dir", out, "--csv-dir", out, "-q")
    assert first.returncode == 0, first.stderr
    assert "z.jpg" in json.loads((out / ".streamfer-done.json").read_text())
    write_video(footage / "long.mp4", [compose(face_bgr, (320, 240), 10 + i % 60, 10, scale=0.6)
                                       for i in range(400)])
    args = [sys.executable, str(ROOT / "run_stream.py"), "-s", footage, "--output-dir", out,
            "--csv-dir", out, "-q"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    part = out / ".long.mp4.part.csv"
    deadline = time.time() + 240
    while time.time() < deadline and (not part.exists() or len(read_csv(part)) < 30):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: outputs left as .part" in stderr
    assert not (out / "long.mp4").exists() and not (out / "long.mp4.csv").exists()
    assert part.exists() and (out / ".long.part.mp4").exists()
    row = next(line for line in stderr.splitlines() if "z.jpg" in line)
    assert "skipped (done)" in row and "not started" not in stderr, stderr
    assert "2 inputs: 1 skipped (done), 1 interrupted" in stderr, stderr  # under the table
    again = run_cli("-s", footage, "--output-dir", out, "--csv-dir", out, "-q")
    assert again.returncode == 0, again.stderr
    rows = {name: next(line for line in again.stderr.splitlines() if name in line)
            for name in ("long.mp4", "z.jpg")}
    assert "│ ok" in rows["long.mp4"] and "skipped (done)" in rows["z.jpg"], again.stderr
    assert frame_count(out / "long.mp4")[0] == 400
    assert max(int(r["frame"]) for r in read_csv(out / "long.mp4.csv")) >= 395


def test_a_folder_rerun_with_changed_settings_redoes_its_files(tmp_path, face_clip):
    """The done-record keeps what made each output; a rerun with another threshold redoes
    the file (it used to skip it: the record was the input's size and time alone), the
    same settings again skip it."""
    footage = tmp_path / "footage"
    footage.mkdir()
    shutil.copy(face_clip, footage / "a.mp4")
    out = tmp_path / "out"
    first = run_cli("-s", footage, "--csv-dir", out, "-q")
    assert first.returncode == 0, first.stderr
    record = json.loads((out / ".streamfer-done.json").read_text())
    assert record["a.mp4"]["settings"]["thresholds"] is None  # readable: the model's own
    assert record["a.mp4"]["settings"]["model"].startswith("sha256:")
    changed = run_cli("-s", footage, "--csv-dir", out, "-q", "--threshold", "0.99999")
    assert changed.returncode == 0, changed.stderr
    assert "skipped" not in changed.stderr
    assert "made before with other settings (thresholds)" in changed.stderr
    assert all(r["labels"] == "" for r in read_csv(out / "a.mp4.csv"))  # redone: none shown
    record = json.loads((out / ".streamfer-done.json").read_text())
    assert record["a.mp4"]["settings"]["thresholds"] == 0.99999
    same = run_cli("-s", footage, "--csv-dir", out, "-q", "--threshold", "0.99999")
    assert same.stderr.count("│ skipped") == 1


def test_a_photo_gets_an_annotated_photo_and_a_video_is_told_to_name_a_video(tmp_path, face_bgr,
                                                                           face_clip):
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), compose(face_bgr, (400, 360), 50, 30, scale=1.0))
    out = tmp_path / "out" / "annotated.png"
    done = run_cli("-s", photo, "-o", out, "--csv", tmp_path / "face.csv", "-q")
    assert done.returncode == 0, done.stderr
    assert "face.jpg: 1 frame, 1 face (" in done.stderr  # no "1 frames", no photo's "fps"
    source, image = cv2.imread(str(photo)), cv2.imread(str(out))
    assert image.shape == source.shape  # the photo's own size
    drawn = np.abs(image.astype(int) - source).max(axis=2) > 60
    assert drawn.mean() > 0.005  # the overlay: the face's box and its label
    (row,) = read_csv(tmp_path / "face.csv")
    x, y, w, h = (int(float(row[k])) for k in "xywh")
    assert drawn[y:y + h, x:x + w].any() and not drawn[:, :max(0, x - 20)].any()
    assert [p.name for p in out.parent.iterdir()] == ["annotated.png"]  # no part file left
    done = run_cli("-s", face_clip, "-o", tmp_path / "frame.png", "--csv", tmp_path / "x.csv")
    assert_one_line_error(done)
    assert "for a photo source" in done.stderr and not (tmp_path / "x.csv").exists()


def test_a_folder_run_from_start_passes_over_videos_shorter_than_it(tmp_path, face_clip,
                                                                     face_bgr):
    """--start over a folder: a video that ends before it is 'out of range' (nothing to do,
    not a failure: exit 0), the others are read from --start on (it was 'failed', exit 1)."""
    footage = tmp_path / "footage"
    footage.mkdir()
    shutil.copy(face_clip, footage / "short.mp4")  # 0.8 s
    write_video(footage / "long.mp4", [compose(face_bgr, (320, 240), 5 + i, 5, scale=0.75)
                                       for i in range(60)], fps=30)  # 2 s
    out = tmp_path / "out"
    done = run_cli("--source", footage, "--start", "1", "--csv-dir", out, "--csv",
                   tmp_path / "all.csv", "-q")
    assert done.returncode == 0, done.stderr
    assert "out of range" in done.stderr and "failed" not in done.stderr
    rows = read_csv(tmp_path / "all.csv")
    assert {r["source"] for r in rows} == {"long.mp4"}
    assert len(rows) >= 25 and min(float(r["time_s"]) for r in rows) >= 1.0
    assert not (out / "short.mp4.csv").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write in a read-only folder")
def test_an_output_in_a_read_only_folder_is_refused_before_the_run(tmp_path, face_clip):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        done = run_cli("-s", face_clip, "-o", locked / "x.mp4", "-q")
    finally:
        locked.chmod(0o755)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot write {locked / 'x.mp4'}: permission denied in {locked}" in done.stderr
    assert "left as" not in done.stderr and not list(locked.iterdir())


def test_an_output_on_a_read_only_file_system_is_refused_before_the_run_as_such(tmp_path,
                                                                                face_clip):
    """A folder on a read-only mount (a container's ``-v /data:/data:ro``) was refused as
    'permission denied in …', which sends one looking at permissions; now it says why."""
    mounted = tmp_path / "ro"
    mounted.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(mounted)],
                      capture_output=True).returncode:
        pytest.skip("needs leave to mount a tmpfs (root, with the capability)")
    try:
        done = run_cli("-s", face_clip, "--csv", mounted / "x.csv", "-q")
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
    assert done.returncode == 1 and done.stderr == (
        f"Error: cannot write {mounted / 'x.csv'}: {mounted} is on a read-only file "
        "system\n"), done.stderr


@pytest.mark.parametrize("option,name", [("--csv", "x.csv"), ("--report", "r.html")])
def test_an_output_the_system_refuses_at_open_is_said_by_its_name(tmp_path, face_clip, option,
                                                                   name):
    """Where the check before the run cannot see a refusal (root in /proc here; root on a
    share that squashes root alike), the CSV was 'Error: [Errno 2] No such file or
    directory: …' and the report named its hidden part file ('/proc/.r.sw8lwcjj.part.html').
    Both now say 'cannot write' and the name asked for (as a user who may not write there is
    told before the run)."""
    args = ["-s", face_clip, option, f"/proc/{name}", "-q"]
    if option == "--report":
        args += ["--csv", tmp_path / "x.csv"]
    done = run_cli(*args)
    said = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and said.startswith(f"Error: cannot write /proc/{name}: "), \
        done.stderr
    assert "Errno" not in said and ".part" not in said, said
