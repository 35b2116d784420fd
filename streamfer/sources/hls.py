"""HLS playlists (``.m3u8``) read as a recorded video: which rendition of a master playlist
to read, with which sound; which files a playlist on disk holds (its segments, not videos
of their own); a recording's playlist cut off before its end, read to where it stops.

Example:
    >>> from streamfer.sources.hls import rendition
    >>> rendition("https://example.com/vod/master.m3u8")       # doctest: +SKIP
    ('https://example.com/vod/1080p.m3u8', 'https://example.com/vod/1080p.m3u8')
"""

from __future__ import annotations

import os
import re
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from streamfer.sources.streams import REQUEST_ERRORS, as_asked, requested

SUFFIXES = (".m3u8", ".m3u")
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')  # a tag's NAME=value, NAME="…", …
_SOUND_ONLY = ("mp4a", "ac-3", "ec-3", "opus", "flac", "mp3")  # codecs of no picture


@dataclass
class Playlist:
    """What an HLS playlist's text says: a master's renditions (their attributes and
    links) and audio renditions (attributes, ``URI`` among them); every link it names —
    renditions, audio renditions, segments, a fragmented MP4's initialisation file."""

    hls: bool = False  # HLS's own tags (``#EXT-X-…``): not a player's list of files
    renditions: list[tuple[dict[str, str], str]] = field(default_factory=list)
    sounds: list[dict[str, str]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, text: str) -> Playlist | None:
        """The playlist ``text`` is, or None where it is none (no ``#EXTM3U`` first)."""
        lines = [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]
        if not lines or lines[0] != "#EXTM3U":
            return None
        playlist = cls()
        for k, line in enumerate(lines):
            if not line.startswith("#"):
                playlist.links.append(line)
                continue
            tag, _, rest = line.partition(":")
            playlist.hls |= tag.startswith("#EXT-X-")
            attributes = {name: value.strip('"') for name, value in _ATTRIBUTE.findall(rest)}
            if attributes.get("URI"):  # EXT-X-MEDIA, EXT-X-MAP, EXT-X-I-FRAME-STREAM-INF
                playlist.links.append(attributes["URI"])
            if tag == "#EXT-X-STREAM-INF":
                uri = next((x for x in lines[k + 1:] if not x.startswith("#")), None)
                codecs = [c.strip() for c in attributes.get("CODECS", "").split(",")
                          if c.strip()]
                if uri and not (codecs and all(c.lower().startswith(_SOUND_ONLY)
                                               for c in codecs)):
                    playlist.renditions.append((attributes, uri))
            elif tag == "#EXT-X-MEDIA" and attributes.get("TYPE") == "AUDIO" \
                    and attributes.get("URI"):
                playlist.sounds.append(attributes)
        return playlist


def rendition(spec: str) -> tuple[str, str] | None:
    """Of a recorded HLS master playlist (one video in several renditions: 1080p, 720p,
    360p…), behind an ``http(s)`` link or a ``.m3u8`` file, where the largest rendition's
    own playlist is and where its sound's is (the same one, or the default of its audio
    group, ``EXT-X-MEDIA``); None for anything else, or a playlist that cannot be read (it
    is read as it is). FFmpeg and OpenCV read a master's first rendition, often its
    smallest, and take each rendition's sound as a track of its own: the same sound,
    several times. (A live link's is chosen among its streams as it is read:
    :mod:`streamfer.sources.live`.)"""
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else None
    if scheme in ("http", "https"):
        text, base = _fetched(spec)
    elif scheme is None and (text := _text(spec)) is not None:
        base = Path(os.path.abspath(spec)).as_uri()
    else:
        return None
    if text is None:
        return None
    playlist = Playlist.of(text)
    if playlist is None or len(playlist.renditions) < 2:
        return None

    def size(rendition) -> tuple[int, int]:
        w, _, h = rendition[0].get("RESOLUTION", "").partition("x")
        area = int(w) * int(h) if w.isdigit() and h.isdigit() else 0
        bandwidth = rendition[0].get("BANDWIDTH", "")
        return area, int(bandwidth) if bandwidth.isdigit() else 0

    attributes, uri = max(playlist.renditions, key=size)
    group = [s for s in playlist.sounds if s.get("GROUP-ID") == attributes.get("AUDIO")]
    sound = next((s["URI"] for s in group if s.get("DEFAULT") == "YES"),
                 group[0]["URI"] if group else uri)
    return tuple(_local(as_asked(urllib.parse.urljoin(base, link), spec))
                 for link in (uri, sound))


