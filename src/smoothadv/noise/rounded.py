"""Sound randomized smoothing in floating point (after Voráček & Hein, ICLR 2023).

Why the usual implementation is not sound: it adds float Gaussian noise to a float image and
feeds the float sum to the network. Float rounding makes the sampled distribution differ from
the Gaussian the theorem is about, and a classifier can exploit the difference (they exhibit a
certificate of radius 1.26 around a point with an adversarial example at distance 0.8).

What this module does instead, for images on the 8-bit grid {0, 1/255, …, 1}:

1. **Noise on the grid.** The noise is the rounded Gaussian: P(noise = k/255) =
   Φ((k + ½)/(255σ)) − Φ((k − ½)/(255σ)) for integers k. For x on the grid, x + round(g·255)/255
   equals round((x + g)·255)/255 for g ~ N(0, σ²): adding rounded noise to a grid point is the
   rounding of x + exact Gaussian noise. So sampling x + rounded noise draws *exactly* from
   h(x + g), h = f∘round, and Cohen et al.'s theorem for the base classifier h gives the usual
   certificate σΦ⁻¹(p_A lower) for h's smoothed classifier with no floating-point caveat.
2. **Tails.** The noise is truncated at ±(K + 1)·255 grid steps (K = max(1, ⌊6σ⌋) in image units)
   with all the tail mass on the two end values, and x + noise is clipped to [−K, K + 1]. For x
   in [0,1] the clipped value has exactly the distribution it would have without truncation
   (a draw beyond an end lands beyond the clip bound on the same side either way), so the base
   classifier smoothed is f∘clip∘round, and the guarantee is unchanged.
3. **Integer sampling.** The cumulative probabilities at the bin edges are computed once in
   160-bit precision (mpmath) and scaled to integers of b = 62 bits, T_k = ⌊2^b·F_k⌋; a uniform
   b-bit integer U per coordinate selects the smallest k with U < T_k: a 2^16-entry guide table
   indexed by U's top 16 bits answers every draw whose bucket no edge splits (about 99% of
   them), a binary search the others. U is drawn in two independent uniform parts, its top 16
   bits (three coordinates' worth from one uniform 48-bit integer) and, only where the guide
   cannot answer, its low b − 16 bits: the same uniform distribution, at a third of the cost.
   Each edge is off by less than 2^−b, so the total-variation distance between a drawn
   coordinate and the exact rounded Gaussian is at most δ = (2M)·2^−b (M = (K + 1)·255; about
   2^−52 for σ ≤ 1/3), and a sample of d coordinates is within d·δ. Over all N samples an input
   uses, the draws can be coupled with exact ones except with probability ≤ N·d·δ: this is
   **subtracted from α** in the certificate (:meth:`RoundedGaussian.alpha_spent`), so the stated
   1 − α holds.
4. **Model input from integers.** The input is (x·255 + noise) in integers, clipped, then one
   conversion to float and one division by 255: the float tensor is a function of the lattice
   point alone, whatever float path produced x.

Everything else (n0 selection, Clopper–Pearson, abstention, records, resume, torchrun sharding,
packing of several inputs, sequential certification) is the ordinary code path.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.utils.data

from ..errors import UserError
from .radii import GaussianRadii

LEVELS = 255  # grid steps per unit: the 8-bit grid {0, 1/255, …, 1}
BITS = 62  # bits of each uniform integer (b ≥ 48)
GUIDE_BITS = 16  # the guide table's index: the top bits of U
GRID_TOLERANCE = 1e-4  # |x·255 − round(x·255)| allowed for an input "on the grid"
SENTINEL = -32768  # a guide entry that needs the binary search (never a noise value)


def truncation(sigma: float) -> int:
    """K = max(1, ⌊6σ⌋): noise is truncated at ±(K + 1) and x + noise clipped to [−K, K + 1]
    (image units)."""
    return max(1, math.floor(6 * sigma))


@lru_cache(maxsize=16)
def edge_table(sigma: float, bits: int = BITS) -> tuple[int, tuple[int, ...]]:
    """(M, T): T_k = ⌊2^bits·P(noise ≤ k)⌋ for k = −M … M − 1 (the last edge, 2^bits, is
    implicit), the rounded Gaussian's cumulative probabilities in grid units, with the tails
    beyond ±M folded onto ±M. Computed in 160-bit precision from the exact value of ``sigma``."""
    import mpmath

    m = (truncation(sigma) + 1) * LEVELS
    scale = 2**bits
    with mpmath.workprec(160):
        s = mpmath.mpf(float(sigma)) * LEVELS
        root2 = mpmath.sqrt(2)
        table = []
        for k in range(-m, m):
            z = (mpmath.mpf(k) + mpmath.mpf(1) / 2) / s
            cdf = mpmath.erfc(-z / root2) / 2
            table.append(int(mpmath.floor(cdf * scale)))
    return m, tuple(table)


def exact_probabilities(sigma: float, ks: np.ndarray, prec: int = 200) -> np.ndarray:
    """P(noise = k) of the untruncated rounded Gaussian, evaluated independently of
    :func:`edge_table` (mpmath's ncdf at ``prec`` bits), as float64."""
    import mpmath

    with mpmath.workprec(prec):
        s = mpmath.mpf(float(sigma)) * LEVELS
        half = mpmath.mpf(1) / 2
        return np.array([float(mpmath.ncdf((k + half) / s) - mpmath.ncdf((k - half) / s))
                         for k in ks])


class RoundedGaussian(GaussianRadii):
    """The sound noise model: rounded Gaussian noise on the 8-bit grid, sampled with integers.

    ``draw`` returns integer noise (grid steps, int16) and ``apply`` builds the model input
    from integers; see the module docstring for the guarantee.
    """

    kind = "sound"

    def __init__(self, sigma: float, bits: int = BITS) -> None:
        if not 48 <= bits <= 62:
            raise UserError("the sampler needs 48 to 62 bits")
        if truncation(sigma) > 100:
            raise UserError(f"sound certification supports sigma up to 16 (got {sigma})")
        self.sigma = float(sigma)
        self.bits = bits
        self.k = truncation(self.sigma)
        self.m, table = edge_table(self.sigma, bits)
        self.edges = torch.tensor(table, dtype=torch.int64)  # [2M]
        # guide: for each of the 2^16 top-bit buckets, the bin of its first value and whether
        # an edge falls inside it (then a binary search settles the draw)
        shift = bits - GUIDE_BITS
        starts = torch.arange(2**GUIDE_BITS, dtype=torch.int64) << shift
        ends = starts + (1 << shift) - 1
        first = torch.searchsorted(self.edges, starts, right=True)
        last = torch.searchsorted(self.edges, ends, right=True)
        # the noise value every draw of the bucket gets, or SENTINEL where an edge splits it
        self.guide = torch.where(first == last, first - self.m,
                                 torch.full_like(first, SENTINEL)).to(torch.int16)
        self.ambiguous_fraction = float((first != last).double().mean())
        self.shift = shift
        self._device_cache: dict[str, tuple[torch.Tensor, ...]] = {}
        # total-variation bound per coordinate: each of the 2M edges is off by < 2^-bits
        self.tv_per_coordinate = 2 * self.m * 2.0**-bits

    def __repr__(self) -> str:
        return f"RoundedGaussian(sigma={self.sigma}, bits={self.bits}, K={self.k})"

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        key = str(device)
        if key not in self._device_cache:
            self._device_cache[key] = (self.edges.to(device), self.guide.to(device))
        return self._device_cache[key]

    def facts(self) -> dict:
        return {}

    def alpha_spent(self, samples: int, dims: int) -> float:
        """The probability bound N·d·δ by which N sampled noise vectors of d coordinates may
        differ from exact draws; certificates use α − this."""
        return samples * dims * self.tv_per_coordinate

    # ------------------------------------------------------------------------- sampling

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device, sync_free: bool | None = None) -> torch.Tensor:
        """Integer noise (grid steps) of the given shape, int16, each coordinate from the
        truncated rounded Gaussian (within the stated total-variation bound). ``sync_free``
        (default: on any device but the CPU) draws every coordinate's low bits, so that no
        count is read back from the device."""
        device = torch.device(device)
        sync_free = device.type != "cpu" if sync_free is None else sync_free
        edges, guide = self._tables(device)
        count = math.prod(shape)
        # U = top·2^(b−16) + low, top and low independent and uniform. Three 16-bit tops come
        # from one uniform 48-bit integer (independent bit fields); top alone decides every
        # draw whose guide bucket no edge splits, and only the others draw their low bits
        words = torch.randint(0, 2**48, (-(-count // 3),), generator=generator, device=device,
                              dtype=torch.int64)
        top = torch.cat((words >> 32, (words >> 16) & 0xFFFF, words & 0xFFFF))[:count]
        noise = torch.take(guide, top)
        hard = noise == SENTINEL
        if sync_free:
            # asking how many draws are hard would wait for the device: draw the low bits of
            # every coordinate and keep them where needed (the same U, the same distribution;
            # another stream than the CPU's, which draws low bits for the hard ones only)
            low = torch.randint(0, 2**self.shift, (count,), generator=generator, device=device,
                                dtype=torch.int64)
            exact = torch.searchsorted(edges, (top << self.shift) | low, right=True) - self.m
            return torch.where(hard, exact.to(torch.int16), noise).view(shape)
        if hard.any():
            low = torch.randint(0, 2**self.shift, (int(hard.sum()),), generator=generator,
                                device=device, dtype=torch.int64)
            u = (top[hard] << self.shift) | low
            noise[hard] = (torch.searchsorted(edges, u, right=True) - self.m).to(torch.int16)
        noise = noise.view(shape)
        return noise

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """x·255 as integers (int16) for inputs x in [0,1] on the 8-bit grid; a clear error for
        inputs off the grid."""
        scaled = x * LEVELS
        ints = torch.round(scaled)
        off = (scaled - ints).abs().max().item() if x.numel() else 0.0
        if off > GRID_TOLERANCE:
            raise UserError(
                f"sound certification needs images on the 8-bit grid (k/255); these are off by "
                f"up to {off / LEVELS:.3g} (round them with --round-inputs, or "
                f"smoothadv.noise.rounded.round_to_grid)")
        return ints.to(torch.int16)

    def apply(self, x_int: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The model input from integers: clip(x·255 + noise, −255K, 255(K + 1)), then one
        conversion to float32 and one division by 255."""
        lo, hi = -LEVELS * self.k, LEVELS * (self.k + 1)
        # int16 holds every value: |x·255| ≤ 255 and |noise| ≤ (K + 1)·255 ≤ 32,512 − 255
        total = torch.add(x_int, noise)
        return total.clamp_(lo, hi).to(torch.float32).div_(LEVELS)


def round_to_grid(x: torch.Tensor) -> torch.Tensor:
    """x rounded to the nearest point of the 8-bit grid {k/255} (values in [0,1])."""
    return torch.round(x.clamp(0, 1) * LEVELS) / LEVELS


class GridRounded(torch.utils.data.Dataset):
    """A data set whose images are rounded to the 8-bit grid (``--round-inputs``): the
    certificate is then about the rounded image."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        return round_to_grid(x), y
