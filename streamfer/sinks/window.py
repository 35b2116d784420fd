"""The live window: fitted to the screen, paced for a file, its keys (pause, full screen,
the selfie view, quit) and its title bar's rate.

Example:
    >>> from streamfer.sinks import Window
    >>> with Window((640, 480), "streamfer · webcam 0") as window:   # doctest: +SKIP
    ...     window.show(annotated, time_s=frame.time_s)
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from streamfer.sinks.errors import SinkError
from streamfer.sinks.pacing import Pacer


def screen_size() -> tuple[int, int] | None:
    """The primary screen's size in pixels (``screeninfo``), or None where it cannot be told."""
    try:
        from screeninfo import get_monitors

        monitors = get_monitors()
    except Exception:  # no display, no enumerator for this platform
        return None
    main = next((m for m in monitors if m.is_primary), monitors[0] if monitors else None)
    return (main.width, main.height) if main else None


def fitted(size: tuple[int, int], screen: tuple[int, int] | None,
           share: float = 0.9) -> tuple[int, int]:
    """Window size for frames of ``size``: the frame's own, or scaled down (aspect kept) to
    fit ``share`` of the screen."""
    w, h = size
    if not screen:
        return w, h
    scale = min(1.0, share * screen[0] / w, share * screen[1] / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


class Window:
    """A live OpenCV window at the frame's size (fitted to the screen), its title bar saying
    what it shows and how many frames a second (``streamfer · clip.mp4 · 24.8 fps``, each
    second; ``named``: the input's name, which tells two runs' windows apart); ``show`` returns
    False once the user pressed q or Esc, or closed the window. ``paced``: frames are shown
    at their timestamps (files), not as fast as they come (live sources). ``pixel_aspect``:
    the frames' sample aspect ratio; frames of non-square pixels (a DVD's) are shown as a
    player shows them, widened or narrowed to it. ``mirrored``: whether its caller shows the
    picture as a mirror does (a webcam's selfie view).

    Keys, as a player's: q or Esc quits; space pauses a file (the run waits, as a player
    does) and freezes a live source's picture (the run goes on: the CSV misses nothing);
    f toggles full screen; m flips the selfie view."""

    def __init__(self, size: tuple[int, int], title: str = "streamfer",
                 paced: bool = False, pixel_aspect: float | None = None,
                 mirrored: bool = False, named: str | None = None) -> None:
        import cv2

        aspect = float(pixel_aspect or 1)
        self.seen = (max(1, round(size[0] * aspect)), size[1]) if aspect != 1 else None
        if os.name != "nt" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("no display to show a window on (DISPLAY is not set); "
                            "use --output/--csv instead of --show")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
            cv2.resizeWindow(title, *fitted(self.seen or size, screen_size()))
        except cv2.error:
            raise SinkError("this OpenCV build has no GUI support; "
                            "pip install opencv-python to use --show") from None
        self.title, self.pacer = title, Pacer() if paced else None
        self.mirrored, self.frozen, self._full = mirrored, False, False
        self._label = f"{title} · {named}" if named else title
        if named:
            self._title(self._label)
        self._shown, self._since = 0, None  # frames shown since the title said the rate

    def show(self, image: np.ndarray, time_s: float = 0.0) -> bool:
        import cv2

        if not self.frozen:  # a live picture frozen (space) stays as it is
            if self.seen:
                image = cv2.resize(image, self.seen, interpolation=cv2.INTER_LINEAR)
            cv2.imshow(self.title, image)
        wait = self.pacer.wait(time_s) if self.pacer else 0.0
        key = cv2.waitKey(max(1, round(wait * 1000))) & 0xFF
        if key == ord(" ") and self.pacer:  # a file: paused until space again
            self._say_rate(paused=True)
            while (key := cv2.waitKey(50) & 0xFF) not in (ord(" "), ord("q"), 27):
                if self.closed():
                    return False
                self._keys(key)
        self._keys(key)
        self._say_rate()
        return key not in (ord("q"), 27) and not self.closed()

    def _keys(self, key: int) -> None:
        """What f, m and (a live source's) space do."""
        import cv2

        if key in (ord("f"), ord("F")):
            self._full = not self._full
            with contextlib.suppress(cv2.error):  # a backend without it
                cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN,
                                      cv2.WINDOW_FULLSCREEN if self._full else cv2.WINDOW_NORMAL)
        elif key in (ord("m"), ord("M")):
            self.mirrored = not self.mirrored
        elif key == ord(" ") and not self.pacer:
            self.frozen = not self.frozen
            self._say_rate(paused=self.frozen)

    def _say_rate(self, paused: bool = False) -> None:
        """The title's rate, each second; ``paused``: the title says so, at once."""
        now = time.perf_counter()
        if paused:
            self._title(f"{self._label} · paused (space goes on)")
            self._shown, self._since = 0, None
        if paused or self.frozen:
            return
        if self._since is None:  # the first frame, or the first since a pause: no rate yet
            self._since = now
            self._title(self._label)
            return
        self._shown += 1
        if now - self._since >= 1.0:
            self._title(f"{self._label} · {self._shown / (now - self._since):.1f} fps")
            self._shown, self._since = 0, now

    def _title(self, text: str) -> None:
        import cv2

        with contextlib.suppress(cv2.error):  # a backend without titles
            cv2.setWindowTitle(self.title, text)

    def closed(self) -> bool:
        """Whether the user closed the window (its title bar's ×): OpenCV opens a new one on
        the next frame, so a webcam's run went on, its window back at once."""
        import cv2

        try:  # 0 once closed; a window gone, an error (Qt); -1: the backend cannot tell
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) == 0
        except cv2.error:
            return True

    def hold(self, stop=None) -> None:
        """Keep the last image on screen until q or Esc, the window closed, or ``stop`` set
        (a Ctrl-C): a photo stays to be looked at."""
        import cv2

        while not (stop is not None and stop.is_set()):
            if (key := cv2.waitKey(100) & 0xFF) in (ord("q"), 27) or self.closed():
                return
            self._keys(key)

    def close(self) -> None:
        import cv2

        with contextlib.suppress(cv2.error):  # closed by the user already
            cv2.destroyWindow(self.title)
        cv2.waitKey(1)

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
