"""``streamfer bench``: throughput per backend and the accuracy each costs."""

from __future__ import annotations

from pathlib import Path

import click

from streamfer.cli.common import FLIP_AVERAGE_OPTION, HomePath, UserError, user_errors


@click.command(short_help="Throughput per backend and the accuracy each costs.")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(min=1),
              help="Timed runs per row; the table shows medians.")
@click.option("--frames", default=150, show_default=True, type=click.IntRange(min=2),
              help="Frames of each generated clip.")
@click.option("--model", "model_path", type=HomePath(exists=True, dir_okay=False))
@click.option("--data", type=HomePath(exists=True, file_okay=False),
              help="Labelled data (e.g. ../shared/data/ferplus): adds each backend's accuracy "
                   "and its difference from keras fp32 on --split.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
              show_default=True)
@click.option("--fer-python", type=HomePath(exists=True, dir_okay=False),
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
@click.option("--work-size", "work_size", type=click.IntRange(32, 224), metavar="PX",
              help="The whole bench (classifier and end to end) with an untrained model of "
                   "--model's architecture at this working size (e.g. 100: the design's).")
@click.option("--mirror-agreement", "agreement_clips", multiple=True,
              type=HomePath(exists=True, dir_okay=False), metavar="CLIP",
              help="Instead: on each CLIP (repeatable), the labels shown when each face is "
                   "scored one view a frame (the default in videos) against both views every "
                   "frame: share of rows alike, smoothed-score differences, fps.")
@click.option("--backends", "only", metavar="NAME,NAME,...",
              help="Only these backends (default: every one installed: keras, tflite, onnx, "
                   "openvino).")
@click.option("--report", "report_hour", is_flag=True,
              help="Instead: the analyst's report of a made-up hour at 30 fps with 100 face "
                   "ids (seconds, peak memory of `streamfer report`).")
@click.option("--detectors", "detector_media", type=HomePath(exists=True, file_okay=False),
              metavar="MEDIA",
              help="Instead: the detector table, for each detector and --tiles setting: "
                   "recall per face size, extra boxes and ms a frame on 1080p and 4K wide "
                   "shots built from MEDIA's real faces (../shared/media), and the rows / "
                   "false faces on MEDIA's clips.")
@click.option("--threads", type=click.IntRange(min=1),
              help="The classifier engine's threads (default: every core this process has).")
@FLIP_AVERAGE_OPTION
def bench(repeats, frames, model_path, data, split, fer_python, large, as_json, work_sizes,
          work_size, agreement_clips, only, report_hour, detector_media, threads,
          flip_average) -> None:
    """Throughput table per backend: classifier faces/s per batch (each face scored as the
    default scores a face in a video: one view a frame, mirrored every other frame), the
    share of the CPU's measured int8 peak that is, end-to-end fps at 640×480 with 1 and 4
    faces, peak RSS, and (with --data) the accuracy cost of each backend. The default
    backend's rows say "default": true, and the summary says why it is the default."""
    import json
    import tempfile
    from importlib.util import find_spec
    from types import SimpleNamespace

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from streamfer.classify import DEFAULT_MODEL, Classifier
    from streamfer.pipeline import Pipeline, Settings
    from streamfer.runtimes.choose import cpu_name
    from streamfer.runtimes.runners import cpu_threads, installed, require
    from streamfer.tools.bench import (
        accuracy,
        classifier_rows,
        fer_row,
        gmac_per_inference,
        int8_peak_gmac,
        make_clips,
        peak_rss_mb,
        pipeline_rows,
        work_size_models,
    )

    if agreement_clips:
        _agreement(agreement_clips, model_path, as_json)
        return
    if detector_media:
        from streamfer.tools.footage import detector_rows, media_missing

        if missing := media_missing(Path(detector_media)):
            raise UserError(f"--detectors: {detector_media} lacks {', '.join(missing)} "
                            "(../shared/media's photos and clips)")

        for row in detector_rows(Path(detector_media)):
            click.echo(json.dumps(row) if as_json else _detector_line(row))
        return
    if report_hour:
        from streamfer.tools.bench import report_row

        with tempfile.TemporaryDirectory() as tmp:
            row = report_row(Path(tmp))
        click.echo(json.dumps(row) if as_json else
                   f"{row['what']}: {row['rows']} rows, {row['seconds']:.1f} s, peak RSS "
                   f"{row['peak_rss_mb']:.0f} MB, page {row['page_mb']:.1f} MB")
        return
    rows, reference = [], None
    backends = (*(("keras", "tflite") if find_spec("tensorflow") else ()),
                *(e for e in ("onnx", "openvino") if installed(e)))
    if only:
        asked = [b.strip() for b in only.split(",")]
        if not set(asked) <= set(backends):
            raise click.BadParameter(f"{only!r}: choose from {', '.join(backends)} (the ones "
                                     "installed here)", param_hint="--backends")
        backends = tuple(b for b in backends if b in asked)
    try:
        sizes = [int(v) for v in work_sizes.split(",")] if work_sizes else []
        if any(not 32 <= v <= 224 for v in sizes):
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{work_sizes!r}: use e.g. 48,64,100 (32 to 224 px)",
                                 param_hint="--work-sizes") from None
    try:
        if sizes or work_size:  # untrained models are built with Keras
            require(("tensorflow",), "bench --work-size(s)")
        if data:
            require(("sklearn",), "bench --data")
        if not sizes:  # the clips are made from scikit-image's astronaut photo
            require(("skimage",), "streamfer bench", "pip install 'streamfer[bench]'")
        with tempfile.TemporaryDirectory() as tmp:
            if work_size and not sizes:
                (Path(tmp) / "e2e").mkdir()
                model_path = work_size_models(Path(tmp) / "e2e", [work_size],
                                              architecture=model_path)[work_size]
            default = Classifier(model_path, backend="auto", device="cpu",
                                 flip_average=flip_average)
            gmac = gmac_per_inference(Path(model_path) if model_path else DEFAULT_MODEL)
            peak = int8_peak_gmac(default.backend) if default.backend in ("onnx", "openvino") \
                else None
            auto = SimpleNamespace(backend=default.backend, why=default.why)  # the choice
            del default  # each backend is measured below, one at a time
            for size, path in work_size_models(Path(tmp), sizes,
                                               architecture=model_path).items():
                for backend in backends:
                    classifier = Classifier(path, backend=backend, device="cpu",
                                            flip_average=flip_average, threads=threads)
                    for row in classifier_rows(classifier, repeats=repeats):
                        rows.append({**row, "backend": backend, "work_size": size,
                                     "what": f"{size} px, {row['what']}"})
            clips = make_clips(Path(tmp), frames, large) if not sizes else {}
            for backend in backends if clips else ():
                settings = Settings(model_path=model_path, backend=backend, device="cpu",
                                    progress=False, flip_average=flip_average,
                                    threads=threads)
                with Pipeline(settings) as pipeline:
                    rows += classifier_rows(pipeline.classifier, repeats=repeats, gmac=gmac,
                                            peak=peak)
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
    except (RuntimeError, *user_errors()) as exc:
        raise UserError(str(exc)) from None
    for row in rows:
        if row["backend"] == auto.backend:
            row["default"] = True
    architecture = f"architecture of {model_path}" if model_path else "default architecture"
    caption = (f"peak RSS {peak_rss_mb():.0f} MB; default (*): {auto.why}; " + (
        f"untrained models of the {architecture}" if sizes else "clips 640×480 at 30 fps"))
    if work_size and not sizes:
        caption += f"; an untrained model of the {architecture} at {work_size} px"
    if peak:
        caption += (f"; {gmac:.2f} GMAC an inference, int8 peak measured "
                    f"{peak:.0f} GMAC/s ({auto.backend}, 3×3 convolutions)")
    if fer_python:
        headless = [r["fps"] for r in rows[:-1]
                    if r["what"].startswith("CSV only") and r.get("fps")]
        caption += (f"; CSV only, 1 face, fastest streamfer backend vs fer: "
                    f"{max(headless) / rows[-1]['fps']:.2f}×")
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        click.echo(json.dumps({"peak_rss_mb": peak_rss_mb(), "repeats": repeats,
                               "cpus": cpu_threads(), "cpu": cpu_name(),
                               "default": auto.backend, "why": auto.why,
                               "gmac_per_inference": gmac, "int8_peak_gmac_per_s": peak}))
        return
    table = Table(title=f"streamfer bench (medians of {repeats}; {cpu_name()}, "
                        f"{cpu_threads()} cores)", caption=caption, box=box.SIMPLE_HEAD)
    columns = (("backend", "backend"), ("what", "what"), ("f/fr", "faces_per_frame"),
               ("faces/s", "faces_per_s"), ("%pk", "of_peak"), ("p50 ms", "p50_ms"),
               ("fps", "fps"), ("×RT", "x_realtime"), ("ΔsF1", "sf1_delta"),
               ("ΔHam", "hamming_delta"))
    if sizes:
        columns = (("backend", "backend"), ("px", "work_size"), ("batch", "batch"),
                   ("faces/s", "faces_per_s"), ("p50 ms", "p50_ms"), ("p95 ms", "p95_ms"))
    digits = {"x_realtime": 2, "samples_f1": 3, "sf1_delta": 4, "hamming_delta": 4,
              "faces_per_frame": 2, "of_peak": 0}
    for title, _ in columns:
        table.add_column(title, justify="left" if title in ("backend", "what") else "right",
                         overflow="fold")
    for r in rows:
        name = r["backend"] + ("*" if r.get("default") else "")
        table.add_row(*(name if key == "backend" else str(r.get(key, ""))
                        if key in ("what", "work_size", "batch")
                        else _num(r.get(key), digits.get(key, 1)) for _, key in columns))
    Console().print(table)  # fits 100 columns; --json for every field


