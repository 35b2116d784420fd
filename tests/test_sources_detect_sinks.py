import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from conftest import (
    compose,
    frame_count,
    has_audio,
    joined,
    recordings,
    write_video,
)

from streamfer.detect import FaceDetector, eye_roll, square_crop
from streamfer.frame import Face, Frame
from streamfer.pipeline import Pipeline, Settings
from streamfer.sinks import CSV_COLUMNS, CSVSink, SinkError, VideoSink
from streamfer.sources import SourceError, open_source


def test_video_source_reports_and_yields_every_frame_with_timestamps(face_clip):
    with open_source(face_clip) as source:
        assert (source.fps, source.size, source.frame_count) == (30.0, (640, 480), 24)
        frames = list(source)
    assert [f.index for f in frames] == list(range(24))
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(24) / 30, atol=1e-3)
    assert frames[0].image.shape == (480, 640, 3)


def test_image_file_is_a_one_frame_source(tmp_path, face_bgr):
    cv2.imwrite(str(tmp_path / "face.jpg"), face_bgr)
    with open_source(tmp_path / "face.jpg") as source:
        frames = list(source)
    assert len(frames) == 1 and frames[0].image.shape == face_bgr.shape


@pytest.mark.parametrize("make,message", [
    (lambda p: p, "no such file"),
    (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
    (lambda p: (p.write_text("this is not a video\n" * 50), p)[1],
     "cannot open video: .*clip.mp4 \\(not a video or photo format FFmpeg reads\\)"),
])
def test_bad_files_raise_a_clear_source_error(tmp_path, make, message):
    path = make(tmp_path / "clip.mp4")
    with pytest.raises(SourceError, match=message):
        open_source(path)


@pytest.mark.parametrize("text", ["#EXTM3U\n#EXTINF:12,Talk\ntalk.mp4\n#EXTINF:30,Q&A\nqa.mp4\n",
                                  "talk.mp4\nqa.mp4\n"])
def test_a_players_playlist_is_said_to_be_one(tmp_path, text):
    """A player's list of videos (VLC's, Winamp's ``.m3u``) given as the source said "not a
    video or photo format FFmpeg reads": it is said to be a list, and what to give."""
    (tmp_path / "talks.m3u").write_text(text)
    with pytest.raises(SourceError) as failed:
        open_source(tmp_path / "talks.m3u")
    assert str(failed.value).endswith("talks.m3u (a playlist of 2 files, not a video: give "
                                      "their folder, or each one)")


def test_an_mp4_cut_short_is_said_to_be_one(tmp_path, face_clip):
    """A recording stopped by a flat battery, a download or copy not finished: an MP4 whose
    index (``moov``, most recorders' last box) is missing, or cut, said "not a video or photo
    format FFmpeg reads" or "it holds no stream" — of a file that is an MP4. Now said to be
    cut short. A file whose index came first and whose frames are cut reads as far as they go
    (said elsewhere)."""
    import imageio_ffmpeg

    data = face_clip.read_bytes()
    at = data.find(b"moov") - 4
    assert at > len(data) // 2  # the index last, as FFmpeg writes by default
    front = tmp_path / "front.mp4"  # the index first (-movflags +faststart)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(face_clip), "-c",
                    "copy", "-movflags", "+faststart", str(front)], check=True, timeout=60)
    first = front.read_bytes()
    assert first.find(b"moov") < 100  # after ftyp alone
    cuts = {"before.mp4": data[:at], "inside.mp4": data[:at + 100],
            "front.mp4": first[:first.find(b"moov") + 8]}
    for name, cut in cuts.items():
        (tmp_path / name).write_bytes(cut)
        with pytest.raises(SourceError) as failed:
            open_source(tmp_path / name)
        assert str(failed.value) == (
            f"cannot open video: {tmp_path / name} (an MP4 or MOV cut short: its index, the moov "
            "box most recorders write at its end, is missing or cut — a recording stopped by a "
            "flat battery, or a copy or download not finished; untrunc mends a camera's with a "
            "whole file from the same camera)")
    (tmp_path / "frames_cut.mp4").write_bytes(first[:len(first) // 2])
    with open_source(tmp_path / "frames_cut.mp4") as source:
        assert 0 < len(list(source)) < 24
    # an index first, cut where its table of where the frames lie ends: it opened, and the
    # run read none of its frames, "ok" with a warning (exit 0, a folder run's input done)
    index = first.find(b"moov") - 4
    (tmp_path / "no_frames.mp4").write_bytes(first[:first.find(b"stco") + 8])
    assert first.find(b"stco") > index
    with open_source(tmp_path / "no_frames.mp4") as source, \
            pytest.raises(SourceError) as failed:
        list(source)
    assert str(failed.value) == ("cannot read video: no_frames.mp4 (none of the 24 frames its "
                                 "index lists could be decoded: truncated or corrupt)")


def _audio_only(path):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        samples = np.zeros((1, 16000), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def test_an_audio_file_is_said_to_hold_no_video(tmp_path):
    for name in ("tone.m4a", "tone.mp4"):  # an audio track in a video's container too
        with pytest.raises(SourceError, match=f"no video in .*{name}: it holds audio only"):
            open_source(_audio_only(tmp_path / name))


def test_a_long_hls_recordings_playlist_is_read_whole(tmp_path):
    """A day's recording in 2 s segments lists 43,200 of them, a playlist past 1 MB, of
    which only the first megabyte was read: the segments past it were taken for videos of
    their own in a folder run, and left out of a cut-off recording's ended copy."""
    from streamfer.sources.hls import ended_copy, listed

    names = [f"recording-2026-12-07T{i // 1800:02d}-{i % 1800:04d}.ts" for i in range(43_200)]
    playlist = tmp_path / "day.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n" + "".join(
        f"#EXTINF:2.000000,\n{name}\n" for name in names))
    assert playlist.stat().st_size > 1 << 21
    (tmp_path / names[-1]).touch()
    assert (tmp_path / names[-1]).resolve() in listed(playlist)
    copy, segments = ended_copy(str(playlist))
    try:
        assert segments == 43_200
        assert Path(copy).read_text().splitlines()[-2:] == [str(tmp_path / names[-1]),
                                                           "#EXT-X-ENDLIST"]
    finally:
        shutil.rmtree(Path(copy).parent)


def test_truncated_video_yields_the_decodable_frames(tmp_path, face_clip):
    data = face_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    try:
        with open_source(cut) as source:
            frames = list(source)
    except SourceError:
        return  # the index (moov) was cut away: a clear error is the right answer too
    assert 0 <= len(frames) < 24


def test_square_crop_keeps_aspect_and_pads_at_the_border():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :100] = (0, 0, 255)  # left half red in BGR
    crop = square_crop(image, (0, 0, 60, 80), margin=0.25)
    assert crop.shape == (100, 100, 3)
    assert crop[50, 50, 0] == 255  # RGB out: red channel first


def test_real_face_is_found_in_a_real_photo(detector_ready, face_bgr):
    with FaceDetector() as detector:
        frame = detector.detect(Frame("astronaut", 0, 0.0, face_bgr.copy()))
    assert len(frame.faces) == 1
    x, y, w, h = frame.faces[0].box
    assert 80 < x + w / 2 < 220 and 40 < y + h / 2 < 180 and w > 50  # her face, not the suit
    assert frame.faces[0].det_score > 0.7
    assert frame.faces[0].crop.shape == (100, 100, 3)


def test_the_detector_does_not_import_tensorflow(detector_ready, face_bgr, tmp_path):
    """MediaPipe imports all of TensorFlow where it is installed, for a docs decorator: a
    run with a fast engine would pay its seconds of start-up and its memory for nothing."""
    import sys

    cv2.imwrite(str(tmp_path / "face.png"), face_bgr)
    code = ("import sys, cv2; from streamfer.detect import FaceDetector; "
            "from streamfer.frame import Frame; d = FaceDetector(); "
            "f = d.detect(Frame('f', 0, 0.0, cv2.imread(sys.argv[1]))); d.close(); "
            "print(len(f.faces), 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "face.png")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False"]


def test_a_mediapipe_that_wants_more_of_its_optional_module_still_loads(detector_ready):
    """Were a MediaPipe to import more than the docs decorator from the module the detector
    stands in for, MediaPipe is imported as it is (TensorFlow with it), not broken."""
    import sys

    code = ("import sys, types; n = 'mediapipe.tasks.python.core.optional_dependencies'; "
            "sys.modules[n] = types.ModuleType(n); "  # holds nothing MediaPipe imports
            "from streamfer.detect import FaceDetector; d = FaceDetector(); d.close(); "
            "print('loaded')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout == "loaded\n", done.stderr


def test_a_detector_left_open_closes_quietly_at_exit(detector_ready):
    """A Python user who never closes a detector (or a Pipeline) sees no traceback at exit
    (MediaPipe's own finaliser, run in the interpreter's teardown, printed two)."""
    import sys

    code = "from streamfer.detect import FaceDetector; d = FaceDetector(); print('open')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout == "open\n"
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("turn", [-25, 25])
def test_a_tilted_head_is_cropped_upright(detector_ready, face_bgr, turn):
    def likeness(a, b):
        a, b = (x.astype(float).ravel() - x.mean() for x in (a, b))
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    image = cv2.copyMakeBorder(face_bgr, 100, 100, 100, 100, cv2.BORDER_REPLICATE)
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((250, 250), turn, 1.0), (500, 500),
                            borderMode=cv2.BORDER_REPLICATE)  # counter-clockwise as seen
    with FaceDetector() as detector, FaceDetector(level=False) as plain:
        upright = detector.detect(Frame("t", 0, 0.0, image)).faces[0]
        levelled = detector.detect(Frame("t", 0, 0.0, turned.copy())).faces[0]
        tilted = plain.detect(Frame("t", 0, 0.0, turned)).faces[0]
    assert tilted.roll == 0.0
    assert -turn - 10 < levelled.roll - upright.roll < -turn + 10  # clockwise is positive
    assert likeness(levelled.crop, upright.crop) > 0.7
    assert likeness(levelled.crop, upright.crop) > likeness(tilted.crop, upright.crop) + 0.2


def test_implausible_eye_lines_are_not_followed():
    a, b = SimpleNamespace(x=0.4, y=0.5), SimpleNamespace(x=0.6, y=0.45)  # BlazeFace's eyes
    assert eye_roll([a, b], 100, 100) == pytest.approx(-14.04, abs=0.01)
    b.y = 0.8  # 56° down: keypoints of no real face
    assert eye_roll([a, b], 100, 100) == 0.0
    assert eye_roll([], 100, 100) == 0.0


@pytest.mark.parametrize("size,gray", [((321, 239), False), ((640, 480), True)])
def test_detection_on_odd_sized_and_grayscale_frames(detector_ready, face_bgr, size, gray):
    image = compose(face_bgr, size, 10, 5, scale=0.75 if size[0] < 400 else 1.0, gray=gray)
    with FaceDetector() as detector:
        frame = detector.detect(Frame("t", 0, 0.0, image))
    assert len(frame.faces) == 1


def test_no_face_no_detection(detector_ready):
    with FaceDetector() as detector:
        frame = detector.detect(Frame("t", 0, 0.0, np.full((240, 320, 3), 128, np.uint8)))
    assert frame.faces == []


def test_min_face_filters_small_faces(detector_ready, face_bgr):
    image = compose(face_bgr, (640, 480), 20, 10, scale=1.0)
    with FaceDetector() as detector:
        assert len(detector.detect(Frame("t", 0, 0.0, image.copy())).faces) == 1
    with FaceDetector(min_face=300) as detector:
        assert detector.detect(Frame("t", 0, 0.0, image.copy())).faces == []


def test_csv_round_trips(tmp_path):
    frame = Frame("clip.mp4", 7, 0.2335, np.zeros((10, 10, 3), np.uint8))
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.05, 0.0], np.float32)
    frame.faces.append(Face((1, 2, 3, 4), 0.876, face_id=5, scores=scores, smoothed=scores / 2,
                            labels=("Happiness", "Surprise"), classified=True))
    with CSVSink(tmp_path / "f.csv") as sink:
        sink.write(frame)
        sink.write(frame)
        rows_on_disk = (tmp_path / "f.csv").read_text().count("\n")
    assert rows_on_disk == 3  # flushed before the file is closed
    with open(tmp_path / "f.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == 2
    row = rows[0]
    assert (row["source"], row["frame"], row["face_id"]) == ("clip.mp4", "7", "5")
    assert float(row["time_s"]) == pytest.approx(0.2335)
    assert [int(row[k]) for k in "xywh"] == [1, 2, 3, 4]
    assert float(row["raw_happiness"]) == pytest.approx(0.9, abs=1e-4)
    assert float(row["smooth_happiness"]) == pytest.approx(0.45, abs=1e-4)
    assert row["labels"].split(";") == ["Happiness", "Surprise"] and row["classified"] == "1"


def probe(path):
    """(pix_fmt, size, sample aspect ratio, colour tags, frame times) as FFmpeg reads them."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        times = [float(f.pts * f.time_base) for f in container.decode(stream)]
        return (cc.pix_fmt, (cc.width, cc.height), stream.sample_aspect_ratio,
                (int(cc.color_range), int(cc.colorspace)), times)


@pytest.mark.parametrize("size", [(321, 239), (640, 480)])
def test_video_sink_keeps_size_fps_count_and_audio(tmp_path, face_clip, size):
    """Odd sizes are padded by one pixel to the even size 4:2:0 needs: yuv420p plays
    everywhere (yuv444p does not)."""
    out = tmp_path / "out.mp4"
    with VideoSink(out, 29.97, size, audio_from=face_clip) as video:
        for i in range(15):
            video.write(np.full((size[1], size[0], 3), 10 * i, np.uint8))
    count, fps, got_size = frame_count(out)
    even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
    assert (count, got_size) == (15, even) and fps == pytest.approx(29.97, abs=0.01)
    assert probe(out)[0] == "yuv420p"
    assert has_audio(out)


def test_video_sink_carries_every_audio_track_with_its_language(tmp_path, face_clip, caplog):
    """A film's languages, an interview's microphones: only the first audio track was
    carried over (a second, French, dropped). Now every one, each with its language and
    default flag; a track AAC cannot carry (16 channels) leaves the first alone, said."""
    import av

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    two, three = tmp_path / "two.mkv", tmp_path / "three.mkv"
    subprocess.run([ffmpeg, "-y", "-v", "error", "-i", face_clip, "-f", "lavfi", "-i",
                    "sine=frequency=880:duration=2", "-map", "0:v", "-map", "0:a", "-map",
                    "1:a", "-c:v", "copy", "-c:a", "aac", "-metadata:s:a:0", "language=eng",
                    "-metadata:s:a:1", "language=fra", "-disposition:a:1", "0", two],
                   check=True)
    subprocess.run([ffmpeg, "-y", "-v", "error", "-i", two, "-f", "lavfi", "-i",
                    "sine=duration=2,aformat=channel_layouts=hexadecagonal", "-map", "0",
                    "-map", "1:a", "-c", "copy", "-c:a:2", "pcm_s16le", three], check=True)

    def tracks(path):
        with av.open(str(path)) as container:
            return [(a.language, a.channels, bool(a.disposition & av.stream.Disposition.default))
                    for a in container.streams.audio]

    for source, kept in ((two, [("eng", 1, True), ("fra", 1, False)]),
                         (three, [("eng", 1, True)])):
        out = tmp_path / f"{source.stem}.mp4"
        caplog.clear()
        with VideoSink(out, 24, (64, 48), audio_from=source) as video:
            for _ in range(24):
                video.write(np.zeros((48, 64, 3), np.uint8))
        assert tracks(out) == kept
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert said == ([] if source == two else ["three.mp4: its first audio track alone "
                        'carried over (the others: Unsupported channel layout "9.1.6")'])


SUBTITLES = """1
00:00:00,050 --> 00:00:00,150
Gone by the part's start

2
00:00:00,150 --> 00:00:00,350
Under way at 0.2 s

3
00:00:00,400 --> 00:00:00,600
Later
"""


def test_subtitles_chapters_and_tags_are_carried_over_and_a_part_starts_at_its_start(
        tmp_path, face_clip, caplog):
    """A film's subtitles, a lecture's chapters, a phone's recording date: the output kept
    the audio alone (and of a file without audio, nothing). Now every subtitle track the
    output's container holds (text as MP4's, WebM's or SubRip; AVI holds none: said), the
    chapters and the tags; a part (``start``) keeps the cues from its start, one under way cut
    to start there: FFmpeg cut the audio at -ss, not the subtitles, and its muxer then
    shifted every track so the picture began late (a part from 1 s: 0.8 s)."""
    import av

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    (tmp_path / "s.srt").write_text(SUBTITLES)
    (tmp_path / "meta.txt").write_text(
        ";FFMETADATA1\ntitle=Interview 3\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=400\n"
        "title=Intro\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=400\nEND=800\ntitle=Answer\n")
    film, mute = tmp_path / "film.mp4", tmp_path / "mute.mkv"
    subprocess.run([ffmpeg, "-y", "-v", "error", "-i", face_clip, "-i", tmp_path / "s.srt",
                    "-i", tmp_path / "meta.txt", "-map", "0", "-map", "1", "-map_metadata", "2",
                    "-map_chapters", "2", "-c:v", "copy", "-c:a", "copy", "-c:s", "mov_text",
                    "-metadata", "creation_time=2024-05-01T10:00:00Z",
                    "-metadata:s:s:0", "language=fra", film], check=True)
    subprocess.run([ffmpeg, "-y", "-v", "error", "-i", film, "-map", "0:v", "-map", "0:s",
                    "-c", "copy", "-c:s", "srt", mute], check=True)

    def made(source, out, start=0.0):
        caplog.clear()
        with VideoSink(out, 30, (64, 48), audio_from=source, start=start) as video:
            for i in range(24):
                video.write(np.zeros((48, 64, 3), np.uint8), start + i / 30)
        with av.open(str(out)) as container:
            kept = {"title": container.metadata.get("title"),
                    "chapters": [c["metadata"].get("title") for c in container.chapters()],
                    "starts": {s.type: float(s.start_time * s.time_base)
                               for s in container.streams if s.start_time is not None},
                    "languages": [s.language for s in container.streams.subtitles]}
        cues = subprocess.run([ffmpeg, "-v", "error", "-i", out, "-map", "0:s?", "-f", "srt",
                               "-"], capture_output=True, text=True).stdout
        kept["cues"] = [block.splitlines()[1:] for block in cues.strip().split("\n\n") if block]
        return kept, [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    whole = [["00:00:00,050 --> 00:00:00,150", "Gone by the part's start"],
             ["00:00:00,150 --> 00:00:00,350", "Under way at 0.2 s"],
             ["00:00:00,400 --> 00:00:00,600", "Later"]]
    for out in ("f.mp4", "f.mkv", "f.webm"):
        kept, said = made(film, tmp_path / out)
        assert (kept["title"], kept["chapters"], kept["languages"], kept["cues"], said) == (
            "Interview 3", ["Intro", "Answer"], ["fra"], whole, []), out
    with av.open(str(tmp_path / "f.mp4")) as container:
        assert container.metadata["creation_time"].startswith("2024-05-01T10:00:00")
    kept, said = made(film, tmp_path / "f.avi")
    assert (kept["title"], kept["cues"], said) == ("Interview 3", [], [
        "f.avi: 1 of its 1 subtitle tracks not carried over (mov_text: .avi holds none)"])
    kept, said = made(mute, tmp_path / "m.mp4")  # no audio: its subtitles all the same
    assert (kept["title"], kept["cues"], said) == ("Interview 3", whole, [])
    kept, said = made(film, tmp_path / "part.mkv", start=0.2)
    assert kept["cues"] == [["00:00:00,000 --> 00:00:00,150", "Under way at 0.2 s"],
                            ["00:00:00,200 --> 00:00:00,400", "Later"]]
    assert kept["starts"]["video"] == 0.0 and kept["starts"]["audio"] < 0.05, kept["starts"]
    # a DVD's subtitles are pictures: Matroska holds them, MP4 too, WebM not
    from streamfer.sinks.video import _Carried
    dvd = _Carried(audio=1, subtitles=(("dvdsub", False), ("ass", True)))
    assert dvd.subtitles_for(".mkv") == ([("1:s:0", "copy"), ("1:s:1", "copy")], None)
    assert dvd.subtitles_for(".mp4") == ([("1:s:0", "copy"), ("1:s:1", "mov_text")], None)
    for suffix in (".webm", ".mov"):
        assert dvd.subtitles_for(suffix) == ([("1:s:1", "webvtt" if suffix == ".webm" else
                                               "mov_text")], (
            f"1 of its 2 subtitle tracks not carried over (dvdsub: {suffix} holds text alone)"))


def test_audio_that_cannot_be_carried_over_is_said_with_its_cause(tmp_path, face_clip, caplog):
    """A file whose one audio track no output codec takes (16 channels): the warning gave
    FFmpeg's last line, 'Nothing was written into output file, because at least one of its
    streams received no packets.', not why. Now the first line, the cause."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    wide = tmp_path / "wide.mkv"
    subprocess.run([ffmpeg, "-y", "-v", "error", "-i", face_clip, "-f", "lavfi", "-i",
                    "sine=duration=1,aformat=channel_layouts=hexadecagonal", "-map", "0:v",
                    "-map", "1:a", "-c:v", "copy", "-c:a", "pcm_s16le", wide], check=True)
    with VideoSink(tmp_path / "out.mp4", 30, (64, 48), audio_from=wide) as video:
        for _ in range(24):
            video.write(np.zeros((48, 64, 3), np.uint8))
    assert frame_count(tmp_path / "out.mp4")[0] == 24 and not has_audio(tmp_path / "out.mp4")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        'out.mp4: audio not carried over: Unsupported channel layout "9.1.6"']


