"""What a model reads from each half of a face (model card, "Half the face hidden while
training"): a labelled split's faces scored whole, with the mouth and chin hidden (the rows
from 0.6 of the side down under noise) and with the brows and eyes hidden (the rows above
half the side), as ``train --hide-half`` hides them; top-1 among the six overall and per
emotion, on the faces whose strict-majority label is one of them. The product's path for a
photo tree (``--crop detect``: the detector's crop), the Keras backend, both views averaged.

    python models/ablations/halves.py --data ../shared/data/jaffe --split test \\
        models/default.json runs/x-p64h/model.json
"""

import argparse
import json

import numpy as np

from streamfer.classify import Classifier
from streamfer.training.data import load_dataset
from streamfer.training.evaluate import as_crops, top1_accuracy, top1_per_label
from streamfer.training.train import HideHalf


def views(crops: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The faces whole and with each half under uniform noise (seeded)."""
    noise = np.random.default_rng(seed).integers(0, 256, crops.shape, dtype=np.uint8)
    row = (np.arange(crops.shape[1]) / crops.shape[1])[None, :, None, None]
    return {"whole": crops,
            "mouth hidden": np.where(row >= HideHalf.LOWER, noise, crops),
            "brows and eyes hidden": np.where(row < HideHalf.UPPER, noise, crops)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model .json files")
    parser.add_argument("--data", default="../shared/data/ferplus", help="a labelled dataset")
    parser.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    args = parser.parse_args()
    data = load_dataset(args.data, args.split)
    faces = views(as_crops(data.images))
    result = {}
    for model in args.models:
        classifier = Classifier(model, backend="keras")
        for name, crops in faces.items():
            scores = classifier.predict(crops)
            top1 = top1_accuracy(data.majority, scores)[0]
            per = {k: v["top1"] for k, v in top1_per_label(data.majority, scores).items()}
            result.setdefault(model, {})[name] = {"top1": top1, "per_emotion": per}
            print(f"{model} | {name}: top-1 {top1:.3f} | "
                  + " ".join(f"{k} {v:.2f}" for k, v in per.items()), flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
