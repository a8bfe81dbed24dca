"""Where a run's figures go besides its own files: TensorBoard, Weights & Biases, a CSV file
(``--log tensorboard wandb csv``), each through its library's own API.

A logger is opened on a folder with the run's config as hyper-parameters, takes scalars
per step (an epoch of training; rows of a record, :mod:`smoothadv.records.watch`) and is
closed when the run ends. A training run logs in its run folder; a record ``DIR/NAME.tsv``
in ``DIR`` under the name ``NAME``, so that the records of one folder are runs side by side.
TensorBoard writes event files under ``FOLDER/tensorboard`` (``…/tensorboard/NAME`` for a
record; ``torch.utils.tensorboard``), with the config in its HParams view; W&B writes under
``FOLDER/wandb``, offline unless a W&B API key is set (``WANDB_API_KEY`` or ``WANDB_MODE``),
the config as the run's config, the run named after the folder (or NAME); ``csv`` appends
``step,name,value`` rows to ``FOLDER/metrics.csv`` (``FOLDER/NAME.metrics.csv``). The
optional libraries are the ``watch`` extra; asking for one that is not installed is refused in
one line before the run. Only the main process logs.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry import Registry


class Logger:
    """One destination: :meth:`scalars` per step, :meth:`close` at the end."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        raise NotImplementedError

    def close(self, final: Mapping[str, float] | None = None) -> None:
        """End the run (``final``: the figures the hyper-parameter views compare)."""


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as flat scalars (nested options as ``options.name``; lists as text)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            for k, v in _flat(value).items():
                out[f"{key}.{k}"] = v
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(map(str, value))
        elif value is None:
            out[key] = "None"
        else:
            out[key] = value
    return out


class TensorBoardLogger(Logger):
    def __init__(self, folder: Path, config: Mapping[str, Any], name: str | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder / "tensorboard" / (name or "")))
        self.config = _flat(config)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, float(value), step)
        self.writer.flush()

    def close(self, final: Mapping[str, float] | None = None) -> None:
        if final:
            self.writer.add_hparams(self.config, {f"hparam/{k}": float(v)
                                                  for k, v in final.items()}, run_name="hparams")
        self.writer.close()


class WandbLogger(Logger):
    def __init__(self, folder: Path, config: Mapping[str, Any], name: str | None) -> None:
        import wandb

        online = bool(os.environ.get("WANDB_API_KEY")) or os.environ.get("WANDB_MODE")
        (folder / "wandb").mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "smoothadv"),
                              dir=str(folder), config=dict(config), name=name or folder.name,
                              mode=None if online else "offline", reinit="finish_previous")

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log({k: float(v) for k, v in values.items()}, step=step)

    def close(self, final: Mapping[str, float] | None = None) -> None:
        self.run.finish()


class CsvLogger(Logger):
    def __init__(self, folder: Path, config: Mapping[str, Any], name: str | None) -> None:
        self.path = folder / (f"{name}.metrics.csv" if name else "metrics.csv")
        if not self.path.exists():
            with open(self.path, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(["step", "name", "value"])

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            for name, value in values.items():
                writer.writerow([step, name, repr(float(value))])


LOGGERS: Registry[tuple[Callable[[Path, Mapping[str, Any], str | None], Logger],
                        str | None]] = \
    Registry("logger")
LOGGERS.add("tensorboard", (TensorBoardLogger, "tensorboard"))
LOGGERS.add("wandb", (WandbLogger, "wandb"))
LOGGERS.add("csv", (CsvLogger, None))


def check_loggers(names: tuple[str, ...]) -> None:
    """Refuse, in one line, an unknown logger or one whose library is not installed."""
    import importlib.util

    for name in names:
        _, module = LOGGERS.get(name)
        if module is not None and importlib.util.find_spec(module) is None:
            raise UserError(f"--log {name} needs the {module} package: pip install "
                            "'smoothadv[watch]'")


class Loggers(Logger):
    """Every logger asked for, as one (nothing when none is), in ``folder`` (under ``name``
    there: a record's stem)."""

    def __init__(self, names: tuple[str, ...], folder: str | os.PathLike,
                 config: Mapping[str, Any], name: str | None = None) -> None:
        check_loggers(names)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.loggers = [LOGGERS.get(name_)[0](folder, config, name) for name_ in names]

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for logger in self.loggers:
            logger.scalars(step, values)

    def close(self, final: Mapping[str, float] | None = None) -> None:
        for logger in self.loggers:
            logger.close(final)


__all__ = ["LOGGERS", "Logger", "Loggers", "check_loggers"]
