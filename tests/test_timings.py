"""Tests of ldae_jax/runtime/timings.py: the table of where a run's time went, the console's `n/N done, ETA`
lines of a stage (Countdown), and the training progress line's ETA (train/metrics.py Progress)."""
import json
import re
import time

import pytest

from ldae_jax.runtime import timings
from ldae_jax.train import metrics

from test_data import fm_builder, needs_debian_files  # noqa: F401 (a fixture)


def test_phases_nest_add_up_and_show_the_rest_of_a_parent():
    with timings.record() as clock:
        with timings.phase("train"):
            with timings.phase("compile"):
                time.sleep(0.05)
            timings.add("waiting for data", 0.01)
            timings.add("waiting for data", 0.01)  # measured piecemeal: adds up
            time.sleep(0.1)
        with timings.phase("probe"):
            time.sleep(0.02)
        with timings.phase("train"):  # a phase entered again adds to the first
            time.sleep(0.01)
    rows = clock.rows()
    names = [(depth, name) for depth, name, _ in rows]
    assert names == [(0, "train"), (1, "compile"), (1, "waiting for data"), (1, "(rest)"), (0, "probe")]
    seconds = {name: s for _, name, s in rows}
    assert abs(seconds["waiting for data"] - 0.02) < 1e-9
    assert seconds["train"] >= 0.16 and 0.05 <= seconds["compile"] < seconds["train"]
    assert abs(seconds["(rest)"] - (seconds["train"] - seconds["compile"] - 0.02)) < 1e-9
    table = clock.table({"start-up": 1.5})
    assert table.splitlines()[2].split() == ["start-up", "1.5"]
    assert "    compile" in table and "(not in a phase)" in table and "this command" in table
    saved = json.loads(json.dumps(clock.as_json()))
    assert [p["phase"] for p in saved["phases"]] == ["train", "train / compile", "train / waiting for data", "probe"]


def test_outside_a_record_phases_record_nothing_and_the_process_age_is_known():
    with timings.phase("alone"):
        timings.add("piece", 1.0)
    with timings.record() as clock:
        pass
    assert clock.rows() == []
    age = timings.process_age()
    assert age is None or 0 < age < 24 * 3600
    timings.startup_seconds()  # the first command of a process is told its start-up, the later ones not
    assert timings.startup_seconds() is None


def test_timings_json_is_replaced_whole(tmp_path):
    with timings.record() as clock:
        with timings.phase("a"):
            pass
    path = tmp_path / "timings.json"
    path.write_text("old")
    timings.write(clock, path)
    assert json.loads(path.read_text())["phases"][0]["phase"] == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["timings.json"]


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_countdown_says_n_of_m_with_an_eta_that_leaves_out_the_first_unit():
    clock, lines = FakeClock(), []
    countdown = timings.Countdown("  train features", 10_000, "images", clock=clock, out=lines.append)
    clock.t = 5.0  # the first batch: compilation and the input pipeline's start
    countdown.update(25)
    for done in range(50, 10_001, 25):  # then 100 images/s
        clock.t += 0.25
        countdown.update(done)
    seconds = countdown.finish("10000 x 128")
    assert seconds == pytest.approx(104.75)
    # The first line 3 s after the first batch, its ETA at 100 images/s (with the first batch: 325 / 8 s, 4 min)
    assert lines[0] == "  train features: 325/10000 images (3%), ETA 1m36s"
    assert lines[-1] == "  train features: 10000 x 128 in 1m44s"
    progress = lines[1:-1]
    assert 8 <= len(progress) <= 10  # one per 10 s (each another 10% of the work), none at 100%
    counts = [int(re.search(r": (\d+)/", line).group(1)) for line in lines[:-1]]
    assert all(b - a >= 1000 for a, b in zip(counts, counts[1:]))
    for line, done in zip(lines[:-1], counts):  # every ETA is the rest at the true rate
        eta = (10_000 - done) / 100
        assert line.endswith(f"ETA {timings.format_duration(eta)}"), (line, eta)


