"""Throughput of the l-DAE pre-training step on this machine, JAX against a PyTorch reference (issue 6).

    .venv/bin/python bench/train_step.py [--config configs/quickstart.py] [--set model.width=64 ...] [--out F]

The JAX side is this codebase's own jitted step (`state.make_train_step`, as `pretrain.train`
builds it) fed one fixed random uint8 batch, so no input pipeline is timed; a random orthonormal PCA of the
config's shape stands in for the fitted one (same FLOPs). The PyTorch side (bench/torch_train_step.py, run
as a subprocess in .venv-torch) builds the same shapes and loss from timm blocks. Both: `--warmup` untimed
steps, then `--repeats` runs of `--steps` steps, the median seconds/step reported. Prints a table and one
JSON line; `--out NAME` also writes the JSON to bench/results/NAME.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import flops as flops_lib  # noqa: E402  (bench/flops.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/quickstart.py", help="config file, optionally ':arg'")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--peak_flops", type=float, default=0.0,
                   help="FLOP/s that MFU divides by; 0 = measure a float32 matmul here (see `peak`)")
    p.add_argument("--skip_torch", action="store_true")
    p.add_argument("--torch_modes", default="eager,compile")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch intra-op threads (JAX uses all)")
    p.add_argument("--torch_python", default=os.path.join(ROOT, ".venv-torch", "bin", "python"))
    p.add_argument("--xla_flags", default="", help="appended to XLA_FLAGS before JAX starts (a fresh process only)")
    p.add_argument("--out", default="", help="also write the JSON to bench/results/OUT")
    return p.parse_args(argv)


def load_config(spec: str, overrides: list[str]):
    """configs/FILE.py[:variant] (relative to the repository) with `--set` overrides, as ldae_jax.main reads them."""
    from ldae_jax import config_lib

    path = spec if os.path.isabs(spec) else os.path.join(ROOT, spec)
    return config_lib.apply_overrides(config_lib.load_file(path), list(overrides))


def channels_of(config) -> int:
    return 1 if "mnist" in config.data.name else 3


def random_tokenizer(config, channels: int):
    """The config's tokenizer shape with a random orthonormal basis: the same work as a fitted PCA."""
    import numpy as np

    from ldae_jax.tokenizers import pca as pca_lib, pixel

    p, kind = config.tokenizer.patch_size, config.tokenizer.kind
    if kind == "pixel":
        return pixel.identity(p, channels)
    if kind != "pca":
        raise SystemExit(f"bench: tokenizer.kind={kind!r} is not benchmarked (pca and pixel are)")
    dim = p * p * channels
    a = np.random.default_rng(0).normal(size=(dim, dim))
    return pca_lib.fit((np.zeros(dim), a @ a.T / dim), patch_size=p, channels=channels, d=config.tokenizer.d,
                       whiten=config.tokenizer.pca.whiten)


