"""Typed configuration: dataclasses, YAML presets, dotted command-line overrides, validation.

A config is data only (no callables, no module paths). Presets live in ``collaface/configs``
(the repo's ``configs/`` links there); ``load_config("m_isd_star", ["train.batch_size=32"])``
returns a validated :class:`Config`. Unknown keys and wrong types are errors naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from collaface.contracts import TASKS, UPSAMPLES

PRESET_DIR = Path(__file__).parent / "configs"
TRAIN_MASK_KINDS = ("block", "pattern", "noise", "freeform", "region")


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key."""


@dataclass
class AugmentConfig:
    """Random geometric augmentation applied jointly to image, parsing and landmarks."""

    enabled: bool = True
    shift: float = 0.05          # max translation, fraction of the crop side
    scale: tuple[float, float] = (0.9, 1.1)
    rotation: float = 10.0       # max rotation, degrees
    flip: float = 0.5            # probability of a horizontal flip


@dataclass
class MaskConfig:
    """Training masks (1 = hole). ``kinds``/``weights``: the mix sampled per image."""

    kinds: list[str] = field(default_factory=lambda: ["block", "pattern", "noise"])
    weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    block_size: int = 64         # at 128 px; scaled with image_size
    pattern_missing: float = 0.25
    noise_missing: float = 0.8
    freeform_area: tuple[float, float] = (0.1, 0.5)
    region_jitter: float = 0.2   # "region" kind: face-region boxes scaled and shifted by up to this fraction


@dataclass
class DataConfig:
    source: str = "prepared"     # prepared | celeba | celebamask_hq
    root: str = ""               # dataset folder (the CLI's --data sets it)
    image_size: int = 128
    heatmap_sigma: float = 2.0   # Gaussian sigma of landmark heatmaps, pixels at image_size
    celeba_images: str = "aligned"  # aligned (img_align_celeba) | wild (img_celeba)
    annotation_cache: str = ""   # where annotator parsing for CelebA is cached ("" = ROOT/.collaface_cache)
    crop_cache: bool = True      # keep decoded, resized crops in memory as uint8
    num_workers: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)


@dataclass
class ModelConfig:
    arch: str = "collagan"       # collagan | ce | gfc | sii (the paper's baselines, image task only)
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    ngf: int = 64                # generator width (64 = paper)
    ndf: int = 64                # discriminator width
    mask_channel: bool = False   # also feed the hole mask to G (the paper does not)
    upsample: str = "transpose"  # G's decoder: transpose (paper: 4x4 stride-2) | resize (nearest x2 + 3x3 conv)
    mirror_input: bool = False   # also feed G the horizontally flipped input (the face's other half)
    spectral_norm: bool = False  # spectral normalisation on every discriminator conv (BatchNorm dropped)
    components: list[str] = field(default_factory=list)  # component discriminators: left_eye, right_eye, mouth
    component_size: int = 32     # side in pixels that every component crop is resampled to


@dataclass
class LossConfig:
    """Loss weights; ``None`` takes the paper's table for the number of tasks that are on."""

    concentrated: bool = False   # inpainting-concentrated scheme (the starred model)
    adv_i: float | None = None
    adv_s: float | None = None
    adv_d: float | None = None
    rec_i: float | None = None
    rec_s: float | None = None
    rec_d: float | None = None
    gan: str = "bce"             # bce (the paper's log D) | hinge
    adv_components: float = 0.0  # weight of the component discriminators' adversarial terms
    feature_matching: float = 0.0  # weight of the L1 between D features of real and completed (pix2pixHD)
    rec_i_lowpass: float = 0.0   # Gaussian sigma (px at data.image_size) applied to the completed and
                                 # real image before the image L1; 0 = plain L1. Leaves the finest detail
                                 # to the discriminators (frequency separation, Fritsche et al. 2019)


