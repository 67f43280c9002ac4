"""lrnet: the Label Refinement Network (Islam et al., arXiv 1703.00551) for coarse-to-fine segmentation."""

from lrnet._errors import LrnetError
from lrnet.loss import StageLoss
from lrnet.models import LabelRefinementNetwork, SegNet, build_model

__version__ = "0.1.0"

__all__ = [
    "LabelRefinementNetwork",
    "LrnetError",
    "SegNet",
    "StageLoss",
    "__version__",
    "build_model",
]
