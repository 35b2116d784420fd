import json

import numpy as np
from click.testing import CliRunner

from streamfer.cli import main


def test_bench_rows_measure_what_they_say(detector_ready):
    """Every row has positive figures; the end-to-end rows process the faces their clip
    holds (the 4-face rows four faces per frame, the 1080p wide shot's six); the table fits
    100 columns."""
    args = ["bench", "--repeats", "1", "--frames", "6"]
    result = CliRunner().invoke(main, [*args, "--large", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    rows, summary = lines[:-1], lines[-1]
    assert {r["backend"] for r in rows} >= {"keras", "tflite"}
    assert summary["peak_rss_mb"] > 0
    classifier = [r for r in rows if r["what"].startswith("classifier")]
    assert len(classifier) == 3 * len({r["backend"] for r in rows})
    assert all(r["faces_per_s"] > 0 and r["p50_ms"] > 0 for r in classifier)
    end_to_end = [r for r in rows if not r["what"].startswith("classifier")]
    assert all(r["fps"] > 0 and r["x_realtime"] > 0 for r in end_to_end)
    for r in end_to_end:
        assert r["faces_per_frame"] >= 0.98 * r["batch"], r
    table = CliRunner(env={"COLUMNS": "100"}).invoke(main, args)
    assert table.exit_code == 0, table.output
    assert max(len(line) for line in table.output.splitlines()) <= 100
    assert table.output.count("video+CSV, 4 faces") == len({r["backend"] for r in rows})
    assert sum(r["what"] == "4K video+CSV, 1 face" for r in rows) == len({r["backend"]
                                                                         for r in rows})
    crowd = [r for r in rows if r["what"].startswith("1080p")]  # the wide shot's 6 faces
    assert len(crowd) == 2 * len({r["backend"] for r in rows}) and all("fps" in r for r in crowd)


def test_bench_measures_each_working_size_on_every_backend():
    result = CliRunner().invoke(main, ["bench", "--work-sizes", "32,40", "--repeats", "1",
                                       "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")][:-1]
    backends = {r["backend"] for r in rows}
    assert backends >= {"keras", "tflite"}
    assert sorted((r["backend"], r["work_size"], r["batch"]) for r in rows) == sorted(
        (b, size, batch) for b in backends for size in (32, 40) for batch in (1, 16, 32))
    assert all(r["faces_per_s"] > 0 for r in rows)
    assert "WARNING" not in result.output  # ONNX Runtime's per-weight quantization notes
    bad = CliRunner().invoke(main, ["bench", "--work-sizes", "48,big"])
    assert bad.exit_code == 2 and "--work-sizes" in bad.output


def test_working_size_models_take_the_architecture_of_a_model_file(tmp_path):
    """bench --model M --work-sizes: M's architecture (here VGG19 alone, as the ablations
    train it), untrained, at each size; the architecture file's weights are never read."""
    from streamfer.classify import Classifier
    from streamfer.tools.bench import work_size_models

    arch = tmp_path / "vgg19.json"
    arch.write_text(json.dumps({"backbones": ["vgg19"], "vgg": "bn", "flip_average": True,
                                "weights": "absent.weights.npz"}))
    path = work_size_models(tmp_path, [32], faces=4, architecture=arch)[32]
    made = json.loads(path.read_text())
    assert made["backbones"] == ["vgg19"] and made["work_size"] == 32 and made["flip_average"]
    assert Classifier(path, backend="keras").predict(
        np.zeros((2, 100, 100, 3), np.uint8)).shape == (2, 6)
    (tmp_path / "default").mkdir()
    default = json.loads(work_size_models(tmp_path / "default", [32], faces=4)[32].read_text())
    assert default["backbones"] == ["resnet50", "vgg19"]


def test_bench_refuses_a_file_that_is_no_model_in_one_line(tmp_path):
    (tmp_path / "wrong.json").write_text(json.dumps({"backbones": ["nope"], "weights": "w"}))
    for model in (tmp_path / "wrong.json", tmp_path / "README.md"):
        model.touch()
        result = CliRunner().invoke(main, ["bench", "--model", str(model), "--work-sizes", "32"])
        assert result.exit_code == 1 and "not a streamfer model file" in result.output
        assert "Traceback" not in result.output


def test_the_detector_table_refuses_a_folder_without_the_media_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--detectors", str(tmp_path)])
    assert result.exit_code != 0
    assert "lacks pyfeat_0-f1-su-ph_surprise.jpg" in result.output
    assert isinstance(result.exception, SystemExit)  # a usage error, not a traceback
