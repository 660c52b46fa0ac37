"""The cost of a train step of l-DAE and of MAE at the ladder's small scale (Table 4 at small scale): time per
step, measured in alternating rounds in one process, and FLOPs per step as XLA counts them for the compiled
step; the steps MAE takes in l-DAE's wall time follow from the time ratio (rows.MAE_EQUAL_TIME_STEPS).

    .venv/bin/python bench/table4_cost.py [--rows t4.ldae,t4.mae] [--scale small] [--rounds 7] [--out NAME]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train_step  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="t4.ldae,t4.mae")
    p.add_argument("--scale", default="small")
    p.add_argument("--steps", type=int, default=10, help="timed steps per row per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default="", help="also write the JSON to bench/results/OUT")
    args = p.parse_args(argv)
    import jax

    from ldae_jax.ladder import rows as rows_lib

    names = args.rows.split(",")
    runners, flops = {}, {}
    for name in names:
        config = rows_lib.get_config(f"row={name},scale={args.scale}")
        step, state, images, labels, spec = train_step.build_jax(config)
        cost = step.lower(state, images, labels).compile().cost_analysis()
        flops[name] = float((cost[0] if isinstance(cost, list) else cost).get("flops", 0.0))
        _, runners[name], _ = train_step.jax_runner(config, args)
    times = {name: [] for name in names}
    for _ in range(args.rounds):  # alternating, so a machine that gets busier slows every row alike
        for name in names:
            times[name].append(runners[name]())
    base = names[0]
    out = {"date": datetime.date.today().isoformat(), "cpu": train_step.cpu_name(), "backend": jax.default_backend(),
           "scale": args.scale, "rows": {}}
    for name in names:
        ratios = [b / t for b, t in zip(times[base], times[name])]
        out["rows"][name] = {"seconds_per_step": statistics.median(times[name]), "xla_flops_per_step": flops[name],
                             f"speed_vs_{base}": statistics.median(ratios),
                             "speed_range": [min(ratios), max(ratios)]}
        r = out["rows"][name]
        print(f"{name:14s} {1e3 * r['seconds_per_step']:8.1f} ms/step  {r['xla_flops_per_step'] / 1e9:7.2f} GFLOP/step "
              f" {r[f'speed_vs_{base}']:.2f}x {base} ({r['speed_range'][0]:.2f}-{r['speed_range'][1]:.2f})")
    print(json.dumps(out))
    if args.out:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", args.out), "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
