"""The JAX side of the PyTorch check (run with .venv's python by launch/test_torch.sh; .venv-torch has no JAX).

Writes to the folder given as the only argument: `vit.safetensors`, the folded encoder of a random denoising ViT
(every parameter non-zero, so each folded term and the head matter), and `reference.npz` with input images
(NCHW, as timm reads them) and the JAX classifier's features (fc_norm of the pooled tokens) and logits.
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np
from flax import nnx

from ldae_jax.models import timm_format
from ldae_jax.models import classifier, fold, vit
from ldae_jax.tokenizers.patches import patchify

IMAGE, PATCH, CHANNELS, NUM_CLASSES = 32, 4, 3, 7


def random_network():
    """DenoisingViT (width 64, 2 + 1 blocks, 4 heads) with every parameter perturbed, including the zero-initialised
    modulation; as tests/test_fold.py's `random_network`."""
    cfg = vit.ModelConfig(num_tokens=(IMAGE // PATCH) ** 2, in_dim=PATCH * PATCH * CHANNELS,
                          out_dim=PATCH * PATCH * CHANNELS, width=64, encoder_depth=2, decoder_depth=1, num_heads=4)
    params = nnx.state(vit.DenoisingViT(cfg, rngs=nnx.Rngs(0))).to_pure_dict()
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    return cfg, jax.tree.unflatten(treedef, [a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])


def main(out_dir: str) -> None:
    model_cfg, pre = random_network()
    params = fold.fold_encoder(pre, model_cfg, t=10, num_blocks=2, num_classes=NUM_CLASSES)
    rng = np.random.default_rng(2)
    w = model_cfg.width  # a random head and fc_norm: fold leaves them at zero / identity
    params["head"] = {"kernel": rng.normal(0, 0.2, (w, NUM_CLASSES)).astype(np.float32),
                      "bias": rng.normal(0, 0.2, NUM_CLASSES).astype(np.float32)}
    params["fc_norm"] = {"scale": (1 + 0.1 * rng.standard_normal(w)).astype(np.float32),
                         "bias": (0.1 * rng.standard_normal(w)).astype(np.float32)}
    ccfg = fold.classifier_config(model_cfg, num_blocks=2, num_classes=NUM_CLASSES)
    timm_format.save_safetensors(os.path.join(out_dir, "vit.safetensors"), params, ccfg, PATCH, CHANNELS, IMAGE)
    images = rng.uniform(-1, 1, (4, IMAGE, IMAGE, CHANNELS)).astype(np.float32)
    model = nnx.merge(nnx.graphdef(classifier.ViTClassifier(ccfg, rngs=nnx.Rngs(0))), params)
    with jax.default_matmul_precision("highest"):  # no reduced-precision matmuls on an accelerator host
        tokens = patchify(images, PATCH)
        features, logits = np.asarray(model.features(tokens)), np.asarray(model(tokens))
    np.savez(os.path.join(out_dir, "reference.npz"), images_nchw=images.transpose(0, 3, 1, 2), features=features,
             logits=logits)
    print(f"[make_reference] wrote vit.safetensors and reference.npz to {out_dir}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_reference.py OUT_DIR")
    main(sys.argv[1])
