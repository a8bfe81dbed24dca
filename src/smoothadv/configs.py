"""Typed stage configurations: plain data with a JSON round trip and a content hash.

Every stage of smoothadv (train, certify, predict, attack, soft-labels, pseudo-label,
train-denoiser, analyze, compare) is one library function of one frozen dataclass deriving
from :class:`StageConfig`. A config

- holds only JSON values (str, int, float, bool, None, tuples of them, string-keyed dicts);
  fields are coerced to their annotated types on construction, so ``sigma=1`` and
  ``sigma=1.0`` are the same config;
- writes to JSON (:meth:`StageConfig.to_dict`) and reads back equal (:meth:`from_dict`,
  which refuses unknown keys in one line);
- has a **content hash** (:meth:`StageConfig.content_hash`): SHA-256 over the canonical JSON
  (sorted keys, no spaces) of the stage name and the fields that change results. Fields
  declared with ``setting(..., result=False)`` (where outputs go, progress bars, worker
  counts, the device choice, resuming) are left out, so the same options give the same hash on
  any machine and in any process;
- names each file it reads (``setting(..., input=True)``: a checkpoint, a teacher, soft
  targets) in its hash by **what the file is, never where it lies** (:func:`input_identity`):
  a stage's output inside a sweep folder by that stage's own name (``@train-<hash>/
  checkpoint.pth.tar``), any other existing file by its content fingerprint. A sweep folder
  or a record with its checkpoint moved elsewhere keeps its hashes.

The run folders and record files of every stage keep their config (:func:`config_document`):
``{"stage", "config_hash", "config": {...}}`` followed by what the run resolved (σ read from a
checkpoint, the input layer it measured, ...).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from .errors import UserError

C = TypeVar("C", bound="StageConfig")
HASH_LENGTH = 16  # hex digits of the SHA-256 kept: 64 bits, collision-free for any grid


def setting(default: Any = dataclasses.MISSING, *, result: bool = True,
            default_factory: Any = dataclasses.MISSING, added: bool = False,
            kw_only: bool = False, input: bool | tuple[str, ...] = False) -> Any:
    """A config field; ``result=False`` marks one that does not change what the stage
    computes (it is then left out of the content hash). ``added=True`` marks a result field
    added to a stage after runs of it existed, whose default is what those runs computed: it
    enters the hash only when set to another value, so every earlier run folder and record
    file keeps its hash (the default of such a field must never change). ``kw_only`` lets a
    base class declare fields that its subclasses' fields without defaults may follow (the
    hash does not depend on the fields' order). ``input=True`` marks a field naming files the
    stage reads (a string, or a tuple of them), hashed by :func:`input_identity`; a tuple of
    keys marks those keys of a dict field (a method's ``soft_targets``)."""
    kwargs: dict[str, Any] = {"metadata": {"result": result, "added": added, "input": input},
                              "kw_only": kw_only}
    if default_factory is not dataclasses.MISSING:
        kwargs["default_factory"] = default_factory
    else:
        kwargs["default"] = default
    return dataclasses.field(**kwargs)


def _canonical(value: Any) -> Any:
    """``value`` as plain JSON data: tuples become lists, dict keys are sorted."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"a config value must be finite, got {value}")
    return value


def canonical_json(value: Any) -> str:
    """The canonical text of ``value``: sorted keys, no spaces, floats as Python's repr
    (the shortest text that reads back to the same double)."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


# a file inside a sweep's stage folder: [PREFIX:]…/stages/<stage>-<hash>/<file>
STAGE_OUTPUT = re.compile(r"(?:^|/)stages/([a-z][a-z-]*-[0-9a-f]{12,16})/([^/]+)$")
_PREFIX = re.compile(r"^([a-z][a-z0-9_-]*):(?!//)")  # dncnn:PATH, diffusion:PATH, timm:NAME
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | os.PathLike | None) -> str | None:
    """The first 16 hex digits of a file's SHA-256 (None for what is not a local file);
    remembered per (path, size, modification time), so a file is read once per process."""
    if not path or not os.path.isfile(path):
        return None
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _FINGERPRINTS[key] = digest.hexdigest()[:HASH_LENGTH]
    return _FINGERPRINTS[key]


