"""The demos on scikit-learn's bundled digits: the main job, Gaussian against SmoothAdv
(:mod:`.main`, with the denoised-smoothing demo), ℓ1 certificates (:mod:`.l1`) and the seven
training methods side by side (:mod:`.methods`).

May import everything below the command line.
"""
