import math

import pytest
import torch
import torch.nn.functional as F

from smoothadv import Smooth
from smoothadv.attacks.smoothadv import (
    SmoothAdvDDN,
    SmoothAdvPGD,
    create_attack,
    default_ddn_gamma,
    project,
)
from smoothadv.cli import main
from smoothadv.data.datasets import create_dataset, get_dataset_spec
from smoothadv.errors import UserError
from smoothadv.models import load_checkpoint, save_checkpoint
from smoothadv.records.files import read_records
from smoothadv.train import TrainConfig, train

from .conftest import LinearBinary

ATTACKS = {
    "pgd": lambda **kw: SmoothAdvPGD(epsilon=0.3, steps=7, num_noise_vectors=4, **kw),
    "ddn": lambda **kw: SmoothAdvDDN(epsilon=0.3, steps=7, num_noise_vectors=4, **kw),
}


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """An MLP trained on digits with Gaussian augmentation at σ = 0.25 (about a second)."""
    out = tmp_path_factory.mktemp("digits_gauss")
    ckpt = train(TrainConfig(dataset="digits", out=str(out), epochs=20, batch=64, lr=0.1,
                             lr_step=100, sigma=0.25, progress=False, device="cpu"))
    return load_checkpoint(ckpt)[0]


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("estimator", ["grad", "no_grad", "no_grad_cv"])
def test_invariants(digits_model, name, estimator):
    test = create_dataset("digits", "test")
    x, y = test.images[:64], test.targets[:64]
    smooth = Smooth(digits_model, 10, 0.25)
    x_adv = ATTACKS[name](estimator=estimator)(smooth, x, y)
    dist = (x_adv - x).flatten(1).norm(dim=1)
    # DDN rounds its answer to 256 levels as the paper does: at most half a level per pixel
    slack = 1e-5 if name == "pgd" else math.sqrt(x[0].numel()) / 510
    assert torch.all(dist <= 0.3 + slack)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert dist.max() > 0.1  # it moved
    assert not x_adv.requires_grad
    if name == "ddn":  # the strict option never leaves the ball
        strict = ATTACKS[name](estimator=estimator, strict_epsilon=True)(smooth, x, y)
        assert torch.all((strict - x).flatten(1).norm(dim=1) <= 0.3 + 1e-6)


def test_model_state_is_restored(digits_model):
    digits_model.train()
    digits_model.zero_grad(set_to_none=True)
    digits_model[1][1].weight.requires_grad_(False)  # a caller's own frozen layer
    x = create_dataset("digits", "test").images[:4]
    SmoothAdvPGD(epsilon=0.5, steps=2)(Smooth(digits_model, 10, 0.25), x, torch.zeros(4).long())
    assert digits_model.training
    assert not digits_model[1][1].weight.requires_grad
    assert digits_model[1][3].weight.requires_grad
    assert all(p.grad is None for p in digits_model.parameters())
    digits_model[1][1].weight.requires_grad_(True)
    digits_model.eval()


def test_linear_closed_form_flip_and_no_flip():
    # a linear model: g's decision boundary is the model's own, at distance |w·x+b|/‖w‖
    g = torch.Generator().manual_seed(0)
    model = LinearBinary(torch.randn(16, generator=g), 0.0)
    model.b.data = -model.w.sum() / 2
    x = (0.5 + 0.15 * torch.randn(200, 1, 4, 4, generator=g)).clamp(0.05, 0.95)
    y = (model.margin(x) > 0).long()
    dist = model.true_radius(x)
    smooth = Smooth(model, 2, 0.25)
    # ε a little above each input's distance: nearly every smoothed prediction flips
    flips = 0
    for i in range(len(x)):
        eps = float(dist[i]) * 1.1 + 0.01
        attack = create_attack("pgd", epsilon=eps, steps=20, num_noise_vectors=64)
        x_adv = attack(smooth, x[i : i + 1], y[i : i + 1])
        flips += int((model.margin(x_adv) > 0).long().item() != y[i].item())
    assert flips >= 0.95 * len(x)
    # ε well below the distance: never
    eps = 0.5 * float(dist.min())
    x_adv = SmoothAdvPGD(epsilon=eps, steps=20, num_noise_vectors=64)(smooth, x, y)
    assert torch.all((model.margin(x_adv) > 0).long() == y)


def test_no_grad_estimator_agrees_with_the_gradient(digits_model):
    test = create_dataset("digits", "test")
    x, y = test.images[:48], test.targets[:48]
    smooth = Smooth(digits_model, 10, 0.25)
    noise = smooth.sample_noise(x, 256, torch.Generator().manual_seed(0))
    exact = SmoothAdvPGD(epsilon=1, steps=1)
    g1, p1 = exact.ascent_direction(smooth.base_classifier, x, y, noise)
    cosines = {}
    for estimator in ("no_grad", "no_grad_cv"):
        estimate = SmoothAdvPGD(epsilon=1, steps=1, estimator=estimator)
        g2, p2 = estimate.ascent_direction(smooth.base_classifier, x, y, noise)
        assert torch.allclose(p1, p2, atol=1e-5)
        cosines[estimator] = F.cosine_similarity(g1.flatten(1), g2.flatten(1), dim=1)
    # the paper's estimator points the right way on average; the control variate is tighter
    assert cosines["no_grad"].mean() > 0.1 and (cosines["no_grad"] > 0).float().mean() > 0.6
    assert cosines["no_grad_cv"].mean() > 0.2 and (cosines["no_grad_cv"] > 0).float().mean() > 0.8
    assert cosines["no_grad_cv"].mean() > cosines["no_grad"].mean()


