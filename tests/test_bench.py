"""Benchmarks measure one way (collaface.timing) and never fail on a timing."""

from __future__ import annotations

import pytest
import torch

from collaface import bench, cli, timing


def test_median_latency_times_only_the_runs_after_the_warm_up(monkeypatch):
    calls = []
    durations = iter([9.0, 9.0, 0.001, 0.005, 0.003])  # seconds: two warm-ups, then three timed runs
    clock = [0.0]

    def run():
        calls.append(clock[0])
        clock[0] += next(durations)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    timed = timing.median_latency(run, repeats=3, warmup=2)
    assert len(calls) == 5
    assert timed["median_ms"] == pytest.approx(3.0) and timed["min_ms"] == pytest.approx(1.0)
    assert timed["max_ms"] == pytest.approx(5.0) and (timed["repeats"], timed["warmup"]) == (3, 2)
    assert {"load_before", "load_after"} <= timed.keys()
    with pytest.raises(ValueError, match="repeats"):
        timing.median_latency(run, repeats=0)


def test_bench_inference_uses_the_shared_method_and_thread_count(monkeypatch):
    used = []
    real = timing.median_latency
    monkeypatch.setattr(bench, "median_latency", lambda run, repeats: used.append(repeats) or real(run, repeats))
    before = torch.get_num_threads()
    row = bench.measure_inference(ngf=8, repeats=3, threads=1)
    assert used == [3, 3] and row["threads"] == 1 and torch.get_num_threads() == before
    assert row["latency_ms"] > 0 and row["throughput_img_s"] > 0 and len(row["load_latency_ms"]) == 2


def test_collaface_bench_exits_0_when_a_check_does_not_hold(monkeypatch, tmp_path, capsys):
    def fake_run_bench(out_dir, **kwargs):
        report = {"machine": "test", "training": [], "inference": [], "load_average": [0.0, 0.0],
                  "checks": [{"check": "bf16 >= 1.7x fp32", "value": "1.1x", "passed": False}]}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "bench.md").write_text(bench.markdown(report))
        return report

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    assert cli.main(["bench", "--out", str(tmp_path)]) == 0
    assert "| bf16 >= 1.7x fp32 | 1.1x | no |" in capsys.readouterr().out
