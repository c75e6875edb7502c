"""One training step as explicit phases: generator forward, D phase, G phase (collaGAN here,
the baselines in ``training.baselines``; both through :func:`collaface.training.update.gan_update`)."""

from __future__ import annotations

import torch

from collaface import losses
from collaface.config import Config
from collaface.data.targets import parsing_to_onehot
from collaface.models.build import GanModel
from collaface.models.diffaugment import diff_augment
from collaface.training.baselines import baseline_step
from collaface.training.distributed import DistInfo
from collaface.training.speed import SpeedSettings
from collaface.training.update import gan_update

MODEL_INPUT_KEYS = ("image", "mask", "masked", "parsing", "heatmaps", "landmarks")


def make_optimizers(model: GanModel, cfg: Config) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and one Adam over all networks trained beside it (lr, betas from cfg.train;
    those networks at ``train.d_lr_ratio`` x lr, CE's D also x ``baseline.ce_d_lr_ratio``).
    Parameters the generator shares with them (SII's D, used by its z search) belong to the
    second optimiser only."""
    betas = (cfg.train.beta1, cfg.train.beta2)
    others = list(model.discriminators.parameters())
    shared = {id(p) for p in others}
    g_lr, d_lr = base_learning_rates(cfg)
    opt_g = torch.optim.Adam([p for p in model.generator.parameters() if id(p) not in shared],
                             lr=g_lr, betas=betas)
    opt_d = torch.optim.Adam(others, lr=d_lr, betas=betas)
    return opt_g, opt_d


def base_learning_rates(cfg: Config) -> tuple[float, float]:
    """(generator lr, lr of the networks trained beside it) before any decay."""
    ratio = cfg.train.d_lr_ratio * (cfg.baseline.ce_d_lr_ratio if cfg.model.arch == "ce" else 1.0)
    return cfg.train.lr, cfg.train.lr * ratio


def lr_scale(cfg: Config, train_seconds: float) -> float:
    """Factor on the base learning rates after ``train_seconds`` of training: 1, then falling
    linearly to 0 over the last ``train.lr_decay_minutes`` of the ``train.max_minutes`` budget
    (a schedule in wall-clock time, so recipes compared at equal time all end their decay together)."""
    decay_s = cfg.train.lr_decay_minutes * 60
    if not decay_s:
        return 1.0
    remaining = cfg.train.max_minutes * 60 - train_seconds
    return min(1.0, max(0.0, remaining / decay_s))


def set_learning_rates(opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, cfg: Config, scale: float) -> None:
    """Set both optimisers' lr to ``scale`` x their base rate."""
    for opt, base in zip((opt_g, opt_d), base_learning_rates(cfg)):
        for group in opt.param_groups:
            group["lr"] = base * scale


def prepare_batch(batch: dict, cfg: Config, device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    """Move the model's inputs/targets to ``device`` and add the one-hot parsing target."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = {}
    for key in MODEL_INPUT_KEYS:
        value = batch[key].to(device, non_blocking=True)
        out[key] = value.contiguous(memory_format=fmt) if value.dim() == 4 else value
    if "s" in cfg.model.tasks or cfg.model.arch == "gfc":
        out["parsing_onehot"] = parsing_to_onehot(out["parsing"]).contiguous(memory_format=fmt)
    return out


def train_step(
    model: GanModel,
    batch: dict[str, torch.Tensor],
    cfg: Config,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    settings: SpeedSettings,
    info: DistInfo = DistInfo(),
    step: int | None = None,
) -> tuple[dict[str, torch.Tensor], bool]:
    """One training step of ``cfg.model.arch`` at global step ``step`` (None: past every warm-up
    and stage). collaGAN: D phase on detached fakes, then G phase with the discriminators frozen;
    before ``train.warmup_steps`` G trains on its reconstruction terms only and D waits; after it,
    the D phase runs on every ``train.d_every``-th step (the G phase, adversarial terms included,
    on every step).

    batch: output of :func:`prepare_batch`. Returns (metrics, applied): a non-finite D loss on
    any rank skips the whole step; a non-finite G loss skips the G update (D was updated).
    """
    if cfg.model.arch != "collagan":
        return baseline_step(model, batch, cfg, opt_g, opt_d, settings, info, step)
    adversarial = step is None or step >= cfg.train.warmup_steps
    d_phase = adversarial and (step is None or (step - cfg.train.warmup_steps) % cfg.train.d_every == 0)
    with settings.autocast(batch["image"].device):
        outputs = model.generator(batch["masked"], batch["mask"])
    outputs = {task: value.float() for task, value in outputs.items()}

    augment = diff_augment(cfg.train.d_augment)

    def d_loss():
        return losses.discriminator_loss(outputs, batch, model.discriminators, cfg, augment)

    def g_loss():
        return losses.generator_loss(outputs, batch, model.discriminators, cfg, adversarial, augment)

    return gan_update(model, opt_g, opt_d, settings, info, d_loss if d_phase else None, g_loss)
