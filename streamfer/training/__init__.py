"""The model's corner, apart from the run-time path (which imports none of it): datasets
(:mod:`~streamfer.training.data`), training (:mod:`~streamfer.training.train`), metrics
(:mod:`~streamfer.training.evaluate`) and the ``fer`` package's model scored beside ours
(:mod:`~streamfer.training.peer`). Needs the ``train`` extra (TensorFlow, scikit-learn)."""


class TrainingError(ValueError):
    """A training set-up that cannot run (the command line says so in one line)."""
