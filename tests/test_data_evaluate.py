import shutil

import cv2
import numpy as np
import pytest

from streamfer.labels import EMOTIONS
from streamfer.training.data import DatasetError, ferplus_rule, load_dataset
from streamfer.training.evaluate import (
    calibrate_thresholds,
    compute_metrics,
    cooccurrence,
    evaluate,
)


def test_ferplus_multi_target_rule():
    # neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    votes = np.array([[0, 6, 3, 1, 0, 0, 0, 0, 0, 0],   # singles dropped: happy .67, surprise .33
                      [8, 0, 0, 2, 0, 0, 0, 0, 0, 0],   # sadness 2/10 < 30 %: a true negative
                      [0, 0, 0, 0, 4, 3, 3, 0, 0, 0],   # three emotions at ≥ 30 %
                      [4, 0, 0, 0, 0, 0, 0, 0, 3, 3],   # unknown + NF present: dropped
                      [3, 2, 2, 2, 0, 0, 0, 0, 0, 1],   # present classes gather 3/9 ≤ 50 %
                      [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]])  # all single votes: nothing left
    keep, t, shares = ferplus_rule(votes)
    assert keep.tolist() == [True, True, True, False, False, False]
    assert [EMOTIONS[j] for j in np.flatnonzero(t[0])] == ["Surprise", "Happiness"]
    assert t[1].sum() == 0
    assert [EMOTIONS[j] for j in np.flatnonzero(t[2])] == ["Fear", "Disgust", "Anger"]
    np.testing.assert_allclose(shares[0], [1 / 3, 0, 0, 2 / 3, 0, 0], atol=1e-6)
    np.testing.assert_allclose(shares[1], [0, 0, 0, 0, 0.2, 0], atol=1e-6)


def test_ferplus_splits_load_with_the_rule(ferplus):
    """The counts ../shared/data/README.md gives for the rule, and soft targets beside them."""
    valid, train = load_dataset(ferplus, "valid"), load_dataset(ferplus, "train")
    assert valid.images.shape[1:] == (48, 48, 3) and valid.images.dtype == np.uint8
    assert (len(train), len(valid)) == (26944, 3390)
    assert train.targets.sum(0).astype(int).tolist() == [4253, 1202, 307, 8167, 5355, 2950]
    assert 0.2 < (valid.targets.sum(1) == 0).mean() < 0.3
    assert valid.soft.shape == valid.targets.shape and 0 < valid.soft.mean() < 0.2
    assert ((valid.soft >= 0.3) == valid.targets.astype(bool)).all()
    assert set(np.unique(valid.majority)) <= {-1, 0, 1, 2, 3, 4, 5}
    assert 1500 < (valid.majority >= 0).sum() < len(valid)
def _folders(root, counts):
    for folder, n in counts:
        (root / folder).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / folder / f"{i}.png"), np.full((60, 50, 3), 4 * i, np.uint8))


def test_folder_per_emotion_layout_with_its_own_splits(tmp_path):
    _folders(tmp_path / "train", (("happy", 3), ("Sad", 2), ("neutral", 2), ("notes", 1)))
    _folders(tmp_path / "valid", (("happy", 1), ("sad", 1)))
    data = load_dataset(tmp_path, "train", crop="none")
    assert len(data) == 7 and data.images.shape[1:] == (100, 100, 3)
    assert data.targets[:, EMOTIONS.index("Happiness")].sum() == 3
    assert data.targets[:, EMOTIONS.index("Sadness")].sum() == 2
    assert (data.targets.sum(1) == 0).sum() == 2
    assert len(load_dataset(tmp_path, "valid", crop="none")) == 2
    with pytest.raises(DatasetError, match="no test/ folder"):
        load_dataset(tmp_path, "test", crop="none")


