"""``collaface complete``: arguments, progress on stderr, and the exit codes (here only)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from collaface.config import ConfigError
from collaface.data import io
from collaface.data.annotate import AnnotatorUnavailable
from collaface.data.crop import BLEND_MODES
from collaface.data.masks import REGIONS
from collaface.inference.batch import complete_folder, find_masks
from collaface.inference.engine import CompletionError, FaceCompleter, NoFaceError
from collaface.inference.files import complete_file, save_image
from collaface.inference.pictures import landmarks_record, parsing_picture, side_by_side
from collaface.inference.runtime import RUNTIMES, resolve_runtime
from collaface.model_format import DEFAULT_MODEL_DIR, CheckpointError, ModelNotFoundError
from collaface.timing import THREADS

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_FACE = 0, 1, 2, 3
PROGRESS_AFTER_S = 1.0        # a single run says what it is doing once it takes longer than this


def fail(command: str, message: object, code: int) -> int:
    """Say ``collaface COMMAND: MESSAGE`` on stderr. -> ``code`` (the exit code)."""
    print(f"collaface {command}: {message}", file=sys.stderr)
    return code

COMPLETE_DESCRIPTION = """\
Fill a hole in a face photo (sunglasses, a hand, a scratch, a sticker...) and predict the
face's parsing and 5 landmarks.

One photo:  collaface complete PHOTO (--mask MASK.png | --region NAME) [--out OUT.png]
A folder:   collaface complete DIR [--mask MASK.png | --mask MASK_DIR | --region NAME] --out OUT_DIR

