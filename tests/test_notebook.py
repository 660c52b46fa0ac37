"""The Colab notebook runs end to end in its smallest setting, offline on the embedded data, and gives a report
and figures (its code cells run in order in one namespace, as a kernel would; no Jupyter needed). Its install cell's
Colab branch runs offline too: a fake google.colab, REPO_URL a file:// URL of this checkout (really cloned), the
apt and pip commands recorded, not run."""
from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import types

import pytest

from tests.test_data import needs_debian_files

pytestmark = pytest.mark.docs  # a few minutes: the CI docs stage, outside the default suite
NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "launch" / "colab" / "ldae_small_ablation.ipynb"
CHECKOUT = NOTEBOOK.parents[2]
PIP = f"{shlex.quote(sys.executable)} -m pip"  # the install cell's pip: the kernel's own Python
needs_git_checkout = pytest.mark.skipif(not (shutil.which("git") and (CHECKOUT / ".git").exists()),
                                        reason="needs git and a git checkout to clone from")


def code_cells() -> list[tuple[list[str], str]]:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return [(c["metadata"].get("tags", []), "".join(c["source"])) for c in cells if c["cell_type"] == "code"]


def test_the_notebook_has_one_parameters_cell_and_no_shell_magics():
    cells = code_cells()
    assert [tags for tags, _ in cells].count(["parameters"]) == 1 and "parameters" in cells[0][0]
    assert not any(line.lstrip().startswith(("!", "%")) for _, src in cells for line in src.splitlines())


