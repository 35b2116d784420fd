"""Emotion scores for face crops, in batches, with the averaged ResNet50/VGG19 model.

Three backends run the same weights: ``keras`` (TensorFlow, fp32), ``tflite`` (TFLite fp32
with XNNPACK) and ``onnx`` (ONNX Runtime, int8 with calibrated ranges; the fastest, and the
default, ``auto``, where onnxruntime and onnx are installed and the
build succeeds; else ``tflite``). The fast ones are converted once per
weights file and cached (see :mod:`streamfer.backends`); the ONNX one needs neither
TensorFlow nor the Keras model, which is loaded only for the other two. TFLite's int8 dynamic-range
conversion was measured and rejected: its scores moved by 0.067 on average on FER+ faces.

Example:
    >>> from streamfer.classify import Classifier
    >>> classifier = Classifier()                      # the shipped default, SHA-256 checked
    >>> scores = classifier.predict(crops)             # doctest: +SKIP
    >>> scores.shape                                   # doctest: +SKIP
    (n, 6)                                             # Surprise, Fear, Disgust, Happiness, ...
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from streamfer import backends
from streamfer.assets import MODELS_DIR, AssetError
from streamfer.frame import Face
from streamfer.model import ModelConfig, load_model, read_config

DEFAULT_MODEL = MODELS_DIR / "default.json"
BACKENDS = ("onnx", "tflite", "keras")
log = logging.getLogger(__name__)


class Classifier:
    """Runs the model on 100×100 RGB crops; ``thresholds`` are the calibrated per-label ones.
    ``flip_average``: score each crop with its mirror image too and average (default: as
    the model file says, whose thresholds were calibrated that way)."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 32, *,
                 backend: str = "keras", model=None, config: ModelConfig | None = None,
                 flip_average: bool | None = None) -> None:
        if backend not in (*BACKENDS, "auto"):
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        # a model passed in is that model: never the default file's conversions
        path = Path(model_path) if model_path else (DEFAULT_MODEL if model is None else None)
        if model is None:
            if not path.is_file():
                raise AssetError(f"model file not found: {path}")
            config = read_config(path, check=False)[0]
        fallback = backend == "auto"
        if fallback:  # the fastest that works here
            failed = path is not None and backends.onnx_failed(path)
            if failed:
                log.warning("using --backend tflite: building the ONNX model failed here "
                            "before (%s); run once with --backend onnx to try again", failed)
            backend = "onnx" if backends.onnx_available() and path and not failed else "tflite"
        self._model, self._path, self.config = model, path, config
        self.thresholds = np.asarray(self.config.thresholds, np.float32)
        self.labels = self.config.labels
        self.batch_size = batch_size
        # the model file says (its thresholds are calibrated one way or the other)
        self.flip_average = self.config.flip_average if flip_average is None else flip_average
        if backend == "onnx":
            if not backends.onnx_available():
                raise AssetError("--backend onnx needs onnxruntime and onnx: "
                                 "pip install onnxruntime onnx")
            if path is None:
                raise AssetError("--backend onnx needs the model's .json file")
            try:
                self._run = backends.ONNXRunner(backends.onnx_file(path))
            except AssetError as exc:
                if not fallback:
                    raise
                log.warning("%s; using --backend tflite", exc)
                backend = "tflite"
        if backend == "tflite":
            self._run = backends.TFLiteRunner(backends.tflite_file(self.model, config))
        elif backend == "keras":  # any Keras backend (TensorFlow here, JAX on a GPU machine)
            keras_model = self.model
            self._run = lambda x: np.asarray(keras_model.predict_on_batch(x))
        self.backend = backend

    @property
    def model(self):
        """The Keras model (loaded on first use: the ONNX backend does not need it)."""
        if self._model is None:
            self._model = load_model(self._path)[0]
        return self._model

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Scores (n, 6) in [0, 1] for uint8 crops (n, 100, 100, 3) RGB (or (n, 100, 100) gray)."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = np.repeat(crops[..., None], 3, axis=-1)
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        run = mirror_averaged(self._run) if self.flip_average else self._run
        out = [run(crops[i:i + self.batch_size].astype(np.float32))
               for i in range(0, len(crops), self.batch_size)]
        return np.concatenate(out).astype(np.float32)

    def thresholds_with(self, override: float | dict[str, float] | None) -> list[float]:
        """The calibrated thresholds, with one value for all labels or some labels replaced."""
        values = [float(t) for t in self.thresholds]
        if isinstance(override, (int, float)):
            return [float(override)] * len(values)
        for label, value in (override or {}).items():
            values[self.labels.index(label)] = float(value)
        return values

    def classify(self, faces: list[Face]) -> None:
        """Set ``scores`` (and ``classified``) on every face that has a crop, in one batch."""
        todo = [f for f in faces if f.crop is not None]
        if not todo:
            return
        for face, scores in zip(todo, self.predict(np.stack([f.crop for f in todo]))):
            face.scores, face.classified = scores, True


def mirror_averaged(run):
    """``run`` (a batch of crops (n, H, W, C) → scores) made to score each crop as the mean
    of its own scores and its left-right mirror image's, in one batch of 2n. Faces are about
    symmetric and a model is not quite: the mean is steadier, and scores better on FER+
    Valid (see the model card), for twice the classifier's work."""
    def averaged(x: np.ndarray) -> np.ndarray:
        both = np.asarray(run(np.concatenate([x, x[:, :, ::-1]])))
        return (both[:len(x)] + both[len(x):]) / 2
    return averaged


def default_backend() -> str:
    """``auto``: ``onnx`` (int8) where it is installed and builds, else ``tflite``."""
    return "auto"
