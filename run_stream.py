"""Entry point: ``python run_stream.py --source clip.mp4 --output annotated.mp4``."""

import sys

if __name__ == "__main__":
    try:
        from streamfer.cli import run
    except KeyboardInterrupt:  # Ctrl-C during start-up: nothing was written yet
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    run()
