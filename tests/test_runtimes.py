"""The engines: each int8 engine scores as Keras does, ``auto`` takes the fastest measured here
and says why in one line, the GPU path is chosen or refused in one line, and a video's faces
are scored one view a frame (as they are, then mirrored) where a photo's are averaged."""

import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import DEFAULT_MODEL, ROOT

from streamfer.classify import Classifier
from streamfer.labels import EMOTIONS
from streamfer.runtimes import choose, runners
from streamfer.runtimes.runners import EngineError


@pytest.fixture(scope="module")
def crops(face_bgr):
    crop = cv2.cvtColor(cv2.resize(face_bgr, (100, 100)), cv2.COLOR_BGR2RGB)
    rng = np.random.default_rng(1)
    return np.stack([np.roll(crop, int(rng.integers(-8, 9)), axis=1) for _ in range(6)])


@pytest.mark.skipif(not runners.installed("openvino"), reason="OpenVINO is not installed")
def test_openvino_runs_the_onnx_engines_int8_file_with_its_scores(crops):
    """Both int8 engines run the same file: their scores agree within a few of the output's
    int8 steps (1/255; the engines' kernels round differently), and batch 1 agrees with
    larger batches. (Against Keras on real faces: test_fast_backends_agree_with_keras.)"""
    ov = Classifier(DEFAULT_MODEL, backend="openvino", flip_average=False)
    ort = Classifier(DEFAULT_MODEL, backend="onnx", flip_average=False)
    assert ov.backend == "openvino"
    a, b = ov.predict(crops), ort.predict(crops)
    assert np.abs(a - b).mean() < 0.01 and np.abs(a - b).max() < 0.05
    np.testing.assert_allclose(ov.predict(crops[:1]), a[:1], atol=1e-4)


def test_auto_takes_the_fastest_engine_measured_and_says_why(tmp_path, monkeypatch):
    """The engines are measured once per model file and CPU, on the batches a run makes; the
    fastest over them is taken (here ONNX Runtime wins at batch 8 and loses at 32, as on a
    Zen 5 EPYC, where batch 8 alone took the slower engine), the record kept, and the reason
    is one line naming the CPU and what was measured."""
    speeds = {"onnx": {8: 280.0, 32: 276.0}, "openvino": {8: 273.0, 32: 364.0}}
    made = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def __call__(self, x):
            return np.zeros((len(x), 6), np.float32)

    def make(engine):
        return lambda path, threads: made.append(engine) or Fake(engine)

    monkeypatch.setattr(choose, "RUNNERS", {e: make(e) for e in speeds})
    monkeypatch.setattr(choose, "installed", lambda e: True)
    monkeypatch.setattr(choose, "measure", lambda run, batch, seconds: speeds[run.name][batch])
    model = tmp_path / "m-int8.onnx"
    model.write_bytes(b"x")
    first = choose.fastest(model)
    assert first.engine == "openvino" and sorted(made) == ["onnx", "openvino"]
    assert "\n" not in first.why and "openvino 341, onnx 277" in first.why
    assert choose.cpu_name().split(" (")[0] in first.why
    made.clear()
    speeds["onnx"] = {8: 999.0, 32: 999.0}  # remembered: not measured again, only the choice built
    again = choose.fastest(model)
    assert again.engine == "openvino" and made == ["openvino"] and again.why == first.why


def test_the_default_backend_is_an_int8_engine_and_explained():
    classifier = Classifier(DEFAULT_MODEL, backend="auto")
    assert classifier.backend in runners.INT8_ENGINES and classifier.device == "cpu"
    assert classifier.why.startswith(classifier.backend + ":") and "\n" not in classifier.why


def test_cuda_is_refused_in_one_line_where_there_is_no_gpu(monkeypatch):
    monkeypatch.setattr("streamfer.classify.cuda_available", lambda: False)
    with pytest.raises(EngineError, match="--device cuda: ONNX Runtime has no CUDA GPU here"):
        Classifier(DEFAULT_MODEL, backend="auto", device="cuda")
    with pytest.raises(EngineError, match="not tflite"):
        Classifier(DEFAULT_MODEL, backend="tflite", device="cuda")
    assert Classifier(DEFAULT_MODEL, backend="onnx", device="auto").device == "cpu"


def test_a_cuda_gpu_is_used_by_default_where_there_is_one(monkeypatch):
    """``--device auto`` with a GPU runs ONNX Runtime's CUDA provider on the fp32 file (the
    session is faked here: this machine has no GPU)."""
    sessions = []

    class FakeRunner:
        def __init__(self, path, threads=None, device="cpu"):
            sessions.append((path.name, device))

    monkeypatch.setattr("streamfer.classify.cuda_available", lambda: True)
    monkeypatch.setattr("streamfer.classify.ONNXRunner", FakeRunner)
    classifier = Classifier(DEFAULT_MODEL, backend="auto", device="auto")
    assert classifier.device == "cuda" and classifier.backend == "onnx"
    assert "CUDA" in classifier.why
    assert sessions == [(sessions[0][0], "cuda")] and sessions[0][0].endswith("-fp32.onnx")


