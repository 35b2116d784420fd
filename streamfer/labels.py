"""The six emotions, in the order of the model's outputs."""

EMOTIONS: tuple[str, ...] = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger")
N_LABELS = len(EMOTIONS)


def check_threshold(value: float | dict[str, float]) -> float | dict[str, float]:
    """``value`` (one threshold for all labels, or some labels' own), refused with
    :class:`ValueError` unless each is a score from 0 to 1: a sigmoid output is a
    probability, so a threshold outside that labels every face or none."""
    unknown = [k for k in value if k not in EMOTIONS] if isinstance(value, dict) else []
    if unknown:
        raise ValueError(f"{unknown[0]!r}: not a label (the labels: {', '.join(EMOTIONS)})")
    named = value.items() if isinstance(value, dict) else [("", value)]
    for label, v in named:
        if not 0.0 <= float(v) <= 1.0:  # NaN fails too
            said = f"{v:g}" if isinstance(v, (int, float)) else repr(v)
            raise ValueError(f"{label + '=' if label else ''}{said}: a threshold is a score "
                             "from 0 to 1 (each output is a probability)")
    return value