def _agreement(clips, model_path, as_json: bool) -> None:
    import json
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from streamfer.pipeline import Pipeline, Settings
    from streamfer.tools.bench import mirror_agreement

    try:
        with tempfile.TemporaryDirectory() as tmp, \
                Pipeline(Settings(model_path=model_path, progress=False)) as pipeline:
            rows = [mirror_agreement(pipeline, Path(clip), Path(tmp)) for clip in clips]
            backend = pipeline.classifier.backend
    except user_errors() as exc:
        raise UserError(str(exc)) from None
    if as_json:
        for row in rows:
            click.echo(json.dumps({**row, "backend": backend}))
        return
    table = Table(title=f"one view a frame vs both views every frame ({backend})")
    for title in ("clip", "rows", "same labels", "mean |Δ smooth|", "max |Δ smooth|",
                  "fps both", "fps one view"):
        table.add_column(title, justify="left" if title == "clip" else "right")
    for r in rows:
        table.add_row(r["clip"], str(r["rows"]), _num(r["same_labels"], 3),
                      _num(r["mean_smooth_diff"], 4), _num(r["max_smooth_diff"], 3),
                      _num(r["fps_both"]), _num(r["fps_one_view"]))
    Console().print(table)


def _num(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _detector_line(row: dict) -> str:
    shots = "; ".join(
        f"{name} " + " ".join(f"{k} {v:.2f}" for k, v in row[name].items()
                              if k not in ("extra", "ms"))
        + f", extra {row[name]['extra']}, {row[name]['ms']:.1f} ms" for name in ("1080p", "4K"))
    return (f"{row['detector']}, tiles {row['tiles']}: {shots}; stage {row['stage']} rows, "
            f"5 people {row['5 people']}, cartoon {row['cartoon']}, HEVC faceless "
            f"{row['HEVC']} ids")