Masks, as LaMa and IOPaint make them: WHITE or any non-black grey = HOLE to fill, black =
keep (JPEG masks: brighter than mid-grey); a mask with transparency is a painted layer: every
painted pixel is hole, whatever its colour. --invert-mask for masks with black = hole. Same
size as the photo (or --resize-mask). --region places a hole from the detected landmarks
instead. Faces are found automatically (any size or position; needs
`pip install 'collaface[annotate]'`); each face whose square crop touches the hole is
completed at the model's resolution, upsampled, Poisson-blended and written back into the
full-size photo inside the hole only: every other pixel stays exactly as it was (save as PNG
to keep them bit-exact; JPEG re-encodes every pixel, at the source's own quality).

Folder mode, the holes: --mask MASK.png (one mask for every photo), --mask MASK_DIR (IOPaint:
the same names, photo.jpg <-> MASK_DIR/photo.png, or photo_mask*.png, in the same subfolder),
masks beside the photos (LaMa: photo.png with photo_mask.png or photo_mask001.png,
photo_mask002.png...: one result per mask, named after it; used when no --mask or --region is
given), or --region NAME. Mask files are never taken for photos. Results keep each photo's
relative path, format and size; a rerun skips finished results; photos that fail are listed
in OUT_DIR/failures.csv and the batch goes on.

Exit codes: 0 ok, 1 unexpected failure, 2 bad usage or input (also when any photo of a batch
failed), 3 no face found (use --no-detect for photos that are face crops already)."""


def add_complete_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``collaface complete`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "complete", help="fill a hole in a face photo (or a folder of photos)",
        description=COMPLETE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="a photo, or a folder of photos (searched recursively)")
    hole = p.add_mutually_exclusive_group()
    hole.add_argument("--mask", "--masks", metavar="MASK", dest="mask",
                      help="hole mask (white or non-black grey = hole, or painted pixels of a transparent layer; "
                           "the photo's size): a file, for one photo or every photo of a folder, or a folder of "
                           "masks matched by name")
    hole.add_argument("--region", choices=REGIONS, metavar="NAME",
                      help=f"hole over this face region, placed from the detected landmarks: {', '.join(REGIONS)}")
    p.add_argument("--invert-mask", action="store_true", help="the masks mark the hole in black: swap hole and keep")
    p.add_argument("--out", metavar="OUT",
                   help="output file (one photo: .png, .jpg, .webp or .bmp; default ./<name>_completed.<ext>, PNG "
                        "for other inputs) or folder (batch; required)")
    p.add_argument("--model", metavar="DIR", help="exported model folder, training run folder or ckpt-*.pt "
                                                  f"(default: the shipped weights in {DEFAULT_MODEL_DIR})")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="the generator's runtime: torch, or onnx (onnxruntime, the light install without torch; "
                        "starts faster); default auto = onnx for an exported model folder with generator.onnx "
                        "when onnxruntime is installed and no CUDA device is asked for, else torch where installed")
    p.add_argument("--face", type=int, metavar="N",
                   help="complete only face N (0 = largest); default: every face the hole touches")
    p.add_argument("--no-detect", action="store_true",
                   help="the photo is one face crop (for prepared crops; never exit 3): when a face is found in "
                        "it, it is reframed to the model's trained scale, else the whole photo is the crop")
    p.add_argument("--resize-mask", action="store_true", help="scale a mask of another size to the photo's size")
    p.add_argument("--parsing", metavar="OUT.png",
                   help="also write the completed face's parsing, colour-coded with a legend")
    p.add_argument("--landmarks", metavar="OUT.json", help="also write the 5 predicted landmarks in photo pixels")
    p.add_argument("--side-by-side", metavar="OUT.png", help="also write input | hole | result, with captions")
    p.add_argument("--blend", choices=BLEND_MODES, default="poisson",
                   help="how the completion meets the known pixels (default poisson; none = the upsampled "
                        "model output as it is)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise filling the hole (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto; torch runtime)")
    p.add_argument("--threads", type=int, default=THREADS,
                   help=f"CPU threads of the generator (default {THREADS}: one photo at a time gains little from "
                        "more, and on a busy machine threads that wait for each other are 10x slower)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (folder mode)")
    p.set_defaults(func=run_complete)
    return p


def _usage_problem(args: argparse.Namespace) -> str | None:
    """The first problem with the arguments' combination, or None."""
    source = Path(args.input)
    if not source.exists():
        return f"{source}: no such photo or folder"
    if args.mask and not Path(args.mask).exists():
        return f"{args.mask}: no such mask file or folder"
    extras = [flag for flag, value in (("--parsing", args.parsing), ("--landmarks", args.landmarks),
                                       ("--side-by-side", args.side_by_side)) if value]
    if source.is_dir():
        if not args.out:
            return "folder mode needs --out OUT_DIR"
        if extras:
            return f"{', '.join(extras)} work on one photo, not a folder"
    else:
        if not (args.mask or args.region):
            return "give the hole: --mask MASK.png (white = hole) or --region NAME"
        outputs = {"--out": args.out, "--parsing": args.parsing, "--side-by-side": args.side_by_side}
        for flag, value in outputs.items():
            if value and Path(value).suffix.lower() not in io.IMAGE_EXTENSIONS:
                return (f"{flag} {value}: the file name must end in an image extension "
                        f"({', '.join(io.IMAGE_EXTENSIONS)})")
        named = [Path(value).resolve() for value in (*outputs.values(), args.landmarks) if value]
        for given in (source, args.mask):
            if given and Path(given).resolve() in named:
                return f"an output names the input {given}; write the results to other files"
        if len(set(named)) < len(named):
            return "two outputs name the same file"
    if args.face is not None and args.face < 0:
        return f"--face must be >= 0, got {args.face}"
    if args.threads < 1:
        return f"--threads must be >= 1, got {args.threads}"
    if args.face is not None and args.no_detect:
        return "--face picks a detected face; it cannot go with --no-detect"
    return None


class Progress:
    """Says on stderr what a run is doing, once it has taken longer than ``after`` seconds:
    then the step under way and every later one, with the time since the start."""

    def __init__(self, after: float, stream=None):
        self._stream = stream if stream is not None else sys.stderr
        self._start = time.perf_counter()
        self._step: str | None = None
        self._shown = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(after, self._show_current)
        self._timer.daemon = True
        self._timer.start()

    def __call__(self, step: str) -> None:
        with self._lock:
            self._step = step
            if self._shown:
                self._print()

    def _show_current(self) -> None:
        with self._lock:
            self._shown = True
            if self._step is not None:
                self._print()

    def _print(self) -> None:
        print(f"collaface: {self._step} ({time.perf_counter() - self._start:.1f} s)", file=self._stream, flush=True)

    def close(self) -> None:
        self._timer.cancel()


def run_complete(args: argparse.Namespace) -> int:
    """``collaface complete``: returns the exit code (see COMPLETE_DESCRIPTION)."""
    problem = _usage_problem(args)
    if problem:
        return fail("complete", problem, EXIT_BAD_INPUT)
    progress = Progress(PROGRESS_AFTER_S)
    try:
        runtime = resolve_runtime(Path(args.model) if args.model else DEFAULT_MODEL_DIR, args.runtime, args.device)
        progress(f"loading the model ({runtime} runtime)")
        with FaceCompleter(args.model, device=args.device, blend=args.blend, seed=args.seed,
                           runtime=runtime, threads=args.threads, on_step=progress) as completer:
            if Path(args.input).is_dir():
                completer.on_step = lambda step: None  # a folder's progress is its progress bar
                summary = complete_folder(
                    completer, Path(args.input), Path(args.out), masks=Path(args.mask) if args.mask else None,
                    region=args.region, face=args.face, no_detect=args.no_detect, resize_mask=args.resize_mask,
                    invert_mask=args.invert_mask, progress=not args.no_progress)
                print(summary)
                return EXIT_OK if summary.failed == 0 else EXIT_BAD_INPUT
            return _complete_one(completer, args)
    except NoFaceError as err:
        return fail("complete", err, EXIT_NO_FACE)
    except (CompletionError, io.ImageDecodeError, ModelNotFoundError, CheckpointError, ConfigError) as err:
        return fail("complete", err, EXIT_BAD_INPUT)
    except AnnotatorUnavailable as err:
        return fail("complete", f"{err}; or pass --no-detect for photos that are face crops already", EXIT_FAILED)
    except OSError as err:
        return fail("complete", f"cannot read or write a file: {err}", EXIT_FAILED)
    finally:
        progress.close()


def _complete_one(completer: FaceCompleter, args: argparse.Namespace) -> int:
    source = Path(args.input)
    suffix = source.suffix if source.suffix.lower() in io.IMAGE_EXTENSIONS else ".png"
    out = Path(args.out) if args.out else Path.cwd() / f"{source.stem}_completed{suffix}"
    for flag, task, what in (("--parsing", "s", "parsing"), ("--landmarks", "d", "landmarks")):
        if getattr(args, flag[2:]) and task not in completer.tasks:
            raise CompletionError(f"{flag}: the model predicts no {what} (its tasks: {', '.join(completer.tasks)})")
    mask = Path(args.mask) if args.mask else None
    if mask is not None and mask.is_dir():
        found = find_masks(mask, source.stem)
        if len(found) > 1:
            raise CompletionError(f"{source}: {len(found)} masks match in {mask} ({', '.join(p.name for p in found)}); "
                                  "give one with --mask, or complete the folder")
        mask = found[0]
    image, completion = complete_file(
        completer, source, out, mask=mask, region=args.region, face=args.face, no_detect=args.no_detect,
        resize_mask=args.resize_mask, invert_mask=args.invert_mask)
    lines = [f"completed {len(completion.faces)} face(s) of {source}; result: {out}"]
    if out.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        lines.append("note: lossy output re-encodes every pixel; use a .png --out to keep the known pixels exact")
    if args.parsing:
        save_image(Path(args.parsing), parsing_picture(completion))
        lines.append(f"parsing: {args.parsing}")
    if args.landmarks:
        record = landmarks_record(completion, str(source))
        Path(args.landmarks).parent.mkdir(parents=True, exist_ok=True)
        Path(args.landmarks).write_text(json.dumps(record, indent=2) + "\n")
        lines.append(f"landmarks: {args.landmarks}")
    if args.side_by_side:
        save_image(Path(args.side_by_side), side_by_side(image, completion))
        lines.append(f"side by side: {args.side_by_side}")
    print("\n".join(lines))
    return EXIT_OK
