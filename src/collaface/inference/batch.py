"""Completion of a folder: photos matched with their masks (one for all, a masks folder, or
LaMa's ``NAME_mask*`` beside them), results under OUT with the same relative paths, reruns
skipping finished results, failures listed in OUT/failures.csv."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from collaface.data import io
from collaface.inference.engine import CompletionError, FaceCompleter
from collaface.inference.files import complete_file

BATCH_FAILURE_COLUMNS = ("file", "reason")  # OUT/failures.csv: result file, why it failed
MASK_NAME = re.compile(r"^(?P<photo>.+)_mask(?P<suffix>.*)$")  # LaMa: photo.png <-> photo_mask001.png


@dataclass
class BatchSummary:
    """Counts of one :func:`complete_folder` run."""

    out: Path
    completed: int
    skipped: int
    failed: int
    seconds: float

    def __str__(self) -> str:
        failed = f"{self.failed} failed (see {self.out / 'failures.csv'})" if self.failed else "none failed"
        return (f"completed {self.completed} photos in {self.seconds:.1f} s, {self.skipped} already done, "
                f"{failed}; results in {self.out}")


def mask_photo_stem(path: Path) -> str | None:
    """``NAME`` for a LaMa-style mask file ``NAME_mask<anything>.<ext>``, else None."""
    match = MASK_NAME.match(path.stem)
    return match["photo"] if match else None


def find_masks(folder: Path, stem: str, plain_names: bool = True) -> list[Path]:
    """The masks of photo ``stem`` in ``folder``: ``<stem>_mask<anything>.<ext>`` (LaMa; one
    per suffix, sorted) or, when there is none and plain_names, ``<stem>.<ext>`` (IOPaint's
    same-name layout); any image extension, any case. CompletionError when none match or one
    name has several extensions."""
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in io.IMAGE_EXTENSIONS and path.is_file():
                found.setdefault(path.stem, []).append(path)
    names = sorted(n for n in found if mask_photo_stem(Path(n)) == stem)
    if not names and plain_names and stem in found:
        names = [stem]
    if not names:
        expected = f"{stem}_mask*.png" + (f" or {stem}.png" if plain_names else "")
        raise CompletionError(f"no mask named {expected} (or another image extension) in {folder}")
    for name in names:
        if len(found[name]) > 1:
            raise CompletionError(f"several masks match: {', '.join(p.name for p in found[name])}")
    return [found[name][0] for name in names]


def batch_photos(src: Path, out: Path, masks: Path | None) -> list[Path]:
    """Photos under ``src`` (recursive, sorted): not the output folder's files, not a separate
    masks folder's files, and never a mask (``NAME_mask*`` beside a photo ``NAME``)."""
    out_root = out.resolve()
    masks_root = masks.resolve() if masks is not None and masks.is_dir() else None
    images = [p for p in io.list_images(src) if not p.parent.resolve().is_relative_to(out_root)]
    if masks_root is not None and masks_root != src.resolve():
        images = [p for p in images if not p.parent.resolve().is_relative_to(masks_root)]
    stems = {(p.parent, p.stem) for p in images}
    return [p for p in images if (p.parent, mask_photo_stem(p)) not in stems]


def batch_jobs(src: Path, relative: Path, masks: Path | None) -> list[tuple[Path | None, Path]]:
    """(mask or None, result path under OUT) for photo ``src/relative``. masks: None (a region),
    one mask file for every photo, or a folder (see :func:`find_masks`; the photo folder itself
    for masks beside the photos). A mask named ``NAME_mask`` (or ``NAME``) gives the result
    ``relative``; masks ``NAME_mask<suffix>`` give one result each, named after the mask."""
    if masks is None:
        return [(None, relative)]
    if masks.is_file():
        return [(masks, relative)]
    beside = masks.resolve() == src.resolve()
    found = find_masks(masks / relative.parent, relative.stem, plain_names=not beside)
    return [(m, relative if m.stem in (relative.stem, f"{relative.stem}_mask")
             else relative.with_name(m.stem + relative.suffix)) for m in found]


