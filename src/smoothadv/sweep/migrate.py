"""Sweep folders of an earlier smoothadv, adopted once: stage folders named by hashes that
included where their inputs lay are renamed to their location-free names.

Up to version 0.2 a stage's content hash held the paths of the files it read (a certification's
checkpoint, CAT-RS's soft targets), so its folder name ``stages/<stage>-<hash>`` depended on the
sweep folder's location. Now a file a stage reads is named in its hash by what it is
(:func:`smoothadv.configs.input_identity`). A sweep run over a folder of the earlier kind finds
the stage folders its plan does not name, reads each one's ``job.json``, works out the name its
config has now (after renaming its upstream stages, so references follow) and, where the plan
wants that name and no folder has it yet, renames the folder and its ledger entry and rewrites
the config documents inside (their hash and their references to renamed stages). Folders of
other configurations are left as they are.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from .plan import Plan

SPECIAL_KINDS = ("merge", "rebox")  # keyed by their kind, not their config's stage


def _translate(text: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        text = text.replace(f"stages/{old}/", f"stages/{new}/")
    return text


def _new_key(document: dict) -> str | None:
    """The name the job of ``document`` (a ``job.json``) has now, or None."""
    from ..stages import config_from_document

    kind = document.get("kind")
    if kind == "certify-shared" or "stage" not in document:
        return None
    try:
        config = config_from_document(document)
    except (UserError, TypeError, ValueError):
        return None
    return f"{kind if kind in SPECIAL_KINDS else config.stage}-{config.content_hash()}"


def _rewrite_documents(folder: Path, renames: dict[str, str]) -> None:
    """Every JSON document in ``folder`` with its references to renamed stages followed and,
    where it is a config document, its hash taken anew; written atomically."""
    from ..stages import config_from_document

    for path in folder.glob("*.json"):
        try:
            document = json.loads(_translate(path.read_text(encoding="utf-8"), renames))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and "config_hash" in document and "stage" in document:
            try:
                document["config_hash"] = config_from_document(document).content_hash()
            except (UserError, TypeError, ValueError):
                continue
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def adopt_earlier_names(plan: Plan, out: Path, say: Callable[[str], None] = print) -> int:
    """Rename the stage folders under ``out`` that an earlier smoothadv named by location to
    the names ``plan`` gives them (module docstring); returns how many, said in one line."""
    stages = Path(out) / "stages"
    if not stages.is_dir():
        return 0
    present = {p.name for p in stages.iterdir() if p.is_dir()}
    strays = sorted(present - set(plan.jobs))
    renames: dict[str, str] = {}
    progress = True
    while progress:
        progress = False
        for name in strays:
            if name in renames:
                continue
            try:
                text = (stages / name / "job.json").read_text(encoding="utf-8")
                key = _new_key(json.loads(_translate(text, renames)))
            except (OSError, ValueError):
                continue
            if key is None or key not in plan.jobs or key in present or key == name:
                continue
            os.rename(stages / name, stages / key)
            present.add(key)
            renames[name] = key
            progress = True
    for old, new in renames.items():
        _rewrite_documents(stages / new, renames)
        ledger = Path(out) / "ledger"
        if (ledger / f"{old}.json").exists():
            os.replace(ledger / f"{old}.json", ledger / f"{new}.json")
    if renames:
        say(f"smoothadv: renamed {len(renames)} stage folder(s) of an earlier version to the "
            "names that no longer depend on where the sweep folder lies (docs/sweeps.md)")
    return len(renames)


__all__ = ["adopt_earlier_names"]
