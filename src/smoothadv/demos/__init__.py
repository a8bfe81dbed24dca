"""The demos on scikit-learn's bundled digits: the main job, Gaussian against SmoothAdv
(:mod:`.main`, with the denoised-smoothing demo), ℓ1 certificates (:mod:`.l1`) and the seven
training methods side by side (:mod:`.methods`).

The main job's, the ℓ1 and the denoised demos' grids are sweep files shipped beside their
modules (``main.toml``, ``l1.toml``, ``denoised.toml``), run by the sweep engine through the
same stages as every sweep, their reports made from the records. The seven-method demo still
calls training and the shared-noise record loop itself.

May import everything below the command line.
"""
