"""Analytic matmul FLOPs of one l-DAE train step, shared by the benchmark and its test (no JAX import).

Counted: every matmul of the denoising ViT (patch embedding, per-block adaLN MLP, qkv, q k^T, attention x v,
output projection, MLP, final adaLN MLP, head) at 2 FLOPs per multiply-add; a train step is 3x the forward
(the backward needs a gradient for both operands of each matmul). Not counted: LayerNorm, softmax, GELU, the
optimizer, and the tokenizer (PCA encode/decode and the loss's projection, reported apart as `tokenizer`).
"""

from __future__ import annotations


def forward_flops_per_example(*, num_tokens, in_dim, out_dim, width, depth, mlp_ratio=4.0,
                              cond_hidden_ratio=0.25, t_freq_dim=256, adaln_zero=False) -> dict:
    """Forward matmul FLOPs of the network for one example, by part."""
    n, w = num_tokens, width
    hidden_c = max(1, int(w * cond_hidden_ratio))
    chunks = 6 if adaln_zero else 4
    cond = 2 * (t_freq_dim * hidden_c + hidden_c * chunks * w)  # once per example, not per token
    block = {
        "qkv": 2 * n * w * 3 * w,
        "attention": 2 * 2 * n * n * w,  # q k^T and attention x v, all heads together
        "proj": 2 * n * w * w,
        "mlp": 2 * 2 * n * w * int(w * mlp_ratio),
        "adaln": cond,
    }
    parts = {k: depth * v for k, v in block.items()}
    parts["embed"] = 2 * n * in_dim * w
    parts["head"] = 2 * n * w * out_dim + 2 * (t_freq_dim * hidden_c + hidden_c * 2 * w)
    return parts


def tokenizer_flops_per_example(*, num_tokens, patch_dim, d) -> int:
    """PCA encode + decode of the input and the loss's projection, forward, plus that projection's backward."""
    one = 2 * num_tokens * patch_dim * d
    return 3 * one + one


def step_flops(spec: dict, batch_size: int) -> dict:
    """{'model': 3 x forward network FLOPs per step, 'tokenizer': ..., 'forward_per_example', 'parts'}."""
    parts = forward_flops_per_example(
        num_tokens=spec["num_tokens"], in_dim=spec["in_dim"], out_dim=spec["out_dim"], width=spec["width"],
        depth=spec["depth"], mlp_ratio=spec["mlp_ratio"], cond_hidden_ratio=spec["cond_hidden_ratio"],
        t_freq_dim=spec["t_freq_dim"], adaln_zero=spec["adaln_zero"])
    fwd = sum(parts.values())
    tok = tokenizer_flops_per_example(num_tokens=spec["num_tokens"], patch_dim=spec["patch_dim"], d=spec["d"])
    return {"model": 3 * fwd * batch_size, "tokenizer": tok * batch_size, "forward_per_example": fwd,
            "parts": parts}