def input_identity(value: Any) -> Any:
    """What a file a config names is, for its hash: ``[PREFIX:]@<stage>-<hash>/<file>`` for a
    stage's output in a sweep folder (wherever the folder lies), ``[PREFIX:]sha256:<16 hex>``
    for another existing file, the value as written for anything else (a hub name, a file not
    yet made). Tuples and lists are mapped element-wise."""
    if isinstance(value, (list, tuple)):
        return [input_identity(v) for v in value]
    if not isinstance(value, str) or not value:
        return value
    match = _PREFIX.match(value)
    prefix, path = (match.group(0), value[match.end():]) if match else ("", value)
    stage = STAGE_OUTPUT.search(path)
    if stage:
        return f"{prefix}@{stage.group(1)}/{stage.group(2)}"
    fingerprint = file_fingerprint(path)
    return f"{prefix}sha256:{fingerprint}" if fingerprint else value


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """``value`` checked and converted to the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except UserError as err:
                errors.append(str(err))
        raise UserError(errors[0] if errors else f"{name}: bad value {value!r}")
    if tp is Any:
        return _canonical(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{name} must be a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(v, item, name) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise UserError(f"{name} must be a mapping, got {value!r}")
        return {str(k): _canonical(value[k]) for k in sorted(value)}
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{name} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise UserError(f"{name} must be a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{name} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{name} must be a string, got {value!r}")
        return value
    return value


class StageConfig:
    """The base of every stage's config (a frozen dataclass; see the module docstring).

    Subclasses set ``stage`` (the command's name) and may override :meth:`validate`, which
    runs after coercion on construction and raises :class:`~smoothadv.errors.UserError`.
    """

    stage: ClassVar[str] = ""
    # result fields a run may change and continue (a training run extended to more epochs:
    # the weights at an epoch do not depend on the total)
    extendable: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            flag = "--" + f.name.replace("_", "-")
            value = _coerce(getattr(self, f.name), hints[f.name], flag)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Check the values (one-line :class:`UserError`); may normalize them."""

    # ----------------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON data."""
        return {f.name: _canonical(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """The config ``data`` describes; unknown keys are refused in one line, missing ones
        take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"{cls.stage} config: unknown option(s) {', '.join(unknown)}; "
                            f"its options: {', '.join(sorted(names))}")
        try:
            return cls(**data)
        except TypeError as err:  # a required field is missing
            raise UserError(f"{cls.stage} config: {err}") from None

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    # ----------------------------------------------------------------------- identity

    @classmethod
    def result_fields(cls) -> list[str]:
        """The fields that change what the stage computes (those the hash covers)."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("result", True)]

    def identity(self) -> dict[str, Any]:
        """The stage name and every result field (an ``added`` field only where it differs
        from its default): what the content hash is taken of."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        omitted = {name for name, f in fields.items() if f.metadata.get("added")
                   and getattr(self, name) == f.default}
        out: dict[str, Any] = {"stage": self.stage}
        for name in self.result_fields():
            if name in omitted:
                continue
            value, marked = _canonical(getattr(self, name)), fields[name].metadata.get("input")
            if marked is True:
                value = input_identity(value)
            elif marked and isinstance(value, dict):
                value = {k: input_identity(v) if k in marked else v for k, v in value.items()}
            out[name] = value
        return out

    def content_hash(self) -> str:
        """A stable name of the run: the first 16 hex digits of the SHA-256 of
        :meth:`identity` as canonical JSON (the same on any machine and Python process)."""
        digest = hashlib.sha256(canonical_json(self.identity()).encode("utf-8"))
        return digest.hexdigest()[:HASH_LENGTH]

    def differences(self, other: StageConfig) -> list[str]:
        """The result fields whose values differ from ``other``'s (for refusals)."""
        mine, theirs = self.identity(), other.identity()
        return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    def __hash__(self) -> int:
        return int(self.content_hash(), 16)


def stage_config(cls: type[C]) -> type[C]:
    """Class decorator: a frozen dataclass whose hash is its content hash."""
    cls = dataclasses.dataclass(frozen=True, eq=True)(cls)
    cls.__hash__ = StageConfig.__hash__  # type: ignore[method-assign]
    return cls


@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, Any]:
    """What program wrote a run: smoothadv's version, the git commit of the checkout it runs
    from and whether its tree had changes (absent outside a checkout), torch's and Python's
    versions. Not hashed: none of it changes what a run computes (``compare`` notes records
    whose provenance differs). Read once per process; torch is not imported for it."""
    import importlib.metadata
    import platform
    import subprocess
    from pathlib import Path

    facts: dict[str, Any] = {"python": platform.python_version()}
    for name in ("smoothadv", "torch"):
        try:
            facts[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
            facts[name] = "unknown"
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=10).stdout.strip()

        try:
            commit = git("rev-parse", "HEAD")
            if commit:
                facts["git_commit"] = commit
                facts["git_dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
        except (OSError, subprocess.SubprocessError):
            pass
    return facts


def config_document(config: StageConfig, **resolved: Any) -> dict[str, Any]:
    """What a run folder or record file keeps: the stage, the hash, the config, the program
    that ran it (:func:`provenance`) and what the run resolved (σ from a checkpoint, the input
    layer measured, ...)."""
    return {"stage": config.stage, "config_hash": config.content_hash(),
            "config": config.to_dict(), "provenance": provenance(), **resolved}


__all__ = ["HASH_LENGTH", "STAGE_OUTPUT", "StageConfig", "canonical_json", "config_document",
           "file_fingerprint", "input_identity", "provenance", "setting", "stage_config"]
