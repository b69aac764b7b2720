"""``srlearn campaign``: every registered experiment, >= 3 seeds per arm, in one self-timed command.

    srlearn campaign --device cuda --budget-seconds 480 --out results/     # one GPU lease
    srlearn campaign --rehearse --out /tmp/rehearsal                       # the same path, CPU, tiny steps

The command ends by itself within ``--budget-seconds`` whatever the machine, in five phases:

1. **Stamp and GPU tests.** Device, torch, CUDA and cuDNN versions, TF32 and AMP state; a pool of worker
   processes starts (each imports torch once), and meanwhile ``pytest -m gpu`` runs in a subprocess on the
   test files that carry the marker (pass/fail counts go into the report; skipped where pytest or the
   tests are absent).
2. **Probe.** Each arm trains a few steps through the real code path (``run_arm`` with a tiny budget), in
   the pool, so the step times are measured under the same contention as the runs: the seconds per step
   (the difference of two runs, so start-up costs cancel) and the fixed cost of a run (set-up and one
   evaluation). Then the first arm is probed again alone: ``W`` x solo / concurrent seconds per step is the
   measured gain of running ``W`` workers at once (about 1 or less: use fewer workers, ``--workers``).
3. **Plan.** Every experiment gets an equal share of the remaining worker-seconds; its steps are the same
   for all its arms and seeds (a fair comparison), sized to fit that share, capped at the full-mode budget
   and bounded below by ``min_steps``; shares that a cap leaves unused go to the others. LR schedules keep
   their shape: milestones and warm-up of the mode's budget are scaled by steps / budget steps.
4. **Train.** All (experiment, arm, seed) runs go to the pool longest first. Each run has a time guard
   (``TrainConfig.time_budget`` = 1.5 x its planned training time, so a slower-than-measured GPU shortens a
   run instead of overrunning) and is not started at all when it could not end before the deadline.
5. **Assemble.** ``srlearn.experiments.run`` per experiment reuses the finished checkpoints and writes
   ``OUT/NAME/{results.json, report.md, *.png}`` as ``srlearn replicate`` does; the campaign adds its own
   block (planned and reached steps, wall times, probe, environment) to each and writes
   ``OUT/campaign.json`` and ``OUT/campaign.md``; the seed-0 weights of every arm are exported
   (``srlearn.weights.export_weights``: float16 where it moves no PSNR by more than 0.01 dB) to
   ``OUT/weights`` and, with ``export_weights=DIR``, to DIR too; everything but the checkpoints is packed
   into ``OUT/campaign.tar.gz`` (checked: at most 16 MiB, else the weights are left out of it and it says so).

From a copied tree without ``.git`` (a lent GPU machine), set ``SRLEARN_COMMIT=<sha>`` so that the results
and the weights' manifest name the commit that ran.

Models. The campaign trains the full-mode budgets (batch, patch size, lr, loss, 3 seeds) with the arms' own
presets (``presets="own"``: MIRNet ``tiny``, not the full budget's 2.65 M-parameter ``mini``): the full
presets' seed-0 weights alone weigh 42 MB in float16, over the 16 MiB archive and the 25 MB of shipped
weights, and a few hundred steps of them in an 8-minute lease teach nothing. ``presets="budget"`` keeps the
budget's presets.

Not yet run on a GPU (none was lent while this was written). Measured on a shared 2-core CPU: the
rehearsal of all 8 experiments x 3 seeds (2 steps each) took 302 s, two experiments 25-30 s; a one-thread
CPU campaign (``--device cpu --base-mode quick --seeds 1 --max-steps 5000 --budget-seconds 1500``) ended
by itself after 991 s with 410-2,000 steps per run. bf16 autocast is **off** (``amp=False``): no test has
shown yet that it leaves the reported PSNR within 0.01 dB; the knob (``--amp bf16``) exists and the
report records the state. Training data are **not** kept on the GPU: patches are cut on the CPU per item by
the experiment's own dataset (the same items as ``srlearn replicate``; 0.05 ms per 48x48 item plus 0.014 ms
of per-item seeding, 0.10 ms before the loop seeded only the CPU generator; measured on that CPU), in each worker process, so ``W`` workers prepare batches in parallel
while others use the GPU; a GPU-side data path per dataset kind is not written.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, wait, FIRST_COMPLETED
from pathlib import Path

ARCHIVE_NAME = "campaign.tar.gz"
ARCHIVE_LIMIT = 16 * 2**20
DEFAULT_SEEDS = 3
GUARD = 1.5          # a run's time guard: GUARD x its planned training seconds
N_VAL = 4            # validations per run (learning curves)
PACKING = 0.85       # the share of the workers' seconds the plan fills (list-scheduling slack)
REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------------------------- stamp
def environment(device) -> dict:
    """What ran: device, versions, TF32 and cuDNN flags, CPU count."""
    import platform

    import torch

    from .core import device_name
    dev = torch.device(device)
    env = {"device": device_name(dev), "torch": torch.__version__, "python": platform.python_version(),
           "cuda": torch.version.cuda, "cudnn": None, "cpu_count": os.cpu_count(),
           "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
           "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
           "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
           "float32_matmul_precision": torch.get_float32_matmul_precision()}
    if dev.type == "cuda":
        env["cudnn"] = torch.backends.cudnn.version()
        p = torch.cuda.get_device_properties(dev)
        env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count)
    return env


# ----------------------------------------------------------------------------------------------- budget
def campaign_budget(exp, base_mode: str, steps: int, presets: str = "own", amp=False, loader_workers: int = 0,
                    time_budget: float | None = None, n_val: int = N_VAL):
    """The budget of ``exp``'s ``base_mode`` with ``steps`` steps: milestones and warm-up scaled by
    ``steps / budget.steps`` (the schedule keeps its shape), ``n_val`` validations, the campaign's knobs."""
    b = exp.budgets[base_mode]
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    f = steps / b.steps

    def scaled(fields: dict) -> dict:   # the schedule keeps its shape: milestones and warm-up scale with the steps
        fields = dict(fields)
        if fields.get("milestones"):
            ms = sorted({max(1, round(m * f)) for m in fields["milestones"]})
            fields["milestones"] = [m for m in ms if m < steps] or [steps]
        if fields.get("warmup_steps"):
            fields["warmup_steps"] = min(int(round(fields["warmup_steps"] * f)), steps - 1)
        return fields

    train = scaled(b.train)
    arm_train = {arm: scaled(fields) for arm, fields in b.arm_train.items()}
    train.update(num_workers=int(loader_workers), amp=amp, log_every=max(1, min(train.get("log_every", 10), steps)))
    if time_budget is not None:
        train["time_budget"] = float(time_budget)
    extra = {}
    if presets == "own":
        quick = exp.budgets.get("quick")
        extra = {"preset": None, "overrides": {}} if quick is None else {"preset": quick.preset,
                                                                        "overrides": dict(quick.overrides)}
    elif presets != "budget":
        raise ValueError(f"presets must be 'own' (the arms' own presets) or 'budget' (the mode's), got {presets!r}")
    return dataclasses.replace(b, steps=steps, val_every=max(1, steps // max(1, n_val)), train=train,
                               arm_train=arm_train, **extra)


def plan_steps(costs: dict, seeds: int, workers: int, seconds: float, max_steps: dict, min_steps: int = 1,
               packing: float = PACKING, longest: float | None = None) -> dict:
    """Steps per experiment so that all runs fit ``workers`` x ``seconds`` (times ``packing``).

    ``costs[name]`` is a list of ``(seconds_per_step, fixed_seconds)``, one per arm. Each experiment gets an
    equal share; one capped by ``max_steps[name]`` hands what it leaves to the others (water-filling).
    ``longest`` caps one run's duration (a run cannot be split between workers)."""
    names = sorted(costs)
    if not names:
        return {}
    total = max(0.0, workers * seconds * packing)
    steps, open_ = {}, list(names)
    while open_:
        used = sum(_exp_seconds(costs[n], seeds, steps[n]) for n in steps)
        share = max(0.0, total - used) / len(open_)
        def fits(n: str) -> int:   # the steps of experiment n that fit its share (and the longest run)
            per_step = seeds * sum(t for t, _ in costs[n])
            fixed = seeds * sum(c for _, c in costs[n])
            s = math.floor((share - fixed) / per_step) if per_step > 0 else max_steps[n]
            if longest is not None:
                worst = max(t for t, _ in costs[n]) or 1e-9
                s = min(s, math.floor((longest - max(c for _, c in costs[n])) / worst))
            return s

        capped = []
        for n in open_:
            if fits(n) >= max_steps[n]:
                capped.append(n)
                steps[n] = int(max_steps[n])
        if not capped:
            for n in open_:
                steps[n] = int(max(min_steps, min(fits(n), max_steps[n])))
            break
        open_ = [n for n in open_ if n not in capped]
    return steps


def _exp_seconds(cost, seeds, steps) -> float:
    return seeds * sum(c + steps * t for t, c in cost)


# ---------------------------------------------------------------------------------------------- workers
def _init_worker(threads: int) -> None:
    import torch
    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, threads)))


