"""MACER (Zhai et al. 2020): maximise the certified radius directly.

No split; k = 16 draws per image, one train-mode forward of B·k rows, z [B, k, K].
- CL = Σ_i −log(p̄_{i,y_i} + 1e−10), p̄ = mean_j softmax(z_ij) (a **sum** over the batch);
- with β = 16, p̄β = mean_j softmax(β·z_ij); its top two values v₁ ≥ v₂ and top class;
  ξ_i = Φ⁻¹(v₁) − Φ⁻¹(v₂). An input counts when its top class is y_i, ξ_i is finite and
  ξ_i ≤ γ = 8; RL = Σ_counted (σ/2)(γ − ξ_i), with gradients through v₁ and v₂ (ξ is
  recomputed on the counted inputs, as the authors do, so that an infinite Φ⁻¹(1) elsewhere
  leaves no NaN in the gradient);
- loss = (CL + λ·RL) / B over **all** B inputs.

Φ⁻¹ is computed as the authors do, √2·erfinv(2p − 1) in the inputs' dtype (float32 in
training; it differs from ``scipy.special.ndtri`` by up to 3e−5 near p = 1 in float32, and
agrees in float64). λ = 12 at σ = 0.25 (the original README); the CAT-RS authors' re-run used
12 / 6 / 12 at σ = 0.25 / 0.5 / 1.0, and at σ = 1.0 λ = 0 while epoch ≤ 50 (``deferred`` = 51:
the number of first epochs, counted from 0, trained with λ = 0).
The original code states no λ for σ = 0.5 and 1.0: the defaults here are the re-run's.
"""

from __future__ import annotations

import math

import torch

from .base import TrainingMethod, accuracy_logs, soft_classifier
from .registry import Option, per_sigma, register_method
from .steps import forward_draws

LAMBDA = {0.25: 12.0, 0.5: 6.0, 1.0: 12.0}
DEFERRED = {0.25: 0, 0.5: 0, 1.0: 51}


def default_deferral(sigma: float) -> int:
    """The epochs MACER trains with λ = 0 at σ by its authors' re-run (51 at σ = 1.0), else 0."""
    return next((v for s, v in DEFERRED.items() if math.isclose(s, sigma)), 0)


def probit(p: torch.Tensor) -> torch.Tensor:
    """Φ⁻¹(p) = √2·erfinv(2p − 1), the authors' formula (torch.distributions.Normal.icdf)."""
    return math.sqrt(2.0) * torch.erfinv(2 * p - 1)


class Macer(TrainingMethod):
    name = "macer"

    def __init__(self, *, sigma: float, num_noise: int, lbd: float, beta: float, gamma: float,
                 deferred: int) -> None:
        """Every value as resolved by the registry (the defaults are the options')."""
        super().__init__(sigma=sigma, num_noise=num_noise)
        self.lbd = float(lbd)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.deferred = int(deferred)

    def lambda_at(self, epoch: int) -> float:
        """λ, or 0 during the first ``deferred`` epochs (epoch < deferred)."""
        return 0.0 if epoch < self.deferred else self.lbd

    def loss(self, model, x, y, noise, epoch=0, *, attack_model=None, generator=None,
             **draws):
        self.check_noise(x, noise, epoch)
        b = x.shape[0]
        logits = forward_draws(model, x, noise.mul(self.sigma))  # [B, k, K]
        p_bar = soft_classifier(logits)
        cl = -(p_bar.gather(1, y.view(-1, 1)).squeeze(1) + 1e-10).log().sum()
        p_beta = (self.beta * logits).softmax(-1).mean(1)
        top = p_beta.topk(2, dim=1)
        with torch.no_grad():  # which inputs count; Φ⁻¹(1) = ∞ must not reach the gradient
            xi_all = probit(top.values[:, 0]) - probit(top.values[:, 1])
            counted = (top.indices[:, 0] == y) & torch.isfinite(xi_all) & (xi_all <= self.gamma)
        # recomputed with gradients on the counted inputs only; the others are replaced by ½
        # (a finite probit, and no gradient reaches them): no boolean indexing, which would
        # wait for the GPU to say how many inputs count
        v = torch.where(counted[:, None], top.values, torch.full_like(top.values, 0.5))
        xi = probit(v[:, 0]) - probit(v[:, 1])
        rl = (self.sigma / 2) * torch.where(counted, self.gamma - xi, torch.zeros_like(xi)).sum()
        lbd = self.lambda_at(epoch)
        loss = (cl + lbd * rl) / b
        return loss, {"loss": loss.detach(), "cl": cl.detach() / b, "rl": rl.detach() / b,
                      "counted": counted.sum(),
                      **accuracy_logs(logits.flatten(0, 1), y.repeat_interleave(logits.shape[1]))}


@register_method("macer", options=(
    Option("num_noise", int, 16, "k, noise draws per image", flag="--m-train", at_least=1),
    Option("lbd", float, per_sigma(LAMBDA, "MACER λ", "--lbd"), "λ, the radius term's weight",
           default_text="12 / 6 / 12 at σ = 0.25 / 0.5 / 1.0", at_least=0),
    Option("beta", float, 16.0, "β, the inverse temperature", above=0),
    Option("gamma", float, 8.0, "γ, the hinge", at_least=0),
    Option("deferred", int, lambda s, r: default_deferral(s),
           "train the first K epochs with λ = 0", default_text="51 at σ = 1.0, else 0", at_least=0),
), summary="MACER (Zhai et al. 2020)")
def macer(*, sigma: float, num_noise: int, lbd: float, beta: float, gamma: float,
          deferred: int) -> Macer:
    """MACER: soft-classifier cross-entropy plus λ × a hinge on the certified radius."""
    return Macer(sigma=sigma, num_noise=num_noise, lbd=lbd, beta=beta, gamma=gamma,
                 deferred=deferred)
