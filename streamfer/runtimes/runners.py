"""Running the model: one runner per engine, each a callable from a batch of crops
``(n, 100, 100, 3)`` float32 (RGB, 0..255) to scores ``(n, 6)``.

The int8 engines run the very file :func:`streamfer.runtimes.build.onnx_file` builds (the
shipped graph filled with the weights, quantized with the shipped ranges): ONNX Runtime, and
OpenVINO, which reads the same ONNX file and compiles it for the CPU at hand (its compiled
form is cached under ``$STREAMFER_HOME/openvino``). Which of them is faster depends on the
CPU; :mod:`streamfer.runtimes.choose` measures it. TFLite (XNNPACK, fp32) runs the TFLite
conversion and needs TensorFlow. On a CUDA GPU, ONNX Runtime's CUDA provider runs the fp32
ONNX file (int8 QDQ graphs are a CPU format).

Example:
    >>> from streamfer.runtimes.runners import OpenVINORunner
    >>> run = OpenVINORunner(onnx_file(Path("models/default.json")))  # doctest: +SKIP
    >>> run(crops.astype(np.float32)).shape                            # doctest: +SKIP
    (n, 6)
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from streamfer.assets import cache_dir, native_stderr_silenced


class EngineError(RuntimeError):
    """An engine or device that was asked for is not to be had here."""


TRAIN_EXTRA = "pip install 'streamfer[train]'"


def require(modules: tuple[str, ...], what: str, extra: str = TRAIN_EXTRA) -> None:
    """One :class:`EngineError` naming the extra to install where a module ``what`` needs is
    missing (TensorFlow and scikit-learn are the ``train`` extra)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise EngineError(f"{what} needs {' and '.join(missing)}: {extra}")


INT8_ENGINES = ("openvino", "onnx")  # what ``auto`` measures, in order of preference on a tie
DEVICES = ("auto", "cpu", "cuda")


def cpu_threads() -> int:
    """The cores this process may run on (a container's or ``taskset``'s limit, not the
    machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def installed(engine: str) -> bool:
    """Whether the Python package of ``engine`` (``onnx``, ``openvino``) is installed."""
    modules = {"onnx": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}[engine]
    return all(importlib.util.find_spec(m) is not None for m in modules)


def cuda_available() -> bool:
    """Whether ONNX Runtime here can run on a CUDA GPU (``onnxruntime-gpu`` and a driver)."""
    if not installed("onnx"):
        return False
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


class ONNXRunner:
    """An ONNX Runtime session: on the CPU with ``threads`` (default: every core this process
    has), or on a CUDA GPU; its warnings silenced."""

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.log_severity_level = 3  # buffer-reuse notes on batch-size changes are noise
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" \
            else ["CPUExecutionProvider"]
        self._session = ort.InferenceSession(str(path), options, providers=providers)
        self._input = self._session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: x})[0]


def import_openvino():
    """``import openvino``, leaving nothing in the user's home. Importing it sets up
    OpenVINO's usage telemetry (for its model converter, which streamfer never calls): a
    client id and a usage count written under ``~/intel``, and two warnings where the home
    cannot be written (a container, a service account, a Ray worker). The library's own
    switch for automated runs (``CI=true``) declines it; it is set while the import runs,
    and only then. Nothing is sent either way."""
    if "openvino" not in sys.modules:
        saved = os.environ.get("CI")
        os.environ["CI"] = "true"
        try:
            import openvino  # noqa: F401
        finally:
            if saved is None:
                os.environ.pop("CI", None)
            else:
                os.environ["CI"] = saved
    return sys.modules["openvino"]


class OpenVINORunner:
    """OpenVINO on the CPU, compiled for latency with ``threads`` (default: every core this
    process has); the compiled model is cached, so a later start takes ~0.1 s."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ov = import_openvino()
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(cache_dir("openvino"))})
        self._compiled = core.compile_model(str(path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads or cpu_threads()})
        self._request = self._compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # the result views the request's own buffer, which the next call overwrites
        return np.array(self._request.infer({0: np.ascontiguousarray(x)})[0])


class TFLiteRunner:
    """A TFLite interpreter (XNNPACK) for batch 1 and one resized to larger batches."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import tensorflow as tf

        def make():
            with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated" (it works)
                warnings.simplefilter("ignore", UserWarning)
                return tf.lite.Interpreter(model_path=str(path),
                                           num_threads=threads or cpu_threads())

        self._make = make
        self._interpreters: dict[bool, tuple] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        single = len(x) == 1
        if single not in self._interpreters:
            self._interpreters[single] = (self._make(), 0)
        interpreter, size = self._interpreters[single]
        inp = interpreter.get_input_details()[0]["index"]
        if size != len(x):
            interpreter.resize_tensor_input(inp, list(x.shape))
            with native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                interpreter.allocate_tensors()
                interpreter.set_tensor(inp, x)
                interpreter.invoke()
            self._interpreters[single] = (interpreter, len(x))
        else:
            interpreter.set_tensor(inp, x)
            interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()
