"""Denoised smoothing: the one-shot diffusion denoiser against closed forms, DnCNN, the
composition with a classifier, training objectives, and the CLI."""

import json
import math
import shlex

import pytest
import torch
import torch.nn as nn
from scipy.stats import binomtest, norm

from smoothadv import Smooth
from smoothadv.cli import main
from smoothadv.denoise.compose import DenoisedClassifier, compose, load_classifier
from smoothadv.denoise.diffusion import (
    DiffusionDenoiser,
    cosine_alphas_cumprod,
    linear_alphas_cumprod,
    timestep_for_sigma,
)
from smoothadv.denoise.dncnn import DnCNN
from smoothadv.denoise.training import denoiser_loss
from smoothadv.records.files import read_records

from .conftest import ROOT, shared_path


def test_timestep_tables_of_both_schedules():
    linear, cosine = linear_alphas_cumprod(1000), cosine_alphas_cumprod(4000)
    sigmas = (0.12, 0.25, 0.5, 1.0)
    assert [timestep_for_sigma(linear, s) for s in sigmas] == [70, 145, 259, 396]
    assert [timestep_for_sigma(cosine, s) for s in sigmas] == [573, 1158, 1984, 2809]
    for s in sigmas:  # the first t reaching 2σ, and σ_eff at most 0.7% above σ
        den = DiffusionDenoiser(nn.Identity(), linear, s)
        assert 1.0 <= den.sigma_eff / s <= 1.007


class GaussianOracle(nn.Module):
    """The optimal ε-predictor for data x ~ N(m, C) (d = C·H·W coordinates, float64):
    E[ε | x_t] = √(1−ᾱ)·Σ_t⁻¹(x_t − √ᾱ(2m − 1)), Σ_t = 4ᾱC + (1 − ᾱ)I."""

    def __init__(self, mean, cov, alpha_bar, shape):
        super().__init__()
        self.m, self.a, self.shape = mean, alpha_bar, shape
        d = len(mean)
        sigma_t = 4 * alpha_bar * cov + (1 - alpha_bar) * torch.eye(d, dtype=torch.float64)
        self.solve = torch.linalg.inv(sigma_t)

    def forward(self, x_t, t):
        rows = x_t.flatten(1) - math.sqrt(self.a) * (2 * self.m - 1)
        eps = math.sqrt(1 - self.a) * rows @ self.solve.T
        return eps.view(-1, *self.shape)


def _gaussian_data(d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.1
    cov = a @ a.T + 0.01 * torch.eye(d, dtype=torch.float64)
    mean = torch.rand(d, generator=g, dtype=torch.float64) * 0.5 + 0.25
    return mean, cov


@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5])
def test_one_shot_denoiser_is_the_posterior_mean_for_gaussian_data(sigma):
    mean, cov = _gaussian_data()
    alphas = linear_alphas_cumprod(1000)
    probe = DiffusionDenoiser(nn.Identity(), alphas, sigma)
    unet = GaussianOracle(mean, cov, probe.alpha_bar, (1, 2, 2))
    den = DiffusionDenoiser(unet, alphas, sigma, top_up=True, clip=False)
    g = torch.Generator().manual_seed(1)
    y = torch.rand(16, 1, 2, 2, generator=g, dtype=torch.float64)  # x + δ
    x_t = den.model_input(y)
    seen = (x_t / math.sqrt(den.alpha_bar) + 1) / 2  # y plus the top-up
    s2 = den.sigma_eff ** 2
    top_up = (seen - y).std().item()  # the top-up's pixel-space std is √(σ_eff² − σ²)
    assert 0 < top_up < 2 * math.sqrt(s2 - sigma ** 2)
    gain = cov @ torch.linalg.inv(cov + s2 * torch.eye(4, dtype=torch.float64))
    posterior = mean + (seen.flatten(1) - mean) @ gain.T
    out = den.denoise(x_t).flatten(1)
    assert torch.allclose(out, posterior, atol=1e-10, rtol=0)
    assert torch.equal(den(y), den.denoise(x_t))  # the top-up is a function of y
    # without the top-up the model sees a slightly lower level than it expects: it returns
    # the posterior mean for σ_eff applied to y, off the one for the true σ by the mismatch
    plain = DiffusionDenoiser(unet, alphas, sigma, top_up=False, clip=False)
    at_eff = mean + (y.flatten(1) - mean) @ gain.T
    assert torch.allclose(plain(y).flatten(1), at_eff, atol=1e-10, rtol=0)
    gain_true = cov @ torch.linalg.inv(cov + sigma ** 2 * torch.eye(4, dtype=torch.float64))
    exact = mean + (y.flatten(1) - mean) @ gain_true.T
    mismatch = (at_eff - exact).abs().max().item()
    assert 0 < mismatch < 0.01


