"""collaGAN losses (paper equations 1-6): per-task adversarial and reconstruction terms.

Both entry points return ``(total, metrics)``: ``total`` is the weighted scalar to backpropagate,
``metrics`` maps names ("g/adv_i", "g/rec_s", "d/real_d", ...) to detached 0-dim tensors of the
*unweighted* terms, plus "g/total" / "d/total". Weights come from ``config.resolved_lambdas``
(the paper's table for the number of tasks, then explicit overrides); zero-weight terms are
skipped, and a task whose adversarial weight is 0 has its discriminator neither used nor trained.

Batch keys: ``masked`` (B,3,S,S) generator input image (hole filled), ``mask`` (B,1,S,S) with
1 = hole, ``image`` (B,3,S,S) in [-1,1], ``parsing_onehot`` (B,11,S,S) in {-1,1}, ``heatmaps``
(B,5,S,S) in [-1,1].

GAN loss: the paper's log D objective as binary cross-entropy on logits. The generator uses the
standard non-saturating form, maximising log D(x, G(x)) (BCE against "real"), rather than
minimising log(1 - D(x, G(x))), which gives vanishing gradients while D wins.

Inpainting-concentrated scheme (``cfg.loss.concentrated``, section 3.3): D_i judges
``composite(G_i, y_i, mask)`` (from ``contracts``), the output with the known pixels replaced by
the ground truth (equation 5 writes ``x * M`` with M = 1 on known pixels, where x equals y_i), in
both the generator and the discriminator phase; and the image L1 (equation 6) is taken over the
hole only, normalised by the number of hole values so lambda_rec_i keeps the per-pixel scale of
the plain L1.

Beyond the paper (the default recipe): ``loss.gan = "hinge"``, component discriminators on the
eyes and mouth of the composite (``model.components``, ``loss.adv_components``; crops placed from
the batch's ``landmarks`` (B,5,2)), pix2pixHD feature matching (``loss.feature_matching``),
DiffAugment on every discriminator input (the ``augment`` argument) and, optionally, the image
L1 on low-passed images (``loss.rec_i_lowpass``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from collaface.config import Config, resolved_lambdas
from collaface.contracts import TARGET_KEYS, composite
from collaface.models.components import component_crops
from collaface.models.discriminator import Augment

MIN_COMPONENT_HOLE = 0.1  # hole fraction of a component crop from which its discriminator judges it

Batch = dict[str, torch.Tensor]    # keys above
Metrics = dict[str, torch.Tensor]  # name -> detached 0-dim tensor


def gan_loss(logits: torch.Tensor, real: bool, kind: str = "bce", generator: bool = False,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """GAN loss of logits (B,...) (a patch map or one per image) against all-real or all-fake, averaged.

    kind "bce": BCE-with-logits (the paper's log D; the generator's non-saturating form is the
    "real" label). kind "hinge": D minimises relu(1 - D(real)) and relu(1 + D(fake)); G, passed as
    ``generator=True``, minimises -D(fake). ``weights`` (B,) averages per sample with those weights.
    """
    if kind == "hinge":
        per_value = -logits if generator else F.relu(1 - logits if real else 1 + logits)
    else:
        labels = torch.ones_like(logits) if real else torch.zeros_like(logits)
        per_value = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return _weighted_mean(per_value.reshape(len(per_value), -1).mean(1), weights)


def _weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B,) values, weighted by (B,) ``weights`` (0 when they are all 0)."""
    if weights is None:
        return per_sample.mean()
    return (per_sample * weights).sum() / weights.sum().clamp_min(1e-8)


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor],
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """pix2pixHD's feature-matching term: mean over D's hidden layers (all outputs but the last,
    the logits) of the L1 between the activations of the real (detached) and generated inputs."""
    terms = [_weighted_mean((f - r.detach()).abs().flatten(1).mean(1), weights) for r, f in zip(real[:-1], fake[:-1])]
    return torch.stack(terms).mean()


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over the hole values of the whole batch (sum of the absolute errors
    inside the hole / (hole pixels x channels)); 0 when there is no hole. mask: (B,1,H,W), 1 = hole."""
    hole_values = mask.sum() * pred.shape[1]
    return ((pred - target).abs() * mask).sum() / hole_values.clamp_min(1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B,C,H,W) with standard deviation ``sigma`` px (kernel radius
    ceil(3 sigma), reflected borders); differentiable."""
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(x.shape[1], 1, 1, 1)  # (C,1,1,K)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel, groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.transpose(-1, -2), groups=x.shape[1])


