"""The package as a library: importing it changes nothing in the process, its documented
examples run (the README's Python example and the public modules' docstrings), and a command
that needs the ``train`` extra says so in one line where it is missing."""

import doctest
import importlib
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT

from streamfer.cli import main


def test_importing_the_package_changes_neither_environment_nor_import_machinery():
    """``import streamfer`` changes nothing; the stages' modules set none of the variables the
    command line sets (OpenCV's own import sets its Qt paths, which is OpenCV's business)."""
    ours = ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel", "OPENCV_LOG_LEVEL",
            "OPENCV_FFMPEG_LOGLEVEL")
    code = ("import os, sys; env = dict(os.environ); finders = list(sys.meta_path); "
            "import streamfer; print(dict(os.environ) == env, sys.meta_path == finders); "
            "import streamfer.pipeline, streamfer.classify; "
            f"print(not any(k in os.environ for k in {ours!r}), sys.meta_path == finders)")
    env = {k: v for k, v in os.environ.items() if k not in ours}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "True"]


# every module with an example in its docstrings (only the package and the pipeline's ran:
# four modules' examples could not have run, and one would have failed)
EXAMPLES = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for path in (ROOT / "streamfer").rglob("*.py") if ">>>" in path.read_text())


@pytest.mark.usefixtures("detector_ready")
@pytest.mark.parametrize("where", ["README.md", *EXAMPLES])
def test_the_documented_python_examples_run(where, monkeypatch):
    """The README's API example and every module's docstring examples, as doctests (run
    from the repository's root, where ``samples/`` is)."""
    monkeypatch.chdir(ROOT)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    if where.endswith(".md"):
        result = doctest.testfile(str(ROOT / where), module_relative=False, optionflags=flags)
    else:
        module = importlib.import_module(where)
        result = doctest.testmod(module, optionflags=flags)
        # an example that needs files a user has (a CSV, a model) is marked as not run
        if not re.search(r">>> (?!.*# doctest: \+SKIP)", Path(module.__file__).read_text()):
            assert result.failed == 0 and result.attempted == 0, result
            return
    assert result.attempted > 0 and result.failed == 0, result


def test_analyze_says_a_wrong_path_before_the_models_load(monkeypatch):
    import streamfer
    import streamfer.pipeline
    from streamfer.sources import SourceError

    monkeypatch.setattr(streamfer.pipeline.Pipeline, "__init__",
                        lambda self, settings: pytest.fail("the models loaded first"))
    with pytest.raises(SourceError, match="no such file: no/such/clip.mp4"):
        next(streamfer.analyze("no/such/clip.mp4"))


@pytest.mark.parametrize("field,value,said", [
    ("smoothing", {"ema": 3}, "Settings.smoothing must be {'ema': alpha} with alpha in (0, 1]"),
    ("every", 0, "Settings.every must be a whole number of frames ≥ 1, not 0"),
    ("mirror", "both", "Settings.mirror must be auto, alternate or average, not 'both'"),
    ("max_fps", -1, "Settings.max_fps must be None or a rate > 0, not -1"),
    ("batch_size", 0, "Settings.batch_size must be a whole number ≥ 1, not 0"),
    ("min_score", "0.5", "Settings.min_score must be a confidence from 0 to 1, not '0.5'"),
    ("thresholds", {"Joy": 0.5}, "'Joy': not a label (the labels: Surprise, Fear, "),
])
def test_a_setting_that_would_run_wrong_is_refused_by_name(field, value, said):
    """From Python, a smoothing alpha of 3 made the scores diverge, every=0, a mirror mode
    of no meaning and a negative max_fps ran as if unset, batch_size 0 failed in range()
    and an unknown label in tuple.index()."""
    from streamfer.pipeline import Settings

    with pytest.raises(ValueError) as refused:
        Settings(**{field: value})
    assert str(refused.value).startswith(said)
    Settings(smoothing={"window": 5}, every=2, mirror="average", max_fps=5.0, tiles=0,
             thresholds={"Anger": 0.3}, start=1.0, end=2.5)  # as the documented fields take


@pytest.mark.parametrize("args", [["train", "--data", ".", "--out", "x"],
                                  ["evaluate", "--data", "."],
                                  ["run", "-s", "samples/astronaut.mp4", "--csv", "x.csv",
                                   "--backend", "keras"]])
def test_a_command_that_needs_the_train_extra_names_it_in_one_line(args, monkeypatch, tmp_path,
                                                                    request):
    if args[0] == "run":
        request.getfixturevalue("detector_ready")  # the detector loads before the model
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in (
        "tensorflow", "sklearn", "keras") else real(name, *a))
    monkeypatch.chdir(ROOT)
    args = [str(tmp_path / a) if a.endswith(".csv") else a for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and "pip install 'streamfer[train]'" in result.output
    assert "Traceback" not in result.output


def test_every_entry_point_says_the_installed_version():
    """``streamfer --version``, ``python run_stream.py --version`` (there was none) and
    ``python -m streamfer`` (it said "'streamfer' is a package and cannot be directly
    executed")."""
    expected = f"streamfer {importlib.metadata.version('streamfer')}"
    assert CliRunner().invoke(main, ["--version"]).output.strip() == expected
    for command in ([str(ROOT / "run_stream.py")], ["-m", "streamfer"]):
        done = subprocess.run([sys.executable, *command, "--version"], capture_output=True,
                              text=True, timeout=120, cwd=ROOT.parent)
        assert done.returncode == 0 and done.stdout.strip() == expected, done.stderr
    done = subprocess.run([sys.executable, "-m", "streamfer", "run", "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT.parent)
    assert done.stdout.startswith("Usage: streamfer run [OPTIONS]"), done.stdout[:200]


def test_the_wheel_carries_every_subpackage():
    """pyproject.toml lists the packages the wheel carries by name: a folder of the package
    left off it (streamfer/sources/ and streamfer/sinks/ when they became folders) is
    missing from an installed streamfer, whose first run fails to import it."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11's tomllib reads pyproject")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    folders = {".".join(init.parent.relative_to(ROOT).parts)
               for init in (ROOT / "streamfer").rglob("__init__.py")}
    assert folders and folders <= listed, sorted(folders - listed)
