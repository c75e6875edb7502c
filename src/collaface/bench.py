"""``collaface bench``: training and inference speed and memory of the collaGAN networks.

Training: one explicit D + G step per batch of random faces (``models.build.example_batch``)
at 128 px for each setting — fp32 NCHW, fp32 channels_last, bf16 autocast (where the hardware
has bf16), torch.compile (fp32). All settings of one width are timed in one process,
**interleaved** (one step of each setting per round), and each figure is the fastest round
after the warm-up: separate processes running the same setting differed by up to 10% on the
shared 2-core VM, which would swamp the 5% "auto picks right" check. ``auto`` is what
``train.precision=auto`` / ``train.channels_last=auto`` choose (the trainer's own probe), shown
with the interleaved speed of that choice. Peak RSS comes from a separate short run of each
setting in its own process. The G/D split is the time of a generator-only step
(reconstruction losses, no discriminators) against the full step.

Inference latency is measured as ``scripts/bench_complete.py`` measures the model stage:
:func:`collaface.timing.median_latency` (``--threads``, default 1; warm-up; median of N; the
load average noted). The checks below are reported, never turned into a failing exit code: a
benchmark measures, and a timing on a shared machine is no verdict.

Achieved GFLOP/s counts conv MACs x 2 with: generator forward + backward = 3x its forward;
each discriminator runs real and fake forward + backward in the D phase (6x) and forward +
input-gradient in the G phase (2x).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from collaface import config as cfgmod
from collaface.models.build import build_model, example_batch, model_costs
from collaface.timing import THREADS, load_average, median_latency
from collaface.training.hardware import bf16_supported, choose_speed_settings, cpu_description
from collaface.training.loop import compile_model
from collaface.training.speed import SpeedSettings
from collaface.training.step import make_optimizers, train_step

WIDTHS = ((32, 32), (64, 64))
AUTO_TOLERANCE = 0.05
BF16_MIN_SPEEDUP = 1.7


def _config(ngf: int, ndf: int, batch_size: int, precision="fp32", channels_last=False) -> cfgmod.Config:
    return cfgmod.load_config("m_isd_star", [f"model.ngf={ngf}", f"model.ndf={ndf}", f"train.batch_size={batch_size}",
                                             f"train.precision={precision}", f"train.channels_last={channels_last}"])


def _batch(cfg: cfgmod.Config, batch_size: int, channels_last: bool) -> dict[str, torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    batch = example_batch(cfg, batch_size, torch.Generator().manual_seed(0))
    return {k: v.contiguous(memory_format=fmt) for k, v in batch.items()}


def _setting(name: str) -> SpeedSettings:
    return SpeedSettings("bf16" if name.startswith("bf16") else "fp32", name.endswith("_cl"))


def _prepared(cfg: cfgmod.Config, name: str, batch_size: int):
    """(model, optimisers, batch, settings) ready to train one setting."""
    settings = _setting(name)
    torch.manual_seed(0)
    model = build_model(cfg)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    if name == "compile":
        compile_model(model)
    opt_g, opt_d = make_optimizers(model, cfg)
    return model, opt_g, opt_d, _batch(cfg, batch_size, settings.channels_last), settings


def measure_training(ngf: int, ndf: int, batch_size: int, names: list[str], warmup: int, rounds: int) -> list[dict]:
    """Interleaved timing of every setting in ``names`` (this process). -> one row per setting."""
    cfg = _config(ngf, ndf, batch_size)
    g_cfg = cfgmod.load_config("m_isd_star", [f"model.ngf={ngf}", f"model.ndf={ndf}", "loss.adv_i=0", "loss.adv_s=0",
                                              "loss.adv_d=0"])
    runs = {name: _prepared(cfg, name, batch_size) for name in names}
    full = {name: [] for name in names}
    g_only = {name: [] for name in names}
    for round_ in range(warmup + rounds):
        for name, (model, opt_g, opt_d, batch, settings) in runs.items():
            for run_cfg, times in ((cfg, full[name]), (g_cfg, g_only[name])):
                start = time.perf_counter()
                train_step(model, batch, run_cfg, opt_g, opt_d, settings)
                if round_ >= warmup:
                    times.append(time.perf_counter() - start)
    costs = model_costs(build_model(cfg), cfg)
    flops = 2 * (3 * costs["generator"]["macs"] + sum(8 * v["macs"] for k, v in costs.items() if k.startswith("D_")))
    rows = []
    for name in names:
        step, g_step = min(full[name]), min(g_only[name])
        rows.append({"ngf": ngf, "ndf": ndf, "batch": batch_size, "setting": name, "chosen": str(_setting(name)),
                     "step_s": step, "img_per_s": batch_size / step, "gflops": flops * batch_size / step / 1e9,
                     "g_only_step_s": g_step, "g_share": min(1.0, g_step / step)})
    return rows


def measure_peak_rss(ngf: int, ndf: int, batch_size: int, name: str) -> dict:
    """Peak resident memory of two training steps of one setting (run in its own process)."""
    cfg = _config(ngf, ndf, batch_size)
    model, opt_g, opt_d, batch, settings = _prepared(cfg, name, batch_size)
    for _ in range(2):
        train_step(model, batch, cfg, opt_g, opt_d, settings)
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure_inference(ngf: int, repeats: int, threads: int = THREADS) -> dict:
    """Generator latency at batch 1 and throughput at batch 64 on ``threads`` CPU threads:
    medians of :func:`median_latency` (batch 64 with a tenth of the repeats, at least 3)."""
    cfg = _config(ngf, 32, 1)
    model = build_model(cfg).generator.eval()
    out = {"ngf": ngf, "threads": threads}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            for batch_size, key in ((1, "latency_ms"), (64, "throughput_img_s")):
                batch = _batch(cfg, batch_size, False)
                timed = median_latency(lambda batch=batch: model(batch["masked"], batch["mask"]),
                                       repeats if batch_size == 1 else max(3, repeats // 10))
                out[key] = timed["median_ms"] if batch_size == 1 else batch_size / timed["median_ms"] * 1000
                out[f"load_{key}"] = [timed["load_before"], timed["load_after"]]
    finally:
        torch.set_num_threads(previous)
    return out


def _run_worker(job: dict) -> dict | list:
    result = subprocess.run([sys.executable, "-m", "collaface.bench", "--worker", json.dumps(job)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return {**job, "error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return (f"{cpu_description()}, {torch.get_num_threads()} threads, {platform.python_implementation()} "
            f"torch {torch.__version__}")


def run_bench(out_dir: Path, batch_size: int = 16, warmup: int = 2, steps: int = 8, compile_: bool = True,
              widths=WIDTHS, threads: int = THREADS, repeats: int = 20) -> dict:
    """All measurements and the checks (reported, not enforced), JSON + Markdown in out_dir.
    threads, repeats: of the inference latency (see :func:`measure_inference`)."""
    device = torch.device("cpu")
    names = ["fp32", "fp32_cl"] + (["bf16", "bf16_cl"] if bf16_supported(device) else [])
    names += ["compile"] if compile_ else []
    rows = []
    for ngf, ndf in widths:
        measured = _run_worker({"kind": "train", "ngf": ngf, "ndf": ndf, "batch": batch_size, "names": names,
                                "warmup": warmup, "steps": steps})
        if isinstance(measured, dict):  # the worker failed
            measured["setting"] = "all"
            rows.append(measured)
            print(_row_text(measured), flush=True)
            continue
        for row in measured:
            job = {"kind": "rss", "ngf": ngf, "ndf": ndf, "batch": batch_size, "setting": row["setting"]}
            row.update(_run_worker(job))
        chosen = choose_speed_settings(_config(ngf, ndf, batch_size, "auto", "auto"), device)
        twin = next(r for r in measured if r["chosen"] == str(chosen) and r["setting"] != "compile")
        measured.append({**twin, "setting": "auto"})
        for row in measured:
            print(_row_text(row), flush=True)
        rows += measured
    load = load_average()
    inference = [_run_worker({"kind": "infer", "ngf": ngf, "repeats": repeats, "threads": threads})
                 for ngf in sorted({w[0] for w in widths})]
    checks = _checks(rows, bf16_supported(device))
    report = {"machine": machine(), "training": rows, "inference": inference, "checks": checks,
              "load_average": [load, load_average()]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2))
    (out_dir / "bench.md").write_text(markdown(report))
    return report


def _row_text(row: dict) -> str:
    if "error" in row:
        return f"ngf{row['ngf']}/ndf{row['ndf']} {row['setting']}: failed ({row['error']})"
    rss = f"{row['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in row else "n/a"
    return (f"ngf{row['ngf']}/ndf{row['ndf']} {row['setting']:8s} ({row['chosen']}): {row['img_per_s']:.2f} img/s, "
            f"{row['gflops']:.0f} GFLOP/s, G share {row['g_share']:.0%}, peak RSS {rss}")


def _checks(rows: list[dict], native_bf16: bool) -> list[dict]:
    checks = []
    ok_rows = [r for r in rows if "error" not in r]
    for ngf, ndf in sorted({(r["ngf"], r["ndf"]) for r in ok_rows}):
        group = {r["setting"]: r for r in ok_rows if (r["ngf"], r["ndf"]) == (ngf, ndf)}
        fastest = max(group.values(), key=lambda r: r["img_per_s"])
        if "auto" in group:
            ratio = group["auto"]["img_per_s"] / fastest["img_per_s"]
            checks.append({"check": f"ngf{ngf}/ndf{ndf}: auto ({group['auto']['chosen']}) within 5% of fastest "
                                    f"({fastest['setting']})",
                           "value": f"{ratio:.1%}", "passed": ratio >= 1 - AUTO_TOLERANCE})
        if native_bf16 and "bf16" in group and "fp32" in group:
            best_bf16 = max(r["img_per_s"] for s, r in group.items() if s.startswith("bf16"))
            speedup = best_bf16 / group["fp32"]["img_per_s"]
            checks.append({"check": f"ngf{ngf}/ndf{ndf}: bf16 >= {BF16_MIN_SPEEDUP}x fp32 NCHW",
                           "value": f"{speedup:.2f}x", "passed": speedup >= BF16_MIN_SPEEDUP})
    return checks


def markdown(report: dict) -> str:
    lines = [f"Machine: {report['machine']}", "",
             "| ngf/ndf | setting | runs as | img/s | GFLOP/s | G-only step share | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|"]
    for r in report["training"]:
        if "error" in r:
            lines.append(f"| {r['ngf']}/{r['ndf']} | {r['setting']} | failed: {r['error']} | | | | |")
        else:
            lines.append(f"| {r['ngf']}/{r['ndf']} | {r['setting']} | {r['chosen']} | {r['img_per_s']:.2f} | "
                         f"{r['gflops']:.0f} | {r['g_share']:.0%} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "| generator | threads | batch 1 latency (ms, median) | batch 64 throughput (img/s) |",
              "|---|---|---|---|"]
    for r in report["inference"]:
        latency, throughput = r.get("latency_ms", float("nan")), r.get("throughput_img_s", float("nan"))
        lines.append(f"| ngf{r['ngf']} | {r.get('threads', '')} | {latency:.1f} | {throughput:.1f} |")
    before, after = report["load_average"]
    lines += ["", f"Load average during the inference timing: {before:.2f} -> {after:.2f}.",
              "", "| check (reported, never a failing exit) | measured | holds |", "|---|---|---|"]
    lines += [f"| {c['check']} | {c['value']} | {'yes' if c['passed'] else 'no'} |" for c in report["checks"]]
    return "\n".join(lines) + "\n"


def _worker_main(job: dict) -> None:
    if job["kind"] == "train":
        result = measure_training(job["ngf"], job["ndf"], job["batch"], job["names"], job["warmup"], job["steps"])
    elif job["kind"] == "rss":
        result = measure_peak_rss(job["ngf"], job["ndf"], job["batch"], job["setting"])
    else:
        result = measure_inference(job["ngf"], job["repeats"], job["threads"])
    print(json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    _worker_main(json.loads(parser.parse_args().worker))
