"""Links: telling one, showing it without its secrets, why one is out of reach; a live
stream's clock (its bursts played at their own pace) and the backoff of connecting again.

Example:
    >>> from streamfer.sources.streams import redacted
    >>> redacted("rtsp://admin:s3cret@cam.local:554/live")
    'rtsp://admin:****@cam.local:554/live'
"""

from __future__ import annotations

import collections
import errno
import http.client
import itertools
import re
import shlex
import time
from collections.abc import Iterator

RECONNECT_S = 30.0  # how long a live source that dropped is tried again, by default
_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)  # waits between reconnect attempts (then the last, again)
NETWORK_TIMEOUT_MS = 5000  # a stream's open and each read give up after this
NOTHING_CAME = f"nothing came in {NETWORK_TIMEOUT_MS / 1000:g} s"
# FFmpeg's own lines when a stream's server does not answer ("[tcp @ 0x55…] Connection to
# tcp://127.0.0.1:9000 failed: Connection refused"): a drop is said in one line of ours
STREAM_OPEN_NOISE = re.compile(r"^\[ ?(ERROR|WARN|INFO)[^\]]*\] global |^\[\w+ @ 0x[0-9a-f]+\] ")


def attempts(within: float, stopped) -> Iterator[int]:
    """The attempts to connect again after a drop, each after a wait of backoff
    (:data:`_BACKOFF_S`), for up to ``within`` seconds from now; none more once ``stopped()``
    (checked through each wait)."""
    start = time.monotonic()
    for attempt in itertools.count():
        deadline = min(time.monotonic() + _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)],
                       start + within)
        while time.monotonic() < deadline:
            if stopped():
                return
            time.sleep(0.05)
        if time.monotonic() - start >= within or stopped():
            return
        yield attempt


def is_url(spec: str) -> bool:
    return "://" in spec


def as_read(spec: str) -> str:
    """``spec`` as a run reads it: a ``file://`` link (a browser's or a file manager's copy
    of a file's place) as the path it names — it was taken for a live stream, read to its
    end and again, without end —, a link's scheme in lower case, as links are read
    (FFmpeg knows no ``HTTP://``). Anything else as it is.

    Example:
        >>> as_read("file:///home/me/My%20Videos/clip.mp4"), as_read("RTSP://cam/live")
        ('/home/me/My Videos/clip.mp4', 'rtsp://cam/live')
    """
    import urllib.parse
    import urllib.request

    if not is_url(spec):
        return spec
    scheme, _, rest = spec.partition("://")
    if scheme.lower() == "file":
        parts = urllib.parse.urlsplit(spec)
        if parts.netloc.lower() in ("", "localhost"):  # (another host's: FFmpeg's to say)
            return urllib.request.url2pathname(parts.path)
    return f"{scheme.lower()}://{rest}"


# A query's (or a path's, as some cameras take them) parameters that hold a secret:
# ``password=``, ``pwd=`` (Foscam), ``token=``, ``access_token=``, ``api_key=``, a signed
# link's ``X-Amz-Signature=`` and ``X-Amz-Credential=``, ``sig=``, ``auth=``, ``key=``, an
# SRT link's ``passphrase=`` (its encryption's)
_SECRET_PARAM = re.compile(
    r"(?i)(?<=[?&;/])((?:[\w.-]*[_.-])?(?:pass|passwd|password|passphrase|pwd|psw|token|"
    r"secret|key|apikey|auth|authorization|sig|signature|credential|credentials)=)[^&;#/]*")


