"""``smoothadv certify``: CERTIFY (Cohen et al., Algorithm 2) over a data set, or sequential
certification at given radii (``--sequential``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .common import (
    check_before_writing,
    command,
    load_for_eval,
    maybe_compile,
    model_config,
    run_eval,
    sampling_args,
    summary_line,
    validate_sampling_args,
    warn,
    write_config,
)


def _certify_args(p: argparse.ArgumentParser) -> None:
    from ..sequences import list_sequences

    sampling_args(p, with_n0=True)
    p.add_argument("--randomized-cp", action="store_true",
                   help="fixed-n: the randomized Clopper–Pearson lower bound (exact coverage "
                        "1-α, never below the ordinary bound; W ~ U[0,1] drawn from each "
                        "input's seed)")
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


@command("certify", "certify inputs with CERTIFY (Cohen et al., Algorithm 2) or sequentially",
         _certify_args)
def run_certify(args: argparse.Namespace) -> int:
    if not args.sequential:
        if (args.radii is not None or args.anytime_tol is not None or args.labelled
                or args.alpha_split is not None):
            raise UserError("--radii, --labelled, --alpha-split and --anytime-tol need "
                            "--sequential")
        return run_eval("certify", args, randomized=args.randomized_cp)
    return _run_sequential(args)


def _run_sequential(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import distributed as D
    from ..certification import SequentialCertifier
    from ..certification.sequential import DEFAULT_ALPHA_SPLIT
    from ..errors import check_positive_int
    from ..evaluate import run_sequential_records, select_indices
    from ..records import read_records

    if args.randomized_cp:
        raise UserError("--randomized-cp is a fixed-n option; it does not apply to --sequential")
    validate_sampling_args(args)
    check_positive_int(args.budget, "--budget")
    radii = sorted(set(args.radii or []))
    if not radii and args.anytime_tol is None:
        raise UserError("--sequential needs --radii (or --anytime-tol)")
    smooth, dataset, meta, device = load_for_eval(args)
    certifier = SequentialCertifier(smooth, radii, args.alpha, budget=args.budget,
                                    sequence=args.sequence, labelled=args.labelled,
                                    n0=args.n0, batch_size=args.batch,
                                    anytime_tol=args.anytime_tol,
                                    alpha_split=(DEFAULT_ALPHA_SPLIT if args.alpha_split is None
                                                 else args.alpha_split))
    indices = select_indices(len(dataset), args.skip, args.max)
    check_before_writing(smooth, dataset, indices)
    if indices:  # the sound sampler's share of α is set aside now, so the config records
        certifier.check_sampler(dataset[indices[0]][0].numel())  # the split actually used
    unreachable = [r for r in radii if r > certifier.radius_cap]
    if unreachable:
        cap = (f"with --budget {args.budget:,} at σ = {smooth.sigma:g} no radius above "
               f"{certifier.radius_cap:.3f} can be certified")
        if len(unreachable) == len(radii):
            raise UserError(f"{cap}: every radius asked for ({', '.join(map(str, radii))}) is "
                            "beyond it; lower --radii or raise --budget")
        warn(f"smoothadv: warning: {cap}; radii {', '.join(map(str, unreachable))} will "
             "not be certified (inputs that reach them spend the whole budget)")
    # sequential runs average about a tenth of their budget per input (see the README)
    expected = len(indices) * (args.budget // 10 + (0 if args.labelled else args.n0))
    compiled = maybe_compile(smooth, args, dataset[0][0], expected) if indices else "no input"
    out = Path(args.out)
    write_config(out.with_name(out.name + ".config.json"), args, sigma=smooth.sigma,
                 device=str(device), **model_config(meta), num_inputs=len(indices),
                 radius_rounding="down", mode="sequential", radii=radii,
                 alpha_seq=certifier.alpha_seq, alpha_end=certifier.alpha_end,
                 noise=smooth.noise.kind, compiled=compiled)
    run_sequential_records(certifier, dataset, indices, out, seed=args.seed,
                           progress=not args.no_progress)
    if D.is_main():
        rec = read_records(out)
        line = summary_line("certify", rec, args)
        if not rec.is_empty:
            samples = rec["samples"]
            line += (f"; samples per input: mean {samples.mean():,.0f}, median "
                     f"{float(np.median(samples)):,.0f}")
        print(line)
    D.destroy_process_group()
    return 0
