"""Dataset sources: each turns one on-disk layout into square face crops (RawSample).

* ``celeba``: the official CelebA release layout (aligned or in-the-wild images).
* ``celebamask_hq``: the CelebAMask-HQ release layout (per-part mask PNGs).
* ``prepared``: the output of ``collaface prepare`` (any folder of face photos).
"""

from collaface.data.sources.base import SPLITS, ConcatSource, FaceSource, RawSample, open_source, open_sources

__all__ = ["SPLITS", "ConcatSource", "FaceSource", "RawSample", "open_source", "open_sources"]