def output_path(out: Path, relative: Path, inputs: tuple[Path, ...]) -> Path:
    """OUT/relative, refused (CompletionError) if it would resolve outside ``out`` (a symlinked
    subfolder) or onto one of ``inputs``."""
    target = out / relative
    root = out.resolve()
    if not target.parent.resolve().is_relative_to(root):
        raise CompletionError(f"output {target} would be written outside {out} (symlinked folder?); refused")
    if any(target.resolve() == p.resolve() for p in inputs):
        raise CompletionError(f"output {target} is an input file; refused")
    return target


def _result_is_current(target: Path, sources: tuple[Path, ...]) -> bool:
    """A finished result: written (atomically) after its photo and mask last changed."""
    if not target.is_file():
        return False
    written = target.stat().st_mtime_ns
    return all(p.stat().st_mtime_ns <= written for p in sources)


def complete_folder(completer: FaceCompleter, src: Path, out: Path, masks: Path | None = None,
                    region: str | None = None, face: int | None = None, no_detect: bool = False,
                    resize_mask: bool = False, invert_mask: bool = False, progress: bool = True) -> BatchSummary:
    """Complete every photo under ``src`` into ``out`` (same relative path, format and size).

    Holes come from ``region`` or ``masks``: one mask file for every photo, a folder of masks
    matched by name (IOPaint: ``photo.png`` <-> ``MASKS/photo.png``; also ``photo_mask*.png``), or
    masks beside the photos (LaMa: ``photo.png`` with ``photo_mask001.png``, ...; the default
    when neither is given). Finished results are skipped on a rerun; a photo that fails is
    listed in OUT/failures.csv (file, reason) and the batch goes on. Nothing is written outside
    ``out``; inputs are only read.
    """
    src, out = Path(src), Path(out)
    if masks is not None and region is not None:
        raise CompletionError("give one of a mask (file or folder) or a region, not both")
    if not src.is_dir():
        raise CompletionError(f"{src}: photo folder not found")
    if masks is not None and not masks.exists():
        raise CompletionError(f"{masks}: no such mask file or folder")
    if masks is None and region is None:
        if not any(mask_photo_stem(p) for p in io.list_images(src)):
            raise CompletionError(
                f"{src}: no masks beside the photos (photo_mask*.png) and no --mask or --region given; give the holes: "
                "--mask MASK.png (one for every photo) or MASK_DIR (matched by name), or --region NAME")
        masks = src
    for name, folder in (("photo", src), ("masks", masks)):
        if folder is not None and out.resolve() == folder.resolve():
            raise CompletionError(f"--out {out} is the {name} folder; results must go to a folder of their own")
    if not no_detect:
        completer.detector(thorough=False)  # fail now, not once per photo, without the extra
    photos = batch_photos(src, out, masks)
    out.mkdir(parents=True, exist_ok=True)
    failures, counts, start = [], {"completed": 0, "skipped": 0}, time.perf_counter()
    try:
        bar = tqdm(photos, desc="complete", unit="photo", disable=not progress)
        for path in bar:
            relative = path.relative_to(src)
            try:
                jobs = batch_jobs(src, relative, masks)
            except CompletionError as err:
                failures.append({"file": relative.as_posix(), "reason": str(err)})
                continue
            for mask, result in jobs:
                try:
                    sources = (path,) if mask is None else (path, mask)
                    target = output_path(out, result, sources)
                    if _result_is_current(target, sources):
                        counts["skipped"] += 1
                        continue
                    complete_file(completer, path, target, mask=mask, region=region, face=face,
                                  no_detect=no_detect, resize_mask=resize_mask, invert_mask=invert_mask)
                    counts["completed"] += 1
                except io.ImageDecodeError as err:
                    failures.append({"file": result.as_posix(), "reason": f"{Path(err.path).name}: {err.reason}"})
                except CompletionError as err:
                    failures.append({"file": result.as_posix(), "reason": str(err)})
                except Exception as err:  # one bad photo must not end a long batch: record it, go on
                    failures.append({"file": result.as_posix(), "reason": f"unexpected {type(err).__name__}: {err}"})
            bar.set_postfix(done=counts["completed"], failed=len(failures), refresh=False)
    finally:  # also after an interrupt
        io.write_csv_atomic(out / "failures.csv", BATCH_FAILURE_COLUMNS, failures)
    return BatchSummary(out=out, completed=counts["completed"], skipped=counts["skipped"],
                        failed=len(failures), seconds=time.perf_counter() - start)
