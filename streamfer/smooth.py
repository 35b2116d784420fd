"""Per-face temporal smoothing of the six scores, and labels with hysteresis.

Scores of each face id are smoothed by an exponential moving average (``ema=α``) or a
moving window mean (``window=n``). A label switches on when its smoothed score reaches
``threshold + hysteresis`` and off only when it falls below ``threshold - hysteresis``,
so labels do not flicker around the threshold; a face's first frame shows the labels whose
score reaches the threshold. With smoothing off (``window=1`` or ``ema=1``) there is no band:
a label shows iff its score ≥ its threshold, as the model card measures. State is dropped for
ids not seen for ``forget_after`` frames.

Example (it sets each face's ``smoothed`` and ``labels``):
    >>> import numpy as np
    >>> from streamfer.frame import Face, Frame
    >>> from streamfer.smooth import Smoother
    >>> smoother = Smoother(thresholds=[0.5] * 6, ema=0.4)
    >>> frame = Frame("clip.mp4", 0, 0.0, np.zeros((240, 320, 3), np.uint8), analysed=True)
    >>> frame.faces.append(Face(box=(100, 60, 80, 80), det_score=0.9, face_id=1,
    ...                         scores=np.array([0.1, 0, 0, 0.9, 0, 0])))
    >>> smoother.update(frame).faces[0].labels
    ('Happiness',)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from streamfer.frame import Frame
from streamfer.labels import EMOTIONS


@dataclass
class _State:
    history: deque
    mean: np.ndarray
    active: np.ndarray
    last_seen: int = 0


def parse_smoothing(text: str) -> dict:
    """``"0.4"``/``"ema:0.4"`` → EMA α; ``"5"``/``"window:5"`` → window of 5 frames;
    ``"none"`` → off. A bare ``1`` is ``ema:1`` (the newest score only, i.e. no smoothing)."""
    kind, _, value = text.partition(":") if ":" in text else ("", "", text)
    if text.strip().lower() in ("none", "off", "0"):
        return {"window": 1}
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--smooth takes an EMA alpha (0.4), a window (5) or none, "
                         f"not {text!r}") from None
    if kind == "window" or (not kind and number > 1 and number.is_integer()):
        if number < 1 or not number.is_integer():
            raise ValueError(f"--smooth window:N takes a whole number of frames ≥ 1, "
                             f"not {value!r}")
        return {"window": int(number)}
    if kind in ("", "ema") and 0 < number <= 1:
        return {"ema": number}
    raise ValueError(f"--smooth: an EMA alpha in (0, 1] (e.g. 0.4 or ema:1), a window of ≥ 2 "
                     f"frames (e.g. 5 or window:5) or none; got {text!r}")


class Smoother:
    def __init__(self, thresholds, ema: float | None = None, window: int | None = None,
                 hysteresis: float = 0.05, forget_after: int = 30,
                 labels: tuple[str, ...] = EMOTIONS) -> None:
        if ema is None and window is None:
            ema = 0.4
        self.thresholds = np.asarray(thresholds, np.float32)
        self.ema, self.window = ema, window
        if window == 1 or ema == 1:  # smoothing off: a label shows iff its score ≥ threshold
            hysteresis = 0.0
        self.hysteresis, self.forget_after, self.labels = hysteresis, forget_after, labels
        self._states: dict[int, _State] = {}
        self._tick = 0

    def update(self, frame: Frame) -> Frame:
        self._tick += 1
        for face in frame.faces:
            if face.scores is None:
                continue
            state = self._states.get(face.face_id)
            if state is None:
                state = _State(deque(maxlen=self.window or 1), face.scores.copy(),
                               face.scores >= self.thresholds)
                self._states[face.face_id] = state
            if face.classified:  # only fresh model outputs move the average
                state.history.append(face.scores)
                if self.window:
                    state.mean = np.mean(state.history, axis=0)
                else:
                    state.mean = self.ema * face.scores + (1 - self.ema) * state.mean
            on = state.mean >= self.thresholds + self.hysteresis
            off = state.mean < self.thresholds - self.hysteresis
            state.active = (state.active | on) & ~off
            state.last_seen = self._tick
            face.smoothed = state.mean.astype(np.float32)
            # strongest first: the overlay's title and box colour take the first
            order = np.argsort(-state.mean, kind="stable")
            face.labels = tuple(self.labels[i] for i in order if state.active[i])
        stale = [i for i, s in self._states.items() if self._tick - s.last_seen > self.forget_after]
        for face_id in stale:
            del self._states[face_id]
        return frame
