"""Which noise, norm and certificate options go together: one rule, used by the configs (to
refuse before any work) and by :class:`smoothadv.Smooth` (for library callers)."""

from __future__ import annotations

from ..errors import UserError
from .additive import LaplaceNoise, UniformNoise
from .gaussian import GaussianNoise
from .radii import NORM_NAMES, check_norm
from .splitting import SplittingNoise

FAMILIES = {"gaussian": GaussianNoise, "uniform": UniformNoise, "laplace": LaplaceNoise,
            "splitting": SplittingNoise}
NOISE_CHOICES = tuple(FAMILIES)  # what --noise takes
L1_OPTION_NOISES = ("uniform", "splitting")  # the noises --two-sided and --box are proved for


def check_noise(noise: str) -> str:
    if noise not in FAMILIES:
        raise UserError(f"unknown noise {noise!r}; choose {', '.join(NOISE_CHOICES)}")
    return noise


def check_smoothing(noise: str, norm: str, sound: bool = False) -> None:
    """Refuse, in one line, an unknown noise or norm, a norm the noise certifies no radius in
    (ℓ2 with anything but Gaussian noise), and ``sound`` with a non-Gaussian noise."""
    check_noise(noise)
    check_norm(norm)
    if sound and noise != "gaussian":
        raise UserError(f"--sound is the rounded Gaussian sampler; it does not take "
                        f"--noise {noise}")
    if norm not in FAMILIES[noise].norms:
        raise UserError(f"{noise} noise certifies ℓ1 (and ℓ∞ through it), not "
                        f"{NORM_NAMES[norm]}: give --norm l1 (or linf), or --noise gaussian")


def check_l1_options(noise: str, norm: str, two_sided: bool = False,
                     box: bool = False) -> None:
    """Refuse ``two_sided`` or ``box`` with a noise they are not proved for, and ``box`` outside
    ℓ1."""
    if (two_sided or box) and noise not in L1_OPTION_NOISES:
        raise UserError("--two-sided and --box are certificates of uniform and splitting "
                        "noise (give --noise uniform or splitting)")
    if box and norm != "l1":
        raise UserError("--box is an ℓ1 certificate: give --norm l1")