def target_duration(url: str) -> float | None:
    """A live HLS link's target duration (``#EXT-X-TARGETDURATION``: its segments' longest,
    in seconds), of its own playlist or of a master's first rendition's; None for a link
    that is no HLS playlist, or one that cannot be read. FFmpeg waits for a live playlist's
    next segment up to about twice as long (it reloads the playlist to find it)."""
    for _ in range(2):  # a master playlist, then its rendition's
        text, base = _fetched(url)
        if text is None:
            return None
        if said := re.search(r"^#EXT-X-TARGETDURATION:\s*(\d+(?:\.\d+)?)", text, re.M):
            return float(said.group(1))
        playlist = Playlist.of(text)
        if playlist is None or not playlist.renditions:
            return None
        url = as_asked(urllib.parse.urljoin(base, playlist.renditions[0][1]), url)
    return None


def _fetched(url: str) -> tuple[str | None, str]:
    """An ``http(s)`` link's playlist text (up to 1 MB) and the link it came from after
    redirects; (None, url) where it is no playlist (a video file's link: its first bytes
    alone are read) or cannot be read (refused, timed out, a bad reply)."""
    try:
        with requested(url) as reply:
            head = reply.read(16)
            if not head.removeprefix(b"\xef\xbb\xbf").startswith(b"#EXTM3U"):
                return None, url
            return (head + reply.read(1 << 20)).decode("utf-8", "replace"), reply.geturl()
    except REQUEST_ERRORS:
        return None, url


def listed_files(path: str) -> int | None:
    """How many files a player's playlist (``.m3u``, ``.m3u8``: VLC's, Winamp's, a list of
    files, not HLS) names, or None for any other file."""
    if (text := _text(path)) is None:
        return None
    playlist = Playlist.of(text)
    if playlist is not None:
        return None if playlist.hls else len(playlist.links)
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]  # a plain list
    return sum(1 for line in lines if line and not line.startswith("#")) or None


def listed(path: Path) -> set[Path] | None:
    """The files on disk an HLS playlist file names, its renditions' playlists' too,
    resolved: parts of the video it is, not videos of their own; None where ``path`` is no
    HLS playlist (a player's ``.m3u`` list of files is not) or cannot be read."""
    seen: set[Path] = set()
    todo = [Path(path).resolve()]
    while todo:
        playlist_path = todo.pop()
        playlist = Playlist.of(text) if (text := _text(playlist_path)) is not None else None
        if playlist is None or not playlist.hls:
            if playlist_path == Path(path).resolve():
                return None
            continue
        for link in playlist.links:
            if "://" in link:  # on a server, not here
                continue
            named = (playlist_path.parent / urllib.parse.unquote(link.split("?")[0])).resolve()
            if named not in seen:
                seen.add(named)
                if named.suffix.lower() in SUFFIXES:
                    todo.append(named)
    return seen


def ended_copy(path: str) -> tuple[str, int] | None:
    """Of an HLS media playlist file without its end mark (``#EXT-X-ENDLIST``: a recording
    cut off, as a killed recorder leaves it, or one still being made), a copy that has it,
    each link in it made absolute, in a temporary folder of its own (the caller removes
    it), and the number of segments it lists; None for any other file. FFmpeg reads a
    playlist without its end as a live one: after its segments it waits for more (a run
    of 2.4 s in 1 s segments took 343 s)."""
    if (text := _text(path)) is None:
        return None
    playlist = Playlist.of(text)
    if playlist is None or not playlist.hls or playlist.renditions \
            or "#EXT-X-ENDLIST" in text:
        return None
    here = os.path.dirname(os.path.abspath(path))

    def absolute(link: str) -> str:  # as FFmpeg joins a relative one to the playlist's
        return link if "://" in link or os.path.isabs(link) else os.path.join(here, link)

    lines = []
    for line in text.lstrip("\ufeff").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            line = absolute(line)
        elif line.startswith("#"):
            line = re.sub(r'URI="([^"]*)"', lambda m: f'URI="{absolute(m[1])}"', line)
        lines.append(line)
    folder = tempfile.mkdtemp(prefix="streamfer-hls-")
    copy = os.path.join(folder, os.path.basename(path))
    with open(copy, "w", encoding="utf-8") as file:
        file.write("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    return copy, sum(1 for line in lines if line.startswith("#EXTINF"))


def _text(path: str | Path) -> str | None:
    """A playlist file's text, whole (a day's recording in 2 s segments: 2 MB); None where
    it is not named as a playlist (a video is not read: it was, whole, into memory), is no
    plain file (a named pipe's reading would wait for a writer) or cannot be read."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES or not path.is_file():
        return None
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def _local(link: str) -> str:
    """A ``file:`` link as its path (OpenCV and FFmpeg take both; a path prints as one)."""
    if link.startswith("file:"):
        return urllib.request.url2pathname(urllib.parse.urlsplit(link).path)
    return link
