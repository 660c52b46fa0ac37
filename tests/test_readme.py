"""Every shell command in the README runs, as a dry run where it would train or download, so the README cannot
rot: a command whose form this file does not know fails the test until it is taught how to check it."""
from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from ldae_jax.runtime import host_malloc

pytestmark = pytest.mark.docs  # about a minute of subprocesses: the CI docs stage, outside the default suite
ROOT = pathlib.Path(__file__).resolve().parents[1]
CI = (ROOT / ".ci" / "run").read_text()


def readme_commands() -> list[str]:
    """The commands of the README's ```bash blocks: continuation lines joined, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def dry_run(command: str, tmp: str) -> list[str] | None:
    """The argv that checks `command` without training or downloading; None when CI runs it as it is."""
    argv = shlex.split(command.replace("DATA_DIR", f"{tmp}/data").replace("CACHE", f"{tmp}/cache"))
    if argv[:2] in (["bash", "launch/test.sh"], ["bash", "launch/test_torch.sh"]):
        assert " ".join(argv[:2]) in CI, f"{command!r}: CI does not run it"
        return ["bash", "-n", argv[1]] if len(argv) > 2 else None  # variants of a script CI runs: syntax only
    if argv[:2] == ["bash", "launch/setup.sh"]:  # every CI stage starts with it (launch/test.sh runs it)
        assert "bash launch/setup.sh" in (ROOT / "launch" / "test.sh").read_text()
        return None
    if argv[:2] == ["bash", "launch/check_extras.sh"]:  # asks the package index: CI checks its syntax only
        return ["bash", "-n", argv[1]]
    if argv[0].endswith("pip") and argv[1:3] == ["install", "-e"]:  # an accelerator extra: the one setup.py pins
        extra = re.fullmatch(r"\.\[(\w+)\]", argv[3])
        assert extra and f'"{extra.group(1)}": ["jax[' in (ROOT / "setup.py").read_text(), command
        return None
    if argv[0] == "export":  # an environment setting: the one ldae_jax/runtime/host_malloc.py documents
        name, _, value = argv[1].partition("=")
        assert name == "GLIBC_TUNABLES" and host_malloc.active({name: value}), f"{command!r}: unknown setting"
        return None
    if argv[:2] == ["bash", "launch/quickstart.sh"]:
        return argv + ["--dry_run"]  # runs the script; ldae_jax.main stops after checking its config
    if argv[0] in ("python", ".venv/bin/python"):
        argv = [sys.executable] + argv[1:]
    if argv[1:3] == ["-m", "ldae_jax.main"] and any(a.startswith("--workdir=gs://") for a in argv):
        return argv + ["--dry_run", "--remote"]  # a pod's job: its data and workdir are in the bucket
    if argv[1:3] in (["-m", "ldae_jax.main"], ["-m", "ldae_jax.data.prepared"], ["-m", "ldae_jax.viz"]):
        return argv + ["--dry_run"]
    if argv[1:3] == ["-m", "ldae_jax.ladder.evidence"]:  # the plan and its expected time, every config checked
        return argv if "--dry_run" in argv else argv + ["--dry_run"]
    if argv[1:3] == ["-m", "ldae_jax.ladder"]:
        return argv if any(a.startswith("--launch=") for a in argv) else argv + ["--launch=print"]
    if argv[1] == "launch/launch.py":
        return argv if "--dry-run" in argv else argv + ["--dry-run"]
    raise AssertionError(f"tests/test_readme.py does not know how to check the README command {command!r}")


@pytest.mark.parametrize("command", readme_commands(), ids=lambda c: c[:60])
def test_readme_command_runs(command, tmp_path):
    argv = dry_run(command, str(tmp_path))
    if argv is None:
        return  # CI runs it verbatim
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    if "--dry_run" in argv:  # the program itself says it only checked
        assert "dry run: " in done.stdout, done.stdout[-500:]


def test_a_mistaken_command_fails_its_check(tmp_path):
    """The check can fail: a config field that does not exist is refused by the dry run."""
    argv = dry_run(".venv/bin/python -m ldae_jax.main --config=configs/quickstart.py --workdir=w "
                   "--config.train.no_such_field=1", str(tmp_path))
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "no_such_field" in done.stderr
    with pytest.raises(AssertionError, match="does not know how to check"):
        dry_run("rm -rf workdirs", str(tmp_path))
