"""What a record file's configuration says: σ, precision, norm and threat model, sampling;
and the one-line refusals and notes when files of different settings meet in one table."""

from __future__ import annotations

import os
import re

from ..errors import UserError
from ..noise import NORM_NAMES
from ..records.files import (
    record_setting,
    threat_model,
)

_SIGMA_PATTERNS = (r"sigma[_=]?([0-9.]+)", r"noise[_=]?([0-9.]+)")


def config_value(path: str | os.PathLike, key: str) -> float | None:
    """``key`` of a record file's configuration as a number (:func:`~smoothadv.records.
    record_setting`: the stage config's field, else the document's), or None."""
    value = record_setting(path, key)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def record_precision(path: str | os.PathLike) -> str:
    """The precision a record file was computed at (fp32 where it names none)."""
    return str(record_setting(path, "precision", "fp32"))


def record_norm(path: str | os.PathLike) -> str:
    """The norm of a record file's radii (l2 where it names none: records from before ℓ1
    certificates)."""
    return str(record_setting(path, "norm", "l2"))


def common_norm(paths, mix_threats: bool = False) -> str:
    """The one norm of ``paths``' radii; refuses, in one line, records of different norms in
    one table or curve (their radii measure different balls), and records of different input
    sets (ℝ^d, the box, the 8-bit grid: :func:`~smoothadv.records.threat_model`) unless
    ``mix_threats``."""
    threats = {str(p): threat_model(p) for p in paths}
    norms = {p: t.norm for p, t in threats.items()}
    if len(set(norms.values())) > 1:
        shown = ", ".join(f"{p} {NORM_NAMES.get(n, n)}" for p, n in norms.items())
        raise UserError(f"these records certify radii of different norms ({shown}): put each "
                        "norm in its own table")
    if len({t.inputs for t in threats.values()}) > 1 and not mix_threats:
        shown = ", ".join(f"{p}: {t}" for p, t in threats.items())
        raise UserError(f"these records certify different threat models ({shown}); pass "
                        "--mix-threats to put them in one table")
    return next(iter(norms.values()), "l2")


def sampling_note(paths) -> str | None:
    """A line naming the sampling settings (n, n0, α) when ``paths``' records differ in them
    (their certified accuracies are then not comparable as they stand), else None."""
    settings = {}
    for p in paths:
        if record_setting(p, "derandomized", False):
            continue  # exact counts: no n, n0 or α
        values = tuple(record_setting(p, key) for key in ("n", "n0", "alpha"))
        if values != (None, None, None):
            settings[str(p)] = values
    if len(set(settings.values())) <= 1:
        return None
    shown = "; ".join(f"{p}: n={v[0]}, n0={v[1]}, α={v[2]}" for p, v in settings.items())
    return (f"note: these records were certified with different sampling ({shown}); larger n "
            "certifies larger radii, so compare like with like")


def threat_label(paths) -> str:
    """One line naming the threat model(s) of ``paths``' radii, for a table's heading."""
    found = sorted({str(threat_model(p)) for p in paths})
    return "radii certify the " + " / ".join(found)


def sigma_from_path(path: str | os.PathLike) -> float | None:
    """σ of a record file: from its ``.config.json`` beside it, else from ``sigma_0.25`` or
    ``noise_0.25`` in its path (the paper's layout)."""
    value = config_value(path, "sigma")
    if value is not None:
        return value
    for pattern in _SIGMA_PATTERNS:
        found = re.findall(pattern, str(path))
        if found:
            try:
                return float(found[-1].rstrip("."))
            except ValueError:
                continue
    return None