def test_targeted_moves_towards_the_target(digits_model):
    x = create_dataset("digits", "test").images[:32]
    smooth = Smooth(digits_model, 10, 0.25)
    target = torch.full((32,), 3)
    noise = smooth.sample_noise(x, 16, torch.Generator().manual_seed(1))
    before = smooth.soft_forward(x, noise=noise)[:, 3]
    x_adv = SmoothAdvPGD(epsilon=1.0, steps=10, targeted=True)(smooth, x, target, noise=noise)
    after = smooth.soft_forward(x_adv, noise=noise)[:, 3]
    assert (after > before).float().mean() > 0.9


def test_projection_and_defaults():
    x = torch.rand(5, 3, 4, 4)
    far = x + 10 * torch.randn(5, 3, 4, 4)
    p = project(x, far, 0.7)
    assert torch.all((p - x).flatten(1).norm(dim=1) <= 0.7 + 1e-6)
    assert p.min() >= 0 and p.max() <= 1
    assert default_ddn_gamma(0.5, 20) == pytest.approx(1 - (3 / 510 / 0.5) ** (1 / 20))
    assert default_ddn_gamma(0.01, 20) == pytest.approx(1 - (3 / 510 / 0.01) ** (1 / 20))
    with pytest.raises(UserError, match="ddn-gamma"):  # no silent floor: γ ≤ 0 is refused
        default_ddn_gamma(0.005, 20)
    assert "epsilon=0.3" in repr(ATTACKS["pgd"]())
    with pytest.raises(UserError, match="unknown attack"):
        create_attack("fgsm", epsilon=1, steps=1)
    with pytest.raises(UserError, match="epsilon"):
        SmoothAdvPGD(epsilon=-1, steps=1)


def test_smoothadv_is_stronger_than_attacking_the_base(digits_model, tmp_path):
    spec = get_dataset_spec("digits")
    ckpt = tmp_path / "m.pth.tar"
    save_checkpoint(ckpt, digits_model, arch="mlp", epoch=1,
                    meta=dict(dataset="digits", num_classes=10, mean=spec.mean,
                              std=spec.std, image_size=8, sigma=0.25))
    common = [str(ckpt), "--epsilon", "1.0", "--steps", "10", "--n", "200", "--alpha", "0.01",
              "--skip", "2", "--no-progress"]
    assert main(["attack", *common, "--m-test", "8", "--out", str(tmp_path / "s.tsv"),
                 "--save-examples", str(tmp_path / "adv")]) == 0
    assert main(["attack", *common, "--base-attack", "--out", str(tmp_path / "b.tsv")]) == 0
    smooth_rec, base_rec = read_records(tmp_path / "s.tsv"), read_records(tmp_path / "b.tsv")
    clean = (smooth_rec["cleanPredict"] == smooth_rec["label"]).mean()
    robust_smooth, robust_base = smooth_rec["correct"].mean(), base_rec["correct"].mean()
    assert clean > 0.9
    assert robust_smooth <= clean
    assert robust_smooth <= robust_base
    assert (smooth_rec["l2"] <= 1.0 + 1e-5).all()
    assert (tmp_path / "adv" / "grid.png").exists() and (tmp_path / "adv" / "0_adv.png").exists()


def test_help_states_the_papers_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["attack", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the paper's gradient-free estimator" in text
    assert "With m = 1 every choice uses the exact gradient" in text
    assert "1-(3/510/ε)^(1/T), the paper's evaluation setting, no floor" in text
    assert "vote (the paper" in text and "a departure" in text


def test_an_attack_takes_the_base_classifier_and_the_noise(digits_model):
    """What the attack uses is what it takes: f and δ. The smoother in f's place gives the same
    point; soft G from the attack's logits is the one soft classifier of the smoother."""
    from smoothadv.smoothing.smooth import soft_classifier

    model = digits_model
    test = create_dataset("digits", "test")
    x, y = test.images[:16], test.targets[:16]
    smooth = Smooth(model, 10, 0.25)
    gen = torch.Generator().manual_seed(3)
    noise = smooth.sample_noise(x, 4, gen)
    attack = SmoothAdvPGD(epsilon=0.5, steps=3, num_noise_vectors=4)
    by_model = attack(model, x, y, noise)
    assert torch.equal(by_model, attack(smooth, x, y, noise))
    with pytest.raises(ValueError, match="noise draws"):
        attack(model, x, y)
    step = attack.evaluate(model, x, y, noise)
    b, m = noise.shape[:2]
    logits = model((x.unsqueeze(1) + noise).reshape(b * m, *x.shape[1:])).detach()
    assert torch.equal(step.probs, soft_classifier(logits.view(b, m, -1)))
    assert torch.allclose(smooth.soft_forward(x, noise=noise).detach(), step.probs)
