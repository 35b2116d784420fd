"""Real footage and photos from ../shared/media (skipped with a reason when absent)."""

import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import ROOT, frame_count, run_on_terminal
from test_cli import read_csv, run_cli

from streamfer import report
from streamfer.detect import FaceDetector
from streamfer.sources import open_source

pytestmark = pytest.mark.usefixtures("detector_ready")


def test_one_face_clip_end_to_end(tmp_path, media):
    out, table = tmp_path / "a.mp4", tmp_path / "a.csv"
    done = run_cli("-s", media / "pyfeat_single_face.mp4", "-o", out, "--csv", table, "-q")
    assert done.returncode == 0, done.stderr
    assert frame_count(out) == (72, 30.0, (640, 360))
    rows = read_csv(table)
    assert len(rows) >= 68
    ids = [r["face_id"] for r in rows]
    assert max(ids.count(i) for i in set(ids)) >= 68  # one stable id


def test_a_part_of_a_video_keeps_its_frame_numbers_and_times_and_gets_its_audio(tmp_path,
                                                                              media):
    """--start/--end: the CSV holds exactly the frames of the range, with the numbers and
    times they have in the whole file (here every frame has a face); the output video is
    the range alone, from 0, with the audio of the range; its report covers the part's five
    seconds (it said "duration 0:10.0", the last time in the CSV). Before, there was no way
    to run a part of a file."""
    clip = media / "pyfeat_WolfgangLanger_Pexels_sad_to_happy.mp4"
    with open_source(clip) as source:
        whole = [(f.index, round(f.time_s, 4)) for f in source]
    out, table, page = tmp_path / "part.mp4", tmp_path / "part.csv", tmp_path / "part.html"
    done = run_cli("-s", clip, "--start", "5", "--end", "0:10", "-o", out, "--csv", table,
                   "--report", page, "-q")
    assert done.returncode == 0, done.stderr
    part = [(i, t) for i, t in whole if 5 <= t < 10]
    assert [(int(r["frame"]), float(r["time_s"])) for r in read_csv(table)] == part
    assert frame_count(out)[0] == len(part)
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert float(video.start_time * video.time_base) < 0.05  # from 0, not from 5 s
        seconds = [float(s.duration * s.time_base) for s in (video, audio)]
    assert seconds == pytest.approx([5.0, 5.0], abs=0.05)
    summary = report.summarize(report.read_csv(table))
    assert [summary[k] for k in ("start_s", "end_s", "duration_s")] == pytest.approx(
        [5.0, 10.0, 5.0], abs=0.05)
    assert "0:05.0 – 0:10.0 (0:05.0)" in page.read_text()


def test_a_part_of_a_variable_frame_rate_video_starts_at_its_first_frame(tmp_path, media):
    """The HEVC clip's frames are not evenly spaced: OpenCV's seek to 5.03 s lands past
    the frames at 5.07 s, so the source reads again from the start; the first row is the
    whole file's frame 137 at 5.0687 s and no frame of the range is missing."""
    clip = media / "pyfeat_face_noface_hevc.mov"
    with open_source(clip) as source:
        whole = [(f.index, round(f.time_s, 4)) for f in source]
    table = tmp_path / "part.csv"
    done = run_cli("-s", clip, "--start", "5.03", "--end", "6", "--csv", table,
                   "--csv-empty-frames", "-q")
    assert done.returncode == 0, done.stderr
    rows = [(int(r["frame"]), float(r["time_s"])) for r in read_csv(table)]
    assert rows == [(i, t) for i, t in whole if 5.03 <= t < 6]
    assert rows[0] == (137, 5.0687)


def test_hevc_mov_decodes_with_container_timestamps(media):
    with open_source(media / "pyfeat_face_noface_hevc.mov") as source:
        assert source.size == (960, 540)
        times = [f.time_s for f in source]
    assert len(times) == 169
    assert times[0] == pytest.approx(0, abs=0.05)
    assert np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(168 / 26.4, rel=0.05)


