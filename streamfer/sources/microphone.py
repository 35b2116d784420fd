"""A webcam's sound: a microphone read by PyAV beside the camera, for an output video
(``--microphone``). OpenCV reads a camera's picture alone.

Its sound goes to a :class:`~streamfer.sources.live.LiveSound`, as a live link's does: each
packet at the moment its first sample was heard, on our clock — ALSA stamps it by the wall
clock; another device's own clock is fitted to ours by when its packets come —, placed by
the frames, which are timed by the same clock when they are read
(:meth:`~streamfer.sources.live.LiveSound.anchor`). A device is named as FFmpeg's input
device for this system takes it — ALSA's ``default`` (or ``hw:1``, ``plughw:1,0``) on Linux,
an index (``0``) on macOS (AVFoundation), a name (``Microphone (USB Audio)``) on Windows
(DirectShow) —, or ``FORMAT:NAME`` for any input FFmpeg reads (``pulse:default`` where PyAV's
FFmpeg has it).

Example:
    >>> from streamfer.sources.live import LiveSound
    >>> from streamfer.sources.microphone import Microphone
    >>> with Microphone("default", LiveSound(live=False)):       # doctest: +SKIP
    ...     pass
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time

from streamfer.assets import native_stderr_silenced
from streamfer.sources.errors import SourceError

log = logging.getLogger(__name__)

DEFAULT = "default"  # --microphone given without a device
_ALSA_CONF = "/usr/share/alsa/alsa.conf"  # the system's ALSA settings (Debian, Fedora, Arch)
_ALSA_SAYS = re.compile(r"^ALSA lib ")  # its lines on standard error as a device fails


def device(name: str) -> tuple[str, str]:
    """FFmpeg's input format and the device's name in it, for ``name`` as a user gives it."""
    import av

    kind, _, rest = name.partition(":")
    if rest and kind in av.formats_available and kind not in ("hw", "plughw"):
        found = kind, rest
    elif sys.platform == "darwin":  # AVFoundation: ":N" is the Nth audio device, no picture
        found = "avfoundation", f":{'0' if name == DEFAULT else name}"
    elif sys.platform == "win32":
        found = "dshow", f"audio={name}"
    else:
        found = "alsa", name
    # PyAV's own ALSA looks for its settings and plugins where its build put them
    # (/tmp/vendor/…): without the system's it knew no device by name ("Unknown PCM
    # default"), nor a desktop's default, its sound server's plugin (PulseAudio's, PipeWire's)
    if found[0] == "alsa" and "ALSA_CONFIG_PATH" not in os.environ \
            and os.path.isfile(_ALSA_CONF):
        os.environ["ALSA_CONFIG_PATH"] = _ALSA_CONF
        os.environ.setdefault("ALSA_CONFIG_DIR", os.path.dirname(_ALSA_CONF))
        if (plugins := _alsa_plugins()) and "ALSA_PLUGIN_DIR" not in os.environ:
            os.environ["ALSA_PLUGIN_DIR"] = plugins
    return found


def _alsa_plugins() -> str | None:
    """The system's folder of ALSA plugins (Debian's and Ubuntu's, Fedora's, Arch's)."""
    import glob
    import platform

    machine = platform.machine()
    for folder in (*glob.glob(f"/usr/lib/{machine}-linux-gnu*/alsa-lib"),
                   "/usr/lib64/alsa-lib", "/usr/lib/alsa-lib"):
        if os.path.isdir(folder):
            return folder
    return None


class Microphone:
    """A microphone read as it hears, in a thread of its own, into ``sound`` (a
    :class:`~streamfer.sources.live.LiveSound`), from now until :meth:`close`. Opening it
    raises :class:`SourceError` with FFmpeg's reason where it cannot be opened."""

    def __init__(self, name: str, sound) -> None:
        import av

        self.name, self._sound = name, sound
        kind, path = device(name)
        said: list[str] = []
        try:
            with native_stderr_silenced(_ALSA_SAYS, dropped=said):
                self._container = av.open(path, format=kind)
        except (OSError, av.FFmpegError, ValueError) as exc:
            why = said[-1].rpartition(") ")[2] if said else \
                getattr(exc, "strerror", None) or str(exc)  # ALSA's: "Unknown PCM hw:3"
            if kind == "alsa" and not _sound_cards() and not _sound_server():
                why += "; this machine shows no sound card nor sound server"
            elif kind == "alsa" and path == DEFAULT:  # (where it is a sound server's plugin)
                why += "; name its card: arecord -l lists them, --microphone plughw:1"
            raise SourceError(f"cannot open microphone {name} ({kind}: {why})") from None
        if not self._container.streams.audio:
            self._container.close()
            raise SourceError(f"cannot open microphone {name} ({kind}: it gives no sound)")
        self._track = self._container.streams.audio[0]
        sound.connected(self._track)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="streamfer-microphone",
                                        daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import av

        wall = time.monotonic() - time.time()  # the wall clock's time on our clock
        first = zero = None  # the device's clock: its first time, and that on our clock
        try:
            for packet in self._container.demux(self._track):
                if self._stop.is_set():
                    break
                if not packet.size or packet.pts is None:
                    continue
                came, at = time.monotonic(), float(packet.pts * packet.time_base)
                length = float(packet.duration * packet.time_base) if packet.duration else 0.0
                if abs(at - time.time()) < 60:  # ALSA's: the wall clock when it was heard
                    self._sound.packet(packet, at + wall)
                    continue
                # another device's own clock (from 0): its packets come in bursts (a sound
                # server's buffer), so ours is fitted to the earliest each could have been
                # heard at (no packet comes before its last sample)
                first = at if first is None else first
                heard = came - length - (at - first)
                zero = heard if zero is None else min(zero, heard)
                self._sound.packet(packet, zero + at - first)
        except (OSError, av.FFmpegError, ValueError) as exc:  # unplugged: the sound ends
            if not self._stop.is_set():
                log.warning("microphone %s stopped (%s): the rest of the video is silent",
                            self.name, getattr(exc, "strerror", None) or exc)
        finally:
            self._container.close()

    def close(self) -> None:
        """Stop reading (within a packet's length; the device is closed by its thread)."""
        self._stop.set()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> Microphone:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _sound_cards() -> bool:
    """Whether Linux lists a sound card (True where it cannot be told)."""
    try:
        with open("/proc/asound/cards") as cards:
            return "no soundcards" not in cards.read()
    except OSError:
        return not os.path.isdir("/proc")  # no /proc/asound on Linux: no sound at all


def _sound_server() -> bool:
    """Whether a PulseAudio or PipeWire server listens for this user (a desktop's)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return bool(os.environ.get("PULSE_SERVER")) or bool(runtime) and any(
        os.path.exists(os.path.join(runtime, name)) for name in ("pulse/native", "pipewire-0"))


def check_microphone(name: str) -> None:
    """Open and close the microphone ``name``: :class:`SourceError` where it cannot be
    opened, said before the models load."""
    from streamfer.sources.live import LiveSound

    sound = LiveSound(live=True)
    try:
        Microphone(name, sound).close()
    finally:
        sound.close()