def test_a_picture_that_changes_shape_midway_keeps_each_frames_shape(tmp_path, face_bgr, caplog):
    """A browser's recording of a call whose phone was turned (640×480, then 480×640), two
    recordings joined, a broadcast switching from 4:3 to 16:9: OpenCV gave every frame at
    the first's size and it was shown at the first's pixels' shape, so the portrait part
    came stretched, the 16:9 part squeezed, their faces with them, unsaid. Now each frame
    keeps its own shape within the first's, with bars, as a player shows it, said once; a
    change of size alone (an adaptive stream's) is left as it was."""
    wide = [compose(face_bgr, (640, 480), 200 + 4 * i, 60) for i in range(15)]
    tall = [compose(face_bgr, (360, 480), 40 + 4 * i, 120) for i in range(15)]
    small = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in wide]
    call = joined(tmp_path / "call.ts", [
        (write_video(tmp_path / f"{name}.mp4", frames, fps=15), ("-c", "copy"))
        for name, frames in (("wide", wide), ("tall", tall), ("small", small))])
    with open_source(call) as source:
        frames = [frame.image for frame in source]
    assert len(frames) == 45 and all(f.shape == (480, 640, 3) for f in frames)
    # the tall part: 360×480 in the middle of 640×480, black on both sides
    expected = np.zeros((480, 640, 3), np.uint8)
    for got, want in zip(frames[15:30], tall):
        expected[:, 140:500] = want
        assert np.abs(got.astype(int) - expected).mean() < 3
    # the small part: the first's shape, scaled up as it was
    for got, want in zip(frames[30:], wide):
        assert np.abs(got.astype(int) - want).mean() < 6
    said = ["call.ts: its picture changes shape at 1.00 s (640×480, then 360×480): each "
            "frame is kept at its own shape within 640×480, with bars, as a player shows it"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == said
    caplog.clear()  # a part from within the tall part: the same
    with open_source(call, start=1.6) as source:
        first = next(iter(source))
    expected[:, 140:500] = tall[9]
    assert first.index == 24 and np.abs(first.image.astype(int) - expected).mean() < 3
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == said
    # a broadcast's 4:3, then 16:9: 720×576 both, its pixels 16:15, then 64:45 (anamorphic)
    broadcast = joined(tmp_path / "dvb.ts", [
        (tmp_path / "wide.mp4", ("-vf", f"scale=720:576,setsar={sar}", "-c:v", "libx264"))
        for sar in ("16/15", "64/45")])
    caplog.clear()
    with open_source(broadcast) as source:
        frames = [frame.image for frame in source]
    assert source.format.sar == Fraction(16, 15) and len(frames) == 30
    expected = np.zeros((576, 720, 3), np.uint8)
    for got, want in zip(frames[15:], wide):  # as a 4:3 set shows 16:9: bars above and below
        expected[72:504] = cv2.resize(want, (720, 432), interpolation=cv2.INTER_AREA)
        assert np.abs(got.astype(int) - expected).mean() < 4
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "dvb.ts: its picture changes shape at 1.00 s (720×576 of 16:15 pixels, then 720×576 "
        "of 64:45 pixels): each frame is kept at its own shape within 720×576, with bars, as "
        "a player shows it"]


