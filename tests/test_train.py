"""Training, export and reload on a tiny dataset the test makes itself (a real face photo
under brightness and shifts, one folder per emotion): the recipe's pieces and the command
line, under every Keras backend installed here."""

import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import DEFAULT_MODEL, ROOT

from streamfer.training.data import Dataset, load_dataset

FOLDERS = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, face_bgr):
    """7 folders × 6 faces, 100×100 (a valid split is held out of them)."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    face = cv2.resize(face_bgr, (100, 100))
    for k, name in enumerate(FOLDERS):
        (root / name).mkdir()
        for i in range(6):
            shifted = np.roll(face, (int(rng.integers(-6, 7)), k - 3), axis=(0, 1))
            image = np.clip(shifted.astype(int) + 12 * k - 30 + i, 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"{i}.png"), image)
    return root


def streamfer(*args, backend="tensorflow", timeout=900, env=None):
    env = {**os.environ, "KERAS_BACKEND": backend, **(env or {})}
    return subprocess.run([sys.executable, "-m", "streamfer.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def backends():
    for name, module in (("tensorflow", "tensorflow"), ("jax", "jax")):
        reason = f"Keras backend {name}: {module} is not installed here"
        installed = importlib.util.find_spec(module) is not None
        yield pytest.param(name, marks=pytest.mark.skipif(not installed, reason=reason))


@pytest.mark.parametrize("backend", list(backends()))
def test_two_steps_train_resume_and_export_under_each_backend(tmp_path, tiny, backend):
    run = tmp_path / "run"
    args = ["train", "--data", tiny, "--crop", "none", "--out", run, "--steps-per-epoch", "2",
            "--batch-size", "4", "--work-size", "32", "--precision", "fp32", "--strong-augment",
            "--branch-loss", "0.5", "--hide-half", "0.5"]
    first = streamfer(*args, "--epochs", "1", backend=backend)
    assert first.returncode == 0, first.stderr[-2000:]
    config = json.loads((run / "train_config.json").read_text())
    assert config["backend"] == backend and config["bf16"] is False
    assert config["strong_augment"] is True and config["branch_loss"] == 0.5
    assert config["hide_half"] == 0.5
    # output to a pipe, no progress bar: a line per step here (about a tenth of an epoch)
    assert "epoch 1/1 step 1/2" in first.stdout and "s/step" in first.stdout, first.stdout
    again = streamfer(*args, "--epochs", "2", backend=backend)  # resumes after epoch 1
    assert again.returncode == 0, again.stderr[-2000:]
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].split(",")[:2] == ["epoch", "loss"] and "val_map" in log[0]
    assert [row.split(",")[0] for row in log[1:]] == ["0", "1"]
    assert (run / "best.weights.h5").is_file()

    model = tmp_path / "m" / "model.json"
    done = streamfer("export", "--run", run, "--data", tiny, "--crop", "none", "--out", model,
                     "--no-int8", backend=backend)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads(model.read_text())
    assert meta["vgg"] == "bn" and meta["work_size"] == 32 and len(meta["thresholds"]) == 6
    same = streamfer("export", "--run", run, "--data", tiny, "--crop", "none", "--out", model,
                     "--no-int8", backend=backend)
    assert same.returncode == 1 and "does not beat" in same.stderr  # the same model again


@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="JAX is not installed here (the test extra brings it)")
def test_under_jax_a_training_step_is_one_compiled_graph(tmp_path, tiny):
    """Keras marks its rotation, shift, zoom and shear layers as not XLA-compilable, which
    under JAX made every step run op by op (on an H200: 31 steps of 64 in seven minutes)."""
    run = streamfer("train", "--data", tiny, "--crop", "none", "--out", tmp_path / "run",
                    "--steps-per-epoch", "2", "--batch-size", "4", "--work-size", "32",
                    "--precision", "fp32", "--strong-augment", "--epochs", "1",
                    "--branch-loss", "0.5", backend="jax", env={"JAX_LOG_COMPILES": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "XLA compilation of jit(train_step)" in run.stderr
    assert "jit(conv_general_dilated)" not in run.stderr  # no convolution dispatched alone


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])
def test_train_stopped_by_a_signal_says_so_in_a_line_and_the_same_command_goes_on(tmp_path,
                                                                                  tiny, stop):
    """``kill`` (SIGTERM) of a training in the background, or Ctrl-C, or its terminal's
    hang-up (SIGHUP: it killed the training, the steps since the last backup lost): it ends
    after the step under way with one line, exit 130 and no traceback; the backup holds that
    step, no epoch looks finished, and the same command trains the steps left."""
    import signal

    run = tmp_path / "run"
    args = [sys.executable, "-m", "streamfer.cli", "train", "--data", tiny, "--crop", "none",
            "--out", run, "--steps-per-epoch", "40", "--batch-size", "4", "--work-size", "32",
            "--precision", "fp32", "--epochs", "1"]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    with subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, cwd=ROOT) as training:
        try:
            for line in training.stdout:  # a line every 4 steps (a tenth of the epoch)
                if "step" in line:
                    training.send_signal(getattr(signal, stop))
                    break
            out, err = training.communicate(timeout=300)
        finally:
            training.kill()
    assert training.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(
        "stopped at epoch 1, step "), err[-2000:]
    done = int(err.split("step ")[-1].split(" of 40")[0])
    meta = json.loads((run / "backup" / "training_metadata.json").read_text())
    assert 4 <= done < 40 and (meta["epoch"], meta["done"]) == (0, done)
    assert not (run / "log.csv").is_file() or len((run / "log.csv").read_text().split()) <= 1

    again = streamfer(*args[3:])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "epoch 1/1 step 40/40" in again.stdout and "step 4/40" not in again.stdout
    assert [row.split(",")[0] for row in (run / "log.csv").read_text().split()[1:]] == ["0"]


def test_exported_model_reloads_and_init_starts_from_it(tmp_path, tiny):
    """A run exported, reloaded by Classifier (scores as in training), and ``--init`` takes
    its architecture and weights."""
    from streamfer.classify import Classifier
    from streamfer.model import load_model
    from streamfer.training.train import TrainConfig, export, train

    run = tmp_path / "run"
    train(TrainConfig(str(tiny), str(run), epochs=1, steps_per_epoch=1, batch_size=4,
                      work_size=32, vgg="plain", precision="fp32", crop="none"), progress=False)
    out = tmp_path / "model.json"
    result = export(run, tiny, out, int8=False, crop="none")
    assert result["n"] == len(load_dataset(tiny, "valid", "none"))
    classifier = Classifier(out, backend="keras")
    crops = np.stack([cv2.resize(im, (100, 100))
                      for im in load_dataset(tiny, "valid", "none").images])
    assert classifier.predict(crops).shape == (len(crops), 6)

    second = tmp_path / "run2"
    train(TrainConfig(str(tiny), str(second), epochs=1, steps_per_epoch=1, batch_size=4,
                      learning_rate=1e-12, init=str(out), precision="fp32", crop="none"),
          progress=False)
    assert json.loads((second / "config.json").read_text())["vgg"] == "plain"
    recorded = json.loads((second / "train_config.json").read_text())
    assert (recorded["vgg"], recorded["work_size"]) == ("plain", 32)  # what --init trained
    start, _ = load_model(out)
    from streamfer.model import ModelConfig, build_model

    config = ModelConfig.from_dict(json.loads((second / "config.json").read_text()))
    config.input_size = config.work_size
    trained = build_model(config)
    trained.load_weights(str(second / "best.weights.h5"))
    head = [layer for layer in trained.layers if layer.name == "emotions"][0]
    np.testing.assert_allclose(head.get_weights()[0],
                               start.get_layer("emotions").get_weights()[0], atol=1e-4)

    # Progressive resizing: --work-size with --init trains the same weights on at a new size.
    larger = tmp_path / "run3"
    train(TrainConfig(str(tiny), str(larger), epochs=1, steps_per_epoch=1, batch_size=4,
                      learning_rate=1e-12, init=str(out), work_size=40, precision="fp32",
                      crop="none"), progress=False)
    resized = ModelConfig.from_dict(json.loads((larger / "config.json").read_text()))
    assert (resized.vgg, resized.work_size) == ("plain", 40)
    resized.input_size = resized.work_size
    grown = build_model(resized)
    grown.load_weights(str(larger / "best.weights.h5"))
    np.testing.assert_allclose(grown.get_layer("emotions").get_weights()[0],
                               start.get_layer("emotions").get_weights()[0], atol=1e-4)


def test_weighted_bce_matches_its_formula_on_soft_targets():
    from keras import ops

    from streamfer.training.train import positive_weights, weighted_bce

    y = np.array([[1.0, 0.0, 0.3, 0.0, 0.0, 0.0]], np.float32)
    p = np.array([[0.9, 0.2, 0.5, 0.1, 0.1, 0.1]], np.float32)
    w = np.array([2.0, 1, 1, 1, 1, 3], np.float32)
    expected = -np.mean(w * y * np.log(p) + (1 - y) * np.log(1 - p))
    got = float(ops.convert_to_numpy(weighted_bce(w)(y, p))[0])
    assert got == pytest.approx(expected, rel=1e-5)
    # the focal loss scales each term by how wrong the score is; smoothing pulls y to 0.5
    focal = -np.mean(w * y * np.log(p) * (1 - p) ** 2 + (1 - y) * np.log(1 - p) * p ** 2)
    got = float(ops.convert_to_numpy(weighted_bce(w, focal_gamma=2.0)(y, p))[0])
    assert got == pytest.approx(focal, rel=1e-5) and got < expected / 3
    s = y * 0.8 + 0.1
    smoothed = -np.mean(w * s * np.log(p) + (1 - s) * np.log(1 - p))
    got = float(ops.convert_to_numpy(weighted_bce(w, label_smoothing=0.2)(y, p))[0])
    assert got == pytest.approx(smoothed, rel=1e-5)
    targets = np.array([[1, 0, 0, 0, 0, 0]] * 1 + [[0] * 6] * 99, np.float32)
    assert positive_weights(targets, cap=4.0)[0] == 4.0  # √(99) capped
    assert positive_weights(targets, cap=4.0)[1] == 4.0  # no positives: clipped, capped


def test_the_branch_loss_adds_each_backbones_own_loss_weighted():
    from keras import ops

    from streamfer.training.train import weighted_bce, with_branches

    rng = np.random.default_rng(0)
    y = (rng.uniform(size=(4, 6)) > 0.6).astype(np.float32)
    main, a, b = (rng.uniform(0.05, 0.95, (4, 6)).astype(np.float32) for _ in range(3))
    loss = weighted_bce(np.ones(6, np.float32))

    def of(p):
        return ops.convert_to_numpy(loss(y, p))

    got = ops.convert_to_numpy(with_branches(loss, 2, 0.5)(y, np.concatenate([main, a, b], 1)))
    np.testing.assert_allclose(got, of(main) + 0.5 * (of(a) + of(b)) / 2, rtol=1e-5)


def test_with_the_branch_loss_a_backbone_the_ensemble_ignores_still_learns():
    """The defaults' failure in small: a head that takes nothing from ResNet50 (its branch's
    batch norm scaled to zero) gives that backbone no gradient, so one step leaves it as it
    was; with --branch-loss the backbone's own read-out trains it. The exported part, the
    ensemble, is the same model either way."""
    import keras

    from streamfer.model import ModelConfig, build_model
    from streamfer.training.train import branch_supervised, weighted_bce, with_branches

    config = ModelConfig(input_size=32, work_size=32)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    y = (rng.uniform(size=(8, 6)) > 0.7).astype(np.float32)
    loss = weighted_bce(np.ones(6, np.float32))

    def resnet_moved(weight: float) -> float:
        keras.utils.set_random_seed(0)
        core = build_model(config)
        bn = core.get_layer("resnet50_bn")
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([gamma * 0, beta * 0, mean, var])
        inputs = keras.Input((32, 32, 3))
        if weight:
            model = keras.Model(inputs, branch_supervised(core, config, inputs))
            model.compile(optimizer=keras.optimizers.SGD(0.1),
                          loss=with_branches(loss, 2, weight))
        else:
            model = keras.Model(inputs, core(inputs))
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
        conv = core.get_layer("resnet50").get_layer("conv1_conv")
        before = conv.get_weights()[0].copy()
        model.train_on_batch(x, y)
        assert len(core.get_weights()) == len(build_model(config).get_weights())
        return float(np.abs(conv.get_weights()[0] - before).max())

    assert resnet_moved(0.0) == 0.0
    assert resnet_moved(0.5) > 1e-6


def test_strong_augmentation_adds_noise_patches_blur_and_shear_in_training_only():
    """On a flat grey face every standard augmentation (flip, shifts, zoom with reflected
    borders, brightness, contrast) keeps each face flat; random erasing's noise patch does
    not. Outside training the stack is the identity."""
    from keras import ops

    from streamfer.training.train import augmenter

    flat = np.full((16, 32, 32, 3), 120.0, np.float32)
    spread = {}
    for strong in (False, True):
        stack = augmenter(0, strong)
        out = ops.convert_to_numpy(stack(flat, training=True))
        spread[strong] = np.ptp(out.reshape(16, -1), axis=1)
        np.testing.assert_array_equal(ops.convert_to_numpy(stack(flat, training=False)), flat)
    assert spread[False].max() < 1e-3
    assert 3 <= (spread[True] > 10).sum() <= 13  # about half the faces carry a patch
    names = [layer.__class__.__name__ for layer in augmenter(0, True).layers]
    assert {"RandomShear", "RandomGaussianBlur", "RandomErasing"} <= set(names)


def test_hiding_half_a_face_covers_its_brows_and_eyes_or_its_mouth_never_both():
    """--hide-half: on about that share of the faces, noise over the rows above half the
    side (brows, eyes) or from 0.6 of it down (mouth, chin), each as often; the rows
    between (the nose) and every other face untouched; the identity outside training; the
    same under bf16 (its output stays float32, the input's)."""
    import keras
    from keras import ops

    from streamfer.training.train import HideHalf, augmenter

    side, n = 40, 400
    flat = np.full((n, side, side, 3), 120.0, np.float32)
    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = [layer for layer in augmenter(0, hide_half=0.5).layers
                 if isinstance(layer, HideHalf)][0]
        out = ops.convert_to_numpy(layer(flat, training=True))
        assert out.dtype == np.float32
        np.testing.assert_array_equal(ops.convert_to_numpy(layer(flat, training=False)), flat)
    finally:
        keras.mixed_precision.set_global_policy(before)
    changed = (np.abs(out - flat) > 1).any(axis=(2, 3))  # (face, row)
    upper = changed[:, :20].all(1) & ~changed[:, 20:].any(1)
    lower = changed[:, 24:].all(1) & ~changed[:, :24].any(1)
    untouched = ~changed.any(1)
    assert (upper | lower | untouched).all()
    assert 150 <= (upper | lower).sum() <= 250 and 60 <= upper.sum() <= 140
    assert 60 <= lower.sum() <= 140
    assert [type(x).__name__ for x in augmenter(0).layers].count("HideHalf") == 0


def test_batches_cover_the_data_shuffled_with_soft_targets_only_in_training():
    from streamfer.training.train import make_dataset

    n = 10
    data = Dataset(np.arange(n)[:, None, None, None].repeat(48, 1).repeat(48, 2).repeat(3, 3)
                   .astype(np.uint8), (np.arange(n * 6).reshape(n, 6) % 2).astype(np.float32),
                   [str(i) for i in range(n)], np.full((n, 6), 0.25, np.float32))
    train = make_dataset(data, 4, 32, seed=0, training=True)
    assert len(train) == 2  # full batches only
    x, y = train[0]
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and (y == 0.25).all()
    first = [int(train[i][0][j, 0, 0, 0]) for i in range(2) for j in range(4)]
    train.on_epoch_end()
    second = [int(train[i][0][j, 0, 0, 0]) for i in range(2) for j in range(4)]
    assert first != second and len(set(first)) == 8
    valid = make_dataset(data, 4, 48, seed=0, training=False)
    assert len(valid) == 3
    seen = np.concatenate([valid[i][1] for i in range(3)])
    np.testing.assert_array_equal(seen, data.targets)


def test_epochs_of_any_length_are_whole_and_a_stream_taken_up_later_goes_on_alike():
    """``--steps-per-epoch`` other than a pass: every epoch has its steps (Keras alone cut
    every other epoch short where the data ran out: 3, 2, 3 steps here), the batches run on
    across passes, and a stream started at a later batch serves what the first would have."""
    import keras

    from streamfer.training.train import make_dataset

    n = 20  # 5 batches of 4 a pass
    data = Dataset(np.arange(n)[:, None, None, None].repeat(8, 1).repeat(8, 2).repeat(3, 3)
                   .astype(np.uint8), np.zeros((n, 6), np.float32), [str(i) for i in range(n)])
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(6)])
    model.compile(optimizer="sgd", loss="mse")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(0)

        def on_train_batch_end(self, batch, logs=None):
            seen[-1] += 1

    model.fit(make_dataset(data, 4, 8, 0, True, steps=3), epochs=3, steps_per_epoch=3,
              verbose=0, callbacks=[Record()])
    assert seen == [3, 3, 3]

    def first_pixels(batches, epochs):
        out = []
        for _ in range(epochs):
            out += [batches[i][0][:, 0, 0, 0].tolist() for i in range(len(batches))]
            batches.on_epoch_end()
        return out

    stream = first_pixels(make_dataset(data, 4, 8, 0, True, steps=3), 4)  # 12 batches
    assert sorted(sum(stream[:5], [])) == list(range(n))  # a pass: every face once
    assert sorted(sum(stream[5:10], [])) == list(range(n)) and stream[:5] != stream[5:10]
    assert first_pixels(make_dataset(data, 4, 8, 0, True, steps=2, start=7), 2) == stream[7:11]


