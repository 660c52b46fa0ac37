"""The tokenizer kinds a run can use, by `config.tokenizer.kind`: each module listed here declares its `KINDS`.

Adding a tokenizer is one module with its tokenizer class and its `KINDS` entry (`kind.Kind`), its name in the
import below, and its test.
"""

from __future__ import annotations

from ldae_jax.errors import UserError
from ldae_jax.tokenizers import conv_vae, kind as kind_lib, patch_ae, pca_fit, pixel

KINDS: dict[str, kind_lib.Kind] = {k.name: k for module in (pca_fit, pixel, patch_ae, conv_vae) for k in module.KINDS}


def get(name: str) -> kind_lib.Kind:
    if name not in KINDS:
        raise UserError(f"tokenizer.kind={name!r} is unknown; choose one of {', '.join(KINDS)}")
    return KINDS[name]


def check(config, channels: int, *, local: bool = True) -> kind_lib.Kind:
    """The tokenizer fields of `config` for images with `channels` channels (and with `local`, the files they
    name); returns its kind."""
    kind, t = get(config.tokenizer.kind), config.tokenizer
    if config.data.image_size % t.patch_size:
        raise UserError(f"data.image_size={config.data.image_size} is not divisible by "
                        f"tokenizer.patch_size={t.patch_size}")
    kind.check(config, channels, local=local)
    return kind


def load_or_fit(config, workdir: str, builder):
    """The run's tokenizer: loaded from the workdir (checked against the config) or fitted/trained and saved."""
    return get(config.tokenizer.kind).load_or_fit(config, workdir, builder)
