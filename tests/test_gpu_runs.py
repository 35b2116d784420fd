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
