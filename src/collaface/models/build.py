"""``build_model(cfg)``: the only way any command makes a model (collaGAN or a baseline, by
``cfg.model.arch``); plus size and cost counts."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from collaface.blending import poisson_blend
from collaface.config import Config
from collaface.contracts import NUM_CLASSES, NUM_LANDMARKS, TARGET_KEYS, TASK_CHANNELS, composite
from collaface.models.ce import ContextEncoder
from collaface.models.components import ComponentDiscriminator
from collaface.models.dcgan import DCGANDiscriminator
from collaface.models.discriminator import PatchDiscriminator
from collaface.models.generator import UNetGenerator
from collaface.models.gfc import GFCGenerator
from collaface.models.sii import SIICompleter, SIISearch

INIT_STD = 0.02
# left eye, right eye, nose, mouth corners of a typical face in a 128-px crop (x, y)
TYPICAL_LANDMARKS = torch.tensor([[44.0, 52.0], [84.0, 52.0], [64.0, 72.0], [48.0, 92.0], [80.0, 92.0]])


class GanModel(nn.Module):
    """The generator and the networks trained beside it: for collaGAN one conditional PatchGAN
    per task that is on; for the baselines their discriminators (and GFC's parsing network).

    Attributes:
        generator: the completion network, ``generator(masked, mask) -> {task: output}``
            (UNetGenerator, ContextEncoder, GFCGenerator or SIICompleter); ``model(masked, mask)`` calls it.
        discriminators: nn.ModuleDict; collaGAN: task -> PatchDiscriminator in i, s, d order,
            then component -> ComponentDiscriminator for ``model.components``;
            CE: {"i"}; GFC: {"global", "local", "parser"}; SII: {"i": the completer's netD}.
    """

    def __init__(self, generator: nn.Module, discriminators: dict[str, nn.Module]):
        super().__init__()
        self.generator = generator
        self.discriminators = nn.ModuleDict(discriminators)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Generator outputs {task: (B,C_t,S,S)}; see UNetGenerator.forward."""
        return self.generator(masked, mask)


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """DCGAN/pix2pix init: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0
    (a spectrally normalised conv gets the init on its raw weight)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            weight = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            nn.init.normal_(weight, 0.0, INIT_STD, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, INIT_STD, generator=generator)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _init_rng(cfg: Config) -> torch.Generator:
    return torch.Generator().manual_seed(cfg.train.seed)


def _generator(cfg: Config) -> nn.Module:
    m, size = cfg.model, cfg.data.image_size
    if m.arch == "ce":
        return ContextEncoder(size, m.ngf)
    if m.arch == "gfc":
        return GFCGenerator(size, m.ngf)
    if m.arch == "sii":
        b = cfg.baseline
        search = SIISearch(b.sii_z_dim, b.sii_iterations, b.sii_lr, b.sii_prior, b.sii_window, b.sii_seed)
        return SIICompleter(size, m.ngf, m.ndf, search, poisson_blend if b.sii_blend else None)
    return UNetGenerator(size, m.tasks, ngf=m.ngf, mask_channel=m.mask_channel, upsample=m.upsample,
                         mirror_input=m.mirror_input)


def _companions(cfg: Config, generator: nn.Module) -> dict[str, nn.Module]:
    """The networks trained beside ``generator`` (see GanModel.discriminators)."""
    m, size = cfg.model, cfg.data.image_size
    if m.arch == "ce":
        return {"i": DCGANDiscriminator(size, m.ndf)}
    if m.arch == "gfc":
        return {"global": DCGANDiscriminator(size, m.ndf), "local": DCGANDiscriminator(size // 2, m.ndf),
                "parser": UNetGenerator(size, ["s"], ngf=m.ngf)}
    if m.arch == "sii":
        return {"i": generator.netD}
    discriminators: dict[str, nn.Module] = {
        t: PatchDiscriminator(TASK_CHANNELS[t], ndf=m.ndf, mask_channel=m.mask_channel, spectral_norm=m.spectral_norm)
        for t in m.tasks
    }
    discriminators.update({c: ComponentDiscriminator(m.ndf, m.spectral_norm) for c in m.components})
    return discriminators


def build_generator(cfg: Config) -> nn.Module:
    """The generator alone (inference), initialised from ``cfg.train.seed`` like build_model's."""
    generator = _generator(cfg)
    init_weights(generator, _init_rng(cfg))
    return generator


def build_model(cfg: Config) -> GanModel:
    """Generator + the networks trained beside it (collaGAN: one discriminator per task in
    ``cfg.model.tasks``); weights initialised deterministically from ``cfg.train.seed``
    (generator first, then the others in order, e.g. D_i, D_s, D_d)."""
    generator = _generator(cfg)
    model = GanModel(generator, _companions(cfg, generator))
    init_weights(model, _init_rng(cfg))
    return model


def example_batch(
    cfg: Config, batch_size: int, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """A random batch with the keys, shapes and ranges the model and losses expect (for tests,
    cost counts and benchmarks): masked/image (B,3,S,S) in [-1,1], mask (B,1,S,S) in {0,1} with
    1 = hole, parsing_onehot (B,11,S,S) in {-1,1}, heatmaps (B,5,S,S) in [-1,1], landmarks (B,5,2)
    jittered around a typical face's points."""
    size, g = cfg.data.image_size, generator
    image = torch.rand(batch_size, 3, size, size, generator=g) * 2 - 1
    mask = (torch.rand(batch_size, 1, size, size, generator=g) < 0.5).float()
    noise = torch.rand(batch_size, 3, size, size, generator=g) * 2 - 1
    labels = torch.randint(NUM_CLASSES, (batch_size, size, size), generator=g)
    onehot = nn.functional.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).float() * 2 - 1
    return {
        "masked": composite(noise, image, mask),
        "mask": mask,
        "image": image,
        "parsing_onehot": onehot,
        "heatmaps": torch.rand(batch_size, NUM_LANDMARKS, size, size, generator=g) * 2 - 1,
        "landmarks": (TYPICAL_LANDMARKS + torch.rand(batch_size, NUM_LANDMARKS, 2, generator=g) * 6 - 3) * size / 128,
    }


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of the Conv2d/ConvTranspose2d layers in one forward on ``inputs``,
    divided by the batch size (MACs per image; FLOPs ~ 2 x MACs). BatchNorm and activations
    are left out (under 1% here)."""
    total = 0

    def hook(layer: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kernel = layer.weight[0].numel()  # (C_in or, for ConvT, C_out) / groups * kh * kw
        if isinstance(layer, nn.ConvTranspose2d):
            total += args[0].numel() * kernel  # every input element is spread over a kernel
        else:
            total += out.numel() * kernel

    convs = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    handles = [m.register_forward_hook(hook) for m in convs]
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(*inputs)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return total // inputs[0].shape[0]


def model_costs(model: GanModel, cfg: Config) -> dict[str, dict[str, int]]:
    """{"generator" | "D_<name>": {"params": int, "macs": int}} for the generator and every
    network beside it (D_i, D_s, D_d; baselines: D_global, D_local, D_parser), MACs per 1 image.
    SII's generator is its DCGAN G (z -> image); its D is counted once, as D_i."""
    batch = example_batch(cfg, 1, torch.Generator().manual_seed(0))
    image, mask = batch["masked"], batch["mask"]
    if cfg.model.arch == "sii":
        generator, inputs = model.generator.netG, (torch.zeros(1, cfg.baseline.sii_z_dim),)
    else:
        generator, inputs = model.generator, (image, mask)
    costs = {"generator": {"params": count_parameters(generator), "macs": count_macs(generator, *inputs)}}
    for name, net in model.discriminators.items():
        if isinstance(net, PatchDiscriminator):
            inputs = (image, mask, batch[TARGET_KEYS[name]])
        elif isinstance(net, ComponentDiscriminator):
            side = cfg.model.component_size
            inputs = (torch.zeros(1, 1, side, side), torch.zeros(1, 3, side, side))
        elif isinstance(net, DCGANDiscriminator):
            inputs = (nn.functional.interpolate(image, size=net.image_size),)
        else:
            inputs = (image, mask)
        costs[f"D_{name}"] = {"params": count_parameters(net), "macs": count_macs(net, *inputs)}
    return costs
