"""Live sources against a real stream server on the loopback (FFmpeg serving MPEG-TS over
TCP, started and killed by the tests): clock time stamps, reconnects, the newest frame;
and a recorded file behind an http:// link, which is a file, not a live stream."""

import base64
import csv
import functools
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (
    QUIETING,
    ROOT,
    compose,
    flash_and_click,
    flash_clip,
    frame_count,
    has_audio,
    write_hls,
    write_video,
)

pytestmark = pytest.mark.usefixtures("detector_ready")


def cli(*args):
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    return subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *map(str, args)],
                            stderr=subprocess.PIPE, text=True, env=environment)


def while_running(proc, look, timeout=60):
    """``look()`` every 0.1 s while ``proc`` runs, for ``timeout`` s at most: the first thing
    it gives that is not None (then it stops looking), else None."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if (seen := look()) is not None:
            return seen
        time.sleep(0.1)
    return None


def run_to_end(*args, timeout=120):
    """``cli(*args)`` run to its end (killed if it outlives ``timeout``): its exit status and
    standard error."""
    proc = cli(*args)
    try:
        stderr = proc.communicate(timeout=timeout)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, stderr


class RowWatcher:
    """The CSV rows a running command has written so far, each with the wall clock
    (monotonic) at which it was first seen."""

    def __init__(self, path):
        self.path, self.rows, self.seen = path, [], []

    def poll(self):
        if self.path.exists():
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
            now = time.monotonic()
            for row in rows[len(self.rows):]:
                if row.get("time_s"):  # a whole line (the writer flushes frame by frame)
                    self.rows.append(row)
                    self.seen.append(now)
        return len(self.rows)

    def wait_for(self, count, proc, timeout=180):
        deadline = time.monotonic() + timeout
        while self.poll() < count:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, f"only {len(self.rows)} rows"
            time.sleep(0.1)


def test_a_stream_that_drops_is_reconnected_and_a_lost_one_ends_with_an_error(
        tmp_path, stream_server):
    """The server is killed mid-run and started again within --reconnect: the run goes on
    (frame numbers never restart, time_s shows the outage as it was on the clock); killed
    for good, the run ends with one Error line and a non-zero exit, its CSV kept, and its
    --report written, the session's end (it was not). Before, the run ended at the first
    failed read with exit 0, and time_s was index / fps."""
    stream_server.start()
    table, page = tmp_path / "live.csv", tmp_path / "live.html"
    proc = cli("-s", stream_server.url, "--csv", table, "--reconnect", "6", "--report", page,
               "-q")
    try:
        rows = RowWatcher(table)
        rows.wait_for(25, proc)
        stream_server.stop()
        outage = time.monotonic()
        while time.monotonic() < outage + 2.5:  # rows still in flight are seen as they come
            rows.poll()
            time.sleep(0.1)
        stream_server.start()
        before = rows.poll()
        rows.wait_for(before + 25, proc, timeout=60)
        stream_server.stop()  # for good
        while_running(proc, lambda: (rows.poll(), None)[1])  # every row seen, to its end
        stderr = proc.communicate(timeout=10)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "did not come back within 6 s" in errors[0], stderr
    assert stderr.splitlines()[-1] == errors[0] and f"report written to {page}" in stderr
    assert page.read_text().count('class="thumb"') == 1
    assert stderr.count("the stream dropped at") == 3 and stderr.count("reconnected") == 1
    frames = [int(r["frame"]) for r in rows.rows]
    times = [float(r["time_s"]) for r in rows.rows]
    assert frames == sorted(set(frames))  # one face a frame, numbers never restart
    assert all(b >= a for a, b in zip(times, times[1:]))
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) > 2.0  # the outage is in time_s ...
    # ... as long as it was: each row's time_s keeps to the wall clock it was seen at
    lag = [seen - t for seen, t in zip(rows.seen, times)]
    assert max(lag) - min(lag) < 1.0, (min(lag), max(lag))
    assert min(rows.seen) < outage < max(rows.seen)


def test_a_stream_joined_between_key_frames_starts_at_the_next_one(tmp_path, face_bgr,
                                                                   caplog):
    """MPEG-TS over UDP with a key frame every 10 s, joined 1.5 s in: FFmpeg's look at it ran
    out of time before a picture came, and the source either ended 'cannot open stream: …
    (nothing came in 5 s)' or, where the open came back with half an answer, said 'the
    stream dropped at 0.0 s' and 'reconnected' before its first frame. Now it waits for the
    next key frame within --reconnect and starts there; a wait is said once, a drop never."""
    import imageio_ffmpeg

    from streamfer.sources import open_source

    clip = write_video(tmp_path / "c.mp4", [compose(face_bgr, (320, 240), 10 + i % 50, 10,
                                                    scale=0.6) for i in range(25 * 14)],
                       fps=25.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as free:
        free.bind(("127.0.0.1", 0))
        url = f"udp://127.0.0.1:{free.getsockname()[1]}"
    sender = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-re", "-i",
                               str(clip), "-c:v", "libx264", "-g", "250", "-sc_threshold", "0",
                               "-f", "mpegts", url])
    try:
        time.sleep(1.5)  # joined 1.5 s in: the next key frame is 10 s in
        began = time.monotonic()
        with caplog.at_level("WARNING"), open_source(url) as source:
            first = next(iter(source))
        waited = time.monotonic() - began
    finally:
        sender.kill()
        sender.wait()
    assert first.index == 0 and first.image.shape == (240, 320, 3)
    assert 6.0 < waited < 20.0, waited  # the key frame 10 s in, not the first packet's
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "dropped" in m or "reconnected" in m], said
    assert set(said) <= {f"{url}: no picture in 5 s (nothing came, or no key frame yet); "
                         "waiting (for up to 30 s, --reconnect)"}, said


def test_end_stops_a_stream_that_long_after_its_first_frame_with_its_outputs_whole(
        tmp_path, stream_server):
    """--end on a live source: the run ends by itself, exit 0, its video named and
    playable and its CSV's times below --end (before, a stream ran until it dropped)."""
    stream_server.start()
    out, table = tmp_path / "live.mp4", tmp_path / "live.csv"
    code, stderr = run_to_end("-s", stream_server.url, "--end", "3", "-o", out, "--csv", table,
                              "-q")
    assert code == 0, stderr
    with open(table, newline="") as f:
        times = [float(r["time_s"]) for r in csv.DictReader(f)]
    assert len(times) >= 10 and max(times) < 3.0, times
    assert frame_count(out)[0] >= len(times)


