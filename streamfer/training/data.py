"""Labelled face datasets for training and evaluation: FER+, RAF-ML and folder-per-emotion.

FER+ and RAF-ML hold faces already cropped; a folder-per-emotion tree holds photos (JAFFE's
head-and-shoulders shots, the loosely centred faces of ``facial_expressions``), which are
cropped as the product crops a user's photo (``crop="detect"``, the default there): the
largest face the product's detector finds, framed and levelled by :func:`streamfer.detect.
square_crop`, 100×100; a photo where no face is found is left out and named in
``Dataset.missed``. ``crop="none"`` takes the images as they are (already face crops).

Every loader returns a :class:`Dataset`: uint8 images (N, H, W, 3), binary targets (N, 6)
in :data:`streamfer.labels.EMOTIONS` order (what evaluation and calibration use) and soft
targets (N, 6): FER+'s vote shares, RAF-ML's label scores, or the binary targets where a
dataset has nothing finer (what training fits). Decoded arrays are cached
(``$STREAMFER_HOME`` or ``~/.cache/streamfer``) so that a second run starts in seconds.

Splits are named and disjoint: ``train``, ``valid`` and ``test``. Where a dataset has no
validation split of its own (RAF-ML; a folder-per-emotion tree without ``valid/``), ``valid``
is a seeded hold-out of its training images, stratified by label, and ``train`` is the rest.

Example:
    >>> from streamfer.training.data import load_dataset
    >>> valid = load_dataset("../shared/data/ferplus", "valid")   # doctest: +SKIP
    >>> valid.images.shape, valid.targets.shape                   # doctest: +SKIP
    ((3573, 48, 48, 3), (3573, 6))
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamfer.assets import cache_dir
from streamfer.files import atomic_file, opencv_name
from streamfer.labels import EMOTIONS


class DatasetError(ValueError):
    """The data folder does not hold a layout we can read."""


@dataclass
class Dataset:
    images: np.ndarray  # (N, H, W, 3) uint8 RGB
    targets: np.ndarray  # (N, 6) float32 in {0, 1}: the labelling rule
    names: list[str]
    soft: np.ndarray | None = None  # (N, 6) float32 in [0, 1]: vote shares; None: = targets
    majority: np.ndarray | None = None  # (N,) int: the strict-majority emotion, -1: none
    missed: list[str] = field(default_factory=list)  # photos without a face found (left out)

    def __post_init__(self) -> None:
        if self.soft is None:
            self.soft = self.targets
        if self.majority is None:
            self.majority = strict_majority(self.soft)

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.images[index], self.targets[index],
                       [self.names[i] for i in index], self.soft[index], self.majority[index])


def strict_majority(votes: np.ndarray, columns: list[int] | None = None) -> np.ndarray:
    """Per row, the column with strictly the most votes (no tie), mapped through ``columns``
    to an EMOTIONS index; -1 where there is a tie or the winner is not one of the six."""
    votes = np.asarray(votes, np.float64)
    if len(votes) == 0:
        return np.zeros(0, np.int64)
    top = votes.argmax(axis=1)
    ordered = np.sort(votes, axis=1)
    unique = ordered[:, -1] > (ordered[:, -2] if votes.shape[1] > 1 else 0)
    lookup = np.array(columns if columns is not None else range(votes.shape[1]))
    label = np.where(lookup[top] >= 0, lookup[top], -1)
    return np.where(unique & (ordered[:, -1] > 0), label, -1).astype(np.int64)


# FER+ label.csv vote columns, after file and box.
_FERPLUS_VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                  "contempt", "unknown", "NF")
_FERPLUS_SPLITS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
_SYNONYMS = {
    "surprise": "Surprise", "surprised": "Surprise",
    "fear": "Fear", "fearful": "Fear", "afraid": "Fear",
    "disgust": "Disgust", "disgusted": "Disgust",
    "happiness": "Happiness", "happy": "Happiness", "joy": "Happiness",
    "sadness": "Sadness", "sad": "Sadness",
    "anger": "Anger", "angry": "Anger",
}
_NEGATIVE_FOLDERS = {"neutral", "contempt", "none", "other"}
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
SPLITS = ("train", "valid", "test")
HOLDOUT = 0.1  # share of a training split held out as ``valid`` where a dataset has none
CROPS = ("detect", "none")  # folder-per-emotion photos: cropped by the product's detector, or not


def ferplus_rule(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The FER+ authors' multi-target rule (``../shared/data/README.md``) on vote rows (N, 10).

    Returns ``(keep, targets, shares)``: which rows are kept, their binary targets (an emotion
    is present at ≥ 30 % of the votes left once single votes are dropped) and the six
    emotions' shares of those votes (the soft targets), both (N, 6) in EMOTIONS order.

    >>> keep, t, s = ferplus_rule(np.array([[3, 6, 0, 1, 0, 0, 0, 0, 0, 0]]))
    >>> bool(keep[0]), t[0].tolist(), round(float(s[0, 3]), 3)
    (True, [0.0, 0.0, 0.0, 1.0, 0.0, 0.0], 0.667)
    """
    votes = np.asarray(votes, np.float64)
    unknown, not_face = _FERPLUS_VOTES.index("unknown"), _FERPLUS_VOTES.index("NF")
    kept_votes = np.where(votes <= 1, 0.0, votes)  # a single vote is noise
    total = kept_votes.sum(axis=1, keepdims=True)
    present = (kept_votes >= 0.3 * total) & (total > 0)
    gathered = (kept_votes * present).sum(axis=1)
    keep = ((votes[:, unknown] + votes[:, not_face] < 5) & ~present[:, unknown]
            & ~present[:, not_face] & (gathered > 0.5 * total[:, 0]))
    columns = [_FERPLUS_VOTES.index(e.lower()) for e in EMOTIONS]
    shares = kept_votes[:, columns] / np.maximum(total, 1)
    return keep, present[:, columns].astype(np.float32), shares.astype(np.float32)


