"""Sweeps: a grid of runs (recipes and/or a product over train options) as jobs keyed by
their configs' content hashes, with dependencies (train → certify; a CAT-RS teacher → its soft
labels → training), a ledger on disk, and engines that run what is not done: ``local`` (a
process pool here) and ``slurm`` (submitit).

- :mod:`.spec`: the TOML sweep file;
- :mod:`.plan`: jobs, their outputs under the sweep folder, shared stages once, shards;
- :mod:`.jobs`: completeness from outputs, locks, running one job, merging shards;
- :mod:`.ledger`: what engines said, per job;
- :mod:`.local`, :mod:`.slurm`: the engines;
- :mod:`.report`: the status table and ``report.md``.
"""

from .jobs import is_done
from .ledger import Ledger
from .local import run_local
from .migrate import adopt_earlier_names
from .plan import Job, Plan, build_plan
from .report import status_table, write_report
from .spec import Sweep, load_sweep, sweep_from_data, to_toml

ENGINES = ("local", "slurm")

__all__ = ["ENGINES", "Job", "Ledger", "Plan", "Sweep", "adopt_earlier_names", "build_plan",
           "is_done", "load_sweep", "run_local", "status_table", "sweep_from_data", "to_toml",
           "write_report"]
