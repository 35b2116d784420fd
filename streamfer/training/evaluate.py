"""Multi-label metrics (scikit-learn), per-label threshold calibration, and their tables.

Example:
    >>> import numpy as np
    >>> from streamfer.training.evaluate import calibrate_thresholds, compute_metrics
    >>> y = np.array([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 1]])
    >>> p = np.array([[.9, .1, .2, .8, .1, .3], [.2, .7, .1, .1, .9, .6]])
    >>> compute_metrics(y, p, [0.5] * 6)["hamming_loss"]
    0.0
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
)

from streamfer.labels import EMOTIONS

MIN_RECALL = 0.5


def calibrate_thresholds(y_true: np.ndarray, scores: np.ndarray,
                         min_recall: float = MIN_RECALL) -> list[float]:
    """Per label, the threshold that maximises F1 on (y_true, scores) among those that find
    at least ``min_recall`` of the label's faces (a rare label's F1 optimum can sit where it
    is almost never shown: the product wants each emotion found at least half the time)."""
    with warnings.catch_warnings():  # a label without positives: no curve, 0.5 below
        warnings.simplefilter("ignore", UserWarning)
        return _calibrate(y_true, scores, min_recall)


def _calibrate(y_true: np.ndarray, scores: np.ndarray, min_recall: float) -> list[float]:
    thresholds = []
    for j in range(y_true.shape[1]):
        precision, recall, cuts = precision_recall_curve(y_true[:, j], scores[:, j])
        if not len(cuts) or not y_true[:, j].any():
            thresholds.append(0.5)
            continue
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        f1 = np.where(recall[:-1] >= min_recall, f1, -1.0)  # recall falls as cuts rise
        thresholds.append(float(cuts[int(np.argmax(f1))]))
    return thresholds


def compute_metrics(y_true: np.ndarray, scores: np.ndarray, thresholds,
                    labels: tuple[str, ...] = EMOTIONS, y_pred: np.ndarray | None = None) -> dict:
    """Hamming loss, samples/micro/macro F1, per-label P/R/F1, mAP, subset accuracy; of
    ``scores >= thresholds``, or of ``y_pred`` where given."""
    y_true = np.asarray(y_true).astype(int)
    if y_pred is None:
        y_pred = scores >= np.asarray(thresholds)[None, :]
    y_pred = np.asarray(y_pred).astype(int)
    with warnings.catch_warnings():  # a label without positives: sklearn's AP of 0
        warnings.simplefilter("ignore", UserWarning)
        ap = average_precision_score(y_true, scores, average="macro")
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    return {
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
        "samples_f1": float(f1_score(y_true, y_pred, average="samples", zero_division=1)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "mAP": float(ap),
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "thresholds": [float(t) for t in thresholds],
        "per_label": {label: {"precision": float(p[j]), "recall": float(r[j]),
                              "f1": float(f[j]), "support": int(support[j])}
                      for j, label in enumerate(labels)},
    }


def cooccurrence(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(7, 7) counts: row = true label (or none), column = predicted label (or none)."""
    def with_none(y):
        y = np.asarray(y).astype(int)
        return np.concatenate([y, (y.sum(1) == 0)[:, None].astype(int)], axis=1)

    return with_none(y_true).T @ with_none(y_pred)


def report_tables(result: dict, labels: tuple[str, ...] = EMOTIONS):
    """Rich tables: the summary, per-label metrics, and the co-occurrence counts."""
    from rich.markup import escape
    from rich.table import Table

    summary = Table(title=escape(f"{result['data']} [{result['split']}], n={result['n']}"))
    summary.add_column("metric")
    for name in result["at"]:
        summary.add_column(f"@{name}", justify="right")
    for key in ("hamming_loss", "samples_f1", "micro_f1", "macro_f1", "mAP", "subset_accuracy"):
        summary.add_row(key, *(f"{m[key]:.3f}" for m in result["at"].values()))
    caption = []
    if "top1" in result:
        caption.append(f"top-1 among the six on the {result['top1_n']} faces whose strict "
                       f"majority vote is one of them: {result['top1']:.3f}")
        caption.append("per emotion: " + ", ".join(
            f"{label} {m['top1']:.2f} ({m['n']})"
            for label, m in result.get("top1_per_label", {}).items() if m["n"]))
    if result.get("negatives_n"):
        caption.append(f"faces with none of the six given a label (calibrated): "
                       f"{result['negatives_labelled']:.3f} of {result['negatives_n']}")
    summary.caption = "\n".join(caption) or None

    per_label = Table(title="per label (calibrated thresholds)")
    for column in ("label", "threshold", "precision", "recall", "F1", "support"):
        per_label.add_column(column, justify="left" if column == "label" else "right")
    calibrated = result["at"]["calibrated"]
    for label, threshold in zip(labels, calibrated["thresholds"]):
        m = calibrated["per_label"][label]
        per_label.add_row(label, f"{threshold:.2f}", f"{m['precision']:.3f}",
                          f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))

    names = [*labels, "none"]
    table = Table(title="co-occurrence: true (rows) × predicted (columns), calibrated")
    table.add_column("true \\ pred")
    for name in names:
        table.add_column(name[:5], justify="right")
    for name, row in zip(names, result["cooccurrence"]):
        table.add_row(name, *(str(v) for v in row))
    return [summary, per_label, table]