def test_a_live_source_s_csv_says_when_each_frame_was_captured(tmp_path, stream_server):
    """A live session's rows could not be put beside anything else recorded then (a
    stimulus log, another camera): time_s counts from its first frame, and nothing said
    when that was. Its CSV now ends with wall_time, the UTC moment each frame was captured
    (ISO 8601, ms), on the monotonic clock from the first frame's wall time; the report
    says the span, and each face's. A file's CSV keeps its columns (CSV_COLUMNS, tested
    with files)."""
    import datetime

    stream_server.start()
    table, page = tmp_path / "live.csv", tmp_path / "live.html"
    before = time.time()
    code, stderr = run_to_end("-s", stream_server.url, "--end", "3", "--csv", table,
                              "--report", page, "-q")
    after = time.time()
    assert code == 0, stderr
    with open(table, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames[-1] == "wall_time" and len(rows) >= 10
    stamps = [r["wall_time"] for r in rows]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", s) for s in stamps)
    moments = [datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
               for s in stamps]
    assert before < moments[0] and moments[-1] < after, (before, moments, after)
    offsets = [m - float(r["time_s"]) for m, r in zip(moments, rows)]
    assert max(offsets) - min(offsets) < 0.002  # one clock: the first frame's, plus time_s
    def span(a, b):
        first, last = a.rstrip("Z").split("T"), b.rstrip("Z").split("T")
        return f"{first[0]} {first[1]} – " + (last[1] if last[0] == first[0] else
                                               " ".join(last)) + " UTC"

    assert span(stamps[0], stamps[-1]) in page.read_text()
    # each face when it was first and last seen, on the same clock (it had time_s alone)
    seen = [r["wall_time"] for r in rows if r["face_id"] == "1"]
    assert f"({span(seen[0], seen[-1])})" in page.read_text()


@pytest.mark.parametrize("how", ["stream", "stdin"])
def test_a_live_source_s_report_has_its_faces_thumbnails(tmp_path, stream_server, face_bgr,
                                                         how):
    """--report on a webcam, a stream or standard input had no thumbnails ("no thumbnails:
    … its frames cannot be read again"). The run now keeps each face's as it goes, at its
    best-scored detection: for a pipe, the very thumbnail a report reads again from the
    same video as a file."""
    import cv2
    import imageio_ffmpeg

    from streamfer.report import write_report

    table, page = tmp_path / "live.csv", tmp_path / "live.html"
    if how == "stream":
        stream_server.start()
        code, stderr = run_to_end("-s", stream_server.url, "--end", "3", "--csv", table,
                                  "--report", page, "-q")
    else:
        clip = write_video(tmp_path / "clip.mp4", [
            compose(face_bgr, (480, 360), 40 + 3 * i, 40, scale=0.8) for i in range(60)])
        ts = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(clip),
                             "-c", "copy", "-f", "mpegts", "-"], capture_output=True,
                            check=True).stdout
        done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "-s", "-", "--csv",
                               str(table), "--report", str(page), "-q"], input=ts,
                              capture_output=True, timeout=300,
                              env={k: v for k, v in os.environ.items() if k not in QUIETING})
        code, stderr = done.returncode, done.stderr.decode()
    assert code == 0 and "no thumbnails" not in stderr, stderr

    def thumbs(html_page):
        return re.findall(r'class="thumb" alt="[^"]*" src="data:image/png;base64,([^"]+)"',
                          html_page.read_text())

    [kept] = thumbs(page)  # before: none
    image = cv2.imdecode(np.frombuffer(base64.b64decode(kept), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (96, 96, 3) and image.std() > 15
    if how == "stdin":
        write_report(table, tmp_path / "again.html", video=clip)
        assert thumbs(tmp_path / "again.html") == [kept]


def test_a_live_session_ended_with_ctrl_c_has_its_report(tmp_path, stream_server, face_clip):
    """A webcam or a stream has no end but the one its user gives it — headless, a Ctrl-C —
    and --report was not written then: the run ended before it. It now is, of the session's
    rows, thumbnails and all. A file's run cut short still gets none (a part would look
    like the whole), said in one line with the command that makes it of the rows so far."""
    import imageio_ffmpeg

    stream_server.start()
    table, page = tmp_path / "live.csv", tmp_path / "live.html"
    proc = cli("-s", stream_server.url, "--csv", table, "--report", page, "-q")
    try:
        RowWatcher(table).wait_for(40, proc)  # 1.6 s of faces: one listed, not folded
        proc.send_signal(signal.SIGINT)
        stderr = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130 and f"report written to {page}" in stderr, stderr
    assert page.read_text().count('class="thumb"') == 1  # before: no page
    clip = tmp_path / "long.mp4"  # 80 s: still running when interrupted
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-stream_loop", "99", "-i",
                    str(face_clip), "-c", "copy", str(clip)], check=True)
    table, page = tmp_path / "file.csv", tmp_path / "file.html"
    proc = cli("-s", clip, "--csv", table, "--report", page, "-q")
    try:
        RowWatcher(table).wait_for(10, proc)
        proc.send_signal(signal.SIGINT)
        stderr = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130 and not page.exists(), stderr
    assert (f"warning: {page} not written: the run was interrupted (streamfer report {table} "
            f"-o {page} makes it of the rows so far)") in stderr


SLOW_MODEL_PROBE = """
import json, sys, time
from streamfer import classify, pipeline
from streamfer.pipeline import Pipeline, Settings

real = classify.Classifier.classify
def slow(self, faces, mirrored=None):
    time.sleep(0.3)  # a model four times slower than the 25 fps source
    return real(self, faces, mirrored)
classify.Classifier.classify = slow

opened, open_source = [], pipeline.open_source
def recording(*args, **kwargs):
    opened.append(open_source(*args, **kwargs))
    return opened[-1]
pipeline.open_source = recording

delays, times = [], []
with Pipeline(Settings(progress=False, backend="onnx")) as p:
    start = time.monotonic()
    for frame in p.analyze(sys.argv[1]):
        delays.append(time.monotonic() - opened[0].origin - frame.time_s)
        times.append(frame.time_s)
        if time.monotonic() - start > 8:
            break
print(json.dumps({"delays": delays, "times": times}))
"""