def build_jax(config):
    """(step, state, images, labels, spec): the real jitted step, its initial state and one fixed batch."""
    import jax
    import numpy as np

    from ldae_jax import diffusion, objectives
    from ldae_jax.models.vit import model_config_from
    from ldae_jax.train import sharding, state as state_lib

    channels, size, tc = channels_of(config), config.data.image_size, config.train
    tok = random_tokenizer(config, channels)
    objective = objectives.objective_from(config, num_classes=10)
    in_dim, out_dim = objective.dims(tok.dim, tok.d)
    num_tokens = (size // tok.patch_size) ** 2
    model_cfg = model_config_from(config.model, num_tokens=num_tokens, in_dim=in_dim, out_dim=out_dim,
                                  num_classes=objective.num_classes,
                                  mae=config.mae if objective.kind == "mae" else None)
    n = config.noise
    schedule = diffusion.schedule_from_config(n)
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
    tx = state_lib.make_optimizer(tc, state_lib.learning_rate(tc.base_lr, tc.batch_size, 100, 1000))
    key = jax.random.key(config.seed)
    shardings = state_lib.state_shardings(state_lib.abstract_state(model_cfg, tx, key), mesh)
    state = state_lib.create_state(model_cfg, tx, key, shardings)
    step = state_lib.make_train_step(state_lib.model_graph(model_cfg), tx, tok, schedule, objective,
                                     seed=config.seed, state_shardings=shardings, mesh=mesh)
    rng = np.random.default_rng(0)
    host = {"image": rng.integers(0, 256, (tc.batch_size, size, size, channels), dtype=np.uint8),
            "label": rng.integers(0, 10, (tc.batch_size,), dtype=np.int32)}
    batch = sharding.global_batch(host, mesh)
    spec = {"batch_size": tc.batch_size, "image_size": size, "channels": channels, "patch_size": tok.patch_size,
            "patch_dim": tok.dim, "d": tok.d, "num_tokens": num_tokens, "in_dim": in_dim, "out_dim": out_dim,
            "width": model_cfg.width, "depth": model_cfg.depth, "encoder_depth": model_cfg.encoder_depth,
            "num_heads": model_cfg.num_heads, "mlp_ratio": model_cfg.mlp_ratio,
            "cond_hidden_ratio": model_cfg.cond_hidden_ratio, "t_freq_dim": model_cfg.t_freq_dim,
            "adaln_zero": model_cfg.adaln_zero, "dtype": model_cfg.dtype, "w_res": objective.w_res,
            "objective": f"{objective.input}->{objective.output}:{objective.target}", "noise": n.schedule,
            "sigma_max": float(n.sigma_max), "T": int(n.T), "lr": tc.base_lr * tc.batch_size / 256,
            "b1": tc.b1, "b2": tc.b2, "weight_decay": tc.weight_decay,
            "num_params": int(sum(x.size for x in jax.tree.leaves(state.params)))}
    if (objective.input, objective.output, objective.target) != ("image", "image", "original") or n.schedule != "sigma_linear":
        spec["torch_unsupported"] = "the PyTorch reference implements the l-DAE objective with sigma_linear only"
    return step, state, batch["image"], batch["label"], spec


def jax_runner(config, args):
    """(spec, run_repeat, info): the compiled, warmed-up JAX step; `run_repeat()` times `--steps` steps."""
    import jax

    t0 = time.perf_counter()
    step, state, images, labels, spec = build_jax(config)
    holder = {"state": state}

    def run_steps(k):
        s, m = holder["state"], None
        for _ in range(k):  # no host sync inside: the loop only dispatches, as in pretrain.py
            s, m = step(s, images, labels)
        if m is not None:
            jax.block_until_ready((s, m))
            holder["metrics"] = m
        holder["state"] = s

    def run_repeat() -> float:
        start = time.perf_counter()
        run_steps(args.steps)
        return (time.perf_counter() - start) / args.steps

    run_steps(1)  # compile
    info = {"build_and_compile_s": time.perf_counter() - t0, "backend": jax.default_backend(),
            "devices": jax.device_count(), "final_loss": lambda: float(holder["metrics"]["loss"])}
    run_steps(args.warmup)
    return spec, run_repeat, info


class TorchWorker:
    """bench/torch_train_step.py in .venv-torch, kept running: `run_round()` times one repeat of every mode, so
    the rounds alternate with JAX's repeats and each ratio compares runs seconds apart (this machine's speed
    drifts by 2x within an hour)."""

    def __init__(self, spec: dict, args):
        cmd = [args.torch_python, os.path.join(ROOT, "bench", "torch_train_step.py"), "--spec", json.dumps(spec),
               "--modes", args.torch_modes, "--threads", str(args.threads), "--warmup", str(args.warmup),
               "--steps", str(args.steps)]
        self._stderr = tempfile.TemporaryFile(mode="w+")  # a pipe nobody reads could fill and block the worker
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                      text=True)
        self._read("ready")  # every mode built and warmed up

    def _read(self, key: str | None) -> dict:
        for line in self._proc.stdout:
            if line.startswith("{"):
                message = json.loads(line)
                if key is None or key in message:
                    return message
        self._stderr.seek(0)
        raise RuntimeError(f"exit {self._proc.wait()}: {self._stderr.read()[-2000:]}")

    def run_round(self) -> dict:
        self._proc.stdin.write("run\n")
        self._proc.stdin.flush()
        return self._read("round")["round"]

    def finish(self) -> dict:
        """{mode: {sec_per_step, repeats, first_step_s, ...} or {error}, 'versions': {...}}."""
        self._proc.stdin.close()
        out = self._read(None)
        self._proc.wait()
        return out


