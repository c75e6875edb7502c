"""Differentiable augmentation of discriminator inputs (DiffAugment, Zhao et al. 2020): the same
kind of random transform on real and generated inputs, differentiable so G's gradient passes.
Randomness comes from torch's global generator (seeded by the training loop). ``repeats``: the
batch is that many stacked copies of one set of faces (real, then generated), which all get the
same transform per face, so paired features stay comparable (feature matching)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

TRANSLATION = 1 / 8  # max shift, fraction of the side (zeros come in)
CUTOUT = 1 / 2       # side of the zeroed square, fraction of the side


def translation(x: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    """Shift every face of (B,C,H,W) by its own random whole number of pixels (content moves by
    (dx, dy)); pixels that come in are zeros. One gather, so the backward is one scatter."""
    b, _, h, w = x.shape
    max_dy, max_dx = round(h * TRANSLATION), round(w * TRANSLATION)
    dy = torch.randint(-max_dy, max_dy + 1, (b // repeats, 1, 1)).repeat(repeats, 1, 1)
    dx = torch.randint(-max_dx, max_dx + 1, (b // repeats, 1, 1)).repeat(repeats, 1, 1)
    rows = (torch.arange(h).view(1, h, 1) - dy).clamp(-1, h) + 1  # -1 and h land on the zero padding
    cols = (torch.arange(w).view(1, 1, w) - dx).clamp(-1, w) + 1
    faces = torch.arange(b).view(b, 1, 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)
    return padded[faces.to(x.device), rows.to(x.device), cols.to(x.device)].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    """Zero one random square of CUTOUT x the side in every face of (B,C,H,W)."""
    b, _, h, w = x.shape
    ch, cw = round(h * CUTOUT), round(w * CUTOUT)
    top = torch.randint(0, h - ch + 1, (b // repeats, 1, 1)).repeat(repeats, 1, 1)
    left = torch.randint(0, w - cw + 1, (b // repeats, 1, 1)).repeat(repeats, 1, 1)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).to(x.device, x.dtype)[:, None]


AUGMENTS = {"translation": translation, "cutout": cutout}


def diff_augment(kinds: list[str]):
    """The composed transform of ``kinds`` (in order), or None when there are none."""
    if not kinds:
        return None
    functions = [AUGMENTS[k] for k in kinds]

    def apply(x: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        for fn in functions:
            x = fn(x, repeats)
        return x

    return apply
