"""17. Forecasts of a run's time against the time it took (digits and CIFAR-10 ResNet-20).

``certify`` and ``train`` say, once their first units are timed, how long the whole run will
take (:mod:`smoothadv.runtime.forecast`); the sweep's local engine adds up its stages' forecasts
(:mod:`smoothadv.sweep.outlook`). Each path below runs through the command line in this process
with its forecasts recorded, and the forecast is set against the time the same work took
(from the forecast's own start, after loading, to its last unit): the ratio forecast / actual
should lie within [1/1.5, 1.5].

- certify on digits (``digits_cnn``, n = 100,000, every 3rd test image) and on CIFAR-10
  (ResNet-20, n = 2,000, 24 test images; needs ../shared/data/cifar10);
- train on digits (SmoothAdv-PGD, m = 4, 4 steps, 12 epochs) and CIFAR-10 ResNet-20 (Gaussian,
  2,560 training images, 3 epochs): the whole-run forecast made after the first epoch, and the
  earlier one of the training steps alone;
- a digits sweep (2 σ × 2 seeds, train and certify; 1 worker): the first "time left" line
  against the time the sweep then took.

    python bench/bench_estimates.py [--work runs/bench/estimates] [--skip-cifar]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import time
from pathlib import Path

from common import SHARED, machine
from smoothadv.cli import main as cli
from smoothadv.records import loops
from smoothadv.runtime import forecast as F
from smoothadv.train import loop as train_loop

LIMIT = 1.5


class Recorded(F.Forecast):
    """A forecast that keeps its estimate and the time of its last unit."""

    made: list[Recorded] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.finished_at: float | None = None
        Recorded.made.append(self)

    def done(self, units: int):
        result = super().done(units)
        if units >= self.total:
            self.finished_at = self.clock()
        return result

    def actual(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started


def run(args: list[str]) -> list[Recorded]:
    """The forecasts made while ``smoothadv ARGS`` ran (quietly)."""
    Recorded.made = []
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli(args) == 0, args
    return list(Recorded.made)


def verdict(estimate: float | None, actual: float | None) -> str:
    if estimate is None or actual is None:
        return "no forecast made"
    ratio = estimate / actual
    ok = 1 / LIMIT <= ratio <= LIMIT
    return (f"forecast {estimate:7.1f} s, took {actual:7.1f} s: ratio {ratio:.2f} "
            f"({'within' if ok else 'OUTSIDE'} 1.5×)")


def certify_path(name: str, checkpoint: Path, out: Path, *extra: str) -> None:
    out.unlink(missing_ok=True)
    made = run(["certify", str(checkpoint), "--no-compile", "--out", str(out), *extra])
    (f,) = [m for m in made if m.what == "certify"]
    print(f"  {name:40s} {verdict(f.total_seconds, f.actual())}")


def train_path(name: str, out: Path, *args: str) -> None:
    shutil.rmtree(out, ignore_errors=True)
    made = run(["train", "--out", str(out), "--no-compile", *args])
    epochs = next(m for m in made if m.unit == "epoch")
    steps = next((m for m in made if m.unit == "step"), None)
    whole = epochs.actual()
    print(f"  {name + ' (after epoch 1)':40s} {verdict(epochs.total_seconds, whole)}")
    if steps is not None:
        print(f"  {name + ' (steps alone, early)':40s} "
              f"{verdict(steps.total_seconds, whole)} (the evaluation left out)")


def sweep_path(work: Path) -> None:
    from smoothadv.sweep import Ledger, build_plan, load_sweep, run_local

    folder = work / "sweep"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    spec = folder / "sweep.toml"
    spec.write_text(
        f'out = "{folder / "out"}"\n[[runs]]\n'
        'train = { dataset = "digits", arch = "digits_cnn", epochs = 8, batch = 32, '
        'method = "smoothadv" }\noptions = { smoothadv = { num_noise = 2, steps = 2 } }\n'
        'certify = { n = 20000, skip = 4, compile = "off" }\n'
        'grid = { sigma = [0.25, 0.5], seed = [0, 1] }\n')
    sweep = load_sweep(spec)
    plan = build_plan(sweep)
    lines: list[tuple[float, str]] = []
    start = time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        run_local(plan, Ledger(sweep.out), 1, say=lambda s: lines.append((time.time(), s)))
    end = time.time()
    left = [(t, s) for t, s in lines if "left (" in s]
    if not left:
        print("  digits sweep: no time-left line")
        return
    t, line = left[0]
    estimate = _seconds(line)
    print(f"  {'digits sweep (first line)':40s} {verdict(estimate, end - t)}; "
          f"at {t - start:.0f} s of {end - start:.0f} s:\n    {line}")


def _seconds(line: str) -> float:
    """The seconds of ``sweep: about 3 min 04 s left`` or ``… more than 3 min 04 s left``
    (the forms of :func:`human_seconds`)."""
    words = line.split(": ", 1)[1].split(" left", 1)[0].split()
    words = words[2:] if words[0] == "more" else words[1:]  # "more than" or "about"
    units = {"d": 86400, "h": 3600, "min": 60, "s": 1, "ms": 1e-3}
    return sum(float(words[i]) * units[words[i + 1]] for i in range(0, len(words), 2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bench/estimates")
    parser.add_argument("--skip-cifar", action="store_true")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    loops.Forecast = train_loop.Forecast = Recorded
    print(f"17. forecasts of a run's time, ratio forecast / actual (target within "
          f"[{1 / LIMIT:.2f}, {LIMIT}])\nmachine: {machine()}")
    digits = work / "digits_train"
    train_path("train digits SmoothAdv", digits, "--dataset", "digits", "--arch", "digits_cnn",
               "--method", "smoothadv", "--m-train", "4", "--steps", "4", "--batch", "32",
               "--epochs", "12")
    certify_path("certify digits n=100k", digits / "checkpoint.pth.tar",
                 work / "digits.tsv", "--skip", "3")
    cifar = Path(SHARED) / "cifar10"
    if args.skip_cifar or not cifar.exists():
        print("  CIFAR-10 paths skipped (../shared/data/cifar10 absent or --skip-cifar)")
    else:
        resnet = work / "cifar_train"
        train_path("train CIFAR-10 ResNet-20", resnet, "--dataset", "cifar10", "--data-root",
                   str(cifar), "--arch", "cifar_resnet20", "--train-subset", "2560",
                   "--test-subset", "500", "--batch", "128", "--epochs", "3")
        certify_path("certify CIFAR-10 ResNet-20 n=2k", resnet / "checkpoint.pth.tar",
                     work / "cifar.tsv", "--data-root", str(cifar), "--n", "2000",
                     "--batch", "500", "--skip", "417")
    sweep_path(work)


if __name__ == "__main__":
    main()
