"""The face's shape instead of its look (model card, "Posed faces unlike FER's", "Not the
representation either"): MediaPipe's face mesh (468 landmarks) of each FER+ Train/Valid face
and each JAFFE face as the product crops it, similarity-aligned (Procrustes on x, y; z scaled
alike); a linear read-out per emotion fitted on FER+ Train (logistic regression on standardised
coordinates, C = 0.01), thresholds calibrated on FER+ Valid; FER+ Valid's metrics, JAFFE's top-1
per pose and what each pose reads; the crowd's mean vote shares on the 20 FER+ Train faces
nearest each JAFFE face by shape (cosine of the standardised coordinates); and what the poses
are, in a few action-unit-like measures (``measures``: the brows' height, the lids' and the
mouth's opening, …): each JAFFE pose minus the same woman's neutral poses, beside FER+ Train's
faces of each emotion minus its neutral faces (model card, "What the poses are").

The mesh model is not in ../shared: it is ``mediapipe/modules/face_landmark/face_landmark.tflite``
of the mediapipe 0.10.21 wheel on PyPI (sha256 1055cb9d…c814), where the detector files of
../shared/weights come from:

    pip download mediapipe==0.10.21 --no-deps -d /tmp/mp
    unzip -j /tmp/mp/mediapipe-0.10.21-*.whl \
        mediapipe/modules/face_landmark/face_landmark.tflite -d /tmp/mp
    python models/ablations/geometry.py --mesh /tmp/mp/face_landmark.tflite
"""

import argparse
import json
from pathlib import Path

import numpy as np

from streamfer.labels import EMOTIONS
from streamfer.training.data import load_dataset
from streamfer.training.evaluate import calibrate_thresholds, evaluate
from streamfer.training.head import nearest_votes

MESH_INPUT = 192
PAD = 0.25  # of the crop's side, each way: the face about 2/3 of the mesh's input, as it expects


def landmarks(mesh: str, *image_sets: np.ndarray) -> list[np.ndarray]:
    """Per set of face crops (RGB uint8), the (N, 468, 3) landmarks of each, in the mesh
    input's pixels."""
    import cv2
    import tensorflow as tf

    net = tf.lite.Interpreter(model_path=mesh, num_threads=2)
    net.allocate_tensors()
    (inp,), (points, _face) = net.get_input_details(), net.get_output_details()
    sets = []
    for images in image_sets:
        out = np.zeros((len(images), 468, 3), np.float32)
        for i, image in enumerate(images):
            p = int(round(PAD * image.shape[0]))
            x = cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_REPLICATE)
            x = cv2.resize(x, (MESH_INPUT, MESH_INPUT), interpolation=cv2.INTER_LINEAR)
            net.set_tensor(inp["index"], (x.astype(np.float32) / 255.0)[None])
            net.invoke()
            out[i] = net.get_tensor(points["index"]).reshape(468, 3)
        sets.append(out)
    return sets


def aligned(shapes: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Each shape's x, y turned, scaled and moved onto the mean shape (generalised
    Procrustes; a turn, never a mirror image), z by the same scale; flattened (N, 1404)."""
    xy = shapes[:, :, :2] - shapes[:, :, :2].mean(1, keepdims=True)
    size = np.linalg.norm(xy, axis=(1, 2), keepdims=True)
    xy = xy / size
    ref = xy.mean(0)
    for _ in range(rounds):
        u, _s, vt = np.linalg.svd(np.einsum("nki,kj->nij", xy, ref))
        u[:, :, -1] *= np.sign(np.linalg.det(u @ vt))[:, None]  # turn, never mirror
        xy_r = np.einsum("nki,nij->nkj", xy, u @ vt)
        ref = xy_r.mean(0)
        ref /= np.linalg.norm(ref)
    z = (shapes[:, :, 2:] - shapes[:, :, 2:].mean(1, keepdims=True)) / size
    return np.concatenate([xy_r, z], 2).reshape(len(shapes), -1)


MEASURES = ("brow_height", "inner_brow_gap", "eye_opening", "mouth_width", "corner_lift",
            "mouth_opening", "lip_to_nose")


def face_axes(points: np.ndarray):
    """The frame of each face's (N, 468, ≥2) landmarks: the eyes' midpoint (N, 2), ``across``
    (unit, from the image-left eye to the right one), ``down`` (unit, at right angles, towards
    the mouth) and the inter-ocular distance (N,), in the landmarks' own dtype."""
    p = points[:, :, :2]
    left, right = p[:, [33, 133]].mean(1), p[:, [263, 362]].mean(1)
    iod = np.linalg.norm(right - left, axis=1)
    across = (right - left) / iod[:, None]
    down = np.stack([-across[:, 1], across[:, 0]], 1)
    eyes = (left + right) / 2
    down *= np.sign(np.einsum("ni,ni->n", p[:, [13, 14]].mean(1) - eyes, down))[:, None]
    return eyes, across, down, iod


