"""SmoothMix (Jeong et al. 2021): mixup between a point and its unbounded adversarial walk.

Split into m mini-batches of ⌊B/m⌋ images (m = 2), the same draws δ_j = σε_j for attack and
loss. Attack (eval mode, frozen weights): x′ = x; for t = 0..T−1: if t = mix_step, x⁰ = x′;
L = Σ_i −log max(mean_j softmax(f(x′_i + δ_ij))_{y_i}, 1e−20); x′ ← clip(x′ + α·g/(‖g‖₂ + 1e−8),
0, 1) — **no ε-ball**. Finally x⁰ is pulled back to within warmup·α·mix_step of x (so x⁰ = x at
mix_step 0), and clipped; x^T is the last x′.

Loss: forward 1 on x⁰ + δ_j gives CE_ij and p̄_i = mean_j softmax (**not detached**);
λ_i ~ U[0, ½) per image (draw ``mix_weights`` [B]); x_mix = (1−λ)x⁰ + λx^T; ŷ_i = (1−λ_i)p̄_i +
λ_i/K; forward 2 on x_mix + δ_j; KL_ij = KL(ŷ_i ‖ softmax(f(x_mix,i + δ_ij))); c_i = 1[argmax
p̄_i = y_i]; loss = mean_ij CE_ij + η·warmup·mean_ij c_i·KL_ij, warmup = min(1, (epoch+1)/10).
Defaults: T = 4, α = 2σ, η = 5; mix_step 0 at σ = 0.25 and 1 at σ = 0.5, 1.0.
"""

from __future__ import annotations

import torch

from .base import TrainingMethod, accuracy_logs, cross_entropy, kl_to, soft_classifier
from .registry import Option, per_sigma, register_method
from .steps import forward_draws, frozen_eval, soft_nll, unit_step

MIX_STEP = {0.25: 0, 0.5: 1, 1.0: 1}


def smoothmix_walk(model, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, steps: int,
                   alpha: float, mix_step: int, pull: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x⁰, x^T): the SmoothMix attack (module docstring) with σ-scaled draws ``delta``
    [B, m, C, H, W]; ``pull`` = warmup·α·mix_step is x⁰'s final radius around x."""
    adv = x.detach()
    start = x.detach()
    with frozen_eval(model) as frozen:
        for t in range(steps):
            if t == mix_step:
                start = adv.detach()
            adv = adv.requires_grad_(True)
            loss = soft_nll(soft_classifier(forward_draws(frozen, adv, delta)), y).sum()
            grad, = torch.autograd.grad(loss, [adv])
            adv = (adv.detach() + alpha * unit_step(grad)).clamp(0.0, 1.0)
    start = (x + (start - x).renorm(p=2, dim=0, maxnorm=pull)).clamp(0.0, 1.0)
    return start.detach(), adv.detach()


class SmoothMix(TrainingMethod):
    own_input_gradients = True  # its adversarial steps on the input

    name = "smoothmix"
    split = "floor"

    def __init__(self, *, sigma: float, num_noise: int, steps: int, alpha: float, eta: float,
                 mix_step: int, warmup: int) -> None:
        """Every value as resolved by the registry (the defaults are the options')."""
        super().__init__(sigma=sigma, num_noise=num_noise)
        self.steps = int(steps)
        self.alpha = float(alpha)
        self.eta = float(eta)
        self.mix_step = int(mix_step)
        self.warmup = int(warmup)

    def warmup_at(self, epoch: int) -> float:
        return min(1.0, (epoch + 1) / self.warmup) if self.warmup > 0 else 1.0

    def loss(self, model, x, y, noise, epoch=0, *, attack_model=None, generator=None,
             mix_weights=None, **draws):
        self.check_noise(x, noise, epoch)
        delta = noise.mul(self.sigma)
        w = self.warmup_at(epoch)
        x0, x_t = smoothmix_walk(attack_model or model, x, y, delta, self.steps, self.alpha,
                                 self.mix_step, w * self.alpha * self.mix_step)
        logits = forward_draws(model, x0, delta)  # forward 1: [B, m, K]
        b, m, k = logits.shape
        targets = y.repeat_interleave(m)
        ce = cross_entropy(logits.flatten(0, 1), targets, reduction="none")
        p_bar = soft_classifier(logits)
        if mix_weights is None:
            mix_weights = torch.rand(b, generator=generator, device=x.device, dtype=x.dtype) / 2
        lam = mix_weights.to(x.dtype)
        x_mix = (1 - lam).view(-1, 1, 1, 1) * x0 + lam.view(-1, 1, 1, 1) * x_t
        y_mix = (1 - lam).view(-1, 1) * p_bar + lam.view(-1, 1) / k
        mixed = forward_draws(model, x_mix, delta)  # forward 2
        kl = kl_to(y_mix.unsqueeze(1), mixed)  # [B, m]
        correct = (p_bar.argmax(1) == y).to(kl.dtype).view(-1, 1)
        mix_term = (correct * kl).mean()
        loss = ce.mean() + self.eta * w * mix_term
        return loss, {"loss": loss.detach(), "xent": ce.mean().detach(), "mixup": mix_term.detach(),
                      **accuracy_logs(logits.flatten(0, 1), targets)}


@register_method("smoothmix", options=(
    Option("num_noise", int, 2, "m, noise draws per image", flag="--m-train", at_least=1),
    Option("steps", int, 4, "T, steps of the adversarial walk", at_least=1),
    Option("alpha", float, lambda s, r: 2 * s, "α, the walk's step size", default_text="2σ",
           above=0),
    Option("eta", float, 5.0, "η, the mixup term's weight", at_least=0),
    Option("mix_step", int, per_sigma(MIX_STEP, "SmoothMix mix_step", "--mix-step"),
           "the walk's step whose point is mixed", default_text="0 at σ = 0.25, 1 at 0.5 and "
           "1.0", at_least=0),
    Option("warmup", int, 10, "grow the mixup weight linearly over the first K epochs",
           at_least=0),
), summary="SmoothMix (Jeong et al. 2021)")
def smoothmix(*, sigma: float, num_noise: int, steps: int, alpha: float, eta: float,
              mix_step: int, warmup: int) -> SmoothMix:
    """SmoothMix: CE on x⁰ + δ plus η × KL of mixed points to mixed soft labels."""
    return SmoothMix(sigma=sigma, num_noise=num_noise, steps=steps, alpha=alpha, eta=eta,
                     mix_step=mix_step, warmup=warmup)
