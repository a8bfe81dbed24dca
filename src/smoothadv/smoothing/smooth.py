"""The smoothed classifier g(x) = argmax_c P(f(x + δ) = c), δ ~ N(0, σ²I) (Cohen et al., 2019).

:class:`Smooth` implements PREDICT and CERTIFY by Monte Carlo, batched over inputs, and the
soft smoothed classifier G(x) = E_δ[softmax(F(x + δ))] that SmoothAdv attacks.

Reproducibility: every input gets its own noise stream, seeded from one integer per input
(:func:`input_seed` derives it from a run seed and the input's index), and the stream is
consumed in the same pieces whichever other inputs share a forward batch. So certifying an
input alone, in a batch, in another process or after a resume gives the same counts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from ..data.datasets import check_image_range
from ..errors import UserError, check_alpha, check_positive_int, check_sigma
from ..noise import (
    DEFAULT_TEMPLATE,
    LEVELS,
    box_l1_radius,
    check_l1_options,
    check_smoothing,
    check_template,
    create_noise,
    derandomized_steps,
)
from .stats import (
    binomial_test_pvalue,
    lower_confidence_bound,
    randomized_lower_confidence_bound,
    upper_confidence_bound,
)

ABSTAIN = -1


class _Answer:
    """What CERTIFY's and PREDICT's answers share: ``prediction``, −1 for an abstention."""

    prediction: int

    @property
    def abstained(self) -> bool:
        return self.prediction == ABSTAIN


@dataclass(frozen=True)
class Certificate(_Answer):
    """CERTIFY's answer for one input.

    With probability at least 1 − α over the noise, if ``prediction`` ≠ ABSTAIN then g
    predicts ``prediction`` everywhere on the ball of radius ``radius`` around the input, in
    the smoothed classifier's norm (ℓ2 unless it says otherwise). ``p_lower`` is the
    Clopper–Pearson lower bound on p_A from ``n_a`` of ``n`` samples (the exact p_A of a
    deterministic certificate, which holds with certainty).
    """

    prediction: int
    radius: float
    p_lower: float
    n_a: int
    n: int


@dataclass(frozen=True)
class Prediction(_Answer):
    """PREDICT's answer: the top class, or ABSTAIN when the two-sided binomial test of the
    top two counts is not significant at level α. With probability at least 1 − α a
    non-abstaining answer equals g(x)."""

    prediction: int
    count1: int
    count2: int
    pvalue: float
    n: int


def input_seed(seed: int, idx: int) -> int:
    """A 63-bit seed for input ``idx`` of a run seeded with ``seed`` (well mixed, stable)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(idx)]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def randomization(seeds: Sequence[int] | None, count: int) -> np.ndarray:
    """W ~ U[0,1] per input for the randomized Clopper–Pearson bound: from each input's seed
    (a stream separate from its noise), or fresh when no seeds are given."""
    if seeds is None:
        return np.random.default_rng().random(count)
    return np.array([np.random.default_rng([int(s), 0x52414E44]).random() for s in seeds])


def soft_classifier(logits: torch.Tensor) -> torch.Tensor:
    """The soft smoothed classifier G from the logits of m noisy copies of each input:
    logits [B, m, K] → G [B, K] = mean over the m draws of softmax over the K classes.

    The one definition of G: :meth:`Smooth.soft_forward`, the attacks and the training methods
    (MACER, consistency, SmoothMix) all take it from here. Differentiable; no clamping (the
    callers that take a log clamp as their authors' code does).
    """
    return torch.softmax(logits, dim=-1).mean(dim=1)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block, then restore each module's own flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter for the block (the passes the
    authors run so: attacks, and the methods' attacks on the noise); yields the bare module
    under a DDP wrapper. Each module's mode and each parameter's flag are restored afterwards.
    With :func:`eval_mode`, the package's one pair of mode helpers."""
    inner = getattr(model, "module", model)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    with eval_mode(model):
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield inner
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)


