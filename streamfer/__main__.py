"""``python -m streamfer``: the ``streamfer`` command (as ``streamfer.cli``), for a venv whose
scripts are not on the PATH."""

from streamfer.cli import entry

entry(prog_name="streamfer")
