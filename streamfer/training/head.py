"""Train the model's head alone on cached backbone features: minutes instead of hours.

The head is what follows the two backbones: each branch's projection (Dense + BatchNorm +
ReLU), their average, dropout and the six sigmoid outputs. With the backbones frozen and no
augmentation, a face's pooled backbone features never change, so they are computed once
(ONNX Runtime, fp32, both views of each face: as it is and mirrored), cached, and the head
is trained on them in seconds an epoch. That makes ablations of the data, the loss and the
targets affordable on a CPU (each a full training would take hours); what it cannot show is
what retraining the backbones would do.

A head-only run writes an ordinary run folder (``config.json``, ``best.weights.h5`` of the
whole model, ``log.csv``), so ``streamfer export --run`` ships it as any other run.

Example (the command line; ``TrainConfig(head_only=True, init=...)`` from Python)::

    streamfer train --data ../shared/data/ferplus --init models/default.json --head-only \
        --epochs 15 --batch-size 256 --lr 3e-4 --out runs/head
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from streamfer.assets import cache_dir
from streamfer.files import atomic_file
from streamfer.model import BACKBONES, ModelConfig, read_config
from streamfer.training.data import Dataset
from streamfer.training.evaluate import as_crops

FEATURE_DIMS = {"resnet50": 2048, "vgg19": 512}  # each backbone's pooled features


def backbone_features(model_json: str | Path, data: Dataset, batch: int = 64,
                      mirrored: bool = False) -> dict[str, np.ndarray]:
    """Each backbone's pooled features (name → (N, dim) float32) of ``data``'s faces (mirrored
    left-right with ``mirrored``), as the model computes them on the 100×100 crops; cached per
    weights file and images."""
    model_json = Path(model_json)
    config, _ = read_config(model_json)
    digest = hashlib.sha1(np.ascontiguousarray(data.images))
    digest.update(f"{json.loads(model_json.read_text()).get('sha256')}|{mirrored}".encode())
    path = cache_dir("features") / f"{digest.hexdigest()[:20]}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {name: z[name] for name in config.backbones}
    run = _feature_runner(model_json, config)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in config.backbones}
    for i in range(0, len(data), batch):
        crops = as_crops(data.images[i:i + batch])
        if mirrored:
            crops = crops[:, :, ::-1]
        for name, value in run(np.ascontiguousarray(crops, np.float32)).items():
            parts[name].append(value)
    features = {name: np.concatenate(value) for name, value in parts.items()}
    with atomic_file(path) as f:
        np.savez(f, **features)
    return features


def _feature_runner(model_json: Path, config: ModelConfig):
    """A function crops → {backbone: pooled features}: the model's fp32 ONNX graph with the
    flattened pooled features of each backbone made outputs (told apart by their width)."""
    import onnx
    import onnxruntime as ort

    from streamfer.runtimes.build import onnx_file
    from streamfer.runtimes.runners import cpu_threads

    graph = onnx.load(str(onnx_file(model_json, int8=False)))
    pooled = {n.output[0] for n in graph.graph.node if n.op_type == "GlobalAveragePool"}
    flat = [n.output[0] for n in graph.graph.node
            if n.op_type == "Flatten" and n.input[0] in pooled]
    if len(flat) != len(config.backbones):
        raise ValueError(f"{model_json}: expected one pooled output per backbone, "
                         f"found {len(flat)}")
    for name in flat:
        graph.graph.output.append(onnx.helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_threads()
    session = ort.InferenceSession(graph.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    by_width = {dim: name for name, dim in FEATURE_DIMS.items()}

    def run(crops: np.ndarray) -> dict[str, np.ndarray]:
        outputs = session.run(flat, {session.get_inputs()[0].name: crops})
        return {by_width[value.shape[1]]: value.astype(np.float32) for value in outputs}

    return run


def head_model(config: ModelConfig):
    """The head alone (inputs: each backbone's pooled features), its layers named as in
    :func:`streamfer.model.build_model`, so weights move between the two by name."""
    import keras

    from streamfer.model import head

    inputs = [keras.Input((FEATURE_DIMS[name],), name=f"{name}_features")
              for name in config.backbones]
    return keras.Model(inputs, head(config, inputs), name="head")


HEAD_LAYERS = tuple(f"{name}_{part}" for name in BACKBONES for part in ("proj", "bn")) + (
    "emotions",)


def copy_head(source, target) -> None:
    """Copy the head's weights from one model to another by layer name."""
    names = {layer.name for layer in target.layers}
    for name in HEAD_LAYERS:
        if name in names and any(layer.name == name for layer in source.layers):
            target.get_layer(name).set_weights(source.get_layer(name).get_weights())


def mirror_averaged_scores(head, features: dict, mirrored: dict, backbones) -> np.ndarray:
    """The head's scores averaged over both views, as the product scores a photo."""
    def scores(f):
        return np.asarray(head.predict([f[n] for n in backbones], batch_size=1024, verbose=0))

    return (scores(features) + scores(mirrored)) / 2


def save_run_weights(head, config: ModelConfig, init: Path, out: Path) -> None:
    """The whole model (``init``'s backbones, ``head``'s head) saved as a run's weights."""
    from dataclasses import asdict

    from streamfer.model import build_model, load_model

    whole = build_model(ModelConfig(**{**asdict(config), "input_size": config.work_size}))
    whole.set_weights(load_model(init)[0].get_weights())
    copy_head(head, whole)
    whole.save_weights(str(out))


def train_head(cfg, run: Path, train_data: Dataset, valid_data: Dataset,
               extra_data: Dataset | None, config: ModelConfig, loss, optimizer) -> Path:
    """Train ``cfg.init``'s head on the cached features of ``train_data`` (both views of each
    face: the mirror is the one augmentation) and ``extra_data`` with ``loss`` and
    ``optimizer(total_steps)``; select the epoch by Valid mAP on both views averaged, as the
    product scores a photo; write the run folder."""
    import csv
    import time

    from streamfer.model import load_model
    from streamfer.training.evaluate import calibrate_thresholds, compute_metrics

    init = Path(cfg.init)
    sets = [(train_data, cfg.targets)] + ([(extra_data, "rule")] if extra_data else [])
    views = [backbone_features(init, data, mirrored=m) for data, _ in sets for m in (False, True)]
    x = [np.concatenate([v[name] for v in views]) for name in config.backbones]
    y = np.concatenate([(data.soft if targets == "soft" else data.targets)
                        for data, targets in sets for _ in (False, True)]).astype(np.float32)
    valid = [backbone_features(init, valid_data, mirrored=m) for m in (False, True)]

    head = head_model(config)
    copy_head(load_model(init)[0], head)
    steps = cfg.steps_per_epoch or len(y) // cfg.batch_size
    head.compile(optimizer=optimizer(steps * cfg.epochs), loss=loss)
    rng = np.random.default_rng(cfg.seed)
    best, best_map, rows = run / "best_head.weights.h5", None, []
    for epoch in range(cfg.epochs):
        started = time.perf_counter()
        order = rng.permutation(len(y))[:steps * cfg.batch_size]
        history = head.fit([part[order] for part in x], y[order], batch_size=cfg.batch_size,
                           epochs=1, shuffle=False, verbose=0)
        scores = mirror_averaged_scores(head, *valid, config.backbones)
        m = compute_metrics(valid_data.targets, scores,
                            calibrate_thresholds(valid_data.targets, scores))
        rows.append({"epoch": epoch, "loss": history.history["loss"][-1], "val_map": m["mAP"],
                     "val_samples_f1": m["samples_f1"], "val_macro_f1": m["macro_f1"],
                     "seconds": time.perf_counter() - started})
        if best_map is None or m["mAP"] > best_map:
            best_map = m["mAP"]
            head.save_weights(str(best))
        print(f"epoch {epoch + 1}/{cfg.epochs}: loss {rows[-1]['loss']:.4f} val mAP "
              f"{m['mAP']:.4f} samples-F1 {m['samples_f1']:.4f} macro-F1 {m['macro_f1']:.4f} "
              f"(best {best_map:.4f})", flush=True)
    with open(run / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    head.load_weights(str(best))
    save_run_weights(head, config, init, run / "best.weights.h5")
    return run / "best.weights.h5"


def embedding(model_json: str | Path, data: Dataset) -> np.ndarray:
    """The model's own view of ``data``'s faces: the averaged branch features in front of
    the six outputs (N, width), both views of each face averaged, L2-normalised."""
    import keras

    from streamfer.model import load_model

    model, config = load_model(Path(model_json))
    head = head_model(config)
    copy_head(model, head)
    averaged = keras.Model(head.inputs, head.get_layer("average").output
                           if len(config.backbones) > 1 else head.get_layer(
                               f"{config.backbones[0]}_relu").output)
    views = [backbone_features(model_json, data, mirrored=m) for m in (False, True)]
    e = sum(np.asarray(averaged.predict([v[n] for n in config.backbones], batch_size=1024,
                                        verbose=0)) for v in views) / 2
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def nearest_votes(query: np.ndarray, reference: np.ndarray, votes: np.ndarray,
                  k: int = 20) -> np.ndarray:
    """Per query face, the mean of ``votes`` (N, C) over its ``k`` nearest ``reference``
    faces by cosine similarity of their embeddings (both L2-normalised): what the crowd
    said of the faces the model finds alike.

    >>> ref = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> nearest_votes(np.array([[1.0, 0.0]]), ref, np.array([[1.0], [0.0], [0.5]]), k=2)
    array([[0.75]])
    """
    similarity = query @ reference.T
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    return votes[nearest].mean(axis=1)


def branch_shares(model_json: str | Path, reference: Dataset, data: Dataset) -> dict[str, float]:
    """What each backbone brings to the ensemble: mAP on ``data`` of the whole model
    (``"whole"``) and, per backbone, with that backbone's pooled features held at their mean
    over ``reference`` (its faces' information taken away, the other branch untouched);
    both views of each face averaged, as the product scores them. A backbone whose ``held``
    mAP equals the whole's brings nothing: the other one carries the model."""
    from sklearn.metrics import average_precision_score

    from streamfer.model import load_model

    model, config = load_model(Path(model_json))
    head = head_model(config)
    copy_head(model, head)
    mean = {name: value.mean(0, keepdims=True)
            for name, value in backbone_features(model_json, reference).items()}
    views = [backbone_features(model_json, data, mirrored=m) for m in (False, True)]

    def mean_ap(held: str | None = None) -> float:
        features = [{n: np.repeat(mean[n], len(data), 0) if n == held else f[n]
                     for n in config.backbones} for f in views]
        scores = mirror_averaged_scores(head, *features, config.backbones)
        return float(average_precision_score(data.targets, scores, average="macro"))

    return {"whole": mean_ap(), **{name: mean_ap(name) for name in config.backbones}}
