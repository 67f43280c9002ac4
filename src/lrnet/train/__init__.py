"""Training, the library behind ``lrnet train``: ``setup``, ``train_step``, ``validate``, ``save``.

One sample's path: ``lrnet.data.build`` reads and augments it, ``train_step`` runs the model and
``StageLoss`` scores all six stages, ``validate`` scores every stage on the val split with
``evaluate``, and ``save`` writes the checkpoint that ``lrnet.checkpoint`` reads back.

- ``folder``: the run folder's file names, and what a new run may replace there (``OldRun``).
- ``log``: ``RunLog``, rank 0's history.jsonl, TensorBoard and progress.
- ``run``: ``Run`` and ``TrainState``, and ``setup``, which builds them from a config.
- ``loop``: ``train_step``, ``validate``, ``save`` and ``train``.
"""

from lrnet.train.folder import BEST, CLASS_WEIGHTS, HISTORY, LAST
from lrnet.train.loop import save, train, train_step, validate
from lrnet.train.run import Run, TrainState, class_weights, setup

__all__ = [
    "BEST",
    "CLASS_WEIGHTS",
    "HISTORY",
    "LAST",
    "Run",
    "TrainState",
    "class_weights",
    "save",
    "setup",
    "train",
    "train_step",
    "validate",
]
