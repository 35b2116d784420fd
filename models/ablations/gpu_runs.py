"""The model card's GPU runs: FER+ packed here, the ensemble trained on a lent GPU machine.

Such a machine has JAX but no TensorFlow, no ``../shared`` and no network; what travels to it
is capped at 64 MiB, and 64 MiB come back. So ``pack`` writes the faces the runs need into one
xz file (FER+ Train and Valid as :func:`streamfer.training.data.load_dataset` keeps them, and
JAFFE's detector crops, for evaluation only), and ``train`` (there, ``KERAS_BACKEND=jax``)
runs :func:`streamfer.training.train.train` on them for each run of ``RUNS``, from scratch,
then exports and evaluates each as ``streamfer export`` and ``streamfer evaluate --backend
keras`` do (fp32, mirror-averaged, thresholds calibrated on Valid): ``results.json`` in
``--out`` holds every run's Valid and JAFFE results, its log and settings. The best run at
``--keep-size`` (64 px: the working size every CPU seen affords; 100 px for a model for CPUs
with AMX), if its Valid mAP beats ``--shipped-map``, is exported to ``--keep`` with its
weights cut into parts small enough to come back; ``join`` puts them together again here.
There a run keeps no backups (it is never resumed), and the first of several runs may take
``FIRST_SHARE`` of the time left, so that the next has some.

What comes back is 64 MiB a call, 16 MiB a file: the first call brings ``results.json``,
``model.json`` and parts 0–3 of the weights (``--keep`` stays on the machine while it is
warm), a second the remaining parts. ``--deadline`` bounds the whole command: a run that
would not fit is shortened (its epochs cut to what fits, said in the results) or left out,
and a run still training at its share's end is stopped at a step (``TrainingStopped``) and
its best finished epoch evaluated; a SIGTERM between runs (``timeout``) ends the command.

    python models/ablations/gpu_runs.py pack .dev/faces.npz.xz                # here
    KERAS_BACKEND=jax python3 models/ablations/gpu_runs.py train .dev/faces.npz.xz \\
        --out "$OUT" --keep /root/keep --deadline 365 --epochs 22 --runs g64 \\
        --shipped-map 0.793                                                     # there
    python models/ablations/gpu_runs.py join FETCHED_DIR runs/g64/model.json   # here
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import lzma
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

SPLITS = {"train": ("../shared/data/ferplus", "train"),
          "valid": ("../shared/data/ferplus", "valid"),
          "jaffe": ("../shared/data/jaffe", "test")}
# name, work size, TrainConfig fields: each from scratch, the recipe's defaults otherwise
# (order: what a short lease should bring first — the design's 100 px, which a CPU cannot
# train from scratch in a session, then 64 px at the same number of passes to compare;
# --strong-augment, measured on a CPU at equal budget behind the shipped model, last;
# the b runs with each backbone read out alone as well, --branch-loss: the defaults' ResNet50
# brings nothing to the ensemble, model card)
RUNS = [("g100", 100, {}),
        ("g64", 64, {}),
        ("g64s", 64, {"strong_augment": True}),
        ("g64b", 64, {"branch_loss": 0.5}),
        ("g100b", 100, {"branch_loss": 0.5})]
FIRST_SHARE = 0.6  # of the time left: the most the first run may take, so the next has some
PART = 15 * 2**20  # bytes of one part of a weights file (what comes back: 16 MiB a file)


def pack(path: Path) -> None:
    """FER+ Train/Valid and JAFFE's crops (gray: every channel is the same) into ``path``."""
    from streamfer.training.data import load_dataset

    arrays = {}
    for key, (root, split) in SPLITS.items():
        data = load_dataset(root, split)
        gray = data.images[..., 0]
        if not (data.images == gray[..., None]).all():
            raise SystemExit(f"{key}: colour faces; the pack keeps one channel")
        arrays.update({f"{key}_images": gray, f"{key}_targets": data.targets,
                       f"{key}_soft": data.soft, f"{key}_majority": data.majority,
                       f"{key}_names": np.array(data.names)})
        print(f"{key}: {len(data)} faces {gray.shape[1:]}", flush=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")


def unpack(path: Path) -> dict:
    from streamfer.training.data import Dataset

    with np.load(io.BytesIO(lzma.decompress(path.read_bytes()))) as z:
        return {key: Dataset(np.repeat(z[f"{key}_images"][..., None], 3, axis=-1),
                             z[f"{key}_targets"], list(z[f"{key}_names"]), z[f"{key}_soft"],
                             z[f"{key}_majority"]) for key in SPLITS}


def train_all(packed: Path, out: Path, keep: Path, deadline: float, epochs: int,
              limit: int | None = None, only: list[str] | None = None,
              shipped_map: float = 0.0, runs_root: Path = Path("/tmp/runs"),
              keep_size: int = 64) -> None:
    """Each run of ``RUNS`` (or ``only`` those), evaluated; the best run at ``keep_size`` px
    whose Valid mAP (calibrated) is above ``shipped_map`` kept in parts (the weights travel
    back only for a model that could land)."""
    start = time.monotonic()
    import keras

    from streamfer.training import train as training

    if keras.backend.backend() == "jax":  # a run's validation graphs are the next one's
        import jax

        jax.config.update("jax_compilation_cache_dir", "/tmp/jax-cache")
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        print("jax", jax.__version__, jax.devices(), flush=True)
    data = unpack(packed)
    if limit:  # a smoke test's few faces
        data = {k: d.subset(np.arange(min(limit, len(d)))) for k, d in data.items()}
    training.load_dataset = lambda root, split="train", crop="detect": data[split]

    class NoBackup(training._Backup):  # a run here is never resumed: no backups, which
        def _save_model(self) -> None:  # would cost seconds of each epoch (a stop still
            pass  # ends the run at a step)

    training._Backup = NoBackup
    signal.signal(signal.SIGTERM, _stopped)  # a run's stop once it has ended; `timeout`
    results, timing = {}, {}
    todo = [r for r in RUNS if not only or r[0] in only]
    for name, size, fields in todo:
        left = deadline - (time.monotonic() - start) - 75  # its export and evaluation
        run_epochs = epochs
        if timing:  # an epoch's and a start's seconds, scaled by the pixels of the size
            per_epoch = timing["epoch"] * (size / timing["size"]) ** 2
            run_epochs = min(epochs, int((left - timing["setup"]) / per_epoch))
            if run_epochs < min(epochs, max(3, epochs // 2) if size == timing["size"] else 3):
                print(f"{name}: left out ({left:.0f} s left, {per_epoch:.0f} s an epoch)")
                results[name] = {"left_out": f"{left:.0f} s left, {per_epoch:.0f} s an epoch"}
                continue
        cfg = training.TrainConfig(data="packed", run_dir=str(runs_root / name), epochs=run_epochs,
                                   work_size=size, **fields)
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
        share = left * FIRST_SHARE if not results and len(todo) > 1 else left
        timer = threading.Timer(max(1.0, share), os.kill, (os.getpid(), signal.SIGTERM))
        began = time.monotonic()
        print(f"{name}: {run_epochs} epochs at {size} px {fields}, {share:.0f} s", flush=True)
        timer.start()
        stopped = None
        try:
            training.train(cfg, progress=False)
        except training.TrainingStopped as exc:
            stopped = str(exc)
            print(f"{name}: {stopped}", flush=True)
        finally:
            timer.cancel()
        seconds = time.monotonic() - began
        run = Path(cfg.run_dir)
        log = (run / "log.csv").read_text() if (run / "log.csv").is_file() else ""
        rows = list(csv.DictReader(io.StringIO(log)))
        epoch_s = [float(row["seconds"]) for row in rows]
        if len(epoch_s) > 1 and not timing:  # the first epoch's seconds hold the compiling
            timing = {"epoch": float(np.median(epoch_s[1:])), "size": size,
                      "setup": seconds - len(epoch_s) * float(np.median(epoch_s[1:]))}
        results[name] = {"work_size": size, "fields": fields, "epochs_set": run_epochs,
                         "epochs_done": len(rows), "stopped": stopped, "seconds": seconds,
                         "log_csv": log, "train_config": json.loads(
                             (run / "train_config.json").read_text())}
        if (run / "best.weights.h5").is_file():
            results[name].update(evaluated(run, data))
            results[name]["eval_seconds"] = time.monotonic() - began - seconds
        print(summary_line(name, results[name]), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    valid_map = {n: r["valid"]["at"]["calibrated"]["mAP"] for n, r in results.items()
                 if r.get("work_size") == keep_size and "valid" in r}
    landable = [n for n, m in valid_map.items() if m > shipped_map]
    if landable:
        best = max(landable, key=valid_map.get)
        export_parts(runs_root / best, keep, results[best])
        results["kept"] = best
    results["total_seconds"] = time.monotonic() - start
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def _stopped(signum, frame) -> None:
    """SIGTERM outside a run (inside one it stops that run at a step): exit, the results
    of the runs finished already written."""
    raise SystemExit(f"stopped by signal {signum}")


def _models(run: Path):
    """(the inference model, its config) of a run's best weights, fp32 as on a CPU."""
    import keras

    from streamfer.training.train import best_model

    keras.mixed_precision.set_global_policy("float32")
    return best_model(run)


def evaluated(run: Path, data: dict) -> dict:
    """Valid (thresholds calibrated there, as ``streamfer export``) and JAFFE at those
    thresholds (as ``streamfer evaluate``), mirror-averaged; batches padded to one shape
    (one compiled graph: the scores of a face do not depend on its batch)."""
    from streamfer.classify import Classifier
    from streamfer.training.evaluate import as_crops, calibrate_thresholds, evaluate

    model, config = _models(run)
    classifier = Classifier(model=model, config=config, backend="keras", batch_size=64)

    def scores(dataset):
        crops = as_crops(dataset.images)
        pad = -len(crops) % classifier.batch_size
        padded = np.concatenate([crops, np.repeat(crops[-1:], pad, axis=0)])
        return classifier.predict(padded)[:len(crops)]

    valid = scores(data["valid"])
    thresholds = calibrate_thresholds(data["valid"].targets, valid)
    out = {"valid": evaluate(data["valid"].targets, valid, thresholds, classifier.labels,
                             "../shared/data/ferplus", "valid", data["valid"].majority)}
    out["jaffe"] = evaluate(data["jaffe"].targets, scores(data["jaffe"]), thresholds,
                            classifier.labels, "../shared/data/jaffe", "test",
                            data["jaffe"].majority)
    return out


def export_parts(run: Path, keep: Path, result: dict) -> None:
    """The run as ``streamfer export`` writes it (model.json, its weights, the training
    log and settings) into ``keep``, the weights also cut into ``part-N`` files."""
    from streamfer.model import save_weights

    model, config = _models(run)
    config.thresholds = result["valid"]["at"]["calibrated"]["thresholds"]
    summary = {k: v for k, v in result["valid"]["at"]["calibrated"].items() if k != "per_label"}
    keep.mkdir(parents=True, exist_ok=True)
    path = save_weights(model, config, keep / "model.json",
                        {"metrics": summary, "trained_on": "../shared/data/ferplus",
                         "selected_on": "valid"})
    for name in ("log.csv", "train_config.json"):
        shutil.copy(run / name, keep / f"training_{name}")
    count = cut(path.with_suffix(".weights.npz"), keep)
    print(f"kept {run.name}: its weights in {count} parts", flush=True)


def cut(path: Path, folder: Path, size: int = PART) -> int:
    """``path`` cut into ``folder/part-N`` files of at most ``size`` bytes; how many."""
    blob = path.read_bytes()
    for i in range(0, len(blob), size):
        (folder / f"part-{i // size}").write_bytes(blob[i:i + size])
    return -(-len(blob) // size)


def join(fetched: Path, model_json: Path) -> None:
    """The parts fetched (``part-N``, with model.json) → ``model_json`` and its weights,
    checked against the SHA-256 the model file records."""
    from streamfer.assets import sha256

    if not (fetched / "model.json").is_file():
        raise SystemExit(f"{fetched} holds no model.json (the first call's files)")
    meta = json.loads((fetched / "model.json").read_text())
    parts = sorted(fetched.glob("part-*"), key=lambda p: int(p.name.split("-")[1]))
    model_json.parent.mkdir(parents=True, exist_ok=True)
    weights = model_json.with_name(model_json.name.replace(".json", ".weights.npz"))
    weights.write_bytes(b"".join(p.read_bytes() for p in parts))
    if sha256(weights) != meta["sha256"]:
        raise SystemExit(f"{weights}: SHA-256 differs from model.json's ({len(parts)} parts)")
    model_json.write_text(json.dumps({**meta, "weights": weights.name}, indent=2) + "\n")
    for name in ("training_log.csv", "training_train_config.json"):
        if (fetched / name).is_file():
            shutil.copy(fetched / name, model_json.with_name(name))
    print(f"{model_json}: {len(parts)} parts joined, SHA-256 checked")


def summary_line(name: str, r: dict) -> str:
    if "valid" not in r:
        return f"{name}: no finished epoch"
    v, j = r["valid"]["at"], r["jaffe"]
    per = j["top1_per_label"]
    return (f"{name}: {r['epochs_done']}/{r['epochs_set']} epochs {r['seconds']:.0f} s | Valid"
            f" mAP {v['calibrated']['mAP']:.3f} sF1 {v['calibrated']['samples_f1']:.3f}"
            f" ({v['cross-fitted']['samples_f1']:.3f}) mF1 {v['calibrated']['macro_f1']:.3f}"
            f" ({v['cross-fitted']['macro_f1']:.3f}) Ham {v['calibrated']['hamming_loss']:.3f}"
            f" ({v['cross-fitted']['hamming_loss']:.3f}) | JAFFE top1 {j['top1']:.3f} AN"
            f" {per['Anger']['top1']:.2f} DI {per['Disgust']['top1']:.2f} FE"
            f" {per['Fear']['top1']:.2f} neutral {j['negatives_labelled']:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pack").add_argument("path", type=Path)
    run = sub.add_parser("train")
    run.add_argument("packed", type=Path)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--keep", type=Path, required=True)
    run.add_argument("--deadline", type=float, default=530.0, help="seconds for it all")
    run.add_argument("--epochs", type=int, default=20)
    run.add_argument("--limit", type=int, help="the first N faces of each split (smoke test)")
    run.add_argument("--runs", nargs="*", help="these of RUNS only")
    run.add_argument("--shipped-map", type=float, default=0.0,
                     help="keep a run only if its Valid mAP is above this")
    run.add_argument("--keep-size", type=int, default=64,
                     help="the working size of the run to keep (default 64)")
    joined = sub.add_parser("join")
    joined.add_argument("fetched", type=Path)
    joined.add_argument("model_json", type=Path)
    args = parser.parse_args(argv)
    for path in [getattr(args, name, None) for name in ("packed", "fetched")]:
        if path is not None and not path.exists():
            parser.error(f"not found: {path}")
    if args.command == "pack":
        pack(args.path)
    elif args.command == "train":
        args.out.mkdir(parents=True, exist_ok=True)
        train_all(args.packed, args.out, args.keep, args.deadline, args.epochs, args.limit,
                  args.runs, args.shipped_map, keep_size=args.keep_size)
    else:
        join(args.fetched, args.model_json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout's streamfer
    main()
