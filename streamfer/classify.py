"""Emotion scores for face crops, in batches, with the averaged ResNet50/VGG19 model.

Four backends run the same weights: ``openvino`` and ``onnx`` (OpenVINO and ONNX Runtime,
both on the same int8 file, quantized with the calibrated ranges), ``tflite`` (TFLite fp32 with
XNNPACK) and ``keras`` (TensorFlow, fp32). The default, ``auto``, takes the faster int8 engine
on this CPU, measured once (:mod:`streamfer.runtimes.choose`; :attr:`Classifier.why` says what
was chosen and why), or ``tflite`` where the int8 file cannot be built; on a CUDA GPU it runs
ONNX Runtime's CUDA provider. The int8 engines need neither TensorFlow nor the Keras model,
which is loaded only for the other two. TFLite's int8 dynamic-range conversion was measured
and rejected: its scores moved by 0.067 on average on FER+ faces.

A face is scored as the mean of its crop and the crop's mirror image (``flip_average``, as the
shipped model's thresholds were calibrated), or one view at a time: ``predict(crops,
mirrored=mask)`` scores each crop once, mirrored where the mask says — in a video the
pipeline alternates the views frame by frame and the smoother averages them (half the work).

Example:
    >>> from streamfer.classify import Classifier
    >>> classifier = Classifier(backend="auto")        # the shipped default, SHA-256 checked
    >>> scores = classifier.predict(crops)             # doctest: +SKIP
    >>> scores.shape                                   # doctest: +SKIP
    (n, 6)                                             # Surprise, Fear, Disgust, Happiness, ...
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from streamfer.assets import MODELS_DIR, AssetError
from streamfer.frame import Face
from streamfer.labels import EMOTIONS, check_threshold
from streamfer.model import ModelConfig, load_model, read_config
from streamfer.runtimes import build
from streamfer.runtimes.runners import (
    DEVICES,
    EngineError,
    ONNXRunner,
    OpenVINORunner,
    TFLiteRunner,
    cuda_available,
    installed,
    require,
)

DEFAULT_MODEL = MODELS_DIR / "default.json"
BACKENDS = ("openvino", "onnx", "tflite", "keras")
log = logging.getLogger(__name__)


class Classifier:
    """Runs the model on 100×100 RGB crops; ``thresholds`` are the calibrated per-label ones.
    ``flip_average``: score each crop with its mirror image too and average (default: as
    the model file says, whose thresholds were calibrated that way). ``backend``: one of
    :data:`BACKENDS` or ``auto``; ``device``: ``auto`` (a CUDA GPU where ONNX Runtime has one,
    else the CPU), ``cpu`` or ``cuda``. :attr:`backend` is what runs; :attr:`why` says why, in
    one line. ``threads``: the engine's threads (default: every core this process has).

    Scores and thresholds come out in :data:`~streamfer.labels.EMOTIONS` order whatever
    order the model file lists its outputs in (its ``labels``), so the CSV's columns, the
    ``--threshold`` names and the overlay's colours all hold for it; a file whose labels are
    not the six emotions is refused in one line."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 32, *,
                 backend: str = "keras", device: str = "cpu", model=None,
                 config: ModelConfig | None = None, flip_average: bool | None = None,
                 threads: int | None = None) -> None:
        if backend not in (*BACKENDS, "auto"):
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
        # a model passed in is that model: never the default file's conversions
        path = Path(model_path) if model_path else (DEFAULT_MODEL if model is None else None)
        if model is None:
            if not path.is_file():
                raise AssetError(f"model file not found: {path}")
            config = read_config(path, check=False)[0]
        self._model, self._path, self.config = model, path, config
        self._order = _output_order(self.config.labels, path)  # file's outputs → EMOTIONS
        self.thresholds = np.asarray(self.config.thresholds, np.float32)[self._order]
        self.labels = EMOTIONS
        self.batch_size = batch_size
        # the model file says (its thresholds are calibrated one way or the other)
        self.flip_average = self.config.flip_average if flip_average is None else flip_average
        self.device, self.threads = _device(device, backend), threads
        self.backend, self.why = backend, f"{backend}: as asked"
        if self.device == "cuda":
            self._run = ONNXRunner(build.onnx_file(self._needs_file("onnx"), int8=False),
                                   device="cuda")
            self.backend, self.why = "onnx", "onnx: ONNX Runtime on the CUDA GPU (fp32)"
        elif backend == "auto":
            self._auto()
        elif backend in ("onnx", "openvino"):
            if not installed(backend):
                raise EngineError(f"--backend {backend} needs the {backend} package: "
                                  f"pip install {'onnxruntime' if backend == 'onnx' else backend}")
            runner = ONNXRunner if backend == "onnx" else OpenVINORunner
            self._run = runner(build.onnx_file(self._needs_file(backend)), threads)
        elif backend == "tflite":
            require(("tensorflow",), "--backend tflite")
            self._run = TFLiteRunner(build.tflite_file(self.model, config), threads)
        else:  # keras: any Keras backend (TensorFlow here, JAX on a GPU machine)
            require(("keras",), "--backend keras")
            keras_model = self.model
            self._run = lambda x: np.asarray(keras_model.predict_on_batch(x))

    def _needs_file(self, backend: str) -> Path:
        if self._path is None:
            raise AssetError(f"--backend {backend} needs the model's .json file")
        return self._path

    def _auto(self) -> None:
        """The fastest int8 engine here (measured once, see :mod:`streamfer.runtimes.choose`);
        TFLite where the int8 file cannot be built (a failure is remembered and said on every
        run)."""
        from streamfer.runtimes.choose import fastest

        failed = self._path is not None and build.onnx_failed(self._path)
        if failed:
            log.warning("using --backend tflite: building the ONNX model failed here "
                        "before (%s); run once with --backend onnx (or openvino) to try again",
                        failed)
        elif self._path is not None and installed("onnx"):
            try:
                choice = fastest(build.onnx_file(self._path), threads=self.threads)
                self._run, self.backend, self.why = choice.runner, choice.engine, choice.why
                return
            except AssetError as exc:
                log.warning("%s; using --backend tflite", exc)
                failed = str(exc)
        require(("tensorflow",), f"the tflite fallback ({failed or 'no int8 engine'})")
        self._run = TFLiteRunner(build.tflite_file(self.model, self.config), self.threads)
        self.backend = "tflite"
        self.why = (f"tflite: the int8 model could not be built here ({failed})" if failed
                    else "tflite: no int8 engine installed (pip install onnxruntime openvino)")

    @property
    def model(self):
        """The Keras model (loaded on first use: the ONNX backend does not need it)."""
        if self._model is None:
            self._model = load_model(self._path)[0]
        return self._model

    def predict(self, crops: np.ndarray, mirrored: np.ndarray | None = None) -> np.ndarray:
        """Scores (n, 6) in [0, 1] for uint8 crops (n, 100, 100, 3) RGB (or (n, 100, 100)
        gray): each crop and its mirror image averaged where :attr:`flip_average` is on; with
        ``mirrored`` (n booleans), each crop scored once, as its mirror image where True."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = np.repeat(crops[..., None], 3, axis=-1)
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        run = self._run
        if mirrored is not None:
            flip = np.asarray(mirrored, bool)
            crops = np.where(flip[:, None, None, None], crops[:, :, ::-1], crops)
        elif self.flip_average:
            run = mirror_averaged(run)
        out = [run(crops[i:i + self.batch_size].astype(np.float32))
               for i in range(0, len(crops), self.batch_size)]
        return np.concatenate(out).astype(np.float32)[:, self._order]

    def in_file_order(self, values) -> list:
        """Per-label ``values`` in :attr:`labels` order put in the model file's order (to
        write them into it, as ``streamfer thresholds`` does)."""
        out = [None] * len(values)
        for i, j in enumerate(self._order):
            out[j] = values[i]
        return out

    def thresholds_with(self, override: float | dict[str, float] | None) -> list[float]:
        """The calibrated thresholds, with one value for all labels or some labels replaced
        (each from 0 to 1, else :class:`ValueError`)."""
        if override is not None:
            check_threshold(override)
        values = [float(t) for t in self.thresholds]
        if isinstance(override, (int, float)):
            return [float(override)] * len(values)
        for label, value in (override or {}).items():
            values[self.labels.index(label)] = float(value)
        return values

    def classify(self, faces: list[Face], mirrored: list[bool] | None = None) -> None:
        """Set ``scores`` (and ``classified``) on every face that has a crop, in one batch;
        ``mirrored``: one view per face, as :meth:`predict` takes it."""
        todo = [i for i, f in enumerate(faces) if f.crop is not None]
        if not todo:
            return
        views = None if mirrored is None else [mirrored[i] for i in todo]
        scores = self.predict(np.stack([faces[i].crop for i in todo]), views)
        for i, row in zip(todo, scores):
            faces[i].scores, faces[i].classified = row, True


def _output_order(labels, path) -> np.ndarray:
    """Indices that put a model's outputs (named ``labels``, in its file's order) in
    :data:`EMOTIONS` order; a model whose labels are not the six (any case) is refused."""
    names = [str(label).strip().lower() for label in labels]
    if sorted(names) != sorted(e.lower() for e in EMOTIONS):
        raise AssetError(f"{path or 'the model'}: its labels ({', '.join(map(str, labels))}) "
                         f"are not the six emotions streamfer shows ({', '.join(EMOTIONS)})")
    return np.array([names.index(e.lower()) for e in EMOTIONS])


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
    """``auto``: the fastest int8 engine here where one is installed and the model builds,
    else ``tflite``."""
    return "auto"


def _device(device: str, backend: str) -> str:
    """``auto`` → ``cuda`` where ONNX Runtime has a CUDA GPU and the backend can use it,
    else ``cpu``; ``cuda`` where there is none, or with a backend that cannot use it, is one
    :class:`EngineError`."""
    gpu_backend = backend in ("auto", "onnx")
    if device == "auto":
        return "cuda" if gpu_backend and cuda_available() else "cpu"
    if device == "cuda" and not gpu_backend:
        raise EngineError(f"--device cuda runs --backend onnx (or auto), not {backend}")
    if device == "cuda" and not cuda_available():
        raise EngineError("--device cuda: ONNX Runtime has no CUDA GPU here (it needs an "
                          "NVIDIA GPU, its driver and pip install onnxruntime-gpu); "
                          "use --device cpu")
    return device