def _ready() -> int:
    import torch  # noqa: F401  (the import is what warms a worker)
    from . import core  # noqa: F401
    return os.getpid()


def _probe(name: str, arm: str, base_mode: str, device: str, presets: str, steps: tuple, amp) -> dict:
    """Seconds per step and fixed seconds of one arm, from two short runs through ``run_arm``."""
    from . import core
    exp = core.get_experiment(name)
    a = exp.arm(arm)
    out = {"experiment": name, "arm": arm, "pid": os.getpid()}
    try:
        timings = []
        for k in steps:
            b = campaign_budget(exp, base_mode, k, presets=presets, amp=amp, n_val=1)
            b = dataclasses.replace(b, val_every=0)
            row = core.run_arm(exp, a, 0, base_mode, None, device, False, budget=b)
            timings.append((k, row["history"]["train_time"], row["train_seconds"]))
        (k1, t1, w1), (k2, t2, w2) = timings
        per_step = max((t2 - t1) / (k2 - k1), t2 / k2 * 0.5, 1e-6)
        out.update(seconds_per_step=per_step, fixed_seconds=max(w2 - t2, 0.0), steps=list(steps),
                   train_seconds=[t1, t2], wall_seconds=[w1, w2], ok=True)
    except Exception as e:  # noqa: BLE001 - a broken arm is reported, the campaign goes on
        out.update(ok=False, error=f"{type(e).__name__}: {e}")
    return out


