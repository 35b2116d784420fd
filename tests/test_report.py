"""The analyst's report: numbers that are the CSV's own, a page that is one safe file, bad
input in one line, and the page as a real browser shows it."""

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import compose, joined, write_video

from streamfer.cli import main
from streamfer.report import (
    DOMINANT_MIN_SHARE,
    MAX_GAP_FRAMES,
    read_csv,
    summarize,
    timeline,
    write_folder_report,
    write_report,
)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_against_csv(summary, table):
    """Listed faces plus folded ids are the CSV's ids; every share is the CSV's own."""
    rows = [r for r in _rows(table) if r["face_id"]]
    ids = {r["face_id"] for r in rows}
    assert len(summary["faces"]) + summary["folded"] == len(ids)
    for face in summary["faces"]:
        mine = [r for r in rows if r["face_id"] == str(face["id"])]
        assert face["rows"] == len(mine)
        for label, share in face["shares"].items():
            shown = sum(label in r["labels"].split(";") for r in mine)
            assert share == pytest.approx(shown / len(mine))
        assert face["first_s"] == pytest.approx(min(float(r["time_s"]) for r in mine))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, media, detector_ready):
    """The stage clip and the sad → happy clip through the product, with their CSVs."""
    folder = tmp_path_factory.mktemp("reports")
    done = {}
    for name in ("face_recognition_short_hamilton_clip.mp4",
                 "pyfeat_WolfgangLanger_Pexels_sad_to_happy.mp4"):
        table = folder / f"{name}.csv"
        result = CliRunner().invoke(main, ["run", "-s", str(media / name), "--csv", str(table),
                                           "-q", "--report", str(folder / f"{name}.html")])
        assert result.exit_code == 0, result.output
        done[name] = (table, folder / f"{name}.html")
    return done


def test_the_summary_holds_every_face_and_the_csvs_own_shares(runs, tmp_path, media):
    for name, (table, page) in runs.items():
        summary = write_report(table, tmp_path / "r.html", tmp_path / "r.json",
                               video=media / name)
        assert json.loads((tmp_path / "r.json").read_text()) == json.loads(
            json.dumps(summary))
        _check_against_csv(summary, table)
        html = page.read_text()
        assert html.count('class="timeline"') == len(summary["faces"])
        assert html.count('class="thumb"') == len(summary["faces"])  # the video was at hand


def test_a_faces_chart_breaks_where_the_face_was_away_and_is_not_drawn_across(runs):
    """In the stage clip the audience's faces come and go while the tracker keeps their ids
    (through half a second away): their lines were drawn straight across the time they were
    away, as if scores had been measured there, and a label shown before and after a gap
    was one band over it (a face's Happiness from 7.1 s to 8.0 s, the face away from 7.24 s
    to 7.77 s). Now a chart breaks where its face was away for more than MAX_GAP_FRAMES
    analysed frames."""
    run = read_csv(runs["face_recognition_short_hamilton_clip.mp4"][0])
    longest = (MAX_GAP_FRAMES + 1.5) * run.interval
    gaps = 0
    for rows in run.faces.values():
        t = np.asarray(rows.times)
        away = [(a, b) for a, b in zip(t, t[1:]) if b - a > longest]
        x, y, spans = timeline(rows, run.labels, run.interval)
        assert np.isnan(x).sum() == len(away) and np.isnan(y).all(1).sum() == len(away)
        drawn = x[~np.isnan(x)]
        assert set(drawn) <= set(t) and drawn[0] == t[0]
        for a, b in away:
            segments = zip(x, x[1:])  # a line joins two points next to each other
            assert not [(p, q) for p, q in segments if p <= a and q >= b], (a, b)
            for label, bands in spans.items():
                assert not [(s, w) for s, w in bands if s <= a and s + w >= b], (label, a, b)
        gaps += len(away)
    assert gaps >= 2  # the clip has faces that went away and came back


def test_the_sad_to_happy_face_reads_sadness_first_and_happiness_last(runs):
    table, _ = runs["pyfeat_WolfgangLanger_Pexels_sad_to_happy.mp4"]
    run = read_csv(table)
    face = summarize(run)["faces"][0]  # the longest on screen: the woman
    rows = run.faces[face["id"]]
    smooth, labels = np.asarray(rows.smooth), run.labels
    quarter = len(smooth) // 4
    assert labels[smooth[:quarter].mean(0).argmax()] == "Sadness"
    assert labels[smooth[-quarter:].mean(0).argmax()] == "Happiness"
    assert face["shares"]["Sadness"] > 0.2 and face["shares"]["Happiness"] > 0.3


