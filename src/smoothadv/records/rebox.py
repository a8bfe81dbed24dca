"""The box-constrained ℓ1 radius applied after the fact to a record of uniform or splitting
noise: every certified row's radius R (2λ(p̲_A − ½), as every table counts it: rounded down,
or less half a unit for a file rounded to nearest) gives back a
total-variation budget τ = R/2λ ≤ p̲_A − ½, and :func:`smoothadv.noise.box_l1_radius` turns it and
the row's image into the box radius. Rounding down only lowers τ, and the box radius is
monotone in τ, so the new radius is a valid certificate with the record's α; no sampling is
repeated.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import UserError
from ..noise import box_l1_radius, create_noise
from ..noise.rules import L1_OPTION_NOISES
from .files import (
    CERTIFY_COLUMNS,
    RADIUS_DECIMALS,
    RecordWriter,
    ThreatModel,
    check_record_target,
    format_radius,
    format_time,
    read_records,
    record_setting,
)


def rebox_record(record: str | os.PathLike, dataset: Dataset, sigma: float, noise: str,
                 out: str | os.PathLike) -> Path:
    """Write ``out``: ``record`` (a sampled ℓ1 certification with ``noise`` uniform or
    splitting at σ, one- or two-sided) with every certified row's radius replaced by the
    box-constrained one of its image ``dataset[idx]``. Other columns are copied.

    A row's radius R gives back its budget R/2λ only for those certificates: R = 2λ(p̲_A − ½)
    gives p̲_A − ½, and R = λ(p̲_A − p̄_B) gives (p̲_A − p̄_B)/2, each the budget its own radius
    spends. A radius that is already a box radius, a derandomized one (a union bound over a
    shared offset, not the product this radius needs) or another noise's would overstate the
    budget: where the record's config says any of these, or names another σ, it is refused in
    one line (a record without a config is taken as the caller describes it).

    ``out`` is refused, untouched, when it is ``record`` itself or an existing file that is not
    a certification record (a checkpoint, notes); an existing record there is replaced. Its
    ``.config.json`` names the box threat model (the radii hold for images in [0,1]^d only, so
    no table counts them as radii in ℝ^d), the noise, σ and the source's sampling settings."""
    _check_reboxable(record, sigma, noise)
    out = Path(out)
    if out.resolve() == Path(record).resolve():
        raise UserError(f"{out}: the re-boxed record must go to another file than {record}")
    check_record_target(out, CERTIFY_COLUMNS)
    source = create_noise(noise, sigma)
    rows = read_records(record)
    counted = rows.counted_radius  # the radius every table counts: never above the certified
    out.unlink(missing_ok=True)
    config = {"noise": noise, "norm": "l1", "sigma": sigma, "box": True,
              "radius_rounding": "down", "threat_model": ThreatModel.of("l1", box=True).as_dict(),
              "reboxed_from": str(record),
              **{key: record_setting(record, key) for key in ("n", "n0", "alpha")
                 if record_setting(record, key) is not None}}
    out.with_name(out.name + ".config.json").write_text(json.dumps(config, indent=2) + "\n",
                                                        encoding="utf-8")
    writer = RecordWriter(out, CERTIFY_COLUMNS)
    try:
        for i in range(len(rows)):
            row = {c: rows[c][i] for c in CERTIFY_COLUMNS}
            radius = float(counted[i])
            # the counted radius as text: the written one when it was rounded down (its
            # RADIUS_DECIMALS digits read back; re-flooring the parsed float could lose a unit),
            # else floored; kept unless the box radius is larger
            text = (f"{radius:.{RADIUS_DECIMALS}f}" if rows.rounding == "down"
                    else format_radius(radius))
            if int(row["predict"]) >= 0 and radius > 0:
                image = dataset[int(row["idx"])][0].numpy()
                boxed = box_l1_radius(radius / (2 * source.lam), source.lam, image)
                if boxed > radius:
                    text = max(text, format_radius(boxed), key=float)
            writer.write(int(row["idx"]), int(row["label"]), int(row["predict"]), text,
                         int(row["correct"]), format_time(float(row["time"])))
    finally:
        writer.close()
    return out


def _check_reboxable(record: str | os.PathLike, sigma: float, noise: str) -> None:
    if noise not in L1_OPTION_NOISES:
        raise UserError(f"the box radius is for uniform and splitting noise, not {noise}")
    said = {key: record_setting(record, key) for key in
            ("noise", "norm", "sigma", "box", "derandomized", "sequential")}
    wrong = []
    if said["noise"] is not None and said["noise"] != noise:
        wrong.append(f"its noise is {said['noise']}")
    if said["norm"] is not None and said["norm"] != "l1":
        wrong.append(f"its radii are {said['norm']}")
    if said["sigma"] is not None and not math.isclose(float(said["sigma"]), sigma):
        wrong.append(f"its σ is {said['sigma']}")
    for flag in ("box", "derandomized", "sequential"):
        if said[flag]:
            wrong.append(f"it is a --{flag} record")
    if wrong:
        raise UserError(f"{record}: cannot apply the box radius ({'; '.join(wrong)}): it needs "
                        f"a fixed-n ℓ1 record of {noise} noise at σ = {sigma:g}")
