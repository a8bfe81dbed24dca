"""Tab-separated record files: the interface between running and analysing.

Certification: ``idx label predict radius correct time``; prediction: ``idx label predict
basePredict correct time`` (the paper's columns, in this order; more may follow). ``time`` is
``H:MM:SS.ffffff``. Writers append and flush every row, and resume after the last complete row.

Radii are written rounded *down* to six decimals (:func:`format_radius`), so a written radius
never exceeds the certified one. Files written otherwise (the paper's logs: three significant
digits; this library before 0.2: three decimals) were rounded to nearest, so their written
value can exceed the true radius by half a unit in the last digit: :attr:`Records.radius_lower`
subtracts that half unit for such files, and analysis counts a row as certified at r only when
``radius_lower`` ≥ r. A record file is known to be rounded down when the ``.config.json``
beside it says ``"radius_rounding": "down"``.

**One counted radius.** Every consumer (certified accuracy, ACR, comparisons, re-boxing) reads
:attr:`Records.counted_radius`: never above what the row certifies, on the **closed** ball
(a row counted at r means every perturbation of norm ≤ r keeps the prediction). Two
corrections go into it: the half unit of files rounded to nearest, and the recount of records
written by the deterministic ℓ1 certificate before its radius was closed (config
``derandomized`` without a ``template``): they wrote (n_A − n_B)/510, whose even gaps reach a
tie on the ball's boundary; the gap is read back exactly from the written value and the row is
counted with ⌊(n_A − n_B − 1)/2⌋/255 (ℓ∞ records of that kind cannot be read back exactly
and are refused in one line).

**Threat models.** A radius certifies a ball inside an input set: all of ℝ^d (``space``), the
box [0,1]^d (``box``: ``--box`` and re-boxed records) or the 8-bit grid (``grid``:
``--derandomized``). :func:`threat_model` names a record's; tables refuse to mix them unless
asked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

CERTIFY_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
PREDICT_COLUMNS = ("idx", "label", "predict", "basePredict", "correct", "time")


FLOAT_COLUMNS = ("radius", "l2", "p_lower", "p_upper")
INT_COLUMNS = ("idx", "label", "predict", "basePredict", "correct", "cleanPredict", "samples")
RADIUS_DECIMALS = 6


def format_radius(radius: float, decimals: int = RADIUS_DECIMALS) -> str:
    """``radius`` rounded *down* to ``decimals`` decimals, e.g. 0.4999996 → ``0.499999``.

    Exact: the double is converted to a decimal without error and floored, so the text (and
    the double it reads back as) is never above ``radius``.
    """
    step = Decimal(1).scaleb(-decimals)
    return str(Decimal(float(radius)).quantize(step, rounding=ROUND_FLOOR))


def radius_rounding(path: str | os.PathLike) -> str:
    """'down' when the record file's ``.config.json`` says its radii were rounded down,
    else 'nearest' (the paper's logs and older files)."""
    path = Path(path)
    try:
        config = json.loads(path.with_name(path.name + ".config.json").read_text())
        return "down" if config.get("radius_rounding") == "down" else "nearest"
    except (OSError, ValueError, AttributeError):
        return "nearest"


def record_setting(path: str | os.PathLike, key: str, default: Any = None) -> Any:
    """``key`` of a record file's configuration (the ``.config.json`` beside it: the stage
    config's own field, else the document's resolved one), or ``default`` where the file names
    none (the paper's logs, older records, a record without a config)."""
    path = Path(path)
    try:
        document = json.loads(path.with_name(path.name + ".config.json").read_text())
    except (OSError, ValueError):
        return default
    if not isinstance(document, dict):
        return default
    inner = document.get("config") if isinstance(document.get("config"), dict) else {}
    value = inner.get(key)
    if value is None:  # e.g. σ left to the checkpoint: the document has the resolved value
        value = document.get(key)
    return default if value is None else value


INPUT_SETS = {"space": "ℝ^d", "box": "the box [0,1]^d", "grid": "the 8-bit grid"}


@dataclass(frozen=True)
class ThreatModel:
    """What a record's radii certify: the closed ``norm`` ball intersected with ``inputs``
    (a key of :data:`INPUT_SETS`)."""

    norm: str = "l2"
    inputs: str = "space"

    @classmethod
    def of(cls, norm: str, box: bool = False, derandomized: bool = False) -> ThreatModel:
        """The threat model of a certificate's options: the deterministic certificate holds on
        the 8-bit grid, a box radius inside [0,1]^d, every other one in ℝ^d."""
        return cls(norm, "grid" if derandomized else "box" if box else "space")

    def as_dict(self) -> dict[str, str]:
        """What a record's config keeps (``threat_model``)."""
        return {"norm": self.norm, "inputs": self.inputs, "ball": "closed"}

    def __str__(self) -> str:
        names = {"l2": "ℓ2", "l1": "ℓ1", "linf": "ℓ∞"}
        where = "" if self.inputs == "space" else f" on {INPUT_SETS[self.inputs]}"
        return f"closed {names.get(self.norm, self.norm)} ball{where}"


def threat_model(path: str | os.PathLike) -> ThreatModel:
    """The threat model of a record file from its config: its norm (ℓ2 where it names none:
    the paper's logs and records from before ℓ1 certificates) and input set."""
    return ThreatModel.of(str(record_setting(path, "norm", "l2")),
                          box=bool(record_setting(path, "box", False)),
                          derandomized=bool(record_setting(path, "derandomized", False)))


def open_derandomized(path: str | os.PathLike) -> bool:
    """Whether a record was written by the deterministic ℓ1 certificate before its radius was
    closed: ``derandomized`` in its config and no ``template`` (every later one names it)."""
    return bool(record_setting(path, "derandomized", False)) and \
        record_setting(path, "template") is None


def recount_open_derandomized(path: str | os.PathLike, radius: np.ndarray,
                              predict: np.ndarray) -> np.ndarray:
    """The closed radii ⌊(g − 1)/2⌋/255 of old deterministic-certificate rows, from their
    written (n_A − n_B)/510 = g/510 (rounded down to six decimals, so g = round(510·r)
    exactly); 0 for abstentions. ℓ∞ rows (the ℓ1 radius over d, not read back exactly) are
    refused in one line."""
    if str(record_setting(path, "norm", "l1")) != "l1":
        raise UserError(f"{path}: written by the deterministic certificate before its radius was "
                        "closed, at ℓ∞, where its gaps cannot be read back; re-certify it "
                        "(smoothadv certify … --derandomized --overwrite)")
    gaps = np.rint(np.asarray(radius, dtype=np.float64) * 510).astype(np.int64)
    steps = np.maximum((gaps - 1) // 2, 0)
    return np.where(np.asarray(predict) >= 0, steps / 255.0, 0.0)


def half_unit(text: str) -> float:
    """Half a unit in the last written digit of a decimal number: '0.953' → 0.0005,
    '1.2' → 0.05, '4.1e-05' → 5e-07, '2' → 0.5."""
    mantissa, _, exponent = text.strip().lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def check_record_target(path: str | os.PathLike, columns: Sequence[str]) -> str:
    """What a record file about to be written at ``path`` is now: 'new' (absent or empty),
    'ours' (a record file with the header ``columns``), or a one-line refusal — a folder, or a
    file that is not such a record (a checkpoint, notes, another kind of record). Reads at most
    the first line; writes nothing."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--out {path} is a folder: give a record file inside it, e.g. "
                        f"{path / 'certify.tsv'}")
    if not path.exists() or path.stat().st_size == 0:
        return "new"
    with open(path, "rb") as f:
        first = f.readline(4096).rstrip(b"\n")
    if first.decode("utf-8", errors="replace") != "\t".join(columns):
        raise UserError(f"--out {path} exists and is not a record file of this command (its "
                        "first line is not the header); nothing was written: choose another "
                        "--out")
    return "ours"


def format_time(seconds: float) -> str:
    """``H:MM:SS.ffffff`` (always with microseconds), e.g. 14.1723 → ``0:00:14.172300``."""
    micros = int(round(max(seconds, 0.0) * 1e6))
    secs, micros = divmod(micros, 1_000_000)
    mins, secs = divmod(secs, 60)
    hours, mins = divmod(mins, 60)
    return f"{hours}:{mins:02d}:{secs:02d}.{micros:06d}"


def parse_time(text: str) -> float:
    """Seconds from ``H:MM:SS[.ffffff]`` (also accepts ``D day(s), H:MM:SS``)."""
    days = 0
    if "day" in text:
        head, text = text.split(",")
        days = int(head.split()[0])
    h, m, s = text.strip().split(":")
    return days * 86400 + int(h) * 3600 + int(m) * 60 + float(s)


class RecordWriter:
    """Append rows to a TSV record file, one flushed line per input.

    If ``path`` exists with the same header, the rows already there are kept and
    :attr:`done` holds their ``idx`` values, so a re-run skips them; a torn last line
    (a killed writer) is cut off. A different header is an error rather than a silent mix.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], resume: bool = True):
        self.path = Path(path)
        self.columns = tuple(columns)
        self.done: set[int] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header = "\t".join(self.columns)
        if resume and self.path.exists() and self.path.stat().st_size > 0:
            self._recover(header)
            self._file = open(self.path, "a", encoding="utf-8")
        else:
            self._file = open(self.path, "w", encoding="utf-8")
            self._file.write(header + "\n")
            self._file.flush()

    def _recover(self, header: str) -> None:
        raw = self.path.read_bytes()
        # the header is checked before anything is cut: a file that is not this kind of record
        # (a checkpoint, someone's notes) is refused untouched
        first = raw.split(b"\n", 1)[0]
        if first.decode("utf-8", errors="replace") != header:
            raise UserError(f"{self.path} exists and is not a record file of these columns; "
                            "choose another --out (nothing was written to it)")
        if not raw.endswith(b"\n"):  # torn final row from an interrupted run
            raw = raw[: raw.rfind(b"\n") + 1]
            with open(self.path, "wb") as f:
                f.write(raw)
        lines = raw.decode("utf-8", errors="replace").splitlines()
        for line in lines[1:]:
            if line.strip():
                self.done.add(int(line.split("\t", 1)[0]))

    def write(self, *values: object) -> None:
        """Append one row (values in column order) and flush it to the OS."""
        if len(values) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} values, got {len(values)}")
        self._file.write("\t".join(_fmt(v) for v in values) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3f}"
    return str(value)


