"""Conditional PatchGAN discriminator D_t(x, y_t), one per task (paper sections 3.1 and 3.4)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from collaface.contracts import IMAGE_CHANNELS
from collaface.models.generator import conditioning_input

Augment = Callable[..., torch.Tensor]  # DiffAugment: (D input (B,C,H,W), repeats) -> same shape

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
        spectral_norm: spectral normalisation on every conv instead of BatchNorm (Miyato et al. 2018).
    """

    def __init__(self, target_channels: int, ndf: int = 64, mask_channel: bool = False, spectral_norm: bool = False):
        super().__init__()
        self.target_channels = target_channels
        self.mask_channel = mask_channel
        self.net = conv_stack(IMAGE_CHANNELS + int(mask_channel) + target_channels, ndf, LAYERS, spectral_norm)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor, target: torch.Tensor,
                augment: Augment | None = None, repeats: int = 1) -> list[torch.Tensor]:
        """masked: (B,3,H,W) generator input image; mask: (B,1,H,W), 1 = hole; target: y_t or a
        generated sample, (B,target_channels,H,W); ``augment`` transforms the stacked input, the
        same way for the ``repeats`` stacked copies of one set of faces.
        Returns the activations of the four hidden layers (for feature matching) and, last, the
        logits (B,1,h,w), h = patch_grid_size(H)."""
        assert target.shape == (masked.shape[0], self.target_channels, *masked.shape[2:]), (
            f"target {tuple(target.shape)} does not match masked {tuple(masked.shape)} "
            f"with {self.target_channels} channels"
        )
        x = torch.cat([conditioning_input(masked, mask, self.mask_channel), target], dim=1)
        return run_stack(self.net, augment(x, repeats) if augment is not None else x)


def conv_stack(in_ch: int, ndf: int, layers: tuple[tuple[int, int, bool], ...], spectral_norm: bool) -> nn.ModuleList:
    """pix2pix-style 4x4 convs, one block per (stride, width multiplier, BatchNorm) row, each
    ending in LeakyReLU(0.2), then a 4x4 conv to one logit per patch. With ``spectral_norm`` every
    conv is spectrally normalised and BatchNorm is left out."""
    sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda module: module)
    blocks = nn.ModuleList()
    for stride, mult, norm in layers:
        use_bn = norm and not spectral_norm
        block: list[nn.Module] = [sn(nn.Conv2d(in_ch, ndf * mult, 4, stride=stride, padding=1, bias=not use_bn))]
        if use_bn:
            block.append(nn.BatchNorm2d(ndf * mult))
        block.append(nn.LeakyReLU(0.2, inplace=True))
        blocks.append(nn.Sequential(*block))
        in_ch = ndf * mult
    blocks.append(sn(nn.Conv2d(in_ch, 1, 4, stride=1, padding=1)))
    return blocks


def run_stack(blocks: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    """Every block's output in order: hidden activations, then the logits."""
    outputs = []
    for block in blocks:
        x = block(x)
        outputs.append(x)
    return outputs