def test_recordings_joined_with_their_own_timestamps_are_timed_on_and_keep_their_shapes(
        tmp_path, face_bgr, caplog):
    """Two recordings' bytes joined, each timed from its own 0: time_s went back to 0 where
    the second began (the CSV's times repeated, the video crowded the second's frames
    into a moment), and the second's first key frame, at its 0, was taken for the first's
    frames: the landscape part was squeezed into a portrait's shape. Now the second is
    timed on from the first, and each part keeps its own shape."""
    both, wide, tall = recordings(tmp_path, face_bgr)
    with open_source(both) as source:
        frames = list(source)
    times = [frame.time_s for frame in frames]
    assert len(frames) == 30 and all(b > a for a, b in zip(times, times[1:])), times
    assert times[15] == pytest.approx(times[14] + 1 / 15, abs=1e-3)
    for got, want in zip(frames[:15], wide):  # the landscape part as it is
        assert np.abs(got.image.astype(int) - want).mean() < 3
    expected = np.zeros((480, 640, 3), np.uint8)
    for got, want in zip(frames[15:], tall):  # the portrait part within it, with bars
        expected[:, 140:500] = want
        assert np.abs(got.image.astype(int) - expected).mean() < 3
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "both.ts: its picture changes shape at 1.00 s (640×480, then 360×480): each frame is "
        "kept at its own shape within 640×480, with bars, as a player shows it"]