@dataclass
class Records:
    """A loaded record file: one NumPy array per column (``time`` in seconds)."""

    path: Path
    columns: dict[str, np.ndarray]
    rounding: str = "down"  # how the radius column was written: 'down' or 'nearest'
    radius_slack: np.ndarray | None = field(default=None, repr=False)  # half units, per row
    threat: ThreatModel = field(default_factory=ThreatModel)
    recounted: np.ndarray | None = field(default=None, repr=False)  # closed radii, old rows

    def __len__(self) -> int:
        return len(self.columns["idx"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def is_empty(self) -> bool:
        return len(self) == 0

    @property
    def radius_lower(self) -> np.ndarray:
        """A value never above each row's true radius: the written radius when the file was
        rounded down, else the written radius less half a unit in its last digit."""
        radius = self.columns["radius"]
        if self.rounding == "down" or self.radius_slack is None:
            return radius
        return radius - self.radius_slack

    @property
    def counted_radius(self) -> np.ndarray:
        """The radius every table counts each row with (certified accuracy, ACR, comparisons,
        re-boxing): never above what the row certifies on the closed ball — the recount of an
        old deterministic-certificate record, else :attr:`radius_lower` — and never below 0."""
        if self.recounted is not None:
            return self.recounted
        return np.maximum(self.radius_lower, 0.0)


def read_records(
    path: str | os.PathLike, required: Sequence[str] = ("idx", "label", "predict", "correct")
) -> Records:
    """Read a TSV record file (ours or the paper's).

    A header-only file gives empty :class:`Records`; a missing file, an empty file, a missing
    required column or a malformed row raise :class:`UserError` naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                        if p.is_file() and p.suffix in ("", ".tsv")
                        and not p.name.endswith(".json"))[:5]
        hint = f"; record files inside: {', '.join(inside)}" if inside else ""
        raise UserError(f"{path} is a folder, not a record file{hint}")
    if not path.is_file():
        raise UserError(f"record file not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].strip():
        raise UserError(f"{path}: empty record file (no header)")
    header = lines[0].split("\t")
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(f"{path}:1: missing column(s) {', '.join(missing)}")
    rows: list[list[str]] = []
    linenos: list[int] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise UserError(
                f"{path}:{lineno}: expected {len(header)} fields, found {len(fields)}"
            )
        rows.append(fields)
        linenos.append(lineno)
    columns: dict[str, np.ndarray] = {}
    slack = None
    for j, name in enumerate(header):
        texts = [r[j] for r in rows]
        try:
            if name == "time":
                columns[name] = np.array([parse_time(t) for t in texts], dtype=np.float64)
            elif name in FLOAT_COLUMNS:
                columns[name] = np.array(texts, dtype=np.float64)
                if name == "radius":
                    slack = np.array([half_unit(t) for t in texts], dtype=np.float64)
            elif name in INT_COLUMNS:
                columns[name] = np.array([int(t) for t in texts], dtype=np.int64)
            else:
                columns[name] = np.array(texts)
        except ValueError:
            bad = next(i for i, t in enumerate(texts) if not _parses(t, name))
            raise UserError(
                f"{path}:{linenos[bad]}: bad value {texts[bad]!r} in column {name!r}"
            ) from None
    recounted = None
    if "radius" in columns and open_derandomized(path):
        recounted = recount_open_derandomized(path, columns["radius"], columns["predict"])
    return Records(path=path, columns=columns, rounding=radius_rounding(path),
                   radius_slack=slack, threat=threat_model(path), recounted=recounted)


def _parses(text: str, column: str) -> bool:
    try:
        if column == "time":
            parse_time(text)
        elif column in FLOAT_COLUMNS:
            float(text)
        else:
            int(text)
        return True
    except ValueError:
        return False
