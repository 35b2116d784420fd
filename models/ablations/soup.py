"""A weight soup (model card, "Averaged weights"): the element-wise mean of the weights of
models of one architecture fine-tuned from the same starting point (Wortsman et al. 2022,
"Model soups"), written as a model file without thresholds; calibrate them and score it as
any run's model:

    python models/ablations/soup.py --out runs/x-soup/model.json \\
        models/default.json runs/x-p64b/model.json runs/x-p64h/model.json
    streamfer calibrate-thresholds --data ../shared/data/ferplus --model runs/x-soup/model.json
    streamfer evaluate --data ../shared/data/ferplus --model runs/x-soup/model.json \\
        --backend keras
"""

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from streamfer.assets import sha256
from streamfer.model import compact, read_weights


def graph(config) -> dict:
    """What a weights file belongs to: the model's fields but the inference-only ones."""
    return {k: v for k, v in asdict(config).items() if k not in config.INFERENCE_ONLY}


def soup(paths: list[Path]) -> tuple[dict, list[np.ndarray]]:
    """The first model's architecture and the mean of every model's weights (fp32); refuses
    models whose architectures differ."""
    config, total = read_weights(paths[0])
    for path in paths[1:]:
        other, weights = read_weights(path)
        if graph(other) != graph(config):
            raise SystemExit(f"{path}: not the architecture of {paths[0]}")
        total = [t + w for t, w in zip(total, weights, strict=True)]
    return asdict(config), [t / len(paths) for t in total]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model .json files")
    parser.add_argument("--out", required=True, type=Path, help="the soup's model .json")
    args = parser.parse_args()
    config, weights = soup(args.models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    npz = args.out.with_suffix(".weights.npz")
    np.savez_compressed(npz, *[compact(w) for w in weights])
    meta = {**config, "weights": npz.name, "sha256": sha256(npz),
            "soup_of": [str(p) for p in args.models]}
    args.out.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{args.out}: the mean of {len(args.models)} models' weights")


if __name__ == "__main__":
    main()