def test_one_view_a_frame_scores_each_crop_once_mirrored_where_asked(crops):
    averaged = Classifier(DEFAULT_MODEL, backend="onnx")
    one_way = Classifier(DEFAULT_MODEL, backend="onnx", flip_average=False)
    mirrored = np.arange(len(crops)) % 2 == 1
    views = averaged.predict(crops, mirrored)
    np.testing.assert_allclose(views[~mirrored], one_way.predict(crops[~mirrored]), atol=1e-5)
    np.testing.assert_allclose(views[mirrored], one_way.predict(crops[mirrored][:, :, ::-1]),
                               atol=1e-5)
    # the two views' mean is the mirror-averaged score
    both = (averaged.predict(crops, np.zeros(6, bool)) + averaged.predict(crops, np.ones(6, bool)))
    np.testing.assert_allclose(both / 2, averaged.predict(crops), atol=1e-5)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.usefixtures("detector_ready")
def test_a_video_alternates_the_views_and_a_photo_averages_them(tmp_path, face_clip, face_bgr):
    """In a video each face is scored as it is on one analysed frame and mirrored on the
    next (``mirror="auto"``); ``average`` scores both every frame; a photo averages."""
    from streamfer.pipeline import Pipeline, Settings
    from streamfer.sources import open_source

    one_way = Classifier(DEFAULT_MODEL, backend="onnx", flip_average=False)
    with open_source(face_clip) as source:
        from streamfer.detect import FaceDetector

        with FaceDetector() as detector:
            crops = [detector.detect(frame).faces[0].crop for frame in source]
    crops = np.stack(crops)
    plain, flipped = one_way.predict(crops), one_way.predict(crops[:, :, ::-1])
    raw = [f"raw_{e.lower()}" for e in one_way.labels]
    for mirror, expect in (("auto", [plain[i] if i % 2 == 0 else flipped[i]
                                     for i in range(len(crops))]),
                           ("average", (plain + flipped) / 2)):
        with Pipeline(Settings(backend="onnx", mirror=mirror, progress=False)) as pipeline:
            pipeline.run(str(face_clip), csv_path=tmp_path / f"{mirror}.csv")
        got = np.array([[float(r[c]) for c in raw] for r in _rows(tmp_path / f"{mirror}.csv")])
        np.testing.assert_allclose(got, np.array(expect), atol=2e-3)
    cv2.imwrite(str(tmp_path / "face.png"), face_bgr)
    with Pipeline(Settings(backend="onnx", progress=False)) as pipeline:
        pipeline.run(str(tmp_path / "face.png"), csv_path=tmp_path / "photo.csv")
        crop = pipeline.detector.detect(next(iter(open_source(str(tmp_path / "face.png"))))) \
            .faces[0].crop
    row = _rows(tmp_path / "photo.csv")[0]
    np.testing.assert_allclose([float(row[c]) for c in raw],
                               one_way.predict(np.stack([crop, crop[:, ::-1]])).mean(0),
                               atol=2e-3)


def test_the_bench_marks_the_defaults_rows_and_says_why(detector_ready):
    from click.testing import CliRunner

    from streamfer.cli import main

    result = CliRunner().invoke(main, ["bench", "--repeats", "1", "--frames", "4", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    rows, summary = lines[:-1], lines[-1]
    marked = {r["backend"] for r in rows if r.get("default")}
    assert marked == {summary["default"]} and summary["default"] in runners.INT8_ENGINES
    assert summary["why"].startswith(summary["default"] + ":")
    assert summary["cpu"] and summary["gmac_per_inference"] > 1
    assert summary["int8_peak_gmac_per_s"] > 0
    assert all(0 < r["of_peak"] < 150 for r in rows if "of_peak" in r)
    assert {r["backend"] for r in rows} >= {"keras", "tflite", "onnx"}


@pytest.mark.skipif(not runners.installed("openvino"), reason="OpenVINO is not installed")
@pytest.mark.usefixtures("detector_ready")
def test_a_run_on_openvino_leaves_no_telemetry_in_the_users_home(tmp_path, media):
    """Importing OpenVINO set up its telemetry: a client id and a usage count under
    ~/intel (and two warnings where the home could not be written)."""
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "-s",
                           str(media / "pyfeat_single_face_smile.jpg"), "--backend", "openvino",
                           "--csv", str(tmp_path / "faces.csv"), "-q"],
                          capture_output=True, text=True, timeout=300,
                          env={**{k: v for k, v in os.environ.items() if k != "CI"},
                               "HOME": str(home)})  # CI=true: the telemetry's own opt-out
    assert done.returncode == 0, done.stderr
    assert "(openvino)" in done.stderr  # it ran on OpenVINO ...
    assert not (home / "intel").exists()  # ... and left no telemetry behind (other
    # libraries keep their caches in ~/.cache, ~/.config, ~/.keras, as is their right)


def test_a_threshold_outside_the_scores_range_is_refused_from_python_too():
    """Settings(thresholds=2) reached the classifier as it was: no face was ever labelled."""
    classifier = Classifier(DEFAULT_MODEL, backend="onnx")
    assert classifier.thresholds_with({"Anger": 0.3})[EMOTIONS.index("Anger")] == 0.3
    for bad in (2, -0.1, float("nan"), {"Anger": 1.5}):
        with pytest.raises(ValueError, match="a threshold is a score from 0 to 1"):
            classifier.thresholds_with(bad)
