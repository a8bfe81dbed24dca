"""The demos on scikit-learn's bundled digits: the main job, Gaussian against SmoothAdv
(:mod:`.main`, with the denoised-smoothing demo), ℓ1 certificates (:mod:`.l1`) and the seven
training methods side by side (:mod:`.methods`).

The main job's and the ℓ1 demo's grids are sweep files shipped beside their modules
(``main.toml``, ``l1.toml``), run by the sweep engine through the same stages as every sweep,
their reports made from the records. The denoised and seven-method demos still call training
and the record loops themselves.

May import everything below the command line.
"""
