"""Benchmark on inputs it makes itself: classifier throughput per batch size, and end-to-end
fps on 640×480 clips with one and four real faces (scikit-image's public-domain ``astronaut``),
and optionally on a 3840×2160 one-face clip.

Example:
    >>> from streamfer.tools.bench import classifier_rows
    >>> rows = classifier_rows(Classifier(), batches=(1, 32))      # doctest: +SKIP
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clip(path: Path, faces: int, frames: int, size=(640, 480), fps: float = 30.0) -> Path:
    """A clip with ``faces`` copies of a real face drifting across a plain background."""
    import cv2
    from skimage import data

    from streamfer.sinks import VideoSink

    face = cv2.cvtColor(data.astronaut()[0:300, 90:390], cv2.COLOR_RGB2BGR)
    scale = (1.0 if faces == 1 else 0.75) * size[1] / 480  # framed as at 640×480
    face = cv2.resize(face, None, fx=scale, fy=scale)
    fh, fw = face.shape[:2]
    # four faces: a 2×2 grid, each whole in the frame (and found by the detector) all along
    slots = [(60, 20), (size[0] - fw - 60, 20), (60, size[1] - fh - 20),
             (size[0] - fw - 60, size[1] - fh - 20)][:faces] if faces > 1 else \
        [(round(150 * size[1] / 480), round(80 * size[1] / 480))]
    images = []
    for i in range(frames):
        canvas = np.full((size[1], size[0], 3), 80, np.uint8)
        dx = int(8 * size[1] / 480 * np.sin(i / 10))
        for x, y in slots:
            x = int(np.clip(x + dx, 0, size[0] - fw))
            canvas[y:y + fh, x:x + fw] = face
        images.append(canvas)
    with VideoSink(path, fps, size) as video:
        for image in images:
            video.write(image)
    return path


def classifier_rows(classifier, batches=(1, 16, 32), repeats: int = 5,
                    gmac: float | None = None, peak: float | None = None) -> list[dict]:
    """Faces/s (median of ``repeats`` timed runs) and per-batch latency for each batch size,
    each face scored as the pipeline scores a face in a video: one view a frame, every other
    face mirrored (one inference a face; without mirror averaging, the face as it is). With
    ``gmac`` (a face's inference) and ``peak`` (the CPU's int8 GMAC/s): the share of the peak
    that is, in %."""
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        crops = rng.integers(0, 255, (batch, 100, 100, 3), dtype=np.uint8)
        mirrored = np.arange(batch) % 2 == 1 if classifier.flip_average else None
        classifier.predict(crops, mirrored)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            classifier.predict(crops, mirrored)
            times.append(time.perf_counter() - t)
        row = {"what": f"classifier, batch {batch}", "batch": batch,
               "faces_per_s": batch / statistics.median(times),
               "p50_ms": 1000 * float(np.percentile(times, 50)),
               "p95_ms": 1000 * float(np.percentile(times, 95))}
        if gmac and peak:
            row["of_peak"] = 100 * row["faces_per_s"] * gmac / peak
        rows.append(row)
    return rows


def gmac_per_inference(model_json: Path) -> float:
    """Multiply-accumulates of one inference of the model (its convolutions and dense
    layers, from its ONNX graph's shapes), in GMAC."""
    from onnx import shape_inference

    from streamfer.runtimes.build import model_graph

    graph = model_graph(Path(model_json))
    for dim in graph.graph.input[0].type.tensor_type.shape.dim[:1]:
        dim.dim_value = 1
    inferred = shape_inference.infer_shapes(graph).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.value_info, *inferred.output)}
    weights = {i.name: list(i.dims) for i in inferred.initializer}
    macs = 0
    for node in inferred.node:
        if node.op_type == "Conv" and node.output[0] in shapes:
            macs += np.prod(shapes[node.output[0]][1:]) * np.prod(weights[node.input[1]][1:])
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in weights:
            macs += np.prod(weights[node.input[1]])
    return float(macs) / 1e9


