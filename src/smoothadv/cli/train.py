"""``smoothadv train``: train a base classifier with any registered method (Gaussian
augmentation, SmoothAdv, stability, MACER, consistency, SmoothMix, CAT-RS)."""

from __future__ import annotations

import argparse

from .common import add_attack_args, add_common, command


def _train_args(p: argparse.ArgumentParser) -> None:
    from ..data import list_datasets
    from ..methods import list_methods
    from ..models import list_models, list_normalizations

    p.add_argument("--dataset", required=True, help=f"one of {', '.join(list_datasets())}")
    p.add_argument("--data-root", default=None, help="data folder (default: download)")
    p.add_argument("--arch", default=None,
                   help=f"one of {', '.join(list_models())} (default: the dataset's)")
    p.add_argument("--method", default="gaussian", choices=list_methods(),
                   help="gaussian (Cohen et al. 2019), smoothadv (Salman et al. 2019), "
                        "stability (Li et al. 2019), macer (Zhai et al. 2020), consistency "
                        "(Jeong & Shin 2020), smoothmix (Jeong et al. 2021) or catrs (Jeong, "
                        "Kim & Shin 2023); defaults: each authors' CIFAR-10 settings")
    p.add_argument("--sigma", type=float, default=0.25, help="training noise σ (0.25)")
    p.add_argument("--epochs", type=int, default=90, help="epochs (90)")
    p.add_argument("--batch", type=int, default=256, help="batch size (256)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (0.1)")
    p.add_argument("--lr-step", type=int, default=30,
                   help="decay the lr every N epochs (30; the paper's --lr_step_size)")
    p.add_argument("--lr-gamma", type=float, default=0.1,
                   help="lr decay factor at each step (0.1; the paper's --gamma)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (0.9)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (1e-4)")
    add_attack_args(p, "--m-train", 1, 10, eps_default=0.25, gamma_default=0.05)
    # None: each method's own default (the help texts above give SmoothAdv's)
    p.set_defaults(attack=None, epsilon=None, steps=None, num_noise=None)
    p.add_argument("--multi-noise", action="store_true",
                   help="train on all m noisy copies of each attacked image")
    p.add_argument("--warmup", type=int, default=None,
                   help="grow ε linearly from 0 over the first K epochs (SmoothAdv 0; "
                        "consistency's ε and SmoothMix's weight: 10)")
    g = p.add_argument_group(
        "other methods' hyper-parameters",
        "defaults are the authors' CIFAR-10 settings; --m-train is m (stability 1, MACER's k "
        "16, consistency 2, SmoothMix 2, CAT-RS 4), --steps T (consistency+PGD 10, SmoothMix 4, "
        "CAT-RS 4), --epsilon ε (consistency+PGD: 255/256 at σ=0.25, 2.0 at 0.5 and 1.0; "
        "CAT-RS 1.0), --attack pgd on consistency = SmoothAdv + consistency")
    g.add_argument("--lbd", type=float, default=None,
                   help="λ: stability 2/2/1, MACER 12/6/12, consistency 20/10/10 (with --attack "
                        "pgd 2/1/1), CAT-RS 0.5/1/2 at σ = 0.25/0.5/1.0")
    g.add_argument("--eta", type=float, default=None,
                   help="η: consistency's entropy weight (0.5), SmoothMix's mixup weight (5)")
    g.add_argument("--gamma", type=float, default=None, help="MACER's hinge γ (8)")
    g.add_argument("--beta", type=float, default=None, help="MACER's inverse temperature β (16)")
    g.add_argument("--deferred", type=int, default=None,
                   help="MACER: train the first K epochs with λ = 0 (the CAT-RS re-run: 51 at "
                        "σ = 1.0, else 0)")
    g.add_argument("--alpha", type=float, default=None, help="SmoothMix's step size α (2σ)")
    g.add_argument("--mix-step", type=int, default=None,
                   help="SmoothMix's mix step (0 at σ = 0.25, 1 at 0.5 and 1.0)")
    g.add_argument("--soft-targets", default=None,
                   help="CAT-RS: per-image vote distributions of a σ = 0.25 Gaussian teacher "
                        "(smoothadv soft-labels)")
    p.add_argument("--lr-milestones", type=int, nargs="+", default=None,
                   help="drop the lr ×γ at these epochs instead of every --lr-step (MACER's "
                        "original: 200 400)")
    p.add_argument("--lr-delay", type=int, default=0,
                   help="epochs by which each lr drop comes later (0; 1 reproduces the CAT-RS, "
                        "consistency and SmoothMix code's step(epoch): lr 0.1 for epochs 0-50)")
    p.add_argument("--pretrained", default=None,
                   help="start from this checkpoint (ours or the paper's); a head with another "
                        "class count is replaced")
    p.add_argument("--input-normalization", default=None,
                   choices=[*list_normalizations(), "auto"],
                   help="the model's input layer: normalize ((x-mean)/std, Cohen et al.; the "
                        "default), center (x-mean, the SmoothAdv code's InputCenterLayer) or "
                        "none (raw [0,1] images, MACER's original code); recorded in the "
                        "checkpoint. With --pretrained: default the pre-trained file's recorded "
                        "layer; auto measures a file that records none (same class count)")
    p.add_argument("--extra-data", default=None,
                   help="pseudo-labelled images (.pt from pseudo-label, or Carmon et al.'s "
                        "pickle; a pickle can run code: trusted files only)")
    p.add_argument("--extra-weight", type=float, default=1.0,
                   help="weight of the pseudo-labelled loss (1.0)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pth.tar, appending to OUT/log.tsv; "
                        "without a checkpoint yet the run simply starts")
    p.add_argument("--workers", type=int, default=0, help="data loader processes (0)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels-last memory format for conv nets (default: on; measured "
                        "faster on CPU)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training steps and the attack's passes (--compile) "
                        "or not (--no-compile); default: compile conv nets for runs of at least "
                        "500 optimizer steps; eager on failure")
    p.add_argument("--amp", action="store_true",
                   help="bfloat16 autocast on CUDA (noise is added in float32 first)")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on a fixed random subset of this size")
    p.add_argument("--test-subset", type=int, default=None,
                   help="evaluate on a fixed random subset of this size")
    p.add_argument("--eval-adv-max", type=int, default=500,
                   help="test inputs attacked for the per-epoch attacked accuracy (500)")
    p.add_argument("--out", required=True, help="run directory")
    add_common(p)


