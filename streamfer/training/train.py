"""Train the ensemble on a labelled face dataset; resumable, seeded, logged, backend-agnostic.

The same code runs under any Keras 3 backend: TensorFlow on a CPU, JAX on a GPU machine
(``KERAS_BACKEND=jax``). Batches come from a :class:`keras.utils.PyDataset` over numpy
arrays and augmentation is a stack of Keras layers in front of the model, so no
``tf.data`` is involved; weights are saved in Keras' ``.weights.h5``, which either backend
loads.

A run folder holds everything of one training run: ``config.json`` (the architecture),
``backup/`` (Keras BackupAndRestore: a killed run resumes at its last finished epoch with
its optimizer state and learning-rate schedule), ``best.weights.h5`` (the best epoch so far on
the validation split by mean average precision, scikit-learn's, kept across resumptions) and
``log.csv`` (one row per epoch: losses, val mAP, val samples-F1 at calibrated thresholds,
seconds).

The model fits the dataset's soft targets (FER+: each emotion's share of the votes) with a
binary cross-entropy whose positive terms are weighted per label; validation uses the
binary labelling rule. Mixed precision (bf16) is used only where the hardware has it natively
(a GPU, or a CPU with AVX512-BF16/AMX): emulated bf16 was measured slower than fp32.

Example:
    >>> from streamfer.training.train import TrainConfig, train
    >>> train(TrainConfig(data="../shared/data/ferplus", run_dir="runs/default"))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import functools
import json
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from streamfer.files import write_atomically
from streamfer.interrupts import STOP_SIGNALS, stop_requested
from streamfer.model import (
    BACKBONES,
    ModelConfig,
    build_model,
    compact,
    load_model,
    read_config,
    save_weights,
)
from streamfer.runtimes.runners import installed
from streamfer.training import TrainingError
from streamfer.training.data import Dataset, load_dataset, resized


@dataclass
class TrainConfig:
    data: str
    run_dir: str
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 500
    augment: bool = True  # flips, shifts, rotations, zoom, brightness, contrast
    strong_augment: bool = False  # also random erasing, blur and shear (cross-dataset)
    hide_half: float = 0.0  # this share of faces gets its upper or lower part hidden
    work_size: int | None = None  # None: 48, or --init's size
    backbone_weights: str | None = None
    freeze_backbones: bool = False
    vgg: str = "bn"
    backbones: tuple[str, ...] = BACKBONES
    targets: str = "soft"  # "soft": vote shares; "rule": the binary labelling rule
    precision: str = "auto"  # "auto": bf16 where native, else fp32; "bf16"; "fp32"
    seed: int = 1234
    max_pos_weight: float = 4.0
    steps_per_epoch: int | None = None  # None: one pass over the training split
    valid_split: str = "valid"
    init: str | None = None  # a model .json whose weights (and architecture) start the run
    limit: int | None = None  # use only the first N faces of each split (smoke tests)
    head_only: bool = False  # train init's head alone on cached features (streamfer.training.head)
    extra_data: str | None = None  # more faces (folder-per-emotion, cropped by the detector)
    focal_gamma: float = 0.0  # > 0: focal loss (easy faces' terms scaled down)
    label_smoothing: float = 0.0  # targets pulled towards 0.5 by this much
    branch_loss: float = 0.0  # > 0: each backbone also scored alone (deep supervision)
    crop: str = "detect"  # folder-per-emotion photos: cropped by the detector, or "none"
    extra: dict = field(default_factory=dict)


def native_bf16() -> bool:
    """Whether this machine computes bf16 natively: a GPU under JAX, or a CPU with
    AVX512-BF16 or AMX (Linux ``/proc/cpuinfo`` flags)."""
    if keras.backend.backend() == "jax":
        import jax

        if jax.default_backend() == "gpu":
            return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def positive_weights(targets: np.ndarray, cap: float) -> np.ndarray:
    """Class-balancing weight of each label's positives: sqrt(neg/pos), in [1, cap]."""
    pos = targets.mean(axis=0).clip(1e-3, 1 - 1e-3)
    return np.sqrt((1 - pos) / pos).clip(1.0, cap).astype(np.float32)


