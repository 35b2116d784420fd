from click.testing import CliRunner

from streamfer.cli import main


def test_bench_runs_on_a_tiny_input(detector_ready):
    args = ["bench", "--repeats", "1", "--frames", "4"]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, args)
    assert result.exit_code == 0, result.output
    for backend in ("keras", "tflite", "onnx"):
        assert backend in result.output
    for row in ("classifier batch 1", "classifier batch 32", "end to end, 1 face",
                "end to end, 4 faces", "headless CSV, 1 face", "peak RSS"):
        assert row in result.output
