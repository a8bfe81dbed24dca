"""The registry of training methods and the declarations of their options.

A method module declares, beside its loss, every hyper-parameter it has (:class:`Option`: name,
type, the authors' default — a constant, or a function of σ and the options resolved before it —
the command-line flag and a help text) and what the trainer must supply (``needs``, e.g.
``soft_targets``). The train flags, the validation of a :class:`~smoothadv.train.TrainConfig`,
the recipes and the manual's table of options all come from these declarations, so adding a
method is one new file that calls :func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..registry import Registry
from .base import TrainingMethod, by_sigma

Default = Callable[[float, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Option:
    """One hyper-parameter of a method.

    ``default`` is a value or a function ``(sigma, resolved) -> value`` of σ and the options
    declared before this one (resolved already); ``None`` is a valid value only when it is the
    default. ``flag`` is the command-line flag (default ``--name-with-dashes``); ``at_least``,
    ``above`` and ``below`` bound the value (a weight below 0 or a count below 1 would make the
    method meaningless without a word, so it is refused in one line).
    """

    name: str
    type: type
    default: Any = None
    help: str = ""
    flag: str | None = None
    choices: tuple[Any, ...] | None = None
    default_text: str | None = None  # how the help describes a computed default
    at_least: float | None = None  # the value's range: ≥ at_least, > above, < below
    above: float | None = None
    below: float | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def default_for(self, sigma: float, resolved: Mapping[str, Any]) -> Any:
        return self.default(sigma, resolved) if callable(self.default) else self.default

    def describe_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return "none" if self.default is None else f"{self.default}"

    def check(self, value: Any, method: str) -> Any:
        """``value`` converted to the option's type (one line when it cannot be)."""
        if value is None:
            return None
        try:
            if self.type is bool:
                if not isinstance(value, bool):
                    raise ValueError
                out: Any = value
            elif self.type is int:
                if isinstance(value, bool) or float(value) != int(value):
                    raise ValueError
                out = int(value)
            else:
                out = self.type(value)
        except (TypeError, ValueError):
            raise UserError(f"{method}: {self.cli_flag} must be of type {self.type.__name__}, "
                            f"got {value!r}") from None
        if self.choices is not None and out not in self.choices:
            raise UserError(f"{method}: {self.cli_flag} must be one of "
                            f"{', '.join(map(str, self.choices))}, got {out!r}")
        for bound, holds, word in ((self.at_least, lambda b: out >= b, "≥"),
                                   (self.above, lambda b: out > b, ">"),
                                   (self.below, lambda b: out < b, "<")):
            if bound is not None and not (out == out and holds(bound)):  # NaN fails too
                raise UserError(f"{method}: {self.cli_flag} must be {word} {bound:g}, "
                                f"got {out!r}")
        return out


def per_sigma(table: Mapping[float, Any], what: str, option: str) -> Default:
    """A default read from the authors' table by σ; another σ needs the option given."""
    return lambda sigma, resolved: by_sigma(table, sigma, what, option)


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its builder ``build(sigma=σ, **options) -> TrainingMethod``, its
    options in resolution order, what the trainer must supply, and a one-line summary."""

    name: str
    build: Callable[..., TrainingMethod]
    options: tuple[Option, ...]
    needs: tuple[str, ...] = ()
    summary: str = ""
    noises: tuple[str, ...] = ("gaussian",)  # the noise families it is defined for

    def check_noise(self, noise: str) -> None:
        """Refuse, in one line, a noise family the method is not defined for."""
        if noise not in self.noises:
            able = [n for n in list_methods() if noise in METHODS.get(n).noises]
            raise UserError(f"method {self.name} is defined for {' and '.join(self.noises)} "
                            f"noise, not {noise}: with {noise} noise train "
                            f"{', '.join(able) or 'no registered method'}")

    def option_names(self) -> list[str]:
        return [o.name for o in self.options]

    def describe_options(self) -> str:
        return ", ".join(f"{o.name} ({o.cli_flag})" for o in self.options) or "none"

    def resolve(self, sigma: float, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option's value at ``sigma``: the given ones checked, the others the authors'
        defaults (``None`` given means the default). An option the method does not have is
        refused in one line that lists the method's options."""
        unknown = sorted(set(given) - set(self.option_names()))
        if unknown:
            flags = ", ".join(unknown)
            raise UserError(f"method {self.name} has no option {flags}; its options: "
                            f"{self.describe_options()}")
        resolved: dict[str, Any] = {}
        for opt in self.options:
            value = opt.check(given.get(opt.name), self.name)
            resolved[opt.name] = value if value is not None else opt.default_for(sigma, resolved)
        return resolved

    def create(self, sigma: float, **options: Any) -> TrainingMethod:
        return self.build(sigma=sigma, **self.resolve(sigma, options))


METHODS: Registry[MethodSpec] = Registry("method")


def register_method(name: str, *, options: tuple[Option, ...] = (), needs: tuple[str, ...] = (),
                    summary: str = "", noises: tuple[str, ...] = ("gaussian",),
                    ) -> Callable[[Callable[..., TrainingMethod]], Callable[..., TrainingMethod]]:
    """Decorator: register ``build(*, sigma, **options) -> TrainingMethod`` as method
    ``name`` with its declared options (each given to ``build`` resolved) and the noise
    families it is defined for (``noises``: the training draws come from that noise)."""

    def wrap(build: Callable[..., TrainingMethod]) -> Callable[..., TrainingMethod]:
        METHODS.add(name, MethodSpec(name, build, tuple(options), tuple(needs),
                                     summary or (build.__doc__ or "").strip().split("\n")[0],
                                     tuple(noises)))
        return build

    return wrap


def unregister_method(name: str) -> None:
    """Remove a method (tests that register one of their own clean up with this)."""
    METHODS.remove(name)


def method_spec(name: str) -> MethodSpec:
    return METHODS.get(name)


def list_methods() -> list[str]:
    return METHODS.names()


def create_method(name: str, *, sigma: float, **options: Any) -> TrainingMethod:
    """Build a registered training method: ``create_method("macer", sigma=0.25, lbd=12)``.
    Options the method does not declare are refused; ``None`` means the authors' default."""
    return METHODS.get(name).create(sigma, **options)


def options_table() -> list[tuple[str, str, str, str]]:
    """(method, flag, default, help) for every declared option: the manual's table."""
    return [(spec.name, o.cli_flag, o.describe_default(), o.help)
            for spec in (METHODS.get(n) for n in list_methods()) for o in spec.options]


def options_markdown() -> str:
    """The manual's table of every method's options (docs/training.md holds it verbatim;
    ``python -m smoothadv.methods`` prints it)."""
    lines = ["| method | option | default | what it is |", "|---|---|---|---|"]
    for name in list_methods():
        spec = METHODS.get(name)
        needs = f" (needs {', '.join(spec.needs)})" if spec.needs else ""
        if not spec.options:
            lines.append(f"| `{name}` | – | – | {spec.summary}{needs}; no options |")
        for opt in spec.options:
            text = opt.help.replace("|", "\\|")
            lines.append(f"| `{name}` | `{opt.cli_flag}` | {opt.describe_default()} | {text} |")
    return "\n".join(lines) + "\n"
