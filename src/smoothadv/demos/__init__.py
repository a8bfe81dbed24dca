"""The demos on scikit-learn's bundled digits: the main job, Gaussian against SmoothAdv
(:mod:`.main`, with the denoised-smoothing demo), ℓ1 certificates (:mod:`.l1`) and the seven
training methods side by side (:mod:`.methods`).

The main job's grid is a sweep file shipped beside its module (``main.toml``), run by the sweep
engine through the same train and certify stages as every sweep, its report made from the
records. The ℓ1, denoised and seven-method demos still call training and the record loops
themselves.

May import everything below the command line.
"""
