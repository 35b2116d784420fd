"""``python -m streamfer.cli``: the ``streamfer`` command."""

from streamfer.cli import entry

entry()
