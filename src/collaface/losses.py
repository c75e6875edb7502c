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
``composite(G_i, y_i, mask)`` (from ``data.masks``), the output with the known pixels replaced by
the ground truth (equation 5 writes ``x * M`` with M = 1 on known pixels, where x equals y_i), in
both the generator and the discriminator phase; and the image L1 (equation 6) is taken over the
hole only, normalised by the number of hole values so lambda_rec_i keeps the per-pixel scale of
the plain L1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collaface.config import Config, resolved_lambdas
from collaface.data.masks import composite
from collaface.models.generator import TARGET_KEYS

Batch = dict[str, torch.Tensor]    # keys above
Metrics = dict[str, torch.Tensor]  # name -> detached 0-dim tensor


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE-with-logits of a patch logit map against all-real (1) or all-fake (0), averaged."""
    labels = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, labels)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over the hole values of the whole batch (sum of the absolute errors
    inside the hole / (hole pixels x channels)); 0 when there is no hole. mask: (B,1,H,W), 1 = hole."""
    hole_values = mask.sum() * pred.shape[1]
    return ((pred - target).abs() * mask).sum() / hole_values.clamp_min(1)


def _reconstruction(task: str, pred: torch.Tensor, batch: Batch, cfg: Config) -> torch.Tensor:
    """L1 for the image (over the hole only when concentrated), L2 for parsing and heatmaps."""
    target = batch[TARGET_KEYS[task]]
    if task != "i":
        return F.mse_loss(pred, target)
    if cfg.loss.concentrated:
        return masked_l1(pred, target, batch["mask"])
    return F.l1_loss(pred, target)


def judged_sample(task: str, pred: torch.Tensor, batch: Batch, cfg: Config) -> torch.Tensor:
    """What D_t sees as the generated y_t: the raw output, or for the image under the
    concentrated scheme the output pasted into the ground truth's known pixels."""
    if task == "i" and cfg.loss.concentrated:
        return composite(pred, batch["image"], batch["mask"])
    return pred


def _check_tasks(outputs: dict[str, torch.Tensor], cfg: Config) -> None:
    assert list(outputs) == cfg.model.tasks, f"outputs {list(outputs)} != model.tasks {cfg.model.tasks}"


def generator_loss(
    outputs: dict[str, torch.Tensor],
    batch: Batch,
    discriminators: nn.ModuleDict,
    cfg: Config,
    adversarial: bool = True,
) -> tuple[torch.Tensor, Metrics]:
    """sum_t lambda_adv_t * BCE(D_t(x, fake_t), real) + lambda_rec_t * L_rec_t.

    outputs: generator outputs {task: (B,C_t,S,S)} (not detached). ``adversarial=False`` keeps
    the reconstruction terms only (warm-up). Freezing the discriminators' parameters during this
    backward is the training loop's job."""
    _check_tasks(outputs, cfg)
    weights = resolved_lambdas(cfg)
    metrics: Metrics = {}
    total = batch["image"].new_zeros(())
    for task, pred in outputs.items():
        terms = {}
        if adversarial and weights[f"adv_{task}"]:
            fake = judged_sample(task, pred, batch, cfg)
            logits = discriminators[task](batch["masked"], batch["mask"], fake)
            terms[f"adv_{task}"] = gan_loss(logits, real=True)
        if weights[f"rec_{task}"]:
            terms[f"rec_{task}"] = _reconstruction(task, pred, batch, cfg)
        for name, value in terms.items():
            total = total + weights[name] * value
            metrics[f"g/{name}"] = value.detach()
    metrics["g/total"] = total.detach()
    return total, metrics


def discriminator_loss(
    outputs: dict[str, torch.Tensor],
    batch: Batch,
    discriminators: nn.ModuleDict,
    cfg: Config,
) -> tuple[torch.Tensor, Metrics]:
    """sum_t 0.5 * (BCE(D_t(x, y_t), real) + BCE(D_t(x, fake_t), fake)), over tasks with a
    nonzero adversarial weight (lambda_adv weighs the generator's terms only; the 0.5 is
    pix2pix's). Outputs are detached here, so no gradient reaches the generator."""
    _check_tasks(outputs, cfg)
    weights = resolved_lambdas(cfg)
    metrics: Metrics = {}
    total = batch["image"].new_zeros(())
    for task, pred in outputs.items():
        if not weights[f"adv_{task}"]:
            continue
        disc = discriminators[task]
        fake = judged_sample(task, pred.detach(), batch, cfg)
        real_loss = gan_loss(disc(batch["masked"], batch["mask"], batch[TARGET_KEYS[task]]), real=True)
        fake_loss = gan_loss(disc(batch["masked"], batch["mask"], fake), real=False)
        total = total + 0.5 * (real_loss + fake_loss)
        metrics[f"d/real_{task}"] = real_loss.detach()
        metrics[f"d/fake_{task}"] = fake_loss.detach()
    metrics["d/total"] = total.detach()
    return total, metrics
