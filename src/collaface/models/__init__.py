"""collaGAN networks: U-Net generator with task heads, conditional PatchGAN discriminators."""

from collaface.models.build import (
    GanModel,
    build_generator,
    build_model,
    count_macs,
    count_parameters,
    example_batch,
    init_weights,
    model_costs,
)
from collaface.models.discriminator import PatchDiscriminator, patch_grid_size
from collaface.models.generator import UNetGenerator, conditioning_input

__all__ = [
    "GanModel",
    "PatchDiscriminator",
    "UNetGenerator",
    "build_generator",
    "build_model",
    "conditioning_input",
    "count_macs",
    "count_parameters",
    "example_batch",
    "init_weights",
    "model_costs",
    "patch_grid_size",
]
