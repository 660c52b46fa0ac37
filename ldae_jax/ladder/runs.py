"""The runs of a ladder invocation: plan them (one per distinct config, each checked before any compute), run them
here one after another, print their commands for a cluster, and gather their results through the stage
registry. The command line is `python -m ldae_jax.ladder`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time

from etils import epath

from ldae_jax import modes
from ldae_jax.ladder import rows as rows_lib
from ldae_jax.runtime import atomic, preemption
from ldae_jax.tokenizers import registry
from ldae_jax.train import checkpoint

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
    budget: int = 1  # times the scale's training steps
    finetune: bool = False  # also fine-tune the run (finetune.json), after its probe

    @property
    def run_key(self) -> str:
        budget = "" if self.budget == 1 else f"x{self.budget}/"
        return f"{self.run_row}/{budget}seed{self.seed}"


def _run_row(row: str, config, config_for) -> str:
    """The highest ancestor of `row` whose pre-training is the same as the row's."""
    mine = checkpoint.config_fingerprint(config)
    while rows_lib.ROWS[row].parent and checkpoint.config_fingerprint(config_for(rows_lib.ROWS[row].parent)) == mine:
        row = rows_lib.ROWS[row].parent
    return row


def plan(rows: list[str], scale: str, seeds: list[int], vgg16: str = "", inception: str = "",
         check: bool = True, local: bool = True, devices: int | None = None, hosts: int = 1,
         budget: int = 1, finetune: bool = False) -> list[PlannedRun]:
    """Every (row, seed) at `budget` times the scale's steps (fine-tuned too with `finetune`), each config built
    and put through the one check before compute (for pre-training and the probe, and FID when `inception`
    names the Inception-v3 weights), so a mistake stops the ladder before any compute. `local=False`: the runs will happen elsewhere (`--launch=print`), on `devices` devices
    over `hosts` hosts, their data and files there. `check=False` skips the checks, for reading results that
    exist."""
    out = []
    for seed in seeds:
        def config_for(name):
            return rows_lib.get_config(f"row={name},scale={scale},seed={seed},budget={budget},vgg16={vgg16},"
                                       f"inception={inception}")

        for row in rows:
            config = config_for(row)
            if check:
                modes.check(config, "pretrain_probe", local=local, devices=devices, processes=hosts)
                if finetune:
                    modes.check(config, "finetune", local=local, devices=devices, processes=hosts)
                if inception:
                    modes.STAGES["fid"].check(config, local=local)
            run_row = _run_row(row, config, config_for)
            run_config = config_for(run_row)
            probe_file = "probe.json" if dict(config.probe) == dict(run_config.probe) else f"probe_{row}.json"
            out.append(PlannedRun(row, seed, config, run_row, run_config, probe_file, budget, finetune))
    return out


def run_dir(root: str, run_key: str) -> str:
    return f"{root}/{run_key}"


PRETRAIN_SHARE = 0.7  # of a small row's wall time at budget 1 (the probe's features and head take the rest)
FINETUNE_COST = 1.1  # the small scale's fine-tuning (3 epochs), in the same units


def cost(p: PlannedRun) -> float:
    """A run's expected wall time in small-row units at budget 1: pre-training grows with the budget, the probe
    does not; a row that only changes the probe costs its probe."""
    probe = 1 - PRETRAIN_SHARE
    own = probe if p.probe_file != "probe.json" else probe + PRETRAIN_SHARE * p.budget
    return own + (FINETUNE_COST if p.finetune else 0.0)


def todo_runs(planned: list[PlannedRun]) -> list[PlannedRun]:
    """One entry per distinct (run, probe file), in plan order."""
    todo, seen = [], {}
    for p in planned:
        key = (p.run_key, p.probe_file)
        if key not in seen:
            seen[key] = len(todo)
            todo.append(p)
        elif p.finetune and not todo[seen[key]].finetune:  # a later part also fine-tunes an earlier run
            todo[seen[key]] = p
    return todo


def is_done(p: PlannedRun, root: str) -> bool:
    workdir = run_dir(root, p.run_key)
    wants_fid = bool(p.run_config.fid.inception_weights) and read_fid(workdir) is None
    wants_finetune = p.finetune and modes.result("finetune", workdir) is None
    return read_probe(workdir, p.probe_file) is not None and not wants_fid and not wants_finetune


def run_local(planned: list[PlannedRun], root: str) -> bool:
    """Runs what is not done yet, one after another, with progress and ETA; returns False when a SIGTERM or
    SIGINT stopped it (each run saves what it can; rerunning the command resumes the ladder).

    A row that changes only the probe first makes sure its run's pre-training is done (under the run's own
    config, so the workdir's config.json stays the run's), then probes into its own file.
    """
    todo = todo_runs(planned)
    left = sum(cost(p) for p in todo if not is_done(p, root))
    start, ran = time.perf_counter(), 0.0  # ran: the cost of the runs done in this call
    with preemption.PreemptionWatch():  # a signal between two runs stops the ladder there, too
        for i, p in enumerate(todo):
            workdir = run_dir(root, p.run_key)
            label = f"{p.run_key}" + (f" ({p.probe_file})" if p.probe_file != "probe.json" else "")
            wants_fid = bool(p.run_config.fid.inception_weights) and read_fid(workdir) is None
            if is_done(p, root):
                print(f"[{i + 1}/{len(todo)}] {label}: done earlier", flush=True)
                continue
            eta = f", ETA {(time.perf_counter() - start) / ran * left / 60:.0f} min" if ran else ""
            print(f"[{i + 1}/{len(todo)}] {label}{eta}", flush=True)
            began = time.perf_counter()
            _reuse_tokenizer(p.run_config, root, workdir)
            stopped = modes.run(p.run_config, workdir, "pretrain").get("preempted")
            _share_tokenizer(p.run_config, root, workdir)
            if not stopped and read_probe(workdir, p.probe_file) is None:
                stopped = modes.run(p.config, workdir, "probe",
                                    options=modes.Options(probe_file=p.probe_file)).get("preempted")
            if not stopped and wants_fid:
                stopped = modes.run(p.run_config, workdir, "fid").get("preempted")
            if not stopped and p.finetune and modes.result("finetune", workdir) is None:
                stopped = modes.run(p.run_config, workdir, "finetune").get("preempted")
            if stopped or preemption.received():
                print(preemption.line("rerun the same command to resume the ladder"), flush=True)
                return False
            _record_seconds(workdir, _wall_key(p), time.perf_counter() - began)
            ran, left = ran + cost(p), left - cost(p)
    return True