def redacted(url: str) -> str:
    """A link as it is shown and written (messages, the progress bar, the CSV's ``source``,
    the report), its secrets masked: the password of its user part (``rtsp://admin:****@cam``;
    a user part without one is masked whole, a token as pip masks it) and the values of its
    parameters that hold one. Anything not a link is returned as it is.

    Example:
        >>> redacted("rtsp://admin:s3cret@cam.local:554/Streaming/Channels/101")
        'rtsp://admin:****@cam.local:554/Streaming/Channels/101'
        >>> redacted("http://cam/videostream.cgi?user=admin&pwd=s3cret&rate=0")
        'http://cam/videostream.cgi?user=admin&pwd=****&rate=0'
        >>> redacted("srt://cam.local:9000?passphrase=s3cret-s3cret&latency=200")
        'srt://cam.local:9000?passphrase=****&latency=200'
        >>> redacted("https://ghp_abc123@example.com/clip.mp4"), redacted("clip.mp4")
        ('https://****@example.com/clip.mp4', 'clip.mp4')
    """
    if not is_url(url):
        return url
    scheme, _, rest = url.partition("://")
    cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority, rest = rest[:cut], rest[cut:]
    user, at, host = authority.rpartition("@")
    if at:
        name, colon, _ = user.partition(":")
        authority = f"{name}:****@{host}" if colon else f"****@{host}"
    return f"{scheme}://{authority}" + _SECRET_PARAM.sub(r"\1****", rest)


class StreamClock:
    """When each frame of a live stream is due, on our monotonic clock. A stream may come in
    bursts — live HLS a segment at a time, an encoder's first half second at once, a network
    that held packets back —; timed as read, a burst's frames had one moment (the CSV's
    ``time_s`` said 24 frames in 30 ms, then nothing for a second, and the video showed them
    so), and the newest-frame rule passed over all but the last few: a 24 fps HLS stream was
    analysed 3 times a second. A frame is now due a step of its own timestamps (its pts)
    after the frame before, as a player plays them — but never before it is read, and never
    held longer than the longest wait between two reads of the last ten seconds, times 1.5
    (a burst is spread until the next one comes, and no further): a stream's clock that
    runs fast (MJPEG over HTTP has no timestamps: FFmpeg makes them at a rate it guesses,
    25 fps for a 40 fps camera) cannot delay it more than that, and a stream joined with a
    backlog (HLS's first three segments, read at once) is not played late: its frames are due
    as read, the newest taken. A frame that would be due before one already given (a delay
    once needed, given back once such waits stop) is passed over (:meth:`due` gives None)."""

    WINDOW_S = 10.0  # how long the longest wait between two reads is kept in mind
    MAX_STEP_S = 1.0  # a step of the stream's clock past this, or back, is no step to keep

    def __init__(self) -> None:
        self.waits: collections.deque = collections.deque()  # (read at, wait before it)
        self.read: float | None = None  # when the last frame was read
        self.pts: float | None = None  # its timestamp
        self.last: float | None = None  # when the last frame given was due

    def due(self, pts: float | None, now: float) -> float | None:
        """When the frame of stream time ``pts`` (s; None: the stream has none), read at
        ``now``, is due: ``now`` or later, after the frame before; None where it is passed
        over."""
        if self.read is not None:
            self.waits.append((now, now - self.read))
        self.read = now
        while self.waits and self.waits[0][0] < now - self.WINDOW_S:
            self.waits.popleft()
        hold = 1.5 * max((wait for _, wait in self.waits), default=0.0)
        step = None if pts is None or self.pts is None else pts - self.pts
        if pts is not None:
            self.pts = pts
        if self.last is None or step is None or not 0 < step <= self.MAX_STEP_S:
            step, due = None, now  # the first frame, or no step to go by: as read
        else:
            due = max(now, min(self.last + step, now + hold))
        if self.last is not None and due <= self.last:
            if step is not None:
                return None
            due = self.last + 1e-3
        self.last = due
        return due


def unreachable(url: str) -> str | None:
    """Why a link OpenCV could not open is out of reach, in FFmpeg's words where it says
    (``Connection refused``, ``Server returned 404 Not Found``, ``Failed to resolve hostname
    cam.local: Name or service not known``); None where FFmpeg opens it after all."""
    import av
    import av.logging

    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as said:
            with av.open(url, timeout=NETWORK_TIMEOUT_MS / 1000):
                return None
    except av.ExitError:  # FFmpeg's wait ran out: a server that says nothing (UDP: no packet)
        return NOTHING_CAME
    except (OSError, av.FFmpegError, ValueError) as exc:
        if isinstance(exc, av.error.InvalidDataError) and (page := _not_media(url)):
            return page
        if isinstance(exc, av.error.ProtocolNotFoundError):  # SRT, RIST: not in its build
            scheme = url.split("://", 1)[0].lower()
            return (f"this FFmpeg, PyAV's, does not read {scheme}://: relay it through an "
                    f"FFmpeg that does, ffmpeg -i '{redacted(url)}' -c copy -f mpegts "
                    "udp://127.0.0.1:5000, and give --source udp://127.0.0.1:5000")
        if getattr(exc, "errno", None) not in (None, errno.EIO) and exc.strerror:
            return exc.strerror  # its own words: Connection refused, 404 Not Found
        lines = [line.strip() for _, _, line in said if line.strip()]
        return lines[-1] if lines else getattr(exc, "strerror", None) or str(exc)
    finally:
        av.logging.set_level(level)


