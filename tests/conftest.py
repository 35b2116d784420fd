"""Shared fixtures: the ../shared assets (skipped with a reason when absent) and test media
that the tests make themselves from a real face photo (scikit-image's ``astronaut``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DETECTOR_FILES = ("face_detection_short_range.tflite", "face_detection_full_range_sparse.tflite")
DEFAULT_MODEL = ROOT / "models" / "default.json"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def streamfer_home(tmp_path_factory) -> Path:
    """A private cache holding the detector files from ../shared/weights (no network)."""
    home = tmp_path_factory.mktemp("streamfer_home")
    os.environ["STREAMFER_HOME"] = str(home)
    for name in DETECTOR_FILES:
        if (SHARED / "weights" / name).is_file():
            shutil.copy(SHARED / "weights" / name, home / name)
    return home


@pytest.fixture(scope="session")
def detector_ready(streamfer_home) -> None:
    if not (streamfer_home / DETECTOR_FILES[0]).is_file():
        pytest.skip("needs ../shared/weights (MediaPipe detector files; no network here)")


@pytest.fixture(scope="session")
def media() -> Path:
    if not (SHARED / "media").is_dir():
        pytest.skip("needs ../shared/media (real footage)")
    return SHARED / "media"


@pytest.fixture(scope="session")
def ferplus() -> Path:
    if not (SHARED / "data" / "ferplus" / "FER2013Valid").is_dir():
        pytest.skip("needs ../shared/data/ferplus")
    return SHARED / "data" / "ferplus"


@pytest.fixture(scope="session")
def classifier():
    from streamfer.classify import Classifier

    return Classifier(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def face_bgr() -> np.ndarray:
    """A real face: the astronaut photo's head and shoulders, BGR."""
    from skimage import data

    return cv2.cvtColor(data.astronaut()[0:300, 100:400], cv2.COLOR_RGB2BGR)


def compose(face: np.ndarray, size: tuple[int, int], x: int, y: int, scale: float = 0.5,
            gray: bool = False) -> np.ndarray:
    """``face`` pasted at (x, y) on a plain background of ``size`` (w, h)."""
    w, h = size
    canvas = np.full((h, w, 3), 90, np.uint8)
    small = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    sh, sw = min(sh, h - y), min(sw, w - x)
    canvas[y:y + sh, x:x + sw] = small[:sh, :sw]
    if gray:
        canvas = cv2.cvtColor(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return canvas


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0,
                audio: bool = False) -> Path:
    """Encode BGR frames to H.264 with FFmpeg (from imageio-ffmpeg); optional sine audio."""
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo",
           "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={len(frames) / fps:.3f}",
                "-c:a", "aac", "-shortest"]
    pix = "yuv444p" if w % 2 or h % 2 else "yuv420p"
    cmd += ["-c:v", "libx264", "-pix_fmt", pix, "-preset", "ultrafast", str(path)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


def write_hls(folder: Path, own_sound: bool = False) -> Path:
    """A recorded HLS video of 4 s (a test picture and a tone, 25 fps) in two renditions,
    ``v0`` 320×180 and ``v1`` 640×360, 1 s segments, into ``folder``: its master playlist.
    The sound in each rendition's segments, or (``own_sound``) an audio rendition of its
    own (``EXT-X-MEDIA``)."""
    import imageio_ffmpeg

    layout = "a:0,agroup:aud,default:yes v:0,agroup:aud v:1,agroup:aud" if own_sound \
        else "v:0,a:0 v:1,a:1"
    tracks = ["-map", "[small]", "-map", "[large]", "-map", "1:a"] + \
        ([] if own_sound else ["-map", "1:a"])
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
         "testsrc=size=640x360:rate=25:duration=4", "-f", "lavfi", "-i",
         "sine=frequency=440:duration=4", "-filter_complex",
         "[0:v]split=2[a][b];[a]scale=320:180[small];[b]null[large]", *tracks,
         "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "hls", "-hls_time", "1",
         "-hls_playlist_type", "vod", "-var_stream_map", layout, "-master_pl_name",
         "master.m3u8", str(folder / "v%v.m3u8")], check=True, timeout=120)
    return folder / "master.m3u8"


