"""Consistency regularisation (Jeong & Shin 2020), optionally on SmoothAdv's attacked points.

A loaded batch splits into m mini-batches of ⌊B/m⌋ images, each its own step with its own
m = 2 draws. One train-mode forward of the m·B noisy rows, z_ij = f(x_i + σε_ij);
loss = mean over the m·B rows of CE(z_ij, y_i)
     + mean_i [λ·(1/m)Σ_j KL(p̄_i ‖ p_ij) + η·H(p̄_i)],
p_ij = softmax(z_ij), p̄_i = mean_j p_ij **not detached** (the KL's target carries gradient),
H(p) = −Σ_c p_c log max(p_c, 1e−20). η = 0.5; λ = 20 / 10 / 10 at σ = 0.25 / 0.5 / 1.0.

With ``attack='pgd'`` (their SmoothAdv + consistency), x is first replaced by x′ from T steps
on the soft classifier over the same draws (eval mode, frozen weights): L = mean_i −log
max(p̄_{i,y_i}, 1e−20), step 2ε/T along g/(‖g‖₂ + 1e−8), then δ = x′ − x rescaled to norm ≤ ε
and **then** x′ = clip(x + δ, 0, 1) (projection before clipping, the opposite of SmoothAdv's
order); from x′ = x, ε warmed up as min(ε, (epoch+1)ε/10). Their settings: σ = 0.25: ε = 255/256,
T = 10, m = 4, λ = 2; σ = 0.5 and 1.0: ε = 2.0, T = 10, m = 2, λ = 1.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .base import (
    TrainingMethod,
    accuracy_logs,
    cross_entropy,
    entropy,
    kl_to,
    soft_classifier,
    warmup_epsilon,
)
from .registry import Option, per_sigma, register_method
from .steps import forward_draws, frozen_eval, soft_nll, unit_step

LAMBDA = {0.25: 20.0, 0.5: 10.0, 1.0: 10.0}
LAMBDA_ADV = {0.25: 2.0, 0.5: 1.0, 1.0: 1.0}
ADV_SETTINGS = {0.25: dict(epsilon=255 / 256, steps=10, num_noise=4),
                0.5: dict(epsilon=2.0, steps=10, num_noise=2),
                1.0: dict(epsilon=2.0, steps=10, num_noise=2)}


def consistency_terms(logits: torch.Tensor, lbd: float, eta: float,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean_i (1/m)Σ_j KL(p̄_i ‖ p_ij), mean_i H(p̄_i), their weighted sum) for logits
    [B, m, K]."""
    p_bar = soft_classifier(logits)
    kl = kl_to(p_bar.unsqueeze(1), logits).mean(1).mean()
    ent = entropy(p_bar).mean()
    return kl, ent, lbd * kl + eta * ent


def consistency_pgd(model, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
                    epsilon: float, steps: int) -> torch.Tensor:
    """The consistency code's SmoothAdv-PGD: x′ [B,C,H,W] in [0,1] within ε of x (see the
    module docstring); ``delta`` [B, m, C, H, W] are the step's own σ-scaled draws."""
    alpha = 2 * epsilon / steps
    adv = x.detach()
    with frozen_eval(model) as frozen:
        for _ in range(steps):
            adv = adv.requires_grad_(True)
            loss = soft_nll(soft_classifier(forward_draws(frozen, adv, delta)), y).mean()
            grad, = torch.autograd.grad(loss, [adv])
            adv = adv.detach() + alpha * unit_step(grad)
            eta = (adv - x).renorm(p=2, dim=0, maxnorm=epsilon)
            adv = (x + eta).clamp(0.0, 1.0).detach()
    return adv


