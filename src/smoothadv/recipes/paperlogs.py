"""Reading the SmoothAdv paper's released certification logs by their folder names.

The authors' layout encodes each model's hyper-parameters in the path of its log, e.g.
``cifar10/PGD_2steps_multiNoiseSamples/8-multitrain/eps_255/cifar10/resnet110/noise_0.25/
test/sigma_0.25``: dataset, attack and steps, m_train with multi-noise training, ε in units of
1/256, architecture and σ. :func:`parse_log_path` turns such a path (relative to a group folder
such as ``cifar10/ours``) into those facts; the catalogue (``catalogue.json``) was written from
them and from the paper's text.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

ARCHS = {"resnet110": "cifar_resnet110", "resnet50": "resnet50", "resnet20": "cifar_resnet20"}
EPS_UNIT = 256  # the paper's code divides ε by 256: eps_255 is 0.996


def parse_log_path(path: str) -> dict:
    """Facts encoded in a log path (relative to its group folder, or with the group in front):
    dataset, arch, sigma, method, attack, steps, epsilon_paper, epsilon, m_train, multi_noise,
    pretraining, self_training_weight, fine-tune epochs. Missing facts are None."""
    parts = PurePosixPath(path).parts
    text = "/".join(parts)
    facts: dict = {"dataset": "imagenet" if "imagenet" in parts[0] or "resnet50" in parts
                   else "cifar10"}
    arch = next((ARCHS[p] for p in parts if p in ARCHS), None)
    facts["arch"] = arch
    sigma = re.search(r"(?:^|/)noise_([0-9.]+)", text)
    facts["sigma"] = float(sigma.group(1)) if sigma else None
    attack = None
    for p in parts:
        m = re.search(r"(PGD|DDN)_(\d+)steps?", p)
        if m and "finetune" not in p:
            attack = m
    facts["method"] = "smoothadv" if attack else "gaussian"
    facts["attack"] = attack.group(1).lower() if attack else None
    facts["steps"] = int(attack.group(2)) if attack else None
    eps = re.search(r"(?:^|/)eps_(\d+)", text)
    facts["epsilon_paper"] = int(eps.group(1)) if eps else None
    facts["epsilon"] = int(eps.group(1)) / EPS_UNIT if eps else None
    multi = re.search(r"(\d+)-multitrain", text)
    facts["m_train"] = int(multi.group(1)) if multi else 1
    facts["multi_noise"] = bool(re.search(r"multi[nN]oise", text))
    pre = re.search(r"finetune_cifar_from_imagenet(PGD|DDN)(\d+)steps", text)
    facts["pretraining"] = (f"imagenet32 SmoothAdv-{pre.group(1)} {pre.group(2)} steps"
                            if pre else None)
    epochs = re.search(r"_(\d+)epochs", text)
    facts["finetune_epochs"] = int(epochs.group(1)) if epochs else None
    weight = re.search(r"weight_([0-9.]+)", text)
    facts["self_training_weight"] = float(weight.group(1)) if weight else None
    return facts
