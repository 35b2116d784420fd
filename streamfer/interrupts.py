"""Ctrl-C held to a safe point: the one place that decides when an interrupt lands.

A first Ctrl-C (or SIGTERM) inside :func:`deferred_interrupt` only sets a flag (and a stop event the
stages watch); the block ends as it would, then :class:`KeyboardInterrupt` is raised. This
keeps outputs whole, and it keeps the interrupt itself: a Ctrl-C that lands while a library
imports can otherwise be swallowed by a bare ``except:`` (OpenCV's loader has one).
Nothing heavy is imported here, so the command line can hold Ctrl-C before any library
loads. :func:`stop_requested` is the flag alone, for a loop that ends itself (training ends
at its next step, its backup written there).

Example:
    >>> from streamfer.interrupts import deferred_interrupt
    >>> with deferred_interrupt():
    ...     import cv2  # a Ctrl-C now is raised after the import, not lost in it
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def stop_requested(also: threading.Event | None = None,
                   signals: tuple[int, ...] = (signal.SIGINT,)):
    """Within the block a first ``signals`` (Ctrl-C, and what else is given) only sets the
    event yielded (and ``also``): a long loop watches it and ends at its next safe point; a
    second raises :class:`KeyboardInterrupt` at once. Outside the main thread: no effect."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum, frame) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        if also is not None:
            also.set()

    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield requested
    finally:
        for number, before in previous.items():
            signal.signal(number, before)


# What stops a run as a Ctrl-C does: SIGTERM too, what ``kill``, ``timeout``, a batch
# scheduler or ``docker stop`` send (it killed the run outright, its video an unplayable part
# file of a few bytes).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupt(stop: threading.Event | None = None):
    """Hold a first Ctrl-C (or SIGTERM) until the block ends, then raise
    :class:`KeyboardInterrupt`; it also sets ``stop``, so that a run's stages end between
    frames and every sink is finalised whole. A second raises at once. Outside the main
    thread: no effect."""
    with stop_requested(stop, STOP_SIGNALS) as interrupted:
        yield interrupted
    if interrupted.is_set():
        raise KeyboardInterrupt