def measure_peak(n: int = 2048, reps: int = 5, dtype: str = "float32") -> float:
    """Best FLOP/s of a JAX n x n x n matmul in `dtype` here (bfloat16 summed in float32, as the model's products
    are): an attainable peak, not the datasheet's (a Zen 4 core does 32 f32 FLOP/cycle, about 96 GFLOP/s at
    3 GHz); a loaded machine reads low, so MFU can read high."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda x: jnp.matmul(x, x, preferred_element_type=jnp.float32))
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.xla_flags:
        if "jax" in sys.modules:
            raise SystemExit("bench: --xla_flags needs a fresh process (JAX is already imported)")
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {args.xla_flags}".strip()
    config = load_config(args.config, args.set)
    load_before = os.getloadavg()[0]
    from ldae_jax.runtime import precision

    dtype = precision.resolve(config.model.dtype)[0]  # MFU against the peak of the precision the step uses
    peaks = [] if args.peak_flops else [measure_peak(dtype=dtype)]  # before and after the timing: the best
    spec, run_jax, jax_info = jax_runner(config, args)
    worker, torch_res = None, None
    if not args.skip_torch:
        if "torch_unsupported" in spec:
            torch_res = {"error": spec["torch_unsupported"]}
        elif not os.path.exists(args.torch_python):
            torch_res = {"error": f"{args.torch_python} missing: create .venv-torch (launch/test_torch.sh does)"}
        else:
            try:
                worker = TorchWorker(spec, args)
            except RuntimeError as e:
                torch_res = {"error": str(e)}
    jax_times, rounds = [], []
    for _ in range(args.repeats):  # JAX, then every PyTorch mode, per round
        jax_times.append(run_jax())
        if worker is not None:
            try:
                rounds.append(worker.run_round())
            except RuntimeError as e:
                torch_res, worker = {"error": f"the PyTorch worker failed in round {len(rounds) + 1}: {e}"}, None
    if worker is not None:
        try:
            torch_res = worker.finish()
        except RuntimeError as e:
            torch_res = {"error": f"the PyTorch worker failed at its end: {e}"}
    jax_res = {"sec_per_step": statistics.median(jax_times), "repeats": jax_times,
               "build_and_compile_s": jax_info["build_and_compile_s"], "final_loss": jax_info["final_loss"](),
               "backend": jax_info["backend"], "devices": jax_info["devices"]}
    bs = spec["batch_size"]
    jax_res["images_per_s"] = bs / jax_res["sec_per_step"]
    fl = flops_lib.step_flops(spec, bs)
    peak = args.peak_flops or max(peaks + [measure_peak(dtype=dtype)])
    result = {
        "bench": "train_step", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": f"{cpu_name()}, {os.cpu_count()} cores, {jax_res['backend']}",
        "config": args.config, "overrides": args.set,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "load_avg": [load_before, os.getloadavg()[0]],
        "timing": {"warmup": args.warmup, "steps": args.steps, "repeats": args.repeats,
                   "order": "alternating rounds: one JAX repeat, then one repeat of each PyTorch mode"},
        "shapes": spec, "jax": jax_res,
        "flops": {"model_per_step": fl["model"], "tokenizer_per_step": fl["tokenizer"],
                  "forward_per_example": fl["forward_per_example"], "parts_forward_per_example": fl["parts"],
                  "counted": "3 x forward matmul FLOPs of the ViT (embed, adaLN MLPs, qkv, attention, proj, MLP, "
                             "head); tokenizer matmuls apart, elementwise ops not counted"},
        "peak_flops": peak,
        "peak_source": "--peak_flops" if args.peak_flops else f"measured: best JAX {dtype} 2048^3 matmul, before and after",
    }
    result["jax"]["mfu"] = fl["model"] / jax_res["sec_per_step"] / peak
    if torch_res is not None:
        result["torch"] = torch_res
        result["torch_threads"] = args.threads
        for mode, res in torch_res.items():
            if isinstance(res, dict) and res.get("sec_per_step"):
                res["images_per_s"] = bs / res["sec_per_step"]
                res["mfu"] = fl["model"] / res["sec_per_step"] / peak
                # The median of the per-round ratios: each compares two runs made seconds apart.
                per_round = [r[mode] / j for r, j in zip(rounds, jax_times)]
                result[f"round_ratios_jax_over_torch_{mode}"] = per_round
                result[f"ratio_jax_over_torch_{mode}"] = statistics.median(per_round)
    result["load_avg"].append(os.getloadavg()[0])
    print_table(result)
    print(json.dumps(result), flush=True)
    if args.out:
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        with open(os.path.join(ROOT, "bench", "results", os.path.basename(args.out)), "w") as f:
            json.dump(result, f, indent=1)
    return result


def print_table(r: dict) -> None:
    s = r["shapes"]
    print(f"l-DAE train step, {r['config']} {' '.join(r['overrides'])}: batch {s['batch_size']}, {s['num_tokens']} "
          f"tokens, width {s['width']}, depth {s['depth']}, heads {s['num_heads']}, in/out {s['in_dim']}/"
          f"{s['out_dim']}, {s['num_params'] / 1e6:.2f}M params; {r['device']}; load "
          f"{[round(x, 2) for x in r['load_avg']]}; XLA_FLAGS={r['xla_flags']!r}; "
          f"GLIBC_TUNABLES={r.get('glibc_tunables', '')!r}")
    print(f"model FLOPs/step {r['flops']['model_per_step'] / 1e9:.2f} G (3 x forward matmuls), peak "
          f"{r['peak_flops'] / 1e9:.1f} GFLOP/s ({r['peak_source']})")
    print(f"{'side':<16}{'s/step':>10}{'images/s':>11}{'MFU':>8}{'JAX/this':>10}  (median of the rounds; range)")
    rows = [("jax", "", r["jax"])] + [(f"torch {m}", m, v) for m, v in r.get("torch", {}).items()
                                     if isinstance(v, dict) and m != "versions"]
    for name, mode, v in rows:
        if not v.get("sec_per_step"):
            print(f"{name:<16}  failed: {str(v.get('error', ''))[:200]}")
            continue
        line = f"{name:<16}{v['sec_per_step']:>10.4f}{v['images_per_s']:>11.1f}{v['mfu']:>8.1%}"
        if mode:
            rounds = r[f"round_ratios_jax_over_torch_{mode}"]
            line += f"{r[f'ratio_jax_over_torch_{mode}']:>9.2f}x  ({min(rounds):.2f}-{max(rounds):.2f}x)"
        print(line)
    if isinstance(r.get("torch", {}).get("error"), str):
        print(f"torch: {r['torch']['error'][:300]}")


if __name__ == "__main__":
    main()