def test_zero_and_oracle_epsilon():
    alphas = linear_alphas_cumprod(1000)
    zero = DiffusionDenoiser(lambda x_t, t: torch.zeros_like(x_t), alphas, 0.25, top_up=False,
                             clip=False)
    y = torch.rand(3, 1, 4, 4, dtype=torch.float64) * 1.4 - 0.2
    assert torch.allclose(zero(y), y, atol=1e-12)

    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(3))

    class Oracle(nn.Module):  # knows the clean image: ε = (x_t − √ᾱ(2x − 1))/√(1 − ᾱ)
        def forward(self, x_t, t):
            a = oracle.alpha_bar
            return (x_t - math.sqrt(a) * (2 * x - 1)) / math.sqrt(1 - a)

    oracle = DiffusionDenoiser(Oracle(), alphas, 0.25)
    noisy = x + 0.25 * torch.randn(50, 1, 4, 4)
    assert torch.allclose(oracle(noisy), x.expand(50, -1, -1, -1), atol=1e-5)
    # a classifier that is right on x is then right on every noisy sample: n_A = N and the
    # radius is σΦ⁻¹(α^{1/N})
    w = torch.randn(16)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        classifier[1].weight.copy_(torch.stack([torch.zeros(16), w]))
        classifier[1].bias.copy_(torch.tensor([0.0, 1.0 - float(w @ x.flatten())]))
    smooth = Smooth(DenoisedClassifier(classifier, oracle), 2, 0.25)
    cert = smooth.certify(x[0], 10, 2000, 0.001, 500, seed=0)
    assert cert.prediction == 1 and cert.n_a == 2000
    assert math.isclose(cert.radius, 0.25 * norm.ppf(0.001 ** (1 / 2000)), rel_tol=1e-9)


def test_linear_denoiser_and_classifier_have_a_closed_form():
    g = torch.Generator().manual_seed(0)
    d = 16
    A = torch.eye(d) * 0.6 + 0.05 * torch.randn(d, d, generator=g)
    b = 0.1 * torch.randn(d, generator=g)
    w = torch.randn(d, generator=g)

    class Linear(nn.Module):
        def forward(self, y):
            return (y.flatten(1) @ A.T + b).view_as(y)

    c = -float(w @ (A @ torch.full((d,), 0.5) + b))  # boundary through the centre
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(d, 2))
    with torch.no_grad():
        classifier[1].weight.copy_(torch.stack([torch.zeros(d), w]))
        classifier[1].bias.copy_(torch.tensor([0.0, c]))
    base = DenoisedClassifier(classifier, Linear())
    sigma, n = 0.25, 20_000
    smooth = Smooth(base, 2, sigma)
    u = A.T @ w
    for shift in (0.3, 0.8, 1.5):
        x = (torch.full((d,), 0.5) + shift * sigma * u / u.norm()).clamp(0, 1).view(1, 4, 4)
        margin = float(w @ (A @ x.flatten() + b)) + c
        true_pa = norm.cdf(margin / (sigma * float(u.norm())))
        cert = smooth.certify(x, 100, n, 0.001, 2000, seed=5)
        assert cert.prediction == 1
        assert binomtest(cert.n_a, n, true_pa).pvalue > 1e-3  # counts ~ Binomial(n, p_A)
        assert cert.radius <= abs(margin) / float(u.norm())  # never above the true radius


def test_dncnn_shape_identity_and_parameter_count():
    net = DnCNN(3)
    assert sum(p.numel() for p in net.parameters()) == 558_400
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(net(x), x)  # the last conv starts at zero: the identity
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 15 and bns[0].eps == 1e-4 and bns[0].momentum == 0.95


def test_stab_uses_the_clean_hard_label_and_freezes_the_classifier():
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    for p in classifier.parameters():
        p.requires_grad_(False)
    den = DnCNN(1, depth=3, width=4)
    nn.init.normal_(den.net[-1].weight, std=0.1)
    x = torch.rand(8, 1, 4, 4)
    y = torch.randint(0, 3, (8,))
    delta = 0.25 * torch.randn_like(x)
    loss = denoiser_loss("stab", den, classifier, x, y, delta)
    loss.backward()
    hard = classifier(x).argmax(1)
    expected = nn.functional.cross_entropy(classifier(den(x + delta)), hard)
    assert torch.allclose(loss, expected)
    assert all(p.grad is None for p in classifier.parameters())
    assert all(p.grad is not None for p in den.parameters())
    clf = denoiser_loss("clf", den, classifier, x, y, delta)
    assert torch.allclose(clf, nn.functional.cross_entropy(classifier(den(x + delta)), y))


def _tiny_unet():
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))


