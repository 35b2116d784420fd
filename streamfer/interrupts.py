"""Ctrl-C held to a safe point: the one place that decides when an interrupt lands.

A first Ctrl-C (or SIGTERM, or the terminal's hang-up) inside :func:`deferred_interrupt`
only sets a flag (and a stop event the stages watch); the block ends as it would, then
:class:`KeyboardInterrupt` is raised. This keeps outputs whole, and it keeps the interrupt
itself: a Ctrl-C that lands while a library imports can otherwise be swallowed by a bare
``except:`` (OpenCV's loader has one).
Nothing heavy is imported here, so the command line can hold Ctrl-C before any library
loads. :func:`stop_requested` is the flag alone, for a loop that ends itself (training ends
at its next step, its backup written there).

Example:
    >>> from streamfer.interrupts import deferred_interrupt
    >>> with deferred_interrupt():
    ...     import cv2  # a Ctrl-C now is raised after the import, not lost in it
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from contextlib import contextmanager

# The terminal's hang-up (an ssh session dropped, a terminal window closed under a run in
# its foreground); absent on Windows.
SIGHUP = getattr(signal, "SIGHUP", None)


@contextmanager
def stop_requested(also: threading.Event | None = None,
                   signals: tuple[int, ...] = (signal.SIGINT,)):
    """Within the block a first ``signals`` (Ctrl-C, and what else is given) only sets the
    event yielded (and ``also``): a long loop watches it and ends at its next safe point; a
    second raises :class:`KeyboardInterrupt` at once (a hang-up again does not). Outside the
    main thread: no effect."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum, frame) -> None:
        if signum == SIGHUP and _hung_up_before():
            return
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        if also is not None:
            also.set()

    previous = {number: signal.signal(number, handler) for number in signals
                if not _nohup(number)}
    try:
        yield requested
    finally:
        for number, before in previous.items():
            signal.signal(number, before)


def _nohup(number: int) -> bool:
    """True for a hang-up that ``nohup`` has this process ignore: it stays ignored (the run
    goes on), no handler is put over it."""
    return number == SIGHUP and signal.getsignal(number) == signal.SIG_IGN


_HUNG_UP = threading.Event()  # the terminal has hung up: a later hang-up is the same one


def _hung_up_before() -> bool:
    """On a hang-up: the terminal's streams left (:func:`_leave_hung_up_terminal`); True where
    it had hung up before — one hang-up said twice (the kernel tells a session's leader, a
    shell passes it on to its jobs) is not a second Ctrl-C's "now", which loses the outputs'
    ends, nor a stop of the finishing steps once the run's block has ended."""
    _leave_hung_up_terminal()
    before = _HUNG_UP.is_set()
    _HUNG_UP.set()
    return before


def _leave_hung_up_terminal() -> None:
    """Standard output and error, where they were a terminal that has hung up, go to the null
    device: every write to it fails (EIO), and a progress bar or the last line failing must
    not stop the outputs being finalised. Where they still work (``kill -HUP`` from
    elsewhere) or were redirected, they stay."""
    import termios  # POSIX, as the hang-up is

    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            termios.tcgetattr(fd)
        except termios.error as exc:
            if exc.args[0] == errno.EIO:  # a terminal, hung up (not a file or a pipe: ENOTTY)
                with open(os.devnull, "wb") as null:
                    os.dup2(null.fileno(), fd)
        except (AttributeError, OSError, ValueError):  # no such stream, or closed
            pass


# What stops a run as a Ctrl-C does: SIGTERM too, what ``kill``, ``timeout``, a batch
# scheduler or ``docker stop`` send (it killed the run outright, its video an unplayable part
# file of a few bytes); and the terminal's hang-up (it killed the run too: a batch run in an
# ssh session that dropped left its input under way as part files, and its video unfinished).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM) + ((SIGHUP,) if SIGHUP is not None else ())


def _as_ctrl_c(signum, frame) -> None:
    if signum == SIGHUP and _hung_up_before():
        return
    raise KeyboardInterrupt


def stops_as_ctrl_c() -> None:
    """For a command's process, from its start: SIGTERM and a hang-up raise
    :class:`KeyboardInterrupt` where no block holds them, as Ctrl-C does (between the blocks
    — checking the arguments, after a run's outputs are finalised — they killed it outright,
    without its last line or its exit status 130). A hang-up ignored (``nohup``) stays
    ignored. Outside the main thread: no effect."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in STOP_SIGNALS:
        if number != signal.SIGINT and not _nohup(number):
            signal.signal(number, _as_ctrl_c)


def hang_ups_ignored_once_hung_up() -> None:
    """As a command ends: where its terminal has hung up, a hang-up said again is ignored
    from here on (the interpreter's shutdown gives the signal its default, and the shell's
    word of it, coming later, killed the process on its way out: no exit status 130)."""
    if _HUNG_UP.is_set() and threading.current_thread() is threading.main_thread():
        signal.signal(SIGHUP, signal.SIG_IGN)


@contextmanager
def deferred_interrupt(stop: threading.Event | None = None):
    """Hold a first Ctrl-C (or SIGTERM, or a hang-up) until the block ends, then raise
    :class:`KeyboardInterrupt`; it also sets ``stop``, so that a run's stages end between
    frames and every sink is finalised whole. A second raises at once. Outside the main
    thread: no effect."""
    with stop_requested(stop, STOP_SIGNALS) as interrupted:
        yield interrupted
    if interrupted.is_set():
        raise KeyboardInterrupt