def test_a_faces_time_on_screen_is_the_time_its_frames_cover_at_a_varying_rate(
        tmp_path, face_bgr, detector_ready):
    """A run's analysed frames at a varying rate (a live session whose analysis falls behind
    drops frames; a phone records at a variable rate): two steps of 1/30 s, then one of 3/30
    s. A face's time on screen was its rows times the median step (1/30 s): 1.5 s for a
    face on screen for 2.43 s. Now each row counts the step to the next analysed frame."""
    from streamfer.sinks import VideoSink

    steps = [1 / 30, 1 / 30, 3 / 30] * 15
    times = np.concatenate([[0.0], np.cumsum(steps)[:-1]])  # 45 frames, the last at 2.4 s
    clip = tmp_path / "vfr.mp4"
    with VideoSink(clip, 30, (480, 360)) as video:
        for i, t in enumerate(times):
            video.write(compose(face_bgr, (480, 360), 40 + 4 * i, 40, scale=0.8), float(t))
    table = tmp_path / "frames.csv"
    result = CliRunner().invoke(main, ["run", "-s", str(clip), "--csv", str(table), "-q"])
    assert result.exit_code == 0, result.output
    face, = summarize(read_csv(table))["faces"]
    assert face["rows"] == 45
    assert face["seconds"] == pytest.approx(times[-1] + 1 / 30, abs=0.01)  # the last: a step


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, face_bgr, detector_ready):
    """A 2-second clip of one real face, named like a script, and its CSV."""
    folder = tmp_path_factory.mktemp("small")
    clip = folder / "<script>alert(1)<script>.mp4"  # (a file name holds no '/')
    frames = [compose(face_bgr, (480, 360), 40 + 4 * i, 40, scale=0.8) for i in range(60)]
    write_video(clip, frames)
    table = folder / "frames.csv"
    result = CliRunner().invoke(main, ["run", "-s", str(clip), "--csv", str(table), "-q"])
    assert result.exit_code == 0, result.output
    return clip, table


def test_the_page_escapes_what_comes_from_the_input_and_loads_nothing(small_run, tmp_path):
    clip, table = small_run
    page = tmp_path / "report.html"
    summary = write_report(table, page, video=clip)
    html = page.read_text()
    assert len(summary["faces"]) == 1
    assert "<script" not in html.lower() and "&lt;script&gt;alert(1)&lt;script&gt;" in html
    assert not re.search(r"(src|href)=[\"'](?!data:)", html)  # images are embedded
    assert "http://" not in html and "https://" not in html and "@import" not in html


