"""The web page (``collaface demo``): upload a face photo, paint the hole or pick a region, press
Complete; see the completed photo, the face parsing and the landmarks, and download them.

A Gradio app over :class:`collaface.inference.engine.FaceCompleter`; CPU is enough. Binds to 127.0.0.1
unless told otherwise. Uploads are decoded by collaface's own reader (EXIF upright, any mode or
bit depth); files over the size limit, photos over :data:`MAX_PIXELS` and anything that is not
an image are refused with a message on the page. Needs the demo extra:
``pip install 'collaface[demo]'`` (gradio is imported only when the page is built).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path

import cv2
import numpy as np

from collaface.data import io
from collaface.data.annotate import AnnotatorUnavailable
from collaface.data.masks import REGIONS
from collaface.inference.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, fail
from collaface.inference.engine import CompletionError, FaceCompleter, NoFaceError
from collaface.inference.files import save_image
from collaface.inference.pictures import landmarks_picture, landmarks_record, parsing_picture
from collaface.inference.runtime import RUNTIMES
from collaface.model_format import CheckpointError, ModelNotFoundError
from collaface.timing import THREADS

log = logging.getLogger(__name__)

INSTALL_HINT = "install with `pip install 'collaface[demo]'`"
PAINTED = "painted hole"          # region choice: use the brush strokes
MAX_UPLOAD_MB = 20
MAX_PIXELS = 40_000_000           # decoded photo size limit (about 7700 x 5200)
BRUSH_COLOUR = "#ff00ff"
UPLOAD_HEIGHT = 140               # pixels: a compact drop zone keeps the Complete button in view
INTRO = """\
## collaface: face completion
Upload a face photo, paint over what should be filled (or pick a region as the **Hole**), press
**Complete**. Every pixel you did not paint stays as it was.
"""


def _import_gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no version checks or telemetry
    try:
        import gradio
    except ImportError as err:
        raise RuntimeError(f"the web demo needs gradio ({err}); {INSTALL_HINT}") from None
    return gradio


# --------------------------------------------------------------------------- page logic (no gradio)


def load_photo(path: str | None, max_upload_mb: float = MAX_UPLOAD_MB) -> tuple[np.ndarray | None, str]:
    """Decode an uploaded file. -> (upright (H, W, 3) uint8 photo or None, status message)."""
    if not path:
        return None, "Upload a face photo to start."
    name = Path(path).name
    size_mb = Path(path).stat().st_size / 2**20
    if size_mb > max_upload_mb:
        return None, f"**Refused:** {name} is {size_mb:.1f} MB; the limit is {max_upload_mb:g} MB."
    try:
        photo = io.load_rgb(path)
    except io.ImageDecodeError as err:
        return None, f"**Refused:** {name} is not a usable image: {err.reason}."
    height, width = photo.shape[:2]
    if height * width > MAX_PIXELS:
        return None, (f"**Refused:** {name} is {width}x{height} pixels; the limit is "
                      f"{MAX_PIXELS / 1e6:.0f} megapixels.")
    return photo, (f"Loaded {name} ({width}x{height}). Paint over what should be filled, or pick a "
                   "region, then press **Complete**.")


def painted_hole(editor_value: dict | None, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool hole from the ImageEditor's paint layers (any non-transparent pixel), scaled
    to the photo's ``shape`` when the canvas has another size."""
    hole = np.zeros(shape, bool)
    for layer in (editor_value or {}).get("layers") or []:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            continue  # only RGBA layers carry strokes
        painted = (layer[..., 3] > 0).astype(np.uint8)
        if painted.shape != shape:
            painted = cv2.resize(painted, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
        hole |= painted > 0
    return hole


class DemoSession:
    """The page's work: one FaceCompleter (calls are serialised by Gradio's queue) and a
    folder for the downloads."""

    def __init__(self, completer: FaceCompleter, max_upload_mb: float = MAX_UPLOAD_MB):
        self.completer = completer
        self.max_upload_mb = max_upload_mb
        self._downloads = tempfile.TemporaryDirectory(prefix="collaface-demo-")
        try:  # start the detector now rather than in the first visitor's request
            completer.detector(thorough=False)
        except AnnotatorUnavailable as err:
            log.warning("%s; only photos that are face crops can be completed", err)

    def close(self) -> None:
        self.completer.close()
        self._downloads.cleanup()

    def upload(self, path: str | None):
        """File upload -> (emptied upload box, editor value, photo state, status)."""
        photo, status = load_photo(path, self.max_upload_mb)
        editor = None if photo is None else {"background": photo, "layers": [], "composite": photo}
        return None, editor, photo, status

    def complete(self, editor_value: dict | None, region: str, no_detect: bool, photo: np.ndarray | None):
        """Complete button -> (completed photo, parsing picture, landmarks picture, download paths,
        status). Bad input gives Nones and a status that says why."""
        nothing = (None, None, None, None)
        if photo is None:
            return *nothing, "Upload a face photo first."
        use_region = region not in (None, PAINTED)
        hole = None if use_region else painted_hole(editor_value, photo.shape[:2])
        if hole is not None and not hole.any():
            return *nothing, "Paint over the part to fill with the brush, or pick a region preset."
        try:
            completion = self.completer.complete(
                photo, hole=hole, region=region if use_region else None, no_detect=no_detect)
        except NoFaceError:
            return *nothing, ("**Could not complete:** no face found. If the photo is a face crop already, "
                              "tick *The photo is a face crop already*.")
        except CompletionError as err:
            return *nothing, f"**Could not complete:** {err}"
        except AnnotatorUnavailable as err:
            return *nothing, f"**Face detection is not installed:** {err}. Tick *face crop* to skip it."
        pictures = [completion.image, None, None]
        folder = Path(self._downloads.name) / uuid.uuid4().hex
        folder.mkdir()
        save_image(folder / "completed.png", completion.image)
        files = [str(folder / "completed.png")]
        if "s" in self.completer.tasks:
            pictures[1] = parsing_picture(completion)
            save_image(folder / "parsing.png", pictures[1])
            files.append(str(folder / "parsing.png"))
        if "d" in self.completer.tasks:
            pictures[2] = landmarks_picture(completion)
            (folder / "landmarks.json").write_text(json.dumps(landmarks_record(completion), indent=2) + "\n")
            files.append(str(folder / "landmarks.json"))
        t = completion.timings
        status = (f"Completed {len(completion.faces)} face(s) in {sum(t.values()):.2f} s "
                  f"(detect {t['detect']:.2f}, model {t['model']:.2f}, blend {t['blend']:.2f}).")
        return *pictures, files, status


# --------------------------------------------------------------------------- the page


def build_app(session: DemoSession):
    """The Gradio Blocks page for ``session`` (not launched)."""
    gr = _import_gradio()
    with gr.Blocks(title="collaface", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        photo = gr.State(None)
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                upload = gr.File(label=f"Face photo (JPEG, PNG, WebP or BMP; up to {session.max_upload_mb:g} MB)",
                                 file_types=["image"], type="filepath", height=UPLOAD_HEIGHT, elem_id="upload")
                with gr.Row(equal_height=True):  # the controls above the canvas: in view without scrolling
                    region = gr.Dropdown([PAINTED, *REGIONS], value=PAINTED, label="Hole", scale=2, min_width=150,
                                         elem_id="region")
                    button = gr.Button("Complete", variant="primary", scale=1, min_width=110, elem_id="complete")
                no_detect = gr.Checkbox(label="The photo is a face crop already (no face needs to be found)",
                                        elem_id="no-detect")
                status = gr.Markdown("Upload a face photo to start.", elem_id="status")
                editor = gr.ImageEditor(
                    label="Paint over what should be filled", type="numpy", image_mode="RGBA",
                    sources=(), transforms=(), layers=False, format="png", elem_id="editor",
                    brush=gr.Brush(colors=[BRUSH_COLOUR], default_color=BRUSH_COLOUR, color_mode="fixed"))
            with gr.Column():
                result = gr.Image(label="Completed photo", type="numpy", format="png", interactive=False,
                                  elem_id="result")
                with gr.Row():
                    parsing = gr.Image(label="Face parsing", type="numpy", format="png", interactive=False,
                                       elem_id="parsing")
                    landmarks = gr.Image(label="Landmarks", type="numpy", format="png", interactive=False,
                                         elem_id="landmarks")
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
        upload.upload(session.upload, inputs=upload, outputs=[upload, editor, photo, status])
        button.click(session.complete, inputs=[editor, region, no_detect, photo],
                     outputs=[result, parsing, landmarks, downloads, status])
    return app


def launch(app, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = MAX_UPLOAD_MB,
           block: bool = True) -> str:
    """Serve ``app``; block=False returns at once (tests). -> the local URL."""
    app.launch(server_name=host, server_port=port, max_file_size=f"{max_upload_mb:g}mb", ssr_mode=False,
               prevent_thread_lock=not block, show_error=True, quiet=not block)
    return app.local_url


# --------------------------------------------------------------------------- command line


def add_demo_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``collaface demo`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "demo", help="web page: upload a photo, paint the hole, complete it",
        description="Serve the collaface web page (Gradio). Upload a face photo, paint over what "
                    "should be filled or pick a region, press Complete; download the completed photo, "
                    "its parsing and landmarks. Needs the demo extra: pip install 'collaface[demo]'.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--model", help="exported model folder, run folder or ckpt-*.pt (default: the shipped weights)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto; torch runtime)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="the generator's runtime: torch or onnx (onnxruntime, no torch needed); default auto = "
                        "onnx for an exported model folder with generator.onnx when onnxruntime is installed and no "
                        "CUDA device is asked for, else torch where installed")
    p.add_argument("--threads", type=int, default=THREADS, help=f"CPU threads of the generator (default {THREADS})")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB,
                   help=f"largest accepted upload in MB (default {MAX_UPLOAD_MB})")
    p.set_defaults(func=run_demo)
    return p


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_demo(args: argparse.Namespace) -> int:
    """``collaface demo``: serve until interrupted. Exit codes: 0 ok, 1 failure, 2 bad model/usage."""
    if not 0 < args.port < 65536 or args.max_upload_mb <= 0 or args.threads < 1:
        return fail("demo", "--port must be in 1..65535, --max-upload-mb > 0 and --threads >= 1", EXIT_BAD_INPUT)
    try:
        session = DemoSession(FaceCompleter(args.model, device=args.device, runtime=args.runtime, threads=args.threads),
                              args.max_upload_mb)
    except (ModelNotFoundError, CheckpointError, CompletionError) as err:
        return fail("demo", err, EXIT_BAD_INPUT)
    try:
        app = build_app(session)
        if not _is_loopback(args.host):
            print(f"collaface demo: warning: binding to {args.host} makes the page reachable from other machines",
                  file=sys.stderr)
        print(f"collaface demo: serving on http://{args.host}:{args.port} (Ctrl-C to stop)")
        launch(app, args.host, args.port, args.max_upload_mb, block=True)
    except RuntimeError as err:
        return fail("demo", err, EXIT_FAILED)
    except OSError as err:
        return fail("demo", f"cannot serve on {args.host}:{args.port}: {err}", EXIT_FAILED)
    finally:
        session.close()
    return EXIT_OK
