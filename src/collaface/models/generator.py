"""The collaGAN generator: one U-Net whose last layer emits the stacked channels of every task.

Paper section 3.4: encoder of 4x4 stride-2 convolutions, each followed by BatchNorm and
LeakyReLU(0.2); a symmetric decoder of 4x4 stride-2 transposed convolutions with BatchNorm and
ReLU; skip connections between mirrored layers (pix2pix); tanh output. All tasks share every
layer except the output channels of the last transposed convolution.

The noise z of the paper enters as the random values filling the hole of the input image (done
by the data pipeline), not as dropout: the paper mentions no dropout and this network has none.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from collaface.contracts import IMAGE_CHANNELS, TASK_CHANNELS, UPSAMPLES

MAX_WIDTH_MULT = 8  # channel widths ngf, 2ngf, 4ngf, 8ngf, 8ngf, ... as in pix2pix


def conditioning_input(masked: torch.Tensor, mask: torch.Tensor, mask_channel: bool) -> torch.Tensor:
    """The paper's x: the masked image (B,3,H,W), plus the hole mask (B,1,H,W; 1 = hole) as a
    fourth channel when ``mask_channel``. Shared by the generator and the discriminators."""
    assert masked.dim() == 4 and masked.shape[1] == IMAGE_CHANNELS, f"masked: {tuple(masked.shape)}"
    assert mask.shape == (masked.shape[0], 1, *masked.shape[2:]), f"mask: {tuple(mask.shape)}"
    return torch.cat([masked, mask], dim=1) if mask_channel else masked


def _down(in_ch: int, out_ch: int, norm: bool) -> nn.Sequential:
    """Conv 4x4 stride 2 (halves H, W) [+ BatchNorm] + LeakyReLU(0.2)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _upconv(in_ch: int, out_ch: int, upsample: str, bias: bool) -> nn.Module:
    """Doubles H, W: transposed conv 4x4 stride 2 (the paper), or nearest-neighbour x2 then a
    3x3 conv ("resize", Odena et al. 2016: no checkerboard from uneven kernel overlap)."""
    if upsample == "transpose":
        return nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=bias)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias))


def _up(in_ch: int, out_ch: int, upsample: str) -> nn.Sequential:
    """Upsampling conv (doubles H, W) + BatchNorm + ReLU."""
    return nn.Sequential(_upconv(in_ch, out_ch, upsample, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class UNetGenerator(nn.Module):
    """U-Net G(x, z) -> {task: output}, for square images of side ``image_size``.

    The encoder has log2(image_size) stride-2 layers, so the bottleneck is 1x1: 7 layers at
    128 px as in the paper, 8 at 256 px, 5 at 32 px. Widths are ngf * (1, 2, 4, 8, 8, ...).

    BatchNorm follows every encoder layer as the paper says, except the 1x1 bottleneck (pix2pix
    also leaves its innermost layer unnormalised): there, BatchNorm statistics come from only B
    values per channel, so a training batch of 1 would be an error (and would zero the code),
    and small batches would make each face's code depend on the others in the batch.

    Args:
        image_size: side of the input and output images (a power of two >= 32 in configs).
        tasks: the tasks that are on, any of "i", "s", "d"; outputs are stacked in i, s, d order.
        ngf: width of the first layer.
        mask_channel: feed the hole mask as a fourth input channel.
        upsample: "transpose" (the paper's 4x4 stride-2 transposed convs) or "resize".
        mirror_input: also feed the horizontally flipped input (image and mask): on a roughly
            frontal face the hidden eye's twin then sits at the same pixels in the extra channels.
    """

    def __init__(self, image_size: int, tasks: list[str], ngf: int = 64, mask_channel: bool = False,
                 upsample: str = "transpose", mirror_input: bool = False):
        super().__init__()
        num_downs = int(math.log2(image_size))
        if 2**num_downs != image_size or num_downs < 2:
            raise ValueError(f"image_size must be a power of two >= 4, got {image_size}")
        unknown = [t for t in tasks if t not in TASK_CHANNELS]
        if not tasks or unknown:
            raise ValueError(f"tasks must be a non-empty subset of {list(TASK_CHANNELS)}, got {tasks}")
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
        self.image_size = image_size
        self.tasks = [t for t in TASK_CHANNELS if t in tasks]
        self.mask_channel = mask_channel
        self.mirror_input = mirror_input
        self.num_downs = num_downs

        widths = [ngf * min(2**k, MAX_WIDTH_MULT) for k in range(num_downs)]
        in_ch = (IMAGE_CHANNELS + int(mask_channel)) * (2 if mirror_input else 1)
        self.encoder = nn.ModuleList(
            _down(c_in, c_out, norm=k < num_downs - 1)
            for k, (c_in, c_out) in enumerate(zip([in_ch] + widths[:-1], widths))
        )
        # decoder[j] brings level num_downs-1-j up to the resolution of encoder level num_downs-2-j;
        # its input is the bottleneck (j = 0) or the previous output concatenated with its skip.
        self.decoder = nn.ModuleList(
            _up(widths[k] if k == num_downs - 1 else 2 * widths[k], widths[k - 1], upsample)
            for k in range(num_downs - 1, 0, -1)
        )
        out_ch = sum(TASK_CHANNELS[t] for t in self.tasks)
        self.head = nn.Sequential(
            _upconv(2 * widths[0], out_ch, upsample, bias=True), nn.Tanh()
        )

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """masked: (B,3,S,S) hole-filled image in [-1,1]; mask: (B,1,S,S), 1 = hole (used only
        with mask_channel). Returns {"i": (B,3,S,S), "s": (B,11,S,S), "d": (B,5,S,S)} in (-1,1),
        with only the tasks that are on."""
        size = self.image_size
        assert masked.shape[-2:] == (size, size), f"expected {size}x{size} input, got {tuple(masked.shape)}"
        h = conditioning_input(masked, mask, self.mask_channel)
        if self.mirror_input:
            h = torch.cat([h, h.flip(-1)], dim=1)
        skips = []
        for layer in self.encoder:
            h = layer(h)
            skips.append(h)
        skips.pop()  # the bottleneck is h itself
        for layer in self.decoder:
            h = torch.cat([layer(h), skips.pop()], dim=1)
        stacked = self.head(h)
        return dict(zip(self.tasks, stacked.split([TASK_CHANNELS[t] for t in self.tasks], dim=1)))
