"""Conditional PatchGAN discriminator D_t(x, y_t), one per task (paper sections 3.1 and 3.4)."""

from __future__ import annotations

import torch
from torch import nn

from collaface.models.generator import IMAGE_CHANNELS, conditioning_input

# (stride, width multiplier of ndf, BatchNorm) of the five 4x4 convolutions; the last one maps to
# one logit per patch. This is pix2pix's NLayerDiscriminator with n_layers=3 (70x70 receptive
# field): spatial size S -> S/2 -> S/4 -> S/8 -> S/8-1 -> S/8-2, e.g. 128 -> 14x14 logits.
LAYERS: tuple[tuple[int, int, bool], ...] = ((2, 1, False), (2, 2, True), (2, 4, True), (1, 8, True))


def patch_grid_size(image_size: int) -> int:
    """Side of the logit map for an input of side ``image_size``."""
    side = image_size
    for stride, _, _ in LAYERS:
        side = side // 2 if stride == 2 else side - 1
    return side - 1


class PatchDiscriminator(nn.Module):
    """Five 4x4 convolutions on cat(x, y_t): LeakyReLU(0.2) after each of the first four,
    BatchNorm after the second to fourth (no norm on the first, pix2pix convention); the fifth
    gives logits (no sigmoid, the loss applies it).

    Args:
        target_channels: channels of y_t (3 image, 11 one-hot parsing, 5 heatmaps).
        ndf: width of the first layer.
        mask_channel: the condition x includes the hole mask (as for the generator).
    """

    def __init__(self, target_channels: int, ndf: int = 64, mask_channel: bool = False):
        super().__init__()
        self.target_channels = target_channels
        self.mask_channel = mask_channel
        in_ch = IMAGE_CHANNELS + int(mask_channel) + target_channels
        layers: list[nn.Module] = []
        for stride, mult, norm in LAYERS:
            layers.append(nn.Conv2d(in_ch, ndf * mult, 4, stride=stride, padding=1, bias=not norm))
            if norm:
                layers.append(nn.BatchNorm2d(ndf * mult))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = ndf * mult
        layers.append(nn.Conv2d(in_ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """masked: (B,3,H,W) generator input image; mask: (B,1,H,W), 1 = hole; target: y_t or a
        generated sample, (B,target_channels,H,W). Returns logits (B,1,h,w), h = patch_grid_size(H)."""
        assert target.shape == (masked.shape[0], self.target_channels, *masked.shape[2:]), (
            f"target {tuple(target.shape)} does not match masked {tuple(masked.shape)} "
            f"with {self.target_channels} channels"
        )
        return self.net(torch.cat([conditioning_input(masked, mask, self.mask_channel), target], dim=1))
