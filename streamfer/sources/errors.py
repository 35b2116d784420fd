"""What a source raises: one line a user can act on."""


class SourceError(RuntimeError):
    """A source cannot be opened or read."""


class OutOfRange(SourceError):
    """A file holds no frame in the time range asked for (``--start``/``--end``)."""
