"""Train the ensemble on a labelled face dataset; resumable, seeded, logged.

A run folder holds everything of one training run: ``config.json`` (the architecture),
``backup/`` (Keras BackupAndRestore: a killed run resumes at its last finished epoch with
its optimizer state), ``best.weights.h5`` (the best epoch on the validation split by
mean average precision) and ``log.csv`` (one row per epoch).

Example:
    >>> from streamfer.train import TrainConfig, train
    >>> train(TrainConfig(data="../shared/data/ferplus", run_dir="runs/default"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from streamfer.backends import onnx_available
from streamfer.data import Dataset, load_dataset
from streamfer.model import ModelConfig, build_model, compact, load_model, save_weights


@dataclass
class TrainConfig:
    data: str
    run_dir: str
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 6e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    work_size: int = 48
    backbone_weights: str | None = None
    freeze_backbones: bool = False
    mixed_precision: bool = True
    seed: int = 1234
    max_pos_weight: float = 4.0
    steps_per_epoch: int | None = None  # None: one pass over the training split
    valid_split: str = "valid"
    init: str | None = None  # a model .json whose weights start the run (e.g. models/default.json)


def positive_weights(targets: np.ndarray, cap: float) -> np.ndarray:
    """Class-balancing weight of each label's positives: sqrt(neg/pos), in [1, cap]."""
    pos = targets.mean(axis=0).clip(1e-3, 1 - 1e-3)
    return np.sqrt((1 - pos) / pos).clip(1.0, cap).astype(np.float32)


def weighted_bce(pos_weight: np.ndarray):
    """Binary cross-entropy whose positive terms are scaled per label."""
    import keras
    from keras import ops

    weight = ops.convert_to_tensor(pos_weight)

    @keras.saving.register_keras_serializable("streamfer")
    def loss(y_true, y_pred):
        y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1 - 1e-7)
        terms = weight * y_true * ops.log(y_pred) + (1 - y_true) * ops.log(1 - y_pred)
        return -ops.mean(terms, axis=-1)

    return loss


def augmenter(seed: int):
    """Flip, small shifts/rotations/zoom, brightness and contrast, on 0..255 RGB batches."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.04, fill_mode="reflect", seed=seed + 1),
        layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed + 2),
        layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 3),
        layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 4),
        layers.RandomContrast(0.3, seed=seed + 5),
    ], name="augment")


def make_dataset(data: Dataset, batch_size: int, size: int, seed: int, training: bool):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((data.images, data.targets))
    if training:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=training)
    ds = ds.map(lambda x, y: (tf.image.resize(tf.cast(x, tf.float32), (size, size)), y),
                num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        aug = augmenter(seed)
        ds = ds.map(lambda x, y: (tf.clip_by_value(aug(x, training=True), 0, 255), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(2)


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or resume) the run in ``cfg.run_dir``; returns the best weights' path."""
    import keras

    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    train_data = load_dataset(cfg.data, "train")
    valid_data = load_dataset(cfg.data, cfg.valid_split)
    model_cfg = ModelConfig(work_size=cfg.work_size, backbone_weights=cfg.backbone_weights)
    model_cfg.to_json(run / "config.json")
    (run / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")

    # Train at the working size directly: the Resizing layer has no weights.
    model = build_model(ModelConfig(**{**asdict(model_cfg), "input_size": cfg.work_size}),
                        trainable_backbones=not cfg.freeze_backbones)
    if cfg.init:
        model.set_weights(load_model(Path(cfg.init))[0].get_weights())
    steps = cfg.steps_per_epoch or len(train_data) // cfg.batch_size
    total = steps * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total - cfg.warmup_steps), warmup_target=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        loss=weighted_bce(positive_weights(train_data.targets, cfg.max_pos_weight)),
        metrics=[keras.metrics.AUC(curve="PR", multi_label=True, num_labels=6, name="map")],
    )
    best = run / "best.weights.h5"
    best_so_far = _best_logged(run / "log.csv", "val_map")
    model.fit(
        make_dataset(train_data, cfg.batch_size, cfg.work_size, cfg.seed, training=True),
        validation_data=make_dataset(valid_data, 128, cfg.work_size, cfg.seed, training=False),
        epochs=cfg.epochs, steps_per_epoch=steps, verbose=1 if progress else 2,
        callbacks=[
            keras.callbacks.BackupAndRestore(str(run / "backup")),
            keras.callbacks.ModelCheckpoint(str(best), monitor="val_map", mode="max",
                                            save_best_only=True, save_weights_only=True,
                                            initial_value_threshold=best_so_far),
            keras.callbacks.CSVLogger(str(run / "log.csv"), append=True),
        ],
    )
    return best


def _best_logged(log: Path, column: str) -> float | None:
    """Best value of ``column`` in an earlier session's log, so a resumed run keeps its best."""
    if not log.is_file():
        return None
    import csv

    with open(log, newline="") as f:
        values = [float(row[column]) for row in csv.DictReader(f) if row.get(column)]
    return max(values, default=None)


class NotBetterError(RuntimeError):
    """The exported model does not beat the one already in place."""


def export(run_dir: str | Path, data: str | Path, out: str | Path, split: str = "valid",
           key: str = "samples_f1", force: bool = False) -> dict:
    """Best weights of a run → fp16 model file at ``out`` with thresholds calibrated on
    ``split``; refuses (unless ``force``) when the model at ``out`` scores better on ``key``."""
    from streamfer.classify import Classifier
    from streamfer.evaluate import calibrate_thresholds, evaluate, predict_dataset

    run, out = Path(run_dir), Path(out)
    config = ModelConfig.from_dict(json.loads((run / "config.json").read_text()))
    trained = build_model(ModelConfig(**{**asdict(config), "input_size": config.work_size}))
    trained.load_weights(str(run / "best.weights.h5"))
    model = build_model(config, trainable_backbones=False)
    model.set_weights([compact(w).astype(np.float32) for w in trained.get_weights()])

    valid = load_dataset(data, split)
    scores = predict_dataset(Classifier(model=model, config=config), valid)
    config.thresholds = calibrate_thresholds(valid.targets, scores)
    result = evaluate(valid.targets, scores, config.thresholds, config.labels, str(data), split)
    new = result["at"]["calibrated"][key]
    if out.is_file() and not force:
        old = json.loads(out.read_text()).get("metrics", {}).get(key, float("-inf"))
        if new <= old:
            raise NotBetterError(f"{key} {new:.4f} does not beat {old:.4f} of {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in result["at"]["calibrated"].items() if k != "per_label"}
    save_weights(model, config, out, {"metrics": summary, "trained_on": str(data),
                                      "selected_on": split})
    for name in ("log.csv", "train_config.json"):
        if (run / name).is_file():
            shutil.copy(run / name, out.with_name(f"training_{name}"))
    if onnx_available():
        calibrate_int8(out, data)
    return result


def calibrate_int8(model_json: str | Path, data: str | Path, faces: int = 256,
                   seed: int = 0) -> Path:
    """Store the int8 activation ranges of ``model_json`` (``<model>.int8.json``), measured
    on ``faces`` random Train faces of ``data``; ``--backend onnx`` quantizes with them."""
    from streamfer.backends import calibrate
    from streamfer.evaluate import as_crops

    model, _ = load_model(Path(model_json))
    train_data = load_dataset(data, "train")
    pick = np.random.default_rng(seed).choice(len(train_data), faces, replace=False)
    return calibrate(model, Path(model_json), as_crops(train_data.images[np.sort(pick)]))
