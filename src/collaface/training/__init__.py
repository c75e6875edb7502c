"""Training: the D/G loop, checkpoints (resume and export), torchrun distribution."""
