"""The shipped default model: integrity, and sanity on real faces."""

import csv
import json
import os
import shutil

import cv2
import numpy as np
import pytest
from conftest import DEFAULT_MODEL, SHARED

from streamfer.assets import AssetError
from streamfer.classify import Classifier
from streamfer.detect import FaceDetector
from streamfer.labels import EMOTIONS
from streamfer.sources import open_source
from streamfer.training.data import load_dataset

HAPPY = EMOTIONS.index("Happiness")


def test_shipped_model_is_described_and_calibrated():
    meta = json.loads(DEFAULT_MODEL.read_text())
    assert tuple(meta["labels"]) == EMOTIONS
    assert len(meta["thresholds"]) == 6 and all(0 < t < 1 for t in meta["thresholds"])
    assert len(meta["sha256"]) == 64
    assert (DEFAULT_MODEL.parent / meta["weights"]).stat().st_size < 100e6


def test_a_tampered_weights_file_is_refused(tmp_path):
    meta = json.loads(DEFAULT_MODEL.read_text())
    shutil.copy(DEFAULT_MODEL, tmp_path / DEFAULT_MODEL.name)
    data = bytearray((DEFAULT_MODEL.parent / meta["weights"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / meta["weights"]).write_bytes(bytes(data))
    with pytest.raises(AssetError, match="SHA-256"):
        Classifier(tmp_path / DEFAULT_MODEL.name)


def test_a_model_file_without_its_weights_beside_it_says_where_it_looked(tmp_path):
    """A model file copied alone (its .weights.npz left behind) said "weights file not
    found: default.weights.npz", a name without a folder, as if from the current one."""
    shutil.copy(DEFAULT_MODEL, tmp_path / "mine.json")
    with pytest.raises(AssetError) as failed:
        Classifier(tmp_path / "mine.json")
    assert str(failed.value) == (
        f"{tmp_path / 'mine.json'}: its weights, default.weights.npz, are not beside it in "
        f"{tmp_path.resolve()} (a model file goes with its .weights.npz: copy both)")


def test_scores_are_six_probabilities_for_gray_and_rgb_crops(classifier):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (3, 100, 100, 3), dtype=np.uint8)
    scores = classifier.predict(rgb)
    assert scores.shape == (3, 6) and np.all((scores >= 0) & (scores <= 1))
    gray = classifier.predict(rgb[..., 0])
    assert gray.shape == (3, 6)
    assert classifier.predict(np.zeros((0, 100, 100, 3), np.uint8)).shape == (0, 6)


def test_clearly_happy_valid_faces_score_happiness_highest(classifier, ferplus):
    # "clearly happy": at least 9 of the 10 annotators chose happiness
    folder = ferplus / "FER2013Valid"
    with open(folder / "label.csv", newline="") as f:
        names = [row[0] for row in csv.reader(f) if int(row[3]) >= 9][:40]
    crops = np.stack([cv2.resize(cv2.imread(str(folder / n)), (100, 100)) for n in names])
    top = classifier.predict(crops[..., ::-1]).argmax(axis=1)
    assert len(names) == 40
    assert (top == HAPPY).mean() >= 0.8


def test_a_colour_face_scores_as_its_gray_version(classifier, face_bgr):
    """FER+ faces are gray: the model turns every crop gray inside its graph, so colour
    changes nothing (in every backend; here Keras)."""
    crop = cv2.cvtColor(cv2.resize(face_bgr, (100, 100)), cv2.COLOR_BGR2RGB)
    gray = cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    tinted = np.clip(crop.astype(int) * [1.3, 0.8, 0.9], 0, 255).astype(np.uint8)
    scores = classifier.predict(np.stack([crop, gray]))
    np.testing.assert_allclose(scores[0], scores[1], atol=0.01)
    assert np.abs(classifier.predict(tinted[None])[0] - scores[0]).max() > 1e-4  # luma moved


@pytest.mark.parametrize("backend", ["keras", "onnx"])
def test_mirror_averaging_scores_a_face_as_its_mirror_image(face_bgr, backend):
    """With flip_average (the shipped model's setting) a face and its mirror image score
    alike, as the mean of the two one-way scores; without it they differ."""
    crop = cv2.cvtColor(cv2.resize(face_bgr, (100, 100)), cv2.COLOR_BGR2RGB)
    both = np.stack([crop, crop[:, ::-1]])
    on = Classifier(DEFAULT_MODEL, backend=backend)
    off = Classifier(DEFAULT_MODEL, backend=backend, flip_average=False)
    assert on.flip_average and not off.flip_average
    averaged, one_way = on.predict(both), off.predict(both)
    np.testing.assert_allclose(averaged[0], averaged[1], atol=1e-5)
    assert np.abs(one_way[0] - one_way[1]).max() > 1e-3
    np.testing.assert_allclose(averaged[0], one_way.mean(0), atol=1e-5)


def test_model_files_from_before_mirror_averaging_keep_their_one_way_scores(tmp_path):
    meta = json.loads(DEFAULT_MODEL.read_text())
    meta.pop("flip_average")
    for name in ("default.weights.npz", "default.int8.json", "default.graph.onnx"):
        shutil.copy(DEFAULT_MODEL.with_name(name), tmp_path / name)
    (tmp_path / "default.json").write_text(json.dumps(meta))
    assert not Classifier(tmp_path / "default.json", backend="onnx").flip_average


def test_a_model_file_listing_its_outputs_in_another_order_works_everywhere(tmp_path,
                                                                           face_bgr):
    """The same weights under a file that names its outputs in reverse order: scores and
    thresholds come out in EMOTIONS order (the CSV's, --threshold's and the overlay's), so
    each name keeps its meaning; they used to pass through in the file's order, under the
    wrong names. Labels that are not the six are refused in one line."""
    meta = json.loads(DEFAULT_MODEL.read_text())
    meta["labels"], meta["thresholds"] = meta["labels"][::-1], meta["thresholds"][::-1]
    for name in ("default.weights.npz", "default.int8.json", "default.graph.onnx"):
        (tmp_path / name).symlink_to(DEFAULT_MODEL.with_name(name))
    (tmp_path / "default.json").write_text(json.dumps(meta))
    shipped = Classifier(DEFAULT_MODEL, backend="onnx")
    reversed_file = Classifier(tmp_path / "default.json", backend="onnx")
    face = cv2.cvtColor(cv2.resize(face_bgr, (100, 100)), cv2.COLOR_BGR2RGB)
    crops = np.stack([face, face[:, ::-1], np.roll(face, 5, axis=0)])
    assert reversed_file.labels == EMOTIONS
    # the file says output j is EMOTIONS[5 - j]: in EMOTIONS order, the shipped columns reversed
    np.testing.assert_allclose(reversed_file.predict(crops), shipped.predict(crops)[:, ::-1])
    np.testing.assert_allclose(reversed_file.thresholds, shipped.thresholds)
    assert reversed_file.thresholds_with({"Anger": 0.9})[EMOTIONS.index("Anger")] == 0.9
    assert reversed_file.in_file_order(list(EMOTIONS)) == meta["labels"]
    meta["labels"] = [*EMOTIONS[:5], "Neutral"]
    (tmp_path / "default.json").write_text(json.dumps(meta))
    with pytest.raises(AssetError, match="are not the six emotions"):
        Classifier(tmp_path / "default.json", backend="onnx")


NOT_YET = "the shipped model does not get this face right yet (issue: a classifier worth trusting)"


@pytest.mark.parametrize("photo,emotion", [
    ("pyfeat_0-f1-su-ph_surprise.jpg", "Surprise"),
    ("pyfeat_0-f15-hao-ph_happy_open.jpg", "Happiness"),
    ("pyfeat_single_face_smile.jpg", "Happiness"),
    pytest.param("pyfeat_15-f13-anc-ph_anger_closed.jpg", "Anger",
                 marks=pytest.mark.xfail(strict=True, reason=NOT_YET)),
    pytest.param("pyfeat_45-m7-di-ph_disgust.jpg", "Disgust",
                 marks=pytest.mark.xfail(strict=True, reason=NOT_YET)),
])
def test_posed_photos_get_their_emotion_as_the_top_score(classifier, media, detector_ready,
                                                         photo, emotion):
    with open_source(media / photo) as source, FaceDetector() as detector:
        frame = detector.detect(next(iter(source)))
    assert len(frame.faces) == 1
    scores = classifier.predict(frame.faces[0].crop[None])[0]
    assert EMOTIONS[scores.argmax()] == emotion, dict(zip(EMOTIONS, scores.round(2)))


@pytest.fixture(scope="module")
def jaffe_result(classifier, detector_ready):
    """The shipped model on JAFFE's posed faces (evaluation only), each photo cropped as the
    product crops a photo, at the thresholds calibrated on FER+."""
    from streamfer.training.evaluate import evaluate, predict_dataset

    if not (SHARED / "data" / "jaffe" / "test").is_dir():
        pytest.skip("needs ../shared/data/jaffe")
    data = load_dataset(SHARED / "data" / "jaffe", "test")
    assert len(data) == 213 and not data.missed  # every photo's face found
    return evaluate(data.targets, predict_dataset(classifier, data), classifier.thresholds,
                    majority=data.majority)


def test_posed_faces_of_another_set_read_where_the_model_is_strong(jaffe_result):
    per = jaffe_result["top1_per_label"]
    assert per["Happiness"]["top1"] >= 0.9 and per["Sadness"]["top1"] >= 0.8, per
    assert per["Surprise"]["top1"] >= 0.7, per
    assert jaffe_result["negatives_labelled"] <= 0.2  # neutral faces given a label


POSED_NOT_YET = ("posed anger, disgust and fear read Sadness on JAFFE (issue 28: top-1 >= 0.70, "
                 "each of the three >= 0.50)")


@pytest.mark.xfail(strict=True, reason=POSED_NOT_YET)
def test_posed_anger_disgust_and_fear_read_right(jaffe_result):
    per = jaffe_result["top1_per_label"]
    assert jaffe_result["top1"] >= 0.70, jaffe_result["top1"]
    assert min(per[e]["top1"] for e in ("Anger", "Disgust", "Fear")) >= 0.5, per


def test_the_shipped_model_holds_issue_28s_valid_bar(ferplus):
    """FER+ Valid through the int8 engine, thresholds cross-fitted (the honest figures): no
    metric worse than the CPU-trained default's (Hamming 0.047, samples-F1 0.813, macro-F1
    0.731, mAP 0.793) and Disgust, the weakest label, found on at least 60 % of its faces
    (that default: 52 %)."""
    from streamfer.training.evaluate import evaluate, predict_dataset

    data = load_dataset(ferplus, "valid")
    fast = Classifier(DEFAULT_MODEL, backend="onnx")
    honest = evaluate(data.targets, predict_dataset(fast, data), fast.thresholds,
                      majority=data.majority)["at"]["cross-fitted"]
    assert honest["hamming_loss"] <= 0.047 and honest["samples_f1"] >= 0.813, honest
    assert honest["macro_f1"] >= 0.731 and honest["mAP"] >= 0.793, honest
    assert honest["per_label"]["Disgust"]["recall"] >= 0.60, honest["per_label"]["Disgust"]


@pytest.fixture(scope="module")
def branch_shares(ferplus):
    """FER+ Valid mAP of the shipped model whole, and with each backbone's features held at
    their mean over 2,000 FER+ Train faces."""
    from streamfer.training import head

    train = load_dataset(ferplus, "train")
    reference = train.subset(np.random.default_rng(0).permutation(len(train))[:2000])
    return head.branch_shares(DEFAULT_MODEL, reference, load_dataset(ferplus, "valid"))


def test_the_vgg19_branch_carries_the_shipped_model(branch_shares):
    assert branch_shares["whole"] >= 0.8, branch_shares
    assert branch_shares["vgg19"] <= 0.3, branch_shares  # the six labels' base rates: ~0.15


@pytest.mark.xfail(strict=True, reason="the shipped ensemble's ResNet50 branch brings nothing: "
                   "its features held at their mean leave FER+ Valid mAP where it was (a model "
                   "trained with --branch-loss from scratch is the remedy to measure)")
def test_each_backbone_of_the_ensemble_brings_something(branch_shares):
    assert branch_shares["whole"] - branch_shares["resnet50"] >= 0.01, branch_shares


def test_crying_then_smiling_reads_sadness_early_and_happiness_late(classifier, media,
                                                                    detector_ready):
    """The first quarter of the clip is crying, the last quarter smiling."""
    with open_source(media / "pyfeat_WolfgangLanger_Pexels_sad_to_happy.mp4") as source, \
            FaceDetector() as detector:
        crops = [f.faces[0].crop for f in (detector.detect(frame) for frame in source)
                 if f.faces]
    scores = classifier.predict(np.stack(crops))
    quarter = len(scores) // 4
    assert EMOTIONS[scores[:quarter].mean(0).argmax()] == "Sadness"
    assert EMOTIONS[scores[-quarter:].mean(0).argmax()] == "Happiness"


@pytest.mark.parametrize("backend", ["tflite", "onnx", "openvino"])
def test_fast_backends_agree_with_keras(classifier, ferplus, backend):
    """TFLite fp32 and the int8 ONNX model (quantized with the shipped ranges, no data; run by
    ONNX Runtime and by OpenVINO) give Keras' scores and labels; batch 1 and larger batches
    agree."""
    valid = load_dataset(ferplus, "valid")
    crops = np.stack([cv2.resize(f, (100, 100)) for f in valid.images[:256]])
    fast = Classifier(DEFAULT_MODEL, backend=backend)
    keras_scores, fast_scores = classifier.predict(crops), fast.predict(crops)
    assert np.abs(keras_scores - fast_scores).mean() < 0.02
    thresholds = classifier.thresholds
    assert ((keras_scores >= thresholds) == (fast_scores >= thresholds)).mean() > 0.97
    np.testing.assert_allclose(fast.predict(crops[:1]), fast_scores[:1], atol=1e-4)


def test_int8_ranges_of_other_weights_are_refused(tmp_path):
    for name in ("default.json", "default.weights.npz", "default.int8.json"):
        shutil.copy(DEFAULT_MODEL.with_name(name), tmp_path / name)
    ranges = json.loads((tmp_path / "default.int8.json").read_text())
    ranges["weights_sha256"] = "0" * 64
    (tmp_path / "default.int8.json").write_text(json.dumps(ranges))
    with pytest.raises(AssetError, match="other weights"):
        Classifier(tmp_path / "default.json", backend="onnx")


def test_a_failed_onnx_build_is_one_error_and_remembered(tmp_path):
    """A failed ONNX build (here: weights that do not match their SHA-256) reaches the
    caller as one AssetError and marks the weights for ``auto``."""
    from streamfer.runtimes import build as backends

    meta = json.loads(DEFAULT_MODEL.read_text())
    meta["sha256"] = "f" * 64
    (tmp_path / "m.json").write_text(json.dumps(meta))
    shutil.copy(DEFAULT_MODEL.with_name(meta["weights"]), tmp_path / meta["weights"])
    ranges = json.loads(DEFAULT_MODEL.with_name("default.int8.json").read_text())
    ranges["weights_sha256"] = "f" * 64
    (tmp_path / "m.int8.json").write_text(json.dumps(ranges))
    assert not backends.onnx_failed(tmp_path / "m.json")
    with pytest.raises(AssetError, match="could not build the ONNX model: .*SHA-256"):
        backends.onnx_file(tmp_path / "m.json")
    assert backends.onnx_failed(tmp_path / "m.json")


def test_a_remembered_onnx_failure_is_said_on_every_run(caplog, streamfer_home):
    """``auto`` skips an ONNX build that failed before, and says so each time (one line)."""
    import logging

    from streamfer.runtimes import build as backends

    marker = backends._onnx_target(DEFAULT_MODEL).with_suffix(".failed")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("out of memory\n")
    try:
        for _ in range(2):
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                assert Classifier(DEFAULT_MODEL, backend="auto").backend == "tflite"
            said = [r.getMessage() for r in caplog.records if "ONNX" in r.getMessage()]
            assert len(said) == 1 and "out of memory" in said[0] and "--backend onnx" in said[0]
    finally:
        marker.unlink()


def test_a_model_passed_in_is_that_model_in_every_backend(classifier):
    """Its conversions are keyed by its own weights, never the default file's."""
    from streamfer.runtimes import build as backends

    other = classifier.model.get_weights()
    other[-1] = other[-1] + 1.0  # the head's bias: other scores
    import keras

    changed = keras.models.clone_model(classifier.model)
    changed.set_weights(other)
    assert backends.model_digest(changed, classifier.config) != \
        backends.model_digest(classifier.model, classifier.config)
    with pytest.raises(AssetError, match="needs the model's .json"):
        Classifier(model=changed, config=classifier.config, backend="onnx")
    crops = np.zeros((1, 100, 100, 3), np.uint8)
    mine = Classifier(model=changed, config=classifier.config, backend="keras").predict(crops)
    assert np.abs(mine - classifier.predict(crops)).max() > 0.05


def test_the_onnx_model_is_built_from_the_shipped_graph_without_tensorflow(tmp_path):
    """First run: the int8 model is made from models/default.graph.onnx and the weights with
    numpy and ONNX Runtime alone (TensorFlow is never imported), and agrees with Keras."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from streamfer.classify import Classifier; "
            "c = Classifier(backend='auto'); "
            "print(c.backend, 'tensorflow' in sys.modules, 'keras' in sys.modules); "
            "np.save(sys.argv[1], c.predict(np.load(sys.argv[2])))")
    crops = np.stack([np.full((100, 100, 3), v, np.uint8) for v in (40, 120, 200)])
    np.save(tmp_path / "crops.npy", crops)
    env = {**os.environ, "STREAMFER_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "scores.npy"),
                          str(tmp_path / "crops.npy")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    backend, *imported = out.stdout.split()
    assert backend in ("onnx", "openvino") and imported == ["False", "False"]
    assert list((tmp_path / "home" / "onnx").glob("*-int8.onnx"))
    keras_scores = Classifier(DEFAULT_MODEL, backend="keras").predict(crops)
    assert np.abs(np.load(tmp_path / "scores.npy") - keras_scores).max() < 0.05


def test_tensorflow_start_up_notes_are_filtered_whatever_the_cpu():
    # TF 2.21 prints "oneDNN custom operations are on" (and absl's "before InitializeLog"
    # warning) through absl whatever TF_CPP_MIN_LOG_LEVEL says, but only where oneDNN is on:
    # forced on here, so the test fails on any CPU when the filter breaks.
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "STREAMFER_NATIVE_LOGS")}
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    program = "import sys; {}import tensorflow; print('said', file=sys.stderr)"
    bare = subprocess.run([sys.executable, "-c", program.format("")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert "oneDNN custom operations are on" in bare.stderr  # the noise is there to filter
    # as the command line does it; a look-up (the train extra's check) must not spend it
    quiet = ("from streamfer.logs import quiet_native_logs; quiet_native_logs(); "
             "import importlib.util; importlib.util.find_spec('tensorflow'); ")
    ours = subprocess.run([sys.executable, "-c", program.format(quiet)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert ours.returncode == 0, ours.stderr
    assert ours.stderr.splitlines() == ["said"]  # what the program says itself is kept
