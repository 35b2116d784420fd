"""Folder runs on Ray (``--ray local``): the same outputs as the serial run, and a worker
killed mid-file does not lose the batch."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import QUIETING, ROOT, compose, frame_count, write_video

pytestmark = [pytest.mark.usefixtures("detector_ready"), pytest.mark.ray]
ray = pytest.importorskip("ray", reason="Ray is an extra: pip install -e '.[ray]'")


def streamfer(*args, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in QUIETING}
    return subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *map(str, args)],
                            env=env, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=600):
    stderr = proc.communicate(timeout=timeout)[1]
    return proc.returncode, stderr


@pytest.fixture(scope="module")
def footage(tmp_path_factory, face_bgr):
    folder = tmp_path_factory.mktemp("footage")
    (folder / "cam2").mkdir()
    for i, name in enumerate(("a.mp4", "b.mov", "cam2/c.mp4", "cam2/d.mkv")):
        frames = [compose(face_bgr, (320, 240), 10 + (j + 7 * i) % 40, 10, scale=0.6)
                  for j in range(60)]
        write_video(folder / name, frames, fps=25)
    return folder


@pytest.fixture(scope="module")
def serial(tmp_path_factory, footage):
    out = tmp_path_factory.mktemp("serial")
    code, stderr = finish(streamfer("-s", footage, "--output-dir", out, "--csv-dir", out, "-q"))
    assert code == 0, stderr
    return out


def read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


NAMES = ("a.mp4", "b.mov", "cam2/c.mp4", "cam2/d.mkv")


def test_ray_local_writes_what_the_serial_run_writes(tmp_path, footage, serial):
    out = tmp_path / "out"
    code, stderr = finish(streamfer("-s", footage, "--output-dir", out, "--csv-dir", out, "-q",
                                    "--ray", "local", "--workers", "2"))
    assert code == 0, stderr
    assert "Traceback" not in stderr
    for name in NAMES:
        assert read(out / f"{name}.csv") == read(serial / f"{name}.csv")
        assert frame_count(out / name) == frame_count(serial / name)
    assert set(json.loads((out / ".streamfer-done.json").read_text())) == set(NAMES)
    again = streamfer("-s", footage, "--output-dir", out, "--csv-dir", out, "-q", "--ray",
                      "local", "--workers", "1")
    code, stderr = finish(again)
    assert code == 0 and stderr.count("│ skipped") == 4, stderr


def test_a_worker_killed_mid_file_loses_nothing(tmp_path, footage, serial):
    import psutil

    out = tmp_path / "out"
    proc = streamfer("-s", footage, "--output-dir", out, "--csv-dir", out, "-q", "--ray",
                     "local", "--workers", "1")
    killed, deadline = None, time.time() + 300
    while killed is None and time.time() < deadline and proc.poll() is None:
        if list(out.rglob(".*.part*")):  # a file is being written
            for p in psutil.process_iter(["cmdline"]):
                if any("ray::Worker" in part for part in p.info["cmdline"] or []):
                    killed = p.pid
                    os.kill(p.pid, signal.SIGKILL)
                    break
        time.sleep(0.05)
    code, stderr = finish(proc)
    assert killed is not None, "no worker was caught mid-file"
    assert code == 0, stderr
    for name in NAMES:  # every input finished once, with the serial run's rows
        assert read(out / f"{name}.csv") == read(serial / f"{name}.csv")
        assert frame_count(out / name)[0] == 60
    assert not list(out.rglob(".*.part*"))
    assert sorted(json.loads((out / ".streamfer-done.json").read_text())) == sorted(NAMES)


def test_a_ray_rerun_with_changed_settings_says_so_as_the_serial_run_does(tmp_path, footage):
    """A Ray run redoing an input made before with other settings said nothing (the serial
    run warns): both now plan the run the same way (:class:`streamfer.batch.FolderRun`)."""
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(footage / "a.mp4", folder / "a.mp4")
    out = tmp_path / "out"
    code, stderr = finish(streamfer("-s", folder, "--csv-dir", out, "-q"))
    assert code == 0, stderr
    code, stderr = finish(streamfer("-s", folder, "--csv-dir", out, "-q", "--threshold",
                                    "0.99999", "--ray", "local", "--workers", "1"))
    assert code == 0, stderr
    assert "a.mp4: made before with other settings (thresholds): done again" in stderr, stderr
    header, *rows = read(out / "a.mp4.csv")
    assert rows and all(row[header.index("labels")] == "" for row in rows)  # redone
    record = json.loads((out / ".streamfer-done.json").read_text())
    assert record["a.mp4"]["settings"]["thresholds"] == 0.99999


def test_a_ray_run_does_not_open_every_input_before_handing_out_the_first(tmp_path, footage,
                                                                         monkeypatch):
    """The Ray driver opened every input to count its frames (the bar's total) before the
    first file went out, even with no bar (``-q``): 4 ms a clip here (80 s for 20,000),
    more on a network share. Now counted only for a bar, and while the work starts."""
    from streamfer import batch, scale
    from streamfer.pipeline import Settings

    opened = []
    for module in (batch, scale):
        monkeypatch.setattr(module, "frames_to_read", lambda job, settings: opened.append(job)
                            or 60, raising=False)
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(footage / "a.mp4", folder / "a.mp4")
    results = scale.run_folder_on_ray(Settings(progress=False), folder, None, tmp_path / "out",
                                      address="local", workers=1)
    assert [r.status for r in results] == ["ok"]
    assert opened == []


def test_sigterm_stops_a_ray_run_with_its_summary_and_leaves_no_ray_behind(tmp_path, footage):
    """SIGTERM (a scheduler, ``timeout``) hit Ray's own handler in the driver: a native stack
    printed, no summary, the outputs under way not said. Now it stops as a Ctrl-C does: the
    files under way interrupted (part files), the rest not started, exit 130, and the Ray it
    started gone."""
    import psutil

    out = tmp_path / "out"
    proc = streamfer("-s", footage, "--output-dir", out, "--csv-dir", out, "-q", "--ray",
                     "local", "--workers", "1")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(out.rglob(".*.part*")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    code, stderr = finish(proc, timeout=120)
    assert code == 130, stderr
    assert "SIGTERM received" not in stderr and "Traceback" not in stderr, stderr
    assert "interrupted: outputs left" in stderr and "not started" in stderr, stderr
    done = out / ".streamfer-done.json"
    assert not done.exists() or len(json.loads(done.read_text())) < len(NAMES)
    deadline, left = time.time() + 30, ["?"]
    while left and time.time() < deadline:  # the processes Ray started end as it shuts down
        left = [p.info["name"] for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] in ("raylet", "gcs_server")
                or any("ray::Worker" in part for part in p.info["cmdline"] or [])]
        time.sleep(0.5)
    assert not left, left


def test_without_ray_nothing_imports_it(tmp_path, footage):
    code = ("import sys; from streamfer.batch import plan_folder; "
            "from streamfer.pipeline import Pipeline; "
            "from streamfer import cli; print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.stdout.strip() == "False", done.stderr


def test_ray_needs_a_folder_source(tmp_path, footage):
    code, stderr = finish(streamfer("-s", footage / "a.mp4", "--csv", tmp_path / "x.csv",
                                    "--ray", "local"))
    assert code != 0 and "folder sources" in stderr and "Traceback" not in stderr


def test_a_ray_address_of_no_known_form_is_one_line(tmp_path, footage):
    """``--ray bogus`` (or ``head:6379x``) was Ray's ValueError with its traceback, after
    the plan and Ray's import; now refused with the forms it takes."""
    for address in ("bogus", "10.0.0.5:6379x"):
        code, stderr = finish(streamfer("-s", footage, "--csv-dir", tmp_path / "out", "-q",
                                        "--ray", address))
        assert code == 2 and "Traceback" not in stderr, stderr
        assert stderr.strip().splitlines()[-1] == (
            f"Error: Invalid value for '--ray': '{address}': use local, auto, ray://host:port "
            f"or host:port"), stderr


def test_workers_default_to_the_clusters_cores_not_the_drivers(tmp_path):
    """Against a cluster (a Ray head started here on the loopback with 6 CPUs, as another
    machine would offer them), --workers defaults to one per two of the cluster's CPUs;
    it used to count the driver's own cores (here 2: one worker)."""
    import secrets
    import shutil
    import socket
    import tempfile

    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must be short
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    # as the README advises for a cluster: Ray's token authentication, one token for all
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                        "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    started = subprocess.run([*ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1",
                              f"--port={port}", "--num-cpus=6", "--include-dashboard=false",
                              f"--temp-dir={temp}"],
                             capture_output=True, text=True, timeout=180, env=env)
    try:
        assert started.returncode == 0, started.stderr
        ask = ("import ray, sys; from streamfer.scale import connect, default_workers; "
               "connect(sys.argv[1], 1); print(default_workers(sys.argv[1]))")
        done = subprocess.run([sys.executable, "-c", ask, f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=180, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "3"
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], capture_output=True, timeout=120, env=env)
        shutil.rmtree(temp, ignore_errors=True)
