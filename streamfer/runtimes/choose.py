"""Which int8 engine runs the model fastest on this CPU: measured, not guessed.

The same int8 file runs in ONNX Runtime and in OpenVINO, and which is faster depends on the
CPU and on the batch (on a 2-core Zen 5 EPYC the two tie at batch 8 and OpenVINO is 1.3× ONNX
Runtime at batch 32; on an Intel Xeon with AMX OpenVINO was 1.65× ONNX Runtime). So the first
time a model file meets a CPU, each installed engine scores the batches a run makes (8 crops:
a file's look-ahead of one face; 32: four faces) for about half a second, the engine that
scores one batch of each soonest is taken,
and the result is remembered in ``$STREAMFER_HOME/choice`` under a key of the model file, the
CPU (its name, flags and the cores this process has) and the engines' versions; later starts
read the record and build only the chosen engine.

Example:
    >>> from streamfer.runtimes.choose import fastest
    >>> choice = fastest(Path("models/default.json"), int8_file)      # doctest: +SKIP
    >>> choice.why                                                     # doctest: +SKIP
    'openvino: fastest int8 engine on AMD EPYC (2 cores): openvino 185, onnx 161 inferences/s'
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamfer.assets import cached
from streamfer.runtimes.runners import (
    INT8_ENGINES,
    ONNXRunner,
    OpenVINORunner,
    cpu_threads,
    installed,
)

log = logging.getLogger(__name__)

# a file's look-ahead batches: 8 frames of one face, or of four faces, each scored one way
PROBE_BATCHES = (8, 32)
PROBE_SECONDS = 0.5
RUNNERS = {"onnx": ONNXRunner, "openvino": OpenVINORunner}


@dataclass
class Choice:
    engine: str
    runner: object
    why: str  # one line: the engine, the CPU and what was measured


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s), with the vector extensions that decide int8 speed."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8")
             if f in flags]
    return f"{name} ({', '.join(shown) or 'no AVX2'})"


def _versions(engines) -> dict[str, str]:
    packages = {"onnx": "onnxruntime", "openvino": "openvino"}
    return {e: importlib.metadata.version(packages[e]) for e in engines}


def _record(model_file: Path, engines, threads: int) -> Path:
    key = json.dumps([str(model_file.name), model_file.stat().st_size, cpu_name(),
                      threads, _versions(engines), PROBE_BATCHES])
    return cached("choice", f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json")


def measure(run, batch: int = PROBE_BATCHES[0], seconds: float = PROBE_SECONDS) -> float:
    """Inferences a second of ``run`` on a fixed batch of random crops (median of calls
    over about ``seconds``, after two warm-up calls)."""
    x = np.random.default_rng(0).integers(0, 255, (batch, 100, 100, 3)).astype(np.float32)
    run(x)
    run(x)
    times, start = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def fastest(model_file: Path, engines=INT8_ENGINES, threads: int | None = None) -> Choice:
    """The fastest of the installed ``engines`` on ``model_file`` (an int8 ONNX file) here,
    each with ``threads`` (default: every core this process has), measured once and
    remembered (see the module's notes)."""
    engines = [e for e in engines if installed(e)]
    if not engines:
        raise ImportError("no int8 engine installed: pip install onnxruntime openvino")
    threads = threads or cpu_threads()
    record = _record(model_file, engines, threads)
    try:
        known = json.loads(record.read_text())
        engine, speeds = known["engine"], known["inferences_per_s"]
        runner = RUNNERS[engine](model_file, threads)
    except (OSError, ValueError, KeyError):
        if len(engines) > 1:  # a notice (the command line shows it): seconds of silence
            log.info("first run on this CPU: measuring which int8 engine runs the model "
                     "faster, once (a few seconds)")
        runners = {e: RUNNERS[e](model_file, threads) for e in engines}
        best = {(e, b): 0.0 for e in engines for b in PROBE_BATCHES}
        seconds = PROBE_SECONDS / 2 / len(PROBE_BATCHES)
        for _ in range(2):  # in turns, best of two: one engine's idle threads can slow the next
            for (e, b) in best:
                best[e, b] = max(best[e, b], measure(runners[e], b, seconds))
        # inferences a second over one batch of each size
        speeds = {e: round(sum(PROBE_BATCHES) / sum(b / best[e, b] for b in PROBE_BATCHES), 1)
                  for e in engines}
        engine = max(engines, key=lambda e: speeds[e])  # ties: the first, in engines' order
        runner = runners[engine]
        record.write_text(json.dumps({"engine": engine, "inferences_per_s": speeds,
                                      "cpu": cpu_name(), "threads": threads,
                                      "batches": PROBE_BATCHES}, indent=1) + "\n")
    measured = ", ".join(f"{e} {speeds[e]:.0f}" for e in sorted(speeds, key=speeds.get,
                                                                  reverse=True))
    batches = " and ".join(map(str, PROBE_BATCHES))
    why = (f"{engine}: the fastest int8 engine here ({cpu_name()}, {threads} threads; "
           f"batches of {batches}: {measured} inferences/s)" if len(speeds) > 1 else
           f"{engine}: the one int8 engine installed")
    return Choice(engine, runner, why)
