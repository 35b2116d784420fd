"""The command line's logs: the native libraries' start-up lines silenced, our own warnings
each on a line of its own (:func:`log_warnings`, above a progress bar on screen).

:func:`quiet_native_logs` (called by the command line before any library loads; a program
using the package decides for itself) quiets MediaPipe/glog INFO lines, OpenCV's and FFmpeg's
own, and TensorFlow's notes. TensorFlow 2.21 writes some of those ("oneDNN custom operations
are on", absl's "before InitializeLog" warning) through absl whatever
``TF_CPP_MIN_LOG_LEVEL`` says, and only on CPUs where oneDNN is on by default (AVX-512, AMX),
so the first import of ``tensorflow`` runs with its stderr captured, those known lines dropped
and everything else written back. ``STREAMFER_NATIVE_LOGS=1`` keeps every line.
"""

import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys

TENSORFLOW_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\)"
    r"|^[IW]\d{4} .*\] (oneDNN custom operations are on|This TensorFlow binary is optimized"
    r"|TF-TRT Warning|Unable to register)"
    r"|^To enable the following instructions:.*rebuild TensorFlow")


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` with its known start-up lines filtered out."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            from streamfer.assets import native_stderr_silenced

            # once, when it loads (not on a mere importlib.util.find_spec look-up): later
            # imports are TensorFlow's own business
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            with native_stderr_silenced(TENSORFLOW_NOISE):
                run(module)

        spec.loader.exec_module = exec_module
        return spec


def quiet_native_logs() -> None:
    """Quiet the native libraries' start-up logs in this process and the child processes it
    starts (a value the user set is kept), before any of them loads; once."""
    for name, value in (("TF_CPP_MIN_LOG_LEVEL", "2"), ("GLOG_minloglevel", "2"),
                        ("OPENCV_LOG_LEVEL", "ERROR"), ("OPENCV_FFMPEG_LOGLEVEL", "-8")):
        os.environ.setdefault(name, value)
    if os.environ.get("STREAMFER_NATIVE_LOGS") or "tensorflow" in sys.modules or any(
            isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowImport())


class _StderrNow(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record comes, not as it was when the handler
    was made: while a progress bar is on screen that is rich's proxy, which prints the line
    above the bar (a handler holding the terminal itself glued the line to the bar's)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _) -> None:
        pass


def log_warnings() -> None:
    """The command line's ``warning: …`` lines (every logger's warnings and worse), on
    standard error, above a progress bar that is on screen."""
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s",
                        handlers=[_StderrNow()])
