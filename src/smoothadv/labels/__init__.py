"""Labels a teacher gives: per-image vote distributions under noise (:mod:`.soft`, CAT-RS's p_b)
and pseudo-labels for unlabelled images (:mod:`.pseudo`, for self-training).

May import: errors, data, models, smoothing.
"""
