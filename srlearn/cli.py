"""The ``srlearn`` command: list, doctor, replicate, evaluate, upscale, convert, bench, report, campaign, weights.

    srlearn list [--json]                          models, presets, experiments, benchmarks, datasets
    srlearn doctor                                 torch, device, GPU, torchvision, data cache
    srlearn replicate NAME|all --mode quick|full|auto [--seeds N] [--out DIR] [--restart] [--set K=V] [--show-spec]
    srlearn evaluate (--model NAME | --checkpoint PATH | --weights EXPERIMENT/ARM) --images HR_DIR [--lr LR_DIR]
                     --scale S [--json FILE]
    srlearn upscale IMAGE... --weights EXPERIMENT/ARM|CHECKPOINT [--scale S] --out DIR [--tile N --overlap M]
    srlearn convert --from official-san|official-rcan|official-mirnet FILE --out CHECKPOINT
    srlearn bench NAME [--device cpu|cuda] [--quick]
    srlearn report results/ [--markdown | --write-readme README.md | --check README.md]
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


def registries() -> dict:
    """The registries as plain JSON-able data: models with presets (and their stated parameter counts),
    experiments with arms (``control``: a deliberate control, e.g. a plain stack or a known-bad schedule,
    not one of the paper's proposals), comparisons and budgets, benchmarks, datasets, and the attention and
    fusion kinds that models build by name."""
    from dataclasses import asdict

    from . import bench, experiments, models
    from .data import registry
    out = {"models": [], "experiments": [], "benchmarks": bench.list_benches(), "datasets": []}
    for name in models.list_models():
        spec = models.get_spec(name)
        out["models"].append({"name": name, "description": spec.description, "presets": spec.presets})
    for name in experiments.list_experiments():
        exp = experiments.get_experiment(name)
        out["experiments"].append({
            "name": name, "description": exp.description, "scale": exp.scale, "notebook": exp.notebook,
            "baseline": exp.baseline_name, "min_detectable_db": exp.min_detectable_db, "field_data": exp.field_data,
            "arms": [{"name": a.name, "model": a.model, "preset": a.preset, "overrides": a.overrides,
                      "train": a.train, "control": a.control} for a in exp.arms],
            "controls": [a.name for a in exp.arms if a.control],
            "comparisons": [asdict(c) for c in exp.comparisons],
            "modes": {m: {"steps": b.steps, "seeds": b.seeds, "batch_size": b.batch_size, "lr_patch": b.lr_patch,
                          "preset": b.preset} for m, b in exp.budgets.items()}})
    for name in registry.list_datasets():
        ds = registry.get(name)
        out["datasets"].append({"name": name, "title": ds.title, "policy": ds.policy, "layout": ds.layout})
    from .nn import ATTENTION, FUSION
    for key, reg in (("attention", ATTENTION), ("fusion", FUSION)):   # block kinds models build by name
        out[key] = [{"name": n, "class": f"{e.__module__}.{e.__qualname__}", "options": reg.options(n),
                     **reg.describe()[n]} for n, e in ((n, reg[n]) for n in reg.names())]
    for m in out["models"]:
        m["params"] = models.registry.MODELS.info[m["name"]].get("params", {})
    return out


def _cmd_list(args) -> int:
    if args.json:
        print(json.dumps(registries(), indent=1, default=repr))
        return 0
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
    from .nn import ATTENTION, FUSION
    print("attention kinds (srlearn.nn.ATTENTION; SAN and RCAN build any of them):\n  " + ", ".join(ATTENTION.names()))
    print("fusion kinds (srlearn.nn.FUSION; MIRNet builds any of them):\n  " + ", ".join(FUSION.names()))
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
    if args.show_spec:
        from ._env import mode as resolve_mode
        from .experiments.core import PRECEDENCE, resolve_spec
        for name in names:
            exp = experiments.get_experiment(name)
            m = resolve_mode(mode)
            if m not in exp.budgets:
                raise ValueError(f"experiment {name!r} has no {m!r} budget; modes: {list(exp.budgets)}")
            print(f"# {name}, {m} mode; a later layer wins: {' < '.join(PRECEDENCE)}")
            for arm in exp.arms:
                print(f"\n[{arm.name}]" + (" (a deliberate control)" if arm.control else ""))
                spec = resolve_spec(exp, arm, 0, m, sets=args.set)
                spec.config(progress=False)          # a mistyped --set train.KEY fails here, naming the valid keys
                from .models.registry import _check_kwargs, get_spec
                ms = get_spec(spec.model)
                _check_kwargs(ms, {**ms.presets[spec.preset], **spec.model_kwargs})   # and a mistyped model.KEY
                print(spec.to_text())
            print()
        return 0
    for name in names:
        # one folder per experiment (runs/NAME by default), so two experiments never share checkpoints
        if args.out is None or len(names) > 1 or args.name == "all":
            out = Path(args.out if args.out is not None else "runs") / name
        else:
            out = Path(args.out)
        res = experiments.run(name, mode=mode, seeds=args.seeds, out=out, device=args.device,
                              progress=not args.no_progress, restart=args.restart, sets=args.set)
        print(f"\n{name} ({res['mode']}, {res['device']}, {res['wall_seconds']:.0f} s) -> {out}/results.json")
        print(f"  trained on {res.get('train_data')}; tested on {res.get('test_data')}")
        print(f"  {res['baseline'].get('arm', 'bicubic'):17s} PSNR {res['baseline']['psnr']:.3f} dB  "
              f"SSIM {res['baseline']['ssim']:.4f}")
        for r in res["runs"]:
            print(f"  {r['arm']:12s} s{r['seed']}  PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  ({r['params']:,} params)")
        for v in res["verdicts"]:   # the verdict string itself: it never says more than the seeds show
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
    if args.json:
        jpath = Path(args.json)
        if jpath.is_dir():
            raise SystemExit(f"error: --json {args.json} is a folder; give a file name, e.g. --json "
                             f"{jpath / 'evaluation.json'}")
        if not jpath.parent.is_dir():
            raise SystemExit(f"error: --json {args.json}: the folder {jpath.parent} does not exist; create it "
                             f"or choose another path")
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
        if any(True for _ in model.parameters()):
            print(f"WARNING: --model {args.model} builds the network with RANDOM, UNTRAINED weights: its "
                  f"numbers below measure no trained model. Evaluate a trained one with --checkpoint PATH "
                  f"(written by srlearn replicate or train).", file=sys.stderr)
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
        from ._files import atomic_write
        atomic_write(Path(args.json), json.dumps(doc, indent=1, default=float))
    return 0


def _cmd_bench(args) -> int:
    from . import _env, bench
    _env.device(args.device)   # fail now, with a clear message, on a device this machine lacks
    kwargs = {"device": args.device}
    if args.quick:
        kwargs["quick"] = True
    rows = bench.run_bench(args.name, **kwargs)
    print(bench.format_table(rows))
    return 0


def _cmd_upscale(args) -> int:
    from .upscale import upscale_files
    files: list[Path] = []
    for item in args.images:
        p = Path(item)
        files.extend(_list_images(p) if p.is_dir() else [p])
    rows = upscale_files(files, args.weights, args.out, args.scale, reference=args.reference, tile=args.tile,
                         overlap=args.overlap, device=args.device, progress=not args.no_progress)
    for r in rows:
        (h, w), (sh, sw) = r["lr_size"], r["sr_size"]
        print(f"{r['image']}: {w}x{h} -> {sw}x{sh}  {r['sr']}  (beside bicubic: {r['side_by_side']})")
    return 0


def _cmd_convert(args) -> int:
    from .convert import SOURCES, convert_official
    out = convert_official(args.source, args.file, args.out)
    print(f"{args.file} ({args.source}) -> {out}; load it with srlearn.train.load_model({str(out)!r}) or "
          f"`srlearn upscale IMAGE --weights {out}`. Published: {SOURCES[args.source][1]}; srlearn does not "
          f"redistribute these files.")
    return 0


def _add_upscale_convert_parsers(sub) -> None:
    u = sub.add_parser("upscale", help="super-resolve your own images (no HR original needed)",
                       description="Writes OUT/STEM_xS.png and OUT/STEM_xS_vs_bicubic.png (bicubic | SR) per image.")
    u.add_argument("images", nargs="+", metavar="IMAGE", help="image files (or folders of images)")
    u.add_argument("--weights", required=True, metavar="EXPERIMENT/ARM|CHECKPOINT",
                   help="shipped weights (EXPERIMENT/ARM) or an srlearn checkpoint (training, `srlearn convert`)")
    u.add_argument("--scale", type=int, default=None, help="up-scaling factor (default: the model's; must match it)")
    u.add_argument("--out", required=True, help="output folder")
    u.add_argument("--tile", type=int, default=0, metavar="N",
                   help="process N x N input pixels at a time (bounded memory for large images; "
                        "default: the whole image)")
    u.add_argument("--overlap", type=int, default=16, metavar="M",
                   help="context pixels read around each tile, then cut away (default 16)")
    u.add_argument("--reference", default=None, metavar="IMAGE", help="reference image for SSEN models")
    u.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: automatic)")
    u.add_argument("--no-progress", action="store_true", help="no progress bars")
    u.set_defaults(fn=_cmd_upscale)
    c = sub.add_parser("convert", help="the authors' released SAN/RCAN/MIRNet weights -> an srlearn checkpoint",
                       description="The official files are published by the authors (links in each official "
                                   "repository's README); srlearn does not redistribute them.")
    c.add_argument("--from", dest="source", required=True,
                   choices=["official-san", "official-rcan", "official-mirnet"],
                   help="whose file: daitao/SAN, yulunzhang/RCAN or swz30/MIRNet")
    c.add_argument("file", help="the released weight file (.pt / .pth)")
    c.add_argument("--out", required=True, help="the srlearn checkpoint to write")
    c.set_defaults(fn=_cmd_convert)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _os_error(e: OSError) -> str:
    """An OSError as one line with what to do."""
    import errno
    what = str(e)
    if e.errno == errno.ENOSPC:
        return (f"{what}: the disk is full. Free some space or choose another --out; finished checkpoints "
                f"are kept, so running the same command again resumes")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{what}: no permission to write there; choose a folder you can write (e.g. --out)"
    if e.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
        return f"{what}: a file stands where a folder is needed (or the reverse); choose another path"
    return what


def _cmd_report(args) -> int:
    from .experiments import report
    if args.check:
        want, have = report.results_markdown(args.dir), report.readme_block(args.check)
        if want != have:
            print(f"{args.check}'s results block differs from what {args.dir} holds; run "
                  f"`srlearn report {args.dir} --write-readme {args.check}`", file=sys.stderr)
            return 1
        print(f"{args.check}'s results block matches {args.dir}")
        return 0
    if args.write_readme:
        changed = report.write_readme(args.write_readme, args.dir)
        print(f"{args.write_readme}: results block {'rewritten' if changed else 'already up to date'}")
        return 0
    print(report.results_markdown(args.dir))   # --markdown (the default)
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
    ls = sub.add_parser("list", help="models, experiments, benchmarks, datasets")
    ls.add_argument("--json", action="store_true", help="print the registries as JSON (for scripts)")
    ls.set_defaults(fn=_cmd_list)
    sub.add_parser("doctor", help="what this machine has").set_defaults(fn=_cmd_doctor)
    r = sub.add_parser("replicate", help="run a registered replication (or 'all')")
    r.add_argument("name")
    r.add_argument("--mode", choices=["quick", "full", "auto"], default="auto",
                   help="quick or full beat SRLEARN_MODE; auto: SRLEARN_MODE if set, else full on a GPU and "
                        "quick without one")
    r.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds, >= 1 (default: the mode's)")
    r.add_argument("--out", default=None, help="output directory (default: runs/NAME)")
    r.add_argument("--restart", action="store_true",
                   help="train again from scratch, replacing the checkpoints in the output folder "
                        "(default: reuse or resume those this same run made; others are an error)")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: automatic)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting of every arm, e.g. --set train.lr=1e-3 --set model.n_feats=64 "
                        "(the command line wins over the budget and the arm; see --show-spec)")
    r.add_argument("--show-spec", action="store_true",
                   help="print each arm's resolved settings, and which layer set each one, then stop")
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
    rp = sub.add_parser("report", help="the README's results table from DIR/*/results.json (quick mode excluded)")
    rp.add_argument("dir", help="folder of results (e.g. results/), one sub-folder per experiment")
    rg = rp.add_mutually_exclusive_group()
    rg.add_argument("--markdown", action="store_true", help="print the table as Markdown (the default)")
    rg.add_argument("--write-readme", metavar="README", help="rewrite README's block between "
                    "<!-- results:start --> and <!-- results:end -->")
    rg.add_argument("--check", metavar="README", help="exit 1 if README's block differs from DIR")
    rp.set_defaults(fn=_cmd_report)
    b = sub.add_parser("bench", help="a registered benchmark (speed and memory tables)")
    b.add_argument("name")
    b.add_argument("--device", default="cpu")
    b.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    b.set_defaults(fn=_cmd_bench)
    _add_upscale_convert_parsers(sub)
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
    except OSError as e:   # a file where a folder should be, a read-only folder, a full disk, the network
        print(f"error: {_os_error(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