def weighted_bce(pos_weight: np.ndarray, focal_gamma: float = 0.0,
                 label_smoothing: float = 0.0):
    """Binary cross-entropy (soft targets welcome) whose positive terms are scaled per label;
    ``focal_gamma`` > 0 makes it the focal loss (each term scaled by how wrong the score is,
    to that power: faces already right weigh less); ``label_smoothing`` pulls the targets
    towards 0.5 by that much."""
    from keras import ops

    weight = ops.convert_to_tensor(pos_weight)

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, "float32") * (1 - label_smoothing) + label_smoothing / 2
        y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1 - 1e-7)
        positive, negative = ops.log(y_pred), ops.log(1 - y_pred)
        if focal_gamma:
            positive = positive * (1 - y_pred) ** focal_gamma
            negative = negative * y_pred ** focal_gamma
        terms = weight * y_true * positive + (1 - y_true) * negative
        return -ops.mean(terms, axis=-1)

    return loss


def with_branches(loss, branches: int, weight: float):
    """The loss of a training model whose output is the ensemble's six scores followed by
    each backbone's own six (:func:`branch_supervised`): the ensemble's loss plus ``weight``
    times the backbones' mean loss, so that neither can ride on the other's features."""
    from keras import ops

    def total(y_true, y_pred):
        parts = ops.split(y_pred, branches + 1, axis=-1)
        alone = sum(loss(y_true, part) for part in parts[1:]) / branches
        return loss(y_true, parts[0]) + weight * alone

    return total


def branch_supervised(core, config: ModelConfig, inputs):
    """The training graph of ``core`` with deep supervision of its backbones: beside the
    ensemble's scores, each backbone's pooled features feed a six-sigmoid layer of their
    own (``<name>_alone``: a linear read-out), and the outputs are concatenated (N, 6 × (1 +
    backbones)). Trained with :func:`with_branches`. The averaged head lets one backbone
    carry the model while the other learns nothing (measured on the defaults: ResNet50's
    features held at their mean leave FER+ Valid mAP unchanged); a read-out of each
    backbone alone gives both a gradient of their own, whatever the head makes of them.
    ``core`` itself, what is saved and exported, is unchanged: the ``_alone`` layers live in
    the training graph only."""
    from keras import layers

    tapped = keras.Model(core.inputs, [core.output, *(
        core.get_layer(f"{name}_proj").input for name in config.backbones)])
    main, *pooled = tapped(inputs)
    alone = [layers.Dense(len(config.labels), activation="sigmoid", dtype="float32",
                          name=f"{name}_alone")(x)
             for name, x in zip(config.backbones, pooled)]
    return layers.Concatenate(name="with_branches", dtype="float32")([main, *alone])


