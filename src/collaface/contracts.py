"""The contracts every layer shares; this module imports nothing else from collaface, nor torch.

- **Label space.** ``LABELS``: the parsing classes (value = index); ``LANDMARK_NAMES``: the 5
  landmark points in order. Sides are image sides: "left" is the left of the image as you look
  at it (the person's right), as CelebA names its landmarks. ``collaface.data.labels`` adds the
  flips, the CelebAMask-HQ mapping and the display colours.
- **Task channel layout.** The generator stacks the outputs of the tasks that are on in
  ``TASKS`` order (i image, s parsing, d landmark heatmaps) with ``TASK_CHANNELS`` channels
  each; ``TARGET_KEYS`` names each task's ground truth in a training batch.
- ``UPSAMPLES``: the generator decoder's upsampling layers.
- :func:`composite`: the prediction inside the hole, the target elsewhere (1 = hole).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

LABELS: tuple[str, ...] = (
    "background",
    "skin",
    "left_brow",
    "right_brow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
    "hair",
)
NUM_CLASSES = len(LABELS)
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
NUM_LANDMARKS = len(LANDMARK_NAMES)

TASKS = ("i", "s", "d")
IMAGE_CHANNELS = 3
TASK_CHANNELS: dict[str, int] = {"i": IMAGE_CHANNELS, "s": NUM_CLASSES, "d": NUM_LANDMARKS}
TARGET_KEYS: dict[str, str] = {"i": "image", "s": "parsing_onehot", "d": "heatmaps"}

UPSAMPLES = ("transpose", "resize")  # generator decoder: transposed convs (paper) or nearest x2 + conv


def composite(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask * prediction + (1 - mask) * target``: prediction in the hole, target elsewhere (1 = hole).

    Shapes broadcast, e.g. (B, 3, H, W) images with a (B, 1, H, W) mask.
    """
    return mask * prediction + (1 - mask) * target