def _train(name: str, arm: str, seed: int, base_mode: str, device: str, out_dir: str, budget_dict: dict,
           start_by: float) -> dict:
    """One (experiment, arm, seed) run, unless it could not finish before the deadline."""
    from . import core
    res = {"experiment": name, "arm": arm, "seed": seed, "pid": os.getpid(), "started": time.time()}
    if time.time() > start_by:
        res.update(ok=False, skipped=True, error="not started: it could not have ended before the deadline")
        return res
    try:
        exp = core.get_experiment(name)
        budget = core.Budget(**budget_dict)
        row = core.run_arm(exp, exp.arm(arm), seed, base_mode, Path(out_dir), device, False, budget=budget)
        h = row["history"] or {}
        res.update(ok=True, psnr=row["psnr"], ssim=row["ssim"], steps=h.get("last_step"),
                   stopped_by=h.get("stopped_by"), train_seconds=h.get("train_time"), wall_seconds=row["train_seconds"])
    except Exception as e:  # noqa: BLE001
        res.update(ok=False, error=f"{type(e).__name__}: {e}")
    res["ended"] = time.time()
    return res


def _assemble(name: str, base_mode: str, device: str, out_dir: str, seeds: int, arms: list, budget_dict: dict) -> dict:
    from . import core
    try:
        res = core.run(name, mode=base_mode, seeds=seeds, out=out_dir, device=device, progress=False, arms=arms,
                       budget=core.Budget(**budget_dict))
        return {"experiment": name, "ok": True, "wall_seconds": res["wall_seconds"]}
    except Exception as e:  # noqa: BLE001
        return {"experiment": name, "ok": False, "error": f"{type(e).__name__}: {e}"}