class HideHalf(keras.layers.Layer):
    """On a share ``rate`` of the faces of a training batch, one part of the face under
    noise: the brows and eyes (the rows above ``UPPER`` of the side) or the mouth and chin
    (the rows below ``LOWER``), each as likely. Occlusion training: a face half hidden (a
    mask, a hand) must still be read from what shows, so the network cannot rest on one
    region — FER+'s anger, for one, is mostly read from an open mouth (the model card's
    "What the poses are, measured"). The identity outside training."""

    UPPER, LOWER = 0.5, 0.6  # fractions of the crop's side (a square crop with margin)

    def __init__(self, rate: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or not self.rate:
            return images
        from keras import ops

        n, side = ops.shape(images)[0], ops.shape(images)[1]
        hide = keras.random.uniform((n, 1, 1, 1), seed=self.generator) < self.rate
        upper = keras.random.uniform((n, 1, 1, 1), seed=self.generator) < 0.5
        row = ops.reshape(ops.arange(side, dtype="float32") / ops.cast(side, "float32"),
                          (1, -1, 1, 1))
        region = ops.where(upper, row < self.UPPER, row >= self.LOWER)
        noise = keras.random.uniform(ops.shape(images), 0.0, 255.0, seed=self.generator,
                                     dtype=images.dtype)
        return ops.where(ops.logical_and(hide, region), noise, images)

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def augmenter(seed: int, strong: bool = False, hide_half: float = 0.0):
    """Flip, small shifts/rotations/zoom, brightness and contrast, on 0..255 batches; active
    only in training. ``strong`` adds what cross-dataset recipes add: a small shear, a
    Gaussian blur of random strength and, on half the faces, a patch of noise over about a
    tenth of the face (random erasing; the model's gray layer makes it gray noise).
    ``hide_half`` > 0: that share of the faces has its upper or lower part hidden last
    (:class:`HideHalf`)."""
    from keras import layers

    stack = [
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.04, fill_mode="reflect", seed=seed + 1),
        layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed + 2),
        layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 3),
        layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 4),
        layers.RandomContrast(0.3, value_range=(0, 255), seed=seed + 5),
    ]
    if strong:
        stack += [
            layers.RandomShear(0.1, 0.1, fill_mode="reflect", seed=seed + 6),
            layers.RandomGaussianBlur(1.0, kernel_size=3, sigma=1.0, value_range=(0, 255),
                                      seed=seed + 7),
            layers.RandomErasing((0.5, 0.5), scale=(0.02, 0.2), value_range=(0, 255),
                                 seed=seed + 8),
        ]
    if hide_half:
        stack.append(HideHalf(hide_half, seed=seed + 9, dtype="float32"))
    if keras.backend.backend() == "jax":
        # Keras marks its rotation, shift, zoom and shear layers as not XLA-compilable
        # (presumably for TensorFlow's image transform), and a model holding one is then not
        # compiled whole: TensorFlow still runs its steps as graphs, but JAX runs them op by
        # op — on a GPU thousands of small launches and a fresh compile of each ``cond`` a
        # step (seen on an H200: 31 steps of 64 in seven minutes, compiling included).
        # Under JAX they trace (``jax.scipy.ndimage``), so the step is compiled whole there.
        for layer in stack:
            layer.supports_jit = True
    return keras.Sequential(stack, name="augment")