def int8_peak_gmac(engine: str, channels: int = 256, side: int = 16, layers: int = 8,
                   batch: int = 32, repeats: int = 5) -> float:
    """The int8 GMAC/s ``engine`` reaches on this CPU on the most favourable work there is:
    a stack of 3×3 convolutions (``channels`` in and out, quantized as the model is:
    QDQ, per-channel int8 weights, uint8 activations), the roof a model's figure is held
    against."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from streamfer.runtimes.build import quiet_quantization
    from streamfer.runtimes.choose import RUNNERS

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        kernel = (rng.standard_normal((channels, channels, 3, 3)) * 0.05).astype(np.float32)
        inits.append(numpy_helper.from_array(kernel, f"w{i}"))
        nodes += [helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev = f"r{i}"
    shape = ["n", channels, side, side]
    graph = helper.make_graph(nodes, "peak", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            prev, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = rng.random((batch, channels, side, side), dtype=np.float32)

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x[:4]}])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, f"{tmp}/fp32.onnx")
        with quiet_quantization():
            quantize_static(f"{tmp}/fp32.onnx", f"{tmp}/int8.onnx", Batches(),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        run = RUNNERS[engine](Path(f"{tmp}/int8.onnx"))
        for _ in range(2):
            run(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t)
    macs = layers * channels * channels * 9 * side * side * batch
    return macs / statistics.median(times) / 1e9


def work_size_models(folder: Path, sizes, faces: int = 64,
                     architecture: Path | None = None) -> dict[int, Path]:
    """One model file per working size in ``folder``: the architecture of the model file
    ``architecture`` (default: the default architecture), untrained (a classifier's speed
    does not depend on its weights), with int8 ranges measured on ``faces`` random crops so
    that every backend runs it as it runs the shipped one."""
    from dataclasses import replace

    import keras

    from streamfer.model import ModelConfig, build_model, read_config, save_weights
    from streamfer.runtimes.build import measure_int8_ranges
    from streamfer.runtimes.runners import installed

    crops = np.random.default_rng(0).integers(0, 255, (faces, 100, 100, 3), dtype=np.uint8)
    base = read_config(architecture, check=False)[0] if architecture else ModelConfig()
    models = {}
    for size in sizes:
        config = replace(base, work_size=size, backbone_weights=None)  # no download
        keras.utils.set_random_seed(size)  # the same weights each time: converted once
        model = build_model(config, trainable_backbones=False)
        models[size] = save_weights(model, config, Path(folder) / f"work{size}.json")
        if installed("onnx"):
            measure_int8_ranges(model, models[size], crops)
    return models


def pipeline_rows(pipeline, clips: dict[int, Path], repeats: int) -> list[dict]:
    """End-to-end fps (median of ``repeats``) on the 640×480 30 fps clips: 1 and 4 faces with
    the annotated video and CSV written, and 1 face headless (CSV only, as batch jobs run);
    6 faces of 40-150 px in 1920×1080 (a wide shot: most need the detector's tiles) with and
    without the video; 1 face at 3840×2160 with video and CSV where ``clips`` has one.
    Each row says how many faces per analysed frame the run processed; a row whose detector
    missed more than 2 % of the faces the clip holds gets no fps (it would not measure what
    it says)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key, faces, video, what in ((1, 1, True, "video+CSV, 1 face"),
                                        (4, 4, True, "video+CSV, 4 faces"),
                                        (1, 1, False, "CSV only, 1 face"),
                                        ("crowd", 6, True, "1080p video+CSV, 6 faces 40-150 px"),
                                        ("crowd", 6, False, "1080p CSV only, 6 faces 40-150 px"),
                                        ("4k", 1, True, "4K video+CSV, 1 face")):
            if key not in clips:
                continue
            fps, per_frame = [], []
            for r in range(repeats):
                out = Path(tmp) / f"out{key}_{r}.mp4" if video else None
                stats = pipeline.run(str(clips[key]), output=out, csv_path=Path(tmp) / "x.csv")
                fps.append(stats.fps)
                per_frame.append(stats.faces / max(1, stats.processed))
            row = {"what": what, "batch": faces, "faces_per_frame": statistics.median(per_frame)}
            if row["faces_per_frame"] >= 0.98 * faces:  # the wide shot: found after a sweep
                row.update(fps=statistics.median(fps), x_realtime=statistics.median(fps) / 30)
            else:
                row["what"] += " (detector missed faces: not measured)"
            rows.append(row)
    return rows


def make_crowd_clip(path: Path, frames: int, sides=(40, 56, 72, 90, 120, 150)) -> Path:
    """A 1920×1080 30 fps clip: the astronaut's face (and its mirror image, in turn) at each
    of ``sides`` px, walking over scikit-image's rocket photo (no face)."""
    import cv2
    from skimage import data

    from streamfer.detect import FaceDetector
    from streamfer.frame import Frame
    from streamfer.tools.footage import Crowd, face_patch

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    with FaceDetector(tiles=0) as detector:
        box = detector.detect(Frame("astronaut", 0, 0.0, photo)).faces[0].box
    mirror = cv2.flip(photo, 1)
    patches = [face_patch(photo, box),
               face_patch(mirror, (photo.shape[1] - box[0] - box[2], *box[1:]))]
    rocket = cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR)
    Crowd(patches, [rocket], (1920, 1080), list(sides), frames=frames).write(path)
    return path


