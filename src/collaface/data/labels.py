"""Around the label space of ``collaface.contracts`` (``LABELS``, ``LANDMARK_NAMES``): label
indices, left/right flips, the CelebAMask-HQ mapping, the paper's Table 2 parts, display colours.

Side convention: **image sides**. "left" always means the left side of the image as you look at
it (the person's right), exactly like CelebA's landmark names. Sources that name sides from the
person's view (CelebAMask-HQ ``l_eye`` = person's left = image right) are converted at load.
"""

from __future__ import annotations

import numpy as np

from collaface.contracts import LABELS, LANDMARK_NAMES, NUM_CLASSES

LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}

# Parts reported in the paper's Table 2 (in its order); "skin" is the paper's "Face".
TABLE2_PARTS: tuple[str, ...] = (
    "skin", "left_brow", "right_brow", "left_eye", "right_eye", "nose",
    "upper_lip", "inner_mouth", "lower_lip",
)


def _swap_permutation(names: tuple[str, ...]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    perm = np.arange(len(names))
    for i, name in enumerate(names):
        for a, b in (("left", "right"), ("right", "left")):
            if name.startswith(a + "_"):
                perm[i] = index[b + name[len(a):]]
    return perm


# After a horizontal flip, the feature that was on the image's left is on its right.
LABEL_FLIP = _swap_permutation(LABELS)            # label -> label after a flip
LANDMARK_FLIP = _swap_permutation(LANDMARK_NAMES)  # new point i = old point LANDMARK_FLIP[i]


def flip_parsing_labels(parsing: np.ndarray) -> np.ndarray:
    """Swap left/right label values (no spatial flip). parsing: integer array of any shape."""
    return LABEL_FLIP[parsing].astype(parsing.dtype)


# CelebAMask-HQ: per-part PNGs are merged in this release order (later parts overwrite earlier);
# the merged value of part k is k + 1 (0 = background). ``l_`` is the person's left = image right.
CELEBAMASK_HQ_PARTS: tuple[str, ...] = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
_CELEBAMASK_HQ_NAME_TO_OURS = {
    "skin": "skin",
    "nose": "nose",
    "eye_g": "skin",          # glasses frames lie on the face; eyes are merged over them
    "l_eye": "right_eye",     # person's left = image right
    "r_eye": "left_eye",
    "l_brow": "right_brow",
    "r_brow": "left_brow",
    "l_ear": "background",    # ears are outside the face oval, as in the annotator
    "r_ear": "background",
    "mouth": "inner_mouth",
    "u_lip": "upper_lip",
    "l_lip": "lower_lip",
    "hair": "hair",
    "hat": "background",
    "ear_r": "background",
    "neck_l": "background",
    "neck": "background",
    "cloth": "background",
}
# Lookup table: CelebAMask-HQ merged value (0..18) -> our label.
CELEBAMASK_HQ_TO_OURS = np.array(
    [LABEL_INDEX["background"]]
    + [LABEL_INDEX[_CELEBAMASK_HQ_NAME_TO_OURS[p]] for p in CELEBAMASK_HQ_PARTS],
    dtype=np.uint8,
)


def from_celebamask_hq(label_map: np.ndarray) -> np.ndarray:
    """Convert a merged CelebAMask-HQ label map (values 0..18) to our label space (uint8)."""
    if label_map.size and int(label_map.max()) >= len(CELEBAMASK_HQ_TO_OURS):
        raise ValueError(
            f"CelebAMask-HQ label map has value {int(label_map.max())}; valid values are 0..18"
        )
    return CELEBAMASK_HQ_TO_OURS[label_map]


# Display colours (RGB) for overlays and legends, one per label.
LABEL_COLORS = np.array(
    [
        (0, 0, 0), (204, 153, 119), (128, 64, 0), (176, 96, 16), (0, 128, 255), (0, 200, 255),
        (255, 220, 0), (220, 20, 60), (90, 0, 40), (255, 100, 140), (80, 60, 160),
    ],
    dtype=np.uint8,
)
assert len(LABEL_COLORS) == NUM_CLASSES