def measures(points: np.ndarray) -> np.ndarray:
    """A few action-unit-like measures of each face's (N, 468, ≥2) landmarks, in the face's
    own frame (across: eye to eye; up: away from the mouth), in inter-ocular distances
    (MEASURES' order): the brows' mean height over the eye line (AU1/2 raise it, AU4 lowers
    it), the gap between the brows' inner ends (AU4 narrows it), the lids' mean opening (AU5
    opens, AU7 narrows), the mouth's width (AU12/20 widen, AU23 narrows), the lip corners'
    lift over the lips' midpoint (AU12 lifts, AU15 lowers), the lips' opening (AU25/26) and the
    upper lip's distance below the nose tip (AU10 shortens it)."""
    p = np.asarray(points, np.float64)[:, :, :2]
    eyes, _across, down, iod = face_axes(p)
    up, mouth = -down, p[:, [13, 14]].mean(1)

    def along(a, b, axis):  # b − a along an (N, 2) axis, in IODs
        return np.einsum("ni,ni->n", b - a, axis) / iod

    brows = [107, 66, 105, 63, 70, 336, 296, 334, 293, 300]
    return np.stack([
        np.mean([along(eyes, p[:, i], up) for i in brows], 0),
        np.linalg.norm(p[:, 107] - p[:, 336], axis=1) / iod,
        np.mean([along(p[:, b], p[:, a], up) for a, b in ((159, 145), (386, 374))], 0),
        np.linalg.norm(p[:, 61] - p[:, 291], axis=1) / iod,
        np.mean([along(mouth, p[:, i], up) for i in (61, 291)], 0),
        np.linalg.norm(p[:, 13] - p[:, 14], axis=1) / iod,
        along(p[:, 0], p[:, 4], up),
    ], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", required=True, help="face_landmark.tflite (see above)")
    parser.add_argument("--ferplus", default="../shared/data/ferplus")
    parser.add_argument("--jaffe", default="../shared/data/jaffe")
    args = parser.parse_args()
    if not Path(args.mesh).is_file():
        raise SystemExit(f"error: mesh model not found: {args.mesh} (where it comes from: --help)")
    try:
        train, valid = load_dataset(args.ferplus, "train"), load_dataset(args.ferplus, "valid")
        jaffe = load_dataset(args.jaffe, "test")
        shapes = landmarks(args.mesh, train.images, valid.images, jaffe.images)
    except (OSError, ValueError) as exc:  # a missing folder or file, a file that is none
        raise SystemExit(f"error: {exc}") from None
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = aligned(np.concatenate(shapes))
    n_t, n_v = len(train), len(valid)
    scale = StandardScaler().fit(x[:n_t])
    x_t, x_v, x_j = (scale.transform(part) for part in np.split(x, [n_t, n_t + n_v]))
    fits = [LogisticRegression(C=0.01, max_iter=2000).fit(x_t, train.targets[:, j])
            for j in range(len(EMOTIONS))]
    s_v, s_j = (np.stack([f.predict_proba(part)[:, 1] for f in fits], 1) for part in (x_v, x_j))
    cuts = calibrate_thresholds(valid.targets, s_v)
    on_valid = evaluate(valid.targets, s_v, cuts, majority=valid.majority)
    on_jaffe = evaluate(jaffe.targets, s_j, cuts, majority=jaffe.majority)

    def unit(a):
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    rest = 1 - train.soft.sum(1, keepdims=True)  # neutral, contempt: none of the six
    votes = nearest_votes(unit(x_j), unit(x_t), np.concatenate([train.soft, rest], 1))
    poses = {**{e: j for j, e in enumerate(EMOTIONS)}, "neutral": -1}
    top = s_j.argmax(1)
    # Each JAFFE pose against the same woman's neutral poses; FER+ Train's faces of each
    # strict-majority emotion against its neutral ones (no emotion present).
    m_t, m_j = measures(shapes[0]), measures(shapes[2])
    woman = np.array([Path(n).name.split(".")[0] for n in jaffe.names])
    neutral_j = jaffe.targets.sum(1) == 0
    own = {w: m_j[(woman == w) & neutral_j].mean(0) for w in np.unique(woman)}
    m_j = m_j - np.stack([own[w] for w in woman])
    neutral_t = m_t[train.targets.sum(1) == 0].mean(0)

    def table(m, group):
        return {e: dict(zip(MEASURES, np.round(m[group == j].mean(0), 3).tolist()))
                for e, j in poses.items() if j >= 0}
    valid_at = {k: {m: round(v[m], 3) for m in ("hamming_loss", "samples_f1", "macro_f1", "mAP")}
                for k, v in on_valid["at"].items() if k != "0.5"}
    print(json.dumps({
        "valid": {**valid_at, "top1": round(on_valid["top1"], 3),
                  "disgust_cross_fitted": {m: round(v, 3) for m, v in on_valid["at"][
                      "cross-fitted"]["per_label"]["Disgust"].items() if m != "support"}},
        "jaffe": {"top1": round(on_jaffe["top1"], 3),
                  "per_pose": {e: round(v["top1"], 2)
                               for e, v in on_jaffe["top1_per_label"].items()},
                  "neutral_labelled": round(on_jaffe["negatives_labelled"], 2),
                  "reads": {e: {EMOTIONS[k]: int((top[jaffe.majority == j] == k).sum())
                                for k in range(len(EMOTIONS))}
                            for e, j in poses.items() if j >= 0}},
        "action_units": {
            "jaffe, each pose minus the same woman's neutral": table(m_j, jaffe.majority),
            "ferplus_train, each emotion minus the neutral faces": table(
                m_t - neutral_t, train.majority),
            "measures": "inter-ocular distances; " + ", ".join(MEASURES)},
        "nearest_20_votes": {e: dict(zip(EMOTIONS + ("rest",), np.round(
            votes[jaffe.majority == j].mean(0, dtype=float), 2).tolist()))
            for e, j in poses.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
