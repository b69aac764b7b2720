"""The ``srlearn`` command: list, doctor, replicate, evaluate, bench.

    srlearn list                                   models, presets, experiments, benchmarks, datasets
    srlearn doctor                                 torch, device, GPU, torchvision, data cache
    srlearn replicate NAME|all --mode quick|full|auto [--seeds N] --out DIR
    srlearn evaluate (--model NAME | --checkpoint PATH | --weights EXPERIMENT/ARM) --images HR_DIR [--lr LR_DIR]
                     --scale S [--json FILE]
    srlearn bench NAME [--device cpu|cuda] [--quick]
    srlearn campaign --device cuda --budget-seconds 480 --out results/ [--export-weights data/weights]
    srlearn campaign --rehearse --out DIR          the same path on a CPU, a few steps
    srlearn weights export RESULTS_DIR ... [--out data/weights]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

_IMPORTED = time.time()   # `srlearn campaign --budget-seconds` counts from here (torch's import included)

IMAGE_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm")


def _cmd_list(args) -> int:
    from . import bench, experiments, models
    from .data import registry
    print("models:")
    for name in models.list_models():
        spec = models.get_spec(name)
        print(f"  {name:12s} presets: {', '.join(spec.presets):28s} {spec.description}")
    print("experiments:")
    for name in experiments.list_experiments():
        print(f"  {name:22s} {experiments.get_experiment(name).description}")
    print("benchmarks:\n  " + ", ".join(bench.list_benches()))
    print("datasets (srlearn.data.registry):\n  " + ", ".join(registry.list_datasets()))
    return 0


def _cmd_doctor(args) -> int:
    import platform

    import torch

    from . import __version__, _env
    from .data import registry
    print(f"srlearn      {__version__}")
    print(f"python       {platform.python_version()} ({sys.executable})")
    print(f"torch        {torch.__version__} (CUDA build: {torch.version.cuda or 'no'})")
    print(f"device       {_env.device()}  (mode: {_env.mode()})")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(f"gpu {i}        {p.name}, {p.total_memory / 2**30:.1f} GiB")
    else:
        print("gpu          none (quick mode by default; set SRLEARN_MODE=full to force)")
    try:
        import torchvision
        tv = f"{torchvision.__version__} (importable; used only for optional GPU cross-checks)"
    except Exception as e:  # a broken torchvision raises RuntimeError, not only ImportError
        tv = f"not importable ({type(e).__name__}); srlearn does not need it"
    print(f"torchvision  {tv}")
    print(f"data cache   {registry.cache_dir()} (set SRLEARN_DATA to move it)")
    print(f"threads      {torch.get_num_threads()} (cpu count {os.cpu_count()})")
    return 0


def _cmd_replicate(args) -> int:
    from . import experiments
    names = experiments.list_experiments() if args.name == "all" else [args.name]
    mode = None if args.mode == "auto" else args.mode
    for name in names:
        experiments.get_experiment(name)  # fail fast on a typo
    for name in names:
        out = Path(args.out) / name if len(names) > 1 or args.name == "all" else Path(args.out)
        res = experiments.run(name, mode=mode, seeds=args.seeds, out=out, device=args.device,
                              progress=not args.no_progress)
        print(f"\n{name} ({res['mode']}, {res['device']}, {res['wall_seconds']:.0f} s) -> {out}/results.json")
        print(f"  bicubic           PSNR {res['baseline']['psnr']:.3f} dB  SSIM {res['baseline']['ssim']:.4f}")
        for r in res["runs"]:
            print(f"  {r['arm']:12s} s{r['seed']}  PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  ({r['params']:,} params)")
        for v in res["verdicts"]:
            print(f"  {v['better']} vs {v['worse']}: {v['delta_psnr']:+.3f} dB -> {v['verdict']}")
    return 0


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SystemExit(f"error: {folder} is not a directory of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise SystemExit(f"error: no images ({', '.join(IMAGE_EXTS)}) in {folder}")
    return files


def _find_lr(lr_dir: Path, hr: Path, scale: int) -> Path:
    for cand in (f"{hr.stem}x{scale}", hr.stem, f"{hr.stem}_LRBI_x{scale}"):
        for ext in IMAGE_EXTS:
            p = lr_dir / f"{cand}{ext}"
            if p.exists():
                return p
    raise SystemExit(f"error: no LR image for {hr.name} in {lr_dir} (looked for {hr.stem}x{scale}.*, "
                     f"{hr.stem}.*, {hr.stem}_LRBI_x{scale}.*)")


def _cmd_evaluate(args) -> int:
    from .data import imresize, load_image, modcrop
    from .experiments import evaluate_model
    from .metrics import protocol
    from .models import build
    from .train import load_model
    if args.scale < 1:
        raise SystemExit(f"error: --scale must be a positive integer, got {args.scale}")
    if args.checkpoint or args.weights:
        if args.weights:
            from .weights import load_pretrained
            if args.weights.count("/") != 1:
                raise SystemExit(f"error: --weights takes EXPERIMENT/ARM (e.g. san-attention/soca), got {args.weights!r}")
            model = load_pretrained(*args.weights.split("/"))
        else:
            model = load_model(args.checkpoint)
        if getattr(model, "scale", args.scale) != args.scale:
            raise SystemExit(f"error: the {'weights are' if args.weights else 'checkpoint is'} a ×{model.scale} "
                             f"model but --scale is {args.scale}")
    else:
        model = build(args.model, args.preset, scale=args.scale)
    hr_files = _list_images(Path(args.images))
    pairs = []
    for f in hr_files:
        hr = modcrop(load_image(f), args.scale)
        if args.lr:
            lr = load_image(_find_lr(Path(args.lr), f, args.scale))
            if (lr.shape[0] * args.scale, lr.shape[1] * args.scale) != hr.shape[:2]:
                raise SystemExit(f"error: {f.name}: LR {lr.shape[:2]} × {args.scale} does not match the mod-cropped "
                                 f"HR {hr.shape[:2]}")
        else:
            lr = imresize(hr, 1 / args.scale, mode="uint8")
        pairs.append((f.stem, lr, hr))
    res = evaluate_model(model, pairs, args.scale)
    base = evaluate_model(build("bicubic", scale=args.scale), pairs, args.scale) if args.model != "bicubic" else res
    name = args.checkpoint or (f"weights {args.weights}" if args.weights else f"{args.model}/{args.preset}")
    print(f"protocol: {protocol(args.scale)}")
    print(f"{'image':24s} {'bicubic PSNR':>12s} {'SSIM':>7s}   {'model PSNR':>10s} {'SSIM':>7s}")
    for b, m in zip(base["images"], res["images"]):
        print(f"{m['name']:24s} {b['psnr']:12.3f} {b['ssim']:7.4f}   {m['psnr']:10.3f} {m['ssim']:7.4f}")
    print(f"{'mean':24s} {base['mean']['psnr']:12.3f} {base['mean']['ssim']:7.4f}   "
          f"{res['mean']['psnr']:10.3f} {res['mean']['ssim']:7.4f}   ({name})")
    if args.json:
        doc = {"images": [{k: im[k] for k in ("name", "psnr", "ssim")} for im in res["images"]],
               "mean": res["mean"], "protocol": res["protocol"], "model": name,
               "baseline": {"images": base["images"], "mean": base["mean"]}}
        path = Path(args.json)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1, default=float))
        os.replace(tmp, path)
    return 0


def _cmd_bench(args) -> int:
    from . import bench
    kwargs = {"device": args.device}
    if args.quick:
        kwargs["quick"] = True
    rows = bench.run_bench(args.name, **kwargs)
    print(bench.format_table(rows))
    return 0


def _cmd_campaign(args) -> int:
    from .experiments.campaign import run_campaign
    names = [n for n in (args.experiments or "").split(",") if n] or None
    info = run_campaign(args.out, device=args.device, budget_seconds=args.budget_seconds, seeds=args.seeds,
                        experiments=names, workers=args.workers, rehearse=args.rehearse, amp=args.amp,
                        presets=args.presets, run_gpu_tests=not args.no_gpu_tests,
                        export_weights=args.export_weights, max_steps=args.max_steps,
                        loader_workers=args.loader_workers, base_mode=args.base_mode, started=_IMPORTED)
    failed = [n for n, e in info["experiments"].items() if not e.get("ok")]
    if failed:
        print(f"experiments that did not finish: {', '.join(failed)} (see {Path(args.out) / 'campaign.md'})",
              file=sys.stderr)
    return 1 if failed or not info["archive"]["within_limit"] else 0


def _cmd_weights(args) -> int:
    from .weights import MAX_TOTAL_BYTES, export_weights, weights_dir
    dest = Path(args.out) if args.out else weights_dir()
    man = export_weights(args.results, dest, seed=args.seed, max_total_bytes=int(args.max_mb * 1e6) if args.max_mb
                         else MAX_TOTAL_BYTES, note=args.note)
    for e in man["weights"]:
        print(f"  {e['experiment'] + '/' + e['arm']:40s} {e['dtype']:8s} {e['bytes'] / 1e3:8.0f} kB  PSNR {e['psnr']:.3f} dB "
              f"({e['baseline']['name']} {e['baseline']['psnr']:.3f}), {e['steps']} steps on {e['device']}")
    print(f"{len(man['weights'])} files, {man['total_bytes'] / 1e6:.2f} MB -> {dest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="srlearn", description="Learn super-resolution papers by building them.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="models, experiments, benchmarks, datasets").set_defaults(fn=_cmd_list)
    sub.add_parser("doctor", help="what this machine has").set_defaults(fn=_cmd_doctor)
    r = sub.add_parser("replicate", help="run a registered replication (or 'all')")
    r.add_argument("name")
    r.add_argument("--mode", choices=["quick", "full", "auto"], default="auto",
                   help="auto: SRLEARN_MODE if set, else full on a GPU and quick without one")
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the mode's)")
    r.add_argument("--out", default="runs", help="output directory (default: runs)")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: automatic)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(fn=_cmd_replicate)
    e = sub.add_parser("evaluate", help="PSNR/SSIM of a model on a folder of HR images")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="a registered model name (e.g. bicubic)")
    g.add_argument("--checkpoint", help="a checkpoint written by srlearn training")
    g.add_argument("--weights", help="shipped weights EXPERIMENT/ARM (data/weights, see data/README.md)")
    e.add_argument("--preset", default="paper", help="preset for --model (default: paper)")
    e.add_argument("--images", required=True, help="folder of HR images")
    e.add_argument("--lr", default=None, help="folder of LR images (default: made with MATLAB uint8 bicubic)")
    e.add_argument("--scale", type=int, required=True)
    e.add_argument("--json", default=None, help="write per-image and mean results to this JSON file")
    e.set_defaults(fn=_cmd_evaluate)
    b = sub.add_parser("bench", help="a registered benchmark (speed and memory tables)")
    b.add_argument("name")
    b.add_argument("--device", default="cpu")
    b.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    b.set_defaults(fn=_cmd_bench)
    c = sub.add_parser("campaign", help="every experiment, >= 3 seeds, sized to a time budget (one GPU lease)")
    c.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu")
    c.add_argument("--budget-seconds", type=float, default=480, help="wall-clock budget of the whole command")
    c.add_argument("--out", default="results", help="output folder (default: results)")
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--experiments", default=None, help="comma-separated names (default: every registered one)")
    c.add_argument("--workers", type=int, default=None,
                   help="worker processes sharing the device (default: min(8, cores/2) on CUDA, 1 on a CPU)")
    c.add_argument("--amp", default=False, nargs="?", const="bf16", choices=["bf16"],
                   help="bf16 autocast (off by default: not yet shown to leave PSNR within 0.01 dB)")
    c.add_argument("--presets", choices=["own", "budget"], default="own",
                   help="own: the arms' own (small) presets (default); budget: the full budget's presets")
    c.add_argument("--max-steps", type=int, default=None,
                   help="the most steps of any run (default: the base mode's budget steps)")
    c.add_argument("--base-mode", choices=["quick", "full"], default=None,
                   help="whose budgets (batch, patches, lr) to size: full (default), quick (--rehearse, small CPUs)")
    c.add_argument("--loader-workers", type=int, default=0, help="DataLoader workers per run (default 0)")
    c.add_argument("--no-gpu-tests", action="store_true", help="skip `pytest -m gpu`")
    c.add_argument("--export-weights", default=None, metavar="DIR",
                   help="also write the seed-0 weights and manifest there (e.g. data/weights)")
    c.add_argument("--rehearse", action="store_true",
                   help="the same path on the CPU with the quick budgets and a few steps")
    c.set_defaults(fn=_cmd_campaign)
    w = sub.add_parser("weights", help="shipped weights: export RESULTS_DIR ...")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    we = wsub.add_parser("export", help="seed-0 weights of every arm of results folders, with a manifest")
    we.add_argument("results", nargs="+", help="folders holding results.json and checkpoints/")
    we.add_argument("--out", default=None, help="destination (default: data/weights or $SRLEARN_WEIGHTS)")
    we.add_argument("--seed", type=int, default=0)
    we.add_argument("--max-mb", type=float, default=None, help="size limit of all files (default 25 MB)")
    we.add_argument("--note", default="", help="how these weights were made, kept in the manifest")
    we.set_defaults(fn=_cmd_weights)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (KeyError, ValueError, FileNotFoundError, RuntimeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
