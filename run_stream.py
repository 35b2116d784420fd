"""Entry point: ``python run_stream.py --source clip.mp4 --output annotated.mp4``."""

import sys

if __name__ == "__main__":
    from streamfer.interrupts import deferred_interrupt

    try:
        with deferred_interrupt():  # held through the imports: a library could swallow it
            from streamfer.logs import filter_native_stderr

            filter_native_stderr()  # native libraries' noise, at any time of the run
            from streamfer.cli.run import run
    except KeyboardInterrupt:  # Ctrl-C during start-up: nothing was written yet
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    run()
