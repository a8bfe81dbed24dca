"""PNG files of clean and attacked images, and one grid image for a quick look."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image


class ExampleSaver:
    """Called with (idxs, x [B,C,H,W], x_adv [B,C,H,W]); writes ``<idx>_clean.png`` and
    ``<idx>_adv.png``; :meth:`finish` writes ``grid.png`` of the first ``grid_size`` inputs:
    clean images on the top row, attacked ones below, and the perturbation (scaled so that
    its largest entry spans the range, grey = 0) at the bottom."""

    def __init__(self, folder: str | os.PathLike, grid_size: int = 16) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.grid_size = grid_size
        self._clean: list[torch.Tensor] = []
        self._adv: list[torch.Tensor] = []

    def __call__(self, idxs: list[int], x: torch.Tensor, x_adv: torch.Tensor) -> None:
        x, x_adv = x.detach().cpu(), x_adv.detach().cpu()
        for j, idx in enumerate(idxs):
            save_image(x[j], self.folder / f"{idx}_clean.png")
            save_image(x_adv[j], self.folder / f"{idx}_adv.png")
            if len(self._clean) < self.grid_size:
                self._clean.append(x[j])
                self._adv.append(x_adv[j])

    def finish(self) -> Path | None:
        if not self._clean:
            return None
        clean, adv = torch.stack(self._clean), torch.stack(self._adv)
        diff = adv - clean
        scale = diff.abs().amax().clamp_min(1e-12)
        diff = 0.5 + 0.5 * diff / scale
        side = clean.shape[-1]
        if side < 64:  # enlarge tiny images (digits are 8×8) so the grid can be looked at
            factor = -(-64 // side)
            clean, adv, diff = (torch.nn.functional.interpolate(t, scale_factor=factor,
                                                                mode="nearest")
                                for t in (clean, adv, diff))
        grid = make_grid(torch.cat([clean, adv, diff]), nrow=len(clean), padding=2,
                         pad_value=1.0)
        path = self.folder / "grid.png"
        save_image(grid, path)
        return path