def joined(path: Path, clips: list[tuple[Path, tuple]]) -> Path:
    """``clips`` — each a video and the FFmpeg output options it is made an MPEG-TS with
    — joined as they are (FFmpeg's concat demuxer) into ``path``: one file whose picture
    changes where they meet, as a browser's recording of a call or two recordings joined."""
    import imageio_ffmpeg

    ffmpeg, parts = imageio_ffmpeg.get_ffmpeg_exe(), []
    for n, (clip, options) in enumerate(clips):
        parts.append(path.with_name(f"{path.stem}.{n}.ts"))
        subprocess.run([ffmpeg, "-y", "-v", "error", "-i", clip, *options, "-f", "mpegts",
                        parts[-1]], check=True)
    listing = path.with_name(f"{path.stem}.txt")
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    subprocess.run([ffmpeg, "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", listing,
                    "-c", "copy", path], check=True)
    return path


def recordings(tmp_path: Path, face_bgr: np.ndarray) -> tuple[Path, list, list]:
    """Two recordings of a face (15 fps, 1 s each), landscape 640×480 then portrait
    360×480, as MPEG-TS files each timed from its own start, their bytes joined (``cat
    a.ts b.ts``, as a recorder's files or a pipe of one after the other): its timestamps
    start again where the second begins."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    wide = [compose(face_bgr, (640, 480), 200 + 4 * i, 60) for i in range(15)]
    tall = [compose(face_bgr, (360, 480), 40 + 4 * i, 120) for i in range(15)]
    data = b""
    for name, frames in (("wide", wide), ("tall", tall)):
        clip = write_video(tmp_path / f"{name}.mp4", frames, fps=15)
        subprocess.run([ffmpeg, "-y", "-v", "error", "-i", clip, "-c", "copy", "-f", "mpegts",
                        tmp_path / f"{name}.ts"], check=True)
        data += (tmp_path / f"{name}.ts").read_bytes()
    (tmp_path / "both.ts").write_bytes(data)
    return tmp_path / "both.ts", wide, tall


def flash_clip(path: Path, lead_s: float, flash_s: float = 1.2, seconds: float = 3.0,
               fps: int = 25) -> Path:
    """A clip to measure audio against picture: black frames with one white frame at
    ``flash_s`` of its picture, and a click in silent audio at the same moment; the picture
    starts ``lead_s`` after the audio (as in ``face_recognition``'s clip: 0.85 s)."""
    import wave

    import imageio_ffmpeg

    video, sound = path.with_suffix(".video.mp4"), path.with_suffix(".wav")
    frames = [np.full((240, 320, 3), 255 if i == round(flash_s * fps) else 0, np.uint8)
              for i in range(round(seconds * fps))]
    write_video(video, frames, fps=fps)
    rate = 48000
    pcm = np.zeros(round((lead_s + seconds) * rate), np.int16)
    at = round((lead_s + flash_s) * rate)
    pcm[at:at + rate // 50] = (12000 * np.sin(np.arange(rate // 50) * 2 * np.pi * 1000 / rate))
    with wave.open(str(sound), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
                    "-itsoffset", f"{lead_s}", "-i", str(video), "-i", str(sound),
                    "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(path)],
                   check=True)
    video.unlink()
    sound.unlink()
    return path


def flash_and_click(path: Path) -> tuple[float, float]:
    """When the white frame shows and when the click sounds, in seconds of ``path``'s
    timeline (as a player plays it): equal where the picture is in sync with its sound."""
    import av

    with av.open(str(path)) as container:
        flash = next(float(frame.pts * frame.time_base)
                     for frame in container.decode(video=0)
                     if frame.to_ndarray(format="gray").mean() > 128)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            samples = np.abs(frame.to_ndarray()).max(axis=0)
            loud = np.flatnonzero(samples > 0.1 * (1.0 if samples.dtype.kind == "f"
                                                   else 32767))
            if loud.size:
                return flash, float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
    raise AssertionError(f"no click in {path}")


def frame_count(path: Path) -> tuple[int, float, tuple[int, int]]:
    """Decoded frames, fps and (w, h) of a video, read back with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n, cap.get(cv2.CAP_PROP_FPS), (int(cap.get(3)), int(cap.get(4)))


def has_audio(path: Path) -> bool:
    import imageio_ffmpeg

    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)],
                           capture_output=True, text=True)
    return "Audio:" in probe.stderr


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory, face_bgr) -> Path:
    """24 frames, 640×480 at 30 fps, one real face moving left to right, with audio."""
    frames = [compose(face_bgr, (640, 480), 40 + 12 * i, 60 + 3 * i, scale=1.0)
              for i in range(24)]
    return write_video(tmp_path_factory.mktemp("clips") / "face.mp4", frames, audio=True)


# Set by this conftest (and by ``import streamfer``) for the test process itself; a user's
# shell has none of them, so the command line runs without them and stays quiet on its own.
QUIETING = ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel", "OPENCV_LOG_LEVEL",
            "OPENCV_FFMPEG_LOGLEVEL")


def run_on_terminal(*args, env: dict | None = None, timeout: float = 300) -> tuple[int, list]:
    """``run_stream.py args`` on a pseudo-terminal (250 columns), as a user at a terminal sees
    it: its exit status and what it showed, line by line, colours and cursor moves taken out
    (a progress bar redrawn is one line per drawing)."""
    import pty
    import re
    import select
    import sys
    import time

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *map(str, args)],
                            stdin=follower, stdout=follower, stderr=follower,
                            env={**{k: v for k, v in os.environ.items() if k not in QUIETING},
                                 **(env or {}), "COLUMNS": "250", "LINES": "40",
                                 "TERM": "xterm"})
    os.close(follower)
    seen, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 1.0)[0]:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    return proc.returncode, [line.strip() for line in re.split(r"[\r\n]+", text)
                             if line.strip()]


class StreamServer:
    """FFmpeg serving a clip in a loop, in real time, as MPEG-TS over TCP on the loopback
    (``tcp://127.0.0.1:PORT``): what a camera or encoder on the network looks like to us.
    ``stop()`` kills it (a drop, as the client sees it), ``start()`` serves again on the
    same port. Every process it starts is killed by the fixture, whatever the test did."""

    def __init__(self, clip: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.clip, self.proc = clip, None
        self.url = f"tcp://127.0.0.1:{self.port}"

    def start(self) -> StreamServer:
        import imageio_ffmpeg

        self.proc = subprocess.Popen(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-re", "-stream_loop", "-1",
             "-i", str(self.clip), "-an", "-c:v", "copy", "-f", "mpegts",
             f"{self.url}?listen=1"], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def stream_server(tmp_path, face_bgr):
    """A loopback stream server (see :class:`StreamServer`) for a 25 fps clip of a real face,
    not started yet; stopped after the test."""
    frames = [compose(face_bgr, (320, 240), 10 + (i % 50), 10, scale=0.6) for i in range(100)]
    server = StreamServer(write_video(tmp_path / "served.mp4", frames, fps=25.0))
    yield server
    server.stop()


def close_window(display: str, title: str) -> list[str]:
    """Ask the windows whose title starts with ``title`` on ``display`` to close, as a window
    manager does when their title bar's × is clicked (a WM_DELETE_WINDOW message, through
    libX11); returns their titles."""
    import ctypes
    import ctypes.util

    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    ulong, pointer = ctypes.c_ulong, ctypes.c_void_p
    x11.XOpenDisplay.restype, x11.XOpenDisplay.argtypes = pointer, [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype, x11.XDefaultRootWindow.argtypes = ulong, [pointer]
    x11.XInternAtom.restype = ulong
    x11.XInternAtom.argtypes = [pointer, ctypes.c_char_p, ctypes.c_int]
    x11.XQueryTree.argtypes = [pointer, ulong, ctypes.POINTER(ulong), ctypes.POINTER(ulong),
                               ctypes.POINTER(ctypes.POINTER(ulong)),
                               ctypes.POINTER(ctypes.c_uint)]
    x11.XFetchName.argtypes = [pointer, ulong, ctypes.POINTER(ctypes.c_char_p)]
    x11.XSendEvent.argtypes = [pointer, ulong, ctypes.c_int, ctypes.c_long, pointer]
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [pointer]

    class ClientMessage(ctypes.Structure):  # XClientMessageEvent, padded to an XEvent
        _fields_ = [("type", ctypes.c_int), ("serial", ulong), ("send_event", ctypes.c_int),
                    ("display", pointer), ("window", ulong), ("message_type", ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5),
                    ("pad", ctypes.c_long * 12)]

    connection = x11.XOpenDisplay(display.encode())
    assert connection, f"cannot connect to {display}"

    def tree(window):
        root, parent, count = ulong(), ulong(), ctypes.c_uint()
        children = ctypes.POINTER(ulong)()
        x11.XQueryTree(connection, window, ctypes.byref(root), ctypes.byref(parent),
                       ctypes.byref(children), ctypes.byref(count))
        for i in range(count.value):
            yield children[i]
            yield from tree(children[i])

    def named(window):
        name = ctypes.c_char_p()
        if x11.XFetchName(connection, window, ctypes.byref(name)) and name.value and \
                name.value.decode("latin-1").startswith(title):
            return name.value.decode("latin-1")  # WM_NAME: ISO 8859-1
        return None

    protocols = x11.XInternAtom(connection, b"WM_PROTOCOLS", 0)
    delete = x11.XInternAtom(connection, b"WM_DELETE_WINDOW", 0)
    windows = {w: named(w) for w in tree(x11.XDefaultRootWindow(connection))}
    windows = {w: name for w, name in windows.items() if name}
    for window in windows:
        message = ClientMessage(type=33, send_event=1, display=connection, window=window,
                                message_type=protocols, format=32)  # 33: ClientMessage
        message.data[0] = delete
        x11.XSendEvent(connection, window, 0, 0, ctypes.byref(message))
    x11.XFlush(connection)
    x11.XCloseDisplay(connection)
    return list(windows.values())


@pytest.fixture
def sound_server(tmp_path, monkeypatch):
    """A PulseAudio server of our own (its socket in a folder of the test's: local only),
    whose default source is a named pipe — a microphone that hears what is written into
    the pipe: the pipe, once the server listens; stopped after. ALSA's ``default`` goes to
    it through ALSA's pulse plugin, as on a desktop."""
    if not (shutil.which("pulseaudio") and Path("/etc/alsa/conf.d/99-pulse.conf").exists()):
        pytest.skip("needs PulseAudio and ALSA's pulse plugin (Debian's pulseaudio, "
                    "libasound2-plugins; .ci/run installs them)")
    runtime, pipe = tmp_path / "runtime", tmp_path / "microphone.pcm"
    runtime.mkdir(mode=0o700)
    (tmp_path / "server.pa").write_text(
        "load-module module-native-protocol-unix auth-anonymous=1\n"
        f"load-module module-pipe-source source_name=pipe file={pipe} format=s16le "
        "rate=48000 channels=1\nset-default-source pipe\n")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    server = subprocess.Popen(["pulseaudio", "-n", "-F", str(tmp_path / "server.pa"),
                               "--exit-idle-time=-1", "--daemonize=no", "--log-target=stderr"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not ((runtime / "pulse" / "native").exists() and pipe.exists()):
            assert time.monotonic() < deadline and server.poll() is None, \
                "PulseAudio did not start"
            time.sleep(0.1)
        yield pipe
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def display():
    """A virtual X display of our own (Xvfb, local connections only), stopped after."""
    if not shutil.which("Xvfb"):
        pytest.skip("needs Xvfb (Debian's xvfb; .ci/run installs it)")
    server = subprocess.Popen(["Xvfb", "-displayfd", "1", "-nolisten", "tcp", "-screen", "0",
                               "1280x720x24"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        number = server.stdout.readline().strip()  # written once it accepts connections
        assert number.isdigit(), "Xvfb did not start"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)
