"""The ONNX graph written from the Keras layers computes what Keras computes, for every
architecture build_model makes; what it cannot write it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from streamfer.model import ModelConfig, build_model
from streamfer.runtimes.onnx_graph import graph_of, with_weights


def _faces(face_bgr, n: int = 8) -> np.ndarray:
    """n real 100×100 colour crops: the astronaut's face, shifted and mirrored."""
    import cv2

    rgb = cv2.cvtColor(cv2.resize(face_bgr, (120, 120)), cv2.COLOR_BGR2RGB)
    crops = [np.roll(rgb, 3 * i, axis=1)[10:110, 10:110] for i in range(n)]
    return np.stack([c[:, ::-1] if i % 2 else c for i, c in enumerate(crops)])


def _randomised(model, seed: int = 0):
    """Batch-norm statistics and biases made non-trivial, so that each is tested."""
    rng = np.random.default_rng(seed)
    weights = []
    for variable, value in zip(model.weights, model.get_weights()):
        if "moving_variance" in variable.path:
            value = rng.uniform(0.5, 2.0, value.shape)
        elif "moving_mean" in variable.path or "beta" in variable.path:
            value = rng.normal(0, 0.1, value.shape)
        weights.append(value.astype(np.float32))
    model.set_weights(weights)
    return model


@pytest.mark.parametrize("config", [
    ModelConfig(vgg="plain"),                         # the shipped default's architecture
    ModelConfig(vgg="bn"),                            # new models
    ModelConfig(backbones=("resnet50",), work_size=64),
    ModelConfig(backbones=("vgg19",), vgg="bn", work_size=100),
], ids=["plain-48", "bn-48", "resnet-64", "vggbn-100"])
def test_onnx_graph_scores_as_keras(config, face_bgr):
    import onnxruntime as ort

    model = _randomised(build_model(config, trainable_backbones=False))
    graph = graph_of(model, "test")
    assert all(not init.raw_data for init in graph.graph.initializer if init.name.startswith("w"))
    filled = with_weights(graph, model.get_weights())
    session = ort.InferenceSession(filled.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    crops = _faces(face_bgr).astype(np.float32)
    expected = np.asarray(model.predict_on_batch(crops))
    assert expected.std() > 1e-3  # scores that differ between faces: a real comparison
    for batch in (crops, crops[:1]):
        got = session.run(None, {"face_rgb": batch})[0]
        np.testing.assert_allclose(got, expected[:len(batch)], atol=2e-5)


def test_weights_of_another_architecture_are_refused():
    small = build_model(ModelConfig(backbones=("resnet50",)), trainable_backbones=False)
    other = build_model(ModelConfig(backbones=("vgg19",), vgg="bn"), trainable_backbones=False)
    with pytest.raises((ValueError, IndexError)):
        with_weights(graph_of(small), other.get_weights())


def test_a_layer_it_cannot_write_is_refused():
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.LayerNormalization()(inputs))
    with pytest.raises(NotImplementedError, match="LayerNormalization"):
        graph_of(model)
