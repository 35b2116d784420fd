"""Does each output rank its own faces first, and at what scale (model card, "Not the score
scale or the thresholds")? On a labelled split's faces whose strict-majority label is one
of the six (evaluation only): per emotion, ROC AUC and average precision of its score (that
emotion against the rest; scikit-learn), its mean score on its own faces and on the others;
then top-1 among the six on the raw scores, on each score divided by its calibrated
threshold and on the logits less the thresholds' logits. The product's path for a photo
tree (``--crop detect``), the Keras backend, both views averaged.

    python models/ablations/ranking.py --data ../shared/data/jaffe --split test \\
        models/default.json
"""

import argparse

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from streamfer.classify import Classifier
from streamfer.training.data import load_dataset
from streamfer.training.evaluate import predict_dataset, top1_per_label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model .json")
    parser.add_argument("--data", default="../shared/data/jaffe", help="a labelled dataset")
    parser.add_argument("--split", default="test", choices=["train", "valid", "test"])
    args = parser.parse_args()
    data = load_dataset(args.data, args.split)
    classifier = Classifier(args.model, backend="keras")
    scores = predict_dataset(classifier, data)
    majority, labels = np.asarray(data.majority), classifier.labels
    thresholds = np.asarray(classifier.thresholds)
    sadness = labels.index("Sadness")
    for i, label in enumerate(labels):
        own = majority == i
        print(f"{label:10s} AUC {roc_auc_score(own, scores[:, i]):.2f}  "
              f"AP {average_precision_score(own, scores[:, i]):.2f}  "
              f"mean score: own faces {scores[own, i].mean():.3f}, others "
              f"{scores[~own, i].mean():.3f}, threshold {thresholds[i]:.2f}; "
              f"Sadness on its faces {scores[own, sadness].mean():.2f}")
    logit = np.log(scores / (1 - scores))
    for name, ranked in [("raw scores", scores), ("score / threshold", scores / thresholds),
                         ("logit - threshold's logit",
                          logit - np.log(thresholds / (1 - thresholds)))]:
        has = majority >= 0
        top1 = float((ranked[has].argmax(1) == majority[has]).mean())
        per = top1_per_label(majority, ranked, labels)
        print(f"top-1 on {name}: {top1:.3f} (" + ", ".join(
            f"{k} {v['top1']:.2f}" for k, v in per.items()) + ")")


if __name__ == "__main__":
    main()
