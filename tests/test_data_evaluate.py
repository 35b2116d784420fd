import cv2
import numpy as np
import pytest

from streamfer.data import DatasetError, ferplus_targets, load_dataset
from streamfer.evaluate import calibrate_thresholds, compute_metrics, cooccurrence
from streamfer.labels import EMOTIONS


def test_ferplus_rule_two_votes_make_a_label():
    # neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    votes = np.array([[0, 6, 2, 1, 0, 0, 1, 0, 0, 0],
                      [8, 0, 0, 1, 0, 0, 0, 1, 0, 0],
                      [0, 0, 0, 0, 3, 4, 3, 0, 0, 0]])
    t = ferplus_targets(votes)
    assert [EMOTIONS[j] for j in np.flatnonzero(t[0])] == ["Surprise", "Happiness"]
    assert t[1].sum() == 0  # neutral: a true negative for all six
    assert [EMOTIONS[j] for j in np.flatnonzero(t[2])] == ["Fear", "Disgust", "Anger"]


def test_ferplus_valid_loads_with_the_rule(ferplus):
    valid = load_dataset(ferplus, "valid")
    assert valid.images.shape[1:] == (48, 48, 3) and valid.images.dtype == np.uint8
    assert 3500 < len(valid) <= 3579
    share_none = (valid.targets.sum(1) == 0).mean()
    assert 0.1 < share_none < 0.3
    assert valid.targets[:, EMOTIONS.index("Happiness")].sum() > 900


def test_folder_per_emotion_layout(tmp_path):
    for folder, n in (("happy", 3), ("Sad", 2), ("neutral", 2), ("notes", 1)):
        (tmp_path / "train" / folder).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(tmp_path / "train" / folder / f"{i}.png"),
                        np.full((60, 50, 3), 40 * i, np.uint8))
    data = load_dataset(tmp_path, "train")
    assert len(data) == 7 and data.images.shape[1:] == (100, 100, 3)
    assert data.targets[:, EMOTIONS.index("Happiness")].sum() == 3
    assert data.targets[:, EMOTIONS.index("Sadness")].sum() == 2
    assert (data.targets.sum(1) == 0).sum() == 2


def test_rafml_layout(tmp_path):
    (tmp_path / "Images" / "aligned").mkdir(parents=True)
    for i in (1, 2, 3):
        cv2.imwrite(str(tmp_path / "Images" / "aligned" / f"000{i}_aligned.jpg"),
                    np.full((100, 100, 3), 50, np.uint8))
    (tmp_path / "multilabel.txt").write_text(
        "0001.jpg 1 0 0 1 0 0\n0002.jpg 0 0 1 0 0 1\n0003.jpg 0 1 0 0 0 0\n")
    (tmp_path / "partition_label.txt").write_text("0001.jpg 0\n0002.jpg 0\n0003.jpg 1\n")
    train, test = load_dataset(tmp_path, "train"), load_dataset(tmp_path, "test")
    assert len(train) == 2 and len(test) == 1
    np.testing.assert_array_equal(train.targets[0], [1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(test.targets[0], [0, 1, 0, 0, 0, 0])


def test_unknown_layout_is_a_clear_error(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DatasetError, match="folder-per-emotion"):
        load_dataset(tmp_path, "train")


def test_metrics_match_hand_counts():
    y = np.array([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    p = np.array([[.9, .1, .1, .2, .1, .1], [.1, .8, .1, .1, .1, .7], [.1, .1, .1, .1, .1, .1]])
    m = compute_metrics(y, p, [0.5] * 6)
    assert m["hamming_loss"] == pytest.approx(2 / 18)  # one miss, one false alarm
    assert m["subset_accuracy"] == pytest.approx(1 / 3)
    assert m["per_label"]["Happiness"]["recall"] == 0
    assert m["per_label"]["Surprise"]["f1"] == 1
    # samples-F1: 2/3 for row 0, 2/3 for row 1, 1 for the empty row predicted empty
    assert m["samples_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_calibrated_thresholds_maximise_f1():
    rng = np.random.default_rng(0)
    y = rng.random((400, 6)) < 0.3
    scores = np.clip(0.25 + 0.3 * y + rng.normal(0, 0.15, y.shape), 0, 1)
    t = calibrate_thresholds(y, scores)
    calibrated = compute_metrics(y, scores, t)["macro_f1"]
    for fixed in (0.3, 0.5, 0.7):
        assert calibrated >= compute_metrics(y, scores, [fixed] * 6)["macro_f1"]


def test_cooccurrence_counts_true_against_predicted():
    y = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    pred = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    c = cooccurrence(y, pred)
    assert c.shape == (7, 7)
    assert c[0, 0] == 1 and c[0, 1] == 1 and c[6, 6] == 1 and c.sum() == 3
