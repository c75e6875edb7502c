"""The paper's published numbers (Tables 1-3) and the layout of its Tables 2 and 3, shared by
the evaluation and ablation reports."""

from __future__ import annotations

from collections.abc import Callable

from collaface.contracts import LANDMARK_NAMES
from collaface.data.labels import TABLE2_PARTS

# Table 1: SSIM (%) / PSNR (dB) at O1..O6; all models trained with random block masks.
PAPER_TABLE1: dict[str, tuple[tuple[float, float], ...]] = {
    "CE": ((90.5, 26.74), (90.6, 27.01), (93.8, 27.90), (95.8, 30.37), (96.0, 30.65), (90.0, 27.11)),
    "SII": ((87.5, 23.93), (87.7, 24.12), (93.0, 26.61), (95.6, 28.94), (95.9, 29.38), (87.8, 24.84)),
    "GFC": ((90.6, 27.10), (90.9, 27.34), (94.0, 28.68), (96.3, 31.18), (96.3, 31.11), (90.0, 27.13)),
    "M_i": ((90.8, 27.23), (91.1, 27.42), (94.0, 28.53), (96.0, 30.94), (96.1, 31.06), (90.1, 27.15)),
    "M_id": ((91.7, 27.57), (91.6, 27.81), (94.5, 28.76), (96.4, 31.33), (96.5, 31.36), (90.7, 27.37)),
    "M_is": ((91.4, 27.59), (91.5, 27.65), (94.3, 28.66), (96.4, 31.22), (96.4, 31.28), (90.7, 27.55)),
    "M_isd": ((91.7, 27.66), (91.8, 27.87), (94.5, 28.77), (96.5, 31.31), (96.6, 31.39), (90.8, 27.57)),
    "M*_isd": ((92.4, 27.76), (92.6, 27.96), (95.2, 28.79), (97.2, 31.44), (97.2, 31.50), (91.7, 27.81)),
}
# Table 2: Dice (%) per part (TABLE2_PARTS order, then the average) for M_s, M_is, M_isd, M*_isd.
PAPER_TABLE2: dict[str, tuple[float, ...]] = {
    "M_s": (93.7, 74.2, 72.3, 70.7, 70.0, 90.5, 68.1, 64.2, 81.4, 76.1),
    "M_is": (94.1, 74.6, 72.8, 71.9, 70.3, 90.9, 67.2, 66.5, 82.1, 76.7),
    "M_isd": (94.2, 75.0, 73.8, 72.2, 71.2, 90.9, 68.3, 66.8, 82.8, 77.2),
    "M*_isd": (94.1, 75.2, 73.5, 72.7, 71.2, 91.0, 67.9, 66.7, 82.4, 77.2),
}
# Table 3: localisation error (px at 128) per point (LANDMARK_NAMES order, then the average).
PAPER_TABLE3: dict[str, tuple[float, ...]] = {
    "M_d": (2.12, 2.29, 2.53, 2.39, 2.57, 2.38),
    "M_id": (1.73, 1.71, 2.15, 1.80, 1.86, 1.85),
    "M_isd": (1.61, 1.59, 1.92, 1.74, 1.77, 1.73),
    "M*_isd": (1.60, 1.62, 1.93, 1.73, 1.72, 1.72),
}
PAPER_VARIANTS = {"m_i": "M_i", "m_s": "M_s", "m_d": "M_d", "m_is": "M_is", "m_id": "M_id", "m_isd": "M_isd",
                  "m_isd_star": "M*_isd", "ce": "CE", "gfc": "GFC", "sii": "SII"}
TABLE2_TITLES = {
    "skin": "Face", "left_brow": "Left eyebrow", "right_brow": "Right eyebrow", "left_eye": "Left eye",
    "right_eye": "Right eye", "nose": "Nose", "upper_lip": "Upper lip", "inner_mouth": "Teeth (inner mouth)",
    "lower_lip": "Lower lip",
}
TABLE3_TITLES = dict(zip(LANDMARK_NAMES, ("Left eye", "Right eye", "Nose", "Left mouth", "Right mouth")))
# Table -> (row keys in the paper's order, their titles, the paper's rows, decimals); an "average" row ends each.
PAPER_LAYOUT: dict[str, tuple[tuple[str, ...], dict[str, str], dict[str, tuple[float, ...]], int]] = {
    "table2": (TABLE2_PARTS, TABLE2_TITLES, PAPER_TABLE2, 1),
    "table3": (LANDMARK_NAMES, TABLE3_TITLES, PAPER_TABLE3, 2),
}


def paper_layout_rows(table: str, columns: list[Callable[[str], str]]) -> list[list[str]]:
    """Rows of ``table`` ("table2": parts, "table3": points) in the paper's layout: per row key
    and the average, its title | ``column(key)`` for each of ours | the paper's published values."""
    keys, titles, paper, decimals = PAPER_LAYOUT[table]
    return [[titles.get(key, "**Average**")] + [column(key) for column in columns]
            + [f"{values[k]:.{decimals}f}" for values in paper.values()]
            for k, key in enumerate((*keys, "average"))]