@needs_debian_files
def test_the_notebook_runs_in_its_smallest_setting(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.chdir(NOTEBOOK.parents[2])  # where a user starts it: the checkout
    namespace: dict = {"__name__": "__main__"}
    for i, (tags, source) in enumerate(code_cells()):
        exec(compile(source, f"{NOTEBOOK.name}[cell {i}]", "exec"), namespace)
        if "parameters" in tags:  # what a user sets for a quick check
            namespace.update(SMALLEST=True, WORKDIR=str(tmp_path))
    out = namespace["out"]
    assert set(out["results"]) == {f"t2.pca.d{d}" for d in (8, 16, 32, 64, 128)}  # the default: latent_dim
    assert all(0 <= acc <= 100 for accs in out["results"].values() for acc in accs)
    assert "| t2.pca.d128 |" in pathlib.Path(out["report"]).read_text()
    for path in [out["figure"], *namespace["basis_figures"].values()]:
        image = plt.imread(path)
        assert image.ndim == 3 and image[..., :3].std() > 0.05, path  # drawn, not blank
    assert os.path.isfile(os.path.join(str(tmp_path), "fashion_mnist_basis", "figures", "filters.png"))


def cell_with(text: str) -> str:
    return next(source for _, source in code_cells() if text in source)


@pytest.fixture
def install_cell(monkeypatch, tmp_path):
    """The install cell run as a kernel outside Colab would (it installs nothing there), for its functions;
    sys.path and the current folder come back after the test."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(CHECKOUT)
    namespace = {"__name__": "__main__", "REPO_URL": "", "RUNTIME": "auto", "DATASET": "fashion_mnist"}
    exec(compile(cell_with("def prepare("), f"{NOTEBOOK.name}[install]", "exec"), namespace)
    assert namespace["REPO_DIR"] == CHECKOUT  # outside Colab: the checkout, nothing installed
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))  # from here on: Colab
    (tmp_path / "root").mkdir()  # a machine root with no /dev/accel*, /proc/driver/nvidia
    (tmp_path / "bin").mkdir()
    return namespace


def recording_sh(log: list[str]):
    """Runs git commands (the clone from file://), records every command; apt and pip never run."""
    def sh(command):
        log.append(command)
        if command.startswith("git "):
            subprocess.run(command, shell=True, check=True, capture_output=True)
    return sh


@needs_git_checkout
def test_in_colab_the_install_cell_clones_repo_url_and_installs_the_pinned_extras(install_cell, tmp_path,
                                                                                  monkeypatch):
    content = tmp_path / "content"  # Colab's /content: no checkout here or above
    content.mkdir()
    monkeypatch.chdir(content)
    log: list[str] = []
    repo_url = f"file://{CHECKOUT}"
    repo_dir, target = install_cell["prepare"](repo_url, "auto", "fashion_mnist", sh=recording_sh(log),
                                               data_dir=str(tmp_path / "no_data"),
                                               environ={"PATH": str(tmp_path / "bin")}, root=str(tmp_path / "root"))
    assert target == "cpu" and repo_dir == content / "ldae_jax_repo" == pathlib.Path.cwd()
    assert (repo_dir / "setup.py").is_file() and (repo_dir / "ldae_jax" / "__init__.py").is_file()  # cloned
    assert str(repo_dir) in sys.path
    pip, q = PIP, shlex.quote
    assert log == ["apt-get update -qq", "apt-get install -y -qq dataset-fashion-mnist",
                   f"git clone --depth 1 {q(repo_url)} {q(str(repo_dir))}",
                   f"{pip} uninstall -y -q tensorflow",  # Colab's full TF, before the pinned tensorflow-cpu
                   f"{pip} uninstall -y -q jax-cuda12-plugin jax-cuda12-pjrt",
                   f"{pip} install -q -e {q(str(repo_dir))}"]  # setup.py's pins; no -U anywhere

    # Run again (a restart): the clone is reused, no clone and, with the data there, no apt.
    monkeypatch.chdir(content)
    log.clear()
    data = tmp_path / "data"
    data.mkdir()
    (data / "train-images-idx3-ubyte.gz").touch()
    assert install_cell["prepare"](repo_url, "tpu", "fashion_mnist", sh=recording_sh(log), data_dir=str(data),
                                   root=str(tmp_path / "root"))[0] == repo_dir
    assert log[-1] == f"{pip} install -q -e {q(f'{repo_dir}[tpu]')}" and not any("git" in c or "apt" in c for c in log)


def test_in_colab_an_empty_repo_url_outside_a_checkout_stops_with_what_to_set(install_cell, tmp_path,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    log: list[str] = []
    with pytest.raises(install_cell["NotebookStop"]) as stop:
        install_cell["prepare"]("", "auto", "fashion_mnist", sh=recording_sh(log), root=str(tmp_path / "root"))
    assert "REPO_URL is empty. Set it in the parameters cell" in str(stop.value) and log == []
    shown = stop.value._render_traceback_()  # what IPython shows in place of a traceback
    assert len(shown) == 1 and "Traceback" not in shown[0] and "REPO_URL" in shown[0]
    with pytest.raises(install_cell["NotebookStop"], match="RUNTIME = 'cuda' is not one of"):
        install_cell["prepare"]("", "cuda", "fashion_mnist", sh=recording_sh(log))

    # In a checkout (the notebook opened from launch/colab/) REPO_URL is not needed: no clone, that checkout.
    monkeypatch.chdir(NOTEBOOK.parent)
    repo_dir, _ = install_cell["prepare"]("", "cpu", "cifar10", sh=recording_sh(log), root=str(tmp_path / "root"))
    assert repo_dir == CHECKOUT == pathlib.Path.cwd() and log[-1] == f"{PIP} install -q -e {shlex.quote(str(CHECKOUT))}"
    assert not any(c.startswith(("git", "apt")) for c in log)  # cifar10: no Debian data either


def test_auto_picks_cuda_when_nvidia_smi_lists_a_gpu(install_cell, tmp_path, monkeypatch):
    root, bin_dir = str(tmp_path / "root"), tmp_path / "bin"
    detect = install_cell["detect_accelerator"]
    assert detect({"PATH": str(bin_dir)}, root) == "cpu"
    assert detect({"PATH": str(bin_dir), "COLAB_TPU_ADDR": "10.0.0.2:8470"}, root) == "tpu"
    (tmp_path / "root" / "dev").mkdir()
    (tmp_path / "root" / "dev" / "accel0").touch()
    assert detect({"PATH": str(bin_dir)}, root) == "tpu"
    nvidia_smi = bin_dir / "nvidia-smi"
    nvidia_smi.write_text("#!/bin/sh\necho 'GPU 0: Tesla T4 (UUID: GPU-00000000-fake)'\n")
    nvidia_smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert detect(root=root) == "gpu"  # before /dev/accel*: NVIDIA's Blackwell drivers make those too

    monkeypatch.chdir(CHECKOUT)
    log: list[str] = []
    _, target = install_cell["prepare"]("", "auto", "cifar10", sh=recording_sh(log), root=root)
    assert target == "gpu" and log == [f"{PIP} uninstall -y -q tensorflow",
                                       f"{PIP} install -q -e {shlex.quote(f'{CHECKOUT}[cuda]')}"]


def test_a_module_imported_before_the_install_changed_it_asks_for_a_restart(install_cell, monkeypatch):
    monkeypatch.setitem(sys.modules, "fake_numpy", types.SimpleNamespace(__version__="0.0.1"))
    installed = importlib.metadata.version("numpy")
    assert install_cell["stale_modules"]({"fake_numpy": "numpy"}) == [f"fake_numpy 0.0.1 (installed now: {installed})"]
    assert install_cell["stale_modules"]() == []  # this process: what it imported is what is installed


def test_the_runtime_check_warns_when_jax_runs_elsewhere_than_asked(install_cell, capsys):
    check = compile(cell_with("jax.default_backend()"), f"{NOTEBOOK.name}[check]", "exec")
    exec(check, dict(install_cell, RUNTIME="gpu", ACCELERATOR="gpu"))  # the tests' JAX: CPU only
    assert "WARNING: RUNTIME='gpu' expects the gpu but JAX runs on the cpu" in capsys.readouterr().out
    exec(check, dict(install_cell, RUNTIME="auto", ACCELERATOR="cpu"))
    assert "WARNING" not in capsys.readouterr().out
