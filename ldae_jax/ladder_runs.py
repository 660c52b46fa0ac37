"""The runs of a ladder invocation: plan them (one per distinct config), run them here one after another, print
their commands for a cluster, and gather their probe results. The CLI is `ldae_jax.ladder`."""

from __future__ import annotations

import dataclasses
import json
import time

CONFIG_FILE = "configs/ladder/rows.py"


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One (row, seed): its config; the run it belongs to, named by `run_row`, the row nearest the root of its
    lineage with the same pre-training (so t2.pca.d32 is t3.step0's run and a.t20.noisy is t3.step5's, whatever
    else is selected); and the file its probe result goes to (`probe_ROW.json` when only the probe differs)."""

    row: str
    seed: int
    config: object
    run_row: str
    run_config: object
    probe_file: str

    @property
    def run_key(self) -> str:
        return f"{self.run_row}/seed{self.seed}"


def _run_row(row: str, config, config_for) -> str:
    """The highest ancestor of `row` whose pre-training is the same as the row's."""
    from configs.ladder import rows as rows_lib
    from ldae_jax.train import checkpoint

    mine = checkpoint.config_fingerprint(config)
    while rows_lib.ROWS[row].parent and checkpoint.config_fingerprint(config_for(rows_lib.ROWS[row].parent)) == mine:
        row = rows_lib.ROWS[row].parent
    return row


def plan(rows: list[str], scale: str, seeds: list[int], vgg16: str = "", inception: str = "",
         check: bool = True) -> list[PlannedRun]:
    """Every (row, seed), each config built and checked, so a mistake stops the ladder before any compute.
    With `inception` (the Inception-v3 weights) every run is also measured by FID. `check=False` skips the checks,
    for reading results that exist (e.g. rows that needed the VGG16 weights when they ran)."""
    from configs import common
    from configs.ladder import rows as rows_lib
    from ldae_jax import config_lib, objectives
    from ldae_jax.evaluate import fid_eval
    from ldae_jax.tokenizers import tokenizer as tok_lib

    out = []
    for seed in seeds:
        def config_for(name):
            return rows_lib.get_config(f"row={name},scale={scale},seed={seed},vgg16={vgg16},inception={inception}")

        for row in rows:
            config = config_for(row)
            if check:
                config_lib.check_fields(config, common.ldae_base())
                tok_lib.check_config(config)
                objectives.objective_from(config, num_classes=10)
                if inception:
                    fid_eval.check_config(config)
            run_row = _run_row(row, config, config_for)
            run_config = config_for(run_row)
            probe_file = "probe.json" if dict(config.probe) == dict(run_config.probe) else f"probe_{row}.json"
            out.append(PlannedRun(row, seed, config, run_row, run_config, probe_file))
    return out


def run_dir(root: str, run_key: str) -> str:
    return f"{root}/{run_key}"


def run_local(planned: list[PlannedRun], root: str) -> None:
    """Runs what is not done yet, one after another, with progress and ETA; stops cleanly on preemption.

    A row that changes only the probe first makes sure its run's pre-training is done (under the run's own
    config, so the workdir's config.json stays the run's), then probes into its own file.
    """
    from ldae_jax import stages

    todo, seen = [], set()
    for p in planned:
        if (p.run_key, p.probe_file) not in seen:
            seen.add((p.run_key, p.probe_file))
            todo.append(p)
    start, ran = time.perf_counter(), 0
    for i, p in enumerate(todo):
        workdir = run_dir(root, p.run_key)
        label = f"{p.run_key}" + (f" ({p.probe_file})" if p.probe_file != "probe.json" else "")
        wants_fid = bool(p.run_config.fid.inception_weights) and _read_fid(workdir) is None
        if _read_probe(workdir, p.probe_file) is not None and not wants_fid:
            print(f"[{i + 1}/{len(todo)}] {label}: done earlier", flush=True)
            continue
        eta = f", ETA {(time.perf_counter() - start) / ran * (len(todo) - i) / 60:.0f} min" if ran else ""
        print(f"[{i + 1}/{len(todo)}] {label}{eta}", flush=True)
        _reuse_tokenizer(p.run_config, root, workdir)
        out = stages.run(p.run_config, workdir, "pretrain")
        _share_tokenizer(p.run_config, root, workdir)
        if out.get("pretrain", {}).get("preempted"):
            print("Preempted: rerun the same command to resume the ladder.", flush=True)
            return
        if _read_probe(workdir, p.probe_file) is None:
            stages.run(p.config, workdir, "probe", probe_file=p.probe_file)
        if wants_fid:
            stages.run(p.run_config, workdir, "fid")
        ran += 1


