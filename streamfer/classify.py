"""Emotion scores for face crops, in batches, with the averaged ResNet50/VGG19 model.

Two backends run the same weights: ``keras`` (TensorFlow, fp32) and ``tflite`` (the default:
TFLite fp32 with XNNPACK, converted once per weights file and cached in
``$STREAMFER_HOME/tflite``). An int8 dynamic-range conversion was measured and rejected: its
scores moved by 0.067 on average on FER+ faces (the VGG19 branch, trained from scratch
without batch norm, has activations up to ~1e8, too wide a range for int8).

Example:
    >>> from streamfer.classify import Classifier
    >>> classifier = Classifier()                      # the shipped default, SHA-256 checked
    >>> scores = classifier.predict(crops)             # doctest: +SKIP
    >>> scores.shape                                   # doctest: +SKIP
    (n, 6)                                             # Surprise, Fear, Disgust, Happiness, ...
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from streamfer.assets import MODELS_DIR, AssetError, cache_dir
from streamfer.frame import Face
from streamfer.model import INPUT_SIZE, ModelConfig, load_model

DEFAULT_MODEL = MODELS_DIR / "default.json"
BACKENDS = ("tflite", "keras")
log = logging.getLogger(__name__)


class Classifier:
    """Runs the model on 100×100 RGB crops; ``thresholds`` are the calibrated per-label ones."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 32, *,
                 backend: str = "keras", model=None, config: ModelConfig | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        path = Path(model_path) if model_path else DEFAULT_MODEL
        if model is None:
            if not path.is_file():
                raise AssetError(f"model file not found: {path}")
            model, config = load_model(path)
        self.model, self.config, self.backend = model, config, backend
        self.thresholds = np.asarray(self.config.thresholds, np.float32)
        self.labels = self.config.labels
        self.batch_size = batch_size
        if backend == "tflite":
            self._run = _TFLiteRunner(_tflite_file(model, path))
        else:
            import tensorflow as tf

            spec = tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)
            graph = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])
            self._run = lambda x: graph(x).numpy()

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Scores (n, 6) in [0, 1] for uint8 crops (n, 100, 100, 3) RGB (or (n, 100, 100) gray)."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = np.repeat(crops[..., None], 3, axis=-1)
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        out = [self._run(crops[i:i + self.batch_size].astype(np.float32))
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


def _tflite_file(model, model_json: Path) -> Path:
    """The TFLite (fp32) conversion of ``model``, made once per weights file."""
    import tensorflow as tf

    digest = json.loads(model_json.read_text()).get("sha256", "unknown")[:16]
    target = cache_dir("tflite") / f"{digest}-fp32.tflite"
    if target.is_file():
        return target
    log.warning("first use of these weights with --backend tflite: converting once "
                "(about a minute), cached in %s", target.parent)
    # from_keras_model, not model.export(): the latter's SavedModel scored 0.08 off Keras here
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the SavedModel it made
        blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    part = target.with_suffix(f".{os.getpid()}.part")
    part.write_bytes(blob)
    os.replace(part, target)
    return target


class _TFLiteRunner:
    """A TFLite interpreter (XNNPACK) for batch 1 and one resized to larger batches."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import tensorflow as tf

        self._make = lambda: tf.lite.Interpreter(model_path=str(path),
                                                 num_threads=threads or os.cpu_count())
        self._interpreters: dict[bool, tuple] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        single = len(x) == 1
        if single not in self._interpreters:
            self._interpreters[single] = (self._make(), 0)
        interpreter, size = self._interpreters[single]
        inp = interpreter.get_input_details()[0]["index"]
        if size != len(x):
            interpreter.resize_tensor_input(inp, list(x.shape))
            interpreter.allocate_tensors()
            self._interpreters[single] = (interpreter, len(x))
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()
