"""Noise sources: what :class:`smoothadv.Smooth` draws from and adds to inputs, below the
smoothing engine. Fixed-n and sequential certification consume any of them alike.

- ``gaussian``: float δ = σ·N(0, I) (:mod:`.gaussian`), the standard implementation;
- ``rounded_gaussian``: the sound sampler on the 8-bit grid (:mod:`.rounded`), whose
  certificates hold for the float computation;
- ``uniform`` and ``laplace`` (:mod:`.additive`) and ``splitting`` (:mod:`.splitting`) for ℓ1
  certificates, with their radii in :mod:`.radii`.

A source has ``kind``, ``draw(shape, generator, device)``, ``prepare(x)``,
``apply(clean, noise)`` and ``alpha_spent(samples, dims)`` (the error its sampler may add,
taken from α), ``training_noise(x, m, generator)`` (draws ε with x + σ·ε the noisy inputs, for
training), ``facts()`` (what a record keeps: λ) and the radius functions of :mod:`.radii`
(``radius``, ``p_needed``, ``norms``).
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Registry
from .additive import LaplaceNoise, UniformNoise
from .gaussian import GaussianNoise
from .radii import NORM_NAMES, NORMS, box_l1_radius, check_norm
from .rounded import LEVELS, GridRounded, RoundedGaussian, round_to_grid
from .rules import NOISE_CHOICES, check_l1_options, check_noise, check_smoothing
from .splitting import (
    DEFAULT_TEMPLATE,
    SplittingNoise,
    check_template,
    derandomized_steps,
    splitting_lambda,
    template_for,
)

NOISES: Registry[Callable[[float], object]] = Registry("noise")
NOISES.add("gaussian", GaussianNoise)
NOISES.add("rounded_gaussian", RoundedGaussian)
NOISES.add("uniform", UniformNoise)
NOISES.add("laplace", LaplaceNoise)
NOISES.add("splitting", SplittingNoise)


def create_noise(kind: str, sigma: float):
    """The noise source ``kind`` (see :data:`NOISES`) at level σ."""
    return NOISES.get(kind)(sigma)


def list_noises() -> list[str]:
    return NOISES.names()


__all__ = ["DEFAULT_TEMPLATE", "LEVELS", "NOISES", "NOISE_CHOICES", "NORMS", "NORM_NAMES",
           "GaussianNoise", "GridRounded", "LaplaceNoise", "RoundedGaussian", "SplittingNoise",
           "UniformNoise", "box_l1_radius", "check_l1_options", "check_noise", "check_norm",
           "check_smoothing", "check_template", "create_noise", "derandomized_steps",
           "list_noises", "round_to_grid", "splitting_lambda", "template_for"]
