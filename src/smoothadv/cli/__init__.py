"""The ``smoothadv`` command line: one module per sub-command, each thin over the library.

Arguments are parsed inside :func:`main` only. Every sub-command registers itself with
:func:`~smoothadv.cli.common.command`; user errors print one line (``smoothadv: error: …``)
and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import UserError
from . import (  # noqa: F401  (each module registers its command)
    analyze,
    attack,
    certify,
    compare,
    demo,
    predict,
    pseudo_label,
    recipe,
    run,
    runs,
    soft_labels,
    sweep,
    train,
    train_denoiser,
)
from .common import COMMANDS


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``only``, the options of that sub-command alone are added (the
    others list their one-line help), so that ``smoothadv --help`` imports no heavy module."""
    parser = argparse.ArgumentParser(
        prog="smoothadv",
        description="Randomized smoothing and SmoothAdv: train, certify, attack and analyse "
        "provably l2-robust classifiers.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"smoothadv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    subparsers: dict[str, argparse.ArgumentParser] = {}
    parser.subparsers = subparsers  # type: ignore[attr-defined]  (for "did you mean")
    for name, (help_text, add_arguments, runner) in COMMANDS.items():
        # argparse %-formats help strings (not descriptions): a literal % must be doubled
        p = sub.add_parser(name, help=help_text.replace("%", "%%"), description=help_text)
        if only is None or name == only:
            add_arguments(p)
        p.set_defaults(func=runner)
        subparsers[name] = p
    return parser


def unknown_options(parser: argparse.ArgumentParser, command: str | None,
                    extras: list[str]) -> str:
    """One line for arguments a sub-command does not take, with the closest option it does
    take for each mistyped flag (``--sigam`` → ``--sigma``)."""
    import difflib

    sub = getattr(parser, "subparsers", {}).get(command)
    known = [o for a in (sub._actions if sub else []) for o in a.option_strings]
    parts = []
    for word in extras:
        flag = word.split("=", 1)[0]
        close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6) \
            if flag.startswith("-") else []
        parts.append(f"{word} (did you mean {close[0]}?)" if close else word)
    return f"unrecognized argument{'s' if len(extras) > 1 else ''}: {', '.join(parts)}"


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    chosen = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else "")
    args, extras = parser.parse_known_args(words)
    if extras:
        print(f"smoothadv: error: {unknown_options(parser, args.command, extras)} "
              f"(see smoothadv {args.command} --help)", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"smoothadv: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("smoothadv: interrupted; run the same command again to continue where it "
              "stopped (finished epochs and record rows are kept)", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]