@dataclass
class BaselineConfig:
    """Objectives and schedules of the re-implemented baselines (model.arch ce | gfc | sii)."""

    # Context Encoders (Pathak et al. 2016): joint loss weights and D's learning-rate ratio.
    ce_rec: float = 0.999
    ce_adv: float = 0.001
    ce_d_lr_ratio: float = 0.1   # CE trains G with a 10x higher learning rate than D
    # Generative Face Completion (Li et al. 2017): stage starts in steps, loss weights.
    gfc_local_from: int = 3000   # reconstruction only before; + local D from here
    gfc_global_from: int = 6000  # + global D and the parsing loss from here (parser frozen)
    gfc_rec: float = 1.0
    gfc_adv_local: float = 0.003
    gfc_adv_global: float = 0.003
    gfc_parsing: float = 0.05
    # Semantic Image Inpainting (Yeh et al. 2017): z optimisation at completion time.
    sii_z_dim: int = 100
    sii_iterations: int = 1500
    sii_lr: float = 0.03
    sii_prior: float = 0.003     # lambda of the prior loss log(1 - D(G(z)))
    sii_window: int = 7          # importance-weighting window (pixels at 128 px)
    sii_blend: bool = True       # Poisson-blend G(z) into the hole
    sii_seed: int = 0            # z initialisation


ARCHS = ("collagan", "ce", "gfc", "sii")
COMPONENTS = ("left_eye", "right_eye", "mouth")  # component discriminators' regions
D_AUGMENTS = ("translation", "cutout")
GAN_LOSSES = ("bce", "hinge")


@dataclass
class TrainConfig:
    epochs: int = 20
    max_steps: int = 0           # 0 = no limit besides epochs
    max_minutes: float = 0.0     # training wall-clock budget summed over resumes (0 = none)
    warmup_steps: int = 0        # first steps train G on the reconstruction terms only (no D)
    lr_decay_minutes: float = 0.0  # lr falls linearly to 0 over the last minutes of max_minutes
    d_every: int = 1             # collaGAN: discriminators train on every k-th adversarial step
    batch_size: int = 16
    lr: float = 2e-4
    d_lr_ratio: float = 1.0      # discriminators' lr / generator's lr (TTUR, Heusel et al. 2017)
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    device: str = "auto"         # auto | cpu | cuda | cuda:N
    precision: str = "auto"      # auto | fp32 | bf16
    channels_last: str | bool = "auto"  # auto | true | false
    compile: bool = False
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    max_nonfinite: int = 10
    init_from: str = ""          # new run: start the generator from this exported model / run / checkpoint
    ema: float = 0.0             # decay of an exponential moving average of G's weights (0 = off); exported
    d_augment: list[str] = field(default_factory=list)  # DiffAugment on every D input: translation, cutout


@dataclass
class EvalConfig:
    seed: int = 0
    batch_size: int = 64
    bootstrap: int = 1000


@dataclass
class Config:
    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------- conversion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert a YAML value to the annotated type ``tp``; raise ConfigError naming key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def _from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]} (valid keys in {prefix.rstrip('.') or 'config'}: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples as lists) for YAML/JSON output."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(cfg))


def from_dict(data: dict) -> Config:
    """Build and validate a Config from a (possibly partial) nested dict."""
    cfg = _from_dict(Config, data)
    validate(cfg)
    return cfg


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.batch_size=32"`` -> (["train", "batch_size"], 32). Values are YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {key}: cannot parse value {raw!r} ({err})") from None
    return path, value


