"""What a sink raises: one line a user can act on."""


class SinkError(RuntimeError):
    """An output cannot be written or shown."""
