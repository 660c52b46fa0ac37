"""What a `--workdir` holds, for the figures: a single run (its `config.json`), or a ladder root, whose report
table (`ladder_SCALE.json`, written by `python -m ldae_jax.ladder` beside `ladder_SCALE.md`) the ladder figures
draw from."""

from __future__ import annotations

import dataclasses
import functools
import json

from etils import epath

from ldae_jax import config_lib
from ldae_jax.errors import UserError
from ldae_jax.tokenizers import registry


@dataclasses.dataclass
class Workdir:
    """kind: 'run', 'ladder', or 'none' (no --workdir: only what needs no run can be drawn)."""

    path: str | None
    kind: str

    @functools.cached_property
    def config(self):
        return config_lib.load_config(self.path)

    def has(self, name: str) -> bool:
        return self.path is not None and (epath.Path(self.path) / name).exists()

    @functools.cached_property
    def ladder(self) -> "LadderTable":
        return read_ladder(self.path)


@dataclasses.dataclass
class LadderTable:
    scale: str
    rows: list  # the report's table: one dict per row with its facts and results (ladder/report.py: table)


def require_tokenizer_file(config, workdir: str) -> None:
    """A one-line error when the run's tokenizer file is missing: a figure never fits or trains a tokenizer."""
    name = registry.get(config.tokenizer.kind).file
    if name is not None and not (epath.Path(workdir) / name).exists():
        raise UserError(f"{workdir}/{name} not found: run the tokenizer stage first "
                        f"(python -m ldae_jax.main --workdir={workdir} --mode=tokenizer)")


def ladder_tables(root: str) -> list[epath.Path]:
    return sorted(epath.Path(root).glob("ladder_*.json"))


def inspect(path: str | None) -> Workdir:
    if path is None:
        return Workdir(None, "none")
    root = epath.Path(path)
    if not root.is_dir():
        raise UserError(f"workdir {path!r} does not exist; point --workdir at a run or a ladder root")
    if (root / "config.json").exists():
        return Workdir(path, "run")
    if ladder_tables(path):
        return Workdir(path, "ladder")
    raise UserError(f"{path} is neither a run (no config.json) nor a ladder root (no ladder_SCALE.json report: "
                    f"python -m ldae_jax.ladder --launch=report --workdir={path} --rows=... writes it)")


def read_ladder(root: str) -> LadderTable:
    """The newest report table of a ladder root."""
    path = max(ladder_tables(root), key=lambda p: p.stat().mtime)
    data = json.loads(path.read_text())
    return LadderTable(data["scale"], data["rows"])