def test_a_file_of_several_video_tracks_says_which_is_read(tmp_path, face_clip, face_bgr,
                                                            caplog, detector_ready):
    """A file of two video tracks, a small one first and the main one marked default (what a
    player shows), was read by the small one without a word: its output video and boxes
    were the 160x90 track's. OpenCV reads the first alone; now that is said once, with the
    command that makes a file of the other. Cover art (an attached picture) is no track."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    two, cover = tmp_path / "two angles.mkv", tmp_path / "cover.mkv"
    subprocess.run([ffmpeg, "-y", "-v", "error", "-i", face_clip, "-filter_complex",
                    "[0:v]scale=160:90[s]", "-map", "[s]", "-map", "0:v", "-c:v", "libx264",
                    "-disposition:v:0", "0", "-disposition:v:1", "default", two], check=True)
    art = tmp_path / "art.jpg"
    cv2.imwrite(str(art), face_bgr)
    subprocess.run([ffmpeg, "-y", "-v", "error", "-i", face_clip, "-i", art, "-map", "0",
                    "-map", "1", "-c", "copy", "-disposition:v:1", "attached_pic", cover],
                   check=True)
    for clip, said in ((two, ["two angles.mkv: its first of 2 video tracks (160×90) is read, "
                              "not track 2 (640×480, marked default); to read that "
                              "one: ffmpeg -i 'two angles.mkv' -map 0:v:1 -map '0:a?' -c copy "
                              "'two angles.track2.mkv'"]), (cover, [])):
        caplog.clear()
        with Pipeline(Settings(progress=False, backend="onnx")) as pipeline:
            frames = sum(1 for _ in pipeline.analyze(clip))
        assert frames == 24 and [r.getMessage() for r in caplog.records
                                 if r.levelname == "WARNING"] == said


def test_video_sink_keeps_each_frame_at_its_timestamp(tmp_path):
    """Variable frame rate: the output shows each frame when the input did."""
    times = [0.0, 0.04, 0.08, 0.5, 0.54, 2.0, 2.04]
    out = tmp_path / "vfr.mp4"
    with VideoSink(out, 25, (64, 48)) as video:
        for t in times:
            video.write(np.zeros((48, 64, 3), np.uint8), t)
    np.testing.assert_allclose(probe(out)[4], times, atol=1e-3)


def test_an_avi_holds_a_frame_over_the_slots_its_input_skipped(tmp_path):
    """Variable frame rate in AVI, which has no timestamps: each frame in the slot of its
    time at the file's rate, and the slots between two frames apart left empty (a player
    holds the frame before), as a capture's dropped frames are (they were ticks of 1/600 s:
    a 600 fps file)."""
    import av

    out = tmp_path / "vfr.avi"
    with VideoSink(out, 25, (64, 48)) as video:
        for t in [0.0, 0.04, 0.12, 0.16, 0.52]:
            video.write(np.zeros((48, 64, 3), np.uint8), t)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 25
        assert [entry.timestamp for entry in stream.index_entries] == [0, 1, 3, 4, 13]


def test_video_sink_carries_pixel_aspect_and_colour_tags(tmp_path):
    from fractions import Fraction

    from streamfer.frame import VideoFormat

    out = tmp_path / "sar.mkv"
    fmt = VideoFormat(sar=Fraction(15, 16), color_range=1, colorspace=1, color_primaries=1,
                      color_trc=1)
    with VideoSink(out, 25, (512, 480), fmt=fmt) as video:
        for _ in range(3):
            video.write(np.zeros((480, 512, 3), np.uint8))
    _, size, sar, tags, _ = probe(out)
    assert size == (512, 480) and sar == Fraction(15, 16) and tags == (1, 1)


@pytest.mark.parametrize("name", ["clip.gif", "noext", "clip.txt"])
def test_video_sink_refuses_unknown_containers_before_writing(tmp_path, name):
    with pytest.raises(SinkError, match="name it .mp4"):
        VideoSink(tmp_path / name, 25, (64, 48))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, held_as", [("rows.mp4", "a video"), ("rows.png", "a photo"),
                                           ("rows.html", "an HTML page")])
def test_csv_sink_refuses_a_name_another_format_holds(tmp_path, name, held_as):
    """From Python too (``Pipeline.run(csv_path="rows.mp4")`` wrote CSV text there)."""
    with pytest.raises(SinkError, match=f"it would be taken for {held_as}; name it rows.csv"):
        CSVSink(tmp_path / name)
    assert not list(tmp_path.iterdir())
    with CSVSink(tmp_path / "rows.tsv") as table:  # a name no other format claims: the user's
        table.finish()
    assert (tmp_path / "rows.tsv").read_text().startswith("source,frame,")


def test_a_csv_to_a_device_or_pipe_is_never_removed(tmp_path):
    """A run stopped before its first row removes its CSV (a header alone is what a whole
    faceless run writes): it removed whatever the name was, ``--csv /dev/null`` included
    (as root, the device itself). Here a FIFO stands in for the device."""
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    CSVSink(fifo).close()  # stopped before any row
    reader.join(timeout=10)
    assert fifo.exists() and received == [b""]
    plain = tmp_path / "plain.csv"
    CSVSink(plain).close()
    assert not plain.exists()  # a file of its own still goes


def test_a_csv_the_disk_refuses_keeps_whole_rows_and_says_how_many(tmp_path):
    """A full disk mid-run left a torn last row under the CSV's name and said only "[Errno 28]
    No space left on device"; now the file is cut back to its last whole row and the error
    names the file and what it keeps. The limit is the OS's own (RLIMIT_FSIZE: "File too
    large"), in a child process."""
    script = """
import resource, signal, sys
import numpy as np
from streamfer.frame import Face, Frame
from streamfer.pipeline import Pipeline, Settings
from streamfer.sinks import CSVSink, SinkError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
scores = np.full(6, 0.25)
table = CSVSink(sys.argv[1])
try:
    for i in range(100):
        table.write(Frame("clip.mp4", i, i / 25, None, [
            Face((10, 20, 30, 30), 0.9, face_id=1, scores=scores, smoothed=scores,
                 labels=("Sadness",), classified=True)], analysed=True))
except SinkError as exc:
    print(exc)
table.close()
"""
    table = tmp_path / "rows.csv"
    done = subprocess.run([sys.executable, "-c", script, str(table)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    said = done.stdout.strip()
    rows = list(csv.DictReader(table.open(newline="")))
    assert said == (f"cannot write {table}: File too large; it keeps its {len(rows)} rows, "
                    f"up to frame {len(rows) - 1}"), said
    assert 10 < len(rows) and table.stat().st_size <= 3000
    assert all(len(r) == len(CSV_COLUMNS) and r["classified"] == "1" for r in rows)


def test_a_long_name_s_part_file_is_shortened_between_characters(tmp_path):
    """A name near the limit is written first as a part file with a shortened stem; cut at
    a byte count, a Japanese name (three bytes a character) lost half a character, and an
    interrupted run left a part file whose name was not text (``\\xe3\\x83`` in ``ls``)."""
    from streamfer.files import NAME_MAX, part_path, write_atomically

    out = tmp_path / ("テ" * 83 + ".mp4")  # 253 bytes: its part file, 263, is shortened
    part = part_path(out)
    raw = os.fsencode(part.name)
    assert len(raw) <= NAME_MAX and part.name.startswith(".テ")
    raw.decode("utf-8")  # whole characters (it raised UnicodeDecodeError)
    assert part_path(out) == part != part_path(out.with_name("テ" * 82 + "x.mp4"))
    write_atomically(out, "x")
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_a_file_written_whole_or_not_at_all_names_itself_when_the_disk_refuses(tmp_path):
    from streamfer.files import write_atomically

    script = """
import resource, signal, sys
from streamfer.files import write_atomically
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
try:
    write_atomically(sys.argv[1], "x" * 100_000)
except OSError as exc:
    print(exc)
"""
    page = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-c", script, str(page)], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == f"cannot write {page}: File too large", done.stdout
    assert not list(tmp_path.iterdir())  # no part file left, nothing under its name
    write_atomically(page, "whole")
    assert page.read_text() == "whole"


def test_webm_is_written_with_vp9(tmp_path):
    out = tmp_path / "clip.webm"
    with VideoSink(out, 25, (64, 48)) as video:
        for i in range(5):
            video.write(np.full((48, 64, 3), 40 * i, np.uint8))
    import av

    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "vp9"
    assert frame_count(out)[0] == 5


def test_video_sink_with_no_frame_leaves_no_file(tmp_path):
    """A later sink failing during set-up (or a run stopped before its first frame) must not
    leave an empty video looking finished (the CSV's refusal said by its name)."""
    (tmp_path / "taken.csv").mkdir()
    with pytest.raises(SinkError, match="taken.csv: Is a directory"), \
            VideoSink(tmp_path / "out.mp4", 25, (64, 48)):
        CSVSink(tmp_path / "taken.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["taken.csv"]


def test_the_output_may_not_be_the_input(tmp_path, face_clip):
    with pytest.raises(SinkError, match="is the input"):
        VideoSink(face_clip, 25, (64, 48), audio_from=face_clip)


def test_a_runs_video_and_csv_may_not_be_one_file(tmp_path, face_clip, detector_ready):
    """From Python as from the command line: the one finalised last replaced the other."""
    from streamfer import Pipeline, Settings

    same = tmp_path / "x.mp4"
    with Pipeline(Settings(backend="onnx", progress=False)) as pipeline, \
            pytest.raises(SinkError, match="output and csv_path name the same file"):
        pipeline.run(str(face_clip), output=same, csv_path=tmp_path / "." / "x.mp4")
    assert not list(tmp_path.iterdir())


def test_interrupted_video_keeps_the_frames_written(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt), VideoSink(out, 25, (64, 48)) as video:
        for _ in range(10):
            video.write(np.zeros((48, 64, 3), np.uint8))
        raise KeyboardInterrupt
    assert frame_count(out)[0] == 10
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


# A run killed outright (SIGKILL: the OOM killer, a power cut, a scheduler's hard stop) while
# its video is written: 8 s of picture made, a moment for the encoder, then no close at all
KILLED_WHILE_WRITING = """
import os, signal, sys, time
import numpy as np
from streamfer.sinks import VideoSink
video = VideoSink(sys.argv[1], 25, (320, 240))
noise = np.random.default_rng(0)
for i in range(200):
    video.write(noise.integers(0, 255, (240, 320, 3), dtype=np.uint8), i / 25)
time.sleep(2)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".m4v", ".mkv", ".webm"])
def test_a_video_killed_outright_keeps_what_was_encoded_but_its_last_seconds(tmp_path, suffix):
    """An MP4 holds its index at its end: a run killed outright (hours of a webcam session,
    a long file) left a part file no player opens — every frame lost, where its CSV kept its
    rows. It is written in fragments of a second now (each one whole on disk), and made a
    plain MP4 as it is closed; a Matroska or WebM kept its last 5 s or more in memory (123
    of 200 frames here), now a second's cluster. A killed run's part file plays to its last
    second or two (what the encoder held included)."""
    out = tmp_path / f"v{suffix}"
    done = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not out.exists()
    count, fps, size = frame_count(tmp_path / f".v.part{suffix}")
    assert count >= 140 and fps == 25 and size == (320, 240), (count, fps, size)


def test_a_whole_video_is_a_plain_mp4(tmp_path):
    """Written in fragments, closed as a plain MP4: one index at its end, its frame count
    known to a reader without decoding (a fragmented file's is not, to OpenCV: -1)."""
    import struct

    out = tmp_path / "v.mp4"
    with VideoSink(out, 25, (64, 48)) as video:
        for i in range(60):
            video.write(np.full((48, 64, 3), i * 4, np.uint8), i / 25)
    data, boxes, at = out.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        boxes.append(kind.decode("latin-1"))
        at += struct.unpack(">Q", data[at + 8:at + 16])[0] if size == 1 else max(size, 8)
    assert "moof" not in boxes and boxes.count("moov") == 1, boxes
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 60 == frame_count(out)[0]


def test_write_video_helper_makes_audio(tmp_path, face_bgr):
    path = write_video(tmp_path / "a.mp4", [compose(face_bgr, (64, 48), 0, 0, 0.1)] * 5,
                       audio=True)
    assert has_audio(path)


def test_rotation_metadata_is_honoured(tmp_path, face_bgr):
    plain = write_video(tmp_path / "plain.mp4", [compose(face_bgr, (320, 240), 0, 0)] * 3)
    rotated = tmp_path / "phone.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-display_rotation",
                    "90", "-i", str(plain), "-c", "copy", str(rotated)], check=True)
    with open_source(rotated) as source:
        frames = list(source)
        assert source.size == (240, 320)
    assert frames[0].image.shape == (320, 240, 3)
    # a stream of non-square pixels turned upright: its pixels' ratio turns with it (8:9
    # stored, 9:8 in the upright frames; it was kept 8:9, the face squeezed the other way)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(plain),
                    "-vf", "setsar=8/9", str(tmp_path / "dv.mp4")], check=True)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-display_rotation",
                    "90", "-i", str(tmp_path / "dv.mp4"), "-c", "copy", str(rotated)], check=True)
    with open_source(rotated) as source:
        assert source.size == (240, 320) and source.format.sar == Fraction(9, 8)


def test_an_interlaced_video_is_written_interlaced_as_it_came(tmp_path, face_clip):
    """A DVD, a broadcast, a camcorder's 1080i: a player deinterlaces what its header says
    is interlaced. The output was written progressive, its fields woven into each frame:
    played as it was, every movement combed. Now H.264 outputs are coded interlaced with the
    input's field order (top or bottom first; .webm's VP9 has no fields), and a phone's
    rotated video, whose lines are columns once upright, is written progressive."""
    import av

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()

    def field_order(path):
        with av.open(str(path)) as container:
            return container.streams.video[0].codec_context.field_order

    for first, x264 in (("top", "tff=1"), ("bottom", "bff=1")):
        clip = tmp_path / f"{first}.mp4"
        subprocess.run([ffmpeg, "-y", "-v", "error", "-i", face_clip, "-vf",
                        f"tinterlace=mode=interleave_{first},setfield={first[0]}ff", "-c:v",
                        "libx264", "-flags", "+ildct+ilme", "-x264-params", x264, clip],
                       check=True)
        fields = field_order(clip)
        assert fields == (2 if first == "top" else 3)  # AVFieldOrder: TT, BB
        with open_source(clip) as source:
            assert source.format.field_order == fields
            frames = list(source)
        for suffix in (".mp4", ".mkv"):
            out = tmp_path / f"{first}.out{suffix}"
            with VideoSink(out, source.fps, source.size, fmt=source.format) as video:
                for frame in frames:
                    video.write(frame.image, frame.time_s)
            assert field_order(out) == fields, (first, suffix)
        with VideoSink(tmp_path / "top.webm", source.fps, source.size, fmt=source.format) \
                as video:
            video.write(frames[0].image)
        assert field_order(tmp_path / "top.webm") in (0, 1)  # unknown / progressive
    rotated = tmp_path / "turned.mp4"
    subprocess.run([ffmpeg, "-y", "-v", "error", "-display_rotation", "90", "-i", clip, "-c",
                    "copy", rotated], check=True)
    with open_source(rotated) as source:
        assert source.format.field_order is None
    with open_source(face_clip) as source:
        assert source.format.field_order is None  # progressive


def test_one_opencv_distribution_is_installed():
    """mediapipe brings opencv-contrib-python; a second distribution in the same cv2/ folder
    breaks whichever is removed first."""
    from importlib.metadata import distributions

    opencv = {d.metadata["Name"].lower() for d in distributions()
              if d.metadata["Name"] and d.metadata["Name"].lower().startswith("opencv")}
    assert len(opencv) == 1, opencv


def test_a_whole_mkv_gets_no_truncation_warning(tmp_path, caplog):
    """Matroska lists no frame count (OpenCV's is an estimate): no warning for a whole file."""
    import logging

    clip = tmp_path / "whole.mkv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=25", "-frames:v", "101", "-c:v", "libx264",
                    str(clip)], check=True)
    with caplog.at_level(logging.WARNING), open_source(clip) as source:
        assert len(list(source)) == 101
    assert not caplog.records


def test_a_clip_cut_without_re_encoding_is_not_called_truncated(tmp_path, caplog):
    """A clip cut from a longer one with ``ffmpeg -ss … -c copy`` (or trimmed on a phone)
    keeps the frames from the key frame before the cut, and an edit list that shows it from
    the cut: its index lists frames it never shows. It was called "truncated or corrupt" (74
    of the 130 frames its index lists, on three seconds cut from the sad-to-happy clip) and
    its progress bar ended at 74/130. The frames the edit list hides are not counted now."""
    import logging

    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error"]
    subprocess.run([*ffmpeg, "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-frames:v",
                    "250", "-c:v", "libx264", "-g", "50", str(whole)], check=True)
    subprocess.run([*ffmpeg, "-ss", "5.6", "-i", str(whole), "-t", "3", "-c", "copy",
                    str(cut)], check=True)  # key frames at 4 s and 6 s: 0.4 s after one
    with caplog.at_level(logging.WARNING), open_source(cut) as source:
        frames = list(source)
        assert source.frame_count == len(frames)
    assert 73 <= len(frames) <= 77 and frames[0].time_s == 0
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    # a part of it keeps the numbers its frames have in the whole (they were 40 too many:
    # the hidden frames counted before the part's first)
    with open_source(cut, start=1.5, end=2.5) as source:
        part = [(f.index, f.time_s) for f in source]
    assert part == [(f.index, f.time_s) for f in frames if 1.5 <= f.time_s < 2.5]


