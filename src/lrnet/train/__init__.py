"""Training, the library behind ``lrnet train``: ``setup``, ``train_step``, ``validate``, ``save``.

One sample's path: ``lrnet.data.build`` reads and augments it, ``train_step`` runs the model and
``StageLoss`` scores all six stages, ``validate`` scores every stage on the val split with
``evaluate``, and ``save`` writes the checkpoint that ``lrnet.checkpoint`` reads back.
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