def predict_dataset(classifier, data, size: int = 100) -> np.ndarray:
    """Scores of ``classifier`` on a dataset's images, resized to the 100×100 input as the
    detector's crops are."""
    return classifier.predict(as_crops(data.images, size))


def as_crops(images: np.ndarray, size: int = 100) -> np.ndarray:
    """Dataset images resized to the model's square input, RGB uint8."""
    from streamfer.training.data import resized

    images = resized(images, size)
    return np.repeat(images[..., None], 3, axis=-1) if images.ndim == 3 else images


def cross_fitted(y_true: np.ndarray, scores: np.ndarray, folds: int = 2,
                 seed: int = 0) -> np.ndarray:
    """Predictions whose thresholds never saw the face they judge: each of ``folds`` seeded
    parts is thresholded with values calibrated on the others. Metrics of these are an
    honest estimate of calibrated thresholds on new faces of the same kind."""
    part = np.random.default_rng(seed).permutation(len(y_true)) % folds
    y_pred = np.zeros_like(scores, dtype=bool)
    for k in range(folds):
        cuts = calibrate_thresholds(y_true[part != k], scores[part != k])
        y_pred[part == k] = scores[part == k] >= np.asarray(cuts)[None, :]
    return y_pred


def top1_accuracy(majority: np.ndarray, scores: np.ndarray) -> tuple[float, int]:
    """Share of faces whose strict-majority emotion (``majority`` ≥ 0) is the top score;
    and how many faces that is."""
    has = np.asarray(majority) >= 0
    if not has.any():
        return float("nan"), 0
    return float((scores[has].argmax(1) == majority[has]).mean()), int(has.sum())


def top1_per_label(majority: np.ndarray, scores: np.ndarray,
                   labels: tuple[str, ...] = EMOTIONS) -> dict[str, dict]:
    """Per emotion, the share of its strict-majority faces whose top score is that emotion
    (a posed set's per-emotion accuracy), and how many faces that is.

    >>> top1_per_label(np.array([0, 0, 1]), np.array([[.9, .1], [.2, .8], [.3, .6]]), ("a", "b"))
    {'a': {'top1': 0.5, 'n': 2}, 'b': {'top1': 1.0, 'n': 1}}
    """
    majority, top = np.asarray(majority), np.asarray(scores).argmax(1)
    return {label: {"top1": float((top[majority == j] == j).mean()) if (majority == j).any()
                    else float("nan"), "n": int((majority == j).sum())}
            for j, label in enumerate(labels)}


def negatives_labelled(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, int]:
    """Share of the faces that show none of the emotions (neutral ones) given a label
    anyway, and how many such faces there are."""
    none = ~np.asarray(y_true).astype(bool).any(1)
    if not none.any():
        return float("nan"), 0
    return float(np.asarray(y_pred).astype(bool)[none].any(1).mean()), int(none.sum())


def evaluate(targets: np.ndarray, scores: np.ndarray, thresholds,
             labels: tuple[str, ...] = EMOTIONS, name: str = "", split: str = "",
             majority: np.ndarray | None = None) -> dict:
    """Metrics at the given (calibrated) thresholds, at thresholds cross-fitted on the data
    itself (2 folds: the honest figure for thresholds calibrated on this split) and at 0.5;
    top-1 among the six on strict-majority faces; the co-occurrence table."""
    y_pred = scores >= np.asarray(thresholds)[None, :]
    crossed = cross_fitted(np.asarray(targets).astype(int), scores)
    result = {
        "data": name, "split": split, "n": len(targets),
        "at": {"calibrated": compute_metrics(targets, scores, thresholds, labels),
               "cross-fitted": compute_metrics(targets, scores, thresholds, labels,
                                               y_pred=crossed),
               "0.5": compute_metrics(targets, scores, [0.5] * len(labels), labels)},
        "cooccurrence": cooccurrence(targets, y_pred).tolist(),
    }
    result["negatives_labelled"], result["negatives_n"] = negatives_labelled(targets, y_pred)
    if majority is not None:
        result["top1"], result["top1_n"] = top1_accuracy(majority, scores)
        result["top1_per_label"] = top1_per_label(majority, scores, labels)
    return result