def test_an_avis_held_frames_are_not_called_truncated(tmp_path, caplog):
    """An AVI holds a frame over a slot with an empty chunk (a capture's dropped frame, or
    FFmpeg's muxer where timestamps skip one); its header counts the slot as a frame. A
    whole file was called "truncated or corrupt" (72 of the 73 frames its index lists,
    FFmpeg's ``-c:v mpeg4 -c:a mp3`` copy of the single-face clip) and its progress bar
    ended at 72/73. An AVI cut short is still said to be."""
    import logging

    held, cut = tmp_path / "held.avi", tmp_path / "cut.avi"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=25", "-frames:v", "50", "-vf",
                    "select='not(eq(n\\,10)+eq(n\\,30))'", "-fps_mode", "passthrough",
                    "-c:v", "mpeg4", str(held)], check=True)  # slots 10 and 30: empty
    with caplog.at_level(logging.WARNING), open_source(held) as source:
        frames = list(source)
        assert source.frame_count == len(frames) == 50  # of 52 slots
    assert frames[10].time_s == pytest.approx(11 / 25)  # frame 9 is held over slot 10
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    # a copy into AVI of a video timed in ms (an MP4's -c copy): 1000 slots a second, each
    # frame holding 41 or 42, the last too — it was "48 of the 2002 frames its index lists"
    timed = tmp_path / "ms.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=24000/1001", "-frames:v", "48", "-c:v",
                    "libx264", "-video_track_timescale", "1000", str(timed)], check=True)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(timed),
                    "-c", "copy", str(tmp_path / "ms.avi")], check=True)
    with caplog.at_level(logging.WARNING), open_source(tmp_path / "ms.avi") as source:
        assert source.frame_count == len(list(source)) == 48
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    cut.write_bytes(held.read_bytes()[:held.stat().st_size // 2])
    with caplog.at_level(logging.WARNING), open_source(cut) as source:
        assert 10 < len(list(source)) < 40
    assert "truncated or corrupt" in caplog.text
    caplog.clear()
    (tmp_path / "ms_cut.avi").write_bytes((tmp_path / "ms.avi").read_bytes()[:20000])
    with caplog.at_level(logging.WARNING), open_source(tmp_path / "ms_cut.avi") as source:
        assert 5 < len(list(source)) < 45
    assert "truncated or corrupt" in caplog.text


def test_a_video_is_not_read_whole_when_it_is_opened(tmp_path, face_clip):
    """Opening a file read it whole into memory, to tell whether it was an HLS playlist cut
    off before its end (a 117 MB video: 2.3 s and 0.97 GB before its first frame; a 4 GB
    one, more than many machines hold); only playlists are read now. A named pipe given as
    the source waited forever for a writer there; it is a one-line error with the way to
    read it."""
    import tracemalloc

    from streamfer.sources import open_source

    big = tmp_path / "long.mp4"
    big.write_bytes(face_clip.read_bytes())
    with open(big, "r+b") as f:
        f.truncate(256 << 20)  # a sparse tail: 256 MB
    tracemalloc.start()
    try:
        with open_source(big) as source:
            assert source.frame_count == 24
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak
    pipe = tmp_path / "feed.ts"
    os.mkfifo(pipe)
    done = subprocess.run([sys.executable, "-c", "import sys; from streamfer.sources import "
                           "open_source; open_source(sys.argv[1])", str(pipe)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert f"SourceError: not a file: {pipe} (a named pipe: give --source - < {pipe})" \
        in done.stderr  # (in a subprocess: the wait was forever)


def test_stages_stop_promptly_whichever_side_waits():
    """A consumer that gives up, or a stop while the producer is stuck in a slow read, ends
    the stage thread within a tick or two (no 5 s wait, no thread blocked forever)."""
    import threading
    import time

    from streamfer.pipeline import _background, _stop_threads

    def slow():
        for i in range(1000):
            time.sleep(0.2 if i > 2 else 0)
            yield i

    stop, threads = threading.Event(), []
    frames = _background(_background(slow(), stop, threads), stop, threads)
    assert [next(frames) for _ in range(3)] == [0, 1, 2]
    started = time.perf_counter()
    _stop_threads(stop, threads)
    rest = list(frames)  # the consumer ends too, at once, with what was already queued
    assert time.perf_counter() - started < 1.0 and len(rest) < 10
    time.sleep(0.3)  # the producer wakes from its 0.2 s read and sees the stop
    assert not any(t.is_alive() for t in threads)

    stop, threads = threading.Event(), []
    frames = _background(slow(), stop, threads)
    next(frames)
    frames.close()  # the consumer gives up: the producer is let go
    time.sleep(0.3)
    assert stop.is_set() and not any(t.is_alive() for t in threads)


def test_the_window_opens_at_the_frame_size_fitted_to_the_screen():
    from streamfer.sinks import fitted

    assert fitted((1920, 1080), (1280, 720)) == (1152, 648)  # 90 % of the screen, 16:9 kept
    assert fitted((640, 480), (1280, 720)) == (640, 480)     # never enlarged
    assert fitted((1080, 1920), (1920, 1080)) == (547, 972)  # portrait: the height decides
    assert fitted((1920, 1080), None) == (1920, 1080)        # screen unknown: the frame's size


def test_file_playback_is_paced_to_timestamps_and_never_rushes():
    from streamfer.sinks import Pacer

    now = [100.0]
    pacer = Pacer(clock=lambda: now[0])
    assert pacer.wait(0.0) == 0.0
    now[0] += 0.01  # processing took 10 ms: wait the rest of the 1/30 s
    assert abs(pacer.wait(1 / 30) - (1 / 30 - 0.01)) < 1e-9
    now[0] = 100.0 + 5.0  # a 5 s stall at t=1/30: shown at once, and the clock starts over
    assert pacer.wait(2 / 30) == 0.0
    now[0] += 0.001
    assert abs(pacer.wait(3 / 30) - (1 / 30 - 0.001)) < 1e-9


@pytest.mark.usefixtures("detector_ready")
def test_a_4k_frame_is_detected_shrunk_and_boxed_in_its_own_pixels(face_bgr):
    """Frames above 1280 px are shrunk before detection; the boxes and crops are the
    full frame's: the face of a 640×360 frame, six times larger in 3840×2160."""
    small = compose(face_bgr, (640, 360), 250, 60, scale=0.8)
    big = cv2.resize(small, (3840, 2160), interpolation=cv2.INTER_CUBIC)
    with FaceDetector() as detector:
        one = detector.detect(Frame("s", 0, 0.0, small)).faces
        six = detector.detect(Frame("b", 0, 0.0, big)).faces
    assert len(one) == len(six) == 1
    np.testing.assert_allclose(np.asarray(six[0].box) / 6, one[0].box, atol=4)
    assert six[0].crop.shape == (100, 100, 3)
    assert np.abs(six[0].crop.astype(int) - one[0].crop).mean() < 12


def _break_the_converter(monkeypatch, after: int) -> None:
    """The encoder's colour conversion raises an error it does not expect after ``after``
    frames (a RuntimeError, as a library's own bug would)."""
    import av

    calls, real = [], av.VideoFrame.reformat

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise RuntimeError("the converter broke")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "reformat", failing)


def test_any_encoder_failure_ends_the_run_and_leaves_the_part_file(tmp_path, monkeypatch):
    """An error the encoder thread did not expect (here a RuntimeError from the colour
    conversion) used to kill that thread silently, and the next writes blocked forever on
    its full queue; now the next write raises one SinkError, close says it again, and what
    was encoded stays the hidden part file."""

    from streamfer.files import part_path

    _break_the_converter(monkeypatch, after=50)
    out = tmp_path / "v.mp4"
    sink = VideoSink(out, 25, (64, 48))
    raised = []

    def write_many():
        try:
            for i in range(200):
                sink.write(np.full((48, 64, 3), i, np.uint8), i / 25)
        except SinkError as exc:
            raised.append(exc)

    writer = threading.Thread(target=write_many, daemon=True)
    writer.start()
    writer.join(timeout=30)
    assert not writer.is_alive(), "a write waited on a dead encoder"
    assert raised and "the converter broke" in str(raised[0])
    with pytest.raises(SinkError, match="the converter broke"):
        sink.close()
    assert not out.exists() and part_path(out).exists()


def test_a_run_whose_video_fails_says_what_its_csv_keeps(tmp_path, monkeypatch, face_clip,
                                                          detector_ready):
    """The video failing mid-run left the CSV under its own name, looking whole, with
    nothing said of it; now the error says how many rows it keeps and up to which frame."""

    from streamfer import Pipeline, Settings

    _break_the_converter(monkeypatch, after=10)
    table = tmp_path / "t.csv"
    with Pipeline(Settings(backend="onnx", progress=False)) as pipeline, \
            pytest.raises(SinkError) as raised:
        pipeline.run(str(face_clip), output=tmp_path / "v.mp4", csv_path=table)
    rows = list(csv.DictReader(table.open(newline="")))
    assert 0 < len(rows) < 24
    assert str(raised.value).endswith(
        f"; t.csv keeps its {len(rows)} rows, up to frame {rows[-1]['frame']}"), raised.value
    assert "the converter broke" in str(raised.value)


def test_a_video_the_disk_refuses_says_why_in_words(tmp_path):
    """A full disk (here the OS's file-size limit) said '[Errno 28] No space left on device:
    '/x/.v.part.mp4''; now the reason alone, beside the output's name."""
    script = """
import resource, signal, sys
import numpy as np
from streamfer.sinks import SinkError, VideoSink
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
sink = VideoSink(sys.argv[1], 25, (320, 240))
noise = np.random.default_rng(0)
try:
    for i in range(100):
        sink.write(noise.integers(0, 255, (240, 320, 3), dtype=np.uint8), i / 25)
    sink.finish()
except SinkError:
    pass
try:
    sink.close()
except SinkError as exc:
    print(exc)
"""
    out = tmp_path / "v.mp4"
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == (f"cannot write {out}: File too large (what was encoded "
                                   "is left as .v.part.mp4)"), done.stdout + done.stderr


# A child process's disk, full once a video is encoded and its audio is being muxed in:
# the OS's file-size limit set then (the muxed copy, with its audio, is larger)
FULL_WHILE_MUXING = """
import resource, signal, sys
from streamfer.sinks import VideoSink
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
mux = VideoSink._carry_over
def full_disk(self, seconds, *args, **kwargs):
    size = self._part.stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 2000, size + 2000))
    mux(self, seconds, *args, **kwargs)
VideoSink._carry_over = full_disk
"""


def test_a_disk_that_fills_while_the_audio_is_muxed_in_leaves_the_video_unfinished(
        tmp_path, face_clip):
    """The disk filled while FFmpeg muxed the input's audio in: the video was put under its
    name without its audio, 'audio not carried over: ['[out#0/mp4 @ 0x55…] Error closing
    file: No space left on device']' said, and a folder run recorded the input done (a rerun
    skipped it). Now the video stays its part file and the write's failure is raised. The
    disk is the OS's file-size limit, set once the video is encoded (the muxed copy, with
    its audio, is larger), in a child process."""
    script = FULL_WHILE_MUXING + """
import numpy as np
from streamfer.sinks import SinkError
sink = VideoSink(sys.argv[1], 30, (320, 240), audio_from=sys.argv[2])
noise = np.random.default_rng(0)
for i in range(24):
    sink.write(noise.integers(0, 255, (240, 320, 3), dtype=np.uint8), i / 30)
sink.finish()
try:
    sink.close()
except SinkError as exc:
    print(exc)
"""
    out = tmp_path / "v.mp4"
    done = subprocess.run([sys.executable, "-c", script, str(out), str(face_clip)],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == (f"cannot write {out}: File too large (what was encoded "
                                   "is left as .v.part.mp4)"), done.stdout + done.stderr
    assert "audio not carried over" not in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".v.part.mp4"]


def test_a_folder_inputs_outputs_appear_together_or_not_at_all(tmp_path, face_clip,
                                                               detector_ready):
    """A folder run's input whose video failed as it was finalised (the disk full while
    the audio was muxed in) had its CSV under its name already (closed first), beside no
    video; an input refused at its first write left empty part files. Now the CSV stays
    its part file when the video fails, and a part file with nothing in it goes."""
    script = FULL_WHILE_MUXING + """
from streamfer.pipeline import Pipeline, Settings
from streamfer.sinks import SinkError
out = sys.argv[2]
with Pipeline(Settings(progress=False)) as pipeline:
    try:
        pipeline.run(sys.argv[1], f"{out}/v.mp4", f"{out}/v.mp4.csv", whole_only=True)
    except SinkError as exc:
        print(exc)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # the disk full from the start
    try:
        pipeline.run(sys.argv[1], f"{out}/w.mp4", f"{out}/w.mp4.csv", whole_only=True)
    except SinkError as exc:
        print(exc)
"""
    done = subprocess.run([sys.executable, "-c", script, str(face_clip), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    said = done.stdout.splitlines()
    assert said[0] == (f"cannot write {tmp_path}/v.mp4: File too large (what was encoded is "
                       "left as .v.part.mp4)"), done.stdout + done.stderr
    assert said[1].startswith(f"cannot write {tmp_path}/w.mp4: File too large"), said
    assert sorted(p.name for p in tmp_path.iterdir()) == [".v.mp4.part.csv", ".v.part.mp4"]
    rows = list(csv.DictReader((tmp_path / ".v.mp4.part.csv").open(newline="")))
    assert len(rows) == 24  # whole, as the next run will make it again


def test_files_written_whole_get_the_permissions_any_new_file_gets(tmp_path):
    from streamfer.files import write_atomically

    mask = os.umask(0o022)
    os.umask(mask)
    (tmp_path / "plain.html").write_text("x")
    out = write_atomically(tmp_path / "report.html", "<p>x</p>")
    assert out.read_text() == "<p>x</p>"
    assert out.stat().st_mode & 0o777 == (tmp_path / "plain.html").stat().st_mode & 0o777
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.html", "report.html"]


def test_a_live_stream_with_start_is_refused_before_it_is_opened():
    """A live source starts now: --start is refused in one line, without a connection (the
    port is closed; before, the error was 'cannot open stream', after trying it)."""
    from streamfer.sources import SourceError, open_source

    with pytest.raises(SourceError, match="a live source starts now"):
        open_source("rtsp://127.0.0.1:9/live", start=3.0)


def test_a_video_the_system_will_not_open_is_said_by_its_name_not_its_part_files(tmp_path,
                                                                              monkeypatch):
    """Opening the output failing past the checks (too many open files, a folder gone) said
    ``cannot write x.mp4: [Errno 24] Too many open files: '…/.x.part.mp4'``: the hidden part
    file's name and the errno; the other write failures say the reason alone."""
    import av

    from streamfer.sinks import SinkError, VideoSink

    def refuse(path, *args, **kwargs):
        raise OSError(24, "Too many open files", path)

    monkeypatch.setattr(av, "open", refuse)
    with pytest.raises(SinkError) as caught:
        VideoSink(tmp_path / "x.mp4", fps=25, size=(64, 48))
    assert str(caught.value) == f"cannot write {tmp_path / 'x.mp4'}: Too many open files"


def test_planning_a_folder_asks_the_file_system_a_bounded_number_of_times_per_input(
        tmp_path, monkeypatch):
    """Each output was checked against every input (is it one of them, under any name?):
    a folder of 2,000 videos took 401 s to plan before its first frame (on a 2-core EPYC),
    ten times more for 20,000. The inputs are now looked up, not compared one by one: twice
    the inputs, about twice the file-system calls (it was four times)."""
    import os

    from streamfer.batch import plan_folder

    def calls(n: int) -> int:
        folder = tmp_path / f"src{n}"
        folder.mkdir()
        for i in range(n):
            (folder / f"v{i}.mp4").write_bytes(b"\0")
        count = [0]
        real_stat, real_lstat = os.stat, os.lstat

        def stat(*args, **kwargs):
            count[0] += 1
            return real_stat(*args, **kwargs)

        def lstat(*args, **kwargs):
            count[0] += 1
            return real_lstat(*args, **kwargs)

        with monkeypatch.context() as m:
            m.setattr(os, "stat", stat)
            m.setattr(os, "lstat", lstat)
            jobs = plan_folder(folder, tmp_path / f"out{n}", tmp_path / f"out{n}")
        assert len(jobs) == n
        return count[0]

    small, large = calls(60), calls(120)
    assert large < 2.5 * small, (small, large)


def test_an_output_that_is_an_input_under_another_name_is_still_refused(tmp_path):
    """The lookup keeps what the comparison caught: the same file through a link."""
    from streamfer.batch import plan_folder
    from streamfer.sinks import SinkError

    folder = tmp_path / "src"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.mp4").write_bytes(b"\0")
    (tmp_path / "out").symlink_to(folder / "a")  # out/x.mp4 is src/a/x.mp4
    with pytest.raises(SinkError, match="is the input"):
        plan_folder(folder / "a", tmp_path / "out", None)


def _written() -> int:
    """Bytes this process has handed to write() so far (Linux)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts writes with Linux's "
                    "/proc/self/io")
def test_recording_an_input_done_costs_the_same_for_the_last_as_for_the_first(tmp_path):
    """Each input that ended well rewrote the whole done-record: 25 ms and 430 kB for the
    2,000th input of a folder (quadratic in the inputs). Now one line of a journal each,
    folded into the record when the run ends; a journal left by a process killed outright
    (its last line torn) is read by the next run."""
    from streamfer.batch import DONE_FILE, FolderRun, read_done
    from streamfer.pipeline import Settings

    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(300):
        (folder / f"v{i:03}.mp4").write_bytes(b"\0")
    batch = FolderRun.plan(folder, None, tmp_path / "out", Settings())
    costs = []
    for job in batch.todo:
        job.table.parent.mkdir(exist_ok=True)
        job.table.write_text("frame\n")  # its output, as a run leaves it
        before = _written()
        batch.finished(job)
        costs.append(_written() - before)
    assert costs[-1] < 2 * costs[0], (costs[0], costs[-1])
    record = tmp_path / "out" / DONE_FILE
    assert set(read_done(record)) == {job.key for job in batch.jobs}  # from the journal
    with open(record.with_name(DONE_FILE + ".log"), "a") as f:
        f.write('{"v999.mp4": {"inp')  # killed mid-line
    (folder / "v300.mp4").write_bytes(b"\0")  # one more input
    again = FolderRun.plan(folder, None, tmp_path / "out", Settings())
    assert [job.key for job in again.todo] == ["v300.mp4"]  # the torn line left out
    again.todo[0].table.write_text("frame\n")
    again.finished(again.todo[0])  # its line not glued to the torn one
    again.close()
    assert not record.with_name(DONE_FILE + ".log").exists()
    assert set(json.loads(record.read_text())) == {job.key for job in again.jobs}


def test_a_folders_files_are_taken_as_a_file_manager_shows_them(tmp_path):
    """clip2 before clip10 (the order of characters put clip10 first), a before B (the
    order of characters put every capital first), a folder's files together: the order of
    the run, its summary and its joined CSV."""
    from streamfer.sources import list_media

    for name in ("clip10.mp4", "clip2.mp4", "clip1.jpg", "cam2/a.mp4", "cam10/a.mp4",
                 "Zoe.mp4", "anna.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"\0")
    found = [p.relative_to(tmp_path).as_posix() for p in list_media(tmp_path)]
    assert found == ["anna.mp4", "cam2/a.mp4", "cam10/a.mp4", "clip1.jpg", "clip2.mp4",
                     "clip10.mp4", "Zoe.mp4"], found


def test_an_input_claimed_by_another_run_is_passed_over_and_a_share_without_locks_is_not(
        tmp_path, monkeypatch):
    """A claim refused because the file system keeps no locks (NFS without its lock daemon:
    ENOLCK) was read as "another run has it", and every input was passed over. Now only a
    lock held elsewhere passes an input over; without locks the run does its inputs."""
    import errno
    import fcntl

    from streamfer.batch import FolderRun
    from streamfer.pipeline import Settings

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.mp4").write_bytes(b"\0")
    first, second = (FolderRun.plan(tmp_path / "src", None, tmp_path / "out", Settings())
                     for _ in range(2))
    job = first.todo[0]
    assert first.claim(job) and not second.claim(job)  # held by the first
    first.release(job)
    assert second.claim(job)
    second.close()

    def no_locks(*_):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert first.claim(job)


def test_an_input_still_being_written_is_done_again_by_the_next_run(tmp_path, face_bgr,
                                                                    detector_ready, caplog):
    """A file still being written (a recorder, a copy into the folder) as a folder run read
    it was recorded with its size and time when the run ended: the next run skipped it,
    its outputs holding only what was there when it was read. Now the input is recorded as
    it was when taken up, a warning says it changed, and the next run does it again."""
    import time

    from streamfer.batch import FolderRun
    from streamfer.pipeline import Pipeline, Settings

    folder, out = tmp_path / "src", tmp_path / "out"
    folder.mkdir()
    clip = write_video(folder / "a.mp4", [compose(face_bgr, (320, 240), 10 + i, 10, scale=0.6)
                                           for i in range(90)])

    def recorder_goes_on() -> None:  # once the run has taken the file up
        deadline = time.monotonic() + 120
        while not (out / ".a.mp4.part.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        with open(clip, "ab") as f:
            f.write(b"\0" * 4096)

    writer = threading.Thread(target=recorder_goes_on)
    writer.start()
    with Pipeline(Settings(progress=False)) as pipeline:
        results = pipeline.run_folder(folder, None, out)
    writer.join()
    assert [r.status for r in results] == ["ok"]
    assert "a.mp4: changed while it was read" in caplog.text
    again = FolderRun.plan(folder, None, out, Settings())
    assert [job.key for job in again.todo] == ["a.mp4"]


def test_a_folders_linked_folders_are_listed_once_each(tmp_path):
    """Footage kept elsewhere and linked into the folder (``footage/cam1 -> /mnt/disk2/cam1``)
    was passed over in silence (Python's rglob does not follow a linked folder). Now it is
    listed; a folder linked to from inside is listed once, under its own path, and a link
    back up (a loop) ends."""
    from streamfer.sources import list_media

    folder, elsewhere = tmp_path / "footage", tmp_path / "disk2" / "cam1"
    for name in ("b/x.mp4", "c/y.mp4"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\0")
    elsewhere.mkdir(parents=True)
    (elsewhere / "z.mp4").write_bytes(b"\0")
    (folder / "cam1").symlink_to(elsewhere)
    (folder / "b" / "to_c").symlink_to(folder / "c")  # met before c itself
    (folder / "c" / "loop").symlink_to(folder)
    found = [p.relative_to(folder).as_posix() for p in list_media(folder)]
    assert found == ["b/x.mp4", "c/y.mp4", "cam1/z.mp4"], found


def test_two_runs_into_one_output_folder_keep_each_others_inputs_done(tmp_path):
    """Two runs of parts of one folder into the same output folder at once (two terminals,
    two machines on a share): each rewrote the record from what it knew, the last to write
    losing the other's inputs (done again by the next run). Now both are kept."""
    from streamfer.batch import DONE_FILE, FolderRun
    from streamfer.pipeline import Settings

    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes(b"\0")
    first, second = (FolderRun.plan(folder, None, tmp_path / "out", Settings())
                     for _ in range(2))
    for run, job in ((first, first.todo[0]), (second, second.todo[1])):
        job.table.parent.mkdir(exist_ok=True)
        job.table.write_text("frame\n")
        run.finished(job)
    first.close()
    second.close()
    assert set(json.loads((tmp_path / "out" / DONE_FILE).read_text())) == {"a.mp4", "b.mp4"}
    assert FolderRun.plan(folder, None, tmp_path / "out", Settings()).todo == []


def test_a_done_record_the_disk_refuses_is_said_by_its_name(tmp_path):
    """A full disk as an input is recorded done said '[Errno 27] File too large' (or 28, no
    space) and nothing of which file; now the record's journal is named, in words, and the
    input, whose outputs are whole, is said to be done again by a rerun."""
    script = """
import resource, signal, sys
from pathlib import Path
from streamfer.batch import FolderRun
from streamfer.pipeline import Settings
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
run = FolderRun.plan(sys.argv[1], None, sys.argv[2], Settings())
Path(sys.argv[2]).mkdir()
resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
print(run.finished(run.todo[0]))
"""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.mp4").write_bytes(b"\0")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "src"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
    journal = tmp_path / "out" / ".streamfer-done.json.log"
    assert done.stderr.strip() == (f"a.mp4: done, but not recorded (cannot write {journal}: "
                                   "File too large): a rerun does it again"), done.stderr


def test_a_link_that_cannot_be_opened_says_why(tmp_path, monkeypatch):
    """'cannot open stream: rtsp://…' alone, whether the camera refused, the file was not on
    the server or the name is wrong; now FFmpeg's reason follows (a server of our own on the
    loopback, stopped after). A link where nothing comes (UDP) is said without being waited
    out a second time (FFmpeg asked again for its reason: 5 s more)."""
    import functools
    import http.server
    import socket

    from streamfer.sources import SourceError, open_source, reader

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]  # nothing listens once it is closed
    try:
        for url, why in ((f"rtsp://127.0.0.1:{closed}/cam", "(Connection refused)"),
                         (f"http://127.0.0.1:{server.server_port}/x.mp4", "404 Not Found")):
            with pytest.raises(SourceError) as caught:
                open_source(url)
            assert str(caught.value).startswith(f"cannot open stream: {url} (")
            assert why in str(caught.value), str(caught.value)
        with pytest.raises(SourceError) as caught:  # a way this FFmpeg does not read: it said
            open_source("srt://cam.local:9000?passphrase=s3cret")  # "Protocol not found"
        assert str(caught.value) == (
            "cannot open stream: srt://cam.local:9000?passphrase=**** (this FFmpeg, PyAV's, "
            "does not read srt://: relay it through an FFmpeg that does, ffmpeg -i "
            "'srt://cam.local:9000?passphrase=****' -c copy -f mpegts udp://127.0.0.1:5000, "
            "and give --source udp://127.0.0.1:5000)")
        asked = []
        monkeypatch.setattr(reader, "unreachable", lambda url: asked.append(url))
        with pytest.raises(SourceError) as caught:  # (with --reconnect, waited for: see
            open_source(f"udp://127.0.0.1:{closed}", reconnect=0)  # test_live)
        assert str(caught.value).endswith("(nothing came in 5 s)") and not asked, asked
    finally:
        server.shutdown()
        server.server_close()


class _GUI:
    """OpenCV's GUI calls stood in for, the keys pressed given (a process's GUI keeps the
    display it first opened, so one test alone opens a real window, below): what was
    shown, the titles set and the full-screen switches."""

    def __init__(self, monkeypatch, keys):
        self.keys, self.shown, self.titles, self.full = iter(keys), [], [], []
        monkeypatch.setenv("DISPLAY", ":0")
        for call in ("namedWindow", "resizeWindow", "destroyWindow"):
            monkeypatch.setattr(cv2, call, lambda *args: None)
        monkeypatch.setattr(cv2, "getWindowProperty", lambda *args: 1.0)
        monkeypatch.setattr(cv2, "waitKey", lambda ms: next(self.keys, -1))
        monkeypatch.setattr(cv2, "imshow", lambda title, image: self.shown.append(image))
        monkeypatch.setattr(cv2, "setWindowTitle", lambda w, title: self.titles.append(title))
        monkeypatch.setattr(cv2, "setWindowProperty",
                            lambda w, prop, value: self.full.append((prop, value)))


def test_m_flips_the_window_s_selfie_view(monkeypatch):
    """m, pressed while a window shows, turns its mirrored (selfie) view on and off."""
    from streamfer import sinks

    _GUI(monkeypatch, [ord("m"), -1, ord("M")])
    frame = np.zeros((240, 320, 3), np.uint8)
    with sinks.Window((320, 240), "selfie", mirrored=True) as window:
        seen = [window.show(frame) and window.mirrored for _ in range(3)]
    assert seen == [False, False, True]


def test_space_pauses_a_file_and_freezes_a_live_picture_and_f_fills_the_screen(monkeypatch):
    """Keys as a player's (the window knew q and Esc alone): space pauses a file's playback
    — the run waits until space again, its title saying so — and freezes a live source's
    picture while the run goes on (its CSV misses nothing); f toggles full screen."""
    from streamfer import sinks

    frames = [np.full((240, 320, 3), n, np.uint8) for n in range(4)]
    gui = _GUI(monkeypatch, [ord(" "), -1, ord("f"), -1, ord(" ")])
    with sinks.Window((320, 240), "file", paced=True, named="clip.mp4") as window:
        assert window.show(frames[0]) is True  # returns once space is pressed again
        assert not gui.keys.__length_hint__() and len(gui.shown) == 1
        assert gui.titles == ["file · clip.mp4", "file · clip.mp4 · paused (space goes on)",
                              "file · clip.mp4"]  # until its rate is known again
        assert gui.full == [(cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)]
    gui = _GUI(monkeypatch, [ord(" "), -1, ord(" "), ord("f")])
    with sinks.Window((320, 240), "live") as window:
        assert all(window.show(frame) for frame in frames)  # never waits
        assert [int(image[0, 0, 0]) for image in gui.shown] == [0, 3]  # 1, 2 frozen out
        assert gui.full == [(cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)]
    gui = _GUI(monkeypatch, [ord("q")])
    with sinks.Window((320, 240), "quit") as window:
        assert window.show(frames[0]) is False


@pytest.mark.usefixtures("detector_ready")
@pytest.mark.parametrize("selfie_view", [None, True])
def test_the_selfie_view_mirrors_the_window_alone(tmp_path, face_bgr, monkeypatch,
                                                   selfie_view):
    """--selfie-view (a webcam's default): the window shows each frame as a mirror does; a
    file's window by default, and the outputs always, as the frames are."""
    from streamfer import pipeline as module

    ramp = np.broadcast_to(np.linspace(0, 255, 640).astype(np.uint8)[None, :, None],
                           (60, 640, 3))  # the frames' bottom, dark to bright: below the face
    frames = [compose(face_bgr, (640, 480), 40 + 12 * i, 40, scale=0.8) for i in range(24)]
    for frame in frames:
        frame[420:] = ramp
    clip = write_video(tmp_path / "ramp.mp4", frames)

    shown = []

    class Recorder:  # the window, without a display: what it is given to show
        def __init__(self, size, paced=False, pixel_aspect=None, mirrored=False, named=None):
            self.mirrored = mirrored

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def show(self, image, time_s=0.0):
            shown.append(image)
            return True

    monkeypatch.setattr(module, "Window", Recorder)
    out = tmp_path / "a.mp4"
    with Pipeline(Settings(progress=False)) as pipeline:
        pipeline.run(str(clip), output=out, show=True, selfie_view=selfie_view)
    with open_source(clip) as source:
        frames = [f.image for f in source]
    with open_source(out) as written:
        video = [f.image for f in written]
    assert len(shown) == len(frames) == len(video) == 24
    strip = slice(420, 480)  # the ramp: below the face and its overlay
    for image, frame, kept in zip(shown, frames, video):
        assert np.array_equal(image[strip], cv2.flip(frame, 1)[strip] if selfie_view
                              else frame[strip])
        assert np.abs(kept[strip].astype(int) - frame[strip]).mean() < 6  # (x264's loss)


class _Camera:
    """A USB webcam as OpenCV's V4L2 backend sees it (no camera here): it opens at 640×480,
    offers 1280×720 too, at 30 fps alone; what it was asked for is kept."""

    MODES = {(640, 480), (1280, 720)}

    def __init__(self, index, *args):
        self.index, self.asked, self.mode, self.width = index, [], (640, 480), None

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.asked.append((prop, value))
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            self.width = int(value)
        elif prop == cv2.CAP_PROP_FRAME_HEIGHT and (self.width, int(value)) in self.MODES:
            self.mode = (self.width, int(value))
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: self.mode[0], cv2.CAP_PROP_FRAME_HEIGHT: self.mode[1],
                cv2.CAP_PROP_FPS: 30.0}.get(prop, 0.0)

    def release(self):
        pass


class _FlashingCamera(_Camera):
    """A webcam giving 25 frames a second as they come, grey, white on the frame of each
    whole second of ``clock`` (``time.monotonic() - zero``)."""

    zero = 0.0

    def __init__(self, *args):
        super().__init__(*args)
        self.shown = -1

    def read(self):
        frame = int((time.monotonic() - self.zero) * 25) + 1  # the next one, when it comes
        time.sleep(max(0.0, self.zero + frame / 25 - time.monotonic()))
        image = np.full((480, 640, 3), 255 if frame % 25 == 0 else 60, np.uint8)
        return True, image


def _heard(fifo: Path, zero: float, stop: threading.Event, header: bool = True) -> None:
    """What a microphone hears, written into ``fifo`` as it is heard (20 ms at a time): 48 kHz
    mono, silent but for a click of 10 ms at each whole second since ``zero`` (the camera's
    flashes); a WAV stream (FFmpeg's wav demuxer reads it as it comes), or (``header``
    False) the samples alone."""
    import struct

    rate, chunk = 48000, 960
    out = open(fifo, "wb")  # noqa: SIM115 (waits for the reader; closed below)
    try:
        if header:
            out.write(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt " + struct.pack(
                "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data"
                + struct.pack("<I", 0xFFFFFFFF))
        sample = int((time.monotonic() - zero) * rate)
        while not stop.is_set():
            time.sleep(max(0.0, zero + (sample + chunk) / rate - time.monotonic()))
            at = np.arange(sample, sample + chunk)
            pcm = np.where(at % rate < rate // 100, 30000, 0).astype("<i2")
            out.write(pcm.tobytes())
            out.flush()
            sample += chunk
    except BrokenPipeError:  # the run is over
        pass
    finally:
        try:
            out.close()
        except BrokenPipeError:
            pass


def _session(tmp_path, monkeypatch, microphone: str, fifo: Path, name: str,
             **heard) -> list[float]:
    """A webcam session of 4.5 s (:class:`_FlashingCamera`) recorded into ``name`` with the
    sound of ``microphone``, which hears what :func:`_heard` writes into ``fifo``: how long
    after each flash its click is heard (:func:`_flashes_and_clicks`)."""
    zero = time.monotonic()
    monkeypatch.setattr(_FlashingCamera, "zero", zero)
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: _FlashingCamera(*args))
    stop = threading.Event()
    writer = threading.Thread(target=_heard, args=(fifo, zero, stop), kwargs=heard,
                              daemon=True)
    writer.start()
    out = tmp_path / name
    try:
        with Pipeline(Settings(microphone=microphone, end=4.5, progress=False)) as run:
            run.run("0", output=str(out))
    finally:
        stop.set()
        writer.join(timeout=5)
    assert has_audio(out)
    return _flashes_and_clicks(out)


def _flashes_and_clicks(path: Path) -> list[float]:
    """How long after each white frame (but one in the first half second, whose click may
    come before the sound kept begins: the first frame's) its click sounds, in ``path``."""
    import av

    with av.open(str(path)) as container:
        flashes = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)
                   if frame.to_ndarray(format="gray").mean() > 128]
    with av.open(str(path)) as container:
        clicks, quiet = [], True
        for frame in container.decode(audio=0):
            loud = np.abs(frame.to_ndarray()).max(axis=0) > 0.1
            for k in np.flatnonzero(loud != np.concatenate([[not quiet], loud[:-1]])):
                if loud[k]:  # a click's onset
                    clicks.append(float(frame.pts * frame.time_base) + k / frame.sample_rate)
            quiet = not loud[-1]
    late = [min(clicks, key=lambda c: abs(c - f), default=float("inf")) - f
            for f in flashes if f >= 0.5]
    print("clicks after their flashes:", ", ".join(f"{d:.3f} s" for d in late))
    return late


@pytest.mark.parametrize("name", ["session.mp4", "live/session.m3u8"])
def test_a_webcams_microphone_is_kept_in_step_with_its_picture(tmp_path, monkeypatch, name,
                                                              detector_ready):
    """--microphone: a webcam's session recorded with its sound (OpenCV reads a camera's
    picture alone: the video was silent), in a file or sent as it is made (here an HLS
    playlist). A device's sound is timed by the clock the frames are, as each comes: a
    clap is heard on the frame it is seen on. (No camera or
    microphone here: stand-ins, a camera giving frames as they come, a flash each second,
    and a WAV stream through a named pipe, a click each second.)"""
    fifo = tmp_path / "mic.wav"
    os.mkfifo(fifo)
    late = _session(tmp_path, monkeypatch, f"wav:{fifo}", fifo, name)
    assert len(late) >= 3 and max(map(abs, late)) < 0.05, late


def test_a_desktops_default_microphone_is_heard_through_its_sound_server(
        tmp_path, monkeypatch, sound_server, detector_ready):
    """--microphone on a desktop: ALSA's default is its sound server's (PulseAudio's or
    PipeWire's plugin), which PyAV's own ALSA could not find ("Unknown PCM default": it
    looked for its settings and plugins where its build put them). A PulseAudio server
    whose microphone hears a click each second: each is heard on the frame of its
    flash."""
    late = _session(tmp_path, monkeypatch, "default", sound_server, "session.mp4",
                    header=False)
    assert len(late) >= 3 and max(map(abs, late)) < 0.05, late


def test_a_microphone_that_cannot_be_opened_says_why_in_one_line(capfd):
    """PyAV's own ALSA looked for its settings where its build put them, and knew no device
    by name on any machine ("Unknown PCM default"); its lines went to standard error. It
    reads the system's, and a device it cannot open is one line in ALSA's words."""
    from streamfer.sources.live import LiveSound
    from streamfer.sources.microphone import Microphone

    if sys.platform != "linux":
        pytest.skip("ALSA is Linux's")
    sound = LiveSound(live=True)
    try:
        with pytest.raises(SourceError) as failed:
            Microphone("hw:29", sound)
    finally:
        sound.close()
    said = str(failed.value)
    assert said.startswith("cannot open microphone hw:29 (alsa: ") and "\n" not in said
    assert "Cannot get card index for 29" in said or "No such" in said, said
    assert "ALSA lib" not in capfd.readouterr().err


def test_a_webcam_is_asked_for_the_size_and_rate_given(monkeypatch, caplog):
    """--camera-size / --camera-fps: OpenCV opens a webcam at 640×480 (most cameras), where a
    1080p camera's user wanted its picture; nothing could ask for more. The camera is now
    asked (MJPEG first: a USB camera's larger sizes at full rate), and where it gives
    another mode that is said once, with the command that lists the modes it offers; not
    asked, the camera is left as it was."""
    cameras = []
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: cameras.append(_Camera(*args))
                        or cameras[-1])
    mjpeg = (cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
    with open_source("0", camera=((1280, 720), None)) as source:
        assert source.size == (1280, 720) and mjpeg in cameras[-1].asked
    with open_source("0") as source:
        assert source.size == (640, 480) and cameras[-1].asked == [
            (cv2.CAP_PROP_ORIENTATION_AUTO, 1)]  # (what every input is asked)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    with open_source("0", camera=((1920, 1080), 60.0)) as source:
        assert source.size == (640, 480)
        assert (cv2.CAP_PROP_FPS, 60.0) in cameras[-1].asked
    [said] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == ("camera 0 gives 640×480 at 30 fps, not the 1920×1080 at 60 fps asked for "
                    "(the modes it offers: v4l2-ctl --list-formats-ext -d /dev/video0)")


def test_a_webcam_is_opened_by_its_device_path_as_by_its_index(monkeypatch, tmp_path):
    """Linux names a camera /dev/video2, and names it stably by what it is,
    /dev/v4l/by-id/usb-…-video-index0 (the same camera after a reboot or a replug, where the
    index may change: a lab's two cameras): either given as --source was 'not a file' (a
    device is no file), and a missing one 'no such file'. Now it is that camera, opened by
    its index, a webcam in all (live, its mode asked for as an index's)."""
    from streamfer.sources import camera_index, is_webcam

    cameras = []
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: cameras.append(_Camera(*args))
                        or cameras[-1])
    by_id = tmp_path / "by-id" / "usb-Logitech_C920_ABC123-video-index0"
    by_id.parent.mkdir()
    by_id.symlink_to("/dev/video2")  # as udev links it (the node need not be there)
    for spec, index in (("/dev/video2", 2), (str(by_id), 2), ("0", 0)):
        assert camera_index(spec) == index and is_webcam(spec)
        with open_source(spec, camera=((1280, 720), None)) as source:
            assert source.live and source.size == (1280, 720)
        assert cameras[-1].index == index
    for spec in ("clip.mp4", str(tmp_path), "rtsp://cam/video0", "/dev/null", "-"):
        assert camera_index(spec) is None and not is_webcam(spec)
    assert is_webcam("/dev/v4l/by-id/usb-unplugged-video-index0")  # said as a camera's


def test_a_window_shows_non_square_pixels_as_a_player_does(display, monkeypatch):
    """A widescreen DVD's 720×576 frames are shown 1024×576, as players show them (they were
    shown squeezed, at 720×576: faces 70 % of their width)."""
    from streamfer.sinks import Window

    monkeypatch.setenv("DISPLAY", display)
    frame = np.zeros((576, 720, 3), np.uint8)
    with Window((720, 576), "dvd", pixel_aspect=Fraction(64, 45)) as window:
        window.show(frame)
        cv2.waitKey(100)
        assert cv2.getWindowImageRect("dvd")[2:] == (1024, 576)
    with Window((720, 576), "square") as window:
        window.show(frame)
        cv2.waitKey(100)
        assert cv2.getWindowImageRect("square")[2:] == (720, 576)


def test_a_live_links_sound_takes_the_time_of_the_frame_of_its_moment(tmp_path):
    """A live link's sound goes with the frame of its moment, whose time is our clock's: a
    picture held (a stall) or hurried (a burst) takes its sound with it. A decoder gives a
    frame some packets after its own, and the sound that came meanwhile took the time of
    the last frame given: at a drop, where the frames still in the decoder came at once, a
    click came 0.09 s after its flash. Here 0.6 s of sound comes before the frames that
    time it, and the picture stalls 0.2 s after 0.48 s."""
    import av

    from streamfer.sources.live import LiveSound

    tone = tmp_path / "tone.mka"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000:duration=1", "-c:a", "aac",
                    str(tone)], check=True)
    sound = LiveSound(live=True)
    with av.open(str(tone)) as container:
        track = container.streams.audio[0]
        sound.connected(track)
        for packet in container.demux(track):
            if packet.size and packet.pts is not None and packet.pts * packet.time_base <= 0.6:
                sound.packet(packet, float(packet.pts * packet.time_base))
        for i in range(16):  # frames every 0.04 s; from 0.52 s, 0.2 s late
            pts = i * 0.04
            sound.anchor(pts, pts + (0.2 if pts > 0.5 else 0.0))
        heard = []
        while (got := sound.heard()) is not None:
            heard.append(got[0])
    sound.close()
    assert heard[0] < 0.03 and heard == sorted(heard)
    steps = np.diff(heard)
    assert steps.max() > 0.19  # the stall, kept in the sound
    assert max(heard) > 0.75  # its last moment with the frame at 0.60 s, given at 0.80 s