def _zeros(count):
    """``count`` batches of 4 zero rows (2 inputs, 1 target), as a Keras PyDataset."""
    import keras

    class Zeros(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()

        def __len__(self):
            return count

        def __getitem__(self, i):
            return np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)

    return Zeros()


def test_a_run_stopped_mid_epoch_trains_the_rest_of_that_epoch_only(tmp_path):
    """Keras restores the epoch alone, so a run stopped after 2 of an epoch's 5 steps trained
    all 5 again (and with them fewer of the run's other batches); it now trains the 3 left,
    on the batches the run had not reached, and ends with the steps it set out to train."""
    import keras

    from streamfer.training.train import _Backup, fit_resumable

    class Killed(RuntimeError):
        pass

    def steps_trained():
        return int(keras.ops.convert_to_numpy(model.optimizer.iterations))

    class Kill(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if steps_trained() == 7:  # epoch 1, its step 2 (after the backup's save)
                raise Killed

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    asked = []

    def batches(start, count):
        asked.append((start, count))
        return _zeros(count)

    def fit(callbacks):
        backup = _Backup(str(tmp_path / "backup"), save_freq=1, delete_checkpoint=False)
        fit_resumable(model, batches, 3, 5, backup, callbacks, verbose=0)

    with pytest.raises(Killed):
        fit([Kill()])
    assert asked == [(0, 5)]
    fit([])
    assert asked[1:] == [(7, 3), (10, 5)]  # the rest of epoch 1 from its step 2, then epoch 2
    assert steps_trained() == 15
    fit([])
    assert asked[3:] == [(15, 5)] and steps_trained() == 15  # nothing left to train


def test_a_stop_asked_for_backs_up_the_step_reached_and_loses_none(tmp_path):
    """A CPU step can take 45 s and the backup is every 100 steps: a run asked to stop
    (Ctrl-C, SIGTERM) ends after the step under way, backed up there, and goes on from it."""
    import threading

    import keras

    from streamfer.training.train import TrainingStopped, _Backup, fit_resumable

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    stop, asked = threading.Event(), []

    def steps_trained():
        return int(keras.ops.convert_to_numpy(model.optimizer.iterations))

    class Ask(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if steps_trained() == 7:  # epoch 1, its step 2, no periodic backup near: asked
                stop.set()  # for here, the stop comes after step 3 (the backup's next check)

    def batches(start, count):
        asked.append((start, count))
        return _zeros(count)

    def fit(callbacks):
        backup = _Backup(str(tmp_path / "backup"), save_freq=100, delete_checkpoint=False)
        backup.stop = stop
        fit_resumable(model, batches, 3, 5, backup, callbacks, verbose=0)

    with pytest.raises(TrainingStopped, match=r"stopped at epoch 2, step 3 of 5: the backup"):
        fit([Ask()])
    meta = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())
    assert (meta["epoch"], meta["done"]) == (1, 3) and steps_trained() == 8
    stop.clear()
    fit([])
    assert asked[1:] == [(8, 2), (10, 5)] and steps_trained() == 15


def test_a_run_stopped_twice_resumes_at_the_epoch_it_reached(tmp_path):
    """Killed mid-way through the first epoch of a resumed run, a run resumes at that epoch
    (Keras alone recorded epoch 0 there)."""
    import keras

    from streamfer.training.train import _Backup

    class Killed(RuntimeError):
        pass

    class Record(keras.callbacks.Callback):
        def __init__(self, kill_at_epoch=None):
            super().__init__()
            self.epochs, self.kill_at_epoch = [], kill_at_epoch

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

        def on_train_batch_end(self, batch, logs=None):
            if self.epochs[-1] == self.kill_at_epoch and batch == 1:
                raise Killed  # after the backup of batch 0 (or 1)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((12, 2), np.float32), np.zeros((12, 1), np.float32)

    def fit(epochs, record):
        backup = _Backup(str(tmp_path / "backup"), save_freq=1, delete_checkpoint=False)
        model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=[backup, record])
        return record.epochs

    assert fit(2, Record()) == [0, 1]
    with pytest.raises(Killed):
        fit(4, Record(kill_at_epoch=2))  # resumed at epoch 2, killed inside it
    assert fit(4, Record()) == [2, 3]


