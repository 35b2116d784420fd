"""``streamfer run`` (and ``run_stream.py``): a webcam, file, folder or stream through the
pipeline, on this machine or a Ray cluster, and the folder run's summary table."""

from __future__ import annotations

import contextlib
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import click

from streamfer.cli.common import (
    CONTEXT,
    FLIP_AVERAGE_OPTION,
    HomePath,
    RayAddress,
    SizeParam,
    TimeParam,
    UserError,
    interruptible,
    parse_threshold,
    parse_tiles,
    user_errors,
)


@click.command(context_settings={**CONTEXT, "allow_extra_args": True},
               short_help="Emotions in a webcam, video, folder or stream.")
@click.option("--source", "-s", required=True,
              help="Webcam index (0), video or image file, folder of them, stream URL, or - "
                   "(a video piped into standard input: MPEG-TS, Matroska).")
@click.option("--output", "-o", type=HomePath(dir_okay=False, allow_dash=True),
              help="Annotated video: .mp4, .mov, .m4v, .mkv, .avi (H.264) or .webm (VP9); "
                   "each frame at its input timestamp, with the input's size and audio. "
                   "For a photo also .png, .jpg, .bmp or .webp: its annotated copy. Or sent "
                   "live as it is made: rtmp://server/app/key, tcp://host:port, "
                   "udp://host:port, - (standard output, MPEG-TS: | ffplay -), or an HLS "
                   "playlist, out/live.m3u8 (2 s segments beside it, for a browser or a "
                   "player), the input's sound with it.")
@click.option("--csv", "csv_path", type=HomePath(dir_okay=False, allow_dash=True),
              help="Frame-level CSV: one row per face per analysed frame; - for standard "
                   "output (one source). For a folder source (with --csv-dir): every "
                   "input's rows joined in one file.")
@click.option("--output-dir", type=HomePath(file_okay=False),
              help="Folder source: one annotated video (or photo) per input, same relative path.")
@click.option("--csv-dir", type=HomePath(file_okay=False),
              help="Folder source: one CSV per input.")
@click.option("--show", is_flag=True, help="Live window (q or Esc quits; space pauses, f full "
              "screen, m mirrors). Needs a display.")
@click.option("--selfie-view/--no-selfie-view", default=None,
              help="With --show: the window shows the picture as a mirror does, its overlay "
                   "readable, as camera apps show you yourself (default: on for a webcam, off "
                   "otherwise; m flips it while shown). Outputs are never mirrored.")
@click.option("--every", default=1, show_default=True, type=click.IntRange(min=1),
              help="Analyse every Nth frame; the others carry the last overlay.")
@click.option("--max-fps", type=click.FloatRange(min=0, min_open=True),
              help="Analyse at most this many frames per second of input.")
@click.option("--start", default=0.0, type=TimeParam(),
              help="Read a video from this time on (seconds, or [H:]M:S); its output video "
                   "starts there, with its audio; the CSV keeps the input's frame numbers and "
                   "times. A folder: every video (photos whole).")
@click.option("--end", type=TimeParam(),
              help="Stop a video at this time (as --start); a webcam or stream: this long "
                   "after its first frame.")
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
@click.option("--tiles", "tiles_text", default="auto", show_default=True, metavar="auto|off|N",
              help="Large frames are also looked at in tiles, for faces down to 24 px "
                   "(or --min-face): the whole grid every N analysed frames, a share each "
                   "frame, the faces found followed on every frame; auto: the measured "
                   "default N (README) for files, folders and URLs, off for a webcam; off: "
                   "the whole frame only (faster; finds faces of about a tenth of the "
                   "frame's width or larger).")
@click.option("--detector-model", type=HomePath(exists=True, dir_okay=False),
              help="Path to the detector .tflite of --detector short or full (default: "
                   "cache, then download).")
@click.option("--model", "model_path", type=HomePath(exists=True, dir_okay=False),
              help="Emotion model .json (default: models/default.json).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Most faces the emotion model scores in one call.")
@click.option("--backend", type=click.Choice(["auto", "openvino", "onnx", "tflite", "keras"]),
              default="auto", show_default=True,
              help="auto: the faster int8 engine on this CPU (OpenVINO or ONNX Runtime, "
                   "measured once and remembered), or ONNX Runtime on a CUDA GPU; openvino / "
                   "onnx: that int8 engine; tflite: TFLite + XNNPACK fp32; keras: TensorFlow "
                   "fp32.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: a CUDA GPU where ONNX Runtime has one "
                                      "(onnxruntime-gpu), else the CPU.")
