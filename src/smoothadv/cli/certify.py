"""``smoothadv certify``: CERTIFY (Cohen et al., Algorithm 2) over a data set, or sequential
certification at given radii (``--sequential``)."""

from __future__ import annotations

import argparse

from .common import add_switches, sampling_args, stage_command


def _certify_args(p: argparse.ArgumentParser) -> None:
    from ..smoothing.sequences import list_sequences

    sampling_args(p, with_n0=True)
    add_switches(p, {"--randomized-cp": (
        "fixed-n: the randomized Clopper–Pearson lower bound (exact coverage 1-α, never below "
        "the ordinary bound; W ~ U[0,1] drawn from each input's seed)")})
    l1 = p.add_argument_group("ℓ1 certificates", "with --noise uniform, laplace or splitting "
                              "and --norm l1 (docs/certification.md)")
    add_switches(l1, {
        "--two-sided": "uniform/splitting: also λ(p_A − p_B) from an upper bound on every other "
                       "class (α split in halves, Bonferroni over the classes); the larger "
                       "radius is kept",
        "--box": "uniform/splitting: the box-constrained ℓ1 radius (after Voráček & Hein "
                 "2023): perturbations that keep the image in [0,1]^d, post hoc",
        "--derandomized": "splitting: Levine & Feizi's deterministic certificate on 8-bit "
                          "inputs (every offset evaluated once, exact counts, no α; 2λ·255 "
                          "forward passes per input; --n, --n0, --alpha unused). The radius is "
                          "that of the closed ℓ1 ball on the 8-bit grid, ⌊(n_A − n_B − 1)/2⌋/255"})
    l1.add_argument("--template", default="",
                    help="with --derandomized: the per-pixel offset template, fixed before any "
                         "input and recorded: seed0 (default; Levine & Feizi's, NumPy's "
                         "RandomState(0).randint(K, size=d)), seed<N>, or zero (one offset "
                         "shared by every pixel: far weaker once 2λ > 1)")
    g = p.add_argument_group(
        "sequential certification",
        "decide robustness at the given radii with as few samples as each input needs, at the "
        "same ≤ α error per input; rows add samples, p_lower, p_upper and the decisions")
    g.add_argument("--sequential", action="store_true",
                   help="certify sequentially (anytime-valid confidence sequence)")
    g.add_argument("--radii", type=float, nargs="+", default=None,
                   help="radii to decide, e.g. 0.25 0.5 0.75 1.0 (sequential mode)")
    g.add_argument("--budget", type=int, default=100_000,
                   help="most samples per input (100000, the fixed-n default)")
    g.add_argument("--sequence", default="betting", choices=list_sequences(),
                   help="betting (Krichevsky–Trofimov mixture; default, fewer samples) or union "
                        "(Clopper–Pearson at geometric checkpoints)")
    g.add_argument("--labelled", action="store_true",
                   help="test the true label (certified accuracy, as papers report) instead of "
                        "a class selected by n0 draws (deployment)")
    g.add_argument("--alpha-split", type=float, default=None,
                   help="share of α for the confidence sequence, in (0, 1]; the rest is the "
                        "end test's: one Clopper–Pearson test on all samples of an input still "
                        "undecided at the budget (default 0.2, chosen by measurement; 1: no end "
                        "test)")
    g.add_argument("--anytime-tol", type=float, default=None,
                   help="also stop only once the radius σΦ⁻¹(lower end) is within this of the "
                        "largest it could still reach; alone (no --radii): the stopping rule")


stage_command("certify", "certify inputs with CERTIFY (Cohen et al., Algorithm 2) or sequentially",
              _certify_args, "CertifyConfig")