def make_dataset(data: Dataset, batch_size: int, size: int, seed: int, training: bool,
                 targets: str = "soft", steps: int | None = None, start: int = 0):
    """A Keras ``PyDataset`` of (float32 images at ``size``, targets) batches.

    ``training``: soft targets, full batches from a stream of passes over the faces, each
    pass a seeded permutation of its own; an epoch is ``steps`` batches of that stream
    (default: one pass), so an epoch need not end where a pass ends, and ``start`` (batches
    already trained) takes the stream up where a stopped run left it. Otherwise: every face
    once, in order, with the binary rule."""
    images = resized(data.images, size)
    y = data.soft if training and targets == "soft" else data.targets
    per_pass = max(1, len(y) // batch_size)

    @functools.lru_cache(maxsize=2)
    def permutation(n: int) -> np.ndarray:  # the order of the stream's n-th pass
        return np.random.default_rng([seed, n]).permutation(len(y))

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.position = start  # the epoch's first batch in the stream

        def __len__(self) -> int:
            return (steps or per_pass) if training else -(-len(y) // batch_size)

        def __getitem__(self, i: int):
            if training:
                n, k = divmod(self.position + i, per_pass)
                pick = np.sort(permutation(n)[k * batch_size:(k + 1) * batch_size])
            else:
                pick = np.arange(i * batch_size, min(len(y), (i + 1) * batch_size))
            return images[pick].astype(np.float32), y[pick].astype(np.float32)

        def on_epoch_end(self) -> None:
            self.position += len(self)

    return Batches()


def joined(data: Dataset, extra: Dataset, size: int) -> Dataset:
    """Two datasets' faces as one, at ``size`` px (the extra faces' binary labels are their
    soft targets: a single label has no vote shares)."""
    return Dataset(np.concatenate([resized(data.images, size), resized(extra.images, size)]),
                   np.concatenate([data.targets, extra.targets]), data.names + extra.names,
                   np.concatenate([data.soft, extra.targets]),
                   np.concatenate([data.majority, extra.majority]))


def _model_config(cfg: TrainConfig) -> ModelConfig:
    if cfg.init:  # the architecture is the starting model's; its size may change, as the
        # backbones end in global pooling (progressive resizing: train on at a larger size)
        config = read_config(Path(cfg.init), check=False)[0]
        return ModelConfig(**{**asdict(config), "thresholds": ModelConfig().thresholds,
                              "work_size": cfg.work_size or config.work_size})
    return ModelConfig(work_size=cfg.work_size or ModelConfig.work_size,
                       backbone_weights=cfg.backbone_weights,
                       vgg=cfg.vgg, backbones=tuple(cfg.backbones))


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or resume) the run in ``cfg.run_dir``; returns the best weights' path."""
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and native_bf16())
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")

    train_data = load_dataset(cfg.data, "train", cfg.crop)
    valid_data = load_dataset(cfg.data, cfg.valid_split, cfg.crop)
    extra = load_dataset(cfg.extra_data, "train", cfg.crop) if cfg.extra_data else None
    if cfg.limit:
        train_data = train_data.subset(np.arange(min(cfg.limit, len(train_data))))
        valid_data = valid_data.subset(np.arange(min(cfg.limit, len(valid_data))))
        extra = extra and extra.subset(np.arange(min(cfg.limit, len(extra))))
    if cfg.head_only and (not cfg.init or cfg.work_size):
        raise TrainingError("training the head alone needs --init, whose working size it keeps")
    model_cfg = _model_config(cfg)
    if cfg.branch_loss and (cfg.head_only or len(model_cfg.backbones) < 2):
        raise TrainingError("--branch-loss scores each backbone of the ensemble alone while "
                            "they train: not with --head-only or a single backbone")
    model_cfg.to_json(run / "config.json")
    trained = {"work_size": model_cfg.work_size, "vgg": model_cfg.vgg,  # what --init set
               "backbones": list(model_cfg.backbones),
               "backbone_weights": model_cfg.backbone_weights}
    (run / "train_config.json").write_text(
        json.dumps({**asdict(cfg), **trained, "bf16": bf16, "backend": keras.backend.backend()},
                   indent=2) + "\n")

    loss = weighted_bce(positive_weights(train_data.targets, cfg.max_pos_weight),
                        cfg.focal_gamma, cfg.label_smoothing)
    if cfg.head_only:
        from streamfer.training.head import train_head

        return train_head(cfg, run, train_data, valid_data, extra, model_cfg, loss,
                          lambda total: adamw(cfg, total))
    if extra is not None:
        train_data = joined(train_data, extra, model_cfg.work_size)

    # Train at the working size directly: the Resizing layer has no weights.
    size = model_cfg.work_size
    core = build_model(ModelConfig(**{**asdict(model_cfg), "input_size": size}),
                       trainable_backbones=not cfg.freeze_backbones)
    if cfg.init:
        core.set_weights(load_model(Path(cfg.init))[0].get_weights())
    inputs = keras.Input((size, size, 3))
    augmented = (augmenter(cfg.seed, cfg.strong_augment, cfg.hide_half)(inputs)
                 if cfg.augment else inputs)
    if cfg.branch_loss:
        model = keras.Model(inputs, branch_supervised(core, model_cfg, augmented),
                            name="training")
        loss = with_branches(loss, len(model_cfg.backbones), cfg.branch_loss)
    else:
        model = keras.Model(inputs, core(augmented), name="training")
    steps = cfg.steps_per_epoch or max(1, len(train_data) // cfg.batch_size)
    model.compile(optimizer=adamw(cfg, steps * cfg.epochs), loss=loss)
    best = run / "best.weights.h5"
    backup = _Backup(str(run / "backup"), save_freq=100, delete_checkpoint=False)
    with stop_requested(signals=STOP_SIGNALS) as backup.stop:
        fit_resumable(
            model, lambda start, count: make_dataset(train_data, cfg.batch_size, size, cfg.seed,
                                                     True, cfg.targets, count, start),
            cfg.epochs, steps, backup,
            [_Validation(core, make_dataset(valid_data, 128, size, cfg.seed, False),
                         valid_data.targets, best, _best_logged(run / "log.csv", "val_map")),
             keras.callbacks.CSVLogger(str(run / "log.csv"), append=True),
             *([] if progress else [_StepLog(cfg.epochs, steps)])],
            verbose=1 if progress else 2)
    return best


def fit_resumable(model, batches, epochs: int, steps: int, backup: _Backup, callbacks: list,
                  verbose: int = 2) -> None:
    """``model.fit`` for ``epochs`` epochs of ``steps`` steps, drawn from ``batches(start,
    count)``; a run stopped mid-epoch (``backup`` restores its weights and optimizer) first
    trains the rest of that epoch, on the batches it had not reached, then the epochs left."""
    epoch, done = backup.resume_point()
    callbacks = [backup, *callbacks]
    if 0 < done < steps and epoch < epochs:
        for callback in callbacks:
            if hasattr(callback, "offset"):
                callback.offset = done  # steps of this epoch already trained
        model.fit(batches(epoch * steps + done, steps - done), epochs=epoch + 1,
                  steps_per_epoch=steps - done, verbose=verbose, callbacks=callbacks)
        epoch += 1
    model.fit(batches(epoch * steps, steps), epochs=epochs, steps_per_epoch=steps,
              verbose=verbose, callbacks=callbacks)


def adamw(cfg: TrainConfig, total: int):
    """AdamW over ``total`` steps: linear warm-up to the peak rate, then cosine decay."""
    warmup = min(cfg.warmup_steps, total // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total - warmup), warmup_target=cfg.learning_rate,
        warmup_steps=warmup)
    return keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)


