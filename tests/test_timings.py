"""Tests of ldae_jax/runtime/timings.py: the table of where a run's time went."""
import json
import time

from ldae_jax.runtime import timings


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