def load_dataset(root: str | Path, split: str = "train", crop: str = "detect") -> Dataset:
    """Load ``split`` of the dataset at ``root``, recognising its layout; ``crop``: how a
    folder-per-emotion tree's photos become faces (see the module's text)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder not found: {root}")
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if crop not in CROPS:
        raise DatasetError(f"unknown crop {crop!r}: use one of {', '.join(CROPS)}")
    if any((root / d).is_dir() for d in _FERPLUS_SPLITS.values()):
        loader, crop = _load_ferplus, "none"
    elif (root / "multilabel.txt").is_file() and (root / "partition_label.txt").is_file():
        loader, crop = _load_rafml, "none"
    else:
        return _load_folders(root, split, crop)  # caches what it reads itself
    return _cached(root, split, loader, crop)


def _cached(root: Path, split: str, loader, crop: str) -> Dataset:
    key = hashlib.sha1(
        f"{root.resolve()}|{split}|{loader.__name__}|{crop}|v4".encode()).hexdigest()[:16]
    path = cache_dir("datasets") / f"{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return Dataset(z["images"], z["targets"], list(z["names"]), z["soft"],
                           z["majority"], list(z["missed"]))
    data = loader(root, split, crop)
    if not len(data):
        named = f" for split {split!r}" if split in SPLITS else ""
        raise DatasetError(f"no labelled images{named} under {root}"
                           + (f" ({len(data.missed)} photos without a face found)"
                              if data.missed else ""))
    with atomic_file(path) as f:
        np.savez(f, images=data.images, targets=data.targets, names=np.array(data.names),
                 soft=data.soft, majority=data.majority, missed=np.array(data.missed, str))
    return data


def _read_rgb(path: Path, size: int | None = None) -> np.ndarray | None:
    with opencv_name(str(path)) as name:
        image = cv2.imread(name, cv2.IMREAD_COLOR)
    if image is None:
        return None
    if size is not None and image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resized(images: np.ndarray, size: int) -> np.ndarray:
    """Square images resized to size×size (bilinear, as the model's own Resizing), uint8;
    the very array where they are that size already. The one resize of whole datasets:
    training at a working size and scoring at the model's input both use it."""
    if images.shape[1:3] == (size, size):
        return images
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR)
                     for im in images])


def _stack(images: list[np.ndarray], targets: list, names: list[str],
           soft: list | None = None, majority: np.ndarray | None = None) -> Dataset:
    if not images:
        return Dataset(np.zeros((0, 48, 48, 3), np.uint8), np.zeros((0, 6), np.float32), [])
    return Dataset(np.stack(images), np.asarray(targets, np.float32), names,
                   None if soft is None else np.asarray(soft, np.float32), majority)


def holdout(data: Dataset, split: str, share: float = HOLDOUT, seed: int = 0) -> Dataset:
    """``valid``: a seeded hold-out of ``share`` of ``data``, stratified by label (an image's
    first label, or none); ``train``: the rest. The two never share an image."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(data))
    strata = np.where(data.targets.any(1), data.targets.argmax(1), -1)
    _, counts = np.unique(strata, return_counts=True)
    stratify = strata if counts.min() >= 2 and len(data) * share >= len(counts) else None
    rest, held = train_test_split(index, test_size=share, random_state=seed, stratify=stratify)
    return data.subset(np.sort(held if split == "valid" else rest))


def _load_ferplus(root: Path, split: str, crop: str = "none") -> Dataset:
    folder = root / _FERPLUS_SPLITS.get(split, split)
    label_file = folder / "label.csv"
    if not label_file.is_file():
        raise DatasetError(f"FER+ split {split!r} has no label.csv at {label_file}")
    with open(label_file, newline="") as f:
        rows = [row for row in csv.reader(f) if len(row) >= 12]
    if not rows:
        return _stack([], [], [])
    votes = np.array([[int(v) for v in r[2:12]] for r in rows])
    keep, targets, shares = ferplus_rule(votes)
    majority = strict_majority(votes, [EMOTIONS.index(_SYNONYMS[v]) if v in _SYNONYMS else -1
                                       for v in _FERPLUS_VOTES])
    images, kept, names = [], [], []
    for i in np.flatnonzero(keep):
        image = _read_rgb(folder / rows[i][0], 48)
        if image is not None:
            images.append(image)
            kept.append(i)
            names.append(rows[i][0])
    return _stack(images, targets[kept], names, shares[kept], majority[kept])


def _load_rafml(root: Path, split: str, crop: str = "none") -> Dataset:
    """RAF-ML's own partition is train/test; ``valid`` is held out of its train part."""
    if split == "test":
        return _read_rafml(root, "test")
    return holdout(_read_rafml(root, "train"), split)