def config_from_args(args: argparse.Namespace):
    """The :class:`~smoothadv.train.TrainConfig` the parsed options describe."""
    from ..train import TrainConfig

    return TrainConfig(
        dataset=args.dataset, out=args.out, arch=args.arch, data_root=args.data_root,
        method=args.method, sigma=args.sigma, epochs=args.epochs, batch=args.batch,
        lr=args.lr, lr_step=args.lr_step, lr_gamma=args.lr_gamma, momentum=args.momentum,
        weight_decay=args.weight_decay, attack=args.attack, epsilon=args.epsilon,
        steps=args.steps, m_train=args.num_noise, multi_noise=args.multi_noise,
        warmup=args.warmup, lbd=args.lbd, eta=args.eta, gamma=args.gamma, beta=args.beta,
        deferred=args.deferred, alpha=args.alpha, mix_step=args.mix_step,
        soft_targets=args.soft_targets, lr_delay=args.lr_delay,
        lr_milestones=tuple(args.lr_milestones) if args.lr_milestones else None,
        estimator=args.estimator, ddn_gamma=args.ddn_gamma,
        ddn_init_norm=args.ddn_init_norm, ddn_decision=args.ddn_decision,
        ddn_strict_epsilon=args.ddn_strict_epsilon, pretrained=args.pretrained,
        input_normalization=args.input_normalization, extra_data=args.extra_data,
        extra_weight=args.extra_weight, resume=args.resume,
        workers=args.workers, channels_last=args.channels_last,
        compile="auto" if args.compile is None else ("on" if args.compile else "off"),
        amp=args.amp,
        train_subset=args.train_subset, test_subset=args.test_subset,
        eval_adv_max=args.eval_adv_max, seed=args.seed, device=args.device,
        progress=not args.no_progress,
    )


@command("train", "train a base classifier: Gaussian, SmoothAdv, stability, MACER, "
         "consistency, SmoothMix or CAT-RS", _train_args)
def run_train(args: argparse.Namespace) -> int:
    from ..train import train

    path = train(config_from_args(args))
    print(f"checkpoint: {path}")
    return 0