def test_with_a_model_slower_than_the_stream_the_overlay_shows_now(tmp_path, stream_server):
    """Live sources keep the newest frame: with a model four times slower than the source,
    the delay from capture to output stays under a second (it grew without bound when the
    capture waited for the model)."""
    stream_server.start()
    probe = tmp_path / "probe.py"
    probe.write_text(SLOW_MODEL_PROBE)
    done = subprocess.run([sys.executable, str(probe), stream_server.url],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    delays, times = result["delays"], result["times"]
    assert len(delays) >= 10, result
    assert max(delays) < 1.0, delays
    assert times[-1] > 6.0  # the frames shown span the run: stale ones were passed over
    assert len(times) < 0.5 * 25 * times[-1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


SECRET = "s3cr3t-Pa55"  # the password of the locked server below


class _Locked(_Quiet):
    """Serves only to ``viewer`` with :data:`SECRET` (HTTP basic authentication), as a
    camera does."""

    def send_head(self):
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(
                f"viewer:{SECRET}".encode()).decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().send_head()


def _serve(tmp_path, handler, user=""):
    """A static file server for ``tmp_path / "www"`` on the loopback: the folder, the link to
    it (with ``user``'s part), the server."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return root, f"http://{user}127.0.0.1:{server.server_address[1]}", server


@pytest.fixture
def http_server(tmp_path):
    """A static file server for ``tmp_path / "www"`` on the loopback, stopped after."""
    root, base, server = _serve(tmp_path, _Quiet)
    yield root, base
    server.shutdown()
    server.server_close()


@pytest.fixture
def locked_server(tmp_path):
    """:func:`http_server` behind a password: the link holds it (``viewer:SECRET@``)."""
    root, base, server = _serve(tmp_path, _Locked, user=f"viewer:{SECRET}@")
    yield root, base
    server.shutdown()
    server.server_close()


def test_a_web_page_s_link_is_said_to_be_one(tmp_path, http_server):
    """A video site's page given as the source (``…/watch?v=…``) said only FFmpeg's "Invalid
    data found when processing input"; now that it is a web page, and how to get the
    video's own link. Other data that is no video keeps FFmpeg's words."""
    root, base = http_server
    (root / "watch.html").write_text("<!doctype html><html><body>a player</body></html>")
    (root / "noise.bin").write_bytes(bytes(range(256)) * 64)
    code, stderr = run_to_end("-s", f"{base}/watch.html?v=abc", "--csv", tmp_path / "x.csv")
    assert code == 1, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"Error: cannot open stream: {base}/watch.html?v=abc (a web page (text/html), not a video: "
        "a video site's page is not its video; give the video's own link (yt-dlp -g prints "
        "it) or a file)")
    code, stderr = run_to_end("-s", f"{base}/noise.bin", "--csv", tmp_path / "x.csv")
    assert code == 1 and "web page" not in stderr and stderr.count("Error:") == 1, stderr


def test_a_dash_manifest_is_said_with_the_pipe_that_reads_it(tmp_path, http_server, face_clip):
    """An MPEG-DASH manifest (``.mpd``: a broadcaster's stream, a packager's output), as a
    link or a file, said "Invalid data found when processing input" and "not a video or
    photo format FFmpeg reads": the FFmpeg in OpenCV (and PyAV) has no DASH demuxer, while
    the ``ffmpeg`` command has. Now said as a manifest, with the pipe that reads it — which
    does: its frames, every one a row."""
    import imageio_ffmpeg

    root, base = http_server
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-i", str(face_clip), "-c:v", "libx264", "-g", "12",
                    "-c:a", "aac", "-f", "dash", "-seg_duration", "0.4", str(root / "m.mpd")],
                   check=True, timeout=60)
    for source, what in ((f"{base}/m.mpd", "stream"), (root / "m.mpd", "video")):
        code, stderr = run_to_end("-s", source, "--csv", tmp_path / "x.csv")
        assert code == 1 and not (tmp_path / "x.csv").exists(), stderr
        assert stderr.strip().splitlines()[-1] == (
            f"Error: cannot open {what}: {source} (an MPEG-DASH manifest, which OpenCV's FFmpeg "
            f"does not read: pipe it in, ffmpeg -i {source} -c copy -f mpegts - | streamfer "
            "run --source - …)")
    sent = subprocess.Popen([ffmpeg, "-v", "error", "-i", f"{base}/m.mpd", "-c", "copy", "-f",
                             "mpegts", "-"], stdout=subprocess.PIPE)
    read = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "--source", "-", "--csv",
                           tmp_path / "piped.csv", "-q"], stdin=sent.stdout, timeout=120,
                          capture_output=True, text=True)
    sent.stdout.close()
    assert sent.wait(timeout=30) == 0 and read.returncode == 0, read.stderr
    with open(tmp_path / "piped.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == frame_count(face_clip)[0] == 24, read.stderr


def test_a_link_s_password_is_neither_shown_nor_written(tmp_path, locked_server, face_bgr):
    """A camera's password in its link (``rtsp://admin:pass@cam``), a signed link's token:
    they were in the summary, every message, the CSV's ``source`` and the report's page,
    for anyone the CSV or page is sent to. Masked now (``****``), while the run still reads
    the link with them — its thumbnails too."""
    root, base = locked_server
    write_video(root / "clip.mp4", [compose(face_bgr, (480, 360), 40 + 4 * i, 40, scale=0.8)
                                    for i in range(60)])
    bare = base.replace(f"viewer:{SECRET}@", "") + "/clip.mp4"
    with pytest.raises(urllib.error.HTTPError, match="401"):  # the link needs its password
        urllib.request.urlopen(bare, timeout=10)
    table, page = tmp_path / "t.csv", tmp_path / "r.html"
    code, stderr = run_to_end("-s", f"{base}/clip.mp4?token=T0KEN&x=1", "--csv", table,
                              "--report", page, "-o", tmp_path / "a.mp4", timeout=300)
    assert code == 0, stderr
    with open(table, newline="") as f:
        sources = {row["source"] for row in csv.DictReader(f)}
    assert sources == {bare.replace("//", "//viewer:****@", 1)
                       + "?token=****&x=1"}, sources
    shown = stderr + table.read_text() + page.read_text()
    assert SECRET not in shown and "T0KEN" not in shown
    assert page.read_text().count('class="thumb"') == 1, stderr  # read with its password
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, stderr = run_to_end("-s", f"rtsp://admin:{SECRET}@127.0.0.1:{port}/live", "--csv",
                              tmp_path / "x.csv", timeout=60)
    assert code == 1 and SECRET not in stderr, stderr
    assert f"Error: cannot open stream: rtsp://admin:****@127.0.0.1:{port}/live" in stderr


def test_a_links_password_goes_only_to_its_own_server():
    """A master playlist's renditions are read with the master's ``user:password@`` where
    they are on its server (relative or absolute links), and without it elsewhere (a CDN's
    segments): a password is not handed to another host."""
    from streamfer.sources.streams import as_asked

    asked = "https://viewer:p%40ss@tv.example:8443/vod/master.m3u8"
    assert as_asked("https://tv.example:8443/vod/v1.m3u8", asked) == \
        "https://viewer:p%40ss@tv.example:8443/vod/v1.m3u8"
    assert as_asked("https://cdn.example/vod/v1.m3u8", asked) == "https://cdn.example/vod/v1.m3u8"
    assert as_asked("http://tv.example:8443/v1.m3u8", asked) == "http://tv.example:8443/v1.m3u8"
    assert as_asked("https://tv.example/v1.m3u8", "https://tv.example/m.m3u8") == \
        "https://tv.example/v1.m3u8"


def test_a_recorded_file_behind_an_http_link_is_read_as_a_file(tmp_path, http_server,
                                                               face_clip):
    """Its frame count, timestamps and audio are the file's (an http link used to count as
    live: clock-less index / fps stamps, no audio, no frame count)."""
    from streamfer.sources import open_source

    root, base = http_server
    shutil.copy(face_clip, root / "clip.mp4")
    url = f"{base}/clip.mp4"
    with open_source(url) as remote, open_source(face_clip) as local:
        assert not remote.live and remote.frame_count == local.frame_count == 24
        assert remote.duration == pytest.approx(local.duration)
        assert [f.time_s for f in remote] == [f.time_s for f in local]
    out = tmp_path / "annotated.mp4"
    proc = cli("-s", url, "-o", out, "-q")
    stderr = proc.communicate(timeout=300)[1]
    assert proc.returncode == 0, stderr
    assert has_audio(out)


def test_a_file_link_is_its_file_and_a_links_scheme_is_read_in_any_case(tmp_path, http_server,
                                                                        face_clip):
    """A ``file://`` link (a browser's address bar, a file manager's copy) was taken for a
    live stream: read to its end, "the stream dropped", opened again and read again,
    without end. ``HTTP://`` (a scheme is of any case) was "this FFmpeg, PyAV's, does not
    read http://". Now the first is its file, a folder's link a folder run, and the second
    the link it names."""
    import urllib.request

    root, base = http_server
    folder = tmp_path / "my clips"
    folder.mkdir()
    shutil.copy(face_clip, folder / "clip.mp4")
    shutil.copy(face_clip, root / "clip.mp4")
    link = urllib.request.pathname2url(str(folder / "clip.mp4"))
    assert "%20" in link
    for source, table in ((f"file://{link}", "f.csv"), (f"FILE://localhost{link}", "l.csv"),
                          (base.replace("http://", "HTTP://") + "/clip.mp4", "h.csv")):
        code, stderr = run_to_end("-s", source, "--csv", tmp_path / table, "-q", timeout=120)
        assert code == 0 and "warning" not in stderr, stderr
        with open(tmp_path / table, newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 24 and rows[0]["source"] in ("clip.mp4", f"{base}/clip.mp4"), rows[0]
    code, stderr = run_to_end("-s", "file://" + urllib.request.pathname2url(str(folder)),
                              "--csv-dir", tmp_path / "out", "-q")
    assert code == 0 and (tmp_path / "out" / "clip.mp4.csv").is_file(), stderr
    # and as --output: "Protocol not found" of UDP://, "give rtmp://, … a file" of file://
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(10)
        port = listener.getsockname()[1]
        code, stderr = run_to_end("-s", face_clip, "-o", f"UDP://127.0.0.1:{port}", "-q")
        assert code == 0 and listener.recv(65536), stderr
    code, stderr = run_to_end("-s", face_clip, "-o", f"file://{link[:-len('clip.mp4')]}a.mp4",
                              "-q")
    assert code == 0 and frame_count(folder / "a.mp4")[0] == 24, stderr


def test_the_report_of_a_recorded_file_behind_an_http_link_has_its_thumbnails(tmp_path,
                                                                              http_server,
                                                                              face_bgr):
    """--report on a link to a recorded file has the faces' thumbnails (it warned "no
    thumbnails: the input http://… was not found"; the run now keeps them as it reads the
    link), and so does `streamfer report --video LINK`, reading them from it as from a file;
    once the server is gone, the page is still made and the warning says why there are none."""
    root, base = http_server  # two seconds: a face on screen under one is folded, no thumbnail
    write_video(root / "clip.mp4", [compose(face_bgr, (480, 360), 40 + 4 * i, 40, scale=0.8)
                                    for i in range(60)])
    table, page = tmp_path / "t.csv", tmp_path / "r.html"
    proc = cli("-s", f"{base}/clip.mp4", "--csv", table, "--report", page, "-q")
    stderr = proc.communicate(timeout=300)[1]
    assert proc.returncode == 0, stderr
    assert "no thumbnails" not in stderr, stderr
    assert page.read_text().count('class="thumb"') == 1
    shutil.copy(root / "clip.mp4", root / "same.mp4")  # --video a link (it took it for a path)
    proc = subprocess.run([sys.executable, "-m", "streamfer", "report", str(table), "-o",
                           str(tmp_path / "v.html"), "--video", f"{base}/same.mp4"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "no thumbnails" not in proc.stderr, proc.stderr
    assert (tmp_path / "v.html").read_text().count('class="thumb"') == 1
    (root / "clip.mp4").unlink()
    from streamfer.report import write_report

    said = []
    write_report(table, tmp_path / "again.html", warn=said.append)
    assert said and "cannot be read again" in said[0], said


def test_a_part_of_a_recorded_file_behind_an_http_link_is_the_part_of_the_file(
        http_server, face_bgr):
    """--start over http (a server without range requests: the seek fails and the file is
    read from its start): the frames and their numbers (counted from the container's
    packets, read over the link up to the start) are those of the same file on disk."""
    from streamfer.sources import open_source

    root, base = http_server
    clip = write_video(root / "long.mkv", [compose(face_bgr, (320, 240), 5 + i, 5, scale=0.7)
                                           for i in range(90)], fps=30)  # 3 s
    with open_source(f"{base}/long.mkv", start=2.0, end=2.5) as remote, \
            open_source(clip, start=2.0, end=2.5) as local:
        got = [(f.index, round(f.time_s, 4)) for f in remote]
        assert got == [(f.index, round(f.time_s, 4)) for f in local]
    assert got[0] == (60, 2.0) and len(got) == 15


def test_a_recorded_file_behind_an_http_link_is_probed_once(http_server, face_clip,
                                                            monkeypatch):
    """Telling a recorded file from a live stream reads the link's header; that reading is
    the file's format too (it used to be read a second time over the network)."""
    from streamfer.sources import open_source, probe, reader

    root, base = http_server
    shutil.copy(face_clip, root / "clip.mp4")
    probed = []
    real = probe.probe
    for module in (probe, reader):  # the link's look (probe.recorded), a file's (reader)
        monkeypatch.setattr(module, "probe", lambda path: probed.append(path) or real(path))
    with open_source(f"{base}/clip.mp4") as remote:
        assert not remote.live and remote.frame_count == 24 and remote.duration
    assert probed == [f"{base}/clip.mp4"]


