"""The GPU half of issue 6, one command for a lent GPU machine (H100 / H200, about 10 minutes):

    python3 bench/gpu.py [--models B,L] [--out_dir $OUT]

1. `bench/train_step.py` for the l-DAE ViT-B/16 and ViT-L/16 recipes (configs/imagenet.py, 256 px, patch 16,
   decoder the encoder's size) in bfloat16 on the GPU, against the PyTorch reference (eager and torch.compile)
   in the same Python (repeats alternated, both on the GPU at once), with MFU over the chip's dense bf16 peak;
2. correctness: the loss and gradient norm of the first step, same initial parameters, batch and noise, in
   bfloat16 on the GPU and in float32 on the CPU (a child process with JAX_PLATFORMS=cpu), within bf16 tolerance.
Writes bench/results/<date>-<device>.json (and a copy in --out_dir). Nothing here needs TensorFlow; configs need
ml_collections, which a GPU image may lack (carry its wheel).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

# JAX and the PyTorch worker hold the GPU at once (train_step.py alternates their repeats): JAX must not take 75%
# of its memory up front, as it does by default.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (bench/train_step.py)

ROOT = train_step.ROOT
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s of the SXM parts, datasheets
BATCH = {"B": 256, "half_L": 128, "L": 128}  # per GPU; the paper's 2048 is over 256 TPU cores
TOLERANCE = 2e-2  # relative: bf16 has an 8-bit mantissa, and the loss averages many rounded products


def imagenet_config(model: str) -> str:
    return f"configs/imagenet.py:model={model},epochs=400"


def first_step(config: str, overrides: list[str]) -> dict:
    """Loss and gradient norm of the first train step. The loss alone would not do: adaLN-Zero starts with a zero
    output layer, so the first loss does not depend on the network; its gradient does, through forward and
    backward (the output layer's gradient is the last block's features times dL/d output)."""
    import jax

    step, state, images, labels, _ = train_step.build_jax(train_step.load_config(config, overrides))
    _, metrics = step(state, images, labels)
    return {k: float(jax.device_get(metrics[k])) for k in ("loss", "grad_norm")}


def loss_check(config: str, batch: int) -> dict:
    """First-step loss and gradient norm in bfloat16 here against float32 on the CPU, in a child process."""
    common = [f"train.batch_size={batch}", "mesh.data=1"]
    here = first_step(config, common + ["model.dtype=bfloat16"])
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--cpu_loss", config, "--batch", str(batch)],
        capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    lines = [ln for ln in child.stdout.splitlines() if ln.startswith("{")]
    if child.returncode or not lines:
        return {"error": (child.stderr or child.stdout)[-2000:]}
    cpu = json.loads(lines[-1])
    rel = {k: abs(here[k] - cpu[k]) / abs(cpu[k]) for k in here}
    return {"config": config, "batch": batch, "bf16_here": here, "f32_cpu": cpu, "relative_difference": rel,
            "tolerance": TOLERANCE, "ok": max(rel.values()) <= TOLERANCE}


def device_name() -> str:
    import jax

    return jax.devices()[0].device_kind


def peak_of(kind: str) -> float:
    for name, peak in PEAK_BF16.items():
        if name in kind:
            return peak
    return 0.0  # unknown chip: train_step measures a matmul instead


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="B,L")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--torch_modes", default="eager,compile")
    p.add_argument("--check_config", default="", help="config of the loss check (default: the first model's)")
    p.add_argument("--batch", type=int, default=8, help="batch of the loss check")
    p.add_argument("--skip_speed", action="store_true", help="only the loss check")
    p.add_argument("--out_dir", default="")
    p.add_argument("--cpu_loss", default="", help=argparse.SUPPRESS)  # the child: print the float32 loss
    args = p.parse_args(argv)
    if args.cpu_loss:
        out = first_step(args.cpu_loss, [f"train.batch_size={args.batch}", "mesh.data=1", "model.dtype=float32"])
        print(json.dumps(out), flush=True)
        return out

    kind = device_name()
    models = [m for m in args.models.split(",") if m]
    result = {"bench": "gpu", "date": datetime.datetime.now().isoformat(timespec="seconds"), "device": kind,
              "peak_bf16_flops": peak_of(kind), "train_step": {}}
    for model in [] if args.skip_speed else models:
        result["train_step"][model] = train_step.main([
            "--config", imagenet_config(model), "--set", f"train.batch_size={BATCH[model]}",
            "--set", "model.dtype=bfloat16", "--set", "mesh.data=1", "--warmup", "5", "--steps", str(args.steps),
            "--repeats", "3", "--torch_python", sys.executable, "--torch_modes", args.torch_modes,
            "--peak_flops", str(peak_of(kind))])
    check = args.check_config or imagenet_config(models[0])
    result["loss_check"] = loss_check(check, args.batch)
    print(json.dumps(result["loss_check"]), flush=True)
    name = f"{result['date'][:10]}-{kind.replace(' ', '_')}.json"
    results_dir = [] if args.skip_speed else [os.path.join(ROOT, "bench", "results")]  # a loss check alone: --out_dir
    for folder in filter(None, results_dir + [args.out_dir]):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