def test_a_csv_a_spreadsheet_saved_again_gives_the_same_report(small_run, tmp_path):
    """An analyst opens the CSV in Excel and saves it: as "CSV UTF-8" it begins with a
    byte-order mark, which made the first column's name "\ufeffsource" ("not a streamfer
    frame CSV (missing columns: source)"); in a locale whose decimal mark is a comma, fields
    are separated by ";" and numbers written "0,125" (every column missing). Both now read
    as the CSV written."""
    clip, table = small_run
    rows = list(csv.reader(open(table, newline="")))
    with open(tmp_path / "utf8.csv", "w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f, lineterminator="\r\n").writerows(rows)
    with open(tmp_path / "comma.csv", "w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f, delimiter=";", lineterminator="\r\n").writerows(
            [row[:2] + [c.replace(".", ",") for c in row[2:]] for row in rows])
    assert "0,0333" in (tmp_path / "comma.csv").read_text(encoding="utf-8-sig")
    written = summarize(read_csv(table))
    for saved in ("utf8.csv", "comma.csv"):
        again = write_report(tmp_path / saved, tmp_path / f"{saved}.html", video=clip)
        assert again == written and len(again["faces"]) == 1
        assert (tmp_path / f"{saved}.html").read_text().count('class="thumb"') == 1


def test_bad_input_is_one_line_and_a_missing_video_costs_only_the_thumbnails(small_run,
                                                                            tmp_path):
    clip, table = small_run
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "other.csv").write_text("a,b,c\n1,2,3\n")
    lines = (tmp_path / "cut.csv").open("w")
    header = next(csv.reader(table.open()))
    lines.write(",".join(c for c in header if c != "labels") + "\n")
    lines.close()
    rows = table.read_text().splitlines()  # a live source's wall_time, edited into local time
    (tmp_path / "local.csv").write_text("\n".join([rows[0] + ",wall_time"] + [
        row + ",2026-12-07 10:30:00.125" for row in rows[1:]]) + "\n")
    for bad, said in (("empty.csv", "is empty"), ("other.csv", "missing columns"),
                      ("cut.csv", "labels"), ("local.csv", "is not a UTC time such as")):
        result = CliRunner().invoke(main, ["report", str(tmp_path / bad), "-o",
                                           str(tmp_path / "x.html")])
        assert result.exit_code == 1 and result.output.startswith("Error:"), result.output
        assert result.output.count("\n") == 1 and said in result.output
        assert not (tmp_path / "x.html").exists()
    joined = tmp_path / "joined.csv"  # two inputs' rows, as a folder run's --csv joins them
    text = table.read_text()
    joined.write_text(text + text.split("\n", 1)[1].replace(text.splitlines()[1].split(",")[0],
                                                               "other.mp4"))
    result = CliRunner().invoke(main, ["report", str(joined), "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "rows of 2 inputs" in result.output and "--csv-dir" in result.output
    assert not (tmp_path / "x.html").exists()
    result = CliRunner().invoke(main, ["report", str(table), "-o", str(tmp_path / "y.html"),
                                       "--video", str(tmp_path / "gone.mp4")])
    assert result.exit_code == 0, result.output
    assert result.output.count("no thumbnails") == 1
    html = (tmp_path / "y.html").read_text()
    assert 'class="thumb"' not in html and html.count('class="timeline"') == 1
    for option in ("-o", "--json"):  # a page or JSON that cannot be written: said before the
        # work, in words (it was "[Errno 17] File exists" after the thumbnails were read)
        args = ["-o", str(tmp_path / "z.html")] if option == "--json" else []
        result = CliRunner().invoke(main, ["report", str(table), *args, option,
                                           str(clip / "r.out")])
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert f"cannot write {clip / 'r.out'}: {clip} is a file, not a folder" \
            in result.output
        assert not (tmp_path / "z.html").exists()


@pytest.mark.parametrize("source, said", [
    ("0", "webcam 0: its frames cannot be read again"),
    ("rtsp://127.0.0.1:9/cam", "rtsp://127.0.0.1:9/cam is a live stream (or out of reach)")])
def test_a_live_sources_page_says_why_it_has_no_thumbnails(small_run, tmp_path, source, said):
    """A webcam's or a stream's rows: "the input 0 was not found" said that a file was
    missing; their frames are gone once shown."""
    _, table = small_run
    rows = table.read_text().splitlines()
    live = tmp_path / "live.csv"
    live.write_text("\n".join([rows[0]] + [source + "," + r.split(",", 1)[1]
                                            for r in rows[1:]]) + "\n")
    result = CliRunner().invoke(main, ["report", str(live), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert f"warning: no thumbnails: {said}" in result.output, result.output


def test_a_folder_runs_csv_folder_gets_a_page_each_and_an_index(small_run, tmp_path):
    _, table = small_run
    for name in ("a/one.mp4.csv", "two.mp4.csv"):
        (tmp_path / "csv" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(table, tmp_path / "csv" / name)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "csv"), "-o",
                                       str(tmp_path / "pages")])
    assert result.exit_code == 0, result.output
    index = (tmp_path / "pages" / "index.html").read_text()
    assert "a/one.mp4.html" in index and "two.mp4.html" in index
    assert (tmp_path / "pages" / "a" / "one.mp4.html").is_file()


def test_a_folder_run_with_a_faceless_video_gets_its_report_and_a_stray_csv_costs_no_page(
        tmp_path, small_run):
    """A video without faces writes a CSV of its header alone: its page says no face was
    found (the folder run's --report failed on it after the whole batch, exit 1, with no
    page and no index for any input); a CSV that is not ours gets no page, said in the index
    and in one Error line, and costs no other page."""
    footage, out = tmp_path / "footage", tmp_path / "out"
    footage.mkdir()
    shutil.copy(small_run[0], footage / "face.mp4")
    write_video(footage / "empty.mp4", [np.full((240, 320, 3), 90, np.uint8)] * 10)
    result = CliRunner().invoke(main, ["run", "-s", str(footage), "--csv-dir", str(out),
                                       "--report", str(tmp_path / "pages"), "-q"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "pages" / "empty.mp4.html").read_text()
    assert "No face was found" in page and "empty.mp4.csv" in page
    assert "<h1>streamfer report: empty.mp4</h1>" in page  # named by its input, not its CSV
    index = (tmp_path / "pages" / "index.html").read_text()
    assert "empty.mp4.csv</a> — no face found<" in index and "face.mp4.csv</a> — 1 face" in index
    # with a row for each faceless frame, the index says what the page says (it said
    # "0 faces, 0:00.3" beside a page saying "No face was found")
    result = CliRunner().invoke(main, ["run", "-s", str(footage), "--csv-empty-frames", "-q",
                                       "--csv-dir", str(tmp_path / "csv-e"),
                                       "--report", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert "No face was found" in (tmp_path / "e" / "empty.mp4.html").read_text()
    assert re.search(r"empty.mp4.csv</a> — no face found, 0:00\.\d<",
                     (tmp_path / "e" / "index.html").read_text())
    (out / "notes.csv").write_text("a,b\n1,2\n")
    result = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "again"),
                                       "--video", str(footage)])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: 1 CSV of 3 got no page")
    assert "notes.csv" in result.output
    index = (tmp_path / "again" / "index.html").read_text()
    assert "notes.csv — no page: " in index and "face.mp4.csv</a> — 1 face" in index
    assert (tmp_path / "again" / "face.mp4.html").is_file()


def test_a_photos_page_shows_every_face_with_its_thumbnail_and_scores_without_time(
        tmp_path, media, detector_ready):
    """The five people's photo: five faces, each with its own thumbnail (all but the first
    were blank: a photo's one frame could not be sought again), its scores, no timeline;
    a folder's index names the photo's faces without a duration."""
    photo = media / "pyfeat_multi_face_5people.jpg"
    table = tmp_path / "csv" / f"{photo.name}.csv"
    table.parent.mkdir()
    result = CliRunner().invoke(main, ["run", "-s", str(photo), "--csv", str(table), "-q"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "photo.html"
    summary = write_report(table, page, video=photo)
    html = page.read_text()
    assert len(summary["faces"]) == 5
    assert html.count('class="thumb"') == 5 and "class='nothumb'" not in html
    thumbs = re.findall(r'class="thumb" alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    assert len(set(thumbs)) == 5  # five different faces, not one five times
    assert 'class="timeline"' not in html and "on screen" not in html
    assert html.count("<td>score</td>") == 5
    result = CliRunner().invoke(main, ["report", str(tmp_path / "csv"), "-o",
                                       str(tmp_path / "pages")])
    assert result.exit_code == 0, result.output
    index = (tmp_path / "pages" / "index.html").read_text()
    # a photo: no time
    assert f"{photo.name}.html'>{photo.name}.csv</a> — 5 faces, most shown: " in index


def test_a_phone_portrait_s_thumbnail_is_the_face_upright(tmp_path, face_bgr, detector_ready):
    """A phone's portrait is stored on its side with an EXIF orientation; the run reads it
    upright, but the page's thumbnail was cut from the stored pixels: a face on its side, cut
    at the upright face's box. Now it is cut from the photo as the run read it."""
    import base64

    import cv2
    from PIL import Image

    upright = compose(face_bgr, (300, 400), 20, 60, scale=0.8)
    stored = Image.fromarray(cv2.cvtColor(upright, cv2.COLOR_BGR2RGB)).transpose(
        Image.Transpose.ROTATE_90)  # on its side: the tag says turn it back
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / "IMG_0001.jpg"
    stored.save(photo, exif=exif, quality=95)
    table = tmp_path / "p.csv"
    result = CliRunner().invoke(main, ["run", "-s", str(photo), "--csv", str(table), "-q"])
    assert result.exit_code == 0, result.output
    (row,) = _rows(table)
    x, y, w, h = (int(row[k]) for k in "xywh")
    page = tmp_path / "p.html"
    write_report(table, page, video=photo)
    (thumb,) = re.findall(r'class="thumb" alt="[^"]*" src="data:image/png;base64,([^"]+)"',
                          page.read_text())
    shown = cv2.imdecode(np.frombuffer(base64.b64decode(thumb), np.uint8), cv2.IMREAD_COLOR)
    m = w // 4
    face = cv2.resize(upright[max(0, y - m):y + h + m, max(0, x - m):x + w + m], (96, 96),
                      interpolation=cv2.INTER_AREA)
    assert np.abs(shown.astype(int) - face).mean() < 12


def test_thumbnails_of_a_video_whose_picture_changes_shape_are_cut_as_the_run_saw_it(
        tmp_path, face_bgr, detector_ready):
    """A recording whose picture turns from 640×480 to 360×480 midway: the run keeps each
    frame's shape (bars at the sides) and gives its boxes there, but the page cut its
    thumbnails from the frames as OpenCV gives them, stretched to 640×480: the second
    face's thumbnail was a wrong part of the picture. Now they are cut as the run saw it."""
    import base64

    import cv2

    from streamfer.sources import open_source

    video = joined(tmp_path / "call.ts", [
        (write_video(tmp_path / f"{name}.mp4", [compose(face_bgr, size, x, y)] * 24, fps=15),
         ("-c", "copy"))
        for name, size, x, y in (("wide", (640, 480), 200, 60), ("tall", (360, 480), 40, 120))])
    table = tmp_path / "call.csv"
    result = CliRunner().invoke(main, ["run", "-s", str(video), "--csv", str(table), "-q"])
    assert result.exit_code == 0, result.output
    with open_source(video) as source:
        seen = [frame.image for frame in source]
    run = read_csv(table)
    assert {min(f.frames) >= 24 for f in run.faces.values()} == {False, True}  # one a part
    page = tmp_path / "call.html"
    write_report(table, page, video=video)
    shown = [cv2.imdecode(np.frombuffer(base64.b64decode(t), np.uint8), cv2.IMREAD_COLOR)
             for t in re.findall(r'class="thumb" alt="[^"]*" src="data:image/png;base64,'
                                 r'([^"]+)"', page.read_text())]
    faces = sorted(run.faces.values(), key=lambda f: -len(f.frames))  # as the page lists
    assert len(shown) == len(faces) == 2
    for face, thumb in zip(faces, shown):
        _, frame, _, (x, y, w, h) = face.best
        m = w // 4
        want = cv2.resize(seen[frame][max(0, y - m):y + h + m, max(0, x - m):x + w + m],
                          (96, 96), interpolation=cv2.INTER_AREA)
        assert np.abs(thumb.astype(int) - want).mean() < 6, frame


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(not _chromium(), reason="needs Chromium (Debian's chromium; .ci/run "
                                            "installs it)")
def test_a_real_browser_shows_the_page_with_one_chart_per_face(runs, tmp_path):
    import cv2

    _, page = runs["face_recognition_short_hamilton_clip.mp4"]
    summary = summarize(read_csv(runs["face_recognition_short_hamilton_clip.mp4"][0]))
    common = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "page.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1100,1400",
                    page.as_uri()], capture_output=True, timeout=120, check=False)
    image = cv2.imread(str(shot))
    assert image is not None, "Chromium made no screenshot"
    assert image.std() > 20  # text, thumbnails and charts: not a blank page
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=False).stdout
    assert dom.count('class="timeline"') == len(summary["faces"]) > 0
    assert all(f'id="face-{f["id"]}"' in dom for f in summary["faces"])


def test_the_folded_line_counts_in_words(media, detector_ready, tmp_path):
    """The clip whose face leaves folds one short-lived id: '1 more face id, on screen for
    less than 1 s, folded.' (it said '1 more face ids, each on screen …')."""
    table, page = tmp_path / "f.csv", tmp_path / "f.html"
    result = CliRunner().invoke(main, ["run", "-s", str(media / "pyfeat_face_noface_hevc.mov"),
                                       "--csv", str(table), "-q", "--report", str(page)])
    assert result.exit_code == 0, result.output
    folded = summarize(read_csv(table))["folded"]
    assert folded >= 1  # a short-lived id as the face leaves (one, measured on the Xeon)
    said = ("1 more face id, on screen" if folded == 1
            else f"{folded} more face ids, each on screen")
    assert f"{said} for less than 1 s, folded." in page.read_text()


def test_a_page_json_or_folder_of_pages_named_as_another_format_is_refused(small_run, tmp_path):
    """A page named ``report.pdf`` was written as HTML under that name, JSON as ``s.html``,
    a folder of pages as ``pages.html/`` (exit 0 each); now one line naming the fix."""
    _, table = small_run
    folder = table.parent
    for args, said in (
            ([str(table), "-o", str(tmp_path / "r.pdf")], "name it r.html"),
            ([str(table), "-o", str(tmp_path / "r")], "name it r.html"),
            ([str(table), "-o", str(tmp_path / "r.html"), "--json", str(tmp_path / "s.html")],
             "cannot write JSON as 's.html': it would be taken for an HTML page; name it s.json"),
            ([str(folder), "-o", str(tmp_path / "pages.html")],
             "name a folder, not 'pages.html'")):
        result = CliRunner().invoke(main, ["report", *args])
        assert result.exit_code == 1 and result.output.startswith("Error:"), result.output
        assert result.output.count("\n") == 1 and said in result.output, result.output
    assert not list(tmp_path.iterdir())
    result = CliRunner().invoke(main, ["report", str(table), "-o", str(tmp_path / "r.htm"),
                                       "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.htm").read_text().startswith("<!DOCTYPE html>")


def test_write_report_refuses_a_page_json_or_folder_named_as_another_format(small_run, tmp_path):
    """The command line refused ``-o report.pdf``; a Python caller of
    :func:`~streamfer.report.write_report` (or of the folder's) still got HTML in a ``.pdf``,
    JSON in ``.html`` or a folder named ``pages.html``: the check is the writer's now."""
    from streamfer.report import ReportError

    _, table = small_run
    for call, said in (
            (lambda: write_report(table, tmp_path / "r.pdf"), "name it r.html"),
            (lambda: write_report(table, tmp_path / "r.html", tmp_path / "s.html"),
             "name it s.json"),
            (lambda: write_folder_report(table.parent, tmp_path / "pages.html"),
             "name a folder, not 'pages.html'")):
        with pytest.raises(ReportError, match=said):
            call()
    assert not list(tmp_path.iterdir())


def test_a_folders_pages_are_listed_as_a_file_manager_lists_the_files(small_run, tmp_path):
    """The index listed clip1, clip10, clip100, clip11, … (the order of characters); now
    clip1, clip2, …, clip10, as the run took the files and a file manager shows them."""
    _, table = small_run
    for n in (1, 2, 10, 11):
        shutil.copy(table, tmp_path / f"clip{n}.mp4.csv")
    write_folder_report(tmp_path, tmp_path / "pages")
    index = (tmp_path / "pages" / "index.html").read_text()
    listed = re.findall(r"clip(\d+)\.mp4\.html", index)
    assert listed == ["1", "2", "10", "11"], listed


def test_a_folders_index_links_reach_pages_whatever_the_files_are_named(small_run, tmp_path):
    """A link of the index was the page's name as it is: "it's #1?.mp4" led to "it's "
    (a '#' starts a fragment), a newline in a name was dropped by the browser. Each link,
    resolved as a browser resolves it from the index, now reaches its page."""
    from html.parser import HTMLParser
    from urllib.parse import unquote, urljoin, urlsplit

    _, table = small_run
    names = ("it's #1?.mp4", "50% off.mp4", "new\nline.mp4", "<b>x</b>.mp4", "café.mp4")
    for name in names:
        shutil.copy(table, tmp_path / f"{name.replace('/', '_')}.csv")
    write_folder_report(tmp_path, tmp_path / "pages")
    index = tmp_path / "pages" / "index.html"

    class Links(HTMLParser):
        found: list = []

        def handle_starttag(self, tag, attrs):
            self.found += [value for key, value in attrs if tag == "a" and key == "href"]

    links = Links()
    links.feed(index.read_text())
    assert len(links.found) == len(names), links.found
    for href in links.found:
        reached = Path(unquote(urlsplit(urljoin(index.as_uri(), href)).path))
        assert reached.is_file() and reached.parent == index.parent, href


def test_a_folders_index_says_what_each_inputs_faces_show_most(small_run, tmp_path):
    """The index said '1 face, 0:02.0' of each input: to find the sad clips of a hundred,
    every page had to be opened. Each line now names the label on most face rows, as
    counted here from the CSV itself."""
    _, table = small_run
    shutil.copy(table, tmp_path / "clip.mp4.csv")
    write_folder_report(tmp_path, tmp_path / "pages")
    rows = _rows(table)
    counts = {label: sum(label in r["labels"].split(";") for r in rows)
              for label in ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger")}
    top = [label for label in sorted(counts, key=counts.get, reverse=True)[:2]
           if counts[label] >= DOMINANT_MIN_SHARE * len(rows)]
    index = (tmp_path / "pages" / "index.html").read_text()
    if top:
        said = ", ".join(f"{label} {counts[label] / len(rows):.0%}" for label in top)
        assert f", most shown: {said} of face rows" in index, index
    else:
        assert ", no emotion shown" in index, index
