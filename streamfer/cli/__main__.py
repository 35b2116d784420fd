"""``python -m streamfer.cli``: the ``streamfer`` command."""

from streamfer.cli import main

main()
