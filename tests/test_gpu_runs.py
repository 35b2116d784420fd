"""The GPU runs' driver (models/ablations/gpu_runs.py): what comes back in parts is joined
into the model file's weights, whole and checked, or refused."""

import importlib.util
import json

import numpy as np
import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("gpu_runs", ROOT / "models/ablations/gpu_runs.py")
gpu_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_runs)


def test_parts_fetched_join_into_the_weights_their_model_file_names(tmp_path):
    from streamfer.assets import sha256

    kept, fetched = tmp_path / "keep", tmp_path / "fetched"
    kept.mkdir()
    weights = kept / "model.weights.npz"
    np.savez_compressed(weights, np.random.default_rng(0).normal(size=5000).astype(np.float16))
    (kept / "model.json").write_text(json.dumps({"weights": weights.name,
                                                 "sha256": sha256(weights)}))
    assert gpu_runs.cut(weights, kept, size=1000) == -(-weights.stat().st_size // 1000) > 9
    fetched.mkdir()
    for part in [kept / "model.json", *kept.glob("part-*")]:
        (fetched / part.name).write_bytes(part.read_bytes())
    gpu_runs.join(fetched, tmp_path / "runs" / "g64s.json")  # parts in number order, not name
    joined = tmp_path / "runs" / "g64s.weights.npz"
    assert joined.read_bytes() == weights.read_bytes()
    assert json.loads((tmp_path / "runs" / "g64s.json").read_text())["weights"] == joined.name

    (fetched / "part-3").write_bytes(b"")  # a part that did not come back whole
    with pytest.raises(SystemExit, match="SHA-256 differs"):
        gpu_runs.join(fetched, tmp_path / "runs" / "again.json")


@pytest.fixture
def fake_runs(tmp_path, monkeypatch):
    """train_all with the training, its evaluation and the export stood in for: what each run
    was set to, the seconds each was given, and what was kept."""
    from pathlib import Path

    from streamfer.training import train as training

    for name in ("load_dataset", "_Backup"):  # train_all replaces them; put them back after
        monkeypatch.setattr(training, name, getattr(training, name))
    seen = {"runs": [], "timers": [], "kept": []}

    class Timer:
        def __init__(self, interval, *args):
            seen["timers"].append(interval)

        def start(self):
            pass

        def cancel(self):
            pass

    def train(cfg, progress=True):
        run = Path(cfg.run_dir)
        run.mkdir(parents=True)
        seen["runs"].append((cfg.work_size, cfg.epochs))
        (run / "train_config.json").write_text(json.dumps({"epochs": cfg.epochs}))
        (run / "log.csv").write_text("epoch,loss,seconds,val_map\n" + "".join(
            f"{i},0.5,1.0,0.5\n" for i in range(cfg.epochs)))
        (run / "best.weights.h5").write_bytes(b"")

    valid_map = {"g100": 0.80, "g64": 0.79}
    monkeypatch.setattr(training, "train", train)
    monkeypatch.setattr(gpu_runs, "unpack", lambda path: {})
    monkeypatch.setattr(gpu_runs.threading, "Timer", Timer)
    monkeypatch.setattr(gpu_runs, "evaluated", lambda run, data: {
        "valid": {"at": {"calibrated": {"mAP": valid_map[run.name]}}}})
    monkeypatch.setattr(gpu_runs, "summary_line", lambda name, r: name)
    monkeypatch.setattr(gpu_runs, "export_parts",
                        lambda run, keep, r: seen["kept"].append(run.name))
    (tmp_path / "out").mkdir()

    def run(**kwargs):
        gpu_runs.train_all(tmp_path / "faces.npz.xz", tmp_path / "out", tmp_path / "keep",
                           deadline=600, runs_root=tmp_path / "runs", **kwargs)
        return seen

    return run


def test_a_second_run_gets_the_passes_the_first_had_and_the_first_leaves_it_time(fake_runs):
    seen = fake_runs(epochs=2, only=["g100", "g64"], shipped_map=0.8)
    assert seen["runs"] == [(100, 2), (64, 2)]  # a run of fewer than 3 passes was left out
    first, second = seen["timers"]
    assert first == pytest.approx(gpu_runs.FIRST_SHARE * second, rel=0.05)
    assert seen["kept"] == []  # the 64-px run (mAP 0.79) does not beat the shipped 0.80


def test_a_64_px_run_that_beats_the_shipped_model_is_kept(fake_runs):
    assert fake_runs(epochs=2, only=["g100", "g64"], shipped_map=0.78)["kept"] == ["g64"]


def test_the_size_to_keep_can_be_100_px(fake_runs):
    assert fake_runs(epochs=2, only=["g100", "g64"], shipped_map=0.78,
                     keep_size=100)["kept"] == ["g100"]
