"""What a `--workdir` holds, for the figures: a single run (its `config.json`), or a ladder root (folders
ROW/seedN made by `ldae_jax.ladder`), whose probe results are gathered the way the ladder report gathers them."""

from __future__ import annotations

import dataclasses
import functools
import re

from etils import epath

from ldae_jax.errors import UserError


@dataclasses.dataclass
class Workdir:
    """kind: 'run', 'ladder', or 'none' (no --workdir: only what needs no run can be drawn)."""

    path: str | None
    kind: str

    @functools.cached_property
    def config(self):
        from ldae_jax import config_lib

        return config_lib.load_config(self.path)

    def has(self, name: str) -> bool:
        return self.path is not None and (epath.Path(self.path) / name).exists()

    @functools.cached_property
    def ladder(self) -> "LadderResults":
        return gather_ladder(self.path)


@dataclasses.dataclass
class LadderResults:
    scale: str
    results: dict  # {row: [top-1 of each seed that has one]}, for every row the figures use
    configs: dict  # {row: its config at this scale (seed of the first run)}


def require_tokenizer_file(config, workdir: str) -> None:
    """A one-line error when the run's tokenizer file is missing: a figure never fits or trains a tokenizer."""
    from ldae_jax import ladder_runs

    name = ladder_runs.TOKENIZER_FILES.get(config.tokenizer.kind)
    if name is not None and not (epath.Path(workdir) / name).exists():
        raise UserError(f"{workdir}/{name} not found: run the tokenizer stage first "
                        f"(python -m ldae_jax.main --workdir={workdir} --mode=tokenizer)")


def ladder_runs_in(root: str) -> dict[str, list[int]]:
    """{row folder: [seeds]} for the ROW/seedN folders under `root` whose ROW is a ladder row."""
    from configs.ladder import rows as rows_lib

    found = {}
    for child in epath.Path(root).iterdir():
        if child.name in rows_lib.ROWS and child.is_dir():
            seeds = [int(m.group(1)) for s in child.iterdir() if (m := re.fullmatch(r"seed(\d+)", s.name))]
            if seeds:
                found[child.name] = sorted(seeds)
    return found


def inspect(path: str | None) -> Workdir:
    if path is None:
        return Workdir(None, "none")
    root = epath.Path(path)
    if not root.is_dir():
        raise UserError(f"workdir {path!r} does not exist; point --workdir at a run or a ladder root")
    if (root / "config.json").exists():
        return Workdir(path, "run")
    if ladder_runs_in(path):
        return Workdir(path, "ladder")
    raise UserError(f"{path} is neither a run (no config.json) nor a ladder root (no ROW/seedN folders of "
                    "configs/ladder/rows.py rows)")


def ladder_scale(root: str, runs: dict[str, list[int]]) -> str:
    """The scale whose row config matches a run's config.json; else the one a ladder_SCALE.md report names."""
    from configs.ladder import rows as rows_lib
    from ldae_jax import config_lib
    from ldae_jax.train import checkpoint

    for row, seeds in runs.items():
        for seed in seeds:
            run = epath.Path(root) / row / f"seed{seed}"
            if not (run / "config.json").exists():
                continue
            mine = checkpoint.config_fingerprint(config_lib.load_config(str(run)))
            for scale in rows_lib.SCALES:
                built = checkpoint.config_fingerprint(rows_lib.get_config(f"row={row},scale={scale},seed={seed}"))
                # Fields added to the config since the run, and the user's file paths, do not tell scales apart.
                shared = [k for k in mine.keys() & built.keys() if not k.endswith("_weights")]
                if all(mine[k] == built[k] for k in shared):
                    return scale
    for scale in rows_lib.SCALES:
        if (epath.Path(root) / f"ladder_{scale}.md").exists():
            return scale
    raise UserError(f"{root}: cannot tell the ladder's scale (no run's config.json matches a row of "
                    "configs/ladder/rows.py at any scale, and no ladder_SCALE.md report is there)")


def figure_rows() -> list[str]:
    """The rows the ladder figures draw: Figure 6's trajectory and the Table 2 / Figure 5 rows."""
    from configs.ladder import rows as rows_lib
    from ldae_jax.evaluate import ladder_report

    return [r for r in rows_lib.ROWS if r in ladder_report.TRAJECTORY or r.startswith(("t2.", "f5."))]


def gather_ladder(root: str) -> LadderResults:
    from ldae_jax import ladder_runs

    runs = ladder_runs_in(root)
    scale = ladder_scale(root, runs)
    seeds = sorted({s for seeds in runs.values() for s in seeds})
    planned = ladder_runs.plan(figure_rows(), scale, seeds, check=False)
    configs = {}
    for p in planned:
        configs.setdefault(p.row, p.config)
    return LadderResults(scale, ladder_runs.gather(planned, root), configs)
