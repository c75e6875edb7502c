"""collaface: face completion with collaborative adversarial learning (collaGAN)."""

__version__ = "0.1.0"
