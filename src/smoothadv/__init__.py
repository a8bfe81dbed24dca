"""smoothadv: provably l2-robust classifiers by randomized smoothing, and SmoothAdv.

Public surface::

    from smoothadv import Smooth, Certificate, Prediction, ABSTAIN
    from smoothadv.models import create_model, load_checkpoint, save_checkpoint
    from smoothadv.data import create_dataset
    from smoothadv import stats, attacks, analysis
"""

from .errors import UserError
from .smoothing import ABSTAIN, Certificate, Prediction, Smooth, input_seed

__version__ = "0.1.0"
__all__ = ["ABSTAIN", "Certificate", "Prediction", "Smooth", "UserError", "input_seed"]
