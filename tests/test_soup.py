"""The weight soup (models/ablations/soup.py): the element-wise mean of models of one
architecture, a model file the product loads; models of another architecture are refused."""

import importlib.util
import json
import shutil

import numpy as np
import pytest
from conftest import ROOT

from streamfer.assets import sha256
from streamfer.model import read_weights

spec = importlib.util.spec_from_file_location("soup", ROOT / "models/ablations/soup.py")
soup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soup)

DEFAULT = ROOT / "models" / "default.json"


def _scaled(tmp_path, factor: float):
    """The default with every weight times ``factor``, as a model file of its own."""
    config, weights = read_weights(DEFAULT)
    npz = tmp_path / f"x{factor}.weights.npz"
    np.savez_compressed(npz, *[w * factor for w in weights])
    meta = json.loads(DEFAULT.read_text()) | {"weights": npz.name, "sha256": sha256(npz)}
    path = tmp_path / f"x{factor}.json"
    path.write_text(json.dumps(meta))
    return path


def test_a_soup_is_the_mean_of_its_models_weights_and_loads_as_a_model(tmp_path, monkeypatch):
    out = tmp_path / "soup" / "model.json"
    monkeypatch.setattr("sys.argv", ["soup.py", "--out", str(out), str(DEFAULT),
                                     str(_scaled(tmp_path, 3.0))])
    soup.main()
    _, default = read_weights(DEFAULT)
    _, mixed = read_weights(out)  # checked against the SHA-256 the file records
    assert len(mixed) == len(default)
    for a, b in zip(default, mixed):
        np.testing.assert_allclose(b, 2.0 * a, rtol=2e-3, atol=1e-6)  # (a + 3a) / 2, fp16
    assert json.loads(out.read_text())["soup_of"][0] == str(DEFAULT)


def test_models_of_another_architecture_are_refused(tmp_path):
    other = tmp_path / "other.json"
    shutil.copy(DEFAULT.with_suffix(".weights.npz"), tmp_path / "default.weights.npz")
    other.write_text(json.dumps(json.loads(DEFAULT.read_text()) | {"work_size": 100}))
    with pytest.raises(SystemExit, match="not the architecture"):
        soup.soup([DEFAULT, other])
