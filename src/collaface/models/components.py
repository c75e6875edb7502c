"""Component discriminators (GFPGAN, Wang et al. 2021): small conditional patch discriminators on
the left eye, right eye and mouth, the regions where completions fail, cropped from the image at
places given by the 5 landmarks and resampled to one size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collaface.contracts import IMAGE_CHANNELS
from collaface.models.discriminator import Augment, conv_stack, run_stack

CROP_SIZE = 32  # default side of the resampled component crops (``model.component_size``)
# region -> (landmark indices whose mean is the crop centre, crop side in inter-ocular distances)
COMPONENT_BOXES: dict[str, tuple[tuple[int, ...], float]] = {
    "left_eye": ((0,), 0.7),
    "right_eye": ((1,), 0.7),
    "mouth": ((3, 4), 1.0),
}
MIN_SIDE = 8.0  # pixels: crops never shrink below this, whatever the landmarks
# (stride, width multiplier of ndf, BatchNorm): 32 -> 16 -> 8 -> 7, then 6x6 logits (64 -> 14x14)
COMPONENT_LAYERS: tuple[tuple[int, int, bool], ...] = ((2, 1, False), (2, 2, True), (1, 4, True))


def component_crops(images: torch.Tensor, landmarks: torch.Tensor, name: str, size: int = CROP_SIZE) -> torch.Tensor:
    """Square crops of region ``name`` (see COMPONENT_BOXES), resampled bilinearly (differentiable
    in ``images``) to ``size`` pixels. images: (B,C,S,S); landmarks: (B,5,2) x, y pixels of those
    images (rows with NaN give meaningless crops: weigh them out). -> (B,C,size,size)."""
    indices, scale = COMPONENT_BOXES[name]
    image_size = images.shape[-1]
    points = torch.nan_to_num(landmarks.float(), nan=(image_size - 1) / 2)
    centre = points[:, list(indices)].mean(1)
    side = (scale * (points[:, 0] - points[:, 1]).norm(dim=1)).clamp_min(MIN_SIDE)
    theta = torch.zeros(len(images), 2, 3, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = side / image_size           # half side in normalised units
    theta[:, :, 2] = (2 * centre + 1) / image_size - 1             # pixel centres, align_corners=False
    grid = F.affine_grid(theta, [len(images), images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False)


class ComponentDiscriminator(nn.Module):
    """D_c(mask crop, image crop): three 4x4 convs and a logit conv on a square crop of one face
    component and of the hole mask (the condition: which pixels were generated). Fully
    convolutional: its weights do not depend on the crop's side (``model.component_size``), only
    its logit map does."""

    def __init__(self, ndf: int = 32, spectral_norm: bool = False):
        super().__init__()
        self.net = conv_stack(IMAGE_CHANNELS + 1, ndf, COMPONENT_LAYERS, spectral_norm)

    def forward(self, mask_crop: torch.Tensor, image_crop: torch.Tensor,
                augment: Augment | None = None, repeats: int = 1) -> list[torch.Tensor]:
        """mask_crop: (B,1,C,C), image_crop: (B,3,C,C) -> hidden activations, then
        logits (B,1,6,6) for C = 32, (B,1,14,14) for 64. ``augment``/``repeats``: as for PatchDiscriminator."""
        x = torch.cat([mask_crop, image_crop], dim=1)
        return run_stack(self.net, augment(x, repeats) if augment is not None else x)
