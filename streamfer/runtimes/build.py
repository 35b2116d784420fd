"""Building the model's runtimes once per weights file, cached under ``$STREAMFER_HOME``
(running them is :mod:`streamfer.runtimes.runners`'s business).

ONNX: the model's graph, written from its Keras layers by :mod:`streamfer.runtimes.onnx_graph`
and shipped beside the weights (``<model>.graph.onnx``), is filled with the weights by numpy
and quantized by ONNX Runtime (static: QDQ, per-channel int8 weights with ``reduce_range``,
uint8 activations) in ~10 s and ~1.5 GB, without TensorFlow. The same int8 file runs in ONNX
Runtime and in OpenVINO. ``reduce_range`` matters on CPUs without VNNI, where full-range
u8×s8 products saturate: without it samples-F1 fell by 0.036 on FER+ Valid, with it by 0.004.
TFLite: ``TFLiteConverter.from_keras_model`` (exact; ~40 s and 3 GB for this model).

Static quantization needs each activation's range. They are measured once on labelled
faces (:func:`measure_int8_ranges`, run by ``streamfer export`` and ``streamfer
calibrate-int8``) and stored beside the weights as ``<model>.int8.json``, so a user's machine
quantizes without any data. A model without that file runs at fp32.

Example:
    >>> from streamfer.runtimes.build import onnx_file
    >>> onnx_file(Path("models/default.json"))        # doctest: +SKIP
    PosixPath('~/.cache/streamfer/onnx/fdeec4cd064d1dde-70bdbce9-int8.onnx')
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from streamfer.assets import AssetError, cache_dir, cached, native_stderr_silenced
from streamfer.files import write_atomically
from streamfer.model import ModelConfig, read_weights

log = logging.getLogger(__name__)
CALIBRATION_SUFFIX = ".int8.json"
GRAPH_SUFFIX = ".graph.onnx"


# Bumped whenever build_model's graph or its ONNX writing changes for the same weights (v2:
# gray inside the model; v3: ONNX written by streamfer.runtimes.onnx_graph), so that conversions
# cached by an older version are not reused.
GRAPH_VERSION = 3


def _digest(model_json: Path) -> str:
    """Cache key of a model file's conversions: its weights' SHA-256, its architecture and
    the graph version."""
    meta = json.loads(Path(model_json).read_text())
    config = {k: v for k, v in meta.items()
              if k not in ("metrics", *ModelConfig.INFERENCE_ONLY)}
    return hashlib.sha256(json.dumps([GRAPH_VERSION, config], sort_keys=True)
                          .encode()).hexdigest()[:16]


def model_digest(model, config) -> str:
    """Cache key of an in-memory model: its weights' bytes, its architecture, the graph
    version."""
    from dataclasses import asdict

    digest = hashlib.sha256(json.dumps([GRAPH_VERSION, asdict(config) if config else None],
                                       sort_keys=True, default=str).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


def tflite_file(model, config=None) -> Path:
    """The TFLite (fp32) conversion of ``model`` (keyed by its own weights), made once."""
    import tensorflow as tf

    target = cached("tflite", f"{model_digest(model, config)}-fp32.tflite")
    if target.is_file():
        return target
    log.warning("first use of these weights with this backend: converting once "
                "(a minute or two), cached in %s", target.parent)
    # from_keras_model, not model.export(): the latter's SavedModel scored 0.08 off Keras here
    # it prints the SavedModel it made, and TF's native code logs to fd 2
    with contextlib.redirect_stdout(io.StringIO()), native_stderr_silenced():
        blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    return write_atomically(target, blob)


def _fp32_onnx(graph, weights: list[np.ndarray], tmp: Path):
    """The graph filled with ``weights`` (fp32, dynamic batch), pre-processed for
    quantization (ONNX Runtime folds each batch norm into its convolution), its tensors
    named by position; a ModelProto."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from streamfer.runtimes.onnx_graph import with_weights

    onnx.save(with_weights(graph, weights), str(tmp / "raw.onnx"))
    quant_pre_process(str(tmp / "raw.onnx"), str(tmp / "pre.onnx"), skip_symbolic_shape=True)
    model = onnx.load(str(tmp / "pre.onnx"))
    _stable_names(model)
    return model


