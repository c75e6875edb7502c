"""Train the default model on a lent GPU machine within a time budget; return the weights in $OUT.

The default recipe (issue 19) in two phases, each a ``collaface train`` run of its own:

1. ``l1``:  preset ``default_l1`` (reconstruction-only generator), ``--l1-share`` of the time;
2. ``gan``: preset ``default`` with ``train.init_from=`` the l1 run (adversarial fine-tune).

Usage on the device machine (repo root, the pack carried in work/device_pack)::

    python3 scripts/device_train.py --minutes 8

``--minutes`` is the wall-clock budget of the whole script: the phases' ``train.max_minutes``
are what is left after the startup and export estimates. Every phase gets a hard stop too
(SIGTERM, which saves a checkpoint; SIGKILL 60 s later), and whatever a phase has is exported
(``collaface export RUN --out DIR --half``) and bundled into $OUT before the next phase starts:
a crash, a stopped phase or a signal to this script still returns what exists. A phase that fails
early without a checkpoint (a first run on a new machine) is retried once with fp32, no
channels_last and at most 4 loader workers; fewer workers are used where /dev/shm is small.

$OUT afterwards (flat, names of letters/digits/._-, parts of at most ``--part-mib`` MiB)::

    l1.tar.part00 ...     the l1 bundle: l1/model/ (generator.safetensors fp16, config.json,
                          generator.onnx) and l1/run/ (config.yaml, stats.jsonl, tb/, train.log,
                          the newest sample grids)
    gan.tar.part00 ...    the same for gan
    SHA256SUMS            sha256 of every part and every joined .tar
    device_train.log      what this script did, the machine, phase summaries

Join on the CPU machine: ``python scripts/device_join.py FILES_DIR --out work/device_result``
(checks every checksum), then ``collaface export work/device_result/gan/model --interpolate
work/device_result/l1/model --alpha A --out ...`` to pick alpha on validation.

Only the standard library: collaface runs as ``python -m collaface`` with PYTHONPATH=src, so the
script works on a machine without an installed collaface (and without mediapipe or gradio).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
OUT_LIMITS = {"files": 8, "file_mib": 16, "total_mib": 64, "name": r"[A-Za-z0-9._-]+"}
SAMPLE_GRIDS_KEPT = 3


class Budget:
    """Wall-clock deadline of the whole script."""

    def __init__(self, minutes: float):
        self.start = time.monotonic()
        self.deadline = self.start + minutes * 60

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class Script:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.runs = Path(args.runs)
        self.budget = Budget(args.minutes)
        self.log_path = self.out / "device_train.log"
        self.stop_signal: int | None = None
        self.child: subprocess.Popen | None = None
        self.sums: dict[str, str] = {}
        # Start-up and export+bundle seconds: the estimates until a phase has measured them.
        self.startup_seconds = args.startup_seconds
        self.export_seconds = args.export_seconds

    # ------------------------------------------------------------------ logging, environment

    def log(self, message: str) -> None:
        line = f"[{self.budget.elapsed():7.1f}s] {message}"
        print(line, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(REPO / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def describe_machine(self) -> None:
        probe = ("import json, os, sys, torch; c = torch.cuda.is_available(); print(json.dumps({"
                 "'python': sys.version.split()[0], 'torch': torch.__version__, 'cuda': c, "
                 "'gpu': torch.cuda.get_device_name(0) if c else None, "
                 "'bf16': bool(c and torch.cuda.is_bf16_supported()), 'cpus': os.cpu_count()}))")
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=self.env(),
                                timeout=120)
        self.log(f"machine: {result.stdout.strip() or result.stderr.strip()[-500:]}")

    def check_shared_memory(self) -> None:
        """Loader workers hand batches over in /dev/shm: fewer workers where it is small (containers)."""
        a = self.args
        try:
            stat = os.statvfs("/dev/shm")
        except OSError:
            return
        free = stat.f_bavail * stat.f_frsize
        batch_bytes = a.batch_size * 1.0e6  # ~0.9 MB a 128-px sample: image, masked, mask, parsing, heatmaps
        need = a.num_workers * 2 * batch_bytes  # prefetch_factor 2
        self.log(f"/dev/shm: {free / MIB:.0f} MiB free; {a.num_workers} workers hold up to {need / MIB:.0f} MiB")
        if a.num_workers and need > free / 2:
            workers = max(1, int(free / 2 / (2 * batch_bytes)))
            self.log(f"  too little for {a.num_workers} workers: data.num_workers={workers}")
            a.num_workers = workers

    # ------------------------------------------------------------------ running children

    def run_child(self, command: list[str], log_file: Path, wall_limit: float) -> int:
        """Run ``command`` with output to ``log_file``; SIGTERM after ``wall_limit`` s (or when this
        script is signalled), SIGKILL ``--kill-grace`` s later. Returns the exit code."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a", encoding="utf-8") as handle:
            handle.write("$ " + " ".join(command) + "\n")
            handle.flush()
            self.child = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=self.env(),
                                          cwd=REPO, start_new_session=True)
            stop_at = time.monotonic() + max(wall_limit, 1.0)
            termed_at = None
            try:
                while True:
                    try:
                        return self.child.wait(timeout=1.0)
                    except subprocess.TimeoutExpired:
                        pass
                    now = time.monotonic()
                    if termed_at is None and (now >= stop_at or self.stop_signal is not None):
                        self.log(f"  stopping {command[3] if len(command) > 3 else command[0]}: "
                                 + ("signal to this script" if self.stop_signal is not None else "wall limit")
                                 + " (SIGTERM: a checkpoint is saved)")
                        self.child.send_signal(signal.SIGTERM)
                        termed_at = now
                    elif termed_at is not None and now - termed_at > self.args.kill_grace:
                        self.log("  no exit after SIGTERM: SIGKILL")
                        self.child.kill()
                        return self.child.wait()
            finally:
                self.child = None

    def collaface(self, args: list[str], log_file: Path, wall_limit: float) -> int:
        return self.run_child([sys.executable, "-m", "collaface", *args], log_file, wall_limit)

    # ------------------------------------------------------------------ phases

    def phase_overrides(self, phase: str, train_minutes: float) -> list[str]:
        a = self.args
        lr = a.l1_lr if phase == "l1" else a.gan_lr
        overrides = [
            f"train.batch_size={a.batch_size}", f"train.lr={lr}", f"data.num_workers={a.num_workers}",
            f"train.max_minutes={train_minutes:.4f}", f"train.checkpoint_every={a.checkpoint_every}",
            "train.keep_checkpoints=2", f"train.sample_every={a.sample_every}", f"train.log_every={a.log_every}",
        ]
        if a.max_steps:
            overrides.append(f"train.max_steps={a.max_steps}")
        if phase == "gan":
            init = a.init_from or str(self.runs / "l1")
            overrides.append(f"train.init_from={init}")
        return overrides + a.set + (a.l1_set if phase == "l1" else a.gan_set)

    def train_phase(self, phase: str, share: float, later_phases: int) -> bool:
        """Train one phase; True when its run folder has a checkpoint to export."""
        a = self.args
        run_dir = self.runs / phase
        later = later_phases * (self.startup_seconds + self.export_seconds)
        available = self.budget.left() - self.startup_seconds - self.export_seconds - later
        train_seconds = available * share
        if train_seconds < a.min_phase_seconds:
            self.log(f"{phase}: skipped, {train_seconds:.0f} s of training left (< --min-phase-seconds)")
            return False
        preset = a.l1_preset if phase == "l1" else a.gan_preset
        overrides = self.phase_overrides(phase, train_seconds / 60)
        wall_limit = train_seconds + self.startup_seconds + a.stop_slack
        self.log(f"{phase}: collaface train {preset}, {train_seconds / 60:.2f} min of training "
                 f"(hard stop after {wall_limit:.0f} s), overrides: {' '.join(overrides)}")
        started = time.monotonic()
        code = self.collaface(["train", preset, "--data", str(a.data), "--out", str(run_dir), "--no-progress",
                               *overrides], run_dir / "train.log", wall_limit)
        wall = time.monotonic() - started
        self.log(f"{phase}: train exited with {code} after {wall:.0f} s")
        left = train_seconds - wall
        if (code != 0 and self.stop_signal is None and not any((run_dir / "checkpoints").glob("ckpt-*.pt"))
                and left > a.min_phase_seconds and not a.no_retry):
            # A first run on a new machine: retry once without bf16, channels_last and most workers.
            self.summarise(run_dir, code)
            safe = ["train.precision=fp32", "train.channels_last=false",
                    f"data.num_workers={min(a.num_workers, 4)}"]
            self.log(f"{phase}: failed without a checkpoint; retrying once with {' '.join(safe)} "
                     f"for {left / 60:.2f} min")
            for item in run_dir.iterdir():  # a fresh run folder, the first try's log kept
                if item.is_dir():
                    shutil.rmtree(item)
                elif item.name != "train.log":
                    item.unlink()
            overrides = [o for o in overrides if not o.startswith("train.max_minutes=")]
            overrides += [f"train.max_minutes={left / 60:.4f}", *safe]
            train_seconds = left
            started = time.monotonic()
            code = self.collaface(["train", preset, "--data", str(a.data), "--out", str(run_dir), "--no-progress",
                                   *overrides], run_dir / "train.log", left + self.startup_seconds + a.stop_slack)
            wall = time.monotonic() - started
            self.log(f"{phase}: retry exited with {code} after {wall:.0f} s")
        if code == 0 and not a.max_steps:  # the loop ran its budget: the rest was start-up and the final save
            self.startup_seconds = max(15.0, 1.3 * (wall - train_seconds) + 10)
        self.summarise(run_dir, code)
        has_checkpoint = any((run_dir / "checkpoints").glob("ckpt-*.pt"))
        if not has_checkpoint:
            self.log(f"{phase}: no checkpoint to export")
        return has_checkpoint

    def summarise(self, run_dir: Path, code: int) -> None:
        stats = run_dir / "stats.jsonl"
        records = []
        if stats.is_file():
            for line in stats.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    records.append(json.loads(line))
        if records:
            last = records[-1]
            speeds = [r["img_per_s"] for r in records[1:] or records]
            losses = {k: round(v, 4) for k, v in last.items() if "/" in k and isinstance(v, (int, float))}
            self.log(f"  steps {last['step']}, epochs {last['epoch']}, train {last['train_seconds']:.0f} s, "
                     f"median {sorted(speeds)[len(speeds) // 2]:.0f} img/s; last losses {json.dumps(losses)}")
        if code != 0 or not records:
            tail = (run_dir / "train.log").read_text(errors="replace")[-3000:] if (run_dir / "train.log").is_file() \
                else "(no log)"
            self.log("  train.log tail:\n" + tail)

    def export_phase(self, phase: str) -> None:
        run_dir = self.runs / phase
        model_dir = self.runs / f"{phase}_model"
        shutil.rmtree(model_dir, ignore_errors=True)
        started = time.monotonic()
        code = self.collaface(["export", str(run_dir), "--out", str(model_dir), "--half"], run_dir / "export.log",
                              max(self.budget.left() - 20, 60))
        self.log(f"{phase}: export exited with {code} after {time.monotonic() - started:.0f} s")
        if code != 0:
            self.log("  export.log tail:\n" + (run_dir / "export.log").read_text(errors="replace")[-2000:])

    # ------------------------------------------------------------------ returning files

    def bundle(self, phase: str) -> None:
        """Tar the phase's model and logs, split the tar into parts in $OUT, record checksums."""
        run_dir = self.runs / phase
        model_dir = self.runs / f"{phase}_model"
        tar_path = self.runs / f"{phase}.tar"
        with tarfile.open(tar_path, "w") as tar:
            if model_dir.is_dir():
                tar.add(model_dir, arcname=f"{phase}/model")
            for name in ("config.yaml", "stats.jsonl", "train.log", "export.log", "tb"):
                if (run_dir / name).exists():
                    tar.add(run_dir / name, arcname=f"{phase}/run/{name}")
            for grid in sorted((run_dir / "samples").glob("*.png"))[-SAMPLE_GRIDS_KEPT:]:
                tar.add(grid, arcname=f"{phase}/run/samples/{grid.name}")
        for old in self.out.glob(f"{phase}.tar.part*"):
            old.unlink()
        part_bytes = int(self.args.part_mib * MIB)
        self.sums[f"{phase}.tar"] = sha256(tar_path)
        with open(tar_path, "rb") as source:
            index = 0
            while chunk := source.read(part_bytes):
                part = self.out / f"{phase}.tar.part{index:02d}"
                part.write_bytes(chunk)
                self.sums[part.name] = hashlib.sha256(chunk).hexdigest()
                index += 1
        for name in [n for n in self.sums if n.startswith(f"{phase}.tar.part")]:
            if not (self.out / name).is_file():
                del self.sums[name]
        (self.out / "SHA256SUMS").write_text("".join(f"{h}  {n}\n" for n, h in sorted(self.sums.items())))
        self.log(f"{phase}: bundled {tar_path.stat().st_size / MIB:.2f} MiB into {index} part(s) in $OUT"
                 + ("" if model_dir.is_dir() else " (logs only: no exported model)"))

    def check_out(self) -> list[str]:
        """Problems with $OUT against the limits of what comes back (empty when none)."""
        files = [f for f in self.out.rglob("*") if f.is_file()]
        problems = []
        if len(files) > OUT_LIMITS["files"]:
            problems.append(f"{len(files)} files (at most {OUT_LIMITS['files']})")
        for f in files:
            if f.stat().st_size > OUT_LIMITS["file_mib"] * MIB:
                problems.append(f"{f.name}: {f.stat().st_size / MIB:.1f} MiB (at most {OUT_LIMITS['file_mib']})")
            if not re.fullmatch(OUT_LIMITS["name"], f.name) or f.parent != self.out:
                problems.append(f"{f.relative_to(self.out)}: not a plain name directly in $OUT")
        total = sum(f.stat().st_size for f in files)
        if total > OUT_LIMITS["total_mib"] * MIB:
            problems.append(f"{total / MIB:.1f} MiB in all (at most {OUT_LIMITS['total_mib']})")
        return problems

    # ------------------------------------------------------------------ main

    def handle_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    def run(self) -> int:
        a = self.args
        self.out.mkdir(parents=True, exist_ok=True)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.handle_signal)
        self.log(f"device_train: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}, "
                 f"budget {a.minutes} min, phases {','.join(a.phases)}, data {a.data}, runs {self.runs}")
        if not (Path(a.data) / "manifest.csv").is_file():
            self.log(f"error: {a.data}/manifest.csv not found: carry the pack (scripts/pack_training_set.py)")
            return 2
        pack_info = Path(a.data) / "pack.json"
        if pack_info.is_file():
            info = json.loads(pack_info.read_text())
            self.log(f"pack: {info.get('faces')} faces {info.get('splits')}, {info.get('size')} px "
                     f"{info.get('format')} q{info.get('quality')}, {info.get('mib')} MiB")
        try:
            self.describe_machine()
        except (subprocess.SubprocessError, OSError) as err:
            self.log(f"machine: probe failed ({err})")
        self.check_shared_memory()
        if self.runs.exists():
            shutil.rmtree(self.runs)
        self.runs.mkdir(parents=True)
        shares = {"l1": a.l1_share, "gan": 1.0}
        ok, trained_l1 = True, False
        for index, phase in enumerate(a.phases):
            if self.stop_signal is not None:
                self.log(f"{phase}: skipped (signal {self.stop_signal})")
                ok = False
                continue
            if phase == "gan" and "l1" in a.phases and not a.init_from and not trained_l1:
                self.log("gan: skipped, the l1 phase left no generator to fine-tune")
                ok = False
                continue
            later = len(a.phases) - index - 1
            share = shares[phase] if later else 1.0
            trained, export_start = False, time.monotonic()
            try:
                trained = self.train_phase(phase, share, later)
                trained_l1 = trained_l1 or (phase == "l1" and trained)
                export_start = time.monotonic()
                if trained:
                    self.export_phase(phase)
                ok = ok and trained and (self.runs / f"{phase}_model" / "generator.safetensors").is_file()
            except Exception as err:
                self.log(f"{phase}: {type(err).__name__}: {err}")
                ok = False
            finally:
                try:
                    if (self.runs / phase).exists():
                        self.bundle(phase)
                        if trained and ok:
                            self.export_seconds = max(15.0, 1.3 * (time.monotonic() - export_start) + 10)
                except Exception as err:
                    self.log(f"{phase}: bundling failed: {type(err).__name__}: {err}")
                    ok = False
        problems = self.check_out()
        for problem in problems:
            self.log(f"$OUT over a limit: {problem}")
        files = sorted(f.name for f in self.out.iterdir() if f.is_file())
        self.log(f"done in {self.budget.elapsed():.0f} s ({'ok' if ok and not problems else 'INCOMPLETE'}); "
                 f"$OUT: {', '.join(files)}")
        return 0 if ok and not problems else 1


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, required=True, help="wall-clock budget of the whole script")
    p.add_argument("--data", default="work/device_pack", help="the pack (scripts/pack_training_set.py)")
    p.add_argument("--out", default=os.environ.get("OUT", ""), help="where the parts go (default: $OUT)")
    p.add_argument("--runs", default="work/device_runs", help="run folders (replaced; not returned)")
    p.add_argument("--phases", default="l1,gan", type=lambda s: [x for x in s.split(",") if x],
                   help="l1,gan (default), l1 or gan (gan alone: give --init-from)")
    p.add_argument("--l1-preset", default="default_l1")
    p.add_argument("--gan-preset", default="default")
    p.add_argument("--init-from", default="", help="gan phase's train.init_from (default: the l1 run)")
    p.add_argument("--l1-share", type=float, default=0.4, help="fraction of the training time for l1")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--l1-lr", type=float, default=4e-4, help="default_l1's 2e-4 x sqrt(64 / 16)")
    p.add_argument("--gan-lr", type=float, default=2e-4, help="default's 1e-4 x sqrt(64 / 16)")
    p.add_argument("--num-workers", type=int, default=max(0, min(12, (os.cpu_count() or 1) - 2)))
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--sample-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--max-steps", type=int, default=0, help="per phase (0 = the time budget only)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for both phases")
    p.add_argument("--l1-set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for l1")
    p.add_argument("--gan-set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for gan")
    p.add_argument("--startup-seconds", type=float, default=45.0,
                   help="estimate: a train command's start (imports, CUDA, model, data, sample faces)")
    p.add_argument("--export-seconds", type=float, default=45.0, help="estimate: export + bundle of a phase")
    p.add_argument("--stop-slack", type=float, default=60.0,
                   help="a phase is stopped (SIGTERM) this long after its planned end")
    p.add_argument("--kill-grace", type=float, default=60.0, help="SIGKILL this long after SIGTERM")
    p.add_argument("--min-phase-seconds", type=float, default=10.0, help="skip a phase with less training time")
    p.add_argument("--no-retry", action="store_true",
                   help="no second try (fp32, no channels_last, <= 4 workers) of a phase that failed early")
    p.add_argument("--part-mib", type=float, default=15.0, help="size of the returned parts (limit: 16 MiB)")
    args = p.parse_args(argv)
    if not args.out:
        p.error("--out is required when $OUT is not set")
    for name in ("out", "data", "runs"):  # the children run in the repo root
        setattr(args, name, str(Path(getattr(args, name)).resolve()))
    if args.init_from:
        args.init_from = str(Path(args.init_from).resolve())
    unknown = [x for x in args.phases if x not in ("l1", "gan")]
    if unknown or not args.phases or len(set(args.phases)) != len(args.phases):
        p.error(f"--phases: l1 and/or gan, got {','.join(args.phases)}")
    if args.phases == ["gan"] and not args.init_from:
        p.error("--phases gan needs --init-from (an exported model, run or checkpoint)")
    if not 0 < args.l1_share < 1:
        p.error("--l1-share must be between 0 and 1")
    if not 0 < args.part_mib <= OUT_LIMITS["file_mib"]:
        p.error(f"--part-mib must be in (0, {OUT_LIMITS['file_mib']}]")
    return args


def main(argv: list[str] | None = None) -> int:
    return Script(parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