def test_a_stream_that_comes_in_bursts_is_timed_and_analysed_at_its_own_pace(
        tmp_path, http_server, stream_server):
    """Live HLS (what `yt-dlp -g` gives for a live video, what a media server relays) comes a
    segment at a time: a second of frames read in a few milliseconds, then nothing. Timed as
    read, those frames had one moment (the CSV said 24 frames within 30 ms, the video showed
    them so) and the newest-frame rule passed over all but the last few: a 24 fps HLS
    stream was analysed 3 times a second (31 rows in 10 s, measured). They are now given at
    their own timestamps, evenly, as a player plays them."""
    import imageio_ffmpeg

    root, base = http_server
    hls = subprocess.Popen(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-re", "-stream_loop", "-1", "-i",
         str(stream_server.clip), "-c:v", "libx264", "-g", "25", "-f", "hls", "-hls_time", "1",
         "-hls_list_size", "5", "-hls_flags", "delete_segments", str(root / "live.m3u8")],
        stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(list(root.glob("*.ts"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)  # a live playlist of a few segments, as a player joins one
        table, video = tmp_path / "hls.csv", tmp_path / "hls.mp4"
        code, stderr = run_to_end("-s", f"{base}/live.m3u8", "--end", "6", "--csv", table,
                                  "-o", video, "-q", "--csv-empty-frames")
    finally:
        hls.kill()
        hls.wait(timeout=10)
    assert code == 0, stderr
    with open(table, newline="") as f:
        times = sorted({float(row["time_s"]) for row in csv.DictReader(f)})
    assert len(times) >= 0.6 * 25 * 6, (len(times), stderr)  # it was about 3 a second
    steps = np.diff(times)
    assert np.median(steps) == pytest.approx(0.04, abs=0.004), steps
    assert np.mean(steps > 0.02) > 0.9, steps  # not bursts of a few ms apart
    assert frame_count(video)[0] == len(times)


def test_a_stream_s_clock_plays_bursts_evenly_and_does_not_keep_a_delay():
    """The clock of the test above, frame by frame (25 fps): on time, a frame is due as it is
    read; a burst is spread at the frames' own times, until the next may come; a stall's
    delay is kept while such stalls may come again, then given up (the frames it would
    play late passed over); a backlog read at once at the start is not played late; a
    clock that runs fast (a camera's made-up timestamps) delays no frame more than a little."""
    from streamfer.sources.streams import StreamClock

    clock = StreamClock()
    assert [clock.due(i / 25, 100 + i / 25) for i in range(3)] == pytest.approx(
        [100, 100.04, 100.08])  # steady: no delay added
    burst = [clock.due(i / 25, 101.0) for i in range(25, 50)]  # a second read at once
    assert burst == pytest.approx([100 + i / 25 for i in range(25, 50)])
    late = [clock.due(i / 25, 104.0) for i in range(50, 100)]  # 2 s stalled, then at once
    assert late == pytest.approx([102 + i / 25 for i in range(50, 100)])  # evenly, 2 s late
    then = [clock.due(i / 25, 100 + i / 25) for i in range(100, 600)]  # on time again
    passed = [i for i, due in zip(range(100, 600), then) if due is None]
    assert len(passed) == pytest.approx(2 * 25, abs=3), passed  # the 2 s, once
    assert 114 <= 100 + passed[0] / 25 <= 115  # ten seconds after the stall
    assert then[0] == pytest.approx(106.0) and 0 <= then[-1] - (100 + 599 / 25) <= 0.07
    given = [due for due in burst + late + then if due is not None]
    assert all(b > a for a, b in zip(given, given[1:]))

    joined = StreamClock()  # HLS's backlog: 3 s read in 60 ms, then a segment a second
    backlog = [joined.due(i / 25, 50 + i / 1000) for i in range(75)]
    assert backlog == pytest.approx([50 + i / 1000 for i in range(75)], abs=0.002)

    fast = StreamClock()  # a 40 fps camera whose timestamps say 25 fps
    dues = [fast.due(i / 25, 10 + i / 40) for i in range(400)]
    assert None not in dues
    assert max(due - (10 + i / 40) for i, due in enumerate(dues)) < 0.05


def _listening(port: int, within: float = 20.0) -> bool:
    """True once something listens on the loopback's ``port`` (read from /proc/net/tcp, so
    that no connection is spent on asking: FFmpeg's ``-listen 1`` takes one alone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return True
        time.sleep(0.1)
    return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads Linux's /proc/net/tcp")
@pytest.mark.parametrize("scheme", ["rtmp", "tcp"])
def test_the_annotated_video_is_sent_live_to_a_server(tmp_path, stream_server, scheme):
    """--output rtmp://server/app/key (a streaming server, a video site's live ingest) or
    tcp://host:port (MPEG-TS, to a player or a relay): the overlay sent as it is made, a
    file's frames at the pace of their timestamps, as a live source's come. It was 'cannot
    write video 'key': name it .mp4 …'. The stream key is a channel's password: never shown."""
    import imageio_ffmpeg

    port, received = _free_port(), tmp_path / "received.mkv"
    listen = (["-listen", "1", "-i", f"rtmp://127.0.0.1:{port}/live/Key-s3cr3t"]
              if scheme == "rtmp" else ["-i", f"tcp://127.0.0.1:{port}?listen=1"])
    server = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *listen,
                               "-c", "copy", "-y", str(received)],
                              stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _listening(port), "the receiving FFmpeg did not listen"
        url = f"rtmp://127.0.0.1:{port}/live/Key-s3cr3t" if scheme == "rtmp" \
            else f"tcp://127.0.0.1:{port}"
        began = time.monotonic()
        code, stderr = run_to_end("-s", stream_server.clip, "-o", url, "--csv",
                                  tmp_path / "sent.csv")
        took = time.monotonic() - began
        server.wait(timeout=30)  # the stream's end ends the receiver
    finally:
        server.kill()
    assert code == 0, stderr
    assert "s3cr3t" not in stderr
    assert frame_count(received)[0] == 100  # every frame of the 4 s clip
    assert took >= 0.9 * 4.0  # at the clip's own pace, not as fast as made
    with open(tmp_path / "sent.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 100


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads Linux's /proc/net/tcp")
@pytest.mark.parametrize("scheme,start", [("rtmp", None), ("tcp", "1.0")])
def test_a_files_sound_is_sent_with_its_picture_in_step(tmp_path, scheme, start):
    """A recorded file sent live (a talk, a match, a film annotated for an audience) went
    picture only: its viewers heard nothing. Its sound goes with it now, as the saved
    video's does: the click heard with the white frame it was recorded with (the picture
    starting 0.5 s after the sound, as in face_recognition's clip), from --start too, and
    no longer than the picture."""
    import av
    import imageio_ffmpeg

    clip = flash_clip(tmp_path / "late.mp4", lead_s=0.5)  # the flash at 1.2 s, 3 s long
    port, received = _free_port(), tmp_path / "received.mkv"
    url = f"rtmp://127.0.0.1:{port}/live/key" if scheme == "rtmp" \
        else f"tcp://127.0.0.1:{port}"
    listen = ["-listen", "1", "-i", url] if scheme == "rtmp" else ["-i", f"{url}?listen=1"]
    server = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *listen,
                               "-c", "copy", "-y", str(received)],
                              stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _listening(port), "the receiving FFmpeg did not listen"
        code, stderr = run_to_end("-s", clip, "-o", url, *(["--start", start] if start else []),
                                  "--csv", tmp_path / "sent.csv")
        server.wait(timeout=30)
    finally:
        server.kill()
    assert code == 0, stderr
    assert has_audio(received), "picture only"
    seen, heard = flash_and_click(received)
    assert abs(seen - heard) < 0.03, (seen, heard)
    assert abs(seen - (1.2 - float(start or 0))) < 0.05, seen  # the stream from its first frame
    def sound(path):  # its length (s) and its loudest sample
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray() for frame in container.decode(audio=0)]
        return sum(f.shape[-1] for f in frames) / 48000, max(abs(f).max() for f in frames)

    (length, loudest), (_, was) = sound(received), sound(clip)
    assert abs(length - (3.0 - float(start or 0))) < 0.1, length
    assert abs(loudest / was - 1) < 0.15, (loudest, was)  # (a mono track made stereo: 0.71)


def test_a_sound_that_changes_midway_is_sent_on(tmp_path):
    """A broadcast's sound changes midway (5.1 for a film, stereo for its ads), as two
    recordings joined do (stereo at 48 kHz, then mono at 44.1 kHz): the stream sent ended
    there, 'cannot send the video to standard output: Frame does not match
    AudioResampler setup.' — a file's and a pipe's alike. The sound goes on, as it is."""
    import av
    import imageio_ffmpeg

    parts = []
    for rate, channels in ((48000, 2), (44100, 1)):
        part = tmp_path / f"part{rate}.ts"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                        "testsrc=size=320x240:rate=25:duration=2", "-f", "lavfi", "-i",
                        f"sine=frequency=440:sample_rate={rate}:duration=2", "-ac",
                        str(channels), "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f",
                        "mpegts", str(part)], check=True)
        parts.append(part.read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(parts))
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    for source, data in ((joined, None), ("-", joined.read_bytes())):
        sent = tmp_path / "sent.ts"
        with open(sent, "wb") as out:
            done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), "-s",
                                   str(source), "-o", "-", "-q"], input=data, stdout=out,
                                  stderr=subprocess.PIPE, timeout=300, env=environment)
        assert done.returncode == 0, done.stderr.decode()
        with av.open(str(sent)) as container:
            sound = sum(f.samples / f.sample_rate for f in container.decode(audio=0))
        assert abs(sound - 4.0) < 0.1, (source, sound)
        assert frame_count(sent)[0] == 100


