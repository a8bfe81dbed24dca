"""SmoothAdv: adversarial attacks on the *smoothed* classifier (Salman et al., 2019).

Both attacks maximise one loss, the cross-entropy of the soft smoothed classifier estimated
with m fixed noise draws δ_1..δ_m ~ N(0, σ²I):

    L(x') = −log( (1/m) Σ_i softmax(F(x' + δ_i))_y )        (clamped away from log 0)

SmoothAdv-PGD takes T ℓ2-normalised ascent steps of size 2ε/T, projecting onto the ε-ball and
[0,1]; SmoothAdv-DDN (Rony et al., 2019) decouples direction and norm. The gradient is either
back-propagated (``estimator="grad"``) or estimated without back-propagating through f
(``estimator="no_grad"``): ∇ E_δ[h(x+δ)] = E_δ[h(x+δ)·δ]/σ² (Stein's lemma).

Attacks hold hyper-parameters only and are called as ``attack(smooth, x, y, noise=None)``
on a batch x [B,C,H,W] in [0,1]. They run the model in eval mode with its parameters frozen,
and restore the caller's training mode and ``requires_grad`` flags afterwards.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn as nn

from .errors import UserError, check_epsilon, check_positive_int
from .registry import Registry
from .smoothing import Smooth, eval_mode

LOG_CLAMP = 1e-20  # G_y is clamped here before the log, as in the paper's code
ESTIMATORS = ("grad", "no_grad")

ATTACKS: Registry[type[SmoothAdvAttack]] = Registry("attack")


def list_attacks() -> list[str]:
    return ATTACKS.names()


def create_attack(name: str, **kwargs) -> SmoothAdvAttack:
    """Build a registered attack (``pgd`` or ``ddn``) from keyword hyper-parameters."""
    return ATTACKS.get(name)(**kwargs)


def attack_from_options(name: str, *, epsilon: float, steps: int, num_noise_vectors: int,
                        no_grad: bool = False, ddn_gamma: float | None = None,
                        ddn_init_norm: float = 1.0) -> SmoothAdvAttack:
    """An attack from command-line style options (DDN's own options only reach DDN)."""
    kwargs: dict = dict(epsilon=epsilon, steps=steps, num_noise_vectors=num_noise_vectors,
                        estimator="no_grad" if no_grad else "grad")
    if name == "ddn":
        kwargs.update(gamma=ddn_gamma, init_norm=ddn_init_norm)
    return create_attack(name, **kwargs)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter; both restored afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    with eval_mode(model):
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield model
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)


def _norms(t: torch.Tensor) -> torch.Tensor:
    """Per-example ℓ2 norms of t [B, ...] as [B, 1, 1, ...] (broadcastable)."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _unit(direction: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Normalise each example to unit ℓ2 norm; a zero vector becomes a random direction."""
    norms = _norms(direction)
    zero = norms.flatten() == 0
    if zero.any():
        rand = torch.randn(direction[zero].shape, generator=generator,
                           device=direction.device, dtype=direction.dtype)
        direction = direction.clone()
        direction[zero] = rand
        norms = _norms(direction)
    return direction / norms


