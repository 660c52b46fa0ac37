"""The evidence command: its plan and expected time, and its report written from probe results laid out as the
runs leave them (synthetic numbers, so each verdict and trend sentence is known in advance); the slow test runs
one part for real at the tiny scale."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from ldae_jax.errors import UserError
from ldae_jax.ladder import evidence, evidence_report, record as record_lib, runs

from test_data import needs_debian_files


def write_probe(root, p, linear, knn, baselines=None, curve=()):
    """A run's probe file (and kNN lines in its metrics.jsonl) as the probe stage writes them."""
    workdir = root / p.run_key
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"l-DAE": {"test_top1": linear, "knn_top1": knn}}
    for name, (lin, kn) in (baselines or {}).items():
        results[name] = {"test_top1": lin, "knn_top1": kn}
    (workdir / p.probe_file).write_text(json.dumps({"step": 600 * p.budget, "results": results,
                                                     "protocol": p.config.probe.to_dict(),
                                                     "knn": p.config.knn.to_dict()}))
    (workdir / "config.json").write_text(p.run_config.to_json_best_effort())
    if curve:
        lines = [{"step": s, "loss": 0.1, "steps_per_s": 10.0, "interval_steps": 100} for s in range(100, 601, 100)]
        lines += [{"step": s, "knn_top1": v, "knn_seconds": 0.5} for s, v in curve]
        (workdir / "metrics.jsonl").write_text("\n".join(json.dumps(m) for m in lines) + "\n")


def test_plan_dry_run_and_unknown_parts(tmp_path, capsys):
    evidence.main(["--scale=tiny", f"--workdir={tmp_path}", "--dry_run"])
    out = capsys.readouterr().out
    assert re.search(r"trends@1x +0 done, +18 to run", out) and re.search(r"noise@16x +0 done, +4 to run", out)
    assert "expected time for what is left" in out and "prior of 100 s per small row" in out
    with pytest.raises(UserError, match="--parts: unknown nope; parts: trends@1x"):
        evidence.select_parts("trends@1x,nope")
    # budgets and seeds as the issue asks: 3 seeds at 1x and 4x, the noise pair at 16x with 2
    parts = {p.name: p for p in evidence.PARTS}
    assert parts["noise@16x"].budget == 16 and len(parts["noise@16x"].seeds) == 2
    assert all(len(p.seeds) >= 3 for p in evidence.PARTS if p.budget < 16)