def test_the_faceless_cartoon_is_whole_and_processed_without_error(tmp_path, media):
    """The cartoon's index lists 98 frames, of which its edit list hides the first 3 (FFmpeg
    shows 95, and decodes every one without an error): it was called "truncated or
    corrupt" (95 of the 98 frames its index lists), and its bar ended at 95/98."""
    out, table = tmp_path / "c.mp4", tmp_path / "c.csv"
    done = run_cli("-s", media / "pyfeat_no_face_cartoon.mp4", "-o", out, "--csv", table, "-q")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(read_csv(table)) <= 10  # no human face (BlazeFace sees a cartoon face at times)
    assert frame_count(out)[0] == 95  # every frame it shows
    with open_source(media / "pyfeat_no_face_cartoon.mp4") as source:
        assert source.frame_count == 95


def test_a_warning_mid_run_gets_its_own_line_above_the_progress_bar(tmp_path, media):
    """On a terminal, a truncated clip's warning (said while its bar is on screen) was glued
    to the end of the bar's line ("... ETA 0:00:01warning: ..."): the log handler wrote to
    the terminal behind rich's back. Run on a pseudo-terminal, as a user sees it, on the
    sad-to-happy clip cut off after 700 kB (its index at the start: the first 201 of its 472
    frames are there)."""
    clip = tmp_path / "cut_off.mp4"
    clip.write_bytes((media / "pyfeat_WolfgangLanger_Pexels_sad_to_happy.mp4").read_bytes()
                     [:700_000])
    code, lines = run_on_terminal("-s", clip, "--csv", tmp_path / "c.csv")
    assert code == 0, lines[-10:]
    said = "warning: cut_off.mp4: 201 of the 472 frames its index lists are decodable"
    assert any(line.startswith(said) for line in lines), lines[-10:]
    assert any(" 201/472 " in line for line in lines)  # the bar was on screen
    assert not [line for line in lines if "warning:" in line and "ETA" in line]


def test_an_avi_copied_from_a_clip_timed_in_ms_is_read_whole_without_a_warning(tmp_path, media):
    """The sad-to-happy clip's first 4 s copied into an AVI (``ffmpeg -t 4 -i clip.mp4 -c:v
    copy -c:a mp3 clip.avi``: its times in ms make the AVI 600 slots a second, each frame
    holding 25): "98 of the 2452 frames its index lists are decodable (truncated or
    corrupt)", and once that was mended, "the stream ends at 4.05 s of 4.09 s": its last
    frame was taken to last one slot, 1/600 s. A file whole is read without a word."""
    import imageio_ffmpeg

    clip = tmp_path / "clip.avi"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-t", "4", "-i",
                    str(media / "pyfeat_WolfgangLanger_Pexels_sad_to_happy.mp4"), "-c:v",
                    "copy", "-c:a", "mp3", str(clip)], check=True, timeout=60)
    done = run_cli("-s", clip, "--csv", tmp_path / "c.csv", "-q")
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("clip.avi: 98 frames, 98 faces")
    assert len(read_csv(tmp_path / "c.csv")) == 98


def test_a_folder_runs_summary_shows_what_each_inputs_run_warned_of(tmp_path, media):
    """A folder of footage with a truncated file: its warning scrolled past above the bar,
    and the summary said "ok" (with 40 inputs, or 4,000, the one that is not all there was
    lost; a Ray worker's warnings were never shown at all). Now its row says it, and the
    totals count it."""
    footage = tmp_path / "footage"
    footage.mkdir()
    whole = media / "pyfeat_WolfgangLanger_Pexels_sad_to_happy.mp4"
    (footage / "cut off.mp4").write_bytes(whole.read_bytes()[:700_000])
    (footage / "whole.mp4").write_bytes((media / "pyfeat_single_face.mp4").read_bytes())
    done = run_cli("-s", footage, "--csv-dir", tmp_path / "out", "--every", "4",
                   env={"COLUMNS": "200"})  # a row a line
    assert done.returncode == 0, done.stderr
    rows = {cells[0]: cells[1:] for line in done.stderr.splitlines()
            if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 5}
    assert rows["cut off.mp4"][0] == "201" and rows["cut off.mp4"][-1] == (
        "ok; warning: 201 of the 472 frames its index lists are decodable (truncated or "
        "corrupt stream)")
    assert rows["whole.mp4"][0] == "72" and rows["whole.mp4"][-1] == "ok"
    assert done.stderr.strip().splitlines()[-1] == "2 inputs: 2 ok (1 with warnings)"


