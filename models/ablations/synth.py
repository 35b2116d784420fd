"""Posed anger, disgust and fear made from FER+'s neutral faces (model card, "Posed faces
unlike FER's", "Faces made to pose"): FER+ has almost no mild, closed-mouth anger or
wrinkled-nose disgust labelled as such (the cause measured there), so this script makes some.
Each FER+ Train face the crowd called none of the six is meshed (MediaPipe's face mesh, as
``geometry.py``) and its landmarks moved as the Facial Action Coding System describes the
prototype of one emotion (Ekman & Friesen's action units; magnitudes in inter-ocular
distances, set once from those descriptions, never tuned on JAFFE):

- anger: AU4 (brows lowered and drawn together, the inner ends most), AU7 (lower lids
  tightened up), AU23/24 (lips tightened and pressed: the corners in, the lips thinner);
- disgust: AU9 (the nose's wings and the inner brows pulled up and down towards each other),
  AU10 (the upper lip raised), AU15 (the lip corners pulled down);
- fear: AU1+2 (inner and outer brows raised), AU4 (drawn together), AU5 (upper lids raised),
  AU20 (lips stretched sideways).

The face is warped so (a thin-plate spline through the moved landmarks, the face's outline,
eye corners, nose tip and the image's border held still) at 100 px, a random intensity of
0.7–1.3 each. A fourth of the faces is a control, labelled neutral: the same resampling with
no landmark moved, so that a warp's blur alone says nothing. Every face, made or control, is
also moved by a random sub-pixel shift. Written as a folder-per-emotion tree for ``streamfer
train --extra-data OUT --crop none``:

    python models/ablations/synth.py --mesh /tmp/mp/face_landmark.tflite --out /tmp/posed
    streamfer train --data ../shared/data/ferplus --extra-data /tmp/posed --crop none ...

(the mesh file: ``geometry.py --help``). ``--sheet FILE.png`` also draws a few faces before
and after, one row per emotion.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # geometry.py, beside it
from geometry import MEASURES, MESH_INPUT, PAD, face_axes, landmarks, measures  # noqa: E402

from streamfer.training.data import load_dataset  # noqa: E402

SIZE = 100  # written at the product's crop size, as the detector's crops are
EYE_CORNERS = (33, 133, 263, 362)  # outer, inner of the image-left eye; inner, outer: right
NOSE_TIP = 4
OUTLINE = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
           377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
           109)
# Brows, inner end first (image-left brow: the one over eye 33/133), upper and lower contour.
BROW_L = ((107, 55), (66, 65), (105, 52), (63, 53), (70, 46))
BROW_R = ((336, 285), (296, 295), (334, 282), (293, 283), (300, 276))
UPPER_LID = (159, 158, 160, 157, 161, 386, 385, 387, 384, 388)
LOWER_LID = (145, 144, 153, 163, 154, 374, 373, 380, 390, 381)
CORNERS = (61, 78, 291, 308)  # the mouth's outer and inner corners, image-left first
UPPER_LIP = (0, 37, 267, 39, 269, 13, 82, 312)
LOWER_LIP = (17, 84, 314, 181, 405, 14, 87, 317)
LOWER_LIP_SIDES = (91, 321, 146, 375)
NOSE_WINGS = (98, 327, 129, 358, 64, 294)
EMOTION_FOLDERS = ("anger", "disgust", "fear", "neutral")


def moves(points: np.ndarray, emotion: str, strength: float) -> dict[int, np.ndarray]:
    """The landmarks ``emotion`` moves, each to its displacement (pixels), for one face's
    (468, 2) ``points``: the action units above, in the face's own frame (across: from the
    image-left eye to the right one; down: at right angles, towards the mouth), in units of
    the distance between the eyes' centres."""
    mid, across, down, iod = (a[0] for a in face_axes(points[None]))
    unit = iod * strength
    out: dict[int, np.ndarray] = {}

    def add(index, d_across=0.0, d_down=0.0, inward=0.0):
        side = np.sign(np.dot(points[index] - mid, across)) or 1.0
        d = (d_across - side * inward) * across + d_down * down
        out[index] = out.get(index, 0) + d * unit

    taper = (1.0, 0.8, 0.6, 0.45, 0.3)  # inner end of a brow moves most
    if emotion == "anger":
        for brow in (BROW_L, BROW_R):
            for w, pair in zip(taper, brow):
                for i in pair:
                    add(i, d_down=0.08 * w, inward=0.05 * w)  # AU4
        for i in UPPER_LID:
            add(i, d_down=0.02)  # the brow's push on the upper lid
        for i in LOWER_LID:
            add(i, d_down=-0.03)  # AU7
        for i in CORNERS:
            add(i, inward=0.05)  # AU23/24
        for i in UPPER_LIP:
            add(i, d_down=0.02)
        for i in LOWER_LIP:
            add(i, d_down=-0.02)
    elif emotion == "disgust":
        for i in NOSE_WINGS:
            add(i, d_down=-0.05)  # AU9
        for brow in (BROW_L, BROW_R):
            for w, pair in zip(taper, brow):
                for i in pair:
                    add(i, d_down=0.04 * w, inward=0.02 * w)  # AU9's pull on the inner brows
        for i in LOWER_LID:
            add(i, d_down=-0.02)
        for i in UPPER_LIP:
            add(i, d_down=-0.05)  # AU10
        for i in (40, 270):
            add(i, d_down=-0.03)
        for i in CORNERS:
            add(i, d_down=0.04)  # AU15
        for i in LOWER_LIP_SIDES:
            add(i, d_down=0.02)
    elif emotion == "fear":
        for brow in (BROW_L, BROW_R):
            for w, pair in zip(taper, brow):
                for i in pair:
                    add(i, d_down=-(0.08 * w + 0.06 * (1.3 - w)) / 1.3,  # AU1 + AU2
                        inward=0.04 * w)  # AU4
        for i in UPPER_LID:
            add(i, d_down=-0.03)  # AU5
        for i in CORNERS:
            add(i, inward=-0.05, d_down=0.01)  # AU20
    elif emotion != "neutral":
        raise ValueError(emotion)
    return out


