"""A run folder: what classifier and denoiser training share around their loops.

``OUT/config.json`` (the stage's config document: stage, content hash, config, what the run
resolved), ``OUT/log.tsv`` (a header, then one row per finished epoch, appended and flushed) and
the checkpoint (written to a temporary file and renamed by the caller's atomic save). On resume,
log rows past the checkpoint's epoch (a run killed between a row and its checkpoint) are cut.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..configs import StageConfig
from ..errors import UserError


class RunFolder:
    """The files of one training run under ``path``."""

    def __init__(self, path: str | Path, checkpoint_name: str,
                 log_columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.checkpoint = self.path / checkpoint_name
        self.log = self.path / "log.tsv"
        self.config = self.path / "config.json"
        self.columns = tuple(log_columns)

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def read_config(self) -> dict[str, Any] | None:
        """The config document already in the folder, or None."""
        if not self.config.is_file():
            return None
        try:
            return json.loads(self.config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def claim(self, config: StageConfig, *, overwrite: bool = False,
              resume: bool = False, main: bool = True) -> bool:
        """Make sure the folder belongs to ``config``; returns whether to resume from its
        checkpoint.

        A folder whose config has the same content hash resumes (the same command after an
        interruption continues). One of another configuration is refused in one line naming
        the options that differ, unless ``overwrite`` (then its checkpoint, log and config are
        removed). A folder holding a checkpoint but no hashed config (an older run) resumes
        only with ``resume`` and is otherwise refused. Every process of a distributed run
        checks (so that all refuse together); only the ``main`` one removes files.
        """
        document = self.read_config()
        has_checkpoint = self.has_checkpoint()
        if overwrite:
            if main:
                for path in (self.checkpoint, self.log, self.config):
                    path.unlink(missing_ok=True)
            return False
        if document is None and not has_checkpoint:
            return False
        recorded = (document or {}).get("config_hash")
        if recorded is None:
            if has_checkpoint and not resume:
                raise UserError(f"{self.path} holds a run that records no configuration: pass "
                                "--resume to continue it, or --overwrite to start again")
            return resume and has_checkpoint
        if recorded != config.content_hash():
            try:
                differ = config.differences(type(config).from_dict(document.get("config", {})))
            except UserError:
                differ = ["its options"]
            differ = [d for d in differ if d not in config.extendable]
            if differ:
                raise UserError(f"{self.path} holds a run of another configuration (differs "
                                f"in {', '.join(differ)}): write to a new --out, or pass "
                                "--overwrite to discard it")
        return has_checkpoint

    def start(self, document: dict[str, Any], resumed_epoch: int | None) -> None:
        """Create the folder, write ``config.json``, and start the log (a fresh header) or,
        resuming at ``resumed_epoch``, keep its rows up to that epoch."""
        if not self.path.exists():
            print(f"smoothadv: creating the run folder {self.path.resolve()}")
        self.path.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        header = "\t".join(self.columns)
        if resumed_epoch is None or not self.log.exists():
            self.log.write_text(header + "\n", encoding="utf-8")
            return
        lines = self.log.read_text(encoding="utf-8").splitlines()
        kept = [header] + [ln for ln in lines[1:]
                           if ln and int(ln.split("\t")[0]) <= resumed_epoch]
        self.log.write_text("\n".join(kept) + "\n", encoding="utf-8")

    def append(self, row: Sequence[Any]) -> None:
        """One log row, flushed."""
        with open(self.log, "a", encoding="utf-8") as f:
            f.write("\t".join(map(str, row)) + "\n")
