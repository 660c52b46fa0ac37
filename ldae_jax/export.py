"""The export stage (`--mode=export`): the run's latest pre-training checkpoint, folded at `finetune.t` into a
plain ViT classifier, written in timm's format (`models/timm_format.py`) for PyTorch."""

from __future__ import annotations

import jax
from etils import epath
from jax.experimental import multihost_utils

from ldae_jax.errors import UserError
from ldae_jax.models import fold, timm_format


def check(config, local: bool = True) -> None:
    del local  # no file named by the config
    if config.objective.input != "image":
        raise UserError("export needs an encoder that reads image patches (objective.input='image'); this run's "
                        f"encoder reads {config.objective.input!r} tokens, which timm's patch embedding cannot "
                        "produce")


def export_run(exp) -> dict:
    """The encoder_depth-block classifier (zero head over the dataset's classes), written to
    workdir/export/encoder_t{t}.safetensors."""
    config, workdir = exp.config, exp.workdir
    p = config.tokenizer.patch_size
    channels = exp.model_cfg.in_dim // (p * p)
    ccfg = fold.classifier_config(exp.model_cfg, num_blocks=exp.model_cfg.encoder_depth, num_classes=exp.num_classes)
    step, pre = exp.restore_params()
    pre = multihost_utils.process_allgather(pre, tiled=True)
    t = config.finetune.t
    params = fold.fold_encoder(pre, exp.model_cfg, t=t, num_blocks=ccfg.depth, num_classes=exp.num_classes)
    path = str(epath.Path(workdir) / "export" / f"encoder_t{t}.safetensors")
    if jax.process_index() == 0:
        timm_format.save_safetensors(path, params, ccfg, p, channels, config.data.image_size)
        print(f"Exported the step-{step} encoder (t={t}, {ccfg.depth} blocks) to {path}", flush=True)
    return {"path": path, "step": step, "t": t,
            "timm_kwargs": timm_format.timm_kwargs(ccfg, p, channels, config.data.image_size)}