def test_a_server_that_is_not_there_is_said_before_the_run(tmp_path, stream_server):
    """One line, before any frame (the connection is made first), the key masked; nothing
    written. A way we do not send by (srt://, http://) is said with the ways we do."""
    port = _free_port()  # nothing listens there
    table = tmp_path / "x.csv"
    code, stderr = run_to_end("-s", stream_server.clip, "-o",
                              f"rtmp://127.0.0.1:{port}/live/Key-s3cr3t", "--csv", table)
    assert code == 1 and not table.exists(), stderr
    assert stderr.strip().splitlines()[-1] == (
        f"Error: cannot send the video to rtmp://127.0.0.1:{port}/live/****: Connection refused")
    assert "s3cr3t" not in stderr
    code, stderr = run_to_end("-s", stream_server.clip, "-o", "srt://127.0.0.1:9000",
                              "--csv", table)
    assert code == 1 and "give rtmp:// (a streaming server" in stderr
    assert "or an HLS playlist (out/live.m3u8)" in stderr
    assert "for SRT relay it" in stderr and "Traceback" not in stderr


def test_the_annotated_video_goes_to_standard_output_for_another_program(tmp_path,
                                                                         stream_server):
    """--output -: MPEG-TS on standard output, streamfer a filter between two programs
    (`… | streamfer -s - -o - | ffplay -`); it was "cannot write video '-'". A reader that
    stops ends the run as --csv -'s does (exit 141, the CSV kept); both on standard output,
    or a terminal there, is one line."""
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    command = [sys.executable, str(ROOT / "run_stream.py"), "-s", str(stream_server.clip),
               "-o", "-", "--csv", str(tmp_path / "rows.csv")]
    video = tmp_path / "piped.ts"
    with open(video, "wb") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True,
                              env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    assert frame_count(video)[0] == 100  # every frame, as MPEG-TS
    reader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=environment)
    reader.stdout.read(4096)  # `| head -c 4096`
    reader.stdout.close()
    stderr = reader.communicate(timeout=120)[1].decode()
    assert reader.returncode == 141, stderr
    assert "stopped: standard output was closed" in stderr and "Traceback" not in stderr
    code, stderr = run_to_end("-s", stream_server.clip, "-o", "-", "--csv", "-")
    assert code == 1, stderr
    assert stderr.strip().splitlines()[-1] == ("Error: --output - and --csv - both name "
                                               "standard output: give one of them a file")


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads Linux's /proc/net/tcp")
def test_a_stream_sent_to_a_server_that_restarts_is_connected_again(tmp_path, face_bgr):
    """A live overlay sent for hours meets a server restarted or a network gone a moment:
    the run ended there with one line. It connects again, with backoff, within --reconnect,
    as a source does; each cut and return said in one warning; the frames made meanwhile
    not sent, the CSV missing none."""
    import imageio_ffmpeg

    frames = [compose(face_bgr, (320, 240), 10 + (i % 50), 10, scale=0.6) for i in range(250)]
    clip = write_video(tmp_path / "ten_seconds.mp4", frames, fps=25.0)
    port = _free_port()
    url = f"rtmp://127.0.0.1:{port}/live/Key-s3cr3t"

    def receiver(into):
        return subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-listen",
                                 "1", "-i", url, "-c", "copy", "-y", str(into)],
                                stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    first, second = tmp_path / "first.flv", tmp_path / "second.flv"
    servers = [receiver(first)]
    try:
        assert _listening(port), "the receiving FFmpeg did not listen"
        run = cli("-s", clip, "-o", url, "--csv", tmp_path / "sent.csv", "-q")
        table, deadline = tmp_path / "sent.csv", time.monotonic() + 120
        while (not table.is_file() or len(table.read_bytes().splitlines()) < 50) \
                and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)  # two seconds of it sent (paced: 25 rows a second)
        servers[0].terminate()  # the server goes (what it received kept) ...
        servers[0].wait(timeout=10)
        time.sleep(0.5)
        servers.append(receiver(second))  # ... and comes back
        stderr = run.communicate(timeout=120)[1]
        servers[1].wait(timeout=30) if run.returncode == 0 else None
    finally:
        for server in servers:
            server.kill()
    assert run.returncode == 0, stderr
    assert re.search(r"warning: rtmp://127\.0\.0\.1:\d+/live/\*\*\*\*: the stream was cut at "
                     r"[\d.]+ s \(.+\); connecting again \(for up to 30 s\)", stderr), stderr
    assert (unsent := re.search(r"connected again after [\d.]+ s; (\d+) frames made "
                                r"meanwhile not sent", stderr)), stderr
    received = frame_count(first)[0], frame_count(second)[0]
    assert received[0] > 0 and received[1] > 25, received
    assert sum(received) + int(unsent.group(1)) >= 245, received  # (a frame or two in flight)
    with open(tmp_path / "sent.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 250
    assert "s3cr3t" not in stderr


@pytest.mark.skipif(not Path("/proc/net/tcp").is_file(), reason="reads Linux's /proc/net/tcp")
@pytest.mark.parametrize("output,sound", [("saved.mkv", "aac"), ("-", "aac"),
                                          ("saved.mp4", "pcm_alaw")])
def test_a_live_links_sound_is_kept_and_sent_in_step(tmp_path, output, sound):
    """A camera's or a server's stream with sound (an IP camera's microphone, a talk
    relayed over RTMP) was saved and sent picture only: OpenCV read the link and dropped
    its sound. It is read in the picture's connection now (a server that takes one viewer
    has one), and kept, or sent on, in step with it: the click heard with the white frame it
    came with, though the link's picture is timed by our clock; an IP camera's G.711 too
    (served as Matroska over TCP). Nothing of it is left in the temporary folder."""
    import imageio_ffmpeg

    clip = flash_clip(tmp_path / "served.mp4", lead_s=0.5, flash_s=2.5, seconds=4.0)
    port = _free_port()
    url = f"rtmp://127.0.0.1:{port}/live/key" if sound == "aac" else f"tcp://127.0.0.1:{port}"
    served = ["-c", "copy", "-f", "flv", "-listen", "1", url] if sound == "aac" else \
        ["-c:v", "copy", "-c:a", sound, "-ar", "8000", "-f", "matroska", f"{url}?listen=1"]
    server = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-re",
                               "-stream_loop", "-1", "-i", str(clip), *served],
                              stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    environment = {k: v for k, v in os.environ.items() if k not in QUIETING}
    received = tmp_path / ("sent.ts" if output == "-" else output)
    try:
        assert _listening(port), "the serving FFmpeg did not listen"
        with open(received if output == "-" else os.devnull, "wb") as out:
            done = subprocess.run(
                [sys.executable, str(ROOT / "run_stream.py"), "-s", url, "-o",
                 output if output == "-" else received, "--end", "9", "-q"],
                stdout=out, stderr=subprocess.PIPE, text=True, timeout=120,
                env={**environment, "TMPDIR": str(scratch)})
    finally:
        server.kill()
        server.wait(timeout=10)
    assert done.returncode == 0, done.stderr
    assert has_audio(received), "picture only"
    seen, heard = _flashes_and_clicks(received)
    assert len(seen) >= 2 and len(heard) >= 2, (seen, heard)  # one a loop of the clip
    for flash in seen:  # each with its click, within a frame (25 fps)
        assert min(abs(flash - click) for click in heard) < 0.05, (seen, heard)
    assert not list(scratch.glob("streamfer-*"))  # (a library's own .ses file may stay)