def _nest(path: list[str], value: Any) -> dict:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return out


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(preset: str) -> Path:
    """A preset name (``m_isd_star``) or a path to a YAML file."""
    candidate = Path(preset)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(list_presets())}")
    return path


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(preset: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults <- preset YAML <- dotted overrides; validated."""
    data: dict = {}
    if preset:
        path = preset_path(preset)
        data = read_yaml(path)
        data.setdefault("name", path.stem)
    for text in overrides:
        path_parts, value = parse_override(text)
        data = _merge(data, _nest(path_parts, value))
    return from_dict(data)


def save_config(cfg: Config, path: str | Path) -> None:
    """Writes the resolved config as YAML atomically (a crash leaves the old file or the new one)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    partial.replace(path)


# --------------------------------------------------------------------------- validation

# The paper's lambda tables (section 4.2), by number of tasks that are on.
PAPER_LAMBDAS: dict[int, dict[str, float]] = {
    1: {"adv_i": 1.0, "adv_s": 1.0, "adv_d": 1.0, "rec_i": 100.0, "rec_s": 1000.0, "rec_d": 1000.0},
    2: {"adv_i": 0.8, "adv_s": 0.2, "adv_d": 0.2, "rec_i": 100.0, "rec_s": 200.0, "rec_d": 200.0},
    3: {"adv_i": 0.8, "adv_s": 0.1, "adv_d": 0.1, "rec_i": 100.0, "rec_s": 200.0, "rec_d": 200.0},
}


def resolved_lambdas(cfg: Config) -> dict[str, float]:
    """Loss weights of the tasks that are on: the paper's table, then explicit overrides."""
    table = PAPER_LAMBDAS[len(cfg.model.tasks)]
    out = {}
    for task in cfg.model.tasks:
        for kind in ("adv", "rec"):
            name = f"{kind}_{task}"
            explicit = getattr(cfg.loss, name)
            out[name] = table[name] if explicit is None else explicit
    return out


def needed_labels(cfg: Config) -> tuple[str, ...]:
    """Tasks whose labels training needs: the model's tasks, plus parsing for GFC's parser."""
    return tuple(cfg.model.tasks) + (("s",) if cfg.model.arch == "gfc" else ())


def validate(cfg: Config) -> None:
    """Every cross-field check in one place, each with a message naming the key."""
    d, m, t = cfg.data, cfg.model, cfg.train
    if d.source not in ("prepared", "celeba", "celebamask_hq"):
        raise ConfigError(f"data.source: {d.source!r} is not one of prepared, celeba, celebamask_hq")
    if d.celeba_images not in ("aligned", "wild"):
        raise ConfigError(f"data.celeba_images: {d.celeba_images!r} is not aligned or wild")
    if d.image_size < 32 or d.image_size & (d.image_size - 1):
        raise ConfigError(f"data.image_size: {d.image_size} must be a power of two >= 32")
    if d.heatmap_sigma <= 0:
        raise ConfigError("data.heatmap_sigma: must be > 0")
    if d.num_workers < 0:
        raise ConfigError("data.num_workers: must be >= 0")
    a = d.augment
    if not (0 <= a.flip <= 1):
        raise ConfigError("data.augment.flip: a probability in [0, 1]")
    if not (0 < a.scale[0] <= a.scale[1]):
        raise ConfigError("data.augment.scale: need 0 < min <= max")
    if a.shift < 0 or a.rotation < 0:
        raise ConfigError("data.augment.shift/rotation: must be >= 0")
    k = d.masks
    if not k.kinds:
        raise ConfigError("data.masks.kinds: at least one mask kind")
    for kind in k.kinds:
        if kind not in TRAIN_MASK_KINDS:
            raise ConfigError(f"data.masks.kinds: {kind!r} is not one of {', '.join(TRAIN_MASK_KINDS)}")
    if len(k.weights) != len(k.kinds) or any(w < 0 for w in k.weights) or sum(k.weights) <= 0:
        raise ConfigError("data.masks.weights: one non-negative weight per kind, not all zero")
    if not (0 < k.pattern_missing < 1) or not (0 < k.noise_missing < 1):
        raise ConfigError("data.masks.pattern_missing/noise_missing: fractions in (0, 1)")
    if not (0 <= k.freeform_area[0] < k.freeform_area[1] <= 1):
        raise ConfigError("data.masks.freeform_area: need 0 <= min < max <= 1")
    if not (0 <= k.region_jitter < 1):
        raise ConfigError("data.masks.region_jitter: a fraction in [0, 1)")
    if not (0 < k.block_size < 128):
        raise ConfigError("data.masks.block_size: must be in (0, 128) (pixels at 128 px)")
    if not m.tasks or len(set(m.tasks)) != len(m.tasks) or any(x not in TASKS for x in m.tasks):
        raise ConfigError(f"model.tasks: {m.tasks} must be distinct tasks among i, s, d")
    m.tasks = [x for x in TASKS if x in m.tasks]  # canonical order i, s, d
    if m.ngf < 1 or m.ndf < 1:
        raise ConfigError("model.ngf/model.ndf: must be >= 1")
    if m.arch not in ARCHS:
        raise ConfigError(f"model.arch: {m.arch!r} is not one of {', '.join(ARCHS)}")
    if m.upsample not in UPSAMPLES:
        raise ConfigError(f"model.upsample: {m.upsample!r} is not one of {', '.join(UPSAMPLES)}")
    if m.arch != "collagan" and (m.tasks != ["i"] or cfg.loss.concentrated or m.mask_channel
                                 or m.upsample != "transpose" or m.mirror_input or m.components
                                 or m.spectral_norm or cfg.loss.rec_i_lowpass):
        raise ConfigError(f"model.arch {m.arch}: a baseline completes images only with its own network "
                          "(model.tasks [i], loss.concentrated false, model.mask_channel false, "
                          "model.upsample transpose, model.mirror_input false, no model.components, "
                          "model.spectral_norm false, loss.rec_i_lowpass 0)")
    if len(set(m.components)) != len(m.components) or any(c not in COMPONENTS for c in m.components):
        raise ConfigError(f"model.components: {m.components} must be distinct among {', '.join(COMPONENTS)}")
    if m.component_size < 32:
        raise ConfigError(f"model.component_size: {m.component_size} is below 32, the smallest crop a "
                          "component discriminator's strides leave logits for")
    if m.components and not {"i", "d"} <= set(m.tasks):
        raise ConfigError("model.components: component discriminators need tasks i and d (landmarks place them)")
    lc = cfg.loss
    if lc.gan not in GAN_LOSSES:
        raise ConfigError(f"loss.gan: {lc.gan!r} is not one of {', '.join(GAN_LOSSES)}")
    if lc.adv_components < 0 or lc.feature_matching < 0 or lc.rec_i_lowpass < 0:
        raise ConfigError("loss.adv_components, loss.feature_matching and loss.rec_i_lowpass must be >= 0")
    if lc.adv_components and not m.components:
        raise ConfigError("loss.adv_components: set model.components (which regions get a discriminator)")
    b = cfg.baseline
    if min(b.ce_rec, b.ce_adv, b.gfc_rec, b.gfc_adv_local, b.gfc_adv_global, b.gfc_parsing, b.sii_prior) < 0:
        raise ConfigError("baseline: loss weights must be >= 0")
    if b.ce_d_lr_ratio <= 0 or b.sii_lr <= 0:
        raise ConfigError("baseline.ce_d_lr_ratio and baseline.sii_lr must be > 0")
    if not (0 <= b.gfc_local_from <= b.gfc_global_from) or b.gfc_global_from < 1:
        raise ConfigError("baseline: need 0 <= gfc_local_from <= gfc_global_from and gfc_global_from >= 1 "
                          "(the parsing network trains before gfc_global_from)")
    if b.sii_z_dim < 1 or b.sii_iterations < 0 or b.sii_window < 1 or b.sii_window % 2 == 0:
        raise ConfigError("baseline: sii_z_dim >= 1, sii_iterations >= 0, sii_window an odd number >= 1")
    if cfg.loss.concentrated and "i" not in m.tasks:
        raise ConfigError("loss.concentrated: the inpainting-concentrated scheme needs task i")
    for name in ("adv_i", "adv_s", "adv_d", "rec_i", "rec_s", "rec_d"):
        value = getattr(cfg.loss, name)
        if value is not None and value < 0:
            raise ConfigError(f"loss.{name}: must be >= 0")
    if t.batch_size < 1 or t.epochs < 1 or t.max_steps < 0:
        raise ConfigError("train.batch_size/epochs must be >= 1 and train.max_steps >= 0")
    if t.max_minutes < 0 or t.warmup_steps < 0:
        raise ConfigError("train.max_minutes and train.warmup_steps must be >= 0")
    if t.lr <= 0 or t.d_lr_ratio <= 0:
        raise ConfigError("train.lr and train.d_lr_ratio: must be > 0")
    if t.lr_decay_minutes < 0 or (t.lr_decay_minutes and not 0 < t.lr_decay_minutes <= t.max_minutes):
        raise ConfigError(f"train.lr_decay_minutes: {t.lr_decay_minutes} must be 0 (constant lr) or in "
                          f"(0, train.max_minutes={t.max_minutes}]: the decay ends with the time budget")
    if t.precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"train.precision: {t.precision!r} is not auto, fp32 or bf16")
    if t.channels_last not in ("auto", True, False):
        raise ConfigError(f"train.channels_last: {t.channels_last!r} is not auto, true or false")
    if not (t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:")):
        raise ConfigError(f"train.device: {t.device!r} is not auto, cpu, cuda or cuda:N")
    for name in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "max_nonfinite", "d_every"):
        if getattr(t, name) < 1:
            raise ConfigError(f"train.{name}: must be >= 1")
    if not (0 <= t.ema < 1):
        raise ConfigError("train.ema: a decay in [0, 1) (0 = no moving average)")
    if any(a not in D_AUGMENTS for a in t.d_augment):
        raise ConfigError(f"train.d_augment: {t.d_augment} must be among {', '.join(D_AUGMENTS)}")
    if cfg.eval.batch_size < 1 or cfg.eval.bootstrap < 0:
        raise ConfigError("eval.batch_size must be >= 1 and eval.bootstrap >= 0")
