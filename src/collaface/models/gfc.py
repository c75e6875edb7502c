"""Generative Face Completion (Li et al., CVPR 2017) as a collaface baseline: the VGG-style
encoder-decoder generator with unpooling, and the hole crop its local discriminator judges."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collaface.contracts import IMAGE_CHANNELS

# (convolutions, width multiplier of ngf) of the encoder stages, each followed by a 2x2 max-pool:
# VGG-19 conv1..conv3 (2, 2, 4 convolutions) and GFC's "two more convolution layers with a
# pooling layer on top".
STAGES: tuple[tuple[int, int], ...] = ((2, 1), (2, 2), (4, 4), (2, 8))


def _conv(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class GFCGenerator(nn.Module):
    """GFC generator G(x) -> {"i": (B,3,S,S)}.

    Encoder: the STAGES of 3x3 convolutions (BatchNorm + ReLU) with 2x2 max-pooling, down to S/16,
    then a fully connected layer to a code of ``16 ngf`` values. Decoder, symmetric: a fully
    connected layer back to S/16 x S/16 x 8 ngf, then per stage a max-unpooling with the encoder's
    pooling indices and the stage's convolutions in reverse; a 3x3 convolution to RGB and tanh.
    """

    def __init__(self, image_size: int, ngf: int = 64):
        super().__init__()
        if image_size % 16 or image_size < 32:
            raise ValueError(f"image_size must be a multiple of 16 and >= 32, got {image_size}")
        self.image_size = image_size
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.enc = nn.ModuleList()
        in_ch = IMAGE_CHANNELS
        for convs, mult in STAGES:
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += _conv(in_ch, ngf * mult)
                in_ch = ngf * mult
            self.enc.append(nn.Sequential(*layers))
        self.bottom = (in_ch, image_size // 16)
        flat = in_ch * self.bottom[1] ** 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, 16 * ngf), nn.ReLU(inplace=True),
                                nn.Linear(16 * ngf, flat), nn.ReLU(inplace=True))
        self.dec = nn.ModuleList()
        widths_out = [ngf * mult for _, mult in STAGES][::-1][1:] + [ngf]
        for (convs, mult), out_ch in zip(STAGES[::-1], widths_out):
            layers = []
            for k in range(convs):
                layers += _conv(ngf * mult, out_ch if k == convs - 1 else ngf * mult)
            self.dec.append(nn.Sequential(*layers))
        self.head = nn.Sequential(nn.Conv2d(ngf, IMAGE_CHANNELS, 3, padding=1), nn.Tanh())

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """masked: (B,3,S,S) in [-1,1] (hole filled with noise); mask unused. -> {"i": (B,3,S,S)}."""
        assert masked.shape[-2:] == (self.image_size, self.image_size), tuple(masked.shape)
        h, indices = masked, []
        for stage in self.enc:
            h, idx = self.pool(stage(h))
            indices.append(idx)
        channels, side = self.bottom
        h = self.fc(h).reshape(-1, channels, side, side)
        for stage in self.dec:
            h = stage(self.unpool(h, indices.pop()))
        return {"i": self.head(h)}


def hole_boxes(mask: torch.Tensor, min_side: int) -> torch.Tensor:
    """Square crop around each hole: the hole's bounding box, widened to a square of side
    max(box height, box width, min_side) about its centre, shifted to lie inside the image.

    mask: (B,1,S,S), 1 = hole. -> (B,3) float (x0, y0, side) in pixels; an empty mask gives the
    centred square of ``min_side``.
    """
    b, _, size, _ = mask.shape
    boxes = torch.empty(b, 3)
    for k in range(b):
        ys, xs = torch.nonzero(mask[k, 0] > 0.5, as_tuple=True)
        if len(ys) == 0:
            y0 = x0 = (size - min_side) / 2
            boxes[k] = torch.tensor([x0, y0, float(min_side)])
            continue
        top, bottom, left, right = ys.min().item(), ys.max().item() + 1, xs.min().item(), xs.max().item() + 1
        side = float(min(max(bottom - top, right - left, min_side), size))
        x0 = min(max((left + right - side) / 2, 0.0), size - side)
        y0 = min(max((top + bottom - side) / 2, 0.0), size - side)
        boxes[k] = torch.tensor([x0, y0, side])
    return boxes


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, out_side: int) -> torch.Tensor:
    """Bilinear crops of ``images`` (B,C,S,S) at ``boxes`` (B,3) from :func:`hole_boxes`, each
    resized to (C, out_side, out_side); differentiable with respect to ``images``."""
    b, _, size, _ = images.shape
    boxes = boxes.to(images.device, images.dtype)
    scale = boxes[:, 2] / size
    theta = torch.zeros(b, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, 0, 2] = (boxes[:, 0] + boxes[:, 2] / 2) / size * 2 - 1
    theta[:, 1, 2] = (boxes[:, 1] + boxes[:, 2] / 2) / size * 2 - 1
    grid = F.affine_grid(theta, [b, images.shape[1], out_side, out_side], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
