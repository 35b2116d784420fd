"""Faces far and many (issue 26): wide, high-resolution shots built from the real faces of
../shared/media pasted, moving, over the real faceless frames of its HEVC clip; recall per
face size, stable ids, a face that walks in, false positives on the faceless clips."""

from collections import Counter

import numpy as np
import pytest
from test_cli import read_csv, run_cli

from streamfer.detect import TILE_PERIOD, FaceDetector, tile_grid
from streamfer.frame import Frame
from streamfer.tools.footage import (
    SIDES,
    Crowd,
    matches,
    media_backgrounds,
    media_patches,
    recall,
)

pytestmark = pytest.mark.usefixtures("detector_ready")
BINS = {"24-32": (24, 32), "32+": (32, 10_000)}


@pytest.fixture(scope="module")
def patches(media):
    """Every face of the photos, boxed by the product's own detector (whole image)."""
    out = media_patches(media)
    assert len(out) == 10
    return out


@pytest.fixture(scope="module")
def backgrounds(media):
    return media_backgrounds(media)


def test_tiles_find_small_faces_in_1080p_and_ids_stay(tmp_path, patches, backgrounds):
    """15 faces of 24-200 px, 1920×1080, 45 frames, default settings, end to end: ≥ 90 % of
    the face-frames of ≥ 32 px found, ≥ 70 % of 24-32 px; each face keeps one id (today's
    whole-frame detection finds none below ~100 px: the same run with --tiles off fails)."""
    crowd = Crowd(patches, backgrounds, (1920, 1080), list(SIDES), frames=45, seed=1)
    truth = crowd.write(tmp_path / "crowd.mp4")
    for tiles, ok in (("auto", True), ("off", False)):
        table = tmp_path / f"{tiles}.csv"
        done = run_cli("-s", tmp_path / "crowd.mp4", "--csv", table, "--tiles", tiles, "-q")
        assert done.returncode == 0, done.stderr
        rows = read_csv(table)
        found = [[] for _ in truth]
        ids = [[] for _ in truth]
        for r in rows:
            found[int(r["frame"])].append(tuple(int(r[k]) for k in "xywh"))
            ids[int(r["frame"])].append(r["face_id"])
        got = recall(found, truth, BINS)
        if not ok:
            assert got["32+"] < 0.5 and got["24-32"] < 0.1, got
            continue
        assert got["32+"] >= 0.9 and got["24-32"] >= 0.7, got
        owners: dict[int, Counter] = {}
        for boxes, frame_found, frame_ids in zip(truth, found, ids):
            for k, m in enumerate(matches(boxes, frame_found)):
                if m is not None:
                    owners.setdefault(k, Counter())[frame_ids[m]] += 1
        for k, seen in owners.items():  # one id a face, most of the time
            assert seen.most_common(1)[0][1] >= 0.9 * sum(seen.values()), (SIDES[k], seen)
        main_ids = [seen.most_common(1)[0][0] for seen in owners.values()]
        assert len(set(main_ids)) == len(main_ids)  # no id shared by two faces


def test_tiles_find_small_faces_in_4k(patches, backgrounds):
    crowd = Crowd(patches, backgrounds, (3840, 2160), list(SIDES[::2]), frames=16, seed=2)
    found, truth = [], []
    with FaceDetector() as detector:
        for i in range(crowd.frames):
            image, boxes = crowd.frame(i)
            found.append([f.box for f in detector.detect(Frame("4k", i, i / 30, image)).faces])
            truth.append(boxes)
    got = recall(found, truth, BINS)
    assert got["32+"] >= 0.9 and got["24-32"] >= 0.7, got


def test_a_face_walking_in_is_found_within_one_sweep(patches, backgrounds):
    """A 28-px face appears in frame 5 of a 1080p shot: the tile sweep finds it within
    TILE_PERIOD analysed frames (the faces already there are followed meanwhile)."""
    kw = dict(frames=30, seed=3)
    before = Crowd(patches[:2], backgrounds, (1920, 1080), [40, 60], **kw)
    after = Crowd(patches[:3], backgrounds, (1920, 1080), [40, 60, 28], **kw)
    first = None
    with FaceDetector() as detector:
        for i in range(after.frames):
            image, boxes = (before if i < 5 else after).frame(i)
            faces = detector.detect(Frame("late", i, i / 30, image)).faces
            if i >= 5 and matches([boxes[2]], [f.box for f in faces])[0] is not None:
                first = i
                break
    assert first is not None and first - 5 <= TILE_PERIOD, first


def test_tile_grid_holds_every_face_the_whole_frame_misses():
    """Every face from 24 px up to the whole frame's reach, anywhere, lies whole in a tile
    where it comes out at ≥ 12 px for the full-range model (and at ≤ half the tile)."""
    rng = np.random.default_rng(0)
    for width, height in ((1920, 1080), (3840, 2160), (1280, 720), (640, 360)):
        grid = tile_grid(width, height)
        reach = 12 * max(width, height) / 192
        for _ in range(300):
            side = rng.uniform(24, reach)
            x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
            assert any(tx <= x and ty <= y and x + side <= tx + s and y + side <= ty + s
                       and side * 192 / s >= 12 and side <= s / 2 + 1 for tx, ty, s in grid), \
                (width, height, side, x, y)
    assert tile_grid(1920, 1080, min_face=96) != tile_grid(1920, 1080)  # --min-face: fewer
    assert len(tile_grid(1920, 1080, min_face=96)) < len(tile_grid(1920, 1080))


def test_faceless_clips_get_no_more_false_faces(tmp_path, media):
    """Default settings (tiles on): the cartoon ≤ 5 rows, the HEVC clip's faceless half at
    most one id (today's), the stage clip at least today's 409 rows, the photo 5 of 5."""
    counts = {}
    for name in ("pyfeat_no_face_cartoon.mp4", "pyfeat_face_noface_hevc.mov",
                 "face_recognition_short_hamilton_clip.mp4", "pyfeat_multi_face_5people.jpg"):
        table = tmp_path / (name + ".csv")
        done = run_cli("-s", media / name, "--csv", table, "-q")
        assert done.returncode == 0, done.stderr
        counts[name] = read_csv(table)
    assert len(counts["pyfeat_no_face_cartoon.mp4"]) <= 5
    assert len({r["face_id"] for r in counts["pyfeat_face_noface_hevc.mov"]
                if int(r["frame"]) >= 85}) <= 1
    assert len(counts["face_recognition_short_hamilton_clip.mp4"]) >= 409
    assert len(counts["pyfeat_multi_face_5people.jpg"]) == 5


def test_faces_are_followed_with_a_min_face(patches, backgrounds):
    """With --min-face 40, faces of 60-90 px stay found frame after frame: the regions'
    detections are held to --min-face in frame pixels, not in the mosaic's (where a face is
    ~26 px; before, every followed face was dropped there)."""
    crowd = Crowd(patches, backgrounds, (1920, 1080), [60, 70, 80, 90], frames=12, seed=4)
    found, truth = [], []
    with FaceDetector(min_face=40) as detector:
        for i in range(crowd.frames):
            image, boxes = crowd.frame(i)
            found.append([f.box for f in detector.detect(Frame("m", i, i / 30, image)).faces])
            truth.append(boxes)
    assert recall(found, truth, BINS)["32+"] >= 0.9
