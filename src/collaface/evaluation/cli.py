"""``collaface evaluate``: load the models, evaluate, summarise, write the report."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from collaface.config import EvalConfig
from collaface.evaluation.conditions import ALL_CONDITIONS, CONDITION_GROUPS, evaluation_data_config, resolve_conditions
from collaface.evaluation.reports import report_dict, write_report
from collaface.evaluation.scoring import evaluate, load_models
from collaface.evaluation.statistics import summarize


def run_evaluation(
    model_paths: list[str],
    data: str,
    out_dir: Path,
    *,
    labels: list[str] | None = None,
    source: str | None = None,
    split: str = "test",
    conditions: tuple[str, ...] = ALL_CONDITIONS,
    eval_cfg: EvalConfig | None = None,
    limit: int = 0,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
    with_realism: bool = True,
) -> dict:
    """Load the models, evaluate, summarize and write the report. -> the report dict (report.json)."""
    from collaface.device import resolve_device

    if not model_paths:
        raise ValueError("evaluate needs at least one model")
    eval_cfg = eval_cfg or EvalConfig()
    torch_device = resolve_device(device)
    models = load_models(model_paths, labels, torch_device)
    data_cfg = evaluation_data_config(models[0].cfg, data, source)
    evaluation = evaluate(models, data_cfg, split=split, conditions=conditions, eval_cfg=eval_cfg, limit=limit,
                          workers=workers, device=torch_device, progress=progress, with_realism=with_realism)
    summary = summarize(evaluation, eval_cfg.bootstrap, eval_cfg.seed)
    write_report(evaluation, summary, out_dir, eval_cfg.bootstrap)
    return report_dict(evaluation, summary, eval_cfg.bootstrap)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from collaface.config import ConfigError

    if args.batch_size < 1 or args.bootstrap < 0 or args.limit < 0 or args.workers < 0 or args.threads < 0:
        raise ConfigError("--batch-size must be >= 1; --bootstrap, --limit, --workers and --threads >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.models:
        from collaface.model_format import default_model_dir

        args.models = [str(default_model_dir())]
    report = run_evaluation(
        args.models, args.data, Path(args.out), labels=args.labels, source=args.source, split=args.split,
        conditions=resolve_conditions(args.masks),
        eval_cfg=EvalConfig(seed=args.seed, batch_size=args.batch_size, bootstrap=args.bootstrap),
        limit=args.limit, workers=args.workers, device=args.device, progress=not args.no_progress,
        with_realism=not args.no_realism,
    )
    table1 = report["results"]["table1"]
    for condition in table1:
        cells = ", ".join(f"{m} {v['ssim']['value']:.1f}/{v['psnr']['value']:.2f}"
                          for m, v in table1[condition].items())
        print(f"{condition}: SSIM %/PSNR dB: {cells}")
    print(f"report: {Path(args.out) / 'report.md'} ({report['data']['faces']} faces, {report['run']['seconds']:.0f} s)")
    return 0


EVALUATE_DESCRIPTION = (
    "Scores each MODEL (exported model dir, run dir or ckpt-*.pt) and three baselines (OpenCV "
    "Telea and Navier-Stokes inpainting, mirror fill) on the same faces and masks: SSIM/PSNR of "
    "the completed image, PSNR and L1 in the hole, hole sharpness, realism of the hole (classifier "
    "two-sample test and sliced Wasserstein distance) (Table 1, per O1-O6, the paper's "
    "training masks and free-form area bins), parsing Dice (Table 2) and landmark errors (Table 3) "
    "for models with those tasks, with 95% bootstrap CIs. Writes report.json/.csv/.md and figures."
)


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``collaface evaluate`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "evaluate", help="the paper's Tables 1-3 for trained models, with baselines, CIs and a report",
        description=EVALUATE_DESCRIPTION)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="one or more trained models (same image size); default: the shipped weights")
    p.add_argument("--data", required=True, help="dataset folder (prepared, CelebA or CelebAMask-HQ layout)")
    p.add_argument("--source", choices=("prepared", "celeba", "celebamask_hq"),
                   help="dataset layout (default: the first model's data.source)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to evaluate (default test)")
    p.add_argument("--out", default="work/eval", help="report folder (default work/eval)")
    p.add_argument("--labels", nargs="+", help="a display name per MODEL (default: each config's name)")
    p.add_argument("--masks", nargs="+", default=["all"], metavar="MASK",
                   help=f"conditions or groups: all (default), {', '.join(CONDITION_GROUPS)}, or names "
                        f"({', '.join(ALL_CONDITIONS)})")
    p.add_argument("--limit", type=int, default=0, help="only the first N faces of the split (0 = all)")
    add_eval_config_arguments(p, "--seed")
    p.add_argument("--workers", type=int, default=2, help="data loading processes (default 2)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0 = torch's choice; 1 is often faster when other jobs "
                        "share the cores)")
    p.add_argument("--no-realism", action="store_true",
                   help="skip the realism measures (C2ST and SWD on hole patches: 3 small CNNs are trained per "
                        "condition and method, about 20 s on 2 busy CPU cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)
    return p


def add_eval_config_arguments(p: argparse.ArgumentParser, seed_flag: str) -> None:
    """The options of an :class:`~collaface.config.EvalConfig`: --batch-size, --bootstrap and the seed
    (``seed_flag``), shared by ``evaluate`` and ``ablate``."""
    defaults = EvalConfig()
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"faces per evaluation batch (default {defaults.batch_size})")
    p.add_argument(seed_flag, type=int, default=defaults.seed,
                   help="seed of the evaluation masks, noise fill and bootstrap")
    p.add_argument("--bootstrap", type=int, default=defaults.bootstrap,
                   help=f"bootstrap resamples for the 95%% CIs (default {defaults.bootstrap}; 0 = no CIs)")