def test_report_from_synthetic_results(tmp_path):
    parts = evidence.plan("tiny", check=False)
    rng = np.random.default_rng(0)
    # multi-level noise loses by 1 point at 1x and wins by 1 at 4x: "toward the paper's ordering"
    truth = {("t3.step5", 1): 79.0, ("t3.single", 1): 80.0, ("t3.step5", 4): 82.0, ("t3.single", 4): 81.0,
             ("t3.step0", 1): 80.0, ("t1.ddpm", 1): 80.0, ("t1.cls", 1): 80.0, ("f5.pixel.r128", 1): 77.0,
             ("t3.step0", 4): 81.0, ("t1.ddpm", 4): 81.0, ("t1.cls", 4): 81.0, ("f5.pixel.r128", 4): 78.0}
    seed_effect = {0: 0.3, 1: -0.4, 2: 0.1}  # shared by the rows of a seed: pairing removes it
    jitter = {key: rng.normal(0, 0.05, 3) for key in truth}  # each row's own noise, zero-mean over its seeds
    jitter = {key: v - v.mean() for key, v in jitter.items()}
    written = set()
    for name in ("trends@1x", "noise@4x", "trends@4x"):
        for p in parts[name]:
            mean = truth[(p.row, p.budget)]
            value = mean + seed_effect[p.seed] + jitter[(p.row, p.budget)][p.seed]
            baselines = {"pixels": (84.0 + seed_effect[p.seed], 85.0), "random_init": (70.0, 72.0)} \
                if p.row == "t3.step5" else None
            write_probe(tmp_path, p, value, value - 2, baselines, curve=[(200, 60.0), (400, 65.0), (600, 66.0)])
            written.add((p.row, p.seed, p.budget))
    # Table 4: MAE 2 points ahead of l-DAE (79.0) in the linear probe at equal steps, fine-tuned all at 85.0
    for p in parts["table4"]:
        workdir = tmp_path / p.run_key
        if p.row != "t4.ldae":
            value = {"t4.mae": 81.0, "t4.mae.time": 82.0}[p.row] + seed_effect[p.seed] + 0.01 * p.seed
            write_probe(tmp_path, p, value, value - 1, curve=[(200, 60.0), (400, 65.0), (600, 66.0)])
        (workdir / "finetune.json").write_text(json.dumps({"top1": {"final": 85.0 + 0.1 * p.seed}}))
    text = evidence_report.write(parts, str(tmp_path), str(tmp_path / "docs" / "ladder_tiny.md"), scale="tiny",
                                 command="python -m ldae_jax.ladder.evidence", trends=evidence.TRENDS,
                                 left="expected time for what is left: 3.7 h")
    claim = text.split("| multi-level noise beats a single level | 64.5 vs 61.5 | t3.step5 79.00 vs t3.single 80.00 | ")
    assert claim[1].split("\n")[0].count("| opposite") == 2  # linear and kNN
    section = text.split("### multi-level noise beats a single level")[1].split("###")[0]
    assert "| 1x |" in section and "| 4x |" in section
    assert "-1.00 [" in section and ": opposite" in section and "+1.00 [" in section and ": reproduces" in section
    assert "more training moves it toward the paper's ordering" in section
    tokenizer = text.split("### a low-dimensional latent beats pixels")[1].split("###")[0]
    assert "more training does not move it measurably" in tokenizer
    pixels = text.split("## l-DAE against raw pixels at every budget")[1].split("##")[0]
    assert "| 1x | 79.00 ± " in pixels and "| 4x | 82.00 ± " in pixels and "84.00 ±" in pixels
    assert "Its cost over 42 runs: 2.5% of the training steps' time (median" in text  # 3 x 0.5 s, 600 steps at 10/s
    missing = text.split("## Not run yet")[1]
    assert "- appendix: 42" in missing and "- claims@1x:" in missing and "- noise@16x: 4" in missing
    table4 = text.split("## Table 4 at small scale")[1].split("\n## ")[0]
    assert "| t4.mae (MAE, equal steps) | 68.0 / 83.6 | 81.01 ± " in table4
    equal_steps = table4.split("| MAE, equal steps | ")[1].split("\n")[0]
    assert equal_steps.startswith("+2.0") and equal_steps.count(": MAE ahead") == 2  # linear and kNN
    assert equal_steps.endswith("(n=3, paired): undecided |")  # fine-tuned: the same numbers
    assert "table4" not in missing  # every Table 4 run probed and fine-tuned
    records = json.loads((tmp_path / "docs" / "ladder_tiny_runs.json").read_text())["runs"]
    done = {(r["row"], r["seed"], r["budget"]) for r in records if r["done"]}
    shared = {(row, s, 1) for row in ("t2.pca.d32", "w.plain.d32", "t4.ldae") for s in range(3)}  # names of runs above
    written |= {(row, s, 1) for row in ("t4.mae", "t4.mae.time") for s in range(3)}
    assert done == written | shared and all(r["knn_curve"] for r in records if r["done"])
    for figure in ("trend_multi_level", "trend_latent_vs_pixels", "pixels", "knn_curves"):
        picture = np.asarray(Image.open(tmp_path / "docs" / "figures" / "ladder_tiny" / f"{figure}.png").convert("L"))
        assert picture.shape[1] > 600 and picture.std() > 10, figure
    assert json.loads((tmp_path / "docs" / "ladder_tiny.json").read_text())["rows"]  # what ldae_jax.viz reads


@pytest.mark.slow
@needs_debian_files
def test_one_part_runs_resumes_and_reports(tmp_path, capsys):
    args = ["--scale=tiny", f"--workdir={tmp_path / 'runs'}", f"--report={tmp_path / 'r.md'}", "--parts=noise@4x"]
    evidence.main(args)
    first = capsys.readouterr().out
    assert "[6/6] t3.single/x4/seed2" in first and "Report:" in first
    text = (tmp_path / "r.md").read_text()
    assert "| 4x |" in text.split("### multi-level noise")[1].split("###")[0]
    # Every run is done: a second call runs nothing and measures its expected time from this machine
    evidence.main(args)
    again = capsys.readouterr().out
    assert "done earlier" in again and "measured from 6 finished runs" in again
    planned = evidence.plan("tiny", [p for p in evidence.PARTS if p.name == "noise@4x"], check=False)["noise@4x"]
    assert all(runs.wall_seconds(p, str(tmp_path / "runs")) > 0 for p in planned)