class Consistency(TrainingMethod):
    name = "consistency"
    split = "floor"

    def __init__(self, *, sigma: float, num_noise: int, lbd: float, eta: float,
                 attack: str | None, epsilon: float, steps: int, warmup: int) -> None:
        """Every value as resolved by the registry (the defaults, with and without the
        attack, are the options')."""
        if attack not in (None, "pgd"):
            raise UserError(f"consistency takes --attack pgd or none, not {attack!r}")
        super().__init__(sigma=sigma, num_noise=num_noise)
        if self.num_noise < 2:
            raise UserError("consistency needs m ≥ 2 draws per image (--m-train)")
        self.lbd = float(lbd)
        self.eta = float(eta)
        self.adversarial = attack == "pgd"
        self.epsilon = float(epsilon)
        self.steps = int(steps)
        self.warmup = int(warmup)

    @property
    def input_gradients(self) -> bool:
        return self.adversarial  # its PGD steps on the input

    def epsilon_at(self, epoch: int) -> float:
        return warmup_epsilon(self.epsilon, epoch, self.warmup) if self.adversarial else 0.0

    def loss(self, model, x, y, noise, epoch=0, *, attack_model=None, generator=None,
             **draws):
        self.check_noise(x, noise, epoch)
        delta = noise.mul(self.sigma)
        if self.adversarial and self.epsilon_at(epoch) > 0:
            x = consistency_pgd(attack_model or model, x, y, delta, self.epsilon_at(epoch),
                                self.steps)
        logits = forward_draws(model, x, delta)  # [B, m, K]
        m = logits.shape[1]
        targets = y.repeat_interleave(m)
        xent = cross_entropy(logits.flatten(0, 1), targets)
        kl, ent, reg = consistency_terms(logits, self.lbd, self.eta)
        loss = xent + reg
        return loss, {"loss": loss.detach(), "xent": xent.detach(), "consistency": reg.detach(),
                      "kl": kl.detach(), "entropy": ent.detach(),
                      **accuracy_logs(logits.flatten(0, 1), targets)}


def _adv(key: str, plain: object):
    """A default that follows the authors' SmoothAdv + consistency table when attacking."""

    def default(sigma: float, resolved) -> object:
        if resolved.get("attack") is None:
            return plain
        return per_sigma({s: v[key] for s, v in ADV_SETTINGS.items()},
                         "consistency + SmoothAdv", f"--{key.replace('num_noise', 'm-train')}"
                         )(sigma, resolved)

    return default


def _lambda(sigma: float, resolved) -> float:
    table = LAMBDA_ADV if resolved.get("attack") else LAMBDA
    return per_sigma(table, "consistency λ", "--lbd")(sigma, resolved)


@register_method("consistency", options=(
    Option("attack", str, None, "pgd: SmoothAdv + consistency (their adversarial variant)",
           choices=("pgd",), default_text="none"),
    Option("num_noise", int, _adv("num_noise", 2), "m, noise draws per image (≥ 2)",
           flag="--m-train", default_text="2; with --attack pgd 4 / 2 / 2", at_least=1),
    Option("lbd", float, _lambda, "λ, the consistency term's weight",
           default_text="20 / 10 / 10 at σ = 0.25 / 0.5 / 1.0; with --attack pgd 2 / 1 / 1",
           at_least=0),
    Option("eta", float, 0.5, "η, the entropy term's weight", at_least=0),
    Option("epsilon", float, _adv("epsilon", 0.0), "ε of --attack pgd (l2, pixels)",
           default_text="with --attack pgd 255/256 / 2 / 2", at_least=0),
    Option("steps", int, _adv("steps", 0), "T, steps of --attack pgd",
           default_text="with --attack pgd 10", at_least=0),
    Option("warmup", int, 10, "grow ε linearly over the first K epochs", at_least=0),
), summary="consistency regularisation (Jeong & Shin 2020)")
def consistency(*, sigma: float, attack: str | None, num_noise: int, lbd: float, eta: float,
                epsilon: float, steps: int, warmup: int) -> Consistency:
    """Consistency regularisation (with ``attack='pgd'``: on SmoothAdv points)."""
    return Consistency(sigma=sigma, num_noise=num_noise, lbd=lbd, eta=eta, attack=attack,
                       epsilon=epsilon, steps=steps, warmup=warmup)