# ------------------------------------------------------------------------------------------------ tests
def gpu_tests(timeout: float, log_path: Path | None = None) -> dict:
    """``pytest -m gpu`` on the test files that use the marker, in a subprocess; counts from its summary."""
    tests = REPO / "tests"
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"ran": False, "reason": "pytest is not importable here"}
    files = sorted(str(p.relative_to(REPO)) for p in tests.glob("test_*.py") if "mark.gpu" in p.read_text())
    if not files:
        return {"ran": False, "reason": f"no test file with a gpu marker under {tests}"}
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *files]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
        text, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        rc = "timeout"
    if log_path is not None:
        log_path.write_text(text)
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error", "deselected")}
    tail = text.strip().splitlines()[-1] if text.strip() else ""
    for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", tail):
        counts["error" if word.startswith("error") else word] += int(n)
    return {"ran": True, "command": " ".join(cmd[1:]), "files": files, "returncode": rc, "summary": tail,
            "seconds": round(time.perf_counter() - t0, 1), **counts}


class _Utilisation(threading.Thread):
    """Samples ``torch.cuda.utilization`` (needs NVML) every ``every`` seconds; mean and samples."""

    def __init__(self, device, every: float = 1.0):
        super().__init__(daemon=True)
        self.device, self.every, self.samples, self.error = device, every, [], None
        self._stop_event = threading.Event()

    def run(self):
        import torch
        while not self._stop_event.is_set():
            try:
                self.samples.append(int(torch.cuda.utilization(self.device)))
            except Exception as e:  # noqa: BLE001 - no NVML: utilisation is not measurable
                self.error = f"{type(e).__name__}: {e}"
                return
            self._stop_event.wait(self.every)

    def stop(self) -> dict | None:
        self._stop_event.set()
        self.join(timeout=5)
        if not self.samples:
            return None
        return {"mean_percent": round(sum(self.samples) / len(self.samples), 1), "samples": len(self.samples),
                "every_seconds": self.every}