def test_a_countdown_is_quiet_for_a_short_stage_and_rate_limited_for_a_long_one():
    clock, lines = FakeClock(), []
    short = timings.Countdown("kNN", 100, "test images", clock=clock, out=lines.append)
    for done in range(10, 101, 10):
        clock.t += 0.2
        short.update(done)
    short.finish()
    assert lines == ["kNN: 100 test images in 2.0s"]  # under 3 s: the done line only
    # 1% of the work per 10 s: a line a minute, not one per 10 s
    clock, lines = FakeClock(), []
    slow = timings.Countdown("PCA", 100_000, "patches", clock=clock, out=lines.append, announce=True)
    for done in range(100, 20_001, 100):
        clock.t += 1.0
        slow.update(done)
    assert lines[0] == "PCA: 100000 patches ..."
    times = [float(done) / 100 for done in (int(re.search(r": (\d+)/", l).group(1)) for l in lines[1:])]
    assert times[0] == 4.0 and all(b - a == 60 for a, b in zip(times, times[1:])) and len(lines) == 5
    timings.Countdown("x", 10, clock=clock, quiet=True, out=lines.append).finish()
    assert len(lines) == 5  # quiet: no lines at all


def test_a_countdown_prints_on_process_0_only(capsys, monkeypatch):
    timings.Countdown("stage", 3, "steps").finish()
    assert capsys.readouterr().out == "stage: 3 steps in 0.0s\n"
    monkeypatch.setattr(timings, "_is_main_process", lambda: False)
    timings.Countdown("stage", 3, "steps", announce=True).finish()
    assert capsys.readouterr().out == ""


def test_the_training_eta_leaves_out_the_first_step_and_evaluations():
    clock = FakeClock()
    progress = metrics.Progress(1000, 256, 0, clock=clock)
    clock.t = 30.0  # the first step: the input pipeline's start, the buffers (compiled before the clock started)
    progress.started(1)
    clock.t += 99 * 0.1  # then 10 steps/s
    speed = progress.report(100)
    assert speed["steps_per_s"] == pytest.approx(10) and speed["eta_s"] == pytest.approx(90)
    assert speed["images_per_s"] == pytest.approx(2560)
    clock.t += 100 * 0.1 + 7.0  # 100 steps and a 7 s kNN evaluation
    progress.exclude(7.0)
    assert progress.report(200)["eta_s"] == pytest.approx(80)
    # A line at the first step itself can only have the first step's rate.
    clock = FakeClock()
    first = metrics.Progress(10, 8, 0, clock=clock)
    clock.t = 2.0
    first.started(1)
    assert first.report(1)["steps_per_s"] == pytest.approx(0.5)


@needs_debian_files
def test_the_first_progress_line_of_training_leaves_out_the_start_up(tmp_path, monkeypatch, capsys,
                                                                      fm_builder):  # noqa: F811
    """A slow compile and a slow first batch (the input pipeline's start) stay out of the first line's ETA."""
    from configs import quickstart
    from ldae_jax import experiment
    from ldae_jax.data import pipeline
    from ldae_jax.train import pretrain

    import helpers

    config = helpers.set_fields(quickstart.get_config("tiny"), mesh__data=1, knn__every_steps=0, train__total_steps=6,
                                train__log_every=3, train__checkpoint_every=6)
    exp = experiment.Experiment(config, str(tmp_path))
    assert exp.tokenizer is not None  # fitted before the data is slowed down
    real_iterator, real_compile = pipeline.train_iterator, pretrain._compile

    def slow_first_batch(*args, **kwargs):
        batches = real_iterator(*args, **kwargs)
        time.sleep(3.0)
        yield next(batches)
        yield from batches

    def slow_compile(*args, **kwargs):
        time.sleep(1.0)
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_iterator", slow_first_batch)
    monkeypatch.setattr(pretrain, "_compile", slow_compile)
    pretrain.train(exp)
    first = metrics.read(tmp_path / "metrics.jsonl")[0]
    # With the 3 s in it the rate would be under 3 steps / 3 s and the ETA of the 3 steps left over 3 s.
    assert first["step"] == 3 and first["eta_s"] < 1.5, first
    out = capsys.readouterr().out
    assert "Compiling the train step ..." in out and re.search(r"step 3/6 \(50%\) .* ETA 0m0[01]s", out), out