def test_init_from_a_file_that_is_no_model_is_one_line(tmp_path, tiny):
    bad = tmp_path / "notes.json"
    bad.write_text("not json")
    done = streamfer("train", "--data", tiny, "--crop", "none", "--out", tmp_path / "run",
                     "--init", bad)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "is not a streamfer model file" in done.stderr.strip().splitlines()[-1]


def test_the_head_on_cached_features_scores_as_the_whole_model(tiny):
    """The head alone, fed the backbones' cached features (ONNX Runtime, fp32), gives the
    whole Keras model's scores, for both views."""
    from streamfer.model import load_model
    from streamfer.training.evaluate import as_crops
    from streamfer.training.head import (
        backbone_features,
        copy_head,
        head_model,
        mirror_averaged_scores,
    )

    data = load_dataset(tiny, "train", "none")
    model, config = load_model(DEFAULT_MODEL)
    head = head_model(config)
    copy_head(model, head)
    views = [backbone_features(DEFAULT_MODEL, data, mirrored=m) for m in (False, True)]
    crops = as_crops(data.images).astype(np.float32)
    whole = (model.predict(crops, verbose=0) + model.predict(crops[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(mirror_averaged_scores(head, *views, config.backbones), whole,
                               atol=2e-4)
    assert backbone_features(DEFAULT_MODEL, data)["vgg19"].shape == (len(data), 512)  # cached


def test_head_only_training_changes_the_head_alone_and_exports(tmp_path, tiny):
    """``train --head-only --init``: an ordinary run folder whose whole-model weights keep
    the starting backbones; extra faces join the training set; export ships it."""
    from streamfer.model import ModelConfig, build_model, load_model

    run = tmp_path / "head"
    done = streamfer("train", "--data", tiny, "--crop", "none", "--extra-data", tiny,
                     "--out", run, "--init", DEFAULT_MODEL, "--head-only", "--epochs", "2",
                     "--batch-size", "8", "--lr", "1e-2", "--warmup-steps", "0",
                     "--focal-gamma", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epoch 2/2: loss" in done.stdout
    assert len((run / "log.csv").read_text().splitlines()) == 3
    start, _ = load_model(DEFAULT_MODEL)
    config = ModelConfig.from_dict(json.loads((run / "config.json").read_text()))
    config.input_size = config.work_size
    trained = build_model(config)
    trained.load_weights(str(run / "best.weights.h5"))
    for name in ("resnet50", "vgg19"):
        np.testing.assert_array_equal(trained.get_layer(name).get_weights()[0],
                                      start.get_layer(name).get_weights()[0])
    assert not np.allclose(trained.get_layer("emotions").get_weights()[0],
                           start.get_layer("emotions").get_weights()[0])
    model = tmp_path / "m" / "model.json"
    shipped = streamfer("export", "--run", run, "--data", tiny, "--crop", "none", "--out",
                        model, "--no-int8")
    assert shipped.returncode == 0, shipped.stderr[-2000:]


def test_the_branch_loss_on_a_single_backbone_model_is_one_line(tmp_path, tiny):
    """--init of a one-backbone model: the command line cannot tell, train() can."""
    meta = json.loads(DEFAULT_MODEL.read_text())
    single = tmp_path / "vgg19.json"
    single.write_text(json.dumps({**meta, "backbones": ["vgg19"]}))
    done = streamfer("train", "--data", tiny, "--crop", "none", "--out", tmp_path / "r",
                     "--init", single, "--branch-loss", "0.5")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "--branch-loss scores each backbone" in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("args, message", [
    (["--head-only"], "--head-only trains the head of a model: give it with --init"),
    (["--head-only", "--init", DEFAULT_MODEL, "--work-size", "100"], "keeps --init's working"),
    (["--head-only", "--init", DEFAULT_MODEL, "--strong-augment"], "no --strong-augment"),
    (["--head-only", "--init", DEFAULT_MODEL, "--branch-loss", "0.5"], "--branch-loss trains"),
    (["--head-only", "--init", DEFAULT_MODEL, "--hide-half", "0.5"], "no --hide-half"),
    (["--no-augment", "--hide-half", "0.5"], "--hide-half is an augmentation"),
    (["--backbones", "vgg19", "--branch-loss", "0.5"], "--branch-loss trains both"),
])
def test_head_only_without_its_model_is_one_line(tmp_path, tiny, args, message):
    done = streamfer("train", "--data", tiny, "--crop", "none", "--out", tmp_path / "r", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in done.stderr


def test_export_of_a_folder_that_is_no_run_is_one_line(tmp_path):
    """It was "[Errno 2] No such file or directory: '…/config.json'"."""
    pytest.importorskip("tensorflow")
    from click.testing import CliRunner

    from streamfer.cli import main

    result = CliRunner().invoke(main, ["export", "--run", str(tmp_path), "--data",
                                       str(tmp_path), "--out", str(tmp_path / "m.json")])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "is not a training run with weights to export (no config.json nor " \
           "best.weights.h5)" in result.output
    assert not (tmp_path / "m.json").exists()