def _flashes_and_clicks(path: Path) -> tuple[list[float], list[float]]:
    """When each white frame shows and each click sounds, in seconds of ``path``'s
    timeline (a click: the first loud sample after a quiet one of a tenth of a second)."""
    import av

    with av.open(str(path)) as container:
        flashes = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)
                   if frame.to_ndarray(format="gray").mean() > 128]
    clicks, quiet_since = [], -1.0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            samples = np.abs(frame.to_ndarray()).max(axis=0)
            loud = np.flatnonzero(samples > 0.1 * (1.0 if samples.dtype.kind == "f" else 32767))
            at = float(frame.pts * frame.time_base)
            if loud.size:
                if at + loud[0] / frame.sample_rate - quiet_since > 0.1:
                    clicks.append(at + loud[0] / frame.sample_rate)
                quiet_since = at + (loud[-1] + 1) / frame.sample_rate
    return flashes, clicks


def test_a_live_streams_picture_that_changes_shape_is_kept_at_its_shape(tmp_path):
    """A stream whose picture turns midway (a phone's stream, landscape then portrait; a
    broadcast's 16:9 then 4:3) was stretched into its first shape, faces with it, as a
    file's was before. It is kept at its own shape within the first's, with bars, as a
    player shows it, and that is said once."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    parts = []
    for size in ("320x240", "240x320"):
        part = tmp_path / f"{size}.ts"
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i",
                        f"color=white:size={size}:rate=25:duration=3", "-c:v", "libx264",
                        "-g", "25", "-f", "mpegts", str(part)], check=True)
        parts.append(part.read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(parts))
    port = _free_port()
    server = subprocess.Popen([ffmpeg, "-v", "error", "-re", "-i", str(joined), "-c", "copy",
                               "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"],
                              stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _listening(port), "the serving FFmpeg did not listen"
        code, stderr = run_to_end("-s", f"tcp://127.0.0.1:{port}", "-o", tmp_path / "out.mkv",
                                  "--reconnect", "0", "-q")
    finally:
        server.kill()
        server.wait(timeout=10)
    assert "not reopened" in stderr, stderr  # the stream's end
    assert stderr.count("its picture changes shape") == 1, stderr
    assert "(320×240, then 240×320)" in stderr, stderr
    cap = cv2.VideoCapture(str(tmp_path / "out.mkv"))
    frames = []
    while (read := cap.read())[0]:
        frames.append(read[1])
    assert (320, 240) == (frames[-1].shape[1], frames[-1].shape[0])
    assert frames[0][:, :40].mean() > 200  # white to its sides
    assert frames[-1][:, :40].mean() < 20 and frames[-1][:, 140:180].mean() > 200  # bars


def test_a_live_hls_links_largest_rendition_is_read_alone(tmp_path, live_hls):
    """A live HLS link with several renditions (a master playlist, as a broadcaster's or a
    camera server's: 1080p, 720p, 360p…) was read at its first, often its smallest —
    FFmpeg's and OpenCV's choice: far faces lost at a quarter of the pixels. Its largest is
    read, with that rendition's sound, and the others' segments are not fetched."""
    link, fetched = live_hls
    code, stderr = run_to_end("-s", link, "-o", tmp_path / "out.mkv", "--end", "3", "-q")
    assert code == 0, stderr
    assert frame_count(tmp_path / "out.mkv")[2] == (640, 360)
    assert has_audio(tmp_path / "out.mkv")
    small = [path for path, _ in fetched if path.startswith("/v0") and path.endswith(".ts")]
    large = [path for path, _ in fetched if path.startswith("/v1") and path.endswith(".ts")]
    assert len(set(large)) >= 3 and len(set(small)) <= 1, fetched  # (one: FFmpeg's look
    # at each rendition on opening, as it tells a recorded link from a live one and reads it)


@pytest.mark.parametrize("where", ["link", "file", "link behind a password"])
@pytest.mark.parametrize("sound", ["in each rendition", "a rendition of its own"])
def test_a_recorded_hls_masters_largest_rendition_is_read_with_its_sound_alone(
        tmp_path, request, sound, where):
    """A recorded HLS link (a video site's or a lecture archive's master playlist: 1080p,
    720p, 360p…), or such a playlist on disk with its segments, was read as a file at its
    first rendition, often its smallest — 320×180 of a 640×360 video, with a warning and an
    ``ffmpeg -map`` command — and its annotated copy had every rendition's sound, the same
    sound twice. Its largest is read, with the sound that goes with it, once: in the
    rendition's segments, or in an audio rendition of its own (``EXT-X-MEDIA``), as
    players take it. A master behind a password (HTTP basic authentication, the link's
    ``user:password@``, as a private server asks) is read alike: it was read at its first
    rendition (the link's user part was not taken by the master's reading)."""
    import av

    root, base = request.getfixturevalue(
        "locked_server" if where.endswith("password") else "http_server")
    write_hls(root, own_sound=sound == "a rendition of its own")
    out = tmp_path / "out.mkv"
    master = root / "master.m3u8" if where == "file" else f"{base}/master.m3u8"
    code, stderr = run_to_end("-s", master, "-o", out, "-q")
    assert code == 0 and "video tracks" not in stderr, stderr
    assert frame_count(out)[:1] == (100,) and frame_count(out)[2] == (640, 360)
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1
        assert 3.9 < container.duration / 1e6 < 4.2


def test_opencvs_capture_options_reach_ffmpeg(tmp_path, monkeypatch, live_hls):
    """OPENCV_FFMPEG_CAPTURE_OPTIONS (``rtsp_transport;tcp``, set for a camera behind a
    firewall), which OpenCV honoured when it read links, reaches FFmpeg now that PyAV reads
    them: the user agent asked for is the one the server sees."""
    link, fetched = live_hls
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "user_agent;cam-viewer/1.0")
    code, stderr = run_to_end("-s", link, "--csv", tmp_path / "x.csv", "--end", "1", "-q")
    assert code == 0, stderr
    assert "cam-viewer/1.0" in {agent for path, agent in fetched if path.endswith(".ts")}


@pytest.fixture
def live_hls(tmp_path):
    """FFmpeg making a live HLS stream of a test picture and a tone, in real time, in two
    renditions (``v0``: 320×180, ``v1``: 640×360), served on the loopback: its link
    (``…/master.m3u8``, once three segments of each are there) and a list of what is
    fetched from then on, (path, user agent) of each request; both stopped after."""
    import imageio_ffmpeg

    fetched = []

    class Seen(_Quiet):
        def do_GET(self):
            fetched.append((self.path, self.headers.get("User-Agent")))
            super().do_GET()

    root, base, server = _serve(tmp_path, Seen)
    making = subprocess.Popen(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-re", "-f", "lavfi", "-i",
         "testsrc=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
         "-filter_complex", "[0:v]split=2[a][b];[a]scale=320:180[small];[b]null[large]",
         "-map", "[small]", "-map", "[large]", "-map", "1:a", "-map", "1:a",
         "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "hls", "-hls_time", "1",
         "-hls_list_size", "4", "-hls_flags", "delete_segments", "-var_stream_map",
         "v:0,a:0 v:1,a:1", "-master_pl_name", "master.m3u8", str(root / "v%v.m3u8")],
        stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(list(root.glob("v1*.ts"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    fetched.clear()
    yield f"{base}/master.m3u8", fetched
    making.kill()
    making.wait(timeout=10)
    server.shutdown()
    server.server_close()


def test_a_live_hls_link_of_long_segments_is_read_once_each_and_ends_when_it_stops(
        tmp_path, face_bgr):
    """A live HLS link of 6 s segments (Apple's advice): each read gave up after 5 s, while
    FFmpeg waited for the next segment — taken for a drop, and the link opened again, which
    starts three segments back: the same moments read again, the CSV's rows of them twice.
    Each read waits for its segment now, a connection again passes over what was read, and a
    link that stops growing (a recording cut off: no #EXT-X-ENDLIST) ends once nothing new
    came for --reconnect — it was read again and again, with no end."""
    import imageio_ffmpeg

    fetched = []

    class Seen(_Quiet):
        def do_GET(self):
            fetched.append(self.path)
            super().do_GET()

    root, base, server = _serve(tmp_path, Seen)
    frames = [compose(face_bgr, (320, 240), 20 + i % 100, 20, scale=0.6) for i in range(250)]
    clip = write_video(tmp_path / "face.mp4", frames)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    making = subprocess.Popen(
        [ffmpeg, "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c:v", "libx264",
         "-g", "25", "-f", "hls", "-hls_time", "6", "-hls_list_size", "6", "-hls_flags",
         "delete_segments", str(root / "live.m3u8")],
        stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(list(root.glob("live*.ts"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        fetched.clear()
        code, stderr = run_to_end("-s", f"{base}/live.m3u8", "--csv", tmp_path / "l.csv",
                                  "--end", "32", "-q", timeout=120)
    finally:
        making.kill()
        making.wait(timeout=10)
    assert code == 0 and "dropped" not in stderr, stderr
    numbers = [int(re.sub(r"\D", "", path)) for path in fetched if path.endswith(".ts")]
    back = sum(b < a for a, b in zip(numbers, numbers[1:]))  # the start's look, then read
    assert back <= 1 and len(numbers) - len(set(numbers)) <= 2, numbers

    # a recording cut off: its playlist (of 2 s segments) says no end, and stops growing
    subprocess.run([ffmpeg, "-v", "error", "-i", str(clip), "-c:v", "libx264", "-g", "25",
                    "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "event",
                    str(root / "cut.m3u8")], check=True)
    listed = (root / "cut.m3u8").read_text()
    (root / "cut.m3u8").write_text(listed.replace("#EXT-X-ENDLIST\n", ""))
    fetched.clear()
    code, stderr = run_to_end("-s", f"{base}/cut.m3u8", "--csv", tmp_path / "c.csv",
                              "--reconnect", "5", "-q", timeout=120)
    server.shutdown()
    server.server_close()
    assert code == 1 and "did not come back within 5 s (--reconnect)" in \
        stderr.strip().splitlines()[-1], stderr
    segments = [path for path in fetched if path.endswith(".ts")]
    assert max(segments.count(path) for path in segments) <= 3, fetched  # look, read, again


def test_a_live_link_with_sound_and_no_picture_says_so(tmp_path):
    """A link that carries sound alone (an audio stream's, a camera's microphone channel)
    said "Connection refused" from a server that takes one connection, the one the reading
    had taken: it says what it is."""
    import imageio_ffmpeg

    port = _free_port()
    server = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-re", "-f",
                               "lavfi", "-i", "sine", "-c:a", "aac", "-f", "mpegts",
                               f"tcp://127.0.0.1:{port}?listen=1"],
                              stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _listening(port), "the serving FFmpeg did not listen"
        code, stderr = run_to_end("-s", f"tcp://127.0.0.1:{port}", "--csv", tmp_path / "x.csv")
    finally:
        server.kill()
        server.wait(timeout=10)
    assert code == 1 and not (tmp_path / "x.csv").exists(), stderr
    assert stderr.strip().splitlines()[-1] == (
        f"Error: cannot open stream: tcp://127.0.0.1:{port} (it has sound and no picture)")



def test_the_annotated_video_is_written_as_an_hls_playlist_as_it_is_made(tmp_path,
                                                                         stream_server):
    """--output live.m3u8: the annotated video in segments of 2 s beside a playlist that
    grows as they are made, for a browser or a player to follow from any web server (a
    live webcam's overlay seen on another machine, where --show needs a display here), an
    event's playlist that says it ended once the run has; a file's at once, with its sound
    in step. A folder that cannot be written is one line before any work."""
    clip = flash_clip(tmp_path / "late.mp4", lead_s=0.5)  # the flash at 1.2 s, 3 s long
    out = tmp_path / "hls"
    out.mkdir()
    code, stderr = run_to_end("-s", clip, "-o", out / "clip.m3u8", "-q")
    assert code == 0, stderr
    playlist = (out / "clip.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and playlist.endswith("#EXT-X-ENDLIST\n")
    assert frame_count(out / "clip.m3u8")[0] == 75
    seen, heard = flash_and_click(out / "clip.m3u8")
    assert abs(seen - heard) < 0.03, (seen, heard)
    stream_server.start()  # a live source: the playlist grows while the run goes on
    time.sleep(1.0)
    proc = cli("-s", stream_server.url, "-o", out / "live.m3u8", "--end", "8", "-q")
    try:
        def two_segments():
            listed = (out / "live.m3u8").read_text() if (out / "live.m3u8").exists() else ""
            return listed if listed.count(".ts") >= 2 else None

        growing = while_running(proc, two_segments)
        stderr = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert growing is not None and "#EXT-X-ENDLIST" not in growing, growing
    assert (out / "live.m3u8").read_text().endswith("#EXT-X-ENDLIST\n")
    assert not list(out.glob("*.tmp"))  # each written whole, then named
    (tmp_path / "a file").write_text("")
    code, stderr = run_to_end("-s", clip, "-o", tmp_path / "a file" / "x.m3u8")
    assert code == 1 and stderr.strip().splitlines()[-1] == (
        f"Error: cannot write {tmp_path / 'a file' / 'x.m3u8'}: {tmp_path / 'a file'} is a "
        "file, not a folder"), stderr
    code, stderr = run_to_end("-s", clip, "-o", tmp_path / "new" / "x.m3u8", "-q")
    assert code == 0 and (tmp_path / "new" / "x.m3u8").is_file(), stderr  # made, as a video's
    for args, said in ((("-o", "x.m3u8", "--csv", "x.m3u8"),  # said "cannot write video"
                        "--output and --csv name the same file (x.m3u8); give each its own"),
                       (("--csv", "y.m3u8"), "cannot write a CSV as 'y.m3u8': it would be "
                        "taken for an HLS playlist; name it y.csv")):
        code, stderr = run_to_end("-s", clip, *args)
        assert code == 1 and stderr.strip().splitlines()[-1] == f"Error: {said}", stderr


def test_an_hls_playlist_named_with_a_percent_sign_is_written_with_its_segments(tmp_path):
    """A ``%`` in the playlist's name was read by FFmpeg as part of its segments' pattern:
    ``x%03d.m3u8``'s segments were ``x0000.ts`` and ``100%.m3u8`` could not be written
    (``Invalid argument``). The segments take its name, ``%`` written ``_``."""
    clip = flash_clip(tmp_path / "clip.mp4", lead_s=0.5)
    playlist = tmp_path / "100% x%03d.m3u8"
    code, stderr = run_to_end("-s", clip, "-o", playlist, "-q")
    assert code == 0, stderr
    assert sorted(p.name for p in tmp_path.glob("*.ts")) == ["100_ x_03d0.ts", "100_ x_03d1.ts"]
    assert frame_count(playlist)[0] == 75
    # a % in its folder's name: FFmpeg took it for the number too, and the run wrote a
    # playlist of segments that went nowhere (exit 0), or, the folder new, said "No such
    # file or directory"; now said before anything is written
    for made in (True, False):
        folder = tmp_path / f"take%d{made}"
        folder.mkdir(exist_ok=made) if made else None
        code, stderr = run_to_end("-s", clip, "-o", folder / "live.m3u8", "-q")
        assert code == 1 and stderr.strip().splitlines() == [
            f"Error: cannot write {folder / 'live.m3u8'}: FFmpeg's HLS writer reads a % in its "
            "folder's name as its segments' number (they went nowhere): give a folder without "
            "one"], stderr
        assert folder.is_dir() is made and (not made or not any(folder.iterdir()))
