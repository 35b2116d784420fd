"""Frames shown or sent at their own pace: a file played as it was recorded."""

from __future__ import annotations

import time


class Pacer:
    """Paces file playback to the frames' timestamps: how long to wait before showing the
    frame at ``time_s``. A run that falls behind is not made to rush to catch up."""

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock, self.origin = clock, None

    def wait(self, time_s: float) -> float:
        now = self.clock()
        if self.origin is None or self.origin + time_s < now - 0.25:  # first frame, or late
            self.origin = now - time_s
        return max(0.0, self.origin + time_s - now)