def test_a_clip_whose_container_only_estimates_its_frames_ends_its_bar_full(tmp_path, media):
    """Matroska keeps no frame count: OpenCV estimates one from the duration and the frame
    rate. The 72-frame clip remuxed to .mkv is estimated at 73, and its bar ended at 72/73
    with "ETA 0:00:01" left on screen, as if a frame were missing; the run was whole (no
    warning). Now a bar whose total was an estimate ends at what was read."""
    import imageio_ffmpeg

    clip = tmp_path / "single.mkv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i",
                    media / "pyfeat_single_face.mp4", "-c", "copy", clip], check=True)
    with open_source(clip) as source:
        assert source.frames_to_read == 73  # the estimate
    code, lines = run_on_terminal("-s", clip, "--csv", tmp_path / "c.csv")
    assert code == 0, lines[-10:]
    assert not [line for line in lines if "warning" in line], lines[-10:]
    bars = [line for line in lines if line.startswith("single.mkv ") and "ETA" in line]
    assert bars and " 72/72 " in bars[-1] and bars[-1].endswith("ETA 0:00:00"), bars[-3:]


def test_several_faces_in_a_photo(media):
    with open_source(media / "pyfeat_multi_face_5people.jpg") as source, \
            FaceDetector("full") as detector:
        frame = detector.detect(next(iter(source)))
    assert len(frame.faces) == 5


def test_audience_clip_has_several_tracked_faces(tmp_path, media):
    table = tmp_path / "h.csv"
    done = run_cli("-s", media / "face_recognition_short_hamilton_clip.mp4", "--csv", table,
                   "--detector", "full", "--every", "5", "-q")
    assert done.returncode == 0, done.stderr
    rows = read_csv(table)
    per_frame = {}
    for r in rows:
        per_frame.setdefault(r["frame"], set()).add(r["face_id"])
    assert max(len(ids) for ids in per_frame.values()) >= 2


def test_batching_frames_changes_nothing_in_the_csv(tmp_path, media):
    """Files classify the faces of 8 frames in one batch; the rows (ids, boxes, which faces
    ran the model under a cadence, scores) are those of frame-by-frame processing."""
    from streamfer.pipeline import Pipeline, Settings

    clip = media / "face_recognition_short_hamilton_clip.mp4"
    tables = {}
    for lookahead in (1, 8):
        settings = Settings(detector="full", face_cadence=2, lookahead=lookahead,
                            backend="tflite", progress=False)
        with Pipeline(settings) as pipeline:
            pipeline.run(str(clip), csv_path=tmp_path / f"{lookahead}.csv")
        tables[lookahead] = read_csv(tmp_path / f"{lookahead}.csv")
    one, eight = tables[1], tables[8]
    assert len(one) == len(eight) > 0
    assert any(r["classified"] in ("0", "False", "false") for r in eight)  # cadence at work
    for a, b in zip(one, eight):
        assert [a[k] for k in ("frame", "face_id", "x", "y", "w", "h", "classified")] == \
               [b[k] for k in ("frame", "face_id", "x", "y", "w", "h", "classified")]
        raw = [k for k in a if k.startswith("raw_")]
        np.testing.assert_allclose([float(a[k]) for k in raw], [float(b[k]) for k in raw],
                                   atol=1e-3)


