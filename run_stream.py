"""Entry point: ``python run_stream.py --source clip.mp4 --output annotated.mp4``."""

from streamfer.cli import run

if __name__ == "__main__":
    run()
