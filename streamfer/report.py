"""What an analyst looks at: per-face summaries, emotion timelines and a self-contained HTML
page of a run, made from its frame-level CSV.

Per face id: first and last seen, time on screen (each of its rows counts the step to the
next analysed frame), the dominant emotion(s), each label's share of the face's rows, mean
and peak smoothed scores, and a timeline chart (matplotlib, headless) of the six smoothed
scores with the shown labels as bands beneath, both broken where the face was away for more
than :data:`MAX_GAP_FRAMES` analysed frames (its tracker keeps an id through half a second
of absence); a thumbnail from the input video at the face's best-scored detection, where the
video is at hand. A photo's page (one analysed frame) gives each face its thumbnail and
scores, without time. Faces on screen for less than :data:`FOLD_SECONDS` are folded into one
counted line. The numbers are computed from every row; only the charts are thinned (to
:data:`CHART_POINTS` points a face).

The page is one file: images are embedded as ``data:`` URIs, the style is inline, nothing
is loaded from elsewhere, and every text that comes from the input (file names, CSV fields)
is HTML-escaped.

Example:
    >>> summary = summarize(read_csv("frames.csv"))                     # doctest: +SKIP
    >>> [f["id"] for f in summary["faces"]], summary["folded"]          # doctest: +SKIP
    ([1, 3], 2)
    >>> write_report("frames.csv", "report.html", video="clip.mp4")     # doctest: +SKIP
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
from natsort import natsorted, ns

log = logging.getLogger(__name__)
FOLD_SECONDS = 1.0  # faces on screen for less are folded into one counted line
CHART_POINTS = 1500
MAX_GAP_FRAMES = 2  # a face missing from more analysed frames in a row: its chart breaks
DOMINANT_MIN_SHARE = 0.05  # below: the face shows no emotion most of the time ("none")
REQUIRED = ("source", "frame", "time_s", "face_id", "x", "y", "w", "h", "det_score", "labels")
COLOURS = ("#1f77b4", "#9467bd", "#2ca02c", "#ff7f0e", "#7f7f7f", "#d62728")


class ReportError(ValueError):
    """The input is not a streamfer frame CSV (empty, other columns, unreadable values)."""


NO_ROWS = ("the CSV holds its header alone: a run writes one row per face it finds; "
           "--csv-empty-frames also writes one per analysed frame without faces")


@dataclass
class FaceRows:
    """Every row of one face id, in the CSV's order."""

    times: list[float] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    smooth: list[list[float]] = field(default_factory=list)
    labels: list[tuple[str, ...]] = field(default_factory=list)
    best: tuple = (-1.0, 0, 0.0, (0, 0, 0, 0))  # det_score, frame, time_s, box
    captured: tuple[str, str] | None = None  # a live source's: its first and last wall_time
    seconds: float = 0.0  # on screen: each of its rows' step to the next analysed frame


@dataclass
class Run:
    """A frame CSV read in: its source(s), labels (from the ``smooth_*`` columns, in the
    file's order), analysed frames and faces by id."""

    path: Path
    sources: list[str]
    labels: list[str]
    frames: int
    start: float  # the first analysed frame's time, s
    end: float  # the last one's, plus one interval: the rows cover [start, end)
    interval: float  # median step between analysed frames' times (0: a single frame)
    faces: dict[int, FaceRows]
    # a live source's: its first and last rows' wall_time (ISO 8601, UTC); None for a file
    captured: tuple[str, str] | None = None


