"""What a tokenizer kind declares to the registry (`registry.py`), and the interface its tokenizers share.

Every tokenizer object has `patch_size` (pixels per token side), `channels`, `d` (latent dims per token), `dim`
(D = patch_size^2 x channels), `image_latents(images [B, H, W, C] in [-1, 1]) -> [B, N, d]`,
`latent_images(z, H, W) -> images` and `content_hash()`. A patch-wise kind's tokenizers also map single patches,
`encode(patches [..., D]) -> [..., d]` and `decode`, which image input and output need; an orthonormal kind's
also give `weighted_residual_sq(e [..., D], w_res) -> [...]`, the residual loss of the 'original' target (Eq. 4).
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str  # the value of config.tokenizer.kind
    summary: str  # one line, for the dry run's plan
    file: str | None  # the file it is saved as in the workdir; None: nothing is fitted or saved
    patchwise: bool  # one token is one patch (encode / decode per patch): image input and output work
    orthonormal: bool  # an orthonormal D x D basis: the 'original' target's weighted residual works
    check: Callable  # (config, channels, local) -> None: its fields (and with local, its files), before any data
    load_or_fit: Callable  # (config, workdir, builder) -> tokenizer: the workdir's file (checked), else a new one
    load: Callable | None = None  # (config, path, channels) -> tokenizer: its file, checked against the config
