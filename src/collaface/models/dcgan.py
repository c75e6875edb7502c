"""DCGAN networks (Radford et al. 2016) used by the re-implemented baselines: the unconditional
image discriminator of CE, GFC (global and local) and SII, and SII's z -> image generator."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from collaface.contracts import IMAGE_CHANNELS

BASE_SIDE = 4  # spatial side where the DCGAN stacks end (discriminator) or start (generator)


def _levels(image_size: int) -> int:
    """Stride-2 layers between image_size and 4x4 (5 at 128 px)."""
    levels = int(math.log2(image_size // BASE_SIDE))
    if BASE_SIDE * 2**levels != image_size or levels < 1:
        raise ValueError(f"image_size must be a power of two >= {2 * BASE_SIDE}, got {image_size}")
    return levels


def _widths(base: int, levels: int) -> list[int]:
    return [base * min(2**k, 8) for k in range(levels)]


def downsampling(widths: list[int]) -> list[nn.Module]:
    """4x4 stride-2 convolutions from RGB through ``widths``, BatchNorm after all but the first,
    LeakyReLU(0.2) (DCGAN's discriminator body, CE's encoder)."""
    layers: list[nn.Module] = []
    in_ch = IMAGE_CHANNELS
    for k, width in enumerate(widths):
        layers.append(nn.Conv2d(in_ch, width, 4, stride=2, padding=1, bias=k == 0))
        if k:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        in_ch = width
    return layers


class DCGANDiscriminator(nn.Module):
    """Image -> one real/fake logit: 4x4 stride-2 convolutions down to 4x4 (BatchNorm after all
    but the first, LeakyReLU 0.2), then a 4x4 convolution to one value (the DCGAN layout).

    Args:
        image_size: side of the (square) input.
        ndf: width of the first layer (then 2x per layer, capped at 8 ndf).
    """

    def __init__(self, image_size: int, ndf: int = 64):
        super().__init__()
        widths = _widths(ndf, _levels(image_size))
        self.net = nn.Sequential(*downsampling(widths), nn.Conv2d(widths[-1], 1, BASE_SIDE))
        self.image_size = image_size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (B,3,S,S) in [-1,1] -> logits (B,)."""
        assert image.shape[1:] == (IMAGE_CHANNELS, self.image_size, self.image_size), tuple(image.shape)
        return self.net(image).flatten()


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> image (B,3,S,S) in (-1,1): a 4x4 transposed convolution to 4x4 x 8ngf,
    then 4x4 stride-2 transposed convolutions with BatchNorm + ReLU up to S, tanh."""

    def __init__(self, image_size: int, z_dim: int = 100, ngf: int = 64):
        super().__init__()
        widths = _widths(ngf, _levels(image_size))[::-1]  # widest first
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, widths[0], BASE_SIDE, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], IMAGE_CHANNELS, 4, stride=2, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, z_dim) -> (B,3,S,S)."""
        return self.net(z[:, :, None, None])
