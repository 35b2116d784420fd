"""The six emotions, in the order of the model's outputs."""

EMOTIONS: tuple[str, ...] = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger")
N_LABELS = len(EMOTIONS)
