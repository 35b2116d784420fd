"""The averaged ResNet50/VGG19 multi-label emotion model.

Two Keras application backbones, each with its own (ImageNet "caffe") preprocessing,
each projected to a common width, averaged with ``Average()`` as in the research, then a
small head ending in ``Dense(6, sigmoid)`` in :data:`streamfer.labels.EMOTIONS` order.

The model takes 100×100 RGB crops (values 0..255). ``work_size`` is the resolution the
backbones see: both end in global average pooling, so they run at any size; the shipped
default works at 48 px, the native size of its FER+ training faces.

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


@dataclass
class ModelConfig:
    """Everything needed to rebuild the architecture that a weights file belongs to."""

    input_size: int = INPUT_SIZE
    work_size: int = 48
    width: int = 256
    dropout: float = 0.3
    backbone_weights: str | None = None  # None: from scratch; "imagenet": Keras' download
    labels: tuple[str, ...] = EMOTIONS
    thresholds: list[float] = field(default_factory=lambda: [0.5] * len(EMOTIONS))

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["labels"] = tuple(known.get("labels", EMOTIONS))
        return cls(**known)


def build_model(config: ModelConfig, trainable_backbones: bool = True):
    """Build the Keras model; ``trainable_backbones=False`` freezes both (the research's setup)."""
    import keras
    from keras import layers
    from keras.applications import VGG19, ResNet50, resnet50, vgg19

    size = config.work_size
    inputs = keras.Input((config.input_size, config.input_size, 3), name="face_rgb")
    x = inputs
    if size != config.input_size:
        x = layers.Resizing(size, size, interpolation="bilinear", name="to_work_size")(x)

    branches = []
    for name, app, module in (("resnet50", ResNet50, resnet50), ("vgg19", VGG19, vgg19)):
        backbone = app(include_top=False, weights=config.backbone_weights,
                       input_shape=(size, size, 3), pooling="avg", name=name)
        backbone.trainable = trainable_backbones
        features = backbone(module.preprocess_input(x))
        features = layers.Dense(config.width, name=f"{name}_proj")(features)
        features = layers.BatchNormalization(name=f"{name}_bn")(features)
        branches.append(layers.Activation("relu", name=f"{name}_relu")(features))

    x = layers.Average(name="average")(branches)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    outputs = layers.Dense(len(config.labels), activation="sigmoid", dtype="float32",
                           name="emotions")(x)
    return keras.Model(inputs, outputs, name="streamfer_resnet50_vgg19")


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


def load_model(path: Path):
    """Rebuild the model described by ``path`` (.json) and load its verified weights."""
    from streamfer.assets import AssetError, verify

    try:
        meta = json.loads(Path(path).read_text())
        config = ModelConfig.from_dict(meta)
        meta["weights"]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise AssetError(f"{path} is not a streamfer model file ({type(exc).__name__})") from None
    weights = verify(Path(path).with_name(meta["weights"]), meta.get("sha256"))
    model = build_model(config, trainable_backbones=False)
    with np.load(weights) as z:
        model.set_weights([z[f"arr_{i}"].astype(np.float32) for i in range(len(z.files))])
    return model, config
