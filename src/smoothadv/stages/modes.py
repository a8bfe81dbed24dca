"""Certification modes: which certificate a certify config asks for, and the options each takes.

A certify config chooses one mode (the flags ``--sequential`` and ``--derandomized``; neither
is fixed-n CERTIFY, the authors' default). This table is the one place that says which options
go with which mode: validation refuses, in one line, an option of another mode, and the runner
dispatches on :attr:`CertifyMode.name`. ``--round-inputs`` is not a mode's: it goes with
``--sound`` or ``--derandomized`` (checked beside σ and the noise). The options stay flat
fields of the config (their names and defaults are part of every record's content hash).

==============  ================  ===========================================================
mode            flag              options it takes (besides those of every certification)
==============  ================  ===========================================================
fixed           (none)            ``n0``, ``randomized_cp``, ``two_sided``, ``box``
sequential      ``--sequential``  ``n0``, ``radii``, ``budget``, ``sequence``, ``labelled``,
                                  ``alpha_split``, ``anytime_tol``
derandomized    ``--derandomized``  ``template`` (no sampling: no n0, α or n)
==============  ================  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class CertifyMode:
    """One way of certifying: its name, the flag that chooses it, the mode-specific options
    it takes and what it is (for one-line refusals)."""

    name: str
    flag: str
    takes: frozenset[str]
    what: str

    def flags(self, fields) -> str:
        """``fields`` as their command-line flags, in a stable order."""
        return ", ".join("--" + f.replace("_", "-") for f in sorted(fields))


MODES: Registry[CertifyMode] = Registry("certification mode")
FIXED = MODES.register("fixed")(CertifyMode(
    "fixed", "", frozenset({"n0", "randomized_cp", "two_sided", "box"}),
    "fixed-n CERTIFY (Cohen et al.)"))
SEQUENTIAL = MODES.register("sequential")(CertifyMode(
    "sequential", "--sequential",
    frozenset({"n0", "radii", "budget", "sequence", "labelled", "alpha_split", "anytime_tol"}),
    "--sequential tests p_A alone at given radii"))
DERANDOMIZED = MODES.register("derandomized")(CertifyMode(
    "derandomized", "--derandomized", frozenset({"template"}),
    "--derandomized counts every offset exactly"))
# every option that belongs to some mode (an option of all modes is in none of these sets)
MODE_OPTIONS = frozenset().union(*(m.takes for m in (FIXED, SEQUENTIAL, DERANDOMIZED)))


def choose_mode(sequential: bool, derandomized: bool) -> CertifyMode:
    """The mode the two flags choose; both at once is refused by :func:`check_mode`."""
    return DERANDOMIZED if derandomized else SEQUENTIAL if sequential else FIXED


def check_mode(mode: CertifyMode, given: set[str], both: bool = False) -> None:
    """Refuse, in one line, options (``given``: fields set away from their defaults) that
    ``mode`` does not take, naming the mode that does."""
    from ..errors import UserError

    if both:
        raise UserError("--sequential and --derandomized are two certification modes: give one")
    wrong = given & MODE_OPTIONS - mode.takes
    if not wrong:
        return
    if mode is FIXED:
        owners = sorted({m.flag for m in (SEQUENTIAL, DERANDOMIZED) for f in wrong
                         if f in m.takes and f not in FIXED.takes})
        verb = "needs" if len(wrong) == 1 else "need"
        raise UserError(f"{mode.flags(wrong)} {verb} {' or '.join(owners)}")
    raise UserError(f"{mode.what}: it takes none of {mode.flags(wrong)}")
