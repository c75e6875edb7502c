"""The trainer: real steps, checkpoints, exact resume (also after kill -9), bad checkpoints,
non-finite losses, 2-process gloo data parallelism, export."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_dataset import make_prepared
from test_sources import make_celeba_layout

from collaface import config as C
from collaface import model_format
from collaface.models.build import build_model, example_batch
from collaface.training import step as step_module
from collaface.training.loop import TrainingError, train
from collaface.training.step import lr_scale, make_optimizers, set_learning_rates

FAST = ["train.precision=fp32", "train.channels_last=false", "data.num_workers=0", "train.log_every=1"]


def small_cfg(root, *overrides, preset="small"):
    return C.load_config(preset, [f"data.root={root}", *FAST, *overrides])


@pytest.fixture()
def data(tmp_path):
    make_prepared(tmp_path / "data", n=12, size=64)
    return tmp_path / "data"


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = model_format.load_latest(run_dir / "checkpoints")[1]
    return {**{f"G.{k}": v for k, v in state["generator"].items()},
            **{f"D.{k}": v for k, v in state["discriminators"].items()}}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_run_folder_contents(data, tmp_path):
    run = tmp_path / "run"
    pos = train(small_cfg(data, "train.max_steps=4", "train.sample_every=2", "train.epochs=3"), run, progress=False)
    assert pos.step == 4 and pos.epoch == 1 and pos.batch_in_epoch == 1  # 3 batches per epoch
    assert (run / "config.yaml").is_file() and C.load_config(str(run / "config.yaml")).model.ngf == 8
    lines = (run / "stats.jsonl").read_text().splitlines()
    assert len(lines) == 4 and '"g/rec_i"' in lines[0] and '"img_per_s"' in lines[0]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000002.png", "step-00000004.png"]
    assert list((run / "tb").iterdir())
    assert [p.name for p in model_format.list_checkpoints(run / "checkpoints")] == ["ckpt-00000004.pt"]


def test_resume_is_exact(data, tmp_path):
    """N + N steps (stopped and resumed mid-epoch) give the same weights as 2N in one go."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(small_cfg(data, "train.max_steps=8", "train.epochs=5"), straight, progress=False)
    train(small_cfg(data, "train.max_steps=4", "train.epochs=5"), resumed, progress=False)
    pos = train(small_cfg(data, "train.max_steps=8", "train.epochs=5"), resumed, progress=False)
    assert pos.step == 8
    assert_same_weights(weights(straight), weights(resumed))
    steps = [json.loads(line)["step"] for line in (resumed / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_kill_9_then_resume_matches_uninterrupted(data, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    args = ["small", "--data", str(data), *FAST, "train.epochs=50", "train.checkpoint_every=3", "--no-progress"]
    train(small_cfg(data, "train.epochs=50", "train.max_steps=12"), straight, progress=False)
    proc = subprocess.Popen([sys.executable, "-m", "collaface", "train", *args, "--out", str(killed),
                             "train.max_steps=1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((killed / "checkpoints").glob("ckpt-*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert model_format.list_checkpoints(killed / "checkpoints"), "no checkpoint before the kill"
    first = model_format.list_checkpoints(killed / "checkpoints")[0].name
    # Continue to step 12 from whatever the kill left (a newer checkpoint may exist past 12).
    for path in model_format.list_checkpoints(killed / "checkpoints"):
        if int(path.stem.split("-")[1]) > 12:
            path.unlink()
    train(small_cfg(data, "train.epochs=50", "train.max_steps=12"), killed, progress=False)
    assert first.startswith("ckpt-")
    assert_same_weights(weights(straight), weights(killed))


@pytest.mark.parametrize("to_group, sig, workers", [
    (False, signal.SIGTERM, 0),
    (True, signal.SIGTERM, 2),  # Ctrl-C, ``kill -- -PGID`` or a preemption reach the data workers too
    (True, signal.SIGINT, 2),
], ids=["sigterm", "group-sigterm", "group-sigint"])
def test_a_stop_signal_saves_a_checkpoint(data, tmp_path, to_group, sig, workers):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "collaface", "train", "small", "--data", str(data), *FAST,
                             "train.epochs=1000", "train.checkpoint_every=100000", f"data.num_workers={workers}",
                             "--no-progress", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not (run / "stats.jsonl").is_file() and time.time() < deadline:
        time.sleep(0.05)
    if to_group:  # worst order a group signal can arrive in: the data workers first, then the rest
        for worker in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
            os.kill(int(worker), sig)
        time.sleep(1)
        assert proc.poll() is None, "the trainer died with its data workers"
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err
    assert model_format.list_checkpoints(run / "checkpoints")


def test_resume_with_a_new_budget_updates_config_yaml(data, tmp_path, caplog):
    run = tmp_path / "run"
    train(small_cfg(data, "train.max_steps=2", "train.epochs=5"), run, progress=False)
    assert C.load_config(str(run / "config.yaml")).train.max_steps == 2
    with caplog.at_level("INFO", logger="collaface.training.loop"):
        train(small_cfg(data, "train.max_steps=3", "train.epochs=5"), run, progress=False)
    assert C.load_config(str(run / "config.yaml")).train.max_steps == 3
    assert "train.max_steps: 2 -> 3" in caplog.text
    assert sorted(p.name for p in run.iterdir() if p.suffix in (".yaml", ".partial")) == ["config.yaml"]


def test_a_resumed_run_trains_at_its_new_learning_rates(data, tmp_path):
    """train.lr and train.d_lr_ratio may change on resume (TTUR trials continue a run): the next
    steps use them, not the rates saved with the optimisers."""
    run = tmp_path / "run"
    train(small_cfg(data, "train.max_steps=1", "train.epochs=5", "train.lr=1e-4"), run, progress=False)
    train(small_cfg(data, "train.max_steps=2", "train.epochs=5", "train.lr=3e-4", "train.d_lr_ratio=4"),
          run, progress=False)
    _, state = model_format.load_latest(run / "checkpoints")
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(3e-4)
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(12e-4)
    with pytest.raises(C.ConfigError, match="d_lr_ratio"):
        small_cfg(data, "train.d_lr_ratio=0")


def test_truncated_checkpoint_falls_back_to_previous(data, tmp_path):
    run = tmp_path / "run"
    train(small_cfg(data, "train.max_steps=4", "train.epochs=5", "train.checkpoint_every=2"), run, progress=False)
    older, newest = model_format.list_checkpoints(run / "checkpoints")
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.raises(model_format.CheckpointError, match=f"{newest.name}: not a readable checkpoint"):
        model_format.load_checkpoint(newest)
    path, state = model_format.load_latest(run / "checkpoints")
    assert path == older and state["step"] == 2
    torch.save({"weights": torch.zeros(2)}, run / "foreign.pt")
    with pytest.raises(model_format.CheckpointError, match="not a collaface checkpoint"):
        model_format.load_checkpoint(run / "foreign.pt")
    pos = train(small_cfg(data, "train.max_steps=5", "train.epochs=5", "train.checkpoint_every=2"), run, progress=False)
    assert pos.step == 5  # resumed from step 2, not from the truncated step 4


def test_run_folder_keeps_its_model(data, tmp_path):
    run = tmp_path / "run"
    train(small_cfg(data, "train.max_steps=1"), run, progress=False)
    with pytest.raises(C.ConfigError, match="model.ngf: run has 8, now 16"):
        train(small_cfg(data, "train.max_steps=2", "model.ngf=16"), run, progress=False)


def test_non_finite_losses_stop_the_run_and_keep_the_checkpoint(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(small_cfg(data, "train.max_steps=2", "train.epochs=9"), run, progress=False)
    real = step_module.losses.generator_loss

    def nan_loss(*args, **kwargs):
        total, metrics = real(*args, **kwargs)
        return total * float("nan"), metrics

    monkeypatch.setattr(step_module.losses, "generator_loss", nan_loss)
    with pytest.raises(TrainingError, match="3 non-finite losses in a row"):
        train(small_cfg(data, "train.max_steps=20", "train.epochs=9", "train.max_nonfinite=3"), run, progress=False)
    assert [p.name for p in model_format.list_checkpoints(run / "checkpoints")] == ["ckpt-00000002.pt"]


@pytest.mark.parametrize("preset", ["m_i", "m_s", "m_d", "m_is", "m_id", "m_isd", "m_isd_star"])
def test_every_preset_trains(data, tmp_path, preset):
    cfg = small_cfg(data, "train.max_steps=2", "data.image_size=32", "model.ngf=4", "model.ndf=4",
                    "train.batch_size=4", preset=preset)
    train(cfg, tmp_path / preset, progress=False)
    record = (tmp_path / preset / "stats.jsonl").read_text().splitlines()[-1]
    for task in cfg.model.tasks:
        assert f'"g/rec_{task}"' in record and f'"d/real_{task}"' in record
    assert "nan" not in record.lower()


def test_real_faces_step(shared_faces, tmp_path):
    """One real training step on shared CelebA photos (official landmarks; tasks i and d)."""
    make_celeba_layout(shared_faces, tmp_path / "celeba", n_images=8)
    cfg = C.load_config("small", [*FAST, f"data.root={tmp_path / 'celeba'}", "data.source=celeba",
                                  "model.tasks=[i, d]", "data.image_size=64", "train.max_steps=2",
                                  "train.epochs=2"])
    pos = train(cfg, tmp_path / "run", progress=False)
    assert pos.step == 2
    import json
    record = json.loads((tmp_path / "run" / "stats.jsonl").read_text().splitlines()[-1])
    assert all(torch.isfinite(torch.tensor(v)) for k, v in record.items() if "/" in k)
    assert 0 < record["g/rec_i"] < 2 and 0 < record["d/total"] < 10


def test_export_then_load_gives_identical_outputs(data, tmp_path):
    run = tmp_path / "run"
    train(small_cfg(data, "train.max_steps=2"), run, progress=False)
    _, state = model_format.resolve_checkpoint(run)
    model_format.export_generator(state, tmp_path / "model")
    cfg, from_ckpt = model_format.load_generator(run)
    _, from_export = model_format.load_generator(tmp_path / "model")
    batch = example_batch(cfg, 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = from_ckpt(batch["masked"], batch["mask"]), from_export(batch["masked"], batch["mask"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model_format.export_generator(state, tmp_path / "half", half=True)
    full_size = (tmp_path / "model" / "generator.safetensors").stat().st_size
    assert (tmp_path / "half" / "generator.safetensors").stat().st_size < 0.6 * full_size
    (tmp_path / "model" / "generator.safetensors").write_bytes(b"broken")
    with pytest.raises(model_format.CheckpointError, match="generator.safetensors: unreadable weights file"):
        model_format.load_generator(tmp_path / "model")
    (tmp_path / "model" / "generator.safetensors").unlink()
    with pytest.raises(model_format.CheckpointError, match="generator.safetensors: missing"):
        model_format.load_generator(tmp_path / "model")


def test_export_averages_the_newest_checkpoints(data, tmp_path):
    run = tmp_path / "run"
    cfg = small_cfg(data, "train.max_steps=4", "train.epochs=3", "train.checkpoint_every=1", "train.keep_checkpoints=4")
    train(cfg, run, progress=False)
    newest = model_format.list_checkpoints(run / "checkpoints")[-3:]
    states = [model_format.load_checkpoint(p)["generator"] for p in newest]
    out = tmp_path / "avg"
    done = subprocess.run([sys.executable, "-m", "collaface", "export", str(run), "--average-last", "3",
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "steps 2, 3, 4" in done.stdout
    _cfg, weights = model_format.load_exported(out)
    assert json.loads((out / "config.json").read_text())["averaged_steps"] == [2, 3, 4]
    conv = next(k for k in weights if k.endswith("weight") and weights[k].dim() == 4)
    assert not torch.equal(states[0][conv], states[2][conv])
    torch.testing.assert_close(weights[conv], (states[0][conv] + states[1][conv] + states[2][conv]) / 3)
    running = next(k for k in weights if k.endswith("running_var"))
    torch.testing.assert_close(weights[running], sum(s[running] for s in states) / 3)
    counter = next(k for k in weights if k.endswith("num_batches_tracked"))
    assert torch.equal(weights[counter], states[2][counter])
    model_format.load_generator(out)  # builds and loads
    model_format.list_checkpoints(run / "checkpoints")[-1].write_bytes(b"half-written")
    with pytest.raises(model_format.CheckpointError, match="3 loadable checkpoints, cannot average the newest 4"):
        model_format.average_generators(run / "checkpoints", 4)
    done = subprocess.run([sys.executable, "-m", "collaface", "export", str(run / "checkpoints" / "ckpt-00000002.pt"),
                           "--average-last", "2", "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert done.returncode == 1 and "--average-last needs a run folder" in done.stderr
    assert not (tmp_path / "x").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from collaface.training.distributed import DistInfo, broadcast_module
    from collaface.training.speed import SpeedSettings

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cfg = C.load_config("small", ["data.image_size=32", "model.ngf=4", "model.ndf=4", f"train.seed={rank}"])
    model = build_model(cfg)  # different init per rank on purpose: broadcast must fix it
    info = DistInfo(rank, world, 0)
    broadcast_module(model, info)
    opt_g, opt_d = step_module.make_optimizers(model, cfg)
    for k in range(2):  # different data per rank
        batch = example_batch(cfg, 4, torch.Generator().manual_seed(100 * rank + k))
        step_module.train_step(model, batch, cfg, opt_g, opt_d, SpeedSettings("fp32", False), info)
    flat = torch.cat([t.detach().reshape(-1).float() for t in [*model.parameters(), *model.buffers()]])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        torch.save({"same": all(torch.equal(gathered[0], g) for g in gathered[1:])}, out)
    dist.barrier()  # no rank tears gloo down while the other still saves (abort at exit)
    dist.destroy_process_group()


def test_two_process_gloo_ranks_stay_identical(tmp_path):
    out = tmp_path / "result.pt"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    assert torch.load(out)["same"]


def test_torchrun_two_processes_only_rank0_writes(data, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         "-m", "collaface", "train", "small", "--data", str(data), *FAST, "train.max_steps=2", "train.batch_size=2",
         "train.max_minutes=600", "train.lr_decay_minutes=600", "--no-progress", "--out", str(run)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in model_format.list_checkpoints(run / "checkpoints")] == ["ckpt-00000002.pt"]
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(records) == 2
    # the time budget and lr decay run on the ranks' shared clock: lr just under its base value
    assert all(0 < r["lr"] < C.load_config("small").train.lr for r in records[1:])


def test_speed_probe_picks_a_candidate_and_explicit_settings_skip_it():
    from collaface.training.hardware import candidates, choose_speed_settings
    from collaface.training.speed import SpeedSettings

    cpu = torch.device("cpu")
    tiny = ["data.image_size=32", "model.ngf=4", "model.ndf=4", "train.batch_size=2"]
    fixed = C.load_config("small", [*tiny, "train.precision=fp32", "train.channels_last=true"])
    assert choose_speed_settings(fixed, cpu) == SpeedSettings("fp32", True)
    auto = C.load_config("small", [*tiny, "train.precision=auto", "train.channels_last=auto"])
    options = candidates(auto, cpu)
    assert SpeedSettings("fp32", False) in options and len(options) >= 2
    assert choose_speed_settings(auto, cpu) in options  # timed in a separate process


def test_warmup_trains_the_generator_only_then_the_full_objective(data, tmp_path):
    run = tmp_path / "run"
    cfg = small_cfg(data, "train.max_steps=2", "train.warmup_steps=2")
    torch.manual_seed(cfg.train.seed)
    model_before = build_model(cfg)
    train(cfg, run, progress=False)
    after = weights(run)
    d_before = {f"D.{k}": v for k, v in model_before.discriminators.state_dict().items()}
    g_before = {f"G.{k}": v for k, v in model_before.generator.state_dict().items()}
    assert_same_weights(d_before, {k: v for k, v in after.items() if k.startswith("D.")})
    assert any(not torch.equal(g_before[k], after[k]) for k in g_before)
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["adversarial"] for r in records] == [False, False]
    assert not any(k.startswith(("d/", "g/adv")) for r in records for k in r)
    train(small_cfg(data, "train.max_steps=3", "train.warmup_steps=2"), run, progress=False)
    last = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 3 and last["adversarial"] and "d/real_i" in last and "g/adv_i" in last
    assert any(not torch.equal(d_before[k], weights(run)[k]) for k in d_before)


def test_time_budget_stops_with_a_checkpoint_and_counts_over_resumes(data, tmp_path):
    run = tmp_path / "run"
    budget = ["train.epochs=50", "train.max_minutes=0.000001"]  # spent by the first step
    pos = train(small_cfg(data, *budget), run, progress=False)
    assert pos.step == 1 and pos.train_seconds > 0
    assert [p.name for p in model_format.list_checkpoints(run / "checkpoints")] == ["ckpt-00000001.pt"]
    again = train(small_cfg(data, *budget), run, progress=False)
    assert again.step == 1 and again.train_seconds == pytest.approx(pos.train_seconds)
    more = train(small_cfg(data, "train.epochs=50", "train.max_steps=3", "train.max_minutes=60"), run, progress=False)
    assert more.step == 3 and more.train_seconds > pos.train_seconds


def test_lr_decay_falls_linearly_to_zero_over_the_last_minutes_of_the_budget(data):
    cfg = small_cfg(data, "train.max_minutes=10", "train.lr_decay_minutes=4")
    assert [lr_scale(cfg, s) for s in (0, 360, 480, 600, 700)] == pytest.approx([1, 1, 0.5, 0, 0])
    assert lr_scale(small_cfg(data, "train.max_minutes=10"), 590) == 1
    model = build_model(cfg)
    opt_g, opt_d = make_optimizers(model, cfg)
    set_learning_rates(opt_g, opt_d, cfg, 0.25)
    assert opt_g.param_groups[0]["lr"] == opt_d.param_groups[0]["lr"] == pytest.approx(cfg.train.lr / 4)
    for bad in (["train.lr_decay_minutes=1"], ["train.max_minutes=1", "train.lr_decay_minutes=2"],
                ["train.max_minutes=1", "train.lr_decay_minutes=-1"]):
        with pytest.raises(C.ConfigError, match="lr_decay_minutes"):
            small_cfg(data, *bad)


def test_training_logs_the_decayed_lr(data, tmp_path):
    run = tmp_path / "run"
    train(small_cfg(data, "train.max_steps=2", "train.log_every=1", "train.max_minutes=60",
                    "train.lr_decay_minutes=60"), run, progress=False)
    lrs = [json.loads(line)["lr"] for line in (run / "stats.jsonl").read_text().splitlines()]
    base = small_cfg(data).train.lr
    assert len(lrs) == 2 and lrs[0] == pytest.approx(base) and 0 < lrs[1] < lrs[0]
