"""Each backbone's share in an ensemble model (model card, "The ensemble's two backbones"):
FER+ Valid mAP of the model whole and with one backbone's pooled features held at their mean
over 2,000 FER+ Train faces (the head's scores, both views of each face averaged); and what
each backbone's pooled features hold by themselves: the mAP of a linear read-out of them
(logistic regression per emotion on standardised features, C = 0.03, fitted on 4,000 other
FER+ Train faces, one view).

    python models/ablations/branches.py models/default.json [--data ../shared/data/ferplus]
"""

import argparse
import json

import numpy as np

from streamfer.training.data import load_dataset
from streamfer.training.head import backbone_features, branch_shares


def read_out(model: str, train, valid) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    fit, score = backbone_features(model, train), backbone_features(model, valid)
    result = {}
    for name, x in fit.items():
        mean, std = x.mean(0), x.std(0) + 1e-6
        scores = np.stack([
            LogisticRegression(C=0.03, max_iter=1000).fit((x - mean) / std, train.targets[:, j])
            .predict_proba((score[name] - mean) / std)[:, 1]
            for j in range(train.targets.shape[1])], 1)
        result[name] = float(average_precision_score(valid.targets, scores, average="macro"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model .json")
    parser.add_argument("--data", default="../shared/data/ferplus", help="FER+ folder")
    args = parser.parse_args()
    try:
        train, valid = load_dataset(args.data, "train"), load_dataset(args.data, "valid")
        order = np.random.default_rng(0).permutation(len(train))
        shares = branch_shares(args.model, train.subset(order[:2000]), valid)
        alone = read_out(args.model, train.subset(order[2000:6000]), valid)
    except (OSError, ValueError) as exc:  # a missing folder or model, a file that is none
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps({"valid_mAP": {k: round(v, 4) for k, v in shares.items()},
                      "linear_read_out_mAP": {k: round(v, 4) for k, v in alone.items()}}))


if __name__ == "__main__":
    main()