# what asking an http(s) link in Python may raise (refused, timed out, malformed, a bad reply)
REQUEST_ERRORS = (OSError, ValueError, http.client.HTTPException)


def requested(url: str):
    """The reply of an http(s) ``url`` to a GET of ours (a context manager; headers, then
    its body as it is read), bounded as FFmpeg's opening is; raises one of
    :data:`REQUEST_ERRORS`. A link's ``user:password@`` answers its server's HTTP basic or
    digest challenge, as FFmpeg's reading answers it (urllib took it for the host's)."""
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    user, at, server = parts.netloc.rpartition("@")
    keys = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    if at:
        url = parts._replace(netloc=server).geturl()
        name, _, password = user.partition(":")
        keys.add_password(None, url, urllib.parse.unquote(name), urllib.parse.unquote(password))
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(keys),
                                         urllib.request.HTTPDigestAuthHandler(keys))
    return opener.open(urllib.request.Request(url, headers={"User-Agent": "streamfer"}),
                       timeout=NETWORK_TIMEOUT_MS / 1000)


def as_asked(link: str, asked: str) -> str:
    """``link`` (of a reply to ``asked``, or one it names) with ``asked``'s
    ``user:password@`` where both are of the same server, for FFmpeg to answer its
    challenge with; a link to another server goes without it, as a browser's would."""
    import urllib.parse

    mine, theirs = urllib.parse.urlsplit(asked), urllib.parse.urlsplit(link)
    user, at, server = mine.netloc.rpartition("@")
    if not at or (theirs.scheme, theirs.netloc) != (mine.scheme, server):
        return link
    return theirs._replace(netloc=f"{user}@{server}").geturl()


def dash_manifest(head: bytes, kind: str = "") -> bool:
    """Whether a file or reply that starts with ``head`` (its content type ``kind``) is an
    MPEG-DASH manifest (``.mpd``: XML whose root is ``<MPD``)."""
    return kind == "application/dash+xml" or b"<MPD" in head[:1024]


def through_a_pipe(spec: str) -> str:
    """Why a DASH manifest (a file or link) is not read, and the command that reads it: the
    FFmpeg in OpenCV has no DASH demuxer, and PyAV's opens no manifest here ("Invalid data");
    the ``ffmpeg`` of imageio-ffmpeg (and most) reads one, and a run reads what it sends
    through a pipe (``--source -``)."""
    return (f"an MPEG-DASH manifest, which OpenCV's FFmpeg does not read: pipe it in, ffmpeg "
            f"-i {shlex.quote(redacted(spec))} -c copy -f mpegts - | streamfer run --source "
            "- …")


def _not_media(url: str) -> str | None:
    """Why FFmpeg found no media at an http(s) link, where the link is a web page (a video
    site's ``watch?v=`` page, a camera's settings page: FFmpeg said only "Invalid data found
    when processing input") or a DASH manifest; None where it is neither, or cannot be
    told."""
    if url.split("://", 1)[0].lower() not in ("http", "https"):
        return None
    try:
        with requested(url) as reply:
            kind, head = reply.headers.get_content_type(), reply.read(1024)
    except REQUEST_ERRORS:
        return None
    if dash_manifest(head, kind):
        return through_a_pipe(url)
    if kind not in ("text/html", "application/xhtml+xml"):
        return None
    return (f"a web page ({kind}), not a video: a video site's page is not its video; give "
            "the video's own link (yt-dlp -g prints it) or a file")