def project(x: torch.Tensor, x_adv: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Project x_adv onto {‖x_adv − x‖₂ ≤ ε} ∩ [0,1]ⁿ, per example.

    Ball first, then box: clamping moves each coordinate toward x (which lies in [0,1]), so
    the result stays inside the ball.
    """
    delta = x_adv - x
    scale = (epsilon / _norms(delta).clamp_min(1e-12)).clamp(max=1.0)
    return (x + delta * scale).clamp(0.0, 1.0)


class SmoothAdvAttack:
    """Shared machinery: the soft loss, its gradient (two estimators), noise, model state.

    Args (keyword-only):
        epsilon: ℓ2 radius in pixel space (the paper's eps_255 is 0.996).
        steps: iterations T ≥ 1.
        num_noise_vectors: noise draws m per input for the soft classifier.
        estimator: "grad" (back-propagate) or "no_grad" (Stein estimate, no backward).
        targeted: if True, y holds target classes and the attack maximises log G_y.
    """

    def __init__(self, *, epsilon: float, steps: int, num_noise_vectors: int = 1,
                 estimator: str = "grad", targeted: bool = False) -> None:
        self.epsilon = check_epsilon(epsilon)
        self.steps = check_positive_int(steps, "steps")
        self.num_noise_vectors = check_positive_int(num_noise_vectors, "num_noise_vectors")
        if estimator not in ESTIMATORS:
            raise UserError(f"unknown estimator {estimator!r}; choose grad or no_grad")
        self.estimator = estimator
        self.targeted = bool(targeted)

    def _params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------- loss, gradient

    def _objective(self, probs_y: torch.Tensor) -> torch.Tensor:
        """Per-example objective to *maximise* from G_y: −log G_y, or log G_y if targeted."""
        log_g = probs_y.clamp_min(LOG_CLAMP).log()
        return log_g if self.targeted else -log_g

    def ascent_direction(self, smooth: Smooth, x_adv: torch.Tensor, y: torch.Tensor,
                         noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(direction [B,C,H,W] of increasing objective, soft probabilities G [B,K]).

        The direction is the exact gradient ("grad") or the Stein estimate ("no_grad");
        only its direction matters, since both attacks normalise it.
        """
        if self.estimator == "grad":
            x_var = x_adv.detach().requires_grad_(True)
            with torch.enable_grad():
                probs = smooth.soft_forward(x_var, noise=noise)
                objective = self._objective(probs.gather(1, y[:, None]).squeeze(1))
                (grad,) = torch.autograd.grad(objective.sum(), x_var)
            return grad, probs.detach()
        with torch.no_grad():
            b, m = noise.shape[:2]
            noisy = (x_adv.unsqueeze(1) + noise).reshape(b * m, *x_adv.shape[1:])
            per_draw = torch.softmax(smooth.base_classifier(noisy), dim=1).view(b, m, -1)
            probs = per_draw.mean(dim=1)
            term = per_draw.gather(2, y.view(b, 1, 1).expand(b, m, 1)).squeeze(2)  # [B, m]
            # ∇G_y ≈ mean_i (t_i − t̄)·δ_i/σ²; the mean t̄ is a control variate (E[δ] = 0).
            weights = (term - term.mean(dim=1, keepdim=True)) / smooth.sigma**2
            grad_g = (weights.view(b, m, *([1] * (noise.dim() - 2))) * noise).mean(dim=1)
            # d(−log G_y) = −∇G_y / G_y; targeted flips the sign.
            scale = probs.gather(1, y[:, None]).clamp_min(LOG_CLAMP)
            scale = scale.view(-1, *([1] * (x_adv.dim() - 1)))
            grad = grad_g / scale if self.targeted else -grad_g / scale
        return grad, probs

    def is_adversarial(self, probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Whether the soft classifier's top class already fools (or hits the target)."""
        pred = probs.argmax(dim=1)
        return pred == y if self.targeted else pred != y

    # ------------------------------------------------------------------------- calling

    def __call__(self, smooth: Smooth, x: torch.Tensor, y: torch.Tensor,
                 noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None,
                 epsilon: float | None = None) -> torch.Tensor:
        """Attack a batch x [B,C,H,W] in [0,1] with labels (or targets) y [B].

        ``noise``: δ draws [B, m, C, H, W] already scaled by σ (the training loop passes the
        draws it will train on); sampled with ``generator`` when None. ``epsilon`` overrides
        the attack's radius for this call (the training warm-up). Returns x_adv [B,C,H,W],
        detached, with ‖x_adv − x‖₂ ≤ ε per input and x_adv in [0,1].
        """
        eps = self.epsilon if epsilon is None else check_epsilon(epsilon)
        if noise is None:
            noise = smooth.sample_noise(x, self.num_noise_vectors, generator)
        if noise.shape[0] != x.shape[0] or noise.shape[2:] != x.shape[1:]:
            raise ValueError(f"noise shape {tuple(noise.shape)} does not fit x {tuple(x.shape)}")
        x = x.detach()
        if eps == 0:
            return x.clone()
        with frozen(smooth.base_classifier):
            return self._run(smooth, x, y, noise, generator, eps).detach()

    def _run(self, smooth: Smooth, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
             generator: torch.Generator | None, epsilon: float) -> torch.Tensor:
        raise NotImplementedError


@ATTACKS.register("pgd")
class SmoothAdvPGD(SmoothAdvAttack):
    """SmoothAdv-PGD: T steps x' ← Π(x' + (2ε/T)·∇L/‖∇L‖) with the same m draws each step.

    ``random_start`` begins at a uniformly random point of the ε-sphere (off by default, as in
    the paper).
    """

    def __init__(self, *, epsilon: float, steps: int, num_noise_vectors: int = 1,
                 estimator: str = "grad", targeted: bool = False,
                 random_start: bool = False) -> None:
        super().__init__(epsilon=epsilon, steps=steps, num_noise_vectors=num_noise_vectors,
                         estimator=estimator, targeted=targeted)
        self.random_start = bool(random_start)

    def _run(self, smooth, x, y, noise, generator, epsilon):
        step = 2 * epsilon / self.steps
        x_adv = x.clone()
        if self.random_start:
            start = _unit(torch.randn(x.shape, generator=generator, device=x.device))
            x_adv = project(x, x + epsilon * start, epsilon)
        for _ in range(self.steps):
            grad, _ = self.ascent_direction(smooth, x_adv, y, noise)
            x_adv = project(x, x_adv + step * _unit(grad, generator), epsilon)
        return x_adv


def default_ddn_gamma(epsilon: float, steps: int) -> float:
    """The paper's evaluation setting γ = 1 − (3/510/ε)^(1/T), floored at 0.01."""
    if epsilon <= 0:
        return 0.05
    return max(0.01, 1.0 - (3.0 / 510.0 / epsilon) ** (1.0 / steps))


@ATTACKS.register("ddn")
class SmoothAdvDDN(SmoothAdvAttack):
    """SmoothAdv-DDN: decoupled direction and norm on the soft loss.

    Each step moves δ along the normalised gradient with a cosine-annealed step
    ``init_alpha``·(1 + cos(π t/T))/2 (``init_alpha`` default ε), then rescales δ to a norm
    that shrinks by (1 − γ) where the point is already adversarial and grows by (1 + γ)
    otherwise, capped at ε; with ``quantize`` levels (256) x + δ is rounded to that grid;
    then clipped to [0,1]. The smallest-norm adversarial point seen is returned; an input
    never made adversarial gets the last iterate. The result always lies in the ε-ball
    (where rounding would leave it, δ is rescaled onto the ball).
    """

    def __init__(self, *, epsilon: float, steps: int, num_noise_vectors: int = 1,
                 estimator: str = "grad", targeted: bool = False, init_norm: float = 1.0,
                 gamma: float | None = None, quantize: int | None = 256,
                 init_alpha: float | None = None) -> None:
        super().__init__(epsilon=epsilon, steps=steps, num_noise_vectors=num_noise_vectors,
                         estimator=estimator, targeted=targeted)
        self.init_norm = float(init_norm)
        if gamma is not None and not 0 < gamma < 1:
            raise UserError(f"DDN gamma must lie in (0,1), got {gamma}")
        self.gamma = gamma  # None: the paper's default for the ε of each call
        if quantize is not None and quantize < 2:
            raise UserError("quantize needs at least 2 levels (or None)")
        self.quantize = quantize
        self.init_alpha = init_alpha  # None: ε of each call

    def _run(self, smooth, x, y, noise, generator, epsilon):
        gamma = default_ddn_gamma(epsilon, self.steps) if self.gamma is None else self.gamma
        init_alpha = epsilon if self.init_alpha is None else self.init_alpha
        b = x.shape[0]
        view = (-1, *([1] * (x.dim() - 1)))
        delta = torch.zeros_like(x)
        norm = torch.full((b,), min(self.init_norm, epsilon), device=x.device)
        best = x.clone()
        best_norm = torch.full((b,), math.inf, device=x.device)
        for t in range(self.steps + 1):  # T steps, then the last iterate is checked too
            if t < self.steps:
                grad, probs = self.ascent_direction(smooth, x + delta, y, noise)
            else:
                with torch.no_grad():
                    probs = smooth.soft_forward(x + delta, noise=noise)
            adv = self.is_adversarial(probs, y)
            cur = _norms(delta).flatten()
            better = adv & (cur < best_norm)
            best_norm = torch.where(better, cur, best_norm)
            best[better] = (x + delta)[better]
            if t == self.steps:
                break
            alpha = init_alpha * (1 + math.cos(math.pi * t / self.steps)) / 2
            delta = delta + alpha * _unit(grad, generator)
            norm = torch.where(adv, norm * (1 - gamma), norm * (1 + gamma))
            norm = norm.clamp(max=epsilon)
            delta = delta * (norm / _norms(delta).flatten().clamp_min(1e-12)).view(view)
            x_new = x + delta
            if self.quantize:
                levels = self.quantize - 1
                x_new = torch.round(x_new * levels) / levels
            delta = project(x, x_new.clamp(0, 1), epsilon) - x
        found = torch.isfinite(best_norm)
        return torch.where(found.view(view), best, x + delta)
