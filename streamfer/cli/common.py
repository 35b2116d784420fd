"""What the command groups share: the one-line error, the stages' typed errors, options."""

from __future__ import annotations

import functools
import os
import re
import sys

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class UserError(click.ClickException):
    """A one-line error for the user; exit code 1."""


def parse_threshold(text: str | None):
    """``0.5`` for every label, or ``Happiness=0.4,Fear=0.3`` for some."""
    from streamfer.labels import EMOTIONS, check_threshold

    if text is None:
        return None
    try:
        if "=" not in text:
            value = float(text)
        else:
            pairs = dict(item.split("=", 1) for item in text.split(","))
            names = {e.lower(): e for e in EMOTIONS}
            value = {names[k.strip().lower()]: float(v) for k, v in pairs.items()}
    except (KeyError, ValueError):
        raise click.BadParameter(f"{text!r}: use 0.5 or e.g. Happiness=0.4,Fear=0.3 "
                                 f"(labels: {', '.join(EMOTIONS)})",
                                 param_hint="--threshold") from None
    try:
        return check_threshold(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--threshold") from None


def parse_tiles(text: str, webcam: bool = False) -> int | None:
    """``--tiles``: ``auto`` (None: the default sweep; a webcam: 0), ``off`` (0) or N ≥ 1."""
    text = text.strip().lower()
    if text == "auto":
        return 0 if webcam else None
    if text == "off":
        return 0
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise click.BadParameter(f"{text!r}: use auto, off or a number of frames N ≥ 1",
                             param_hint="--tiles")


class HomePath(click.Path):
    """A path option whose leading ``~`` is the home folder, as a shell reads it where it is
    not quoted: a value quoted (``"~/My Videos/x.csv"``), from a script's argument list or a
    config, made a folder named ``~`` in the current one."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.startswith("~"):
            value = os.path.expanduser(value)
        return super().convert(value, param, ctx)


class TimeParam(click.ParamType):
    """A time of a video: seconds (``90``, ``90.5``) or ``[H:]M:S`` (``1:30``, ``1:02:03.5``)."""

    name = "TIME"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        try:
            parts = [float(part) for part in str(value).strip().split(":")]
            if not 1 <= len(parts) <= 3 or any(p < 0 or p != p for p in parts) or \
                    any(p >= 60 for p in parts[1:]):
                raise ValueError
        except ValueError:
            self.fail(f"{value!r}: use seconds (90.5) or [H:]M:S (1:30, 1:02:03.5)", param, ctx)
        return sum(part * 60 ** i for i, part in enumerate(reversed(parts)))


class SizeParam(click.ParamType):
    """A picture's size, ``WIDTHxHEIGHT`` (``1280x720``; ``×`` too)."""

    name = "WxH"

    def convert(self, value, param, ctx) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).strip().lower().replace("×", "x").split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            self.fail(f"{value!r}: use WIDTHxHEIGHT in pixels (1280x720)", param, ctx)
        return int(parts[0]), int(parts[1])


class RayAddress(click.ParamType):
    """Where a folder run's Ray is: ``local``, ``auto``, ``ray://host:port`` (Ray Client) or
    ``host:port`` (the head's address, from a node of the cluster)."""

    name = "local|auto|ray://HOST:PORT"

    def convert(self, value, param, ctx) -> str:
        text = str(value).strip()
        if text in ("local", "auto") or re.fullmatch(r"(ray://)?[\w.\-\[\]:]+:\d{1,5}", text):
            return text
        self.fail(f"{value!r}: use local, auto, ray://host:port or host:port", param, ctx)


FLIP_AVERAGE_OPTION = click.option(
    "--flip-average/--no-flip-average", default=None,
    help="Score each face as the mean of it and its mirror image (steadier; twice the "
         "classifier's work). Default: as the model file says (the shipped model: on; its "
         "thresholds are calibrated that way).")


CROP_OPTION = click.option(
    "--crop", type=click.Choice(["detect", "none"]), default="detect", show_default=True,
    help="A folder-per-emotion tree's photos: detect = the largest face the product's "
         "detector finds, cropped as in a run (photos without one are left out and counted); "
         "none = the images are face crops already. FER+ and RAF-ML are crops already.")


def LABELLED_SPLIT(command):  # noqa: N802 (an option decorator, named as the others)
    """``--data`` (a labelled dataset folder), ``--split`` (default: valid) and ``--crop``."""
    command = CROP_OPTION(command)
    command = click.option("--split", type=click.Choice(["train", "valid", "test"]),
                           default="valid", show_default=True)(command)
    return click.option("--data", required=True, type=HomePath(exists=True, file_okay=False),
                        help="Dataset folder (FER+, RAF-ML or folder-per-emotion).")(command)


def user_errors():
    """Map the stages' typed errors to one-line messages."""
    from streamfer.assets import AssetError
    from streamfer.runtimes.runners import EngineError
    from streamfer.sinks import SinkError
    from streamfer.sources import SourceError
    from streamfer.training import TrainingError
    from streamfer.training.data import DatasetError

    return (AssetError, DatasetError, EngineError, SinkError, SourceError, TrainingError,
            OSError)


def interruptible(command):
    """Ctrl-C (SIGTERM, a hang-up) anywhere in ``command``: one line, exit 130 (what was
    written is finalised by the sinks on the way out)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from streamfer.interrupts import hang_ups_ignored_once_hung_up, stops_as_ctrl_c

        stops_as_ctrl_c()  # SIGTERM and a hang-up too
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted: every frame and CSV row written so far is saved", err=True)
            sys.exit(130)
        finally:
            hang_ups_ignored_once_hung_up()

    return wrapper


def requires_training(command):
    """``command`` needs the ``train`` extra (TensorFlow, scikit-learn): one line naming it
    where they are missing, before any work."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from streamfer.runtimes.runners import EngineError, require

        try:
            require(("tensorflow", "sklearn"), f"streamfer {command.__name__}")
        except EngineError as exc:
            raise UserError(str(exc)) from None
        return command(*args, **kwargs)

    return wrapper
