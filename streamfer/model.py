"""The averaged ResNet50/VGG19 multi-label emotion model.

Two backbones, each with its own preprocessing, each projected to a common width, averaged
with ``Average()`` as in the research, then a small head ending in ``Dense(6, sigmoid)`` in
:data:`streamfer.labels.EMOTIONS` order.

The model takes 100×100 crops (RGB, values 0..255) and turns them to gray *inside the graph*
(BT.601 luma, replicated to three channels): its training faces (FER+) are grayscale, so
every backend and every caller sees what training saw, and a colour face scores as its gray
version does. ``work_size`` is the resolution the backbones see: both end in global average
pooling, so they run at any size; the shipped default works at 64 px (trained at 48 px, the
native size of its FER+ faces, then on at 64: the model card).

``vgg="bn"`` (the default for new models) is VGG19's layout with batch normalisation after
every convolution, which trains from scratch stably; ``vgg="plain"`` is Keras' own ``VGG19``
(the one the ``imagenet`` weights belong to, and the architecture of models made before).

Example:
    >>> from streamfer.model import ModelConfig, build_model
    >>> model = build_model(ModelConfig(work_size=48))
    >>> model.output_shape
    (None, 6)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from streamfer.labels import EMOTIONS

INPUT_SIZE = 100
LUMA = (0.299, 0.587, 0.114)  # BT.601, as OpenCV's RGB→gray
BACKBONES = ("resnet50", "vgg19")
_VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


@dataclass
class ModelConfig:
    """Everything needed to rebuild the architecture that a weights file belongs to."""

    input_size: int = INPUT_SIZE
    work_size: int = 48
    width: int = 256
    dropout: float = 0.3
    backbone_weights: str | None = None  # None: from scratch; "imagenet": Keras' download
    vgg: str = "bn"  # "bn": VGG19 with batch norm (from scratch); "plain": Keras' VGG19
    backbones: tuple[str, ...] = BACKBONES  # one of them alone: the ablation baselines
    labels: tuple[str, ...] = EMOTIONS
    thresholds: list[float] = field(default_factory=lambda: [0.5] * len(EMOTIONS))
    # inference, not graph: a face's scores are averaged with its mirror image's, and the
    # thresholds are calibrated on those averages (see streamfer.classify)
    flip_average: bool = True

    INFERENCE_ONLY = ("thresholds", "flip_average")  # fields that leave the graph as it is

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["labels"] = tuple(known.get("labels", EMOTIONS))
        known["backbones"] = tuple(known.get("backbones", BACKBONES))
        known.setdefault("vgg", "plain")  # files written before the option had Keras' VGG19
        known.setdefault("flip_average", False)  # their thresholds were calibrated without it
        return cls(**known)


def build_model(config: ModelConfig, trainable_backbones: bool = True):
    """Build the Keras model; ``trainable_backbones=False`` freezes both (the research's setup)."""
    import keras
    from keras import layers

    size = config.work_size
    inputs = keras.Input((config.input_size, config.input_size, 3), name="face_rgb")
    x = _grayscale_layer()(inputs)
    if size != config.input_size:
        x = layers.Resizing(size, size, interpolation="bilinear", name="to_work_size")(x)

    features = []
    for name in config.backbones:
        backbone, preprocess = _backbone(name, config, size)
        backbone.trainable = trainable_backbones
        features.append(backbone(preprocess(x)))
    return keras.Model(inputs, head(config, features),
                       name="streamfer_" + "_".join(config.backbones))


def head(config: ModelConfig, features: list):
    """What follows the backbones, on their pooled ``features`` (one tensor each): each
    projected (Dense + BatchNorm + ReLU), averaged, dropout, the six sigmoid outputs."""
    from keras import layers

    branches = []
    for name, x in zip(config.backbones, features):
        x = layers.Dense(config.width, name=f"{name}_proj")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        branches.append(layers.Activation("relu", name=f"{name}_relu")(x))
    x = layers.Average(name="average")(branches) if len(branches) > 1 else branches[0]
    x = layers.Dropout(config.dropout, name="dropout")(x)
    return layers.Dense(len(config.labels), activation="sigmoid", dtype="float32",
                        name="emotions")(x)


def _grayscale_layer():
    """A weightless layer: RGB (0..255) → BT.601 luma, replicated to three channels."""
    import keras
    from keras import ops

    class Grayscale(keras.layers.Layer):
        def call(self, x):
            luma = ops.sum(x * ops.convert_to_tensor(LUMA, dtype=x.dtype), axis=-1,
                           keepdims=True)
            return ops.concatenate([luma, luma, luma], axis=-1)

    return Grayscale(name="grayscale")


def _backbone(name: str, config: ModelConfig, size: int):
    """(backbone model, its preprocessing) for ``name``."""
    from keras.applications import VGG19, ResNet50, resnet50, vgg19

    if name == "resnet50":
        return (ResNet50(include_top=False, weights=config.backbone_weights,
                         input_shape=(size, size, 3), pooling="avg", name=name),
                resnet50.preprocess_input)
    if name != "vgg19":
        raise ValueError(f"unknown backbone {name!r}: use {' and/or '.join(BACKBONES)}")
    if config.vgg == "plain" or config.backbone_weights:
        return (VGG19(include_top=False, weights=config.backbone_weights,
                      input_shape=(size, size, 3), pooling="avg", name=name),
                vgg19.preprocess_input)
    return _vgg19_bn(size), vgg19.preprocess_input


def _vgg19_bn(size: int):
    """VGG19's sixteen 3×3 convolutions in five blocks, each followed by batch norm."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3))
    x = inputs
    for b, (filters, convs) in enumerate(_VGG19_BLOCKS, start=1):
        for c in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                              name=f"block{b}_conv{c}")(x)
            x = layers.BatchNormalization(name=f"block{b}_bn{c}")(x)
            x = layers.Activation("relu", name=f"block{b}_relu{c}")(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool", padding="same")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name="vgg19")


def compact(weight: np.ndarray) -> np.ndarray:
    """fp16 where the values fit it; fp32 for the few that do not (e.g. the batch-norm
    statistics of VGG19's unnormalised features, ~1e16 when trained from scratch)."""
    return weight.astype(np.float16) if np.abs(weight).max(initial=0) < 6e4 else weight


def save_weights(model, config: ModelConfig, path: Path, extra: dict | None = None) -> Path:
    """Write ``path`` (.json: config, SHA-256, metrics) beside its ``.weights.npz`` (fp16
    where the values fit, see :func:`compact`)."""
    from streamfer.assets import sha256

    path = Path(path)
    weights = path.with_suffix(".weights.npz")
    np.savez_compressed(weights, *[compact(w) for w in model.get_weights()])
    meta = {**asdict(config), "weights": weights.name, "sha256": sha256(weights), **(extra or {})}
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_config(path: Path, check: bool = True) -> tuple[ModelConfig, Path]:
    """The architecture a model file (.json) describes, and its weights file (``check``:
    there, and of the SHA-256 the file records)."""
    from streamfer.assets import AssetError, verify

    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except ValueError:  # (a JSON error, or bytes that are no text)
        raise AssetError(f"{path} is not a streamfer model file (not JSON{_weights_of(path)})"
                         ) from None
    try:
        if not isinstance(meta, dict) or not isinstance(meta.get("weights"), str):
            raise KeyError("weights")
        config = ModelConfig.from_dict(meta)
        weights = path.with_name(meta["weights"])
        if not config.backbones or not set(config.backbones) <= set(BACKBONES):
            raise ValueError("backbones")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        why = f"no {exc.args[0]!r} field" if isinstance(exc, KeyError) and exc.args else \
            f"its {exc.args[0]} are not ours" if exc.args == ("backbones",) else \
            type(exc).__name__
        raise AssetError(f"{path} is not a streamfer model file ({why}{_weights_of(path)})"
                         ) from None
    if not check:
        return config, weights
    if not weights.is_file():
        raise AssetError(f"{path}: its weights, {weights.name}, are not beside it in "
                         f"{weights.parent.resolve()} (a model file goes with its "
                         ".weights.npz: copy both)")
    return config, verify(weights, meta.get("sha256"))


def _weights_of(path: Path) -> str:
    """Where ``path`` is a model's weights, graph or int8 ranges (``default.weights.npz``,
    ``default.graph.onnx``, ``default.int8.json``), which model file to give instead."""
    for suffix, what in ((".weights.npz", "weights"), (".graph.onnx", "ONNX graph"),
                         (".int8.json", "int8 ranges")):
        if path.name.endswith(suffix):
            return f": it is a model's {what}; give its model file, " \
                   f"{path.name[:-len(suffix)]}.json"
    return ""


def read_weights(path: Path) -> tuple[ModelConfig, list[np.ndarray]]:
    """The architecture of the model file ``path`` (.json) and its weights (checked against
    their SHA-256), as fp32 numpy arrays in the model's order; the one reader of weights
    files (Keras loads them from here, the ONNX build fills its graph with them)."""
    config, weights = read_config(path)
    with np.load(weights) as z:
        return config, [z[f"arr_{i}"].astype(np.float32) for i in range(len(z.files))]


def load_model(path: Path):
    """Rebuild the model described by ``path`` (.json) and load its verified weights."""
    config, weights = read_weights(path)
    model = build_model(config, trainable_backbones=False)
    model.set_weights(weights)
    return model, config