class Smooth:
    """A smoothed classifier around ``base_classifier`` with noise level ``sigma``.

    Args:
        base_classifier: maps pixel-space [B,C,H,W] in [0,1] to [B, num_classes] logits
            (normalization is its first layer). Its device is the device of its parameters.
        num_classes: number of classes K.
        sigma: noise standard deviation σ > 0, in pixel units.
        sound: certify and predict with the sound sampler
            (:class:`~smoothadv.noise.RoundedGaussian`: inputs on the 8-bit grid,
            integer noise, certificates that hold in floating point). The soft classifier G
            (attacks, training) always uses float Gaussian noise.
        noise: the noise family of PREDICT and CERTIFY: ``gaussian`` (σ the standard
            deviation), or for ℓ1 certificates ``uniform``, ``laplace`` or ``splitting`` (σ the
            per-coordinate standard deviation; :mod:`smoothadv.noise`).
        norm: the norm of the certified radius: ``l2`` (Gaussian only), ``l1`` or ``linf``.
    """

    def __init__(self, base_classifier: nn.Module, num_classes: int, sigma: float,
                 sound: bool = False, noise: str = "gaussian", norm: str = "l2") -> None:
        self.base_classifier = base_classifier
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.sigma = check_sigma(sigma)
        self.sound = bool(sound)
        check_smoothing(noise, norm, self.sound)
        self.noise = create_noise("rounded_gaussian" if self.sound else noise, self.sigma)
        self.family, self.norm = noise, norm

    def __repr__(self) -> str:
        extra = ", sound=True" if self.sound else ""
        if (self.family, self.norm) != ("gaussian", "l2"):
            extra += f", noise={self.family!r}, norm={self.norm!r}"
        return f"Smooth(num_classes={self.num_classes}, sigma={self.sigma}{extra})"

    def radius_of(self, p_lower, dims: int | None = None) -> np.ndarray:
        """The certified radius (this smoother's noise and norm) of lower bounds p̲_A; 0 where
        p̲_A ≤ ½. ``dims`` (coordinates of an input) is needed for ℓ∞."""
        return self.noise.radius(p_lower, self.norm, dims)

    def p_needed(self, radius, dims: int | None = None) -> np.ndarray:
        """The smallest p̲_A whose radius reaches ``radius`` (a value above 1: never)."""
        return self.noise.p_needed(radius, self.norm, dims)

    def effective_alpha(self, alpha: float, samples: int, dims: int) -> float:
        """α left for the statistical test once the sampler's own error bound over ``samples``
        noise vectors of ``dims`` coordinates is set aside (0 for float Gaussian noise)."""
        spent = self.noise.alpha_spent(samples, dims)
        if spent >= alpha:
            raise UserError(f"the sampler's error bound {spent:.3g} exceeds alpha {alpha}")
        return alpha - spent

    @property
    def device(self) -> torch.device:
        param = next(self.base_classifier.parameters(), None)
        if param is not None:
            return param.device
        buf = next(self.base_classifier.buffers(), None)
        return buf.device if buf is not None else torch.device("cpu")

    # ----------------------------------------------------------------------------- noise

    def _generators(self, count: int, seeds: Sequence[int] | None) -> list[torch.Generator]:
        if seeds is None:
            seeds = torch.randint(0, 2**62, (count,)).tolist()
        if len(seeds) != count:
            raise ValueError(f"need one seed per input: {len(seeds)} seeds, {count} inputs")
        return [make_generator(s, self.device) for s in seeds]

    def sample_noise(
        self, x: torch.Tensor, num: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """δ ~ N(0, σ²I): shape [B, num, C, H, W] for x of shape [B, C, H, W], on x's device."""
        return torch.randn(
            (x.shape[0], num, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype
        ).mul_(self.sigma)

    def noisy_samples(self, x: torch.Tensor, num: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` noisy copies of one input [C,H,W] prepared by ``self.noise.prepare``:
        [num, C, H, W] model inputs, the noise drawn from ``generator`` (the input's own
        stream)."""
        noise = self.noise.draw((num, *x.shape), generator, x.device)
        return self.noise.apply(x, noise)

    def _noise_pieces(self, xs: torch.Tensor, num: int, unit: int,
                      gens: list[torch.Generator]) -> Iterator[tuple[int, torch.Tensor]]:
        """Noise (``self.noise.draw``) for each input in turn, ``num`` draws per input in pieces of
        ``unit`` (the last may be smaller), each piece drawn from that input's own generator
        only when it is needed."""
        for j, gen in enumerate(gens):
            for start in range(0, num, unit):
                size = min(unit, num - start)
                yield j, self.noise.draw((size, *xs.shape[1:]), gen, xs.device)

    @staticmethod
    def _pack(pieces: Iterator[tuple[int, torch.Tensor]],
              batch_size: int) -> Iterator[list[tuple[int, torch.Tensor]]]:
        """Fill batches of exactly ``batch_size`` samples (the last may be smaller) with
        consecutive pieces, splitting a piece across two batches where needed."""
        batch: list[tuple[int, torch.Tensor]] = []
        space = batch_size
        for j, noise in pieces:
            while noise.shape[0] > 0:
                take = min(space, noise.shape[0])
                batch.append((j, noise[:take]))
                noise, space = noise[take:], space - take
                if space == 0:
                    yield batch
                    batch, space = [], batch_size
        if batch:
            yield batch

    def _counts(
        self, xs: torch.Tensor, num: int, batch_size: int, gens: list[torch.Generator],
        models: Sequence[nn.Module] | None = None,
    ) -> torch.Tensor:
        """Class counts of f(x + δ) over ``num`` draws per input: int64 [K, num_classes], or
        [M, K, num_classes] for ``models`` (M base classifiers that all classify the same noisy
        samples: each one's counts equal those it would have alone with these generators).

        Noisy samples of several inputs share a forward batch of at most ``batch_size``. Each
        input's noise is drawn from its own generator in pieces of min(num, batch_size)
        samples, so the draws do not depend on how inputs are packed; pieces are drawn
        lazily, so besides the batch at most one partly used piece is held.
        """
        nets = [self.base_classifier] if models is None else list(models)
        device, classes = xs.device, self.num_classes
        counts = torch.zeros(len(nets), xs.shape[0] * classes, dtype=torch.long, device=device)
        pieces = self._noise_pieces(xs, num, min(num, batch_size), gens)
        for segments in self._pack(pieces, batch_size):
            # each sample's input, filled on the device from Python ints: no host-to-device
            # copy of a list and no size read-back, so a CUDA batch never waits for the GPU
            owner_ids = torch.cat([torch.full((t.shape[0],), j, dtype=torch.long, device=device)
                                   for j, t in segments])
            if len(segments) == 1:  # one input: broadcast it rather than copy it per sample
                clean, noise = xs[segments[0][0]], segments[0][1]
            else:
                clean = xs.index_select(0, owner_ids)
                noise = torch.cat([t for _, t in segments])
            noisy = self.noise.apply(clean, noise)
            for m, net in enumerate(nets):  # all but the last model get a copy to read
                preds = self._logits(noisy if m == len(nets) - 1 else noisy.clone(),
                                     net).argmax(1)
                counts[m].index_add_(0, owner_ids * classes + preds, torch.ones_like(preds))
        counts = counts.view(len(nets), -1, classes)
        return counts[0] if models is None else counts

    @staticmethod
    def _check_batch(xs: torch.Tensor) -> torch.Tensor:
        """``xs`` if it is a batch of inputs [K, ...] (images [K,C,H,W], or [K,d]), else a
        one-line refusal."""
        if not isinstance(xs, torch.Tensor) or not 2 <= xs.dim() <= 4:
            shape = tuple(xs.shape) if isinstance(xs, torch.Tensor) else type(xs).__name__
            raise UserError(f"expected a batch of images [K,C,H,W], got shape {shape}")
        return xs

    @staticmethod
    def _check_one(x: torch.Tensor) -> torch.Tensor:
        """``x`` if it is one input ([C,H,W] or [d]), else a one-line refusal naming the
        batch call."""
        if not isinstance(x, torch.Tensor) or not 1 <= x.dim() <= 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise UserError(f"expected one image [C,H,W], got shape {shape}; for a batch "
                            "[K,C,H,W] use certify_many / predict_many")
        return x

    def _logits(self, batch: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """The base classifier's scores [B, num_classes] of a batch, refused in one line when
        the model gives another number of scores than ``num_classes``."""
        logits = (self.base_classifier if net is None else net)(batch)
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise UserError(f"the base classifier gives scores of shape {tuple(logits.shape)} "
                            f"for {batch.shape[0]} inputs, but num_classes is "
                            f"{self.num_classes}: give the model's number of classes")
        return logits

    def _prepare(self, xs: torch.Tensor, batch_size: int) -> torch.Tensor:
        self._check_batch(xs)
        check_positive_int(batch_size, "batch_size")
        check_image_range(xs)  # where the inputs are (on the CPU, as loaded: no GPU sync)
        return self.noise.prepare(xs).to(self.device, non_blocking=True)

    # ------------------------------------------------------------------------- CERTIFY

    def certify_many(
        self,
        xs: torch.Tensor,
        n0: int,
        n: int,
        alpha: float,
        batch_size: int,
        seeds: Sequence[int] | None = None,
        randomized: bool = False,
        two_sided: bool = False,
        box: bool = False,
    ) -> list[Certificate]:
        """CERTIFY (Cohen et al., Algorithm 2) for each of K inputs xs [K,C,H,W] in [0,1].

        n0 draws per input select ĉ_A; n fresh draws count n_A (any n0, n ≥ 1: the selection
        draws are independent of the counting draws, so the guarantee holds whatever n0);
        p_A's lower bound is the one-sided Clopper–Pearson bound at level α; abstain if it is
        < 1/2, else the radius is σ·Φ⁻¹(p_A lower bound). Each certificate holds with
        probability ≥ 1 − α.

        ``randomized``: the randomized Clopper–Pearson bound instead (exact coverage 1 − α,
        never below the ordinary bound), with W ~ U[0,1] drawn once per input from its seed.

        The radius is that of the noise and norm (:mod:`smoothadv.noise.radii`). Uniform and
        splitting noise also take ``two_sided``: p̲_A at α/2 and, Bonferroni, an upper bound on
        every other class at α/(2(K − 1)); the radius is the larger of 2λ(p̲_A − ½) and
        λ(p̲_A − max p̄_c), both valid on that joint event. ``box``: the box-constrained ℓ1
        radius (:func:`~smoothadv.noise.box_l1_radius`) of the same bounds, post hoc; it
        certifies the points of the ball that lie in [0,1]^d (the only images an attacker can
        give), and on that set it is never below the plain radius, since it starts from the
        same total-variation budget and the worst box-feasible shift moves at most as much
        probability as the worst unconstrained one.
        """
        return self.certify_shared([self.base_classifier], xs, n0, n, alpha, batch_size, seeds,
                                   randomized, two_sided, box)[0]

    def certify_shared(
        self, models: Sequence[nn.Module], xs: torch.Tensor, n0: int, n: int, alpha: float,
        batch_size: int, seeds: Sequence[int] | None = None, randomized: bool = False,
        two_sided: bool = False, box: bool = False,
    ) -> list[list[Certificate]]:
        """CERTIFY every base classifier of ``models`` (M of them, same classes, this
        smoothing's noise and σ; options as :meth:`certify_many`, which is this with one model)
        on the same noisy samples: for each model, the K certificates it would get alone with
        these ``seeds``, bit for bit, since every model classifies the draws of each input's
        own generator in the same order (a model that writes into its input is given a copy,
        so no model sees another's changes). The noise is drawn once instead of M times; each
        certificate is the ordinary one (its selection and counting draws stay independent of
        each other); the models' certificates are dependent on each other, which pairs their
        comparison and changes nothing in any single one's guarantee."""
        check_positive_int(n0, "n0")
        check_positive_int(n, "n")
        alpha = check_alpha(alpha)
        check_l1_options(self.family, self.norm, two_sided, box)
        xs = self._prepare(xs, batch_size)
        gens = self._generators(xs.shape[0], seeds)
        with contextlib.ExitStack() as stack:
            for model in models:
                stack.enter_context(eval_mode(model))
            stack.enter_context(torch.inference_mode())
            selection = self._counts(xs, n0, batch_size, gens, models).argmax(dim=2)
            counts = self._counts(xs, n, batch_size, gens, models)
        return [self._certificates(xs, sel, cnt, n0, n, alpha, seeds, randomized, two_sided, box)
                for sel, cnt in zip(selection, counts)]

    def _certificates(self, xs: torch.Tensor, selection: torch.Tensor, counts: torch.Tensor,
                      n0: int, n: int, alpha: float, seeds: Sequence[int] | None,
                      randomized: bool, two_sided: bool = False,
                      box: bool = False) -> list[Certificate]:
        """Certificates of K prepared inputs xs from the selection draws' top classes
        (int [K]) and the counting draws' class counts (int [K, num_classes])."""
        alpha = self.effective_alpha(alpha, n0 + n, xs[0].numel())
        n_a = counts.gather(1, selection[:, None]).squeeze(1)
        c_hat, n_a = selection.cpu().numpy(), n_a.cpu().numpy()
        dims = xs[0].numel()
        level = alpha / 2 if two_sided else alpha
        if randomized:
            w = randomization(seeds, len(n_a))
            p_lower = randomized_lower_confidence_bound(n_a, n, level, w)
        else:
            p_lower = lower_confidence_bound(n_a, n, level)
        radius = self.radius_of(p_lower, dims)
        budgets = np.maximum(p_lower - 0.5, 0.0)  # total variation the one-sided radius spends
        if two_sided:
            others = counts.cpu().numpy().copy()
            others[np.arange(len(c_hat)), c_hat] = -1
            top_other = others.max(axis=1).clip(min=0)
            p_upper_b = np.minimum(upper_confidence_bound(
                top_other, n, alpha / (2 * max(self.num_classes - 1, 1))), 1 - p_lower)
            radius = np.maximum(radius, self.noise.two_sided_radius(p_lower, p_upper_b,
                                                                    self.norm, dims))
            budgets = np.maximum(budgets, (p_lower - p_upper_b) / 2)
        if box:
            images = xs.float().cpu().numpy()
            radius = np.array([max(r, box_l1_radius(b, self.noise.lam, img))
                               if p >= 0.5 else 0.0
                               for r, b, img, p in zip(radius, budgets, images, p_lower)])
        return [
            Certificate(
                prediction=int(c) if p >= 0.5 else ABSTAIN,
                radius=float(r) if p >= 0.5 else 0.0,
                p_lower=float(p),
                n_a=int(a),
                n=n,
            )
            for c, a, p, r in zip(c_hat, n_a, p_lower, radius)
        ]

    def certify_derandomized(self, xs: torch.Tensor, batch_size: int,
                             template: str = DEFAULT_TEMPLATE) -> list[Certificate]:
        """Levine & Feizi's deterministic ℓ1 certificate for splitting noise
        (:mod:`smoothadv.noise.splitting`): every one of the K = 2λ·255 offsets evaluated once
        per input xs [k,C,H,W] (on the 8-bit grid), pixel i's offset shifted by the fixed
        ``template`` (``seed0``: their default; ``zero``: one offset for every pixel), giving
        exact counts n_c, no α. Predicts the top class A when n_A exceeds every other count
        n_B (abstains on a tie), with the closed radius ⌊(n_A − n_B − 1)/2⌋/255 in ℓ1 (over d
        for ℓ∞): every image on the 8-bit grid within that ℓ1 distance gets prediction A, and
        with certainty. ``p_lower`` is the exact p_A = n_A/K and ``n`` is K."""
        if self.noise.kind != "splitting":
            raise UserError("the deterministic certificate is for --noise splitting")
        check_positive_int(batch_size, "batch_size")
        check_template(template)
        xs = self._check_batch(xs)
        check_image_range(xs)
        K, dims = self.noise.offsets_count, xs[0].numel()
        scale = 1.0 if self.norm == "l1" else 1.0 / dims
        out = []
        with eval_mode(self.base_classifier), torch.inference_mode():
            for x in xs:
                inputs = self.noise.offset_inputs(x.cpu(), template)
                inputs = inputs.to(self.device, non_blocking=True)
                counts = torch.zeros(self.num_classes, dtype=torch.long, device=self.device)
                for start in range(0, K, batch_size):
                    logits = self._logits(inputs[start:start + batch_size])
                    counts += torch.bincount(logits.argmax(1), minlength=self.num_classes)
                top = counts.topk(min(2, self.num_classes)).values.cpu().tolist()
                c_a = int(counts.argmax())
                n_a, n_b = int(top[0]), int(top[1]) if len(top) > 1 else 0
                steps = derandomized_steps(n_a, n_b)
                out.append(Certificate(
                    prediction=c_a if steps >= 0 else ABSTAIN,
                    radius=steps / LEVELS * scale if steps >= 0 else 0.0,
                    p_lower=n_a / K, n_a=n_a, n=K))
        return out

    def certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
        seed: int | None = None,
    ) -> Certificate:
        """CERTIFY for one input x of shape [C,H,W]; see :meth:`certify_many`."""
        seeds = None if seed is None else [seed]
        x = self._check_one(x)
        return self.certify_many(x.unsqueeze(0), n0, n, alpha, batch_size, seeds)[0]

    # ------------------------------------------------------------------------- PREDICT

    def predict_many(
        self,
        xs: torch.Tensor,
        n: int,
        alpha: float,
        batch_size: int,
        seeds: Sequence[int] | None = None,
    ) -> list[Prediction]:
        """PREDICT (Cohen et al., Algorithm 1) for each of K inputs xs [K,C,H,W] in [0,1].

        n draws per input; the top two counts n1 ≥ n2 are tested with a two-sided binomial
        test of n1 ~ Binomial(n1 + n2, 1/2); abstain unless the p-value is ≤ α. With
        probability ≥ 1 − α a non-abstaining answer is g(x).
        """
        check_positive_int(n, "n")
        alpha = check_alpha(alpha)
        xs = self._prepare(xs, batch_size)
        alpha = self.effective_alpha(alpha, n, xs[0].numel())
        gens = self._generators(xs.shape[0], seeds)
        with eval_mode(self.base_classifier), torch.inference_mode():
            counts = self._counts(xs, n, batch_size, gens)
            top_counts, top_classes = counts.topk(min(2, self.num_classes), dim=1)
        top_counts, top_classes = top_counts.cpu().numpy(), top_classes.cpu().numpy()
        out = []
        for cnt, cls in zip(top_counts, top_classes):
            c1, c2 = int(cnt[0]), int(cnt[1]) if len(cnt) > 1 else 0
            pvalue = binomial_test_pvalue(c1, c2)
            pred = int(cls[0]) if pvalue <= alpha else ABSTAIN
            out.append(Prediction(prediction=pred, count1=c1, count2=c2, pvalue=pvalue, n=n))
        return out

    def predict(
        self, x: torch.Tensor, n: int, alpha: float, batch_size: int, seed: int | None = None
    ) -> int:
        """PREDICT for one input x [C,H,W]: the class, or ABSTAIN (−1), as in Cohen's code."""
        seeds = None if seed is None else [seed]
        x = self._check_one(x)
        return self.predict_many(x.unsqueeze(0), n, alpha, batch_size, seeds)[0].prediction

    # ------------------------------------------------------------------------ soft G

    def soft_forward(
        self,
        x: torch.Tensor,
        noise: torch.Tensor | None = None,
        num_noise: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Monte Carlo estimate of G(x) = E_δ[softmax(F(x + δ))]: probabilities [B, K].

        ``noise`` is δ itself (already scaled by σ), shape [B, m, C, H, W]; otherwise
        ``num_noise`` = m draws are sampled. Differentiable in x; one forward of B·m samples.
        The model's train/eval mode is left to the caller.
        """
        if noise is None:
            if num_noise is None:
                raise ValueError("give noise or num_noise")
            noise = self.sample_noise(x, num_noise, generator)
        b, m = noise.shape[:2]
        noisy = (x.unsqueeze(1) + noise).reshape(b * m, *x.shape[1:])
        return soft_classifier(self.base_classifier(noisy).view(b, m, -1))
