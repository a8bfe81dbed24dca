"""One-shot diffusion denoising (Carlini et al., ICLR 2023), for any ``diffusers.UNet2DModel``
(or any ``unet(x_t, t)``) and its schedule's ᾱ.

The diffusion model works on [−1, 1] (x_in = 2x − 1), so pixel noise σ is model noise 2σ; the
timestep is the **first** t ≥ 1 with √(1 − ᾱ_t)/√ᾱ_t ≥ 2σ (no interpolation). One step:
x̂ = (x_t − √(1 − ᾱ)·ε_θ(x_t, t*))/√ᾱ, clipped to [−1, 1] and mapped back to [0, 1] (with a
learned-variance model, ε is the first half of the output channels).

The noise and the certificate. :class:`smoothadv.Smooth` adds δ ~ N(0, σ²I) in pixel space and
certifies with that σ. The denoiser receives y = x + δ and forms x_t = √ᾱ·(2y − 1) + s·ω with
s² = (1 − ᾱ) − 4σ²ᾱ ≥ 0 (``top_up``, the default), so x_t has exactly the variance √(1 − ᾱ)²
the model was trained for at t* (the authors instead add all the noise inside the model, at
the slightly larger pixel level σ_eff = √(1 − ᾱ)/(2√ᾱ) ≤ 1.006σ, and certify with σ: valid and
slightly conservative). ω is a fixed pseudo-random function of y (a 32-bit integer hash of each
coordinate's value and position, turned into normal draws by Box–Muller), so the whole base
classifier y ↦ f(D(y)) is a deterministic function of y: Cohen et al.'s theorem holds for any
measurable base classifier, so the certificate with σ is exact, and results stay identical
under resuming and repacking. (A base classifier with fresh internal randomness ω would be
covered too: with p_c(x) = E_δ E_ω 1[h(x + δ, ω) = c], each Monte Carlo sample is still an
independent Bernoulli(p_c(x)) draw and p_c is still the Gaussian convolution of a [0, 1]-valued
function, which is all the theorem uses; it would only break the bit-identical resume.)
``top_up=False`` is the exact-σ variant (Jeong & Shin 2023): x_t = √ᾱ(2y − 1), a model-noise
level 2σ√ᾱ slightly below the level √(1 − ᾱ) the model expects.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn


def timestep_for_sigma(alphas_cumprod, sigma: float) -> int:
    """t* = the first t ≥ 1 with √(1 − ᾱ_t)/√ᾱ_t ≥ 2σ (ᾱ indexed from 0, as diffusers and the
    authors' code index it)."""
    a = np.asarray(torch.as_tensor(alphas_cumprod, dtype=torch.float64).cpu())
    ratio = np.sqrt(1 - a) / np.sqrt(a)
    hits = np.nonzero(ratio[1:] >= 2 * sigma)[0]
    if len(hits) == 0:
        raise ValueError(f"no timestep of this schedule reaches the noise level 2σ = {2 * sigma}")
    return int(hits[0]) + 1


def linear_alphas_cumprod(steps: int = 1000, beta_start: float = 1e-4,
                          beta_end: float = 0.02) -> torch.Tensor:
    """ᾱ of the linear β schedule (DDPM), float64 [steps]."""
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


def cosine_alphas_cumprod(steps: int = 4000, s: float = 0.008) -> torch.Tensor:
    """ᾱ of the cosine schedule (Nichol & Dhariwal), β clipped at 0.999, float64 [steps]."""
    def f(t):
        return math.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2

    betas = torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(steps)],
                         dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


def _mix32(v: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32) on int64 tensors holding values in [0, 2³²)."""
    mask = 0xFFFFFFFF
    v = v ^ (v >> 16)
    v = (v * 0x7FEB352D) & mask
    v = v ^ (v >> 15)
    v = (v * 0x846CA68B) & mask
    return v ^ (v >> 16)


@lru_cache(maxsize=8)
def _position_salts(shape: tuple[int, ...], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two per-position salts of :func:`hash_normal`, computed once per input shape (the
    denoiser runs on the certification hot path)."""
    pos = torch.arange(math.prod(shape), device=device, dtype=torch.int64).view(shape)
    return _mix32(2 * pos + 1), _mix32(2 * pos + 2) ^ 0x9E3779B9


