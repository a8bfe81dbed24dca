"""Certification beyond fixed-n CERTIFY: sequential (anytime-valid) decisions at given radii.

Fixed-n CERTIFY and PREDICT live in :mod:`smoothadv.smoothing`; this package holds the samplers
and decision rules that share its per-input noise streams (one generator per input, seeded from
the run seed and the input's index).
"""

from .sequential import SequentialCertifier, SequentialResult, piece_size

__all__ = ["SequentialCertifier", "SequentialResult", "piece_size"]
