"""Find every model file the product needs, the way Keras finds its weights.

A file is looked for, in order: (1) an explicit path, (2) the cache directory
(``$STREAMFER_HOME`` or ``~/.cache/streamfer``; Keras' own cache for the ImageNet files),
(3) the project's ``models/`` folder for files we ship, (4) its official URL, downloaded
once and checked against a pinned SHA-256. Offline and missing: :class:`AssetError` with a
message that names the file, the URL and where to put it.

Example:
    >>> from streamfer.assets import resolve
    >>> path = resolve("face_detection_short_range.tflite")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# an installed wheel carries the shipped model inside the package; a checkout has models/
_PACKAGE = Path(__file__).resolve().parent
MODELS_DIR = next((d for d in (_PACKAGE / "_models", _PACKAGE.parent / "models")
                   if (d / "default.json").is_file()), _PACKAGE.parent / "models")
_MP = "https://raw.githubusercontent.com/google-ai-edge/mediapipe/v0.10.21/mediapipe/modules"
_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications"


class AssetError(RuntimeError):
    """A model file is missing, unreadable or not the file we expect."""


@dataclass(frozen=True)
class Asset:
    name: str
    url: str | None
    sha256: str | None  # None: Keras checks its own files


ASSETS = {a.name: a for a in (
    Asset("face_detection_short_range.tflite",
          f"{_MP}/face_detection/face_detection_short_range.tflite",
          "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    Asset("face_detection_full_range_sparse.tflite",
          f"{_MP}/face_detection/face_detection_full_range_sparse.tflite",
          "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"),
    Asset("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
          f"{_KERAS}/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", None),
    Asset("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
          f"{_KERAS}/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", None),
)}


def home() -> Path:
    """``$STREAMFER_HOME`` or ``~/.cache/streamfer``: the cache, where files are looked for."""
    return Path(os.environ.get("STREAMFER_HOME") or Path.home() / ".cache" / "streamfer")


_stand_in: list[Path] = []  # the folder written to where the home cannot be, made once


def cache_dir(sub: str = "") -> Path:
    """Where the cache is written: :func:`home` (created on first use), or, where it cannot
    be written (a read-only home: a container's, a cache an administrator filled), a folder
    of this process's own under the system's temporary folder, removed at exit, said once
    (the run failed: "[Errno 30] Read-only file system")."""
    path = home() / sub if sub else home()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # the system's own answer (root passes access())
            return path
    except OSError as exc:
        why = exc.strerror or str(exc)
    if not _stand_in:
        import atexit
        import logging
        import shutil

        _stand_in.append(Path(tempfile.mkdtemp(prefix="streamfer-cache-")))
        atexit.register(shutil.rmtree, _stand_in[0], ignore_errors=True)
        logging.getLogger(__name__).warning(
            "cannot write the cache in %s (%s): what is built is kept for this run only "
            "(set STREAMFER_HOME to a folder you can write to keep it)", home(), why)
    path = _stand_in[0] / sub if sub else _stand_in[0]
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached(sub: str, name: str) -> Path:
    """A cache file: in :func:`home` where it is there (read-only or not), else where
    :func:`cache_dir` writes it."""
    held = home() / sub / name
    return held if held.is_file() else cache_dir(sub) / name


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str | None) -> Path:
    """Return ``path`` if its SHA-256 is ``expected`` (or nothing is expected)."""
    if expected and sha256(path) != expected:
        raise AssetError(f"{path} is not the expected file (SHA-256 mismatch); "
                         f"delete it and try again")
    return path


def resolve(name: str, explicit: str | Path | None = None) -> Path:
    """Path to model file ``name``: explicit path, cache, models/, or a verified download."""
    asset = ASSETS.get(name, Asset(name, None, None))
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise AssetError(f"model file not found: {path}")
        return verify(path, asset.sha256)
    if asset.sha256 is None and asset.url:  # a Keras ImageNet file: Keras' own cache
        return _keras_file(asset)
    for candidate in (home() / name, MODELS_DIR / name):
        if candidate.is_file():
            return verify(candidate, asset.sha256)
    if asset.url is None:
        raise AssetError(f"model file {name} not found in {home()} or {MODELS_DIR}")
    return _download(asset, cache_dir() / name)


def _where_to_put(asset: Asset, target: Path) -> str:
    return (f"cannot download {asset.name} from {asset.url} (offline?); "
            f"download it elsewhere and put it at {target}, or pass its path explicitly")


def _download(asset: Asset, target: Path) -> Path:
    from streamfer.files import atomic_file

    digest = hashlib.sha256()
    try:  # checked as it streams in: a file that is not the pinned one never lands
        with atomic_file(target) as out, urllib.request.urlopen(asset.url, timeout=30) as r:
            for block in iter(lambda: r.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
            if asset.sha256 and digest.hexdigest() != asset.sha256:
                raise AssetError(f"{asset.url} is not the expected file (SHA-256 mismatch)")
    except OSError as exc:
        raise AssetError(_where_to_put(asset, target)) from exc
    return target


def _keras_file(asset: Asset) -> Path:
    import keras

    target = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / asset.name
    if target.is_file():
        return target
    try:
        return Path(keras.utils.get_file(asset.name, asset.url, cache_subdir="models"))
    except Exception as exc:  # Keras wraps network errors in several types
        raise AssetError(_where_to_put(asset, target)) from exc


@contextlib.contextmanager
def native_stderr_silenced(noise: re.Pattern[str] | None = None,
                           dropped: list[str] | None = None):
    """Take file descriptor 2 away while native code (TensorFlow, LiteRT, MediaPipe) logs.

    Without ``noise`` everything said meanwhile is dropped; with it, only the lines it
    matches are (added to ``dropped``, where given: what a caller may say in its own
    words), and the rest is written back afterwards, in order.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    sink = tempfile.TemporaryFile() if noise else open(os.devnull, "wb")  # noqa: SIM115
    try:
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if noise:
            sink.seek(0)
            said = sink.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in said if not noise.search(line))
            if dropped is not None:
                dropped.extend(line.strip() for line in said if noise.search(line))
            if kept:
                os.write(2, kept.encode())
        sink.close()