def hash_normal(y: torch.Tensor) -> torch.Tensor:
    """Standard-normal-distributed noise that is a fixed function of y [B, ...]: each
    coordinate's float32 bits and its position go through :func:`_mix32` twice, then
    Box–Muller. Same shape and dtype as y."""
    bits = y.detach().float().contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    salt1, salt2 = _position_salts(tuple(y.shape[1:]), str(y.device))
    h1 = _mix32(bits ^ salt1)
    h2 = _mix32(bits ^ salt2)
    u1 = (h1.to(torch.float64) + 0.5) / 2 ** 32
    u2 = (h2.to(torch.float64) + 0.5) / 2 ** 32
    z = torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
    return z.to(y.dtype)


class DiffusionDenoiser(nn.Module):
    """y = x + δ (pixels, [B,C,H,W]) → x̂ in [0,1] by one denoising step at t*(σ).

    Args:
        unet: ``unet(x_t, t)`` returning ε (a tensor or an object with ``.sample``); with
            2C output channels (learned variance) the first C are ε.
        alphas_cumprod: the schedule's ᾱ [T] (e.g. a diffusers scheduler's).
        sigma: the smoothing noise level in [0,1] pixel units.
        top_up: add the missing variance so that x_t has the model's level (module docstring).
        clip: clip x̂ to [−1, 1] before mapping back.
    """

    def __init__(self, unet: nn.Module, alphas_cumprod, sigma: float, top_up: bool = True,
                 clip: bool = True) -> None:
        super().__init__()
        self.unet = unet
        self.sigma = float(sigma)
        self.t = timestep_for_sigma(alphas_cumprod, self.sigma)
        a = float(torch.as_tensor(alphas_cumprod, dtype=torch.float64)[self.t])
        self.alpha_bar = a
        self.top_up = bool(top_up)
        self.clip = bool(clip)
        self.extra_std = math.sqrt(max(0.0, (1 - a) - 4 * self.sigma ** 2 * a))
        self.sigma_eff = math.sqrt(1 - a) / (2 * math.sqrt(a))

    def model_input(self, y: torch.Tensor) -> torch.Tensor:
        """x_t for the pixel-space noisy input y."""
        x_t = math.sqrt(self.alpha_bar) * (2 * y - 1)
        if self.top_up and self.extra_std > 0:
            x_t = x_t + self.extra_std * hash_normal(y)
        return x_t

    def epsilon(self, x_t: torch.Tensor) -> torch.Tensor:
        t = torch.full((x_t.shape[0],), self.t, device=x_t.device, dtype=torch.long)
        out = self.unet(x_t, t)
        out = getattr(out, "sample", out)
        if out.shape[1] == 2 * x_t.shape[1]:  # learned variance: ε first, then the variance
            out = out[:, : x_t.shape[1]]
        return out

    def denoise(self, x_t: torch.Tensor) -> torch.Tensor:
        """x̂ in [0,1] from x_t (one step)."""
        a = self.alpha_bar
        x0 = (x_t - math.sqrt(1 - a) * self.epsilon(x_t)) / math.sqrt(a)
        if self.clip:
            x0 = x0.clamp(-1.0, 1.0)
        return (x0 + 1) / 2

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.denoise(self.model_input(y))

    def extra_repr(self) -> str:
        return (f"sigma={self.sigma}, t={self.t}, alpha_bar={self.alpha_bar:.6f}, "
                f"top_up={self.top_up}, clip={self.clip}")


def load_diffusers(path_or_id: str, sigma: float, top_up: bool = True,
                   device: str | torch.device = "cpu") -> DiffusionDenoiser:
    """A :class:`DiffusionDenoiser` from a diffusers repository or folder: ``UNet2DModel``
    and a scheduler's ``alphas_cumprod`` (subfolders ``unet``/``scheduler`` as in a DDPM
    pipeline, or both at the top). Needs the optional ``diffusers`` package; a Hub id
    downloads. The authors' own improved-/guided-diffusion checkpoints use another attention
    layout that diffusers does not convert: they do not load here."""
    from pathlib import Path

    from ..errors import UserError

    try:
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError:  # pragma: no cover - the extra is installed by make test
        raise UserError("diffusion denoisers need the optional 'diffusers' package: "
                        "pip install 'smoothadv[denoise]'") from None
    local = Path(path_or_id)
    sub = "unet" if (local / "unet").is_dir() or not local.exists() else None
    try:
        unet = UNet2DModel.from_pretrained(path_or_id, subfolder=sub)
        sched_sub = "scheduler" if sub else None
        if local.exists() and not (local / "scheduler").is_dir():
            sched_sub = None
        scheduler = DDPMScheduler.from_pretrained(path_or_id, subfolder=sched_sub)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load a diffusion model from {path_or_id}: "
                        f"{str(err).strip().splitlines()[0]}") from None
    return DiffusionDenoiser(unet.to(device).eval(), scheduler.alphas_cumprod, sigma,
                             top_up=top_up)