def test_a_face_named_in_latin_1_bytes_is_read(tmp_path):
    """A folder-per-emotion tree copied from another system ('colère.png' in Latin-1 bytes):
    OpenCV's reader crashed on the name (a segmentation fault: the training gone). In a
    child process, so that a crash fails this test alone."""
    import os
    import subprocess
    import sys

    _folders(tmp_path / "train", (("happy", 2),))
    _folders(tmp_path / "valid", (("happy", 1),))
    (tmp_path / "train" / "angry").mkdir()
    cv2.imwrite(str(tmp_path / "x.png"), np.full((60, 50, 3), 200, np.uint8))
    os.rename(tmp_path / "x.png", tmp_path / "train" / "angry" / os.fsdecode(b"col\xe8re.png"))
    done = subprocess.run([sys.executable, "-c", "import sys; from streamfer.training.data "
                           "import load_dataset; d = load_dataset(sys.argv[1], 'train', "
                           "crop='none'); print(len(d), d.targets.sum(0))", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "3 [0. 0. 0. 2. 0. 1.]", done


def test_folder_without_valid_gets_a_disjoint_stratified_holdout(tmp_path):
    _folders(tmp_path, (("happy", 40), ("sad", 30), ("neutral", 30)))
    train, valid = (load_dataset(tmp_path, split, crop="none") for split in ("train", "valid"))
    assert len(train) + len(valid) == 100 and len(valid) == 10
    assert not set(train.names) & set(valid.names)
    assert valid.targets[:, EMOTIONS.index("Happiness")].sum() == 4  # stratified: 40 %
    assert load_dataset(tmp_path, "valid", crop="none").names == valid.names  # seeded


def test_a_tree_without_valid_is_read_once_for_both_splits(tmp_path, monkeypatch):
    """Cropping photos with the detector takes a minute for a few thousand: ``train`` and
    ``valid`` are both held out of one cached read of the tree, not read a second time, and
    the faces are stored once, not again for each split."""
    from streamfer.training import data as module

    _folders(tmp_path / "tree", (("happy", 10), ("neutral", 10)))
    store = tmp_path / "cache"
    monkeypatch.setattr(module, "cache_dir", lambda sub: (store / sub).mkdir(
        parents=True, exist_ok=True) or store / sub)
    reads = []
    read = module._read_folders
    monkeypatch.setattr(module, "_read_folders", lambda *a: reads.append(a) or read(*a))
    for _ in range(2):  # the second time from the store
        train, valid = (load_dataset(tmp_path / "tree", split, crop="none")
                        for split in ("train", "valid"))
    assert len(reads) == 1 and len(train) + len(valid) == 20
    assert not set(train.names) & set(valid.names)
    assert len(list(store.rglob("*.npz"))) == 1


def test_rafml_layout_holds_valid_out_of_train(tmp_path):
    (tmp_path / "Images" / "aligned").mkdir(parents=True)
    lines, parts = [], []
    for i in range(1, 23):
        cv2.imwrite(str(tmp_path / "Images" / "aligned" / f"{i:04d}_aligned.jpg"),
                    np.full((100, 100, 3), 50, np.uint8))
        lines.append(f"{i:04d}.jpg {' '.join('0.8' if j == i % 3 else '0.1' for j in range(6))}")
        parts.append(f"{i:04d}.jpg {0 if i <= 20 else 1}")
    (tmp_path / "multilabel.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "partition_label.txt").write_text("\n".join(parts) + "\n")
    train, valid, test = (load_dataset(tmp_path, s) for s in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (18, 2, 2)
    assert not set(train.names) & set(valid.names) and not set(valid.names) & set(test.names)
    np.testing.assert_array_equal(test.targets[0], [1, 0, 0, 0, 0, 0])  # 0021: 21 % 3 == 0
    np.testing.assert_allclose(test.soft[0], [0.8, 0.1, 0.1, 0.1, 0.1, 0.1], atol=1e-6)
    with pytest.raises(DatasetError, match="unknown split"):
        load_dataset(tmp_path, "val")


def test_folder_photos_are_cropped_as_the_product_crops_a_photo(tmp_path, media, detector_ready):
    """Photos (JAFFE's head-and-shoulders shots, loosely centred faces) become the crop of
    their largest face as a run makes it; a photo without a face is left out and named."""
    from streamfer.detect import FaceDetector
    from streamfer.frame import Frame

    photos = {"happy": "pyfeat_single_face_smile.jpg",
              "surprise": "pyfeat_0-f1-su-ph_surprise.jpg"}
    for folder, name in photos.items():
        (tmp_path / "test" / folder).mkdir(parents=True)
        shutil.copy(media / name, tmp_path / "test" / folder / name)
    (tmp_path / "test" / "neutral").mkdir()
    wall = np.full((200, 160, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "test" / "neutral" / "wall.png"), wall)

    data = load_dataset(tmp_path, "test")
    assert data.names == [f"{f}/{n}" for f, n in sorted(photos.items())]
    assert data.missed == ["neutral/wall.png"]
    assert data.images.shape == (2, 100, 100, 3)
    with FaceDetector("both", tiles=0) as detector:
        image = cv2.imread(str(media / photos["happy"]))
        faces = detector.detect(Frame("p", 0, 0.0, image)).faces
    largest = max(faces, key=lambda f: f.box[2] * f.box[3])
    np.testing.assert_array_equal(data.images[0], largest.crop)
    assert load_dataset(tmp_path, "test").missed == data.missed  # kept in the cache too
    as_is = load_dataset(tmp_path, "test", crop="none")
    assert len(as_is) == 3 and not as_is.missed
    with pytest.raises(DatasetError, match="unknown crop"):
        load_dataset(tmp_path, "test", crop="tight")


def test_posed_set_figures_top1_per_emotion_and_neutral_faces_labelled():
    targets = np.zeros((5, 6))
    targets[[0, 1], 0] = 1  # two surprised faces, one angry, two neutral
    targets[2, 5] = 1
    scores = np.full((5, 6), 0.1)
    scores[0, 0] = scores[1, 4] = scores[2, 5] = scores[3, 4] = 0.9
    majority = np.array([0, 0, 5, -1, -1])
    result = evaluate(targets, scores, [0.5] * 6, majority=majority)
    assert result["top1"] == 2 / 3
    assert result["top1_per_label"]["Surprise"] == {"top1": 0.5, "n": 2}
    assert result["top1_per_label"]["Anger"] == {"top1": 1.0, "n": 1}
    assert result["top1_per_label"]["Fear"]["n"] == 0
    assert (result["negatives_labelled"], result["negatives_n"]) == (0.5, 2)


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


def test_calibration_keeps_half_of_a_rare_labels_faces():
    """A rare label whose positives mostly score low: its F1 optimum finds few of them; the
    calibrated threshold finds at least half, and F1-max holds where the floor is met."""
    rng = np.random.default_rng(2)
    y = np.zeros((1000, 6), bool)
    y[:40, 2] = True  # 40 rare positives among 1000 faces
    y[:, [0, 1, 3, 4, 5]] = rng.random((1000, 5)) < 0.3
    scores = np.clip(0.25 + 0.3 * y + rng.normal(0, 0.15, y.shape), 0, 1)
    scores[:10, 2] = 0.95  # a quarter of the rare positives stand out, the rest do not
    scores[10:40, 2] = rng.uniform(0.3, 0.6, 30)
    free = calibrate_thresholds(y, scores, min_recall=0.0)
    floored = calibrate_thresholds(y, scores)
    recall = lambda t: compute_metrics(y, scores, t)["per_label"]["Disgust"]["recall"]  # noqa: E731
    assert recall(free) < 0.5 <= recall(floored)
    assert [floored[j] == free[j] for j in (0, 1, 3, 4, 5)] == [True] * 5


def test_cooccurrence_counts_true_against_predicted():
    y = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    pred = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    c = cooccurrence(y, pred)
    assert c.shape == (7, 7)
    assert c[0, 0] == 1 and c[0, 1] == 1 and c[6, 6] == 1 and c.sum() == 3


def test_cross_fitted_thresholds_never_see_the_faces_they_judge():
    """On pure noise, thresholds calibrated in-sample find spurious F1; cross-fitted ones
    cannot do better than chance."""
    rng = np.random.default_rng(1)
    y = (rng.random((600, 6)) < 0.2).astype(int)
    scores = rng.random((600, 6))
    from streamfer.training.evaluate import evaluate

    at = evaluate(y, scores, calibrate_thresholds(y, scores))["at"]
    assert at["cross-fitted"]["macro_f1"] < at["calibrated"]["macro_f1"]
    assert at["cross-fitted"]["mAP"] == at["calibrated"]["mAP"]
