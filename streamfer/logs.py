"""The command line's logs: the native libraries' start-up lines silenced, our own warnings
each on a line of its own (:func:`log_warnings`, above a progress bar on screen).

:func:`quiet_native_logs` (called by the command line before any library loads; a program
using the package decides for itself) quiets MediaPipe/glog INFO lines, OpenCV's and FFmpeg's
own, and TensorFlow's notes. TensorFlow 2.21 writes some of those ("oneDNN custom operations
are on", absl's "before InitializeLog" warning) through absl whatever
``TF_CPP_MIN_LOG_LEVEL`` says, and only on CPUs where oneDNN is on by default (AVX-512, AMX),
so the first import of ``tensorflow`` runs with its stderr captured, those known lines dropped
and everything else written back. ``STREAMFER_NATIVE_LOGS=1`` keeps every line.

:func:`filter_native_stderr` (the programs' entry points: ``streamfer``, ``run_stream.py``)
drops the lines native code writes to standard error at any time that say nothing to a user
(:data:`NATIVE_NOISE`): LiteRT's warning that an input tensor was not 64-byte aligned comes
on the first inference whose tensor is not, which may be any frame of a run.
"""

import atexit
import importlib.abc
import importlib.machinery
import logging
import os
import re
import subprocess
import sys

TENSORFLOW_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\)"
    r"|^[IW]\d{4} .*\] (oneDNN custom operations are on|This TensorFlow binary is optimized"
    r"|TF-TRT Warning|Unable to register)"
    r"|^To enable the following instructions:.*rebuild TensorFlow")


# Said by native code whenever it happens, not at start-up alone: LiteRT (MediaPipe's
# runtime) warns once a process, through absl, where MediaPipe's input tensor for a frame
# happens not to be 64-byte aligned (it copies it), with absl's note that it logs before
# initialisation, and tells of each model it loads; none of it can be turned off from Python.
NATIVE_NOISE = re.compile(
    TENSORFLOW_NOISE.pattern
    + r"|^WARNING: Logging before InitGoogle\(\) is written to STDERR"
    + r"|^W\d{4} .*\] Input tensor memory is not aligned according to LiteRt's"
    + r"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU"
    + r"|^INFO: \[\w+\.cc:\d+\] ")  # LiteRT's own INFO lines (a model loaded, its runtime)

# The filter, a process of its own (``python -I -S -c``: no site, no environment): it outlives
# a crash of the program, so a native library's last words (an absl FATAL, a failed check)
# still reach the terminal. A line is written once it is whole; a part of one that waits
# 0.2 s goes as it is.
_FORWARDER = r"""
import os, re, select, signal, sys
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the program decides; this
    signal.signal(number, signal.SIG_IGN)                        # ends at EOF
noise, held = re.compile(sys.argv[1].encode()), b""
def out(data):
    while data:
        try:
            data = data[os.write(1, data):]
        except OSError:  # nobody reads: keep draining, so the program never blocks
            return
while True:
    if held and not select.select([0], [], [], 0.2)[0]:
        out(held); held = b""
    data = os.read(0, 1 << 16)
    if not data:
        break
    *lines, held = (held + data).split(b"\n")
    out(b"".join(line + b"\n" for line in lines if not noise.search(line)))
if held and not noise.search(held):
    out(held)
"""


def filter_native_stderr(noise: re.Pattern[str] = NATIVE_NOISE) -> None:
    """For the rest of this process, the lines native code writes to file descriptor 2
    that match ``noise`` are dropped; everything else goes on to standard error as it came.

    For a program's entry point alone (not a library's business, nor a test's): Python's own
    ``sys.stderr`` is moved to a copy of the terminal's descriptor, so the progress bar, the
    warnings and the errors go there directly (a terminal still looks like one), while
    descriptor 2 (where native code and child processes write) becomes a pipe to a filter
    process. ``STREAMFER_NATIVE_LOGS=1`` keeps every line; POSIX only.
    """
    if os.environ.get("STREAMFER_NATIVE_LOGS") or os.name != "posix":
        return
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no standard error to filter
        return
    read, write = os.pipe()
    try:
        forwarder = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _FORWARDER, noise.pattern],
            stdin=read, stdout=terminal, stderr=subprocess.DEVNULL)
    except OSError:  # no interpreter to run it (an embedded Python): unfiltered
        for fd in (terminal, write):
            os.close(fd)
        return
    finally:
        os.close(read)
    os.dup2(write, 2)
    os.close(write)
    sys.stderr = open(terminal, "w", buffering=1, encoding=sys.stderr.encoding,  # noqa: SIM115
                      errors="backslashreplace", closefd=False)
    atexit.register(_unfiltered, forwarder, terminal)


def _unfiltered(forwarder: subprocess.Popen, terminal: int) -> None:
    """At exit: descriptor 2 is the terminal's again (the pipe's last end here closes), and
    what the filter still holds is written before the shell's prompt comes back."""
    sys.stderr.flush()
    os.dup2(terminal, 2)
    try:
        forwarder.wait(timeout=2)  # longer only where a child outlives us holding the pipe
    except subprocess.TimeoutExpired:
        pass


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


class _Said(logging.Formatter):
    """``warning: …`` for a warning or worse; a notice (INFO) as it is."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


# loggers whose notices (INFO) the command line shows too: the first run's seconds of work
# (building the int8 file, measuring the engines) were seconds of silence
NOTICES = ("streamfer.runtimes",)


def log_warnings() -> None:
    """The command line's ``warning: …`` lines (every logger's warnings and worse), on
    standard error, above a progress bar that is on screen; and the notices of
    :data:`NOTICES`, as they are."""
    handler = _StderrNow()
    handler.setFormatter(_Said())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    for name in NOTICES:
        logging.getLogger(name).setLevel(logging.INFO)
