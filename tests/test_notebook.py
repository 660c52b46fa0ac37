"""The Colab notebook runs end to end in its smallest setting, offline on the embedded data, and gives a report
and figures (its code cells run in order in one namespace, as a kernel would; no Jupyter needed)."""
from __future__ import annotations

import json
import os
import pathlib

import pytest

from tests.test_data import needs_debian_files

pytestmark = pytest.mark.docs  # a few minutes: the CI docs stage, outside the default suite
NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "launch" / "colab" / "ldae_small_ablation.ipynb"


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