TOKENIZER_FILES = {"pca": "pca.npz", "patch_ae": "patch_ae.npz", "patch_vae": "patch_vae.npz",
                   "conv_vae": "conv_vae.npz"}


def _tokenizer_cache(config, root: str):
    """ROOT/tokenizers/<hash of everything the tokenizer depends on>/<file>, or None for the pixel identity."""
    import hashlib

    from etils import epath

    name = TOKENIZER_FILES.get(config.tokenizer.kind)
    if name is None:
        return None
    key = {"seed": config.seed, **{s: config[s].to_dict() for s in ("data", "pca", "tokenizer")}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return epath.Path(root) / "tokenizers" / digest / name


def _reuse_tokenizer(config, root: str, workdir: str) -> None:
    """Rows with the same data, geometry, tokenizer recipe and seed share one trained tokenizer (a conv VAE is
    hours at paper scale): copy it in before the run; loading still checks it against the config and its hash."""
    from etils import epath

    cached = _tokenizer_cache(config, root)
    target = None if cached is None else epath.Path(workdir) / cached.name
    if cached is not None and cached.exists() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        cached.copy(target)
        print(f"Reusing the tokenizer {cached}", flush=True)


def _share_tokenizer(config, root: str, workdir: str) -> None:
    from etils import epath

    cached = _tokenizer_cache(config, root)
    made = None if cached is None else epath.Path(workdir) / cached.name
    if made is not None and made.exists() and not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        made.copy(cached)


def print_commands(planned: list[PlannedRun], root: str, scale: str, vgg16: str = "", inception: str = "") -> None:
    """One command per distinct run, then one per extra probe of a run and its FID (start those after their
    run's command)."""
    vgg = f",vgg16={vgg16}" if vgg16 else ""
    seen = set()
    for p in planned:
        workdir = run_dir(root, p.run_key)
        if (p.run_key, "probe.json") not in seen:
            seen.add((p.run_key, "probe.json"))
            print(f"python -m ldae_jax.main --config={CONFIG_FILE}:row={p.run_row},scale={scale},seed={p.seed}{vgg} "
                  f"--workdir={workdir} --mode=pretrain_probe")
            if inception:
                print(f"python -m ldae_jax.main --config={CONFIG_FILE}:row={p.run_row},scale={scale},seed={p.seed}"
                      f"{vgg},inception={inception} --workdir={workdir} --mode=fid")
        if (p.run_key, p.probe_file) not in seen:
            seen.add((p.run_key, p.probe_file))
            print(f"python -m ldae_jax.main --config={CONFIG_FILE}:row={p.row},scale={scale},seed={p.seed}{vgg} "
                  f"--workdir={workdir} --mode=probe --probe_file={p.probe_file}")


def _read_probe(workdir: str, probe_file: str):
    from etils import epath

    path = epath.Path(workdir) / probe_file
    if not path.exists():
        return None
    return json.loads(path.read_text())["results"]["l-DAE"]["test_top1"]


def _read_fid(workdir: str):
    from etils import epath

    path = epath.Path(workdir) / "fid.json"
    return json.loads(path.read_text())["fid"] if path.exists() else None


def gather_fid(planned: list[PlannedRun], root: str) -> dict:
    """{row: [FID of each seed that has one]} (a row's FID is its run's: generation does not depend on the probe)."""
    results = {}
    for p in planned:
        value = _read_fid(run_dir(root, p.run_key))
        results.setdefault(p.row, []).extend([] if value is None else [value])
    return results


def gather(planned: list[PlannedRun], root: str) -> dict:
    """{row: [top-1 of each seed that finished]}."""
    results = {}
    for p in planned:
        top1 = _read_probe(run_dir(root, p.run_key), p.probe_file)
        results.setdefault(p.row, [])
        if top1 is not None:
            results[p.row].append(top1)
    return results
