"""CAT-RS (Jeong, Kim & Shin, AAAI 2023): confidence-aware training of smoothed classifiers.

Needs p_b, per training image the vote distribution of a σ = 0.25 Gaussian-trained teacher
(``smoothadv soft-labels``), passed as the draw ``soft_targets`` [B, K]. Split into m = 4
mini-batches of ⌊B/m⌋ images.

- Forward 1 (train mode): z_ij = f(x_i + δ_ij); w_i = fraction of the m argmaxes equal to y_i.
- Attack on the *noise* (eval mode, frozen weights): from δ⁰ = δ, T steps of
  L = Σ_i (1/m)Σ_j KL(p_b,i ‖ softmax(f(x_i + δ_ij))), δ ← δ + α·g/(‖g‖₂ + 1e−8) per (i, j) row,
  α = 2ε/T, δ − δ⁰ rescaled to norm ≤ ε per row, then each row re-standardised to δ⁰'s mean
  and **root-mean-square** (not std): δ ← μ⁰ + (δ − μ)/s · s⁰, s = √mean(δ²); never clipped.
- Forward 2 on x + δ*. K_i ~ Binomial(m, w_i) (draw ``accepted`` [B], before clamping),
  K_i ← max(K_i, 1); L_low,i = (1/m)·(sum of the K_i smallest CE_ij of forward 1);
  L_high,i = max_j KL(p_b,i ‖ softmax(z*_ij)); loss = mean_i (L_low,i + λ·L_high,i·1[K_i = m]).

ε = 1.0, T = 4, λ = 0.5 / 1.0 / 2.0 at σ = 0.25 / 0.5 / 1.0.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .base import TrainingMethod, accuracy_logs, cross_entropy, kl_to
from .registry import Option, per_sigma, register_method
from .steps import forward_draws, frozen_eval, unit_step

LAMBDA = {0.25: 0.5, 0.5: 1.0, 1.0: 2.0}


def rms_restandardise(delta: torch.Tensor, mu0: torch.Tensor, s0: torch.Tensor) -> torch.Tensor:
    """Each row of delta [N, ...] moved to mean ``mu0`` and root-mean-square ``s0`` ([N, 1…])."""
    flat = delta.flatten(1)
    mu = flat.mean(1).view_as(mu0)
    s = flat.pow(2).mean(1).sqrt().view_as(s0)
    return mu0 + (delta - mu) / s * s0


def catrs_noise_attack(model, x: torch.Tensor, soft: torch.Tensor, delta: torch.Tensor,
                       epsilon: float, steps: int) -> torch.Tensor:
    """δ* [B, m, C, H, W]: the CAT-RS attack on the σ-scaled draws ``delta`` against the soft
    targets ``soft`` [B, K] (module docstring)."""
    b, m = delta.shape[:2]
    d0 = delta.detach().flatten(0, 1)  # [B·m, C, H, W], input-major rows
    shape = (-1, *([1] * (d0.dim() - 1)))
    mu0 = d0.flatten(1).mean(1).view(shape)
    s0 = d0.flatten(1).pow(2).mean(1).sqrt().view(shape)
    rows_x = x.repeat_interleave(m, dim=0)
    rows_soft = soft.repeat_interleave(m, dim=0)
    alpha = 2 * epsilon / steps
    d = d0
    with frozen_eval(model) as frozen:
        for _ in range(steps):
            d = d.requires_grad_(True)
            loss = kl_to(rows_soft, frozen(rows_x + d)).sum() / m
            grad, = torch.autograd.grad(loss, [d])
            d = d.detach() + alpha * unit_step(grad)
            d = d0 + (d - d0).renorm(p=2, dim=0, maxnorm=epsilon)
            d = rms_restandardise(d, mu0, s0).detach()
    return d.view(b, m, *delta.shape[2:])


class CatRS(TrainingMethod):
    own_input_gradients = True  # its adversarial steps on the input

    name = "catrs"
    split = "floor"

    def __init__(self, *, sigma: float, num_noise: int, epsilon: float, steps: int,
                 lbd: float) -> None:
        """Every value as resolved by the registry (the defaults are the options')."""
        super().__init__(sigma=sigma, num_noise=num_noise)
        self.epsilon = float(epsilon)
        self.steps = int(steps)
        self.lbd = float(lbd)

    def needs(self) -> tuple[str, ...]:
        return ("soft_targets",)

    def loss(self, model, x, y, noise, epoch=0, *, attack_model=None, generator=None,
             soft_targets=None, accepted=None, **draws):
        self.check_noise(x, noise, epoch)
        if soft_targets is None:
            raise UserError("catrs needs each training image's soft targets p_b (write them "
                            "with `smoothadv soft-labels`, pass --soft-targets FILE)")
        delta = noise.mul(self.sigma)
        logits = forward_draws(model, x, delta)  # forward 1: [B, m, K]
        b, m, _ = logits.shape
        targets = y.repeat_interleave(m)
        ce = cross_entropy(logits.flatten(0, 1), targets, reduction="none").view(b, m)
        w = (logits.argmax(-1) == y.view(-1, 1)).to(x.dtype).mean(1)
        soft = soft_targets.to(x.dtype)
        d_star = catrs_noise_attack(attack_model or model, x, soft, delta, self.epsilon,
                                    self.steps)
        attacked = forward_draws(model, x, d_star)  # forward 2
        if accepted is None:
            accepted = torch.binomial(torch.full_like(w, float(m)), w, generator=generator)
        k = accepted.long().clamp_min(1)
        ranks = torch.arange(m, device=x.device).view(1, -1)
        low = (ce.sort(dim=1).values * (ranks < k.view(-1, 1))).sum(1) / m
        high = kl_to(soft.unsqueeze(1), attacked).max(dim=1).values
        full = (k == m).to(high.dtype)
        loss = (low + self.lbd * high * full).mean()
        return loss, {"loss": loss.detach(), "low": low.mean().detach(),
                      "high": (high * full).mean().detach(),
                      **accuracy_logs(attacked.flatten(0, 1), targets)}


@register_method("catrs", options=(
    Option("num_noise", int, 4, "m, noise draws per image", flag="--m-train",
           at_least=1),
    Option("epsilon", float, 1.0, "ε of the attack on the noise (l2, pixels)",
           at_least=0),
    Option("steps", int, 4, "T, steps of the attack on the noise", at_least=1),
    Option("lbd", float, per_sigma(LAMBDA, "CAT-RS λ", "--lbd"), "λ, the attacked term's "
           "weight", default_text="0.5 / 1 / 2 at σ = 0.25 / 0.5 / 1.0", at_least=0),
    Option("soft_targets", str, None, "per-image vote distributions p_b of a σ = 0.25 "
           "Gaussian teacher (smoothadv soft-labels); required"),
), needs=("soft_targets",), summary="CAT-RS (Jeong, Kim & Shin 2023)")
def catrs(*, sigma: float, num_noise: int, epsilon: float, steps: int, lbd: float,
          soft_targets: str | None) -> CatRS:
    """CAT-RS: the K easiest noisy CEs plus λ × the worst KL to p_b on attacked noise, for
    inputs whose every draw was correct (p_b reach the loss as the draw ``soft_targets``)."""
    return CatRS(sigma=sigma, num_noise=num_noise, epsilon=epsilon, steps=steps, lbd=lbd)
