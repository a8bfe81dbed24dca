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
  any machine and in any process.

The run folders and record files of every stage keep their config (:func:`config_document`):
``{"stage", "config_hash", "config": {...}}`` followed by what the run resolved (σ read from a
checkpoint, the input layer it measured, ...).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from .errors import UserError

C = TypeVar("C", bound="StageConfig")
HASH_LENGTH = 16  # hex digits of the SHA-256 kept: 64 bits, collision-free for any grid


def setting(default: Any = dataclasses.MISSING, *, result: bool = True,
            default_factory: Any = dataclasses.MISSING, added: bool = False,
            kw_only: bool = False) -> Any:
    """A config field; ``result=False`` marks one that does not change what the stage
    computes (it is then left out of the content hash). ``added=True`` marks a result field
    added to a stage after runs of it existed, whose default is what those runs computed: it
    enters the hash only when set to another value, so every earlier run folder and record
    file keeps its hash (the default of such a field must never change). ``kw_only`` lets a
    base class declare fields that its subclasses' fields without defaults may follow (the
    hash does not depend on the fields' order)."""
    kwargs: dict[str, Any] = {"metadata": {"result": result, "added": added},
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
        omitted = {f.name for f in dataclasses.fields(self) if f.metadata.get("added")
                   and getattr(self, f.name) == f.default}
        return {"stage": self.stage,
                **{k: _canonical(getattr(self, k)) for k in self.result_fields()
                   if k not in omitted}}

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


def config_document(config: StageConfig, **resolved: Any) -> dict[str, Any]:
    """What a run folder or record file keeps: the stage, the hash, the config and what the
    run resolved (σ from a checkpoint, the input layer measured, ...)."""
    return {"stage": config.stage, "config_hash": config.content_hash(),
            "config": config.to_dict(), **resolved}


__all__ = ["HASH_LENGTH", "StageConfig", "canonical_json", "config_document", "setting",
           "stage_config"]