# -------------------------------------------------------------------------------------------- campaign
def run_campaign(out: str | os.PathLike, device: str = "cuda", budget_seconds: float = 480, seeds: int = DEFAULT_SEEDS,
                 experiments: list[str] | None = None, workers: int | None = None, rehearse: bool = False,
                 base_mode: str | None = None, amp=False, presets: str = "own", probe_steps: tuple | None = None,
                 min_steps: int | None = None, max_steps: int | None = None, run_gpu_tests: bool = True,
                 export_weights: str | os.PathLike | None = None, loader_workers: int = 0,
                 archive_limit: int = ARCHIVE_LIMIT, log=print, started: float | None = None) -> dict:
    """Run the campaign (see the module's docstring); return the ``campaign.json`` dict.

    ``started`` (a ``time.time()``) is when the budget began: the CLI passes the moment it was imported, so
    that importing torch counts too."""
    t_start = float(started) if started is not None else time.time()
    deadline = t_start + float(budget_seconds)
    import multiprocessing

    import torch

    from . import core

    if rehearse:
        device = "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} was asked for but CUDA is not available here; use --device cpu "
                           "(or --rehearse for the CPU rehearsal)")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    base_mode = base_mode or ("quick" if rehearse else "full")
    names = experiments or core.list_experiments()
    for n in names:
        core.get_experiment(n)
    cpus = os.cpu_count() or 1
    if workers is None:
        workers = 1 if dev.type == "cpu" else max(1, min(8, cpus // 2))
    # probe lengths: on a GPU a step costs milliseconds and the set-up and evaluations dominate a probe, so 20
    # timed steps cost little and steady the estimate; on a CPU 5 (measured: 2-3x spread between identical
    # models on a loaded 2-core machine with 5)
    probe_steps = tuple(probe_steps or ((1, 2) if rehearse else (5, 25) if dev.type == "cuda" else (3, 8)))
    if rehearse and max_steps is None:
        max_steps = 2
    min_steps = int(min_steps if min_steps is not None else (1 if rehearse else 50))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    amp_state = {"amp": amp, "note": "bf16 autocast off: no test has yet shown the reported PSNR unchanged "
                                     "within 0.01 dB under it" if not amp else "bf16 autocast on (asked for)"}
    info = {"version": 1, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "budget_seconds": budget_seconds,
            "rehearsal": bool(rehearse), "base_mode": base_mode, "seeds": seeds, "workers": workers,
            "presets": presets, "environment": environment(dev), "amp": amp_state, "commit": _commit(),
            "experiments": {}, "phases": {}}
    log(f"campaign: {len(names)} experiments, {seeds} seeds, {workers} workers on {info['environment']['device']}, "
        f"budget {budget_seconds:.0f} s -> {out}")

    def phase(name, t0):
        info["phases"][name] = round(time.time() - t0, 2)

    # 1. worker pool (warming up) while the GPU tests run
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, cpus // workers) if dev.type == "cuda" else max(1, torch.get_num_threads() // workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,))
    try:
        t0 = time.time()
        warm = [pool.submit(_ready) for _ in range(workers)]
        if run_gpu_tests:
            info["gpu_tests"] = gpu_tests(timeout=max(10.0, 0.15 * budget_seconds), log_path=out / "gpu_tests.log")
        else:
            info["gpu_tests"] = {"ran": False, "reason": "switched off (--no-gpu-tests)"}
        log(f"gpu tests: {info['gpu_tests'].get('summary') or info['gpu_tests'].get('reason')}")
        wait(warm, timeout=max(1.0, deadline - time.time()))
        phase("gpu_tests_and_pool_start", t0)

        # 2. probe: one arm alone, then every arm concurrently
        t0 = time.time()
        arms = [(n, a.name) for n in names for a in core.get_experiment(n).arms]
        args = (base_mode, device, presets, probe_steps, amp)
        futures = [pool.submit(_probe, n, a, *args) for n, a in arms]
        probes = [_result(f, deadline - 0.5 * budget_seconds, {"experiment": n, "arm": a, "ok": False})
                  for f, (n, a) in zip(futures, arms)]
        # then the first arm alone on a warm worker: concurrent vs solo seconds per step
        solo = _result(pool.submit(_probe, *arms[0], *args), deadline - 0.4 * budget_seconds, {"ok": False})
        phase("probe", t0)
        info["probe"] = {"steps": list(probe_steps), "solo": solo, "arms": probes}
        if workers > 1 and solo.get("ok") and probes[0].get("ok"):
            info["probe"]["concurrency_gain"] = round(workers * solo["seconds_per_step"] / probes[0]["seconds_per_step"], 2)
        log("probe: " + ", ".join(f"{p['experiment']}/{p['arm']} {1e3 * p['seconds_per_step']:.1f} ms/step"
                                  if p.get("ok") else f"{p['experiment']}/{p['arm']} FAILED" for p in probes))

        # 3. plan
        t_plan = time.time()
        ok = {(p["experiment"], p["arm"]): p for p in probes if p.get("ok")}
        # after training: assembly (in parallel per experiment: every run evaluated again), the weights
        # (two evaluations per arm, here) and the archive; a probe's fixed seconds hold about two evaluations
        fixed = {k: p["fixed_seconds"] for k, p in ok.items()}
        per_exp = [sum(v for (n, _), v in fixed.items() if n == name) for name in names]
        assemble_reserve = max(0.05 * budget_seconds,
                               10.0 + (max(per_exp) if per_exp else 0) * seeds / 2 + sum(fixed.values()))
        info["assemble_reserve_seconds"] = round(assemble_reserve, 1)
        train_seconds = deadline - t_plan - assemble_reserve
        costs, caps = {}, {}
        for n in names:
            exp_arms = [a.name for a in core.get_experiment(n).arms]
            if all((n, a) in ok for a in exp_arms):
                costs[n] = [(ok[(n, a)]["seconds_per_step"], ok[(n, a)]["fixed_seconds"] * (1 + (N_VAL - 1) / 2))
                            for a in exp_arms]
                caps[n] = int(max_steps) if max_steps else core.get_experiment(n).budgets[base_mode].steps
            else:
                bad = [p for p in probes if p["experiment"] == n and not p.get("ok")]
                info["experiments"][n] = {"ok": False, "error": "probe failed: " + "; ".join(
                    f"{p['arm']}: {p['error']}" for p in bad)}
        steps = plan_steps(costs, seeds, workers, max(0.0, train_seconds), caps, min_steps=min_steps,
                           longest=0.6 * max(0.0, train_seconds))
        budgets = {}
        for n, s in steps.items():
            exp = core.get_experiment(n)
            guard = GUARD * max(t for t, _ in costs[n]) * s + 1.0
            b = campaign_budget(exp, base_mode, s, presets=presets, amp=amp, loader_workers=loader_workers,
                                time_budget=guard)
            budgets[n] = dataclasses.asdict(b)
            info["experiments"][n] = {"ok": True, "steps_planned": s, "time_guard_seconds": round(guard, 1),
                                      "mode_budget_steps": exp.budgets[base_mode].steps,
                                      "planned_seconds": round(_exp_seconds(costs[n], seeds, s), 1),
                                      "preset": b.preset, "runs": []}
        phase("plan", t_plan)
        log("plan: " + ", ".join(f"{n} {s} steps" for n, s in steps.items()) + f" in {train_seconds:.0f} s")

        # 4. train, longest first
        t0 = time.time()
        util = _Utilisation(dev) if dev.type == "cuda" else None
        if util is not None:
            util.start()
        jobs = []
        for n in steps:
            for a, (t, c) in zip([a.name for a in core.get_experiment(n).arms], costs[n]):
                for seed in range(seeds):
                    jobs.append((c + steps[n] * t, n, a, seed))
        jobs.sort(key=lambda j: -j[0])
        end_train = deadline - assemble_reserve
        pending = {pool.submit(_train, n, a, seed, base_mode, device, str(out / n), budgets[n],
                               end_train - d): (n, a, seed) for d, n, a, seed in jobs}
        runs = []
        while pending:
            done, _ = wait(list(pending), timeout=max(0.5, end_train + 0.5 * assemble_reserve - time.time()),
                           return_when=FIRST_COMPLETED)
            if not done:   # past every guard: stop waiting, keep what finished
                for f, key in pending.items():
                    f.cancel()
                    runs.append({"experiment": key[0], "arm": key[1], "seed": key[2], "ok": False,
                                 "error": "still running at the deadline: abandoned"})
                break
            for f in done:
                pending.pop(f)
                r = f.result()
                runs.append(r)
                if r.get("ok"):
                    log(f"  {r['experiment']}/{r['arm']} seed {r['seed']}: {r['steps']} steps "
                        f"({r['stopped_by']}), PSNR {r['psnr']:.3f} dB, {r['wall_seconds']:.1f} s")
                else:
                    log(f"  {r['experiment']}/{r['arm']} seed {r['seed']}: {r.get('error')}")
        phase("train", t0)
        if util is not None:
            info["gpu_utilisation"] = util.stop() or {"measurable": False, "error": util.error}

        # 5. assemble: per experiment, the arms whose seeds 0..k-1 all finished
        t0 = time.time()
        futures = {}
        for n in steps:
            mine = [r for r in runs if r["experiment"] == n]
            info["experiments"][n]["runs"] = sorted(mine, key=lambda r: (r["arm"], r["seed"]))
            exp_arms = [a.name for a in core.get_experiment(n).arms]
            finished = {(r["arm"], r["seed"]) for r in mine if r.get("ok")}
            k = 0
            while k < seeds and any((a, k) in finished for a in exp_arms):
                k += 1
            keep = [a for a in exp_arms if all((a, s) in finished for s in range(k))] if k else []
            while k > 1 and len(keep) < len(exp_arms):   # fewer seeds, but every arm, if that is possible
                alt = [a for a in exp_arms if all((a, s) in finished for s in range(k - 1))]
                if len(alt) <= len(keep):
                    break
                k, keep = k - 1, alt
            info["experiments"][n].update(seeds_reported=k, arms_reported=keep)
            if not keep:
                info["experiments"][n].update(ok=False, error="no run finished")
                continue
            futures[pool.submit(_assemble, n, base_mode, device, str(out / n), k, keep, budgets[n])] = n
        for f, n in futures.items():
            r = _result(f, deadline - 0.5 * assemble_reserve, {"experiment": n, "ok": False})
            if not r["ok"]:
                info["experiments"][r["experiment"]].update(ok=False, error=r["error"])
        phase("assemble", t0)
    finally:
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:   # a worker still busy past the deadline (the pool has no public kill)
            p.join(timeout=0.1)
            if p.is_alive():
                p.terminate()

    # campaign block in each results.json and report.md
    for n, e in info["experiments"].items():
        if e.get("ok"):
            _stamp_results(out / n, info, e)
    # weights, summary, archive
    t0 = time.time()
    done_dirs = [out / n for n, e in info["experiments"].items() if e.get("ok") and (out / n / "results.json").is_file()]
    if done_dirs:
        from ..weights import export_weights as _export
        try:
            note = "campaign" + (" rehearsal" if rehearse else "")
            man = _export(done_dirs, out / "weights", note=note, device=dev)
            info["weights"] = {"dir": "weights", "files": len(man["weights"]), "total_bytes": man["total_bytes"]}
            if export_weights is not None:
                man2 = _export(done_dirs, export_weights, note=note, device=dev)
                info["weights"]["exported_to"] = str(export_weights)
                info["weights"]["exported_bytes"] = man2["total_bytes"]
        except Exception as e:  # noqa: BLE001 - results are kept even if the weights cannot be exported
            info["weights"] = {"error": f"{type(e).__name__}: {e}"}
    phase("weights", t0)
    info["wall_seconds"] = round(time.time() - t_start, 1)
    _write(out / "campaign.json", json.dumps(info, indent=1, default=str))
    _write(out / "campaign.md", campaign_markdown(info))
    info["archive"] = pack(out, limit=archive_limit)
    info["wall_seconds"] = round(time.time() - t_start, 1)
    _write(out / "campaign.json", json.dumps(info, indent=1, default=str))
    log(f"campaign done in {info['wall_seconds']:.0f} s (budget {budget_seconds:.0f} s): {out / ARCHIVE_NAME} "
        f"{info['archive']['bytes'] / 2**20:.2f} MiB" + ("" if info["archive"]["weights_included"] else
                                                         " (weights left out: over the limit)"))
    return info


def _commit() -> str:
    """The checkout's commit; ``$SRLEARN_COMMIT`` where git cannot tell (a copied tree without ``.git``)."""
    from .core import _commit as git_commit
    sha = git_commit()
    return os.environ.get("SRLEARN_COMMIT") or sha if sha == "unknown" else sha


def _result(future, until: float, failed: dict) -> dict:
    """``future.result()`` waiting at most until the time ``until`` (at least 1 s); a failure dict instead."""
    try:
        return future.result(timeout=max(1.0, until - time.time()))
    except Exception as e:  # noqa: BLE001 - a timeout or a dead worker: recorded, the campaign goes on
        future.cancel()
        return {**failed, "error": f"{type(e).__name__}: {e}" if str(e) else type(e).__name__}


def _stamp_results(rdir: Path, info: dict, e: dict) -> None:
    p = rdir / "results.json"
    res = json.loads(p.read_text())
    runs = {(r["arm"], r["seed"]): r for r in e["runs"] if r.get("ok")}
    res["campaign"] = {k: info[k] for k in ("budget_seconds", "rehearsal", "base_mode", "workers", "presets",
                                            "environment", "amp", "commit")}
    if res.get("commit") == "unknown":     # a tree copied without .git: the commit the caller named
        res["commit"] = info["commit"]
    res["campaign"].update(steps_planned=e["steps_planned"], time_guard_seconds=e["time_guard_seconds"],
                           gpu_utilisation=info.get("gpu_utilisation"))
    for r in res["runs"]:
        c = runs.get((r["arm"], r["seed"]), {})
        h = r.get("history") or {}
        r["steps_run"] = h.get("last_step", c.get("steps"))
        r["stopped_by"] = h.get("stopped_by", c.get("stopped_by"))
        r["campaign_wall_seconds"] = c.get("wall_seconds")
    _write(p, json.dumps(res, indent=1, default=float))
    env = info["environment"]
    lines = ["", "## Campaign", "",
             f"- {'rehearsal (CPU, a few steps: not results)' if info['rehearsal'] else 'campaign'}; "
             f"{info['workers']} worker processes; budget {info['budget_seconds']:.0f} s",
             f"- device {env['device']}; torch {env['torch']}; CUDA {env['cuda']}; cuDNN {env['cudnn']}; "
             f"TF32 matmul {env['tf32_matmul']}, TF32 cuDNN {env['tf32_cudnn']}; AMP {info['amp']['amp']}",
             f"- steps planned {e['steps_planned']} (mode budget {e['mode_budget_steps']}; milestones and warm-up "
             f"scaled), time guard {e['time_guard_seconds']} s per run; presets: {e['preset'] or 'the arms’ own'}",
             "", "| arm | seed | steps run | stopped by | train s | wall s |", "|---|---|---|---|---|---|"]
    for r in res["runs"]:
        h = r.get("history") or {}
        lines.append(f"| {r['arm']} | {r['seed']} | {r['steps_run']} | {r['stopped_by']} | "
                     f"{h.get('train_time', float('nan')):.1f} | {r.get('campaign_wall_seconds') or float('nan'):.1f} |")
    rp = rdir / "report.md"
    _write(rp, rp.read_text() + "\n".join(lines) + "\n")


def campaign_markdown(info: dict) -> str:
    env = info["environment"]
    g = info.get("gpu_tests", {})
    util = info.get("gpu_utilisation")
    lines = [f"# srlearn campaign{' (rehearsal: CPU, a few steps — not results)' if info['rehearsal'] else ''}", "",
             f"- started {info['started']}; commit {info['commit']}; wall {info.get('wall_seconds', 0):.0f} s of a "
             f"{info['budget_seconds']:.0f} s budget; phases (s): " + ", ".join(f"{k} {v}" for k, v in info["phases"].items()),
             f"- device {env['device']}; torch {env['torch']}; CUDA {env['cuda']}; cuDNN {env['cudnn']}; "
             f"TF32 matmul {env['tf32_matmul']}, cuDNN {env['tf32_cudnn']}; cudnn.benchmark {env['cudnn_benchmark']}",
             f"- AMP: {info['amp']['note']}",
             f"- {info['workers']} worker processes; measured concurrency gain "
             f"{info.get('probe', {}).get('concurrency_gain', 'n/a')} (W x solo s/step / concurrent s/step, first arm)",
             f"- GPU utilisation: {util['mean_percent']} % mean over {util['samples']} samples" if util and
             util.get("mean_percent") is not None else "- GPU utilisation: not measured",
             f"- GPU tests (`pytest -m gpu`): " + (f"{g['passed']} passed, {g['failed']} failed, {g['skipped']} skipped, "
                                                   f"{g['error']} errors ({g['summary']})" if g.get("ran")
                                                   else f"not run: {g.get('reason')}"),
             "", "| experiment | steps planned | seeds | arms | runs ok | steps reached (min–max) | stopped by time | status |",
             "|---|---|---|---|---|---|---|---|"]
    for n, e in info["experiments"].items():
        runs = e.get("runs", [])
        okr = [r for r in runs if r.get("ok")]
        reached = [r["steps"] for r in okr if r.get("steps") is not None]
        timed = sum(1 for r in okr if r.get("stopped_by") == "time_budget")
        lines.append(f"| {n} | {e.get('steps_planned', '–')} | {e.get('seeds_reported', '–')} | "
                     f"{', '.join(e.get('arms_reported', [])) or '–'} | {len(okr)}/{len(runs)} | "
                     f"{(str(min(reached)) + '–' + str(max(reached))) if reached else '–'} | {timed} | "
                     f"{'ok' if e.get('ok') else 'FAILED: ' + str(e.get('error'))} |")
    w = info.get("weights")
    if w:
        lines += ["", f"Weights: {w}"]
    return "\n".join(lines) + "\n"


def pack(out: Path, limit: int = ARCHIVE_LIMIT) -> dict:
    """``OUT/campaign.tar.gz`` of everything but the checkpoints; without the weights if over ``limit``."""
    target = out / ARCHIVE_NAME

    def members(with_weights: bool):
        for p in sorted(out.rglob("*")):
            rel = p.relative_to(out)
            if not p.is_file() or p == target or rel.name.startswith(".") or "checkpoints" in rel.parts:
                continue
            if not with_weights and rel.parts[0] == "weights":
                continue
            yield p, rel

    for with_weights in (True, False):
        tmp = out / f".{ARCHIVE_NAME}.tmp{os.getpid()}"
        with tarfile.open(tmp, "w:gz") as tar:
            for p, rel in members(with_weights):
                tar.add(p, arcname=str(Path("results") / rel))
        size = tmp.stat().st_size
        if size <= limit or not with_weights:
            os.replace(tmp, target)
            return {"path": str(target), "bytes": size, "limit": limit, "weights_included": with_weights,
                    "within_limit": size <= limit}
        tmp.unlink()
    raise AssertionError("unreachable")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


__all__ = ["run_campaign", "campaign_budget", "plan_steps", "gpu_tests", "pack", "environment", "ARCHIVE_LIMIT"]