class TrainingStopped(KeyboardInterrupt):
    """Training was asked to stop (Ctrl-C, SIGTERM, a hang-up) and did, its backup written at
    the step it had reached."""

    def __init__(self, backup_dir: str, epoch: int, done: int, steps: int) -> None:
        super().__init__(f"stopped at epoch {epoch + 1}, step {done} of {steps}: the backup in"
                         f" {backup_dir} holds it, and the same command goes on from there")


class _Backup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, saved at the end of every epoch *and* every ``save_freq``
    steps (a CPU epoch can take an hour: a stop mid-epoch keeps the weights of its last
    hundred steps), and kept after the last epoch, so that a later call with more epochs
    goes on from there. Its metadata also holds ``done``, the steps of the epoch already
    trained (Keras itself restores only the epoch, and would train that epoch from its first
    step again): :func:`fit_resumable` resumes there. Once ``stop`` is set (a first Ctrl-C or
    SIGTERM), the step under way ends, is backed up, and :class:`TrainingStopped` is raised:
    a stop loses no step."""

    offset = done = 0  # steps of the current epoch trained before this fit began; so far
    stop: threading.Event | None = None

    def resume_point(self) -> tuple[int, int]:
        """(epoch, steps of it already trained) where the backed-up run stopped."""
        path = Path(self._training_metadata_path)
        if not path.is_file():
            return 0, 0
        meta = json.loads(path.read_text())
        legacy = meta.get("batch", 0) + 1 if meta.get("batch", 0) > 0 else 0  # older backups
        return int(meta.get("epoch", 0)), int(meta.get("done", legacy))

    def on_train_begin(self, logs=None) -> None:
        super().on_train_begin(logs)
        # Keras restores the epoch to start from but counts its own from 0 again: a backup
        # taken mid-way through a resumed run's first epoch would send the next resume back
        # to epoch 0 (its schedule already spent)
        self._current_epoch = getattr(self.model, "_initial_epoch", None) or 0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.done = self.offset

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.done += 1
        super().on_train_batch_end(batch, logs)
        if self.stop is not None and self.stop.is_set():
            self._save_model()
            raise TrainingStopped(self.backup_dir, self._current_epoch, self.done,
                                  self.offset + self.params["steps"])

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.done = self.offset = 0
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()

    def _save_model(self) -> None:
        super()._save_model()
        path = Path(self._training_metadata_path)
        write_atomically(path, json.dumps({**json.loads(path.read_text()), "done": self.done}))


class _StepLog(keras.callbacks.Callback):
    """Without a progress bar (a run in the background, its output to a file: Keras then
    writes one line an epoch, which on a CPU can be an hour), a line about every tenth of an
    epoch: the step, the epoch's mean loss so far, seconds a step and the epoch's time left."""

    offset = 0  # steps of the current epoch trained before this fit began

    def __init__(self, epochs: int, steps: int) -> None:
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.every = max(1, min(50, steps // 10))
        self.epoch, self.started = 0, time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch, self.started = epoch, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.offset = 0

    def on_train_batch_end(self, batch, logs=None) -> None:
        done = self.offset + batch + 1
        if done % self.every and done != self.steps:
            return
        per_step = (time.perf_counter() - self.started) / (batch + 1)
        left = (self.steps - done) * per_step
        loss = (logs or {}).get("loss")
        print(f"epoch {self.epoch + 1}/{self.epochs} step {done}/{self.steps}"
              + (f"  loss {float(loss):.4f}" if loss is not None else "")
              + f"  {per_step:.2f} s/step  {left / 60:.0f} min left in the epoch", flush=True)


class _Validation(keras.callbacks.Callback):
    """Each epoch: val mAP, samples-F1 and macro-F1 at calibrated thresholds (scikit-learn,
    the metrics we report) into the logs; the core model's weights saved when mAP beats the
    best so far."""

    def __init__(self, core, batches, targets, best: Path, best_so_far: float | None) -> None:
        super().__init__()
        self.core, self.batches, self.targets = core, batches, targets
        self.best, self.best_map = best, best_so_far
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        from streamfer.training.evaluate import calibrate_thresholds, compute_metrics

        scores = np.concatenate([np.asarray(self.core.predict_on_batch(self.batches[i][0]),
                                            np.float32) for i in range(len(self.batches))])
        metrics = compute_metrics(self.targets, scores, calibrate_thresholds(self.targets,
                                                                             scores))
        if logs is not None:  # CSVLogger, after this callback, writes them
            logs.update(val_map=metrics["mAP"], val_samples_f1=metrics["samples_f1"],
                        val_macro_f1=metrics["macro_f1"],
                        seconds=time.perf_counter() - self.started)
        if self.best_map is None or metrics["mAP"] > self.best_map:
            self.best_map = metrics["mAP"]
            self.core.save_weights(str(self.best))
        print(f"epoch {epoch + 1}: val mAP {metrics['mAP']:.4f} samples-F1 "
              f"{metrics['samples_f1']:.4f} macro-F1 {metrics['macro_f1']:.4f} "
              f"(best {self.best_map:.4f})", flush=True)


def _best_logged(log: Path, column: str) -> float | None:
    """Best value of ``column`` in an earlier session's log, so a resumed run keeps its best."""
    if not log.is_file():
        return None
    with open(log, newline="") as f:
        values = [float(row[column]) for row in csv.DictReader(f) if row.get(column)]
    return max(values, default=None)


