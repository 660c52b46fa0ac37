"""Split names: how many examples a split or sub-split holds, and which whole split a slice is cut from."""

from __future__ import annotations

import re

from ldae_jax.errors import DataError


def num_examples(builder, split) -> int:
    """Number of examples of a split or sub-split of a TFDS builder (e.g. 'train[:10%]' or a per-process split)."""
    try:
        return builder.info.splits[split].num_examples
    except (KeyError, ValueError) as e:
        raise DataError(f"Bad split {split!r} for {builder.name}: {e}") from e


def base_split(split) -> str:
    """'train' for 'train', 'train[:90%]' or a per-process even split of either: the split a slice is cut from."""
    if not isinstance(split, str) and hasattr(split, "split"):  # tfds.split_for_jax_process's _EvenSplit
        return base_split(split.split)
    return re.split(r"[\[+]", str(split))[0].strip()
