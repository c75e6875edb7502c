"""Training steps of the re-implemented baselines (``model.arch`` ce | gfc | sii), each a pair of
loss closures for :func:`collaface.training.step.gan_update`.

- **CE** (Pathak et al. 2016): ce_rec * L2 over the hole + ce_adv * adversarial; the DCGAN D
  judges the completed image (known pixels pasted back).
- **GFC** (Li et al. 2017): stages by step: reconstruction (L2 over the image) only; from
  ``gfc_local_from`` + the local D on the square around the hole's box; from ``gfc_global_from``
  + the global D on the whole completed image and the parsing loss (L2 between the frozen
  parsing network's output on the completion and the true parsing). The parsing network trains
  on the real faces (L2 to the one-hot parsing, as collaGAN's parsing head) until
  ``gfc_global_from``, beside the generator, then stays frozen.
- **SII** (Yeh et al. 2017): a plain DCGAN on the real faces (masks unused); completion is the
  z search of :class:`collaface.models.sii.SIICompleter`.

Losses return ``(total, metrics)`` with the unweighted terms in metrics, as ``collaface.losses``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collaface.config import Config
from collaface.contracts import composite
from collaface.losses import gan_loss, masked_l1
from collaface.models.build import GanModel
from collaface.models.gfc import crop_boxes, hole_boxes
from collaface.training.distributed import DistInfo
from collaface.training.speed import SpeedSettings
from collaface.training.update import gan_update

Metrics = dict[str, torch.Tensor]


def masked_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hole values of the batch (mask (B,1,H,W), 1 = hole)."""
    return masked_l1((pred - target) ** 2, torch.zeros_like(pred), mask)


def real_fake_loss(disc, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D's (real, fake) BCE terms; ``fake`` must be detached by the caller."""
    return gan_loss(disc(real), real=True), gan_loss(disc(fake), real=False)


def _d_metrics(prefix: str, real: torch.Tensor, fake: torch.Tensor) -> Metrics:
    return {f"d/real_{prefix}": real.detach(), f"d/fake_{prefix}": fake.detach()}


def baseline_step(model: GanModel, batch: dict[str, torch.Tensor], cfg: Config, opt_g, opt_d,
                  settings: SpeedSettings, info: DistInfo, step: int | None) -> tuple[Metrics, bool]:
    """One step of ``cfg.model.arch`` at global step ``step`` (None: the final stage)."""
    arch = cfg.model.arch
    if arch == "sii":
        return _sii_step(model, batch, cfg, opt_g, opt_d, settings, info)
    with settings.autocast(batch["image"].device):
        output = model.generator(batch["masked"], batch["mask"])["i"]
    output = output.float()
    completed = composite(output, batch["image"], batch["mask"])
    if arch == "ce":
        return _ce_step(model, batch, cfg, opt_g, opt_d, settings, info, step, output, completed)
    return _gfc_step(model, batch, cfg, opt_g, opt_d, settings, info, step, output, completed)


def _ce_step(model, batch, cfg, opt_g, opt_d, settings, info, step, output, completed):
    b = cfg.baseline
    disc = model.discriminators["i"]
    adversarial = b.ce_adv > 0 and (step is None or step >= cfg.train.warmup_steps)

    def d_loss():
        real, fake = real_fake_loss(disc, batch["image"], completed.detach())
        return 0.5 * (real + fake), {**_d_metrics("i", real, fake), "d/total": (0.5 * (real + fake)).detach()}

    def g_loss():
        rec = masked_l2(output, batch["image"], batch["mask"])
        terms = {"rec_i": rec}
        if adversarial:
            terms["adv_i"] = gan_loss(disc(completed), real=True)
        total = b.ce_rec * rec + (b.ce_adv * terms["adv_i"] if adversarial else 0)
        return total, {**{f"g/{k}": v.detach() for k, v in terms.items()}, "g/total": total.detach()}

    return gan_update(model, opt_g, opt_d, settings, info, d_loss if adversarial else None, g_loss)


def gfc_stage(cfg: Config, step: int | None) -> tuple[bool, bool]:
    """(local D on, global D + parsing loss on) at global step ``step`` (None: final stage)."""
    b = cfg.baseline
    if step is None:
        return True, True
    return step >= b.gfc_local_from, step >= b.gfc_global_from


def _gfc_step(model, batch, cfg, opt_g, opt_d, settings, info, step, output, completed):
    b = cfg.baseline
    local_on, global_on = gfc_stage(cfg, step)
    d_local, d_global, parser = (model.discriminators[k] for k in ("local", "global", "parser"))
    parser.train(not global_on)  # frozen (BatchNorm statistics too) once its loss is on
    size = cfg.data.image_size
    boxes = hole_boxes(batch["mask"], size // 2)
    real_crops = crop_boxes(batch["image"], boxes, size // 2)
    fake_crops = crop_boxes(completed, boxes, size // 2)

    def d_loss():
        total = batch["image"].new_zeros(())
        metrics: Metrics = {}
        if not global_on:
            parse = F.mse_loss(parser(batch["image"], batch["mask"])["s"], batch["parsing_onehot"])
            total = total + parse
            metrics["d/parser"] = parse.detach()
        for name, on, disc, real, fake in (("local", local_on, d_local, real_crops, fake_crops),
                                           ("global", global_on, d_global, batch["image"], completed)):
            if on:
                real_term, fake_term = real_fake_loss(disc, real, fake.detach())
                total = total + 0.5 * (real_term + fake_term)
                metrics.update(_d_metrics(name, real_term, fake_term))
        metrics["d/total"] = total.detach()
        return total, metrics

    def g_loss():
        terms = {"rec_i": F.mse_loss(output, batch["image"])}
        weights = {"rec_i": b.gfc_rec}
        if local_on:
            terms["adv_local"], weights["adv_local"] = gan_loss(d_local(fake_crops), real=True), b.gfc_adv_local
        if global_on:
            terms["adv_global"], weights["adv_global"] = gan_loss(d_global(completed), real=True), b.gfc_adv_global
            parsed = parser(completed, batch["mask"])["s"]
            terms["parsing"], weights["parsing"] = F.mse_loss(parsed, batch["parsing_onehot"]), b.gfc_parsing
        total = sum(weights[k] * terms[k] for k in terms)
        return total, {**{f"g/{k}": v.detach() for k, v in terms.items()}, "g/total": total.detach()}

    return gan_update(model, opt_g, opt_d, settings, info, d_loss, g_loss)


def _sii_step(model, batch, cfg, opt_g, opt_d, settings, info):
    """DCGAN step: D on real faces vs G(z), z ~ U(-1, 1) (torch's RNG, saved in checkpoints)."""
    completer = model.generator
    real = batch["image"]
    z = torch.rand(real.shape[0], cfg.baseline.sii_z_dim, device=real.device) * 2 - 1
    with settings.autocast(real.device):
        fake = completer.netG(z).float()

    def d_loss():
        real_term, fake_term = real_fake_loss(completer.netD, real, fake.detach())
        total = 0.5 * (real_term + fake_term)
        return total, {**_d_metrics("i", real_term, fake_term), "d/total": total.detach()}

    def g_loss():
        adv = gan_loss(completer.netD(fake), real=True)
        return adv, {"g/adv_i": adv.detach(), "g/total": adv.detach()}

    return gan_update(model, opt_g, opt_d, settings, info, d_loss, g_loss)