class NotBetterError(RuntimeError):
    """The exported model does not beat the one already in place."""


def export(run_dir: str | Path, data: str | Path, out: str | Path, split: str = "valid",
           key: str = "mAP", force: bool = False, int8: bool = True,
           flip_average: bool = True, crop: str = "detect") -> dict:
    """Best weights of a run → fp16 model file at ``out`` with thresholds calibrated on
    ``split``; refuses (unless ``force``) when the model at ``out``, measured again on the
    same split and with the same ``flip_average``, scores as well on ``key``. ``int8``: also
    measure the int8 ranges and store the weightless ONNX graph beside the weights
    (:func:`streamfer.runtimes.build.measure_int8_ranges`: seconds, ~1.5 GB)."""
    from streamfer.classify import Classifier
    from streamfer.training.evaluate import calibrate_thresholds, evaluate, predict_dataset

    run, out = Path(run_dir), Path(out)
    model, config = best_model(run, flip_average)
    valid = load_dataset(data, split, crop)

    def measure(classifier: Classifier) -> dict:
        scores = predict_dataset(classifier, valid)
        thresholds = calibrate_thresholds(valid.targets, scores)
        return evaluate(valid.targets, scores, thresholds, classifier.labels, str(data), split,
                        valid.majority)

    result = measure(Classifier(model=model, config=config, backend="keras"))
    config.thresholds = result["at"]["calibrated"]["thresholds"]
    new = result["at"]["calibrated"][key]
    if out.is_file() and not force:  # measured again: the stored figures may be of older rules
        old = measure(Classifier(out, backend="keras", flip_average=flip_average)
                      )["at"]["calibrated"][key]
        if new <= old:
            raise NotBetterError(f"{key} {new:.4f} does not beat {old:.4f} of {out} on {split}")
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in result["at"]["calibrated"].items() if k != "per_label"}
    save_weights(model, config, out, {"metrics": summary, "trained_on": str(data),
                                      "selected_on": split})
    for name in ("log.csv", "train_config.json"):
        if (run / name).is_file():
            shutil.copy(run / name, out.with_name(f"training_{name}"))
    if int8 and installed("onnx"):
        calibrate_int8(out, data, crop=crop)
    return result