def _config_of(model_json: Path):
    from streamfer.model import read_config

    return read_config(model_json)[0]


def _stable_names(model) -> None:
    """Name every intermediate tensor by its node's position, so that the stored calibration
    ranges (keyed by name) do not depend on how ONNX Runtime's pre-processing names the
    tensors it makes."""
    graph = model.graph
    keep = {t.name for t in (*graph.input, *graph.output)}
    rename = {}
    for i, node in enumerate(graph.node):
        node.name = f"node{i}"
        for j, name in enumerate(node.output):
            if name and name not in keep:
                rename[name] = node.output[j] = f"node{i}:{j}"
    for node in graph.node:
        for j, name in enumerate(node.input):
            node.input[j] = rename.get(name, name)
    for info in graph.value_info:
        info.name = rename.get(info.name, info.name)


def _architecture(config) -> str:
    """Key of an architecture's graph: the config without its inference-only fields
    (thresholds, mirror averaging), and the graph version."""
    from dataclasses import asdict

    arch = {k: v for k, v in asdict(config).items() if k not in ModelConfig.INFERENCE_ONLY}
    return hashlib.sha256(json.dumps([GRAPH_VERSION, arch], sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


def graph_file(model_json: Path) -> Path:
    """``<model>.graph.onnx``: the model's ONNX graph without weights, beside its file."""
    return model_json.with_name(model_json.name.replace(".json", GRAPH_SUFFIX))


def model_graph(model_json: Path):
    """The model's ONNX graph without weights: the file beside it when it is of this
    architecture, else written once from the Keras model (needs TensorFlow; cached)."""
    import onnx

    from streamfer.runtimes.onnx_graph import architecture_of, graph_of

    arch = _architecture(_config_of(model_json))
    for path in (graph_file(model_json), cached("onnx", f"{arch}.graph.onnx")):
        if path.is_file():
            graph = onnx.load(str(path))
            if architecture_of(graph) == arch:
                return graph
    from streamfer.model import build_model

    graph = graph_of(build_model(_config_of(model_json), trainable_backbones=False), arch)
    write_atomically(cache_dir("onnx") / f"{arch}.graph.onnx", graph.SerializeToString())
    return graph


def onnx_file(model_json: Path, int8: bool = True) -> Path:
    """The int8 ONNX model for these weights (fp32 when no calibration file exists, or with
    ``int8=False``), built once and cached: the stored graph filled with the weights by numpy,
    then quantized with the stored ranges (~10 s, ~1.5 GB; no TensorFlow). A failure reaches
    the caller as one :class:`AssetError` and is remembered in the cache, so that the ``auto``
    backend does not try again."""
    model_json = Path(model_json)
    target = _onnx_target(model_json, int8)
    ranges = _load_ranges(_ranges_file(model_json), model_json) if int8 else None
    if target.is_file():
        return target
    if not ranges and int8:
        log.warning("no %s beside %s: ONNX Runtime will run it at fp32 (`streamfer calibrate-int8` "
                    "makes the int8 one)", _ranges_file(model_json).name, model_json.name)
    log.info("first run of this model here: building its int8 file once (about ten seconds), "
             "cached in %s", target.parent)
    failed = target.with_suffix(".failed")
    failed.unlink(missing_ok=True)
    try:
        with tempfile.TemporaryDirectory() as tmp, native_stderr_silenced():
            fp32 = _fp32_onnx(model_graph(model_json), read_weights(model_json)[1],
                              Path(tmp))
            if not ranges:
                return write_atomically(target, fp32.SerializeToString())
            _check_names(fp32, ranges)
            _quantize(fp32, Path(tmp) / "int8.onnx", ranges)
            return write_atomically(target, (Path(tmp) / "int8.onnx").read_bytes())
    except (AssetError, NotImplementedError, ValueError, OSError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        failed.write_text(reason + "\n")
        raise AssetError(f"could not build the ONNX model: {reason}") from None


def onnx_failed(model_json: Path) -> str | None:
    """Why building the ONNX model for these weights failed before on this machine (None: it
    did not)."""
    marker = _onnx_target(Path(model_json)).with_suffix(".failed")
    return marker.read_text().strip() or "unknown reason" if marker.is_file() else None


def _ranges_file(model_json: Path) -> Path:
    return model_json.with_name(model_json.name.replace(".json", CALIBRATION_SUFFIX))


def _onnx_target(model_json: Path, int8: bool = True) -> Path:
    """Cached ONNX model of these weights and (for int8) these ranges."""
    ranges = _ranges_file(model_json)
    if not (int8 and ranges.is_file()):
        return cached("onnx", f"{_digest(model_json)}-fp32.onnx")
    key = hashlib.sha256(ranges.read_bytes()).hexdigest()[:8]
    return cached("onnx", f"{_digest(model_json)}-{key}-int8.onnx")


def _check_names(fp32, ranges: dict) -> None:
    graph = fp32.graph
    names = {t for node in graph.node for t in (*node.input, *node.output)}
    stored = set(ranges.get("data", ranges))
    missing = sorted(stored - names - {"calibration_method", "smooth_quant"})
    if missing:
        raise AssetError(f"the int8 calibration does not fit this converter's graph "
                         f"({len(missing)} tensors unknown, e.g. {missing[0]}); run "
                         "`streamfer calibrate-int8` again or use --backend tflite")


def _load_ranges(path: Path, model_json: Path) -> dict | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("weights_sha256") != json.loads(model_json.read_text()).get("sha256"):
        raise AssetError(f"{path} belongs to other weights than {model_json}; "
                         "run `streamfer calibrate-int8` again")
    return data["ranges"]


@contextlib.contextmanager
def quiet_quantization():
    """ONNX Runtime's quantizer at work with only its errors shown (it logs through the root
    logger: "Axis 1 is out-of-range for weight …" for each 1-D weight, which is quantized per
    tensor as it should be)."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(max(logging.ERROR, before))
    try:
        yield
    finally:
        root.setLevel(before)


def _quantize(fp32, out: Path, cache: dict | None, reader=None) -> dict:
    """Static int8 quantization of ``fp32`` into ``out``, either from activation ranges
    measured before (``cache``, ONNX Runtime's calibration-cache format) or by measuring them
    with ``reader``; returns the ranges used."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        cache_path = Path(tmp) / "ranges.json"
        if cache is not None:
            cache_path.write_text(json.dumps(cache))
        # reduce_range: 7-bit weights, so that u8×s8 sums cannot saturate on CPUs without VNNI
        with quiet_quantization():
            quantize_static(fp32, str(out), reader, quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibration_cache_path=str(cache_path))
        return json.loads(cache_path.read_text())


def measure_int8_ranges(model, model_json: Path, crops: np.ndarray, batch: int = 32) -> Path:
    """Measure every activation's range on ``crops`` (uint8, n×100×100×3) and store them
    beside the weights as ``<model>.int8.json``, with the graph as ``<model>.graph.onnx``
    (so that no user's machine needs TensorFlow to build the ONNX model); returns the ranges
    file."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader

    from streamfer.runtimes.onnx_graph import graph_of

    model_json = Path(model_json)
    target = _ranges_file(model_json)
    graph = graph_of(model, _architecture(_config_of(model_json)))
    write_atomically(graph_file(model_json), graph.SerializeToString())
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = _fp32_onnx(graph, model.get_weights(), Path(tmp))
        feed = fp32.graph.input[0].name

        class Batches(CalibrationDataReader):
            def __init__(self):
                self.it = (crops[i:i + batch].astype(np.float32)
                           for i in range(0, len(crops), batch))

            def get_next(self):
                x = next(self.it, None)
                return None if x is None else {feed: x}

        ranges = _quantize(fp32, Path(tmp) / "int8.onnx", None, Batches())
    meta = {"weights_sha256": json.loads(model_json.read_text()).get("sha256"),
            "faces": int(len(crops)), "method": "min/max (ONNX Runtime calibration cache)",
            "made_with": {"onnxruntime": onnxruntime.__version__,
                          "graph": f"streamfer.runtimes.onnx_graph v{GRAPH_VERSION}"},
            "ranges": ranges}
    target.write_text(json.dumps(meta, indent=1) + "\n")
    return target