def warped(image: np.ndarray, points: np.ndarray, shift: np.ndarray,
           moved: dict[int, np.ndarray]) -> np.ndarray:
    """``image`` (SIZE×SIZE) with each moved landmark carried by its displacement and the
    still points held (thin-plate spline, inverse map), all shifted by ``shift`` px."""
    import cv2
    from scipy.interpolate import RBFInterpolator

    grid = np.mgrid[0:SIZE, 0:SIZE][::-1].reshape(2, -1).T.astype(np.float64)  # (x, y)
    flow = np.zeros((len(grid), 2))
    if moved:
        still = [i for i in OUTLINE + EYE_CORNERS + (NOSE_TIP,) if i not in moved]
        edge = np.linspace(0, SIZE - 1, 6)
        border = np.array([(x, y) for x in edge for y in edge
                           if x in (0, SIZE - 1) or y in (0, SIZE - 1)])
        index = list(moved)
        d = np.array([moved[i] for i in index])
        sources = np.concatenate([points[index] + d, points[still], border])
        values = np.concatenate([-d, np.zeros((len(still) + len(border), 2))])
        flow = RBFInterpolator(sources, values, kernel="thin_plate_spline")(grid)
    where = (grid + flow - shift).astype(np.float32).reshape(SIZE, SIZE, 2)
    return cv2.remap(image, where[..., 0], where[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", required=True, help="face_landmark.tflite (geometry.py --help)")
    parser.add_argument("--out", required=True, type=Path, help="new folder-per-emotion tree")
    parser.add_argument("--ferplus", default="../shared/data/ferplus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sheet", type=Path, help="also draw faces before/after (PNG)")
    args = parser.parse_args()
    import cv2

    if not Path(args.mesh).is_file():
        raise SystemExit(f"error: mesh model not found: {args.mesh} (where it comes from: --help)")
    if args.out.exists():
        raise SystemExit(f"error: {args.out} exists: name a new folder")
    try:
        train = load_dataset(args.ferplus, "train")
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    neutral = np.flatnonzero(train.targets.sum(1) == 0)
    images = train.images[neutral]
    (shapes,) = landmarks(args.mesh, images)
    side = images.shape[1]
    p = int(round(PAD * side))
    points = (shapes[:, :, :2] * (side + 2 * p) / MESH_INPUT - p) * SIZE / side
    iod = face_axes(points)[3]
    sane = (iod > 0.25 * SIZE) & (iod < 0.6 * SIZE)  # a mesh that found the face
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(np.flatnonzero(sane))
    tmp = args.out.with_name(args.out.name + ".partial")  # renamed to --out when whole
    shutil.rmtree(tmp, ignore_errors=True)  # an interrupted run's leftovers
    counts = dict.fromkeys(EMOTION_FOLDERS, 0)
    examples: dict[str, list] = {e: [] for e in EMOTION_FOLDERS}
    change: dict[str, list] = {e: [] for e in EMOTION_FOLDERS}  # the measures' change
    for k, i in enumerate(order):
        emotion = EMOTION_FOLDERS[k % len(EMOTION_FOLDERS)]
        big = cv2.resize(images[i], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        moved = moves(points[i], emotion, rng.uniform(0.7, 1.3))
        face = warped(big, points[i], rng.uniform(-0.5, 0.5, 2), moved)
        posed = points[i].copy()
        for j, d in moved.items():
            posed[j] += d
        change[emotion].append(measures(posed[None])[0] - measures(points[i][None])[0])
        folder = tmp / emotion
        folder.mkdir(parents=True, exist_ok=True)
        name = Path(train.names[neutral[i]]).stem
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        counts[emotion] += 1
        if len(examples[emotion]) < 8:
            examples[emotion].append(np.concatenate([big, face], 0))
    tmp.rename(args.out)
    if args.sheet:
        rows = [np.concatenate(examples[e], 1) for e in EMOTION_FOLDERS]
        sheet = cv2.resize(np.concatenate(rows, 0), None, fx=1.5, fy=1.5)
        cv2.imwrite(str(args.sheet), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(json.dumps({"neutral_faces": int(len(neutral)), "meshed": int(sane.sum()),
                      "written": counts, "out": str(args.out),
                      "measures_changed": {e: dict(zip(MEASURES, np.round(np.mean(
                          change[e], 0), 3).tolist())) for e in EMOTION_FOLDERS[:3]}}))


if __name__ == "__main__":
    main()