def best_model(run_dir: str | Path, flip_average: bool = True):
    """(model, config) of a run's best weights as a model file holds them: at the 100-px
    input, each weight as its fp16 copy reads back (:func:`streamfer.model.compact`)."""
    run = Path(run_dir)
    missing = [name for name in ("config.json", "best.weights.h5") if not (run / name).is_file()]
    if missing:  # (the weights are written at the end of a run's first pass)
        raise TrainingError(f"{run} is not a training run with weights to export (no "
                            f"{' nor '.join(missing)}): give the --out of `streamfer train`, "
                            f"after its first pass")
    config = ModelConfig.from_dict(json.loads((run / "config.json").read_text()))
    config.flip_average = flip_average
    trained = build_model(ModelConfig(**{**asdict(config), "input_size": config.work_size}))
    trained.load_weights(str(run / "best.weights.h5"))
    model = build_model(config, trainable_backbones=False)
    model.set_weights([compact(w).astype(np.float32) for w in trained.get_weights()])
    return model, config


def calibrate_int8(model_json: str | Path, data: str | Path, faces: int = 256,
                   seed: int = 0, crop: str = "detect") -> Path:
    """Store the int8 activation ranges of ``model_json`` (``<model>.int8.json``), measured
    on ``faces`` random Train faces of ``data``; the int8 engines quantize with them."""
    from streamfer.runtimes.build import measure_int8_ranges
    from streamfer.training.evaluate import as_crops

    model, _ = load_model(Path(model_json))
    train_data = load_dataset(data, "train", crop)
    pick = np.random.default_rng(seed).choice(len(train_data), faces, replace=False)
    return measure_int8_ranges(model, Path(model_json),
                               as_crops(train_data.images[np.sort(pick)]))