def make_clips(folder: Path, frames: int, large: bool = False) -> dict:
    clips: dict = {faces: make_clip(Path(folder) / f"faces{faces}.mp4", faces, frames)
                   for faces in (1, 4)}
    clips["crowd"] = make_crowd_clip(Path(folder) / "crowd_1080p.mp4", frames)
    if large:
        clips["4k"] = make_clip(Path(folder) / "faces1_4k.mp4", 1, frames, size=(3840, 2160))
    return clips


# Runs in the interpreter given to ``streamfer bench --fer-python`` (a venv with PyPI ``fer``):
# its default setup (OpenCV Haar faces, its own mini-Xception), every frame analysed, no video.
FER_SCRIPT = """
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from fer.classes import Video
from fer.fer import FER
detector = FER(mtcnn=False)
video = Video(sys.argv[1], outdir=sys.argv[2])
start = time.perf_counter()
data = video.analyze(detector, display=False, save_frames=False, save_video=False,
                     annotate_frames=False, zip_images=False)
seconds = time.perf_counter() - start
print(json.dumps({"frames": len(data), "seconds": seconds}))
"""


def fer_row(python: str, clip: Path, repeats: int) -> dict:
    """Frames/s of the ``fer`` package's video analysis on ``clip`` (median of ``repeats``)."""
    import json
    import subprocess

    fps = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            # cwd: fer writes its own data.csv into the working directory
            done = subprocess.run([python, "-c", FER_SCRIPT, str(clip), tmp], text=True,
                                  capture_output=True, check=False, cwd=tmp)
            if done.returncode:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"fer run failed with {python}: {tail}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            fps.append(result["frames"] / result["seconds"])
    return {"backend": "fer (PyPI)", "what": "CSV only, 1 face", "batch": 1,
            "fps": statistics.median(fps), "x_realtime": statistics.median(fps) / 30}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def accuracy(classifier, data: str, split: str) -> dict:
    """Samples-F1 and Hamming loss of ``classifier`` at its thresholds on a labelled split."""
    from streamfer.training.data import load_dataset
    from streamfer.training.evaluate import compute_metrics, predict_dataset

    dataset = load_dataset(data, split)
    m = compute_metrics(dataset.targets, predict_dataset(classifier, dataset),
                        classifier.thresholds, classifier.labels)
    return {"samples_f1": m["samples_f1"], "hamming_loss": m["hamming_loss"]}