def _read_rafml(root: Path, part: str) -> Dataset:
    partition = {}
    for line in (root / "partition_label.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) >= 2:
            partition[Path(parts[0]).stem] = "train" if parts[1] == "0" else "test"
    files = {p.name.replace("_aligned", "").split(".")[0]: p
             for p in (root / "Images").rglob("*_aligned.jpg")}
    images, scores, names = [], [], []
    for line in (root / "multilabel.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) < 7:
            continue
        stem = Path(parts[0]).stem
        if partition.get(stem) != part or stem not in files:
            continue
        image = _read_rgb(files[stem], 100)
        if image is None:
            continue
        images.append(image)
        scores.append([float(v) for v in parts[1:7]])
        names.append(parts[0])
    scores = np.asarray(scores, np.float32).reshape(-1, 6)
    return _stack(images, scores >= 0.5, names, scores)


def _load_folders(root: Path, split: str, crop: str = "detect") -> Dataset:
    """``root/<split>/<emotion>/``; without a ``valid/`` folder, ``valid`` is held out of
    ``train/`` (or of ``root`` itself when it has no split folders)."""
    if split == "test" or (root / "valid").is_dir():
        if not (root / split).is_dir():
            raise DatasetError(f"{root} has no {split}/ folder")
        return _cached(root, split, _read_split, crop)
    data = _cached(root, "whole", _read_whole, crop)  # read (and cropped) once for both splits,
    return _with_missed(holdout(data, split), data.missed)  # stored once: a holdout is cheap


def _read_split(root: Path, split: str, crop: str) -> Dataset:
    return _read_folders(root, root / split, crop)


def _read_whole(root: Path, split: str, crop: str) -> Dataset:
    """The images of a tree without ``valid/`` that ``train`` and ``valid`` are split from."""
    return _read_folders(root, root / "train" if (root / "train").is_dir() else root, crop)


def _with_missed(data: Dataset, missed: list[str]) -> Dataset:
    data.missed = list(missed)
    return data


def _read_folders(root: Path, base: Path, crop: str = "detect") -> Dataset:
    labelled = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        key = folder.name.lower()
        if key not in _SYNONYMS and key not in _NEGATIVE_FOLDERS:
            continue
        target = [float(_SYNONYMS.get(key) == e) for e in EMOTIONS]
        labelled += [(path, target) for path in sorted(folder.iterdir())
                     if path.suffix.lower() in _IMAGE_EXTS]
    if not labelled:
        raise DatasetError(
            f"{root} is not FER+ (FER2013Train/…), RAF-ML (multilabel.txt, partition_label.txt)"
            f" nor folder-per-emotion (e.g. happy/, sad/, neutral/)")
    images, targets, names, missed = [], [], [], []
    as_is = contextlib.nullcontext(lambda path: _read_rgb(path, 100))  # face crops already
    with (_FaceCropper() if crop == "detect" else as_is) as read:
        for path, target in labelled:
            name = str(path.relative_to(base))
            if (image := read(path)) is None:
                missed.append(name)
                continue
            images.append(image)
            targets.append(target)
            names.append(name)
    return _with_missed(_stack(images, targets, names), missed)


class _FaceCropper:
    """A photo → the crop of its largest face, as the product crops a photo (both detector
    models, no tiles; framed and levelled as in a run), RGB 100×100; None: no face found."""

    def __enter__(self):
        from streamfer.detect import FaceDetector

        self.detector = FaceDetector("both", tiles=0)
        return self

    def __call__(self, path: Path) -> np.ndarray | None:
        from streamfer.frame import Frame

        with opencv_name(str(path)) as name:
            image = cv2.imread(name, cv2.IMREAD_COLOR)
        if image is None:
            return None
        self.detector.reset()
        faces = self.detector.detect(Frame(str(path), 0, 0.0, image)).faces
        if not faces:
            return None
        return max(faces, key=lambda f: f.box[2] * f.box[3]).crop

    def __exit__(self, *exc) -> None:
        self.detector.close()
