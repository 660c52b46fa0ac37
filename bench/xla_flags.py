"""The train step's speed under each candidate XLA flag set, against no flags, in the same command (issue 6).

    .venv/bin/python bench/xla_flags.py [--config configs/quickstart.py] [--set KEY=VALUE] [--rounds 2]
                                        [--variant NAME=FLAGS ...] [--out NAME]

XLA reads its flags once per process, so every run is a fresh `bench/train_step.py --skip_torch` child. The
children take turns round by round (baseline, every variant, baseline, ...) so that a machine getting busier
or quieter moves all of them alike; a variant's time is its median over the rounds, its speedup the median
over rounds of the baseline's time in that round over the variant's (> 1: faster). The loss after the same
steps is compared too, since some flags (fast math, other matmul libraries) change the numbers, not only the
speed. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# XLA:CPU flags worth a try for this step (jaxlib 0.10). Dots go to YNNPACK by default ('individual_dot').
CPU_VARIANTS = {
    "ynn dot+eltwise fusions": "--xla_cpu_experimental_ynn_fusion_type=individual_dot,dot,eltwise",
    "ynn dot+eltwise+reduce": "--xla_cpu_experimental_ynn_fusion_type=individual_dot,dot,eltwise,reduce",
    "Eigen dots (ynn off)": "--xla_cpu_experimental_ynn_fusion_type=",
    "xnn graph fusion": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "oneDNN dots": "--xla_cpu_use_onednn=true",
    "512-bit vectors": "--xla_cpu_prefer_vector_width=512",
    "fast math": "--xla_cpu_enable_fast_math=true",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/quickstart.py")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                   help="a flag set to try (repeatable); default: the CPU set in this file")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="", help="also write the JSON to bench/results/OUT")
    args = p.parse_args(argv)
    for v in args.variant:
        if "=" not in v:
            p.error(f"--variant {v!r}: write NAME=FLAGS")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def run_child(args, flags: str) -> dict:
    """One train_step.py child: {'sec_per_step', 'final_loss', 'load'} or {'error'}."""
    cmd = [sys.executable, os.path.join(ROOT, "bench", "train_step.py"), "--config", args.config, "--skip_torch",
           "--peak_flops", "1", "--warmup", "2", "--steps", str(args.steps), "--repeats", str(args.repeats)]
    cmd += [a for kv in args.set for a in ("--set", kv)]
    if flags:
        cmd.append(f"--xla_flags={flags}")
    env = dict(os.environ, XLA_FLAGS="")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)[:300]}"}
    r = json.loads(lines[-1])
    return {"sec_per_step": r["jax"]["sec_per_step"], "final_loss": r["jax"]["final_loss"], "load": r["load_avg"]}


def main(argv=None) -> dict:
    args = parse_args(argv)
    variants = dict(v.split("=", 1) for v in args.variant) if args.variant else dict(CPU_VARIANTS)
    names = ["baseline (no flags)"] + list(variants)
    flags = {"baseline (no flags)": "", **variants}
    runs = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names:
            res = run_child(args, flags[name])
            runs[name].append(res)
            shown = f"{res['sec_per_step']:.4f} s/step" if "sec_per_step" in res else res["error"]
            print(f"round {r + 1}/{args.rounds}  {name:<28} {shown}", flush=True)
    summary = {}
    for name in names:
        ok = [x for x in runs[name] if "sec_per_step" in x]
        summary[name] = {"flags": flags[name], "runs": runs[name]}
        if ok:
            summary[name]["sec_per_step"] = statistics.median(x["sec_per_step"] for x in ok)
            summary[name]["final_loss"] = ok[-1]["final_loss"]
    base = summary[names[0]]
    if "sec_per_step" not in base:
        raise SystemExit(f"bench: the baseline failed: {runs[names[0]][-1]['error']}")
    for name in names:
        s = summary[name]
        if "sec_per_step" in s:
            # each round's baseline over the variant's in that round, so drift between rounds cancels
            paired = [b["sec_per_step"] / x["sec_per_step"] for b, x in zip(runs[names[0]], runs[name])
                      if "sec_per_step" in b and "sec_per_step" in x]
            s["speedup"] = statistics.median(paired)
            s["speedup_per_round"] = paired
            s["loss_rel_diff"] = abs(s["final_loss"] - base["final_loss"]) / abs(base["final_loss"])
    result = {"bench": "xla_flags", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "config": args.config, "overrides": args.set, "rounds": args.rounds,
              "timing": {"steps": args.steps, "repeats": args.repeats}, "variants": summary}
    print(f"\nXLA flags, train step of {args.config} {' '.join(args.set)}: median of {args.rounds} rounds")
    print(f"{'variant':<28}{'s/step':>9}{'speedup':>9}{'range':>13}{'loss diff':>11}  flags")
    for name in names:
        s = summary[name]
        if "sec_per_step" not in s:
            print(f"{name:<28}{'failed':>9}  {s['flags']}  ({s['runs'][-1]['error'][:120]})")
            continue
        lo, hi = min(s["speedup_per_round"]), max(s["speedup_per_round"])
        print(f"{name:<28}{s['sec_per_step']:>9.4f}{s['speedup']:>8.2f}x{f'{lo:.2f}-{hi:.2f}':>13}"
              f"{s['loss_rel_diff']:>11.1e}  {s['flags']}")
    print(json.dumps(result), flush=True)
    if args.out:
        with open(os.path.join(ROOT, "bench", "results", os.path.basename(args.out)), "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