def mirror_agreement(pipeline, clip: Path, folder: Path) -> dict:
    """What scoring one view a frame (as it is, then mirrored; the smoother averages them)
    changes against scoring both views every frame, on one clip: the share of CSV rows
    (frame, face) whose shown labels are the same, the mean and largest difference of the
    smoothed scores, and each run's fps."""
    import csv

    runs = {}
    for mirror in ("average", "alternate"):
        pipeline.settings.mirror = mirror
        table = Path(folder) / f"{Path(clip).name}.{mirror}.csv"
        stats = pipeline.run(str(clip), csv_path=table)
        with open(table, newline="") as f:
            rows = {(r["frame"], r["face_id"]): r for r in csv.DictReader(f)}
        runs[mirror] = (rows, stats.fps)
    pipeline.settings.mirror = "auto"
    (both, both_fps), (one, one_fps) = runs["average"], runs["alternate"]
    keys = sorted(set(both) & set(one))
    smooth = [c for c in next(iter(both.values()), {}) if c.startswith("smooth_")]
    diff = np.array([[abs(float(both[k][c]) - float(one[k][c])) for c in smooth]
                     for k in keys]).reshape(-1, len(smooth))
    return {"what": "mirror: one view a frame vs both", "clip": Path(clip).name,
            "rows": len(keys), "rows_only_one_way": len(set(both) ^ set(one)),
            "same_labels": float(np.mean([both[k]["labels"] == one[k]["labels"]
                                          for k in keys])) if keys else None,
            "mean_smooth_diff": float(diff.mean()) if keys else None,
            "max_smooth_diff": float(diff.max()) if keys else None,
            "fps_both": both_fps, "fps_one_view": one_fps}


def hour_csv(path: Path, ids: int = 100, seconds: int = 3600, fps: float = 30.0,
             seed: int = 0) -> Path:
    """A frame CSV as ``streamfer run --csv`` writes it for an hour of footage with ``ids``
    face ids, each on screen for one random stretch (a few to a few hundred seconds; about
    three faces a frame), with smoothly wandering scores: the report's benchmark input."""
    import csv

    from streamfer.labels import EMOTIONS
    from streamfer.sinks import CSV_COLUMNS

    rng = np.random.default_rng(seed)
    spans = []
    for face_id in range(1, ids + 1):
        length = int(rng.uniform(2, 220) * fps)
        start = int(rng.integers(0, int(seconds * fps) - length))
        spans.append((face_id, start, start + length))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for face_id, start, end in spans:
            n = end - start
            walk = np.clip(0.3 + np.cumsum(rng.normal(0, 0.02, (n, len(EMOTIONS))), 0), 0, 1)
            for i in range(n):
                frame = start + i
                shown = ";".join(e for e, s in zip(EMOTIONS, walk[i]) if s >= 0.5)
                scores = [f"{s:.4f}" for s in walk[i]]
                writer.writerow(["hour.mp4", frame, f"{frame / fps:.4f}", face_id, 100, 100, 80,
                                 80, "0.900", *scores, *scores, shown, 1])
    return path


def report_row(folder: Path, ids: int = 100) -> dict:
    """The report of an hour at 30 fps with ``ids`` face ids: seconds and peak memory of
    ``streamfer report`` (its own process) on :func:`hour_csv`'s CSV."""
    import subprocess
    import sys

    table = hour_csv(Path(folder) / "hour.csv", ids)
    rows = sum(1 for _ in open(table)) - 1
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "streamfer.cli", "report", str(table), "-o",
                           str(Path(folder) / "hour.html"), "--json",
                           str(Path(folder) / "hour.json")], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"report failed: {done.stderr.strip().splitlines()[-1:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"what": f"report of an hour at 30 fps, {ids} face ids", "rows": rows,
            "seconds": seconds, "peak_rss_mb": rss,
            "page_mb": (Path(folder) / "hour.html").stat().st_size / 1e6}
