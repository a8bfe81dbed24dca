"""Noise sources: what :class:`smoothadv.Smooth` draws from and adds to inputs, below the
smoothing engine. Fixed-n and sequential certification consume any of them alike.

- ``gaussian``: float δ = σ·N(0, I) (:mod:`.gaussian`), the standard implementation;
- ``rounded_gaussian``: the sound sampler on the 8-bit grid (:mod:`.rounded`), whose
  certificates hold for the float computation.

A source has ``kind``, ``draw(shape, generator, device)``, ``prepare(x)``,
``apply(clean, noise)`` and ``alpha_spent(samples, dims)`` (the error its sampler may add,
taken from α). Uniform and Laplace noise for ℓ1/ℓ∞ certificates would register here.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Registry
from .gaussian import GaussianNoise
from .rounded import LEVELS, GridRounded, RoundedGaussian, round_to_grid

NOISES: Registry[Callable[[float], object]] = Registry("noise")
NOISES.add("gaussian", GaussianNoise)
NOISES.add("rounded_gaussian", RoundedGaussian)


def create_noise(kind: str, sigma: float):
    """The noise source ``kind`` (see :data:`NOISES`) at level σ."""
    return NOISES.get(kind)(sigma)


def list_noises() -> list[str]:
    return NOISES.names()


__all__ = ["LEVELS", "NOISES", "GaussianNoise", "GridRounded", "RoundedGaussian",
           "create_noise", "list_noises", "round_to_grid"]