def test_two_real_faces_crossing_keep_their_ids(media, face_bgr):
    """Two real faces (the astronaut, a smiling woman) cross on one row; the front one hides
    the other for ~12 frames. Detected by the default detector, each keeps one id."""
    import cv2

    from streamfer.frame import Frame
    from streamfer.track import Tracker

    woman = cv2.imread(str(media / "pyfeat_single_face_smile.jpg"))
    h, w = woman.shape[:2]
    faces = [cv2.resize(face_bgr, (220, 220)),
             cv2.resize(woman[max(0, h // 2 - w // 2):h // 2 + w // 2], (220, 220))]
    tracker, owners, hidden = Tracker(), {0: set(), 1: set()}, 0
    with FaceDetector() as detector:
        for i in range(56):
            image = np.full((480, 960, 3), 90, np.uint8)
            xs = (40 + 12 * i, 700 - 12 * i)
            for k in (1, 0) if i < 20 else (0, 1):  # the one drawn last is in front
                image[130:350, xs[k]:xs[k] + 220] = faces[k]
            frame = tracker.update(detector.detect(Frame("cross", i, i / 30, image)))
            hidden += len(frame.faces) < 2
            for face in frame.faces:
                centre = face.box[0] + face.box[2] / 2
                owners[int(abs(centre - xs[1] - 110) < abs(centre - xs[0] - 110))].add(
                    face.face_id)
    assert hidden >= 8  # the occlusion happened
    assert len(owners[0]) == len(owners[1]) == 1 and owners[0] != owners[1]


def test_a_video_with_non_square_pixels_has_its_faces_read_as_they_are_seen(tmp_path, media):
    """A widescreen DVD's picture is stored 720×576 and shown 1024×576 (its pixels 64:45 as
    wide as tall). Its faces were detected and cropped in the stored pixels, squeezed to 70 %
    of their width, and read otherwise: on two seconds of the sad-to-happy clip the six
    scores differed from those of the same picture in square pixels by 0.11 a frame (the
    largest of the six, on average; over the whole clip Surprise 0.22 against 0.07, labels
    the same on 77 % of frames), and the box drawn on the face was square in stored pixels,
    1.42 times as wide as tall on screen. Now the face is found and cropped as seen and its
    box given in the stored pixels (the CSV's w/h 45/64: square on screen)."""
    import imageio_ffmpeg

    rows = {}
    for name, geometry in (("dvd", "scale=720:576,setsar=64/45"), ("square", "scale=1024:576")):
        clip, table = tmp_path / f"{name}.mp4", tmp_path / f"{name}.csv"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i",
                        str(media / "pyfeat_WolfgangLanger_Pexels_sad_to_happy.mp4"), "-t", "2",
                        "-vf", geometry, "-c:v", "libx264", "-crf", "16", "-an", str(clip)],
                       check=True)
        done = run_cli("-s", clip, "--csv", table, "-q")
        assert done.returncode == 0, done.stderr
        rows[name] = read_csv(table)
    assert len(rows["dvd"]) == len(rows["square"]) == 48
    raw = {name: np.array([[float(v) for k, v in r.items() if k.startswith("raw_")]
                           for r in table]) for name, table in rows.items()}
    assert np.abs(raw["dvd"] - raw["square"]).max(axis=1).mean() < 0.05
    alike = 0  # the box on screen as the square clip's (BlazeFace's two models, merged,
    for dvd, square in zip(rows["dvd"], rows["square"]):  # swap boxes on a frame or two)
        x, y, w, h = (int(dvd[k]) for k in "xywh")
        assert w / h == pytest.approx(45 / 64, abs=0.03)
        seen = np.array([x * 64 / 45, y, w * 64 / 45, h])
        alike += np.abs(seen - [int(square[k]) for k in "xywh"]).max() <= 12
    assert alike >= 0.9 * 48
    # piped as a broadcast comes (MPEG-TS, no file to probe): read alike, and written 64:45
    # (it was read squeezed and written with square pixels, 5:4 on screen)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    ts = subprocess.run([ffmpeg, "-v", "error", "-i", str(tmp_path / "dvd.mp4"), "-c", "copy",
                         "-f", "mpegts", "-"], capture_output=True, check=True).stdout
    out, table = tmp_path / "piped.mp4", tmp_path / "piped.csv"
    done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "-s", "-", "--csv",
                           str(table), "-o", str(out), "-q"], input=ts, capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    piped = read_csv(table)
    assert [(r["frame"], r["w"], r["h"]) for r in piped] == \
        [(r["frame"], r["w"], r["h"]) for r in rows["dvd"]]
    with av.open(str(out)) as container:
        assert container.streams.video[0].sample_aspect_ratio == Fraction(64, 45)