def test_tiny_diffusers_unet_on_digits_denoises_and_round_trips(tmp_path):
    pytest.importorskip("diffusers")
    from diffusers import DDPMScheduler

    from smoothadv.data.datasets import create_dataset
    from smoothadv.denoise.diffusion import load_diffusers

    torch.manual_seed(0)
    train = create_dataset("digits", "train").images.float() / 255
    test = create_dataset("digits", "test").images.float()[:256] / 255
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    unet = _tiny_unet()
    opt = torch.optim.Adam(unet.parameters(), lr=2e-3)
    a = scheduler.alphas_cumprod
    for _ in range(300):  # about half a minute on 2 CPU cores
        x = train[torch.randint(0, len(train), (128,))] * 2 - 1
        t = torch.randint(1, 500, (128,))
        eps = torch.randn_like(x)
        at = a[t].view(-1, 1, 1, 1)
        loss = ((unet(at.sqrt() * x + (1 - at).sqrt() * eps, t).sample - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    unet.eval()
    for sigma in (0.25, 0.5):
        den = DiffusionDenoiser(unet, a, sigma)
        noisy = test + sigma * torch.randn(test.shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            mse = float(((den(noisy) - test) ** 2).mean())
        clipped = float(((noisy.clamp(0, 1) - test) ** 2).mean())
        assert mse < 0.8 * clipped, (sigma, mse, clipped)
    folder = tmp_path / "ddpm"
    unet.save_pretrained(folder / "unet")
    scheduler.save_pretrained(folder / "scheduler")
    loaded = load_diffusers(str(folder), 0.5)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x = test[0]
    first = Smooth(DenoisedClassifier(classifier, DiffusionDenoiser(unet, a, 0.5)), 10, 0.5)
    second = Smooth(DenoisedClassifier(classifier, loaded), 10, 0.5)
    c1 = first.certify(x, 10, 200, 0.001, 100, seed=4)
    c2 = second.certify(x, 10, 200, 0.001, 100, seed=4)
    assert (c1.prediction, c1.n_a, c1.radius) == (c2.prediction, c2.n_a, c2.radius)


def test_dncnn_trained_on_digits_beats_clipping_and_certifies_after_reload(tmp_path, capsys):
    from smoothadv.denoise.training import DenoiserConfig, load_dncnn, train_denoiser

    path = train_denoiser(DenoiserConfig(dataset="digits", out=str(tmp_path / "dn"),
                                         sigma=0.5, depth=4, width=16, epochs=3, batch=64,
                                         progress=False, device="cpu"))
    rows = (tmp_path / "dn" / "log.tsv").read_text().splitlines()
    last = rows[-1].split("\t")
    assert float(last[4]) < 0.8 * float(last[5])  # denoised MSE below the clipped input's
    # resume: a finished run does nothing more; the same command again continues
    again = train_denoiser(DenoiserConfig(dataset="digits", out=str(tmp_path / "dn"), sigma=0.5,
                                          depth=4, width=16, epochs=3, batch=64, resume=True,
                                          progress=False, device="cpu"))
    assert again == path and (tmp_path / "dn" / "log.tsv").read_text().splitlines() == rows
    from smoothadv.train import TrainConfig, train

    ckpt = train(TrainConfig(dataset="digits", out=str(tmp_path / "clean"), method="clean",
                             epochs=2, batch=64, progress=False, device="cpu"))
    outs = []
    for i in range(2):
        out = tmp_path / f"c{i}.tsv"
        assert main(["certify", str(ckpt), "--denoiser", f"dncnn:{path}", "--dataset", "digits",
                     "--sigma", "0.5", "--n", "200", "--skip", "100", "--out", str(out),
                     "--no-progress"]) == 0
        outs.append([r.rsplit("\t", 1)[0] for r in out.read_text().splitlines()])
    assert outs[0] == outs[1] and len(outs[0]) == 6
    model, meta = load_dncnn(path)
    assert meta["objective"] == "mse" and meta["sigma"] == 0.5 and not model.training


def test_timm_and_torchvision_classifiers_offline(tmp_path):
    pytest.importorskip("timm")
    c = load_classifier("timm:resnet18")
    assert c.input_size == 224 and c.num_classes == 1000 and c.meta["weights"] == "random"
    tv = load_classifier("torchvision:resnet18")
    assert tv.input_size == 224 and tv.num_classes == 1000
    base = compose(tv, DnCNN(3, depth=2, width=4))
    with torch.no_grad():
        out = base(torch.rand(2, 3, 32, 32))  # resized to 224 inside
    assert out.shape == (2, 1000)
    from smoothadv.errors import UserError

    with pytest.raises(UserError, match="timm model"):
        load_classifier("timm:not_a_model_at_all")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["certify", "--classifier", "torchvision:resnet18", "--dataset", "digits",
                 "--sigma", "0.25", "--out", str(tmp_path / "x.tsv")]) == 2
    assert "classes" in capsys.readouterr().err
    assert main(["certify", "--denoiser", "nope:x", "--classifier", "torchvision:resnet18",
                 "--dataset", "cifar10", "--sigma", "0.25", "--out", str(tmp_path / "y.tsv")]) \
        == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown denoiser" in err[0]


def test_a_denoiser_lifts_a_noise_free_classifier_on_digits(tmp_path):
    """The pattern of Salman et al.'s tables at digits scale (the demo's settings, shorter)."""
    from smoothadv.analysis.metrics import certified_accuracy
    from smoothadv.denoise.training import DenoiserConfig, train_denoiser
    from smoothadv.records.files import read_records
    from smoothadv.train import TrainConfig, train

    ckpt = train(TrainConfig(dataset="digits", arch="mlp", out=str(tmp_path / "clean"),
                             method="clean", epochs=20, batch=64, lr_step=14, progress=False,
                             device="cpu"))
    path = train_denoiser(DenoiserConfig(dataset="digits", out=str(tmp_path / "dn"),
                                         sigma=0.25, depth=5, width=16, epochs=10, batch=64,
                                         lr_step=7, progress=False, device="cpu"))
    accuracy = {}
    for name, extra in (("alone", []), ("denoised", ["--denoiser", f"dncnn:{path}"])):
        out = tmp_path / f"{name}.tsv"
        assert main(["certify", str(ckpt), *extra, "--dataset", "digits", "--sigma", "0.25",
                     "--n0", "50", "--n", "2000", "--skip", "5", "--out", str(out),
                     "--no-progress"]) == 0
        accuracy[name] = certified_accuracy(read_records(out), [0.5])[0]
    assert accuracy["denoised"] > accuracy["alone"] + 0.08, accuracy


def test_class_map_logits_are_logsumexp_over_each_group():
    from smoothadv.denoise.classmaps import ClassMapped, imagenet_categories, imagenet_to_cifar10

    groups = imagenet_to_cifar10()
    names = imagenet_categories()
    assert len(groups) == 10 and len({i for g in groups for i in g}) == sum(map(len, groups))
    assert [names[i] for i in groups[0]] == ["airliner", "warplane", "wing"]
    assert names[groups[3][0]] == "tabby" and len(groups[5]) == 118  # cats, dogs
    net = nn.Linear(4, 1000)
    mapped = ClassMapped(net, groups)
    x = torch.randn(3, 4)
    z = net(x)
    expected = torch.stack([z[:, g].logsumexp(1) for g in groups], 1)
    assert torch.allclose(mapped(x), expected)
    # a base classifier whose top ImageNet logit lies in a group answers that group's class
    z = torch.full((1, 1000), -50.0)
    z[0, names.index("tow truck")] = 10.0
    assert int(ClassMapped(nn.Identity(), groups)(z).argmax()) == 9


def test_documented_cifar10_denoised_command_runs_on_local_models(tmp_path, capsys):
    """The README's command with an ImageNet-head classifier on CIFAR-10: the class map makes
    it run (random timm weights and a locally saved diffusers model stand in for downloads)."""
    pytest.importorskip("diffusers")
    pytest.importorskip("timm")
    from diffusers import DDPMScheduler, UNet2DModel

    root = shared_path("cifar10")
    folder = tmp_path / "ddpm"
    torch.manual_seed(0)
    UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                block_out_channels=(8, 16), norm_num_groups=4,
                down_block_types=("DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D")).save_pretrained(folder / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder / "scheduler")
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "--denoiser diffusion:" in ln)
    command = line[line.index("smoothadv certify"):].strip(" `|").split("` |")[0]
    argv = shlex.split(command)[1:]
    argv[argv.index("--denoiser") + 1] = f"diffusion:{folder}"
    classifier = argv.index("--classifier") + 1
    argv[classifier] = argv[classifier].removesuffix(":pretrained")  # random weights offline
    argv[argv.index("--out") + 1] = str(tmp_path / "d.tsv")
    assert "--class-map" in argv
    argv += ["--data-root", str(root), "--max", "2", "--n0", "4", "--n", "8", "--batch", "8",
             "--no-progress"]
    assert main(argv) == 0
    rec = read_records(tmp_path / "d.tsv")
    assert len(rec) == 2 and set(rec["predict"].tolist()) <= set(range(-1, 10))
    config = json.loads((tmp_path / "d.tsv.config.json").read_text())
    assert config["class_map"] == "imagenet-cifar10"
    # without the map: one line that names it
    argv.remove("--class-map")
    argv.remove("imagenet-cifar10")
    assert main([*argv[:argv.index("--out") + 1], str(tmp_path / "e.tsv"),
                 *argv[argv.index("--out") + 2:]]) == 2
    assert "--class-map" in capsys.readouterr().err
