"""Benchmark on inputs it makes itself: classifier throughput per batch size, and end-to-end
fps on 640×480 clips with one and four real faces (scikit-image's public-domain ``astronaut``).

Example:
    >>> from streamfer.bench import classifier_rows
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
    scale = 1.0 if faces == 1 else 0.75
    face = cv2.resize(face, None, fx=scale, fy=scale)
    fh, fw = face.shape[:2]
    slots = [(20, 20), (size[0] - fw - 20, 20), (20, size[1] - fh - 5),
             (size[0] - fw - 20, size[1] - fh - 5)][:faces] if faces > 1 else [(150, 80)]
    images = []
    for i in range(frames):
        canvas = np.full((size[1], size[0], 3), 80, np.uint8)
        dx = int(8 * np.sin(i / 10))
        for x, y in slots:
            x = int(np.clip(x + dx, 0, size[0] - fw))
            canvas[y:y + fh, x:x + fw] = face
        images.append(canvas)
    with VideoSink(path, fps, size) as video:
        for image in images:
            video.write(image)
    return path


def classifier_rows(classifier, batches=(1, 16, 32), repeats: int = 5) -> list[dict]:
    """Faces/s (median of ``repeats`` timed runs) and per-batch latency for each batch size."""
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        crops = rng.integers(0, 255, (batch, 100, 100, 3), dtype=np.uint8)
        classifier.predict(crops)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            classifier.predict(crops)
            times.append(time.perf_counter() - t)
        rows.append({"what": f"classifier batch {batch}", "batch": batch,
                     "faces_per_s": batch / statistics.median(times),
                     "p50_ms": 1000 * float(np.percentile(times, 50)),
                     "p95_ms": 1000 * float(np.percentile(times, 95))})
    return rows


def pipeline_rows(pipeline, frames: int, repeats: int, write_video: bool = True) -> list[dict]:
    """End-to-end fps (median of ``repeats``) on 640×480 30 fps clips, 1 and 4 faces."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for faces in (1, 4):
            clip = make_clip(Path(tmp) / f"faces{faces}.mp4", faces, frames)
            fps = []
            for r in range(repeats):
                out = Path(tmp) / f"out{faces}_{r}.mp4" if write_video else None
                stats = pipeline.run(str(clip), output=out, csv_path=Path(tmp) / "x.csv")
                fps.append(stats.fps)
            rows.append({"what": f"end to end, {faces} face{'s' * (faces > 1)}", "batch": faces,
                         "fps": statistics.median(fps), "x_realtime": statistics.median(fps) / 30})
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def accuracy(classifier, data: str, split: str) -> dict:
    """Samples-F1 and Hamming loss of ``classifier`` at its thresholds on a labelled split."""
    from streamfer.data import load_dataset
    from streamfer.evaluate import compute_metrics, predict_dataset

    dataset = load_dataset(data, split)
    m = compute_metrics(dataset.targets, predict_dataset(classifier, dataset),
                        classifier.thresholds, classifier.labels)
    return {"samples_f1": m["samples_f1"], "hamming_loss": m["hamming_loss"]}
