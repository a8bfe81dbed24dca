"""Stability training (Li et al. 2019), as the CAT-RS authors' port computes it.

One draw per image, no split; two train-mode forwards in this order: z = f(x) on the clean
batch, then z̃ = f(x + σε). loss = mean_i CE(z_i, y_i) + λ · mean_i Σ_c −softmax(z_i)_c ·
log_softmax(z̃_i)_c; the clean softmax is **not** detached (the gradient flows through both
passes). λ = 2, 2, 1 at σ = 0.25, 0.5, 1.0.
"""

from __future__ import annotations

from .base import TrainingMethod, accuracy_logs, cross_entropy
from .registry import Option, per_sigma, register_method

LAMBDA = {0.25: 2.0, 0.5: 2.0, 1.0: 1.0}


class Stability(TrainingMethod):
    name = "stability"

    def __init__(self, *, sigma: float, lbd: float) -> None:
        """λ as resolved by the registry (the default is the option's)."""
        super().__init__(sigma=sigma, num_noise=1)
        self.lbd = float(lbd)

    def loss(self, model, x, y, noise, epoch=0, *, attack_model=None, generator=None,
             **draws):
        self.check_noise(x, noise, epoch)
        clean = model(x)
        noisy = model(x + noise[:, 0].mul(self.sigma))
        ce = cross_entropy(clean, y)
        stab = -(clean.softmax(-1) * noisy.log_softmax(-1)).sum(-1).mean()
        loss = ce + self.lbd * stab
        return loss, {"loss": loss.detach(), "xent": ce.detach(), "stability": stab.detach(),
                      **accuracy_logs(noisy, y)}


@register_method("stability", options=(
    Option("lbd", float, per_sigma(LAMBDA, "stability λ", "--lbd"), "λ, the stability "
           "term's weight", default_text="2 / 2 / 1 at σ = 0.25 / 0.5 / 1.0", at_least=0),
), summary="stability training (Li et al. 2019; with uniform noise Yang et al. 2020's best "
            "ℓ1 setting)", noises=("gaussian", "uniform", "laplace", "splitting"))
def stability(*, sigma: float, lbd: float) -> Stability:
    """Stability training: CE on clean inputs plus λ × the cross-entropy of the noisy
    prediction against the clean softmax."""
    return Stability(sigma=sigma, lbd=lbd)