@click.option("--mirror", type=click.Choice(["auto", "alternate", "average", "off"]),
              default="auto", show_default=True,
              help="How a face and its mirror image are scored: alternate (one view per "
                   "analysed frame, in turn; the smoothing averages them: half the work), "
                   "average (both every frame), off (the face as it is); auto: alternate in "
                   "videos and streams, average for a photo.")
@FLIP_AVERAGE_OPTION
@click.option("--face-cadence", default=1, show_default=True, type=click.IntRange(min=1),
              help="With several faces, classify each face every K analysed frames in turn "
                   "(the CSV's 'classified' column says which rows ran the model).")
@click.option("--csv-empty-frames", is_flag=True,
              help="Also write one row (empty face fields) for each analysed frame without "
                   "faces, so analysed frames can be told from skipped ones (--every).")
@click.option("--camera-size", type=SizeParam(), default=None,
              help="Webcam: the picture size to ask the camera for, e.g. 1280x720 (default: "
                   "its own, 640x480 for most); said where it gives another.")
@click.option("--camera-fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Webcam: the frame rate to ask the camera for (default: its own).")
@click.option("--microphone", is_flag=False, flag_value="default", default=None,
              metavar="[DEVICE]",
              help="Webcam with --output: its sound from this microphone (alone: the "
                   "system's default; ALSA's hw:1 on Linux, an index on macOS, a name on "
                   "Windows), kept in step with the picture.")
@click.option("--reconnect", default=30.0, show_default=True, metavar="SECONDS",
              type=click.FloatRange(min=0),
              help="Webcam or stream, and a stream sent (--output rtmp://…): when it "
                   "drops, try it again (with backoff) for this long before the run ends "
                   "with an error; 0: never.")
@click.option("--force", is_flag=True, help="Folder source: redo inputs already done (a "
                                            "changed setting redoes an input by itself).")
@click.option("--dry-run", is_flag=True,
              help="Folder source: list its inputs, which a run with these options would do "
                   "(and their frames) and which it would skip, then stop; nothing is "
                   "loaded or written.")
@click.option("--ray", "ray_address", type=RayAddress(),
              help="Folder source: spread the files over a Ray cluster: local (start Ray "
                   "here), auto (the cluster `ray start --head` made), ray://host:port (Ray "
                   "Client) or host:port (the head's address, on a node of the cluster). "
                   "Needs pip install -e '.[ray]' and the folders at the same path on every "
                   "node.")
@click.option("--workers", type=click.IntRange(min=1),
              help="With --ray: worker processes (default: one per 2 cores; local: of this "
                   "machine).")
