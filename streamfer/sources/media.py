"""Which files are photos and videos a run reads, and the ones a folder holds.

Example:
    >>> from streamfer.sources.media import list_media
    >>> list_media(Path("footage"))                                # doctest: +SKIP
    [PosixPath('footage/cam1/clip2.mp4'), PosixPath('footage/cam1/clip10.mp4')]
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from natsort import natsorted, ns

from streamfer.sources.hls import SUFFIXES, listed

log = logging.getLogger(__name__)

# The files a folder run takes: every kind a run of one file reads (FFmpeg, OpenCV), each
# checked by a run of its own (camcorders' .mts/.m2ts, broadcast .mxf, DVD .vob, DV, animated
# GIFs; AVIF, JPEG 2000, Netpbm, Targa photos)
VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
              ".ts", ".3gp", ".3g2", ".mts", ".m2ts", ".mxf", ".ogv", ".vob", ".dv", ".asf",
              ".f4v", ".m2v", ".m1v", ".qt", ".gif", ".apng"}
HEIF_EXTS = {".heic", ".heif", ".hif"}  # phones' photos: read by libheif (pillow-heif)
IMAGE_EXTS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff",
              ".avif", ".jp2", ".tga", ".pbm", ".pgm", ".ppm", ".pnm", *HEIF_EXTS}
# Photo and video kinds a folder run cannot read here, said (not passed over in silence):
# mimetypes' image/ and video/ names, and these it may not know
_OTHER_MEDIA = {".jxl", ".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf",
                ".orf", ".rw2", ".psd", ".braw", ".r3d"}


def list_media(folder: Path, skip: tuple[Path, ...] = (),
               left_out: list[Path] | None = None, marked: tuple[str, ...] = (),
               outputs: list[Path] | None = None) -> list[Path]:
    """Video and photo files below ``folder`` (recursively, through linked folders too, each
    folder once), in the order a file manager shows them (``clip2`` before ``clip10``, ``a``
    before ``B``, a folder's files together); never a hidden file or one in a hidden folder
    (our part files are hidden) nor anything below a folder of ``skip`` (a run's own output
    folders, when they lie inside ``folder``). A folder that cannot be listed is said (a
    warning). ``left_out``, if given, gets the photos and videos of kinds not read
    (``.jxl``, camera raw files), in the same order. A folder below ``folder`` holding a
    file named in ``marked`` (an earlier run's output folder, by its done-record) is not
    listed either, and is added to ``outputs`` if given. An HLS recording on disk is one
    video, its playlist (its master's, where it has renditions): its segments and its
    renditions' playlists are not listed."""
    folder = Path(folder)
    skip = tuple(Path(s).resolve() for s in skip)
    found, other, seen = [], [], set()
    playlists: dict[Path, set[Path]] = {}  # HLS playlists, their parts (sources.hls)

    def unlisted(exc: OSError) -> None:
        log.warning("cannot list %s: %s", exc.filename, exc.strerror or exc)

    links: list[Path] = []  # folders linked to: listed after every folder itself, so a
    # folder also linked to is listed under its own path, whatever order the disk gives

    def walk(top: Path, follow: bool) -> None:
        for root, dirs, files in os.walk(top, onerror=unlisted, followlinks=follow):
            here = Path(root)
            try:
                st = here.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:  # listed already (or a loop)
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            if here != folder:  # a run's output folder: this run's, or an earlier one's
                ours = any(here.resolve().is_relative_to(s) for s in skip)
                if ours or any(name in files for name in marked):
                    if outputs is not None and not ours:
                        outputs.append(here)
                    dirs[:] = []
                    continue
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if not follow:
                links.extend(here / d for d in dirs if (here / d).is_symlink())
            for name in files:
                p = here / name
                if p.suffix.lower() in SUFFIXES and not name.startswith(".") \
                        and not any(p.resolve().is_relative_to(s) for s in skip) \
                        and (its := listed(p)) is not None:  # an HLS playlist
                    playlists[p] = its
                    continue
                ours = p.suffix.lower() in VIDEO_EXTS | IMAGE_EXTS
                if name.startswith(".") \
                        or not ours and (left_out is None or not other_media(p)):
                    continue
                if any(p.resolve().is_relative_to(s) for s in skip) or not p.is_file():
                    continue
                (found if ours else other).append(p)

    walk(folder, follow=False)
    for link in sorted(links):
        walk(link, follow=True)
    # an HLS recording (a playlist, its renditions', their segments) is one video: its
    # playlist, read whole; its segments and its renditions' playlists are its parts
    parts = set().union(*playlists.values())
    found = [p for p in found + list(playlists) if p.resolve() not in parts]
    if left_out is not None:
        left_out.extend(natsorted(other, alg=ns.PATH | ns.IGNORECASE))
    return natsorted(found, alg=ns.PATH | ns.IGNORECASE)


def other_media(path: Path) -> bool:
    """A photo or video by its name, of a kind a folder run does not read."""
    import mimetypes

    suffix, kind = path.suffix.lower(), mimetypes.guess_type(path.name)[0] or ""
    return suffix not in VIDEO_EXTS | IMAGE_EXTS \
        and (suffix in _OTHER_MEDIA or kind.startswith(("image/", "video/")))


def animation_frames(path: str | Path) -> int:
    """The frames of an animation in an image file (an animated WebP, an APNG named
    ``.png``, an animated AVIF: the web's moving pictures, read as a video), or 0 for a still
    photo, or a file that cannot be read as one."""
    suffix = Path(path).suffix.lower()
    if suffix == ".avif":
        return _avif_frames(path)
    if suffix not in (".webp", ".png"):
        return 0
    from PIL import Image, UnidentifiedImageError

    try:
        if suffix == ".webp":  # its extended header's animation flag: Pillow's opening of
            with open(path, "rb") as f:  # a still WebP decodes it (66 ms a 12 MP photo)
                head = f.read(21)
            if head[:4] != b"RIFF" or head[8:16] != b"WEBPVP8X" or not head[20] & 0x02:
                return 0
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
    except (OSError, ValueError, UnidentifiedImageError):
        return 0
    return frames if frames > 1 else 0


def _avif_frames(path: str | Path) -> int:
    """The frames of an AVIF's animation (an image sequence, brand ``avis``, beside its
    still picture: FFmpeg lists the still as its first video track and the animation as its
    second), or 0: a still AVIF."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return 0
    end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = [head[i:i + 4] for i in (8, *range(16, end - 3, 4))]  # major, compatible
    if head[4:8] != b"ftyp" or b"avis" not in brands:
        return 0
    import av

    try:
        with av.open(str(path)) as container:
            if len(container.streams.video) < 2:
                return 0
            track = container.streams.video[1]
            return track.frames or sum(1 for packet in container.demux(track) if packet.size)
    except (OSError, av.FFmpegError):
        return 0


def avif_animation(path: str | Path, folder: Path) -> Path:
    """An animated AVIF's animation (its second video track, which OpenCV cannot pick: it
    reads the first, the still picture) copied, not decoded, into an MP4 file in ``folder``
    (its time base kept: Matroska's ms made 1/30 s 0.033), as OpenCV reads it."""
    import av

    copy = Path(folder) / (Path(path).stem + ".mp4")
    with av.open(str(path)) as source, av.open(str(copy), "w") as out:
        track = source.streams.video[1]
        kept = out.add_stream_from_template(track, opaque=True)
        for packet in source.demux(track):
            if packet.dts is None:  # the flush packet at the end
                continue
            packet.stream = kept
            out.mux(packet)
    return copy
