"""The shape probe (models/ablations/geometry.py): faces that differ only by where they sit,
how large and how tilted they are align onto one shape; faces that differ in expression
do not."""

import importlib.util

import numpy as np
from conftest import ROOT

spec = importlib.util.spec_from_file_location("geometry", ROOT / "models/ablations/geometry.py")
geometry = importlib.util.module_from_spec(spec)
spec.loader.exec_module(geometry)


def _moved(shape: np.ndarray, angle: float, scale: float, shift) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    xy = shape[:, :2] @ np.array([[c, -s], [s, c]]).T * scale + np.asarray(shift)
    return np.concatenate([xy, shape[:, 2:] * scale], 1)


def test_a_face_moved_scaled_and_tilted_aligns_onto_itself_and_another_face_does_not():
    rng = np.random.default_rng(0)
    face = rng.normal(size=(468, 3)) * [40, 50, 10] + [96, 96, 0]
    other = face + rng.normal(size=face.shape) * 3  # the same face, its features moved
    mirrored = face * [-1, 1, 1]  # left and right swapped: another face, not a turned one
    shapes = np.stack([face, _moved(face, 0.4, 1.7, (12, -30)), _moved(face, -0.3, 0.6, (5, 5)),
                       other, mirrored])
    x = geometry.aligned(shapes.astype(np.float32))
    assert x.shape == (5, 468 * 3)
    assert np.abs(x[1] - x[0]).max() < 1e-4 and np.abs(x[2] - x[0]).max() < 1e-4
    assert np.abs(x[3] - x[0]).max() > 1e-3 and np.abs(x[4] - x[0]).max() > 1e-3
