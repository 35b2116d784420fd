"""Labelled face datasets for training and evaluation: FER+, RAF-ML and folder-per-emotion.

Every loader returns a :class:`Dataset`: uint8 images (N, H, W, 3) and float targets (N, 6)
in :data:`streamfer.labels.EMOTIONS` order. Decoded arrays are cached (``$STREAMFER_HOME``
or ``~/.cache/streamfer``) so that a second run starts in seconds.

Example:
    >>> from streamfer.data import load_dataset
    >>> valid = load_dataset("../shared/data/ferplus", "valid")   # doctest: +SKIP
    >>> valid.images.shape, valid.targets.shape                   # doctest: +SKIP
    ((3573, 48, 48, 3), (3573, 6))
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamfer.assets import cache_dir
from streamfer.labels import EMOTIONS


class DatasetError(ValueError):
    """The data folder does not hold a layout we can read."""


@dataclass
class Dataset:
    images: np.ndarray  # (N, H, W, 3) uint8 RGB
    targets: np.ndarray  # (N, 6) float32 in {0, 1}
    names: list[str]

    def __len__(self) -> int:
        return len(self.targets)


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


def ferplus_targets(votes: np.ndarray, min_votes: int = 2) -> np.ndarray:
    """Multi-label targets from FER+ vote rows (N, 10): an emotion is present at ≥2 votes."""
    columns = [_FERPLUS_VOTES.index(e.lower()) for e in EMOTIONS]
    return (votes[:, columns] >= min_votes).astype(np.float32)


def load_dataset(root: str | Path, split: str = "train") -> Dataset:
    """Load ``split`` of the dataset at ``root``, recognising its layout."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder not found: {root}")
    if any((root / d).is_dir() for d in _FERPLUS_SPLITS.values()):
        loader = _load_ferplus
    elif (root / "multilabel.txt").is_file() and (root / "partition_label.txt").is_file():
        loader = _load_rafml
    else:
        loader = _load_folders
    return _cached(root, split, loader)


def _cached(root: Path, split: str, loader) -> Dataset:
    key = hashlib.sha1(f"{root.resolve()}|{split}|{loader.__name__}|v1".encode()).hexdigest()[:16]
    path = cache_dir("datasets") / f"{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return Dataset(z["images"], z["targets"], list(z["names"]))
    data = loader(root, split)
    if not len(data):
        raise DatasetError(f"no labelled images for split {split!r} under {root}")
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=data.images, targets=data.targets, names=np.array(data.names))
    tmp.replace(path)
    return data


def _read_rgb(path: Path, size: int | None = None) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    if size is not None and image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _stack(images: list[np.ndarray], targets: list, names: list[str]) -> Dataset:
    if not images:
        return Dataset(np.zeros((0, 48, 48, 3), np.uint8), np.zeros((0, 6), np.float32), [])
    return Dataset(np.stack(images), np.asarray(targets, np.float32), names)


def _load_ferplus(root: Path, split: str) -> Dataset:
    folder = root / _FERPLUS_SPLITS.get(split, split)
    label_file = folder / "label.csv"
    if not label_file.is_file():
        raise DatasetError(f"FER+ split {split!r} has no label.csv at {label_file}")
    images, votes, names = [], [], []
    with open(label_file, newline="") as f:
        for row in csv.reader(f):
            counts = np.array([int(v) for v in row[2:12]])
            if counts[-2:].sum() >= 5:  # unknown + not-a-face
                continue
            image = _read_rgb(folder / row[0], 48)
            if image is None:
                continue
            images.append(image)
            votes.append(counts)
            names.append(row[0])
    data = _stack(images, [], names)
    if votes:
        data.targets = ferplus_targets(np.stack(votes))
    return data


def _load_rafml(root: Path, split: str) -> Dataset:
    partition = {}
    for line in (root / "partition_label.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) >= 2:
            partition[Path(parts[0]).stem] = "train" if parts[1] == "0" else "test"
    files = {p.name.replace("_aligned", "").split(".")[0]: p
             for p in (root / "Images").rglob("*_aligned.jpg")}
    images, targets, names = [], [], []
    for line in (root / "multilabel.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) < 7:
            continue
        stem = Path(parts[0]).stem
        if partition.get(stem) != ("train" if split == "train" else "test") or stem not in files:
            continue
        image = _read_rgb(files[stem], 100)
        if image is None:
            continue
        images.append(image)
        targets.append([float(v) >= 0.5 for v in parts[1:7]])
        names.append(parts[0])
    return _stack(images, targets, names)


def _load_folders(root: Path, split: str) -> Dataset:
    base = root / split if (root / split).is_dir() else root
    images, targets, names = [], [], []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        key = folder.name.lower()
        if key not in _SYNONYMS and key not in _NEGATIVE_FOLDERS:
            continue
        target = [float(_SYNONYMS.get(key) == e) for e in EMOTIONS]
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in _IMAGE_EXTS and (image := _read_rgb(path, 100)) is not None:
                images.append(image)
                targets.append(target)
                names.append(str(path.relative_to(base)))
    if not images:
        raise DatasetError(
            f"{root} is not FER+ (FER2013Train/…), RAF-ML (multilabel.txt, partition_label.txt)"
            f" nor folder-per-emotion (e.g. happy/, sad/, neutral/)")
    return _stack(images, targets, names)
