"""Data pipeline: decoding, label space, sources, annotation, augmentation, targets, masks."""
