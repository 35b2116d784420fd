"""The posed faces made from FER+'s neutral ones (models/ablations/synth.py): each emotion
moves the landmarks the way its action units say, in the face's own frame, whichever way the
face is turned; the warp carries the face's content with its landmarks and holds the rest."""

import importlib.util

import numpy as np
import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("synth", ROOT / "models/ablations/synth.py")
synth = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synth)


def _face(angle: float = 0.0) -> np.ndarray:
    """468 points with the eyes, brows and mouth where a frontal 100-px crop has them (the
    rest at the centre), turned by ``angle`` about the centre."""
    points = np.full((468, 2), 50.0)
    for i in (33, 133):
        points[i] = (30 + (i == 133) * 12, 40)
    for i in (263, 362):
        points[i] = (70 - (i == 362) * 12, 40)
    for brows, sign in ((synth.BROW_L, -1), (synth.BROW_R, 1)):
        for k, pair in enumerate(brows):
            for i in pair:
                points[i] = (50 + sign * (6 + 5 * k), 30)
    for i in synth.UPPER_LID + synth.LOWER_LID:
        points[i] = (36 if i < 200 else 64, 38 if i in synth.UPPER_LID else 42)
    for i, x in zip(synth.CORNERS, (38, 42, 62, 58)):
        points[i] = (x, 72)
    points[13] = (50, 71)
    points += np.random.default_rng(1).uniform(-0.4, 0.4, points.shape)  # no two alike
    c, s = np.cos(angle), np.sin(angle)
    return (points - 50) @ np.array([[c, -s], [s, c]]).T + 50


@pytest.mark.parametrize("angle", [0.0, 0.5, np.pi])  # upright, tilted, upside down
def test_anger_lowers_the_brows_and_draws_them_together_fear_raises_them(angle):
    points = _face(angle)
    c, s = np.cos(angle), np.sin(angle)
    across, down = np.array([c, s]), np.array([-s, c])
    for emotion, lowered in (("anger", True), ("fear", False)):
        moved = synth.moves(points, emotion, 1.0)
        for brow, inward in ((synth.BROW_L, across), (synth.BROW_R, -across)):
            inner, outer = brow[0][0], brow[-1][0]
            d = moved[inner]
            assert (np.dot(d, down) > 0) == lowered, emotion
            assert np.dot(d, inward) > 0, emotion  # towards the other brow
            assert np.linalg.norm(d) > np.linalg.norm(moved[outer]) * (1.0 if lowered else 0.9)
    anger = synth.moves(points, "anger", 1.0)
    assert np.dot(anger[61], across) > 0 and np.dot(anger[291], across) < 0  # lips pressed
    assert synth.moves(points, "neutral", 1.0) == {}


def test_the_warp_carries_a_landmark_s_content_and_holds_the_face_s_outline():
    points = _face()
    rng = np.random.default_rng(0)
    points[list(synth.OUTLINE)] = rng.uniform(5, 95, (len(synth.OUTLINE), 2)) * [1, 0.15] + [0, 82]
    image = np.zeros((synth.SIZE, synth.SIZE, 3), np.uint8)
    brow = synth.BROW_L[0][0]
    x, y = points[brow].round().astype(int)
    image[y - 1:y + 2, x - 1:x + 2] = 255  # a bright spot on the inner brow
    image[88:92, 10:14] = 200  # and one on the chin's outline, held still
    moved = synth.moves(points, "anger", 1.0)
    out = synth.warped(image, points, np.zeros(2), moved)
    ys, xs = np.nonzero(out[:60, :, 0] > 60)
    weight = out[:60][ys, xs, 0].astype(float)
    centre = np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()
    assert np.linalg.norm(centre - (points[brow] + moved[brow])) < 0.5
    assert np.linalg.norm(moved[brow]) > 2  # it did move, more than the tolerance
    assert out[88:92, 10:14, 0].mean() > 150  # the outline stayed
    still = synth.warped(image, points, np.zeros(2), {})
    assert np.array_equal(still, image)  # the control: the same resampling, nothing moved


spec_g = importlib.util.spec_from_file_location("geometry", ROOT / "models/ablations/geometry.py")
geometry = importlib.util.module_from_spec(spec_g)
spec_g.loader.exec_module(geometry)


@pytest.mark.parametrize("angle", [0.0, 0.7, np.pi])
def test_the_action_unit_measures_see_what_each_made_pose_moved_however_the_face_is_turned(angle):
    face = _face(angle)
    scaled = (face - 50) * 1.8 + 7  # the same face, larger and elsewhere: the same measures
    names = list(geometry.MEASURES)
    before = geometry.measures(np.stack([face, scaled]))
    assert np.allclose(before[0], before[1])

    def change(emotion):
        posed = face.copy()
        for i, d in synth.moves(face, emotion, 1.0).items():
            posed[i] += d
        return dict(zip(names, (geometry.measures(posed[None]) - before[:1])[0]))

    anger, fear, disgust = change("anger"), change("fear"), change("disgust")
    assert anger["brow_height"] < -0.03 and anger["inner_brow_gap"] < -0.05
    assert anger["mouth_width"] < -0.05 and anger["eye_opening"] < 0
    assert fear["brow_height"] > 0.03 and fear["mouth_width"] > 0.05 and fear["eye_opening"] > 0
    assert disgust["corner_lift"] < -0.03 and disgust["lip_to_nose"] < -0.03
