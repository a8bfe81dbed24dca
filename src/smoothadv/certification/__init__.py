"""Certification beyond fixed-n CERTIFY: sequential (anytime-valid) decisions at given radii.

Fixed-n CERTIFY and PREDICT live in :mod:`smoothadv.smoothing`; this package holds the decision
rules beyond them (the sequential certifier and its end test at the budget), which share its
per-input noise streams (one generator per input, seeded from the run seed and the input's
index). Noise sources (float and sound rounded Gaussian) live in :mod:`smoothadv.noise`.
"""

from .box import rebox_record
from .sequential import SequentialCertifier, SequentialResult, piece_size

__all__ = ["SequentialCertifier", "SequentialResult", "piece_size", "rebox_record"]