def test_record_stands_in_for_a_lost_workdir(tmp_path, capsys):
    """The committed per-run numbers make a fresh checkout resume: the record's runs count as done, give the same
    report, and stop counting once their config changes."""
    parts = evidence.plan("tiny", check=False)
    for i, p in enumerate(parts["trends@1x"]):
        write_probe(tmp_path / "old", p, 70.0 + i, 69.0 + i, curve=[(200, 60.0), (600, 66.0)])
    report = tmp_path / "docs" / "ladder_tiny.md"
    args = dict(scale="tiny", command="evidence", trends=evidence.TRENDS, left="")
    first = evidence_report.write(parts, str(tmp_path / "old"), str(report), **args)
    record_path = tmp_path / "docs" / "ladder_tiny_runs.json"
    written = json.loads(record_path.read_text())["runs"]
    assert all(r["config"] for r in written if r["done"])
    record = record_lib.Record.load(str(record_path))
    assert len(record) == 18
    again = evidence_report.write(parts, str(tmp_path / "fresh"), str(tmp_path / "again" / "ladder_tiny.md"), record=record, **args)
    strip = lambda text: re.sub(r"written [0-9-]+ [0-9:]+ UTC", "", text)  # noqa: E731
    assert strip(again) == strip(first)
    evidence.main(["--scale=tiny", f"--workdir={tmp_path / 'fresh'}", f"--report={report}", "--dry_run"])
    out = capsys.readouterr().out
    assert re.search(r"trends@1x +18 done, +0 to run", out) and "18 runs recorded" in out
    evidence.main(["--scale=tiny", f"--workdir={tmp_path / 'fresh'}", f"--report={report}", "--record=", "--dry_run"])
    assert re.search(r"trends@1x +0 done, +18 to run", capsys.readouterr().out)
    # a workdir's run made under another config is not this plan's: not reported, and the record not stamped
    p = parts["trends@1x"][0]
    changed_config = json.loads((tmp_path / "old" / p.run_key / "config.json").read_text())
    changed_config["train"]["total_steps"] += 1
    (tmp_path / "old" / p.run_key / "config.json").write_text(json.dumps(changed_config))
    stale = [r for r in evidence_report.collect(parts, str(tmp_path / "old")) if r["run"] == p.run_key]
    assert stale and all(r.get("stale") and not r["done"] for r in stale)
    # a record entry made under another config (here: its hash) is not this plan's: it runs again
    stale = (written[0]["run"], written[0]["probe_file"])
    for r in written:
        if (r["run"], r["probe_file"]) == stale:
            r["config"] = "0" * 16
    record_path.write_text(json.dumps({"runs": written}))
    changed = record_lib.Record.load(str(record_path))
    p = next(p for p in parts["trends@1x"] if (p.run_key, p.probe_file) == stale)
    assert changed.entry(p) is None and not changed.finished(p)
    assert sum(r["done"] for r in evidence_report.collect(parts, str(tmp_path / "fresh"), changed)) == \
        sum(r["done"] for r in written) - sum((r["run"], r["probe_file"]) == stale for r in written)
    # a record fine-tuned under another recipe does not stand in for a planned fine-tuning
    table4 = next(p for p in parts["table4"] if p.row == "t4.mae")
    entry = {"run": table4.run_key, "probe_file": table4.probe_file, "done": True, "linear": 1.0,
             "config": record_lib.config_hash(table4), "finetune": 80.0, "finetune_config": "old"}
    assert not record_lib.Record([entry]).finished(table4)
    entry["finetune_config"] = record_lib.finetune_hash(table4)
    assert record_lib.Record([entry]).finished(table4)
    record_path.write_text("{not json")
    with pytest.raises(UserError, match="not a report's runs file"):
        record_lib.Record.load(str(record_path))
