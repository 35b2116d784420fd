"""Emotion scores for face crops, in batches, with the averaged ResNet50/VGG19 model.

Example:
    >>> from streamfer.classify import Classifier
    >>> classifier = Classifier()                      # the shipped default, SHA-256 checked
    >>> scores = classifier.predict(crops)             # doctest: +SKIP
    >>> scores.shape                                   # doctest: +SKIP
    (n, 6)                                             # Surprise, Fear, Disgust, Happiness, ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamfer.assets import MODELS_DIR, AssetError
from streamfer.frame import Face
from streamfer.model import INPUT_SIZE, ModelConfig, load_model

DEFAULT_MODEL = MODELS_DIR / "default.json"


class Classifier:
    """Runs the model on 100×100 RGB crops; ``thresholds`` are the calibrated per-label ones."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 32, *,
                 model=None, config: ModelConfig | None = None) -> None:
        import tensorflow as tf

        if model is None:
            path = Path(model_path) if model_path else DEFAULT_MODEL
            if not path.is_file():
                raise AssetError(f"model file not found: {path}")
            model, config = load_model(path)
        self.model, self.config = model, config
        self.thresholds = np.asarray(self.config.thresholds, np.float32)
        self.labels = self.config.labels
        self.batch_size = batch_size
        spec = tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32)
        self._run = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Scores (n, 6) in [0, 1] for uint8 crops (n, 100, 100, 3) RGB (or (n, 100, 100) gray)."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = np.repeat(crops[..., None], 3, axis=-1)
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        out = [self._run(crops[i:i + self.batch_size].astype(np.float32)).numpy()
               for i in range(0, len(crops), self.batch_size)]
        return np.concatenate(out).astype(np.float32)

    def classify(self, faces: list[Face]) -> None:
        """Set ``scores`` (and ``classified``) on every face that has a crop, in one batch."""
        todo = [f for f in faces if f.crop is not None]
        if not todo:
            return
        for face, scores in zip(todo, self.predict(np.stack([f.crop for f in todo]))):
            face.scores, face.classified = scores, True
