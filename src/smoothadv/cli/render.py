"""A stage config as the ``smoothadv`` command line that builds it: the inverse of parsing
(``recipe show`` prints these; a test parses them back to the same config)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from .common import COMMANDS


def _subparser(name: str) -> argparse.ArgumentParser:
    """The parser of sub-command ``name`` (from the command registry)."""
    _, add_arguments, _ = COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"smoothadv {name}")
    add_arguments(parser)
    return parser


def _value(config, values: dict[str, Any], dest: str) -> tuple[bool, Any]:
    """(known, value) of parser destination ``dest`` in the config's terms."""
    if dest == "no_progress" and "progress" in values:
        return True, not values["progress"]
    if dest == "compile" and "compile" in values:
        return True, {"auto": None, "on": True, "off": False}[values["compile"]]
    if dest in values:
        return True, values[dest]
    return False, None


def command_argv(config) -> list[str]:
    """The arguments after ``smoothadv`` that parse to ``config`` (options left at their
    defaults are omitted; a train config's method options at the method's defaults too)."""
    sub = _subparser(config.stage)
    values = config.to_dict()
    if config.stage == "train":
        from ..methods import method_spec

        defaults = method_spec(config.method).resolve(config.sigma, {})
        values.update({k: v for k, v in values.pop("options").items() if defaults.get(k) != v})
    positional: list[str] = []
    flags: list[str] = []
    seen: set[str] = set()
    for action in sub._actions:
        dest = action.dest
        if dest in ("help", "version") or dest in seen:
            continue
        known, value = _value(config, values, dest)
        if not known:
            continue
        default = action.default
        if isinstance(value, list):
            default = list(default) if isinstance(default, (list, tuple)) else default
        if value == default or (isinstance(action, argparse._StoreConstAction)
                                and not isinstance(action, argparse._StoreTrueAction)
                                and not isinstance(action, argparse._StoreFalseAction)):
            continue
        seen.add(dest)
        if not action.option_strings:
            positional += [str(v) for v in value] if isinstance(value, list) else [str(value)]
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            flags.append(flag)
        elif isinstance(value, list):
            flags += [flag, *map(_text, value)]
        else:
            flags += [flag, _text(value)]
    return [config.stage, *positional, *flags]


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) and value == float(f"{value:g}") else str(value)


def command_line(config) -> str:
    """``smoothadv …`` for ``config``, shell-quoted."""
    return "smoothadv " + " ".join(shlex.quote(a) for a in command_argv(config))
