"""Semantic Image Inpainting (Yeh et al., CVPR 2017) as a collaface baseline: a DCGAN trained on
faces, then, per image, a search for the latent code z whose G(z) best matches the known pixels
(contextual loss) while looking real to D (prior loss), and a Poisson blend of G(z) into the hole
(the blend function is given by ``models.build``: networks here import only torch and contracts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from collaface.models.dcgan import DCGANDiscriminator, DCGANGenerator

# (prediction (h,w,3) uint8, known image (h,w,3) uint8, hole (h,w) bool) -> blended (h,w,3) uint8
Blend = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SIISearch:
    """The z search: z_dim latent size, iterations Adam steps at learning rate lr, prior the
    weight of the prior loss, window the importance-weighting window (pixels), seed z's start."""

    z_dim: int
    iterations: int
    lr: float
    prior: float
    window: int
    seed: int


def importance_weights(mask: torch.Tensor, window: int) -> torch.Tensor:
    """Yeh et al.'s W: a known pixel weighs the fraction of hole pixels in its ``window`` x
    ``window`` neighbourhood (inside the image); hole pixels weigh 0. mask: (B,1,S,S), 1 = hole.
    -> (B,1,S,S) in [0, 1]."""
    hole_fraction = F.avg_pool2d(mask, window, stride=1, padding=window // 2, count_include_pad=False)
    return (1 - mask) * hole_fraction


def contextual_loss(generated: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per image sum of W * |G(z) - y| over pixels and channels. -> (B,)."""
    return (weights * (generated - target).abs()).flatten(1).sum(1)


def prior_loss(logits: torch.Tensor) -> torch.Tensor:
    """log(1 - D(G(z))) per image with D = sigmoid(logits), i.e. -softplus(logits). -> (B,)."""
    return -F.softplus(logits)


class SIICompleter(nn.Module):
    """The SII completion method around a DCGAN: ``forward(masked, mask) -> {"i": completion}``.

    Per batch: z starts uniform in [-1, 1] (seeded by ``settings.seed``), then ``settings.iterations``
    Adam steps (learning rate ``settings.lr``) minimise contextual + settings.prior * prior with z
    clipped to [-1, 1] after each step; G and D stay fixed (eval mode). The output is G(z),
    blended into the hole by ``blend`` when given (known pixels are returned as given, quantised
    to 8 bits).

    Attributes:
        netG: DCGANGenerator (z -> image); netD: DCGANDiscriminator (trained with it; the prior).
        last_losses: (contextual, prior) per image after the last completion, for inspection.
    """

    def __init__(self, image_size: int, ngf: int, ndf: int, settings: SIISearch, blend: Blend | None = None):
        super().__init__()
        self.netG = DCGANGenerator(image_size, settings.z_dim, ngf)
        self.netD = DCGANDiscriminator(image_size, ndf)
        self.settings = settings
        self.blend = blend
        self.last_losses: tuple[torch.Tensor, torch.Tensor] | None = None

    def search(self, masked: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        """Optimise z for ``masked`` (B,3,S,S) with hole ``mask`` (B,1,S,S). -> (G(z) (B,3,S,S)
        detached, total loss of the batch per iteration)."""
        o = self.settings
        seed = torch.Generator().manual_seed(o.seed)
        z = (torch.rand(masked.shape[0], o.z_dim, generator=seed) * 2 - 1).to(masked.device)
        z.requires_grad_(True)
        weights = importance_weights(mask, o.window)
        optimizer = torch.optim.Adam([z], lr=o.lr)
        history = []
        with torch.enable_grad():
            for _ in range(o.iterations):
                generated = self.netG(z)
                context = contextual_loss(generated, masked, weights)
                prior = prior_loss(self.netD(generated))
                loss = (context + o.prior * prior).sum()
                (grad,) = torch.autograd.grad(loss, [z])
                z.grad = grad
                optimizer.step()
                with torch.no_grad():
                    z.clamp_(-1, 1)
                history.append(float(loss.detach()))
        with torch.no_grad():
            generated = self.netG(z)
            self.last_losses = (contextual_loss(generated, masked, weights), prior_loss(self.netD(generated)))
        return generated.detach(), history

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """masked: (B,3,S,S) in [-1,1]; mask: (B,1,S,S), 1 = hole. -> {"i": (B,3,S,S)}."""
        was_training = self.training
        self.eval()
        try:
            generated, _ = self.search(masked.detach().float(), mask.detach().float())
        finally:
            self.train(was_training)
        if self.blend is None:
            return {"i": generated}
        return {"i": _blend_batch(self.blend, generated, masked, mask)}


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,3,S,S) in [-1,1] -> (B,S,S,3) uint8."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _blend_batch(blend: Blend, generated: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``blend`` each G(z) into its image's hole. -> (B,3,S,S) in [-1,1]."""
    holes = (mask[:, 0] > 0.5).cpu().numpy()
    blended = [blend(pred, known, hole)
               for pred, known, hole in zip(_to_uint8(generated), _to_uint8(masked), holes)]
    out = torch.from_numpy(np.stack(blended)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return out.to(generated.device)