def read_csv(path: str | Path) -> Run:
    """Read a frame CSV written by ``streamfer run --csv``; :class:`ReportError` if it is not
    one. As a spreadsheet saves it again, too: Excel's "CSV UTF-8" begins with a byte-order
    mark, and where the decimal mark is a comma (German, French, …) it separates fields with
    ``;`` and writes ``0,125``."""
    from streamfer.sinks import WALL_TIME

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = f.readline()
            f.seek(0)
            semicolons = ";" in first and "," not in first
            reader = csv.reader(f, delimiter=";" if semicolons else ",")
            number = (lambda text: float(text.replace(",", "."))) if semicolons else float
            header = next(reader, None)
            if not header:
                raise ReportError(f"{path} is empty: not a streamfer frame CSV")
            missing = [c for c in REQUIRED if c not in header]
            smooth = [c for c in header if c.startswith("smooth_")]
            if missing or not smooth:
                raise ReportError(f"{path} is not a streamfer frame CSV (missing columns: "
                                  f"{', '.join(missing or ['smooth_*'])})")
            col = {c: header.index(c) for c in (*REQUIRED, *smooth)}
            wall = header.index(WALL_TIME) if WALL_TIME in header else None
            sources, times, frames, faces, moments = {}, set(), set(), {}, None
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise ReportError(f"{path}, line {line}: {len(row)} fields, the header "
                                      f"has {len(header)}")
                try:
                    t, frame = number(row[col["time_s"]]), int(row[col["frame"]])
                    moment = _moment(row[wall]) if wall is not None and row[wall] else None
                    if moment:  # the first and last alone are kept
                        moments = _spanning(moments, moment)
                    sources.setdefault(row[col["source"]], None)
                    times.add(t)
                    frames.add((row[col["source"]], frame))
                    if not row[col["face_id"]]:  # an analysed frame without faces
                        continue
                    face = faces.setdefault(int(row[col["face_id"]]), FaceRows())
                    face.times.append(t)
                    face.frames.append(frame)
                    face.smooth.append([number(row[col[c]]) for c in smooth])
                    face.labels.append(tuple(x for x in row[col["labels"]].split(";") if x))
                    if moment:
                        face.captured = _spanning(face.captured, moment)
                    score = number(row[col["det_score"]])
                    if score > face.best[0]:
                        box = tuple(int(row[col[c]]) for c in ("x", "y", "w", "h"))
                        face.best = (score, frame, t, box)
                except ValueError as exc:
                    raise ReportError(f"{path}, line {line}: not a streamfer frame CSV "
                                      f"({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    labels = [c[len("smooth_"):].capitalize() for c in smooth]
    if not frames:  # a run that found no face: a page that says so
        return Run(path, [], labels, 0, 0.0, 0.0, 0.0, {})
    ordered = np.sort(np.fromiter(times, float))
    steps = np.diff(ordered)
    steps = steps[steps > 1e-6]
    interval = float(np.median(steps)) if len(steps) else 0.0
    # each analysed frame stands for the time to the next one (the last, and one before a
    # break in the input — a stream that stalled —, for one interval): a face's time on
    # screen is its rows' sum, right where the frames come at a varying rate (a live
    # session's analysis that falls behind drops frames; a phone records so)
    after = np.append(np.diff(ordered), interval)
    after[after > (MAX_GAP_FRAMES + 1.5) * interval] = interval
    step_after = dict(zip(ordered.tolist(), after.tolist()))
    for face in faces.values():
        face.seconds = sum(step_after[t] for t in face.times)
    return Run(path, list(sources), labels, len(frames), float(ordered[0]),
               float(ordered[-1]) + interval, interval, faces, moments)


def summarize(run: Run) -> dict:
    """The numbers of the report (the JSON for scripts): ``faces`` (those on screen for at
    least :data:`FOLD_SECONDS`, longest first) with ``id``, ``first_s``, ``last_s``,
    ``seconds``, ``rows``, ``dominant``, ``shares`` (label → share of the face's rows showing
    it), ``mean`` and ``peak`` (smoothed scores); ``folded``: how many ids were left out;
    ``start_s``, ``end_s``, ``duration_s``: the time the rows cover (from the first analysed
    frame to one interval past the last: a part of a video, ``--start``/``--end``, is its
    own span, not the time since the file's beginning); ``captured_utc``, a live source's
    alone: its first and last rows' ``wall_time``, and each face's ``first_utc`` and
    ``last_utc``, when it was first and last seen (its first and last rows' ``wall_time``)."""
    faces, folded = [], 0
    for face_id, rows in run.faces.items():
        n, seconds = len(rows.times), rows.seconds
        if seconds < FOLD_SECONDS and run.interval > 0:
            folded += 1
            continue
        smooth = np.asarray(rows.smooth, np.float64)
        shares = {label: sum(label in shown for shown in rows.labels) / n
                  for label in run.labels}
        top = max(shares.values())
        dominant = [label for label in sorted(shares, key=shares.get, reverse=True)
                    if shares[label] == top] if top >= DOMINANT_MIN_SHARE else []
        faces.append({"id": face_id, "first_s": min(rows.times), "last_s": max(rows.times),
                      "seconds": seconds, "rows": n, "dominant": dominant, "shares": shares,
                      "mean": dict(zip(run.labels, smooth.mean(0).tolist())),
                      "peak": dict(zip(run.labels, smooth.max(0).tolist())),
                      **({"first_utc": rows.captured[0], "last_utc": rows.captured[1]}
                         if rows.captured else {})})
    faces.sort(key=lambda f: (-f["seconds"], f["id"]))
    return {"sources": run.sources, "start_s": run.start, "end_s": run.end,
            "duration_s": run.end - run.start, "frames": run.frames,
            **({"captured_utc": list(run.captured)} if run.captured else {}),
            "labels": run.labels, "faces": faces, "folded": folded}


def stretches(times: list[float], interval: float) -> list[tuple[int, int]]:
    """Index ranges ``[a, b)`` of a face's rows (in time order) during which it was on screen
    without a break: where it was missing from more than :data:`MAX_GAP_FRAMES` analysed
    frames in a row (``interval``: the run's step between them), a new stretch begins."""
    t = np.asarray(times, np.float64)
    if len(t) < 2 or interval <= 0:
        return [(0, len(t))]
    cuts = np.flatnonzero(np.diff(t) > (MAX_GAP_FRAMES + 1.5) * interval) + 1
    edges = [0, *cuts.tolist(), len(t)]
    return list(zip(edges[:-1], edges[1:]))


def timeline(rows: FaceRows, labels: list[str], interval: float
             ) -> tuple[np.ndarray, np.ndarray, dict[str, list[tuple[float, float]]]]:
    """What a face's chart draws: times and smoothed scores (one column a label) thinned to
    about :data:`CHART_POINTS`, with a NaN row between stretches (the line breaks there, not
    drawn across the time the face was away), and each label's bands, ``(start, width)`` in
    seconds, where it was shown (a band ends where its stretch does)."""
    t = np.asarray(rows.times, np.float64)
    smooth = np.asarray(rows.smooth, np.float64).reshape(len(t), len(labels))
    step = max(1, len(t) // CHART_POINTS)
    width = interval if interval > 0 else 0.04
    xs, ys, spans = [], [], {label: [] for label in labels}
    for a, b in stretches(t, interval):
        if xs:
            xs.append([np.nan])
            ys.append(np.full((1, len(labels)), np.nan))
        xs.append(t[a:b:step])
        ys.append(smooth[a:b:step])
        for label in labels:
            shown = np.array([label in s for s in rows.labels[a:b]])
            starts = np.flatnonzero(shown & ~np.r_[False, shown[:-1]])
            ends = np.flatnonzero(shown & ~np.r_[shown[1:], False])
            spans[label] += [(float(t[a + i0]), float(t[a + i1] - t[a + i0] + width))
                             for i0, i1 in zip(starts, ends)]
    return np.concatenate(xs), np.concatenate(ys), spans


def timeline_png(rows: FaceRows, labels: list[str], interval: float) -> bytes:
    """A face's smoothed scores over time (lines) and its shown labels (bands beneath), as
    :func:`timeline` gives them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y, spans = timeline(rows, labels, interval)
    fig, (top, bands) = plt.subplots(2, 1, figsize=(8, 2.6), dpi=80, sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1.2]})
    for i, label in enumerate(labels):
        top.plot(x, y[:, i], color=COLOURS[i % len(COLOURS)], lw=1.2, label=label)
        bands.broken_barh(spans[label], (i, 0.8), color=COLOURS[i % len(COLOURS)])
    top.set_ylim(-0.03, 1.25)  # room above 1 for the legend: a score at 1.0 stays visible
    top.set_yticks([0, 0.5, 1])
    top.set_ylabel("smoothed")
    top.legend(loc="upper left", ncol=len(labels), fontsize=7, frameon=False)
    bands.set_yticks([i + 0.4 for i in range(len(labels))], labels, fontsize=6)
    bands.set_ylim(0, len(labels))
    bands.set_xlabel("time (s)")
    fig.tight_layout(pad=0.3)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def thumbnails(video: str | Path, faces: dict[int, FaceRows],
               size: int = 96) -> dict[int, bytes]:
    """PNG thumbnails of each face at its best-scored detection, read from ``video`` (a file,
    or a link to a recorded one; in time order, each by a seek; a photo as the run read it:
    upright, a phone's HEIC too); empty where the video cannot be read."""
    from streamfer.sources import SourceError, open_source

    out, last = {}, (None, None)  # the frame read last: faces best seen on one frame share it
    try:
        with open_source(str(video)) as source:  # a photo upright, a phone's HEIC too
            for face_id, rows in sorted(faces.items(), key=lambda kv: kv[1].best[2]):
                _, frame, time_s, box = rows.best
                if last[0] != frame:
                    last = (frame, source.frame_at(frame, time_s))
                if last[1] is not None and (png := thumbnail(last[1], box, size)):
                    out[face_id] = png
    except SourceError:
        return {}
    return out


def thumbnail(image: np.ndarray, box: tuple[int, int, int, int], size: int = 96) -> bytes | None:
    """A face's PNG thumbnail: its box and a quarter of its side around it, from the BGR
    ``image`` it was found in; None where the box holds no pixel of it."""
    import cv2

    x, y, w, h = box
    m = w // 4
    crop = image[max(0, y - m):y + h + m, max(0, x - m):x + w + m]
    if not crop.size:
        return None
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".png", crop)[1].tobytes()


class Thumbnails:
    """Each face's thumbnail at its best-scored detection — the one :func:`thumbnails` reads
    again from a file, the same rows deciding — kept as a run goes, for a source whose
    frames cannot be read again once it is over (a webcam, a stream, standard input):
    :meth:`add` each analysed frame; ``png``: face id → PNG."""

    def __init__(self) -> None:
        self.png: dict[int, bytes] = {}
        self._best: dict[int, float] = {}

    def add(self, frame) -> None:
        for face in frame.faces:
            score = float(f"{face.det_score:.3f}")  # as the CSV holds it, which the page reads
            if score > self._best.get(face.face_id, -1.0) and \
                    (png := thumbnail(frame.image, face.box)):
                self._best[face.face_id], self.png[face.face_id] = score, png


def _img(png: bytes, alt: str, cls: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless one: ``counted(1, "face")`` → ``'1 face'``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m // 60)}:{int(m % 60):02d}:{s:04.1f}" if m >= 60 else f"{int(m)}:{s:04.1f}"


def _spanning(span: tuple[str, str] | None, moment: str) -> tuple[str, str]:
    """The first and last of ``span`` and ``moment`` (CSV wall times: ISO 8601 in one form,
    so their text's order is their time's)."""
    return (moment, moment) if span is None else (min(span[0], moment), max(span[1], moment))


def _moment(text: str) -> str:
    """A CSV's ``wall_time`` as it came, once it is one (``ValueError`` if not)."""
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text):
        raise ValueError(f"wall_time {text!r} is not a UTC time such as 2026-12-07T09:30:00.125Z")
    return text


def _span(first: str, last: str) -> str:
    """Two CSV wall times as one span: ``2026-12-07 09:30:00.125 – 09:41:12.500 UTC`` (the
    date again where it changed)."""
    (day, start), (end_day, end) = (moment.rstrip("Z").split("T") for moment in (first, last))
    return f"{day} {start} – {end if end_day == day else f'{end_day} {end}'} UTC"


STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px}table.run td{padding:2px 12px 2px 0}
.face{border-top:1px solid #ddd;padding:12px 0;display:flex;gap:16px;align-items:flex-start}
.face .thumb,.face .nothumb{width:96px;height:96px;flex:none;background:#eee}
.face table{border-collapse:collapse;font-size:12px}.face td,.face th{padding:1px 8px;
text-align:right}.face th:first-child,.face td:first-child{text-align:left}
.muted{color:#777}"""


def render_html(summary: dict, run: Run, thumbs: dict[int, bytes], meta: dict | None = None,
                note: str | None = None) -> str:
    """The page (one self-contained HTML file) for ``summary``."""
    from streamfer.files import printable

    e = html.escape
    labels = run.labels
    # one analysed frame (a photo): each face's scores, without the time it was seen
    still = summary["frames"] == 1
    has_rows = summary["frames"] > 0  # none: the run found no face and wrote no row
    name = ", ".join(summary["sources"]) or printable(run.path.name)
    head = [*([("source", name)] if summary["sources"] else []),
            ("CSV", printable(str(run.path))),
            *([] if still or not has_rows else [("time", f"{_clock(summary['start_s'])} – "
                                                      f"{_clock(summary['end_s'])} "
                                                      f"({_clock(summary['duration_s'])})")]),
            *([("captured", _span(*summary["captured_utc"]))] if "captured_utc" in summary
              else []),
            *([("analysed frames", str(summary["frames"]))] if has_rows else []),
            ("faces", f"{len(summary['faces'])} listed, {summary['folded']} folded")]
    head += [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in (meta or {}).items()]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>streamfer report: "
             f"{e(name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>streamfer report: {e(name)}</h1>",
             "<table class='run'>" + "".join(f"<tr><td class='muted'>{e(k)}</td>"
                                             f"<td>{e(v)}</td></tr>" for k, v in head)
             + "</table>"]
    if note:
        parts.append(f"<p class='muted'>{e(note)}</p>")
    if not summary["faces"] and not summary["folded"]:
        parts.append("<p class='noface'>No face was found" + (
            "." if has_rows else f" ({e(NO_ROWS)}).") + "</p>")
    rows_shown = [("score", "mean", 2)] if still else [
        ("share of rows shown", "shares", 2), ("mean smoothed", "mean", 2),
        ("peak smoothed", "peak", 2)]
    for face in summary["faces"]:
        rows = run.faces[face["id"]]
        thumb = _img(thumbs[face["id"]], f"face {face['id']}", "thumb") \
            if face["id"] in thumbs else "<div class='nothumb'></div>"
        dominant = ", ".join(face["dominant"]) or "none"
        table = ("<table><tr><th></th>" + "".join(f"<th>{e(lb)}</th>" for lb in labels)
                 + "</tr>" + "".join(
                     f"<tr><td>{name}</td>" + "".join(
                         f"<td>{face[key][lb]:.{digits}f}</td>" for lb in labels) + "</tr>"
                     for name, key, digits in rows_shown)
                 + "</table>")
        if still:  # a photo: its scores, no time
            parts.append(f"<div class='face' id='face-{face['id']}'>{thumb}<div>"
                         f"<b>#{face['id']}</b> — {e(dominant)}{table}</div></div>")
            continue
        chart = _img(timeline_png(rows, labels, run.interval),
                     f"timeline of face {face['id']}", "timeline")
        parts.append(
            f"<div class='face' id='face-{face['id']}'>{thumb}<div>"
            f"<b>#{face['id']}</b> — {e(dominant)} · on screen {face['seconds']:.1f} s "
            f"({counted(face['rows'], 'row')}), seen {_clock(face['first_s'])} – "
            f"{_clock(face['last_s'])}"
            + (f" ({_span(face['first_utc'], face['last_utc'])})" if "first_utc" in face
               else "") + f"{table}{chart}</div></div>")
    if summary["folded"]:
        n = summary["folded"]
        parts.append(f"<p class='muted folded'>{counted(n, 'more face id')}, "
                     f"{'each ' if n > 1 else ''}on screen for less than {FOLD_SECONDS:g} s, "
                     "folded.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _live(source: str) -> str | None:
    """What a CSV's ``source`` is where it names a live input (a webcam, a stream), whose
    frames are gone once shown; None for a file or a link to a recorded file."""
    from streamfer.sources import STDIN_NAME, is_url, is_webcam, recorded, redacted

    if is_webcam(source):
        return f"webcam {source}"
    if source == STDIN_NAME:
        return "standard input"
    if is_url(source) and recorded(source) is None:  # the link's header, read once
        return f"{redacted(source)} is a live stream (or out of reach" + (
            ": the CSV holds it with its secrets masked; give the link as --video)"
            if "****" in source else ")")
    return None


def _check_names(*named) -> None:
    """Each ``(path, holds)`` named as what it holds (see :func:`streamfer.sinks.check_name`),
    else :class:`ReportError`; a path of ``None`` is not written."""
    from streamfer.sinks import SinkError, check_name

    try:
        for path, holds in named:
            if path is not None:
                check_name(path, holds)
    except SinkError as exc:
        raise ReportError(str(exc)) from None


def _read_thumbnails(run: Run, csv_path, video, listed: dict[int, FaceRows]
                     ) -> tuple[dict[int, bytes], str | None]:
    """The listed faces' thumbnails read again from ``video`` (default: the CSV's source,
    looked for beside the CSV and in the working folder), and the note that says why there
    are none, where there are none."""
    from streamfer.files import unprintable
    from streamfer.sources import redacted

    note = None
    source = run.sources[0] if video is None and len(run.sources) == 1 else None
    link = video is not None and "://" in str(video)  # the run's own, its password with it
    live = _live(str(video)) if link else source and _live(source)
    if live:
        note, video = f"no thumbnails: {live}: its frames cannot be read again", None
    elif source and "://" in source:
        video = source  # a link to a recorded file: read again, as a file is
    elif source:
        video = next((p for name in dict.fromkeys((source, unprintable(source)))
                      for p in (Path(csv_path).parent / name, Path(name)) if p.is_file()), None)
        if video is None:
            note = f"no thumbnails: the input {source} was not found"
    elif video is not None and "://" not in str(video) and not Path(video).is_file():
        note, video = f"no thumbnails: the input {video} was not found", None
    thumbs = thumbnails(video, listed) if video else {}
    if video and not thumbs and listed:
        note = f"no thumbnails: {redacted(str(video))} could not be read"
    return thumbs, note


def write_report(csv_path: str | Path, out: str | Path, json_path: str | Path | None = None,
                 video: str | Path | None = None, meta: dict | None = None,
                 warn=log.warning, kept: dict[int, bytes] | None = None) -> dict:
    """Read ``csv_path``, write the page to ``out`` (and the numbers to ``json_path``);
    thumbnails from ``video`` (default: the CSV's source, looked for beside the CSV and in
    the working folder; where there is none, ``warn`` says so in one line), or those the
    run ``kept`` as it went (:class:`Thumbnails`: a live source's). Returns the
    summary. :class:`ReportError` before any work where ``out`` is not named as an HTML
    page (or ``json_path`` is named as another format)."""
    from streamfer.files import write_atomically
    from streamfer.sources import redacted

    _check_names((out, "page"), (json_path, "json"))
    run = read_csv(csv_path)
    if len(run.sources) > 1:  # face ids are per input: the same id is another face in each
        raise ReportError(f"{csv_path} holds the rows of {len(run.sources)} inputs (a folder "
                          f"run's joined CSV): report its --csv-dir, a page per input")
    if not run.sources and video is not None:  # no rows to name it: the input given does
        run.sources = [Path(redacted(str(video))).name]
    summary = summarize(run)
    note = None
    listed = {f["id"]: run.faces[f["id"]] for f in summary["faces"]}
    if kept is not None:  # the run's own, as it went (a live source's)
        thumbs = {face_id: kept[face_id] for face_id in listed if face_id in kept}
    else:
        thumbs, note = _read_thumbnails(run, csv_path, video, listed)
    if note:
        warn(note)
    write_atomically(Path(out), render_html(summary, run, thumbs, meta, note))
    if json_path:
        write_atomically(Path(json_path), json.dumps(summary, indent=1) + "\n")
    return summary


def _mostly(summary: dict) -> str:
    """What the input's faces show most, for the folder's index (a glance over many inputs):
    the two labels on the largest shares of its listed faces' rows, each where its share is
    at least :data:`DOMINANT_MIN_SHARE` (``, most shown: Happiness 51%, Sadness 44% of face
    rows``)."""
    faces = summary["faces"]
    rows = sum(face["rows"] for face in faces)
    if not rows:
        return ""
    shares = {label: sum(face["shares"][label] * face["rows"] for face in faces) / rows
              for label in summary["labels"]}
    top = [label for label in sorted(shares, key=shares.get, reverse=True)[:2]
           if shares[label] >= DOMINANT_MIN_SHARE]
    return f", most shown: {', '.join(f'{label} {shares[label]:.0%}' for label in top)} of " \
        "face rows" if top else ", no emotion shown"


def write_folder_report(csv_dir: str | Path, out_dir: str | Path,
                        videos: str | Path | None = None, warn=log.warning) -> list[Path]:
    """One page per CSV below ``csv_dir`` (as a folder run writes them: ``<input>.csv``) in
    ``out_dir`` under the same relative path, plus ``index.html`` linking them; thumbnails
    from the inputs under ``videos``. Returns the pages written. A CSV that is not a frame
    CSV gets no page and costs no other: the index says why, and so does the
    :class:`ReportError` raised once every other page and the index are written (and
    before any work where ``out_dir`` is named as a file, ``pages.html``)."""
    from streamfer.files import printable, write_atomically

    _check_names((out_dir, "pages"))
    csv_dir, out_dir = Path(csv_dir), Path(out_dir)
    tables = natsorted((p for p in csv_dir.rglob("*.csv") if not p.name.startswith(".")),
                       alg=ns.PATH | ns.IGNORECASE)  # as the run took them
    if not tables:
        raise ReportError(f"no CSV files under {csv_dir}")
    pages, items, failed = [], [], []
    for table in tables:
        rel = table.relative_to(csv_dir)
        page = out_dir / rel.with_name(rel.name[:-len(".csv")] + ".html")
        video = Path(videos) / rel.with_name(rel.name[:-len(".csv")]) if videos else None
        try:
            summary = write_report(table, page,
                                   video=video if video and video.is_file() else None,
                                   warn=lambda note, rel=rel: warn(f"{rel}: {note}"))
        except ReportError as exc:
            failed.append(str(exc))
            items.append(f"<li>{html.escape(printable(rel.as_posix()))} — no page: "
                         f"{html.escape(printable(str(exc)))}</li>")
            continue
        pages.append(page)
        # "it's #1?.mp4.html", a name in Latin-1 bytes: a link (to those bytes)
        link = quote(os.fsencode(page.relative_to(out_dir).as_posix()))
        items.append(f"<li><a href='{html.escape(link)}'>"
                     f"{html.escape(printable(rel.as_posix()))}</a> — "
                     + ("no face found" if not summary["faces"] and not summary["folded"]
                        else counted(len(summary["faces"]), "face")
                        + (f" ({summary['folded']} folded)" if summary["folded"] else ""))
                     + ("" if summary["frames"] <= 1 else f", {_clock(summary['duration_s'])}")
                     + html.escape(_mostly(summary)) + "</li>")
    write_atomically(out_dir / "index.html",
                     f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>streamfer "
                     f"reports</title><style>{STYLE}</style></head><body><h1>streamfer "
                     f"reports: {html.escape(printable(str(csv_dir)))}</h1>"
                     f"<ul>{''.join(items)}</ul></body></html>")
    if failed:
        raise ReportError(f"{counted(len(failed), 'CSV')} of {len(tables)} got no page "
                          f"({'; '.join(failed)}); the other pages and "
                          f"{out_dir / 'index.html'} are written")
    return pages
