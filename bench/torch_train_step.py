"""PyTorch reference of the l-DAE train step, for bench/train_step.py (runs in .venv-torch; no JAX here).

Same shapes, loss and optimizer as ldae_jax: timm ViT `Block`s (LayerNorms without affine, tanh GELU, qkv bias)
driven as adaLN blocks (a per-block SiLU MLP of the t embedding gives the LayerNorm shift and scale), the
sin-cos position and t embeddings, the PCA encode -> noise -> decode input and the Eq. 4 weighted loss with
lambda_t = 1 / (1 + sigma_t^2), then the global gradient norm and an AdamW step (foreach). The JAX step's
divergence guard (a where over the parameters) has no counterpart. The basis is a random orthonormal one.
Runs on the GPU when torch sees one, with bf16 autocast when the JAX model computes in bfloat16.
A worker for bench/train_step.py, which alternates its repeats with JAX's: it builds and warms up every mode,
prints {"ready": [modes]}, then for each line "run" on stdin times one repeat of every mode and prints
{"round": {mode: seconds per step}}; at the end of stdin it prints {mode: {sec_per_step, repeats, ...} or
{error}}.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import time
import traceback

import numpy as np
import torch
from timm.models.vision_transformer import Block
from torch import nn


def sincos_2d(num_tokens: int, width: int) -> torch.Tensor:
    side = math.isqrt(num_tokens)
    omega = 1.0 / 10000 ** (np.arange(width // 4) / (width // 4))
    ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    parts = [f(pos.reshape(-1, 1) * omega[None]) for pos in (ys, xs) for f in (np.sin, np.cos)]
    return torch.tensor(np.concatenate(parts, axis=1), dtype=torch.float32)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def cond_mlp(spec, chunks):
    hidden = max(1, int(spec["width"] * spec["cond_hidden_ratio"]))
    return nn.Sequential(nn.Linear(spec["t_freq_dim"], hidden), nn.SiLU(), nn.Linear(hidden, chunks * spec["width"]))


class AdaLNBlock(nn.Module):
    """A timm Block whose two LayerNorm outputs are shifted and scaled by t (and gated with adaLN-Zero)."""

    def __init__(self, spec):
        super().__init__()
        self.chunks = 6 if spec["adaln_zero"] else 4
        self.cond = cond_mlp(spec, self.chunks)
        self.block = Block(spec["width"], spec["num_heads"], mlp_ratio=spec["mlp_ratio"], qkv_bias=True,
                           norm_layer=functools.partial(nn.LayerNorm, eps=1e-6, elementwise_affine=False),
                           act_layer=functools.partial(nn.GELU, approximate="tanh"))

    def forward(self, x, t_emb):
        mods = self.cond(t_emb)[:, None].chunk(self.chunks, dim=-1)
        if self.chunks == 6:
            shift1, scale1, gate1, shift2, scale2, gate2 = mods
        else:
            (shift1, scale1, shift2, scale2), gate1, gate2 = mods, 1.0, 1.0
        b = self.block
        x = x + gate1 * b.attn(b.norm1(x) * (1 + scale1) + shift1)
        return x + gate2 * b.mlp(b.norm2(x) * (1 + scale2) + shift2)


class DenoisingViT(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.t_freq_dim = spec["t_freq_dim"]
        self.embed = nn.Linear(spec["in_dim"], spec["width"])
        self.register_buffer("pos", sincos_2d(spec["num_tokens"], spec["width"]))
        self.blocks = nn.ModuleList([AdaLNBlock(spec) for _ in range(spec["depth"])])
        self.final_cond = cond_mlp(spec, 2)
        self.final_norm = nn.LayerNorm(spec["width"], eps=1e-6, elementwise_affine=False)
        self.head = nn.Linear(spec["width"], spec["out_dim"])

    def forward(self, x, t):
        x = self.embed(x) + self.pos
        t_emb = timestep_embedding(t, self.t_freq_dim)
        for block in self.blocks:
            x = block(x, t_emb)
        shift, scale = self.final_cond(t_emb)[:, None].chunk(2, dim=-1)
        return self.head(self.final_norm(x) * (1 + scale) + shift)


class LDAELoss(nn.Module):
    """images uint8 [B, H, W, C] -> the l-DAE loss (PCA input noise, Eq. 4 target), as ldae_jax.objectives."""

    def __init__(self, spec, net):
        super().__init__()
        self.net, self.p, self.T, self.w_res = net, spec["patch_size"], spec["T"], spec["w_res"]
        self.bf16 = spec["dtype"] == "bfloat16"  # bf16 matmuls, float32 weights and loss
        dim, d = spec["patch_dim"], spec["d"]
        basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(dim, dim)))
        self.register_buffer("v_d", torch.tensor(basis[:d], dtype=torch.float32))  # [d, D], orthonormal rows
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("sigma", torch.tensor(spec["sigma_max"] * np.arange(spec["T"]) / spec["T"],
                                                   dtype=torch.float32))

    def patchify(self, x):
        b, h, w, c = x.shape
        p = self.p
        x = x.reshape(b, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def forward(self, images):
        x0 = self.patchify(images.float() / 127.5 - 1.0)
        z0 = (x0 - self.mean) @ self.v_d.T
        t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device)
        sigma = self.sigma[t]
        z_t = z0 + sigma[:, None, None] * torch.randn_like(z0)
        with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=self.bf16):  # as the JAX model's dtype
            pred = self.net(z_t @ self.v_d + self.mean, t).float()
        e = x0 - pred
        in_top = (e @ self.v_d.T).square().sum(-1)
        err = (in_top + self.w_res * (e.square().sum(-1) - in_top)) / x0.shape[-1]
        return (err.mean(1) / (1.0 + sigma.square())).mean()


def grad_norm(params):
    grads = [p.grad for p in params if p.grad is not None]
    if hasattr(torch.nn.utils, "get_total_norm"):
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def build(spec, mode, warmup: int):
    """(run_steps, info): the mode's step with its first step (compilation, for 'compile') and warm-up done."""
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loss_mod = LDAELoss(spec, DenoisingViT(spec)).to(device)
    params = list(loss_mod.parameters())
    opt = torch.optim.AdamW(params, lr=spec["lr"], betas=(spec["b1"], spec["b2"]),
                            weight_decay=spec["weight_decay"], foreach=True)
    loss_fn = torch.compile(loss_mod) if mode == "compile" else loss_mod
    b, s, c = spec["batch_size"], spec["image_size"], spec["channels"]
    images = torch.randint(0, 256, (b, s, s, c), dtype=torch.uint8, device=device)
    last = {}

    def run_steps(k):
        for _ in range(k):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(images)
            loss.backward()
            last["grad_norm"] = grad_norm(params)
            opt.step()
            last["loss"] = loss
        if device.type == "cuda":
            torch.cuda.synchronize()  # the kernels are queued: time them, not their launch

    t0 = time.perf_counter()
    run_steps(1)
    info = {"first_step_s": time.perf_counter() - t0, "num_params": sum(p.numel() for p in params),
            "device": str(device), "last": last}
    run_steps(warmup)
    return run_steps, info


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True, help="JSON shapes from bench/train_step.py")
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    spec = json.loads(args.spec)
    torch.set_num_threads(args.threads)
    steppers, out = {}, {}
    for mode in filter(None, args.modes.split(",")):
        try:
            steppers[mode], out[mode] = build(spec, mode, args.warmup)
        except Exception as e:  # noqa: BLE001 - a failed mode (torch.compile without a compiler) is a result
            out[mode] = {"error": f"{type(e).__name__}: {e}"[:1500], "trace": traceback.format_exc()[-1500:]}
        out[mode]["threads"] = torch.get_num_threads()
    print(json.dumps({"ready": sorted(steppers)}), flush=True)
    # One timed repeat of every mode per "run" line, so the caller can alternate them with its own repeats.
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        round_times = {}
        for mode, run_steps in steppers.items():
            t0 = time.perf_counter()
            run_steps(args.steps)
            round_times[mode] = (time.perf_counter() - t0) / args.steps
            out[mode].setdefault("repeats", []).append(round_times[mode])
        print(json.dumps({"round": round_times}), flush=True)
    for mode in steppers:
        last = out[mode].pop("last")
        out[mode]["final_loss"] = float(last["loss"])
        if out[mode].get("repeats"):
            out[mode]["sec_per_step"] = statistics.median(out[mode]["repeats"])
    out["versions"] = {"torch": torch.__version__, "numpy": np.__version__}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