WALL_FILE = "ladder_seconds.json"  # {probe file[+finetune]: wall seconds of the ladder's run that made it}


def _wall_key(p: PlannedRun) -> str:
    return p.probe_file + ("+finetune" if p.finetune else "")


def _record_seconds(workdir: str, probe_file: str, seconds: float) -> None:
    path = epath.Path(workdir) / WALL_FILE
    held = json.loads(path.read_text()) if path.exists() else {}
    atomic.write(path, json.dumps({**held, probe_file: round(seconds, 1)}, indent=1))


def wall_seconds(p: PlannedRun, root: str) -> float | None:
    """The wall time the ladder spent on this (run, probe file) in one go, None if not recorded (resumed runs
    record only their last part)."""
    path = epath.Path(run_dir(root, p.run_key)) / WALL_FILE
    try:
        return json.loads(path.read_text()).get(_wall_key(p)) if path.exists() else None
    except ValueError:
        return None


def _tokenizer_cache(config, root: str):
    """ROOT/tokenizers/<hash of everything the tokenizer depends on>/<file>, or None for a kind with no file."""
    name = registry.get(config.tokenizer.kind).file
    if name is None:
        return None
    key = {"seed": config.seed, **{s: config[s].to_dict() for s in ("data", "tokenizer")}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return epath.Path(root) / "tokenizers" / digest / name


def _reuse_tokenizer(config, root: str, workdir: str) -> None:
    """Rows with the same data, geometry, tokenizer recipe and seed share one trained tokenizer (a conv VAE is
    hours at paper scale): copy it in before the run; loading still checks it against the config and its hash."""
    cached = _tokenizer_cache(config, root)
    target = None if cached is None else epath.Path(workdir) / cached.name
    if cached is not None and cached.exists() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        cached.copy(target)
        print(f"Reusing the tokenizer {cached}", flush=True)


def _share_tokenizer(config, root: str, workdir: str) -> None:
    cached = _tokenizer_cache(config, root)
    made = None if cached is None else epath.Path(workdir) / cached.name
    if made is not None and made.exists() and not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        made.copy(cached)


def print_commands(planned: list[PlannedRun], root: str, scale: str, vgg16: str = "", inception: str = "") -> None:
    """One command per distinct run, then one per extra probe of a run and its FID (start those after their
    run's command)."""
    seen = set()
    for p in planned:
        vgg = (f",vgg16={vgg16}" if vgg16 else "") + (f",budget={p.budget}" if p.budget != 1 else "")
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


def read_probe(workdir: str, probe_file: str) -> float | None:
    """The l-DAE top-1 of a run's probe result (through the probe stage's declaration), None if not there."""
    out = modes.result("probe", workdir, modes.Options(probe_file=probe_file))
    return None if out is None else out["results"]["l-DAE"]["test_top1"]


def read_fid(workdir: str) -> float | None:
    out = modes.result("fid", workdir)
    return None if out is None else out["fid"]


def gather_fid(planned: list[PlannedRun], root: str) -> dict:
    """{row: [FID of each seed that has one]} (a row's FID is its run's: generation does not depend on the probe)."""
    results = {}
    for p in planned:
        value = read_fid(run_dir(root, p.run_key))
        results.setdefault(p.row, []).extend([] if value is None else [value])
    return results


def read_result(workdir: str, probe_file: str) -> dict | None:
    """{'linear', 'knn', 'baselines': {name: {'linear', 'knn'}}, 'finetune'} of a run's probe (and fine-tuning)
    result, None if there is no probe result (kNN None for a result written before the probe reported it,
    'finetune' None for a run not fine-tuned)."""
    out = modes.result("probe", workdir, modes.Options(probe_file=probe_file))
    if out is None:
        return None
    both = {name: {"linear": r["test_top1"], "knn": r.get("knn_top1")} for name, r in out["results"].items()}
    tuned = modes.result("finetune", workdir)
    return {**both.pop("l-DAE"), "baselines": both, "finetune": None if tuned is None else tuned["top1"]["final"]}


def gather(planned: list[PlannedRun], root: str) -> dict:
    """{row: {seed: read_result(...)}} of the runs that finished (a row with none: {})."""
    results = {}
    for p in planned:
        result = read_result(run_dir(root, p.run_key), p.probe_file)
        results.setdefault(p.row, {})
        if result is not None:
            results[p.row][p.seed] = result
    return results
