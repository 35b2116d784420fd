"""Ctrl-C is held to a safe point and never lost (run in a child process: it signals itself)."""

import subprocess
import sys

PROGRAM = """
import os, signal, time
from streamfer.interrupts import deferred_interrupt

def library_import():  # as OpenCV's loader does: a bare except around an import
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
    except:  # noqa: E722
        pass

library_import()
print("lost", flush=True)  # unheld, the library swallowed the Ctrl-C
try:
    with deferred_interrupt():
        library_import()
        print("held", flush=True)  # the block ends as it would ...
except KeyboardInterrupt:
    print("raised", flush=True)  # ... and then the interrupt is raised
"""


def test_a_ctrl_c_a_library_would_swallow_is_held_and_raised_after():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["lost", "held", "raised"], done.stderr
