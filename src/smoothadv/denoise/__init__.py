"""Denoised smoothing: certify any pre-trained classifier f as the base classifier f(D(·)).

- :mod:`.dncnn`: the DnCNN denoiser of Salman et al. (2020) and :mod:`.training` its
  objectives (MSE, Stab, CLF; white-box or query access);
- :mod:`.diffusion`: one-shot denoising with a diffusion model (Carlini et al. 2023);
- :mod:`.compose`: the composition with a classifier (ours, timm or torchvision) into one
  eval-mode module.

The core package imports without the optional ``diffusers`` and ``timm``; only the loaders
that need them import them.
"""

from .compose import DenoisedClassifier, compose, load_classifier, load_denoiser
from .diffusion import DiffusionDenoiser, timestep_for_sigma
from .dncnn import DnCNN

__all__ = ["DenoisedClassifier", "DiffusionDenoiser", "DnCNN", "compose", "load_classifier",
           "load_denoiser", "timestep_for_sigma"]
