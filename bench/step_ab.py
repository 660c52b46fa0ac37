"""The train step under config variants against a baseline, in one process, rounds alternating (issue 18).

    .venv/bin/python bench/step_ab.py [--config configs/quickstart.py] [--set KEY=VALUE ...]
        --variant "bf16=model.dtype=bfloat16" [--variant "NAME=KEY=VALUE,KEY=VALUE" ...] [--rounds 7] [--out NAME]

Every variant is built and compiled first (`train_step.jax_runner`, the real jitted step on one fixed batch);
then each round times `--steps` steps of the baseline and of every variant in turn, so a machine that gets
busier or quieter moves them alike. A variant's speedup is the median over rounds of that round's baseline time
over its own (> 1: faster), with the range over rounds. The loss after the same steps is compared too: a
variant that changes the numbers (another precision) says by how much. Also measures the best 2048^3 matmul in
float32 and in bfloat16, the peaks each precision's MFU divides by. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flops as flops_lib  # noqa: E402
import train_step  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/quickstart.py")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for every variant")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default="", help="also write the JSON to bench/results/OUT")
    args = p.parse_args(argv)
    variants = {"baseline": []}
    for v in args.variant:
        name, sep, sets = v.partition("=")
        if not sep or not sets or "=" not in sets or name in variants:
            p.error(f"--variant {v!r}: write NAME=KEY=VALUE[,KEY=VALUE], with a new NAME")
        variants[name] = sets.split(",")
    if len(variants) < 2 or args.rounds < 1 or args.steps < 1:
        p.error("give at least one --variant, and --rounds, --steps >= 1")
    return args, variants


def main(argv=None) -> dict:
    args, variants = parse_args(argv)
    runners = {}
    for name, sets in variants.items():
        config = train_step.load_config(args.config, args.set + sets)
        spec, run, info = train_step.jax_runner(config, args)
        runners[name] = (spec, run, info)
    peaks = {d: train_step.measure_peak(dtype=d) for d in ("float32", "bfloat16")}
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (_, run, _) in runners.items():
            times[name].append(run())
    peaks = {d: max(p, train_step.measure_peak(dtype=d)) for d, p in peaks.items()}
    base = times["baseline"]
    result = {"bench": "step_ab", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "device": f"{train_step.cpu_name()}, {os.cpu_count()} cores", "config": args.config,
              "overrides": args.set, "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
              "steps_per_round": args.steps, "rounds": args.rounds, "peak_flops": peaks, "variants": {}}
    for name, (spec, _, info) in runners.items():
        ratios = [b / t for b, t in zip(base, times[name])]
        model_flops = flops_lib.step_flops(spec, spec["batch_size"])["model"]
        sec = statistics.median(times[name])
        result["variants"][name] = {
            "sets": variants[name], "dtype": spec["dtype"], "sec_per_step": sec, "round_s": times[name],
            "speedup": statistics.median(ratios), "speedup_range": [min(ratios), max(ratios)],
            "loss_after_warmup": info["final_loss"](), "mfu": model_flops / sec / peaks[spec["dtype"]],
        }
    print(f"{result['device']}; peaks: float32 {peaks['float32'] / 1e9:.0f}, bfloat16 "
          f"{peaks['bfloat16'] / 1e9:.0f} GFLOP/s (best 2048^3 matmul); {args.rounds} rounds of {args.steps} steps")
    print(f"{'variant':<24} {'s/step':>8} {'speedup':>8} {'rounds':>13} {'MFU':>5} {'loss':>9}  sets")
    for name, r in result["variants"].items():
        lo, hi = r["speedup_range"]
        print(f"{name:<24} {r['sec_per_step']:8.4f} {r['speedup']:7.2f}x {lo:5.2f}-{hi:.2f}x {100 * r['mfu']:4.0f}% "
              f"{r['loss_after_warmup']:9.5f}  {','.join(r['sets']) or '-'}")
    print(json.dumps(result))
    if args.out:
        path = os.path.join(train_step.ROOT, "bench", "results", args.out)
        with open(path if path.endswith(".json") else path + ".json", "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
