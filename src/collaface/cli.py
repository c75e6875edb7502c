"""The ``collaface`` command: thin argument parsing that calls one function per subcommand.

Start-up is kept light: the modules of ``evaluate``, ``ablate``, ``complete`` and ``demo`` (and
with them torch, mediapipe, gradio, onnxruntime) are imported only when their own command
runs; ``collaface --help`` lists them from :data:`LAZY_COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from collaface import __version__
from collaface import config as cfgmod

# command -> (module, function that registers its full parser, one-line help for the command list)
LAZY_COMMANDS = {
    "evaluate": ("collaface.evaluation.cli", "add_evaluate_parser",
                 "the paper's Tables 1-3 for trained models, with baselines, CIs and a report"),
    "ablate": ("collaface.ablate", "add_ablate_parser",
               "train and evaluate every paper variant with one budget (resumable)"),
    "complete": ("collaface.inference.cli", "add_complete_parser",
                 "fill a hole in a face photo (or a folder of photos)"),
    "demo": ("collaface.demo.app", "add_demo_parser", "web page: upload a photo, paint the hole, complete it"),
}
PREPARE_DESCRIPTION = (
    "Turns any folder of face photos into a prepared dataset: square unaligned crops with "
    "5 landmarks and a parsing map per face, a manifest.csv with identity and split, and "
    "failures.csv listing every file that could not be used and why. Rerunning skips "
    "finished files. Needs the annotation extra: pip install 'collaface[annotate]'."
)
TRAIN_DESCRIPTION = (
    "Train PRESET on a dataset. Rerunning into the same --out continues from the newest "
    "checkpoint; SIGINT/SIGTERM save one before stopping. Multi-GPU/multi-node: "
    "torchrun --nproc_per_node N -m collaface train ..."
)


def _cmd_show_config(args: argparse.Namespace) -> int:
    import yaml

    cfg = cfgmod.load_config(args.preset, args.overrides)
    print(yaml.safe_dump(cfgmod.to_dict(cfg), sort_keys=False), end="")
    print("# resolved loss weights: " + ", ".join(f"{k}={v:g}" for k, v in cfgmod.resolved_lambdas(cfg).items()))
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from collaface.data.prepare import prepare_folder

    summary = prepare_folder(
        Path(args.src),
        Path(args.out),
        size=args.size,
        meta=Path(args.meta) if args.meta else None,
        split=tuple(args.split),
        seed=args.seed,
        min_face=args.min_face,
        limit=args.limit,
        preview=args.preview,
    )
    print(summary)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from collaface.training.loop import train

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.root={args.data}")
    if args.source:
        overrides.append(f"data.source={args.source}")
    cfg = cfgmod.load_config(args.preset, overrides)
    pos = train(cfg, Path(args.out), progress=not args.no_progress)
    print(f"trained to step {pos.step} (epoch {pos.epoch}); run folder: {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from collaface import model_format
    from collaface.models.build import build_generator
    from collaface.onnx_export import export_graph, export_standalone

    if not (args.out or args.onnx):
        raise model_format.CheckpointError("give --out MODEL_DIR (safetensors + config.json + graph), --onnx DIR "
                                         "(a standalone ONNX file), or both")
    if args.out and args.onnx and Path(args.out).resolve() == Path(args.onnx).resolve():
        raise model_format.CheckpointError("--out and --onnx must be different folders (both write generator.onnx)")
    source = Path(args.checkpoint)
    if args.alpha != 1.0 and not args.interpolate:
        raise cfgmod.ConfigError("--alpha needs --interpolate START_MODEL")
    if args.average_last:
        if not source.is_dir():
            raise model_format.CheckpointError(f"{source}: --average-last needs a run folder or checkpoints folder")
        folder = source / "checkpoints" if (source / "checkpoints").is_dir() else source
        state = model_format.average_generators(folder, args.average_last)
        what = f"mean generator of steps {', '.join(map(str, state['averaged_steps']))} of {folder}"
    elif (source / model_format.WEIGHTS_FILE).is_file():
        state = model_format.load_exported_state(source)
        what = f"exported generator {source}"
    else:
        path, state = model_format.resolve_checkpoint(source)
        what = f"generator of {path} (step {state['step']})"
    if args.interpolate:
        _, start = model_format.load_generator(Path(args.interpolate))
        state = model_format.interpolate_generators(state, start.state_dict(), args.alpha, str(args.interpolate))
        what += f" interpolated with {args.interpolate} at alpha {args.alpha}"
    if args.out:
        out = model_format.export_generator(state, Path(args.out), half=args.half)
        export_graph(build_generator(cfgmod.from_dict(state["config"])), cfgmod.from_dict(state["config"]), out)
        print(f"exported {what} to {out} (weights, config.json and the ONNX graph that reads them)")
    if args.onnx:
        out = export_standalone(state, Path(args.onnx))
        print(f"exported {what} to {out} as a standalone ONNX file (float32) with its config.json")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from collaface.bench import WIDTHS, run_bench

    widths = [w for w in WIDTHS if args.ngf is None or w[0] in args.ngf]
    run_bench(Path(args.out), batch_size=args.batch_size, warmup=args.warmup, steps=args.steps,
              compile_=not args.no_compile, widths=widths, threads=args.threads, repeats=args.repeats)
    print()
    print((Path(args.out) / "bench.md").read_text(), end="")
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``collaface`` parser. Of the :data:`LAZY_COMMANDS` only ``command`` gets its full
    parser (its module is imported); the others are listed by name and help only (None: all full)."""
    parser = argparse.ArgumentParser(
        prog="collaface",
        description="Face completion with semantic knowledge and collaborative adversarial learning.",
    )
    parser.add_argument("--version", action="version", version=f"collaface {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("show-config", help="print the resolved config of a preset with overrides")
    p.add_argument("preset", help=f"preset name ({', '.join(cfgmod.list_presets())}) or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.batch_size=32")
    p.set_defaults(func=_cmd_show_config)

    p = sub.add_parser("prepare", help="detect, crop (unaligned square) and annotate a folder of face photos",
                       description=PREPARE_DESCRIPTION)
    p.add_argument("src", help="folder of photos (searched recursively)")
    p.add_argument("out", help="output folder of the prepared dataset")
    p.add_argument("--size", type=int, default=256, help="side of the stored crops in pixels (default 256)")
    p.add_argument(
        "--meta",
        help="CSV with a 'file' column and optional 'identity' and 'partition' columns "
        "(default: SRC/meta.csv when present); splits follow identities, never single images",
    )
    p.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                   help="identity fractions when the meta file has no partition column")
    p.add_argument("--seed", type=int, default=0, help="seed of the identity split")
    p.add_argument("--min-face", type=int, default=40, help="skip faces whose crop side is below this (pixels)")
    p.add_argument("--limit", type=int, default=0, help="only the first N photos (0 = all)")
    p.add_argument("--preview", type=int, default=0, metavar="N",
                   help="also write OUT/preview.png: a contact sheet of N faces with landmarks and parsing")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("train", help="train a collaGAN variant (resumable: rerun the same command to continue)",
                       description=TRAIN_DESCRIPTION)
    p.add_argument("preset", help=f"preset name ({', '.join(cfgmod.list_presets())}) or a YAML path")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.batch_size=32 model.ngf=32")
    p.add_argument("--data", help="dataset folder, or several joined by ':' (sets data.root)")
    p.add_argument("--source", choices=("prepared", "celeba", "celebamask_hq"), help="dataset layout (data.source)")
    p.add_argument("--out", required=True, help="run folder (config, checkpoints, logs, sample grids)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "export", help="export a generator as safetensors + config.json + ONNX graph, or as a standalone ONNX file",
        description="--out MODEL_DIR writes generator.safetensors, config.json and generator.onnx (the "
                    "generator's graph; its weights are read from the safetensors, so both runtimes use one copy): "
                    "what `complete` and `demo` load, with or without torch. --onnx DIR writes one standalone "
                    "generator.onnx (float32 weights inside, dynamic batch, opset 17) and config.json for other "
                    "ONNX tools. Needs torch and onnx: pip install 'collaface[train]'.")
    p.add_argument("checkpoint", help="a ckpt-*.pt file, a run folder (its newest loadable checkpoint) or an "
                                      "exported model folder")
    p.add_argument("--out", help="output model folder: generator.safetensors, config.json and generator.onnx")
    p.add_argument("--onnx", metavar="DIR", help="output folder of a standalone generator.onnx and config.json")
    p.add_argument("--half", action="store_true", help="store the safetensors weights as float16 (half the size)")
    p.add_argument("--average-last", type=int, default=0, metavar="N",
                   help="export the mean generator of the run's newest N checkpoints (checkpoint averaging: "
                        "smoother fills, higher PSNR, less sharp; config.json lists the steps)")
    p.add_argument("--interpolate", metavar="START_MODEL",
                   help="network interpolation (ESRGAN): export (1 - alpha) x START_MODEL + alpha x this generator, "
                        "START_MODEL being the model the run was fine-tuned from (exported folder, run or checkpoint)")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="with --interpolate: the point between START_MODEL (0) and this generator (1); default 1")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "bench",
        help="measure training/inference speed and memory on this machine",
        description="Times one D+G training step per setting (fp32, channels_last, bf16, compile, auto) "
        "at 128 px, and generator inference (the median of --repeats runs on --threads threads after a "
        "warm-up, as scripts/bench_complete.py times the model stage); writes OUT/bench.json and "
        "OUT/bench.md. Its checks are reported; a timing never fails the run.",
    )
    p.add_argument("--out", default="work/bench", help="output folder (default work/bench)")
    p.add_argument("--ngf", type=int, nargs="*", help="only these generator widths (32 and/or 64)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per setting (the fastest is reported)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile setting")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the inference timing (default 1)")
    p.add_argument("--repeats", type=int, default=20, help="timed inference runs (the median is reported)")
    p.set_defaults(func=_cmd_bench)

    for name, (module, register, summary) in LAZY_COMMANDS.items():
        if command is None or name == command:
            getattr(importlib.import_module(module), register)(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option), or None."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command(argv) or "")
    # Overrides may come after options (``train m_i --data D train.lr=1e-3``): collect them.
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-") or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        return args.func(args)
    except cfgmod.ConfigError as err:
        print(f"collaface: config error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"collaface: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(f"collaface: interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
