"""An output's name checked before any work: what it says it holds, that it is no input,
that it can be written, that two outputs are not one file.

Example:
    >>> from streamfer.sinks.names import check_name
    >>> check_name("frames.csv", "csv")              # a CSV named so: nothing said
    >>> check_name("frames.mp4", "csv")              # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    streamfer.sinks.errors.SinkError: cannot write a CSV as 'frames.mp4': ... name it frames.csv
"""

from __future__ import annotations

from pathlib import Path

from streamfer.files import cannot_write, unwritable
from streamfer.sinks.errors import SinkError
from streamfer.sources import IMAGE_EXTS, VIDEO_EXTS

# Output containers and the codec each is written with (4:2:0, what every player plays).
CONTAINERS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264",
              ".avi": "libx264", ".webm": "libvpx-vp9"}
# A photo's annotated copy: these formats (OpenCV writes them).
PHOTOS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
STDOUT = "-"  # an output that means standard output (``--csv -``, ``--output -``)
# What a file's name says it holds, for the outputs that are not videos (a CSV, the report's
# page, its JSON): a name another format's programs would open is refused, not written.
_HELD_AS = ({suffix: "a video" for suffix in (*CONTAINERS, *VIDEO_EXTS)}
            | {suffix: "a photo" for suffix in (*PHOTOS, *IMAGE_EXTS)}
            | {".html": "an HTML page", ".htm": "an HTML page", ".csv": "a CSV",
               ".json": "JSON", ".m3u8": "an HLS playlist"})
_NAMED = {"csv": (".csv", "a CSV"), "json": (".json", "JSON"), "page": (".html", "an HTML page")}


def check_name(path: str | Path, holds: str) -> None:
    """``path``'s name says what it will hold: ``holds`` is ``"csv"``, ``"json"``, ``"page"``
    (the report's HTML page: .html or .htm) or ``"pages"`` (a folder of them, index.html
    in it). A CSV named ``frames.mp4``, a report named ``report.pdf`` or a folder of pages
    named ``pages.html`` is a mistake a file manager would repeat: refused before any work."""
    path = Path(path)
    if holds == "pages":
        if path.suffix.lower() in _HELD_AS or path.is_file():
            raise SinkError(f"the report of a folder is a folder of pages (index.html in it): "
                            f"name a folder, not {path.name!r}")
        return
    suffix, what = _NAMED[holds]
    held_as = _HELD_AS.get(path.suffix.lower())
    if holds == "page" and path.suffix.lower() not in (".html", ".htm"):
        raise SinkError(f"cannot write the report as {path.name!r}: it is an HTML page; "
                        f"name it {path.stem or path.name}.html")
    if held_as and held_as != what:
        raise SinkError(f"cannot write {what} as {path.name!r}: it would be taken for "
                        f"{held_as}; name it {path.stem}{suffix}")


class Inputs:
    """The inputs of a run, to tell at once whether an output is one of them: the same path,
    or the same file under another name (a link). Made once for a folder's thousands of
    outputs (each compared with every input took minutes for 2,000 files)."""

    def __init__(self, paths=()) -> None:
        self._paths, self._files = set(), set()
        for source in paths:
            source = Path(source)
            self._paths.add(source.resolve())
            try:
                st = source.stat()
            except OSError:  # a URL, a webcam's index, a file not there
                continue
            self._files.add((st.st_dev, st.st_ino))

    def __contains__(self, path) -> bool:
        path = Path(path)
        if path.resolve() in self._paths:
            return True
        try:
            st = path.stat()
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self._files


def check_output(path: str | Path, inputs=(), video: bool = True, photo: bool = False) -> Path:
    """``path`` as an output we can write, checked before any frame is read: in a folder
    we may write, not one of ``inputs`` (the same file under any name; an :class:`Inputs`
    where many outputs are checked) and, for a ``video``, a known container — or, where the
    source is a ``photo``, a photo format too (its annotated copy)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if video and suffix in PHOTOS and not photo:
        raise SinkError(f"cannot write {path.name!r}: an annotated {suffix} is for a photo "
                        f"source; for a video name it .mp4, .mkv, .mov, .m4v, .avi or .webm")
    if video and suffix not in CONTAINERS and suffix not in PHOTOS:
        raise SinkError(f"cannot write video {path.name!r}: name it .mp4 (H.264), .mkv, .mov, "
                        f".m4v, .avi (H.264) or .webm (VP9)"
                        + (f"; a photo {', '.join(PHOTOS)}" if photo
                           else ", or .m3u8 (an HLS playlist)"))
    if path in (inputs if isinstance(inputs, Inputs) else Inputs(inputs)):
        raise SinkError(f"the output {path} is the input; choose another name")
    why = unwritable(path)
    if why:
        raise SinkError(cannot_write(path, why))
    return path


def check_distinct(outputs: dict[str, str | Path | None]) -> None:
    """The outputs of one run (``{what it is called: path}``, None where not asked for) are
    files of their own: two named alike would leave only the one finalised last."""
    seen: dict[Path, str] = {}
    for name, path in outputs.items():
        if not path:
            continue
        key = Path(path).resolve()
        if key in seen:
            raise SinkError(f"{seen[key]} and {name} name the same file ({path}); give each "
                            "its own")
        seen[key] = name
