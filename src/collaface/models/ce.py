"""Context Encoders (Pathak et al., CVPR 2016): the encoder-decoder with a channel-wise fully
connected bottleneck, as a collaface baseline generator (image task only)."""

from __future__ import annotations

import torch
from torch import nn

from collaface.contracts import IMAGE_CHANNELS
from collaface.models.dcgan import BASE_SIDE, _levels, downsampling


class ChannelwiseFC(nn.Module):
    """Fully connected within each channel (every position sees every position of its own
    channel, channels are not mixed): (B,C,H,W) -> (B,C,H,W) with C x (HW x HW) weights."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        positions = side * side
        self.weight = nn.Parameter(torch.randn(channels, positions, positions) / positions**0.5)
        self.bias = nn.Parameter(torch.zeros(channels, positions))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        out = torch.einsum("bcp,cpq->bcq", flat, self.weight) + self.bias
        return out.reshape(b, c, h, w)


class ContextEncoder(nn.Module):
    """CE generator G(x) -> {"i": (B,3,S,S)}.

    Encoder: 4x4 stride-2 convolutions from S down to 4x4 with widths ngf, ngf, 2ngf, 4ngf, 8ngf
    (CE's 128-px layout at ngf 64), BatchNorm after all but the first, LeakyReLU 0.2. Bottleneck:
    channel-wise fully connected layer, then a 1x1 stride-1 convolution that mixes channels (the
    paper's "stride 1 convolution"). Decoder: 4x4 stride-2 transposed convolutions back to S with
    BatchNorm + ReLU, tanh. No skip connections (CE has none).

    The hole mask is not an input: CE sees only the masked image (hole filled by the data pipeline).
    """

    def __init__(self, image_size: int, ngf: int = 64):
        super().__init__()
        levels = _levels(image_size)
        widths = [ngf] + [ngf * min(2 ** (k - 1), 8) for k in range(1, levels)]
        self.encoder = nn.Sequential(*downsampling(widths))
        in_ch = widths[-1]
        self.bottleneck = nn.Sequential(
            ChannelwiseFC(in_ch, BASE_SIDE),
            nn.Conv2d(in_ch, in_ch, 1),
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
        )
        decoder: list[nn.Module] = []
        for c_in, c_out in zip(widths[::-1], widths[::-1][1:]):
            decoder += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                        nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        decoder += [nn.ConvTranspose2d(widths[0], IMAGE_CHANNELS, 4, stride=2, padding=1), nn.Tanh()]
        self.decoder = nn.Sequential(*decoder)
        self.image_size = image_size

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """masked: (B,3,S,S) in [-1,1]; mask: (B,1,S,S), unused. -> {"i": (B,3,S,S)}."""
        assert masked.shape[-2:] == (self.image_size, self.image_size), tuple(masked.shape)
        return {"i": self.decoder(self.bottleneck(self.encoder(masked)))}
