"""The box-constrained ℓ1 radius applied after the fact to a record of uniform or splitting
noise: every certified row's radius R (2λ(p̲_A − ½), as written, rounded down) gives back a
total-variation budget τ = R/2λ ≤ p̲_A − ½, and :func:`smoothadv.noise.box_l1_radius` turns it and
the row's image into the box radius. Rounding down only lowers τ, and the box radius is
monotone in τ, so the new radius is a valid certificate with the record's α; no sampling is
repeated.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from ..noise import box_l1_radius, create_noise
from ..records import (
    CERTIFY_COLUMNS,
    RADIUS_DECIMALS,
    RecordWriter,
    format_radius,
    format_time,
    read_records,
)


def rebox_record(record: str | os.PathLike, dataset: Dataset, sigma: float, noise: str,
                 out: str | os.PathLike) -> Path:
    """Write ``out``: ``record`` (a one-sided ℓ1 certification with ``noise`` uniform or
    splitting at σ) with every certified row's radius replaced by the box-constrained one of
    its image ``dataset[idx]``. Other columns are copied."""
    source = create_noise(noise, sigma)
    if source.kind not in ("uniform", "splitting"):
        raise ValueError("the box radius is for uniform and splitting noise")
    rows = read_records(record)
    out = Path(out)
    out.unlink(missing_ok=True)
    writer = RecordWriter(out, CERTIFY_COLUMNS)
    try:
        for i in range(len(rows)):
            row = {c: rows[c][i] for c in CERTIFY_COLUMNS}
            radius = float(row["radius"])
            # the written text (RADIUS_DECIMALS digits) read back: kept as it is unless the
            # box radius is larger (re-flooring the parsed float could lose a unit)
            text = f"{radius:.{RADIUS_DECIMALS}f}"
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