@click.option("--report", "report_path", type=HomePath(path_type=Path),
              help="At the end, the analyst's HTML report of the run, made from its CSV "
                   "(needs --csv; a folder run: --csv-dir, and this is a folder of pages).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.version_option(package_name="streamfer", message="%(package)s %(version)s")
@interruptible
def run(source, output, csv_path, output_dir, csv_dir, show, selfie_view, every, max_fps,
        start, end, threshold_text, smooth_text, min_face, min_score, detector, tiles_text,
        detector_model, model_path,
        batch_size, backend, device, mirror, flip_average, face_cadence, csv_empty_frames,
        camera_size, camera_fps, microphone, reconnect, force, dry_run, ray_address, workers,
        report_path, quiet) -> None:
    """Recognise facial emotions in a webcam, video, photo, folder of them or stream.

    \b
    Examples:
      python run_stream.py --source 0 --show
      python run_stream.py --source clip.mp4 --output annotated.mp4 --csv frames.csv
      python run_stream.py --source footage/ --output-dir out/ --csv-dir out/
    """
    from streamfer.interrupts import deferred_interrupt
    from streamfer.logs import log_warnings

    with deferred_interrupt():  # a Ctrl-C while the libraries load is raised after, not lost
        from streamfer.batch import first_few, plan_folder
        from streamfer.pipeline import Pipeline, Settings
        from streamfer.report import Thumbnails, counted
        from streamfer.sinks import (
            STDOUT,
            check_distinct,
            check_name,
            check_output,
            check_stream,
            is_playlist,
            is_stream,
        )
        from streamfer.smooth import parse_smoothing
        from streamfer.sources import (
            NOT_SOUGHT,
            STDIN,
            SourceError,
            as_read,
            check_camera,
            is_url,
            is_webcam,
            open_source,
        )
        from streamfer.sources.microphone import check_microphone

    log_warnings()
    if extra := click.get_current_context().args:  # ``-s footage/*.mp4``: the shell's list
        raise click.UsageError(f"--source takes one input; these came after it: "
                               f"{first_few(list(extra))} (a "
                               "shell pattern? give the folder of the files: --source footage/)")
    if not source.strip():  # Path("") is the current folder: an unset variable ran it all
        raise UserError("--source is empty: give a webcam index, a file, a folder or a URL")
    source = as_read(os.path.expanduser(source) if source.startswith("~") else source)
    output = output and as_read(output)  # (RTMP:// as rtmp://; file:///x.mp4: its path)
    folder = Path(source).is_dir()
    if folder and (output or show):
        raise UserError("a folder source takes --output-dir/--csv-dir, not --output/--show")
    if folder and csv_path and not csv_dir:
        raise UserError("a folder source's --csv joins the CSVs of --csv-dir into one file: "
                        "give --csv-dir too")
    if folder and csv_path and Path(csv_path).resolve().is_relative_to(Path(csv_dir).resolve()):
        raise UserError("the joined --csv must lie outside --csv-dir (whose CSVs are one "
                        "input each)")
    if not folder and (output_dir or csv_dir or ray_address or workers or dry_run) \
            and not (is_url(source) or is_webcam(source) or source == STDIN) \
            and not Path(source).exists():  # a folder misspelt, or a pattern quoted
        raise UserError(f"no such folder: {source}{_matching(source)}")
    if not folder and (output_dir or csv_dir):
        raise UserError("--output-dir/--csv-dir are for folder sources; use --output/--csv")
    if (ray_address or workers) and not folder:
        raise UserError("--ray/--workers are for folder sources")
    if dry_run and not folder:
        raise UserError("--dry-run lists what a folder run would do: give a folder")
    if report_path and not (csv_path or csv_dir):
        raise UserError("--report is made from the run's CSV: give --csv (--csv-dir for a "
                        "folder)")
    piped = csv_path == STDOUT
    if piped and output == STDOUT:
        raise UserError("--output - and --csv - both name standard output: give one of them "
                        "a file")
    if piped and folder:
        raise UserError("--csv - (standard output) is for one source's rows; a folder's "
                        "joined CSV and --report need a file")
    if piped and report_path:
        raise UserError("--report is made from the run's CSV file: --csv - leaves none")
    if end is not None and end <= start:
        raise UserError(f"--end ({end:g} s) must come after --start ({start:g} s)")
    if start and is_webcam(source):
        raise UserError("a webcam starts now: --start is for files (--end stops a webcam "
                        "that long after its first frame)")
    if (camera_size or camera_fps) and not is_webcam(source):
        raise UserError("--camera-size/--camera-fps ask a webcam for its mode: give one "
                        "(--source 0)")
    if microphone is not None and not is_webcam(source):
        raise UserError("--microphone is a webcam's sound (--source 0): a video's or a "
                        "stream's own sound is kept in --output without it")
    if microphone is not None and not output:
        raise UserError("--microphone keeps the webcam's sound in the video: give --output")
    if selfie_view is not None and not show:
        raise UserError("--selfie-view is how --show's window shows the picture: give --show")
    if not (output or csv_path or show or output_dir or csv_dir):
        raise UserError("nothing to do: give --show, --output or --csv "
                        "(--output-dir/--csv-dir for a folder)")
    try:
        smoothing = parse_smoothing(smooth_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--smooth") from None
    detector = detector or ("short" if is_webcam(source) or detector_model else "both")
    tiles = parse_tiles(tiles_text, webcam=is_webcam(source))
    settings = Settings(detector=detector, detector_path=detector_model, model_path=model_path,
                        min_face=min_face, min_score=min_score, tiles=tiles, every=every,
                        max_fps=max_fps, start=start, end=end,
                        thresholds=parse_threshold(threshold_text), smoothing=smoothing,
                        batch_size=batch_size, backend=backend, device=device,
                        flip_average=False if mirror == "off" else flip_average,
                        mirror="auto" if mirror == "off" else mirror,
                        face_cadence=face_cadence,
                        csv_empty_frames=csv_empty_frames, reconnect=reconnect,
                        camera_size=camera_size, camera_fps=camera_fps,
                        microphone=microphone, progress=not quiet)
    try:  # everything a user can get wrong fails now, in seconds, before the model loads
        with deferred_interrupt():  # these open the input (OpenCV, PyAV): a Ctrl-C waits
            if folder:
                jobs = plan_folder(source, output_dir, csv_dir)
                index = report_path and Path(report_path) / "index.html"
                for path in (csv_path, index):
                    if path:
                        check_output(path, (source,), video=False)
                check_distinct({"--csv": csv_path, "--report's index": index}
                               | {f"{job.key}'s output": job.output for job in jobs})
                for path, holds in ((csv_path, "csv"), (report_path, "pages")):
                    if path:
                        check_name(path, holds)
            else:
                photo = False
                if source == STDIN and start:
                    raise UserError(NOT_SOUGHT)  # before the model loads
                if is_webcam(source):
                    check_camera(source)  # before the models load
                    if microphone is not None:
                        check_microphone(microphone)
                elif not (is_url(source) or source == STDIN):
                    with open_source(source, start=start, end=end) as opened:
                        photo = opened.photo
                    if photo and (start or end is not None):
                        raise UserError(f"{source} is a photo: --start/--end are times in a "
                                        "video")
                if is_stream(output):
                    if photo:
                        raise UserError(f"{source} is a photo: its annotated copy is a file "
                                        "(--output annotated.png), not a stream")
                    check_stream(output)  # before the models load
                for path, video in ((None if is_stream(output) else output, True),
                                    (None if piped else csv_path, False),
                                    (report_path, False)):
                    if path:
                        check_output(path, (source,), video=video, photo=photo)
                check_distinct({"--output": output if is_playlist(output) or
                                not is_stream(output) else None,
                                "--csv": csv_path,
                                "--report": report_path})
                for path, holds in ((None if piped else csv_path, "csv"),
                                    (report_path, "page")):
                    if path:
                        check_name(path, holds)
        if dry_run:
            _dry_run(settings, source, output_dir, csv_dir, force)
            return
        if ray_address:
            results = _run_on_ray(settings, source, output_dir, csv_dir, force, ray_address,
                                  workers)
            _join(csv_path, source, output_dir, csv_dir, results)
            _report(report_path, csv_dir, source, folder=True)
            _summary(results)
            return
        with ExitStack() as stack:
            with deferred_interrupt():  # a Ctrl-C while loading waits until the load is whole
                pipeline = stack.enter_context(Pipeline(settings))  # ... and closes it
            if folder:
                results = pipeline.run_folder(source, output_dir, csv_dir, force=force)
                _join(csv_path, source, output_dir, csv_dir, results)
                _report(report_path, csv_dir, source, folder=True)
                _summary(results)
            else:
                meta = {
                    "model": model_path or "models/default.json",
                    "backend": pipeline.classifier.why,
                    "thresholds": ", ".join(f"{label} {t:.2f}" for label, t in zip(
                        pipeline.classifier.labels, pipeline.thresholds)),
                    "smoothing": smooth_text, "every": every, "detector": detector,
                    **({"part": f"from {start:g} s" + (f" to {end:g} s" if end else "")}
                       if start or end is not None else {})}
                # a source read once (a webcam, a stream, a pipe): its faces' thumbnails are
                # kept as it goes, for the report
                kept = Thumbnails() if report_path and (
                    is_webcam(source) or source == STDIN or is_url(source)) else None
                try:
                    stats = pipeline.run(source, output, csv_path, show=show,
                                         selfie_view=selfie_view, thumbnails=kept)
                except KeyboardInterrupt:  # a live session's end, where it has no other
                    _report_so_far(report_path, csv_path, source, kept, meta)
                    raise
                except SourceError as exc:  # a stream lost for good: the session's end too
                    if csv_path and Path(csv_path).is_file():
                        with contextlib.suppress(UserError):  # its own error is the one said
                            _report_so_far(report_path, csv_path, source, kept, meta,
                                           said=False)
                    raise UserError(str(exc)) from None
                dropped = f", {stats.dropped} stale frames passed over to keep up with the " \
                    "source" if stats.dropped else ""
                speed = f", {stats.speed} fps" if stats.speed else ""
                click.echo(f"{stats.source}: {counted(stats.frames, 'frame')}, "
                           f"{counted(stats.faces, 'face')}{speed} "
                           f"({pipeline.classifier.backend}){dropped}", err=True)
                _report(report_path, csv_path, source, kept=kept, meta=meta)
    except BrokenPipeError:  # --csv -: the reader stopped (``| head``); Python's last
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # flush goes nowhere
        click.echo("stopped: standard output was closed; every frame and CSV row written so "
                   "far is saved", err=True)
        sys.exit(141)  # as a filter killed by SIGPIPE
    except user_errors() as exc:
        raise UserError(str(exc)) from None


def _matching(pattern: str) -> str:
    """What a folder's name that is a shell pattern the shell did not expand (quoted)
    matches, and the folder to give instead; empty for another name."""
    import glob

    many = glob.has_magic(pattern) and len(glob.glob(pattern))
    if not many:
        return ""
    parent = Path(pattern).parent
    folder = "" if glob.has_magic(str(parent)) else f", --source {parent}/"
    return (f" (a pattern matching {many} file{'s' * (many != 1)}: give "
            f"{'its' if many == 1 else 'their'} folder{folder})")


def _join(csv_path, source, output_dir, csv_dir, results) -> None:
    """A folder run's one CSV (``--csv``): the CSVs of every input done, this run or an
    earlier one, joined; not written if the run was interrupted (it would look whole)."""
    if not csv_path:
        return
    from streamfer.batch import SKIPPED, join_tables, plan_folder

    if any(r.status.startswith("interrupted") for r in results):
        click.echo(f"warning: {csv_path} not written: the run was interrupted", err=True)
        return
    done = {r.source for r in results if r.status in ("ok", SKIPPED)}  # not another run's
    joined = join_tables(plan_folder(source, output_dir, csv_dir), done, csv_path)
    click.echo(f"{csv_path}: the CSVs of {joined} of {len(results)} inputs joined" if joined
               else f"warning: {csv_path} not written: no input was done", err=True)


def _report(report_path, csv_path, source, folder: bool = False, meta=None,
            kept=None) -> None:
    """The run's report, if asked for (a folder run: one page per input and an index);
    ``kept``: the thumbnails the run kept as it went (:class:`streamfer.report.Thumbnails`),
    for a source that cannot be read again."""
    if not report_path:
        return
    from streamfer.report import ReportError, write_folder_report, write_report
    from streamfer.sources import is_url

    def warn(note: str) -> None:
        click.echo(f"warning: {note}", err=True)

    try:
        if folder:
            write_folder_report(csv_path, report_path, videos=source, warn=warn)
        else:
            # a link as the run had it (the CSV's is masked: a password, a signed link's)
            video = source if Path(source).is_file() or is_url(source) else None
            write_report(csv_path, report_path, video=video, meta=meta, warn=warn,
                         kept=kept.png if kept else None)
    except ReportError as exc:
        raise UserError(f"report: {exc}") from None
    click.echo(f"report written to {report_path}", err=True)


def _report_so_far(report_path, csv_path, source, kept, meta, said=True) -> None:
    """After a Ctrl-C (or a stream lost for good): a webcam's or a live stream's report (a
    session that has no end but the one its user gives it: its CSV is the session's), else,
    where ``said``, one line saying why there is none (a file's part would look like the
    whole) and how to make it of the rows so far."""
    if not report_path:
        return
    from streamfer.sources import is_url, is_webcam, recorded

    if is_webcam(source) or is_url(source) and recorded(source) is None:
        _report(report_path, csv_path, source, kept=kept, meta=meta)
    elif said:
        click.echo(f"warning: {report_path} not written: the run was interrupted (streamfer "
                   f"report {csv_path} -o {report_path} makes it of the rows so far)", err=True)


def _run_on_ray(settings, source, output_dir, csv_dir, force, address, workers):
    import importlib.util

    from streamfer.scale import run_folder_on_ray

    if importlib.util.find_spec("ray") is None:
        raise UserError("--ray needs Ray: pip install -e '.[ray]'")
    try:
        return run_folder_on_ray(settings, source, output_dir, csv_dir, force, address, workers)
    except ConnectionError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def _dry_run(settings, source, output_dir, csv_dir, force) -> None:
    """What a folder run would do, in the summary's table (the frames each input to do
    would read, from its container), and nothing else: no model, no output, no record."""
    from rich.console import Console

    from streamfer.batch import ELSEWHERE, SKIPPED, FolderRun, frames_to_read
    from streamfer.pipeline import RunStats

    batch = FolderRun.plan(source, output_dir, csv_dir, settings, force, fold=False)
    known = batch.before()  # skipped (done) or failed (refused)
    results = [RunStats(job.key, status=known.get(job.key) or (
        ELSEWHERE if batch.under_way(job) else "to do")) for job in batch.jobs]
    rows, total = [], 0
    for job, result in zip(batch.jobs, results, strict=True):
        frames = frames_to_read(job, settings) if result.status == "to do" else None
        total += frames or 0
        rows.append((job.key, "—" if frames is None else str(frames), result.status))
    console = Console(stderr=True)
    console.print(_batch_table("streamfer batch: dry run", ("input", "frames", "status"), rows,
                               quiet=(SKIPPED,)))
    console.print(_totals(results) + f" ({total:,} frames to read)",
                  highlight=False, markup=False)


def _status(result) -> str:
    """An input's status in the table, with what its run warned of (a truncated file: ok,
    but not all there; said above the bar as it came, and gone from view in a long batch;
    a Ray worker's, never shown)."""
    if not result.warnings:
        return result.status
    first = result.warnings[0]
    for name in (result.source, Path(result.source).name):
        first = first.removeprefix(f"{name}: ")
    more = len(result.warnings) - 1
    return f"{result.status}; warning: {first}" + (f" (and {more} more)" if more else "")


def _totals(results) -> str:
    """The batch in one line under its table (a table of thousands of rows is not read):
    ``40 inputs: 36 ok, 2 skipped (done), 1 out of range, 1 failed``."""
    from collections import Counter

    kinds = Counter(r.status.split(":")[0] for r in results)
    order = ("ok", "to do", "skipped (done)", "skipped (another run is doing it)",
             "out of range", "failed", "interrupted", "not started")
    said = [f"{kinds.pop(kind):,} {kind}" for kind in order if kind in kinds]
    warned = sum(1 for r in results if r.status == "ok" and r.warnings)
    if warned:  # "ok" first where there is one
        said[0] += f" ({warned:,} with warnings)"
    said += [f"{n:,} {kind}" for kind, n in kinds.items()]
    n = len(results)
    return f"{n:,} input{'s' * (n != 1)}: {', '.join(said)}"


SUMMARY_ROWS = 100  # a longer batch's table lists the inputs that need a look, not every one


def _batch_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]],
                 quiet: tuple[str, ...]):
    """A batch's table, a row an input, its status last. Up to :data:`SUMMARY_ROWS` rows,
    every one; more, those whose status is not one of ``quiet`` alone (the first
    :data:`SUMMARY_ROWS`), the caption saying how many it leaves out: 20,000 rows took 6.5 s
    to draw and hid the three that failed."""
    from rich.table import Table
    from rich.text import Text

    shown = rows if len(rows) <= SUMMARY_ROWS else \
        [r for r in rows if r[-1] not in quiet][:SUMMARY_ROWS]
    left = len(rows) - len(shown)
    table = Table(title=title, caption=f"{left:,} more inputs not listed: {' or '.join(quiet)}"
                  if left and len(shown) < SUMMARY_ROWS else
                  f"{left:,} more inputs not listed" if left else None)
    for column in columns:
        table.add_column(column, justify="left" if column in ("input", "status") else "right")
    for row in shown:  # as they are: a file named "clip [final].mp4" or "a :smile:.mp4"
        table.add_row(*(Text(cell, no_wrap=False) for cell in row))  # is no markup or emoji
    return table


def _summary(results) -> None:
    """The batch's table (see :func:`_batch_table`: past :data:`SUMMARY_ROWS` inputs, those
    not ``ok`` or ``skipped (done)``), its totals in a line under it, and the exit status."""
    from rich.console import Console

    from streamfer.batch import SKIPPED

    rows = [(r.source, *((str(r.frames), str(r.faces), r.speed or "—") if r.status == "ok"
                         else ("—", "—", "—")), _status(r)) for r in results]
    table = _batch_table("streamfer batch", ("input", "frames", "faces", "fps", "status"), rows,
                         quiet=("ok", SKIPPED))
    console = Console(stderr=True)
    console.print(table)
    console.print(_totals(results), highlight=False, markup=False)
    if any(r.status.startswith("interrupted") for r in results):
        sys.exit(130)
    if any(r.status.startswith("failed") for r in results):
        sys.exit(1)
