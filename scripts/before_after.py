"""Before/after grid of photo completions: one row per hole (named regions and a free-form
stroke mask inside the face), columns input-with-hole | completion | original, zoomed to the
largest face. Used for the README/model-card pictures (on the public-domain example photo) and to
look at completions of any photo locally.

    python scripts/before_after.py examples/astronaut.jpg --out docs/images/astronaut_before_after.jpg
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from collaface.data import io
from collaface.data.masks import freeform_mask
from collaface.data.visualize import contact_sheet
from collaface.inference.engine import FaceCompleter

HOLE_COLOUR = np.array([255, 0, 255], np.uint8)


def face_window(image: np.ndarray, box, side: int) -> np.ndarray:
    """The face's square crop (clipped to the photo), resized to side x side."""
    height, width = image.shape[:2]
    x0, y0 = max(int(box.x0), 0), max(int(box.y0), 0)
    x1, y1 = min(int(box.x0 + box.side), width), min(int(box.y0 + box.side), height)
    return np.asarray(Image.fromarray(image[y0:y1, x0:x1]).resize((side, side), Image.LANCZOS))


def freeform_in_face(shape: tuple[int, int], box, seed: int, area: tuple[float, float]) -> np.ndarray:
    """Free-form strokes over the central half of the face crop, as a photo-sized bool hole."""
    side = int(box.side) // 2
    strokes = freeform_mask(side, np.random.default_rng(seed), area) > 0
    hole = np.zeros(shape, bool)
    x0, y0 = int(box.x0 + box.side / 4), int(box.y0 + box.side / 4)
    region = hole[max(y0, 0):y0 + side, max(x0, 0):x0 + side]
    region |= strokes[:region.shape[0], :region.shape[1]]
    return hole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo")
    parser.add_argument("--model", help="model folder/run/checkpoint (default: the shipped weights)")
    parser.add_argument("--regions", nargs="+", default=["eyes", "mouth", "left-face"])
    parser.add_argument("--freeform-seeds", nargs="*", type=int, default=[3])
    parser.add_argument("--side", type=int, default=256, help="side of each zoomed tile")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    image = io.load_rgb(args.photo)
    tiles = []
    with FaceCompleter(args.model, device="cpu") as completer:
        box = completer.find_faces(image)[0].box
        holes = []
        for region in args.regions:
            result = completer.complete(image, region=region)
            holes.append((result.hole, result))
        for seed in args.freeform_seeds:
            hole = freeform_in_face(image.shape[:2], box, seed, (0.15, 0.3))
            holes.append((hole, completer.complete(image, hole=hole)))
    for hole, result in holes:
        shown = np.where(hole[..., None], HOLE_COLOUR, image)
        tiles += [face_window(t, box, args.side) for t in (shown, result.image, image)]
    sheet = contact_sheet(tiles, columns=3)
    Image.fromarray(sheet).save(args.out, quality=90)
    print(f"{len(holes)} rows (input | completion | original): {args.out}")


if __name__ == "__main__":
    main()