def _reconstruction(task: str, pred: torch.Tensor, batch: Batch, cfg: Config) -> torch.Tensor:
    """L1 for the image (over the hole only when concentrated), L2 for parsing and heatmaps.

    With ``loss.rec_i_lowpass`` = sigma > 0 the image L1 compares Gaussian-blurred images (under
    the concentrated scheme the composite, so that the blur mixes only real known pixels into the
    hole's border): detail finer than sigma is judged by the discriminators alone."""
    target = batch[TARGET_KEYS[task]]
    if task != "i":
        return F.mse_loss(pred, target)
    if sigma := cfg.loss.rec_i_lowpass:
        if cfg.loss.concentrated:
            pred = composite(pred, target, batch["mask"])
        pred, target = gaussian_blur(pred, sigma), gaussian_blur(target, sigma)
    return masked_l1(pred, target, batch["mask"]) if cfg.loss.concentrated else F.l1_loss(pred, target)


def judged_sample(task: str, pred: torch.Tensor, batch: Batch, cfg: Config) -> torch.Tensor:
    """What D_t sees as the generated y_t: the raw output, or for the image under the
    concentrated scheme the output pasted into the ground truth's known pixels."""
    if task == "i" and cfg.loss.concentrated:
        return composite(pred, batch["image"], batch["mask"])
    return pred


def _check_tasks(outputs: dict[str, torch.Tensor], cfg: Config) -> None:
    assert list(outputs) == cfg.model.tasks, f"outputs {list(outputs)} != model.tasks {cfg.model.tasks}"


