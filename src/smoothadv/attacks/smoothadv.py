"""SmoothAdv: adversarial attacks on the *smoothed* classifier (Salman et al., 2019).

The defaults compute what the paper's code computes, step for step. Notation: x in [0,1]ⁿ,
δ_1..δ_m the fixed noise draws (already ×σ), G_y(x') = (1/m) Σ_i softmax(f(x' + δ_i))_y.

**Loss.** For m ≥ 2 the mean over the batch of −log(max(G_y, 1e−20)); for m = 1 the plain
cross-entropy of f(x' + δ_1) (no clamp), summed over the batch. Only the per-example
direction of its gradient is used.

**Direction** (``estimator``):

- ``"grad"``: the exact gradient of the loss with respect to the perturbation.
- ``"no_grad"`` (the paper's gradient-free estimator, m ≥ 2): −(1/m) Σ_i p_y(x'+δ_i)·δ_i,
  no back-propagation through f and no baseline subtracted (Stein's lemma gives
  ∇G_y = E[p_y(x+δ)·δ]/σ², so this points down G_y). With m = 1 the paper's code ignores the
  flag and takes the exact gradient; so do we.
- ``"no_grad_cv"`` (a departure, never the default): the same with the control variate
  mean_i p_y subtracted from each p_y (lower variance). With m = 1 it is the exact gradient
  too (the centred estimate would be exactly zero).

Every direction is divided by its per-example ℓ2 norm; where that norm is 0 it is replaced by
a standard normal draw, *not* normalized (as in the paper).

**SmoothAdv-PGD** (T steps of size 2ε/T from δ = 0, no random start): δ ← δ + (2ε/T)·u, then
first clip x + δ to [0,1], then rescale δ onto the ε-ball (``torch.renorm``, max norm ε).

**SmoothAdv-DDN** (the paper's adaptation of Rony et al.'s DDN): see :class:`SmoothAdvDDN`.

Attacks hold hyper-parameters only and are called as ``attack(model, x, y, noise)`` on a batch
x [B,C,H,W] in [0,1]: ``model`` is the base classifier f (what they use; G is computed from its
logits by :func:`~smoothadv.smoothing.smooth.soft_classifier`, the one definition of G) and
``noise`` the draws δ [B, m, C, H, W], already scaled by σ. (0.1's call with a
:class:`~smoothadv.smoothing.Smooth` in place of ``model`` still works: its base classifier is
attacked and, without ``noise``, its Gaussian draws are taken.) They run the model in eval mode
with its parameters frozen and restore the caller's training mode and ``requires_grad`` flags
afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError, check_epsilon, check_positive_int
from ..registry import Registry
from ..smoothing.smooth import Smooth, frozen_eval, soft_classifier

LOG_CLAMP = 1e-20  # G_y is clamped here before the log, as in the paper's code
ESTIMATORS = ("grad", "no_grad", "no_grad_cv")
DDN_DECISIONS = ("vote", "soft")
DDN_TRAIN_GAMMA = 0.05  # the paper's training default (its --gamma-DDN)
DDN_ETA_MIN = 0.01  # the cosine schedule's floor (the paper's eta_min)

ATTACKS: Registry[type[SmoothAdvAttack]] = Registry("attack")


def list_attacks() -> list[str]:
    return ATTACKS.names()


def create_attack(name: str, **kwargs) -> SmoothAdvAttack:
    """Build a registered attack (``pgd`` or ``ddn``) from keyword hyper-parameters."""
    return ATTACKS.get(name)(**kwargs)


def attack_from_options(name: str, *, epsilon: float, steps: int, num_noise_vectors: int,
                        estimator: str = "grad", ddn_gamma: float | None = None,
                        ddn_init_norm: float | None = 1.0, ddn_decision: str = "vote",
                        strict_epsilon: bool = False) -> SmoothAdvAttack:
    """An attack from command-line style options (DDN's own options only reach DDN)."""
    kwargs: dict = dict(epsilon=epsilon, steps=steps, num_noise_vectors=num_noise_vectors,
                        estimator=estimator)
    if name == "ddn":
        kwargs.update(gamma=ddn_gamma, init_norm=ddn_init_norm, decision=ddn_decision,
                      strict_epsilon=strict_epsilon)
    return create_attack(name, **kwargs)


def _norms(t: torch.Tensor) -> torch.Tensor:
    """Per-example ℓ2 norms of t [B, ...]: shape [B]."""
    return t.flatten(1).norm(p=2, dim=1)


def _per_example(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """v [B] reshaped to broadcast against ``like`` [B, ...]."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def normalize_direction(direction: torch.Tensor, generator: torch.Generator | None = None,
                        sync_free: bool | None = None) -> torch.Tensor:
    """Divide each example [B, ...] by its ℓ2 norm; an example whose norm is 0 becomes a
    standard normal draw, not normalized (the paper's rule).

    On the CPU the draws are made only when some norm is 0 (the paper's code, draw for draw).
    On other devices, asking whether a norm is 0 would wait for the device, so a draw for every
    example is made and kept where the norm is 0: the same result in distribution, no sync
    (``sync_free`` chooses explicitly)."""
    norms = _norms(direction)
    unit = direction / _per_example(norms, direction)
    zero = norms == 0
    if unit.device.type != "cpu" if sync_free is None else sync_free:
        draws = torch.randn(unit.shape, generator=generator, device=unit.device,
                            dtype=unit.dtype)
        return torch.where(_per_example(zero, unit), draws, unit)
    if zero.any():
        unit = unit.clone()
        unit[zero] = torch.randn(unit[zero].shape, generator=generator, device=unit.device,
                                 dtype=unit.dtype)
    return unit


def project(x: torch.Tensor, x_adv: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The paper's projection: clip x_adv to [0,1] first, then rescale x_adv − x onto the
    ε-ball with ``torch.renorm``; returns x + δ. Clipping first lets the rescaling bring the
    perturbation back to norm ε wherever the clipped one is longer (the opposite order leaves
    perturbations short of ε)."""
    delta = x_adv.clamp(0.0, 1.0) - x
    return x + delta.renorm(p=2, dim=0, maxnorm=epsilon)


def quantize(t: torch.Tensor, levels: int) -> torch.Tensor:
    """Round t to the grid {k/(levels−1)} (256 levels: 8-bit images), as the paper does."""
    return torch.round(t * (levels - 1)) / (levels - 1)


def majority_vote(preds: torch.Tensor) -> torch.Tensor:
    """The most frequent class in each row of preds [B, m] (``torch.mode``'s tie rule)."""
    return preds.mode(dim=1).values


@dataclass
class AttackStep:
    """What one forward (and backward) pass at the current point x' gives.

    ``direction``: [B,C,H,W], increases the attack's objective (not yet normalized).
    ``probs``: G(x') [B,K] from the m draws. ``vote``: the majority vote of the hard labels
    argmax f(x' + δ_i) over the m draws [B].
    """

    direction: torch.Tensor
    probs: torch.Tensor
    vote: torch.Tensor


class SmoothAdvAttack:
    """Shared machinery: the paper's loss, its gradient (three estimators), noise, model state.

    Args (keyword-only):
        epsilon: ℓ2 radius in pixel space (the paper's eps_255 is 0.996).
        steps: iterations T ≥ 1.
        num_noise_vectors: noise draws m per input for the soft classifier.
        estimator: "grad" (back-propagate; default), "no_grad" (the paper's gradient-free
            estimator) or "no_grad_cv" (with a control variate: a departure). With m = 1 every
            estimator takes the exact gradient, as the paper's code does.
        targeted: if True, y holds target classes and the attack decreases their loss.
    """

    def __init__(self, *, epsilon: float, steps: int, num_noise_vectors: int = 1,
                 estimator: str = "grad", targeted: bool = False) -> None:
        self.epsilon = check_epsilon(epsilon)
        self.steps = check_positive_int(steps, "steps")
        self.num_noise_vectors = check_positive_int(num_noise_vectors, "num_noise_vectors")
        if estimator not in ESTIMATORS:
            raise UserError(f"unknown estimator {estimator!r}; choose one of "
                            f"{', '.join(ESTIMATORS)}")
        self.estimator = estimator
        self.targeted = bool(targeted)

    def _params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------- loss, gradient

    def evaluate(self, model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor,
                 noise: torch.Tensor) -> AttackStep:
        """One pass at x_adv [B,C,H,W] with noise [B,m,C,H,W]: see :class:`AttackStep`."""
        b, m = noise.shape[:2]
        if self.estimator == "grad" or m == 1:
            x_var = x_adv.detach().requires_grad_(True)
            with torch.enable_grad():
                noisy = (x_var.unsqueeze(1) + noise).reshape(b * m, *x_adv.shape[1:])
                logits = model(noisy)
                probs = soft_classifier(logits.view(b, m, -1))
                if m == 1:  # the paper's plain cross-entropy, summed
                    loss = F.cross_entropy(logits, y, reduction="sum")
                else:  # the paper's −log of the clamped average softmax, mean over the batch
                    loss = F.nll_loss(probs.clamp(min=LOG_CLAMP).log(), y)
                objective = -loss if self.targeted else loss
                (direction,) = torch.autograd.grad(objective, x_var)
            return AttackStep(direction, probs.detach(), self._vote(logits.detach(), b, m))
        with torch.no_grad():
            noisy = (x_adv.unsqueeze(1) + noise).reshape(b * m, *x_adv.shape[1:])
            logits = model(noisy)
            per_draw = torch.softmax(logits.view(b, m, -1), dim=-1)
            p_y = per_draw.gather(2, y.view(b, 1, 1).expand(b, m, 1)).squeeze(2)  # [B, m]
            if self.estimator == "no_grad_cv":
                p_y = p_y - p_y.mean(dim=1, keepdim=True)
            weights = p_y.view(b, m, *([1] * (noise.dim() - 2)))
            direction = -(weights * noise).mean(dim=1)  # points down G_y
            if self.targeted:
                direction = -direction
        return AttackStep(direction, per_draw.mean(dim=1), self._vote(logits, b, m))

    @staticmethod
    def _vote(logits: torch.Tensor, b: int, m: int) -> torch.Tensor:
        return majority_vote(logits.argmax(1).view(b, m))

    def ascent_direction(self, model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor,
                         noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(direction [B,C,H,W] increasing the objective, G [B,K]) at x_adv."""
        step = self.evaluate(model, x_adv, y, noise)
        return step.direction, step.probs

    def fooled(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Whether predictions [B] fool the classifier (or hit the target, if targeted)."""
        return pred == y if self.targeted else pred != y

    # ------------------------------------------------------------------------- calling

    def __call__(self, model: nn.Module | Smooth, x: torch.Tensor, y: torch.Tensor,
                 noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None,
                 epsilon: float | None = None) -> torch.Tensor:
        """Attack a batch x [B,C,H,W] in [0,1] with labels (or targets) y [B].

        ``noise``: δ draws [B, m, C, H, W] already scaled by σ (the training loop passes the
        draws it will train on); sampled with ``generator`` when None. ``generator`` also
        draws the random directions that replace zero gradients. ``epsilon`` overrides the
        attack's radius for this call (the training warm-up). Returns x_adv [B,C,H,W],
        detached, in [0,1].
        """
        eps = self.epsilon if epsilon is None else check_epsilon(epsilon)
        if isinstance(model, Smooth):  # 0.1's call: attack the smoother's base classifier
            if noise is None:
                noise = model.sample_noise(x, self.num_noise_vectors, generator)
            model = model.base_classifier
        if noise is None:
            raise ValueError("give the noise draws δ [B, m, C, H, W], already scaled by σ")
        if noise.shape[0] != x.shape[0] or noise.shape[2:] != x.shape[1:]:
            raise ValueError(f"noise shape {tuple(noise.shape)} does not fit x {tuple(x.shape)}")
        x = x.detach()
        if eps == 0:
            return x.clone()
        with frozen_eval(model):
            return self._run(model, x, y, noise, generator, eps).detach()

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
             generator: torch.Generator | None, epsilon: float) -> torch.Tensor:
        raise NotImplementedError


@ATTACKS.register("pgd")
class SmoothAdvPGD(SmoothAdvAttack):
    """SmoothAdv-PGD: T steps δ ← Π(δ + (2ε/T)·u) from δ = 0, u the normalized direction,
    Π = clip x + δ to [0,1], then rescale δ to norm ≤ ε; the same m draws every step.

    The result satisfies ‖x_adv − x‖₂ ≤ ε (up to ``torch.renorm``'s 1e-7 margin) and equals ε
    wherever the last step's clipped perturbation was longer than ε.

    ``random_start`` (a departure; off, as in the paper) begins at a uniformly random point of
    the ε-sphere.
    """

    def __init__(self, *, epsilon: float, steps: int, num_noise_vectors: int = 1,
                 estimator: str = "grad", targeted: bool = False,
                 random_start: bool = False) -> None:
        super().__init__(epsilon=epsilon, steps=steps, num_noise_vectors=num_noise_vectors,
                         estimator=estimator, targeted=targeted)
        self.random_start = bool(random_start)

    def _run(self, model, x, y, noise, generator, epsilon):
        step = epsilon / self.steps * 2
        delta = torch.zeros_like(x)
        if self.random_start:
            start = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            start = start / _per_example(_norms(start), start)
            delta = project(x, x + epsilon * start, epsilon) - x
        for _ in range(self.steps):
            direction = self.evaluate(model, x + delta, y, noise).direction
            delta = delta + step * normalize_direction(direction, generator)
            delta = (x + delta).clamp(0.0, 1.0) - x
            delta = delta.renorm(p=2, dim=0, maxnorm=epsilon)
        return x + delta


def default_ddn_gamma(epsilon: float, steps: int) -> float:
    """The paper's evaluation setting γ = 1 − (3/510/ε)^(1/T) (its prediction script).

    No floor is applied. For ε ≤ 3/510 the formula gives γ ≤ 0, which would invert the
    algorithm: that is refused, and the user must give γ.
    """
    gamma = 1.0 - (3.0 / 510.0 / epsilon) ** (1.0 / steps) if epsilon > 0 else 0.0
    if not 0 < gamma < 1:
        raise UserError(f"the paper's DDN gamma 1-(3/510/eps)^(1/T) is {gamma:.4g} for "
                        f"eps={epsilon:g}, T={steps}; give --ddn-gamma in (0,1)")
    return gamma


def ddn_step_sizes(steps: int, eta_min: float = DDN_ETA_MIN) -> list[float]:
    """DDN's step sizes: SGD at learning rate 1 under cosine annealing to ``eta_min`` over T
    steps, the schedule advanced *before* each step, so step t (0..T−1) has size
    eta_min + (1 − eta_min)·(1 + cos(π(t+1)/T))/2 (the last is eta_min)."""
    return [eta_min + (1 - eta_min) * (1 + math.cos(math.pi * (t + 1) / steps)) / 2
            for t in range(steps)]


@ATTACKS.register("ddn")
class SmoothAdvDDN(SmoothAdvAttack):
    """SmoothAdv-DDN, as in the paper's code.

    - δ = 0; the norm budget starts at ``init_norm`` (1.0; not capped at ε); the best norm so
      far at the largest norm the [0,1] box allows around x, ‖max(x, 1 − x)‖₂; the best δ at 0.
    - Each of the T iterations, at the current iterate x + δ (before stepping): the loss and
      its direction as PGD's; "already adversarial" by the majority vote of the hard labels
      over the m noisy copies (``decision="vote"``); where adversarial and ‖δ‖ is below the
      best norm so far, δ is remembered. The point after the last step is not checked.
    - Step: δ ← δ + s_t·u with s_t from :func:`ddn_step_sizes` (cosine annealing, lr 1 → 0.01).
    - The budget is multiplied by (1 − γ) where adversarial, (1 + γ) where not, and capped by
      the box's largest norm (not by ε); δ is rescaled to that norm; x + δ is rounded to
      ``levels`` (256) levels and clipped to [0,1].
    - The answer: the best δ (0 where none was adversarial, so x itself) rescaled onto the
      ε-ball (``torch.renorm``), then δ itself rounded to the 256 levels. As in the paper the
      rounding can leave the ε-ball by a hair (at most √n/510 in theory, far less in practice).

    ``init_norm``: ``None`` means the ε of each call: the paper's training loop sets its DDN's
    initial norm to the epoch's (warmed-up) ε, which the training command follows.

    γ: ``None`` means the paper's evaluation default :func:`default_ddn_gamma` for the ε of each
    call; the paper trains with γ = 0.05 (``DDN_TRAIN_GAMMA``, the training command's default).

    Departures, as named options (off by default): ``decision="soft"`` decides "adversarial" by
    the argmax of G instead of the vote; ``strict_epsilon=True`` rounds the final δ toward 0
    instead of to nearest, so ‖x_adv − x‖₂ ≤ ε holds exactly (x_adv stays on the 8-bit grid
    when x is on it). ``quantize=False`` skips all rounding.
    """

    def __init__(self, *, epsilon: float, steps: int, num_noise_vectors: int = 1,
                 estimator: str = "grad", targeted: bool = False,
                 init_norm: float | None = 1.0,
                 gamma: float | None = None, quantize: bool = True, levels: int = 256,
                 decision: str = "vote", strict_epsilon: bool = False) -> None:
        super().__init__(epsilon=epsilon, steps=steps, num_noise_vectors=num_noise_vectors,
                         estimator=estimator, targeted=targeted)
        if init_norm is not None and not init_norm > 0:
            raise UserError(f"DDN init_norm must be positive, got {init_norm}")
        self.init_norm = None if init_norm is None else float(init_norm)
        if gamma is not None and not 0 < gamma < 1:
            raise UserError(f"DDN gamma must lie in (0,1), got {gamma}")
        self.gamma = gamma
        if levels < 2:
            raise UserError("DDN needs at least 2 quantisation levels")
        self.quantize = bool(quantize)
        self.levels = int(levels)
        if decision not in DDN_DECISIONS:
            raise UserError(f"unknown DDN decision {decision!r}; choose vote or soft")
        self.decision = decision
        self.strict_epsilon = bool(strict_epsilon)

    def _adversarial(self, step: AttackStep, y: torch.Tensor) -> torch.Tensor:
        pred = step.vote if self.decision == "vote" else step.probs.argmax(dim=1)
        return self.fooled(pred, y)

    def _run(self, model, x, y, noise, generator, epsilon):
        gamma = default_ddn_gamma(epsilon, self.steps) if self.gamma is None else self.gamma
        b = x.shape[0]
        delta = torch.zeros_like(x)
        init_norm = epsilon if self.init_norm is None else self.init_norm
        norm = torch.full((b,), init_norm, device=x.device, dtype=x.dtype)
        worst_norm = _norms(torch.max(x, 1 - x))
        best_l2 = worst_norm.clone()
        best_delta = torch.zeros_like(x)
        for size in ddn_step_sizes(self.steps):
            l2 = _norms(delta)
            step = self.evaluate(model, x + delta, y, noise)
            adv = self._adversarial(step, y)
            better = adv & (l2 < best_l2)
            best_l2 = torch.where(better, l2, best_l2)
            best_delta = torch.where(_per_example(better, delta), delta, best_delta)
            delta = delta + size * normalize_direction(step.direction, generator)
            norm = norm * (1 - (2 * adv.to(x.dtype) - 1) * gamma)
            norm = torch.min(norm, worst_norm)
            delta = delta * _per_example(norm / _norms(delta), delta)
            delta = delta + x
            if self.quantize:
                delta = quantize(delta, self.levels)
            delta = delta.clamp(0.0, 1.0) - x
        best_delta = best_delta.renorm(p=2, dim=0, maxnorm=epsilon)
        if self.quantize:
            if self.strict_epsilon:
                best_delta = torch.trunc(best_delta * (self.levels - 1)) / (self.levels - 1)
            else:
                best_delta = quantize(best_delta, self.levels)
        return x + best_delta