def judge_pair(disc: nn.Module, condition: tuple[torch.Tensor, ...], real: torch.Tensor, fake: torch.Tensor,
               augment: Augment | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``disc``'s outputs (hidden activations, then logits) for the real and the generated sample
    of every face, from one forward of both stacked: the same weights (a spectrally normalised D
    updates its estimate at every training forward) and the same augmentation per face."""
    outputs = disc(*(torch.cat([c, c]) for c in condition), torch.cat([real, fake]), augment=augment, repeats=2)
    halves = [o.chunk(2) for o in outputs]
    return [h[0] for h in halves], [h[1] for h in halves]


def component_inputs(name: str, sample: torch.Tensor, batch: Batch,
                     size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mask crop, image crop, per-sample weight) of component ``name``, ``size`` pixels square,
    for the judged image ``sample`` (B,3,S,S). A sample counts (weight 1) when its landmarks are
    known and the hole covers at least MIN_COMPONENT_HOLE of the crop: elsewhere real and generated
    crops are equal."""
    landmarks = batch["landmarks"]
    mask_crop = component_crops(batch["mask"], landmarks, name, size)
    known = torch.isfinite(landmarks).flatten(1).all(1)
    weights = (known & (mask_crop.flatten(1).mean(1) >= MIN_COMPONENT_HOLE)).float()
    return mask_crop, component_crops(sample, landmarks, name, size), weights


def generator_loss(
    outputs: dict[str, torch.Tensor],
    batch: Batch,
    discriminators: nn.ModuleDict,
    cfg: Config,
    adversarial: bool = True,
    augment: Augment | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """sum_t lambda_adv_t * L_G(D_t(x, fake_t)) + lambda_rec_t * L_rec_t, plus, when adversarial,
    ``loss.adv_components`` x the component discriminators' terms and ``loss.feature_matching``
    x the feature-matching L1 of every discriminator in use.

    outputs: generator outputs {task: (B,C_t,S,S)} (not detached). ``adversarial=False`` keeps
    the reconstruction terms only (warm-up). ``augment``: DiffAugment on every D input. Freezing
    the discriminators' parameters during this backward is the training loop's job."""
    _check_tasks(outputs, cfg)
    weights = resolved_lambdas(cfg)
    loss_cfg = cfg.loss
    metrics: Metrics = {}
    total = batch["image"].new_zeros(())
    matching: list[torch.Tensor] = []
    for task, pred in outputs.items():
        terms = {}
        if adversarial and weights[f"adv_{task}"]:
            fake = judged_sample(task, pred, batch, cfg)
            condition = (batch["masked"], batch["mask"])
            if loss_cfg.feature_matching:
                real = batch[TARGET_KEYS[task]]
                real_out, fake_out = judge_pair(discriminators[task], condition, real, fake, augment)
                matching.append(feature_matching(real_out, fake_out))
            else:
                fake_out = discriminators[task](*condition, fake, augment=augment)
            terms[f"adv_{task}"] = gan_loss(fake_out[-1], True, loss_cfg.gan, generator=True)
        if weights[f"rec_{task}"]:
            terms[f"rec_{task}"] = _reconstruction(task, pred, batch, cfg)
        for name, value in terms.items():
            total = total + weights[name] * value
            metrics[f"g/{name}"] = value.detach()
    if adversarial and loss_cfg.adv_components:
        completed = composite(outputs["i"], batch["image"], batch["mask"])
        adv_terms = []
        for name in cfg.model.components:
            mask_crop, fake_crop, w = component_inputs(name, completed, batch, cfg.model.component_size)
            if loss_cfg.feature_matching:
                real_crop = component_crops(batch["image"], batch["landmarks"], name, cfg.model.component_size)
                real_out, fake_out = judge_pair(discriminators[name], (mask_crop,), real_crop, fake_crop, augment)
                matching.append(feature_matching(real_out, fake_out, w))
            else:
                fake_out = discriminators[name](mask_crop, fake_crop, augment=augment)
            adv_terms.append(gan_loss(fake_out[-1], True, loss_cfg.gan, generator=True, weights=w))
        value = torch.stack(adv_terms).mean()
        total = total + loss_cfg.adv_components * value
        metrics["g/adv_components"] = value.detach()
    if matching:
        value = torch.stack(matching).mean()
        total = total + loss_cfg.feature_matching * value
        metrics["g/feature_matching"] = value.detach()
    metrics["g/total"] = total.detach()
    return total, metrics


def discriminator_loss(
    outputs: dict[str, torch.Tensor],
    batch: Batch,
    discriminators: nn.ModuleDict,
    cfg: Config,
    augment: Augment | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """sum_t 0.5 * (L_D(D_t(x, y_t), real) + L_D(D_t(x, fake_t), fake)) over tasks with a nonzero
    adversarial weight (lambda_adv weighs the generator's terms only; the 0.5 is pix2pix's), plus
    the same for every component discriminator when ``loss.adv_components`` is on. Outputs are
    detached here, so no gradient reaches the generator. ``augment``: DiffAugment on every D input."""
    _check_tasks(outputs, cfg)
    weights = resolved_lambdas(cfg)
    kind = cfg.loss.gan
    metrics: Metrics = {}
    total = batch["image"].new_zeros(())
    judged = []  # (name, real logits, fake logits, per-sample weights)
    for task, pred in outputs.items():
        if not weights[f"adv_{task}"]:
            continue
        disc, condition = discriminators[task], (batch["masked"], batch["mask"])
        fake = judged_sample(task, pred.detach(), batch, cfg)
        real_logits = disc(*condition, batch[TARGET_KEYS[task]], augment=augment)[-1]
        judged.append((task, real_logits, disc(*condition, fake, augment=augment)[-1], None))
    if cfg.loss.adv_components:
        completed = composite(outputs["i"].detach(), batch["image"], batch["mask"])
        for name in cfg.model.components:
            mask_crop, fake_crop, w = component_inputs(name, completed, batch, cfg.model.component_size)
            real_crop = component_crops(batch["image"], batch["landmarks"], name, cfg.model.component_size)
            disc = discriminators[name]
            real_logits = disc(mask_crop, real_crop, augment=augment)[-1]
            judged.append((name, real_logits, disc(mask_crop, fake_crop, augment=augment)[-1], w))
    for name, real_logits, fake_logits, w in judged:
        real_loss = gan_loss(real_logits, True, kind, weights=w)
        fake_loss = gan_loss(fake_logits, False, kind, weights=w)
        total = total + 0.5 * (real_loss + fake_loss)
        metrics[f"d/real_{name}"] = real_loss.detach()
        metrics[f"d/fake_{name}"] = fake_loss.detach()
    metrics["d/total"] = total.detach()
    return total, metrics
