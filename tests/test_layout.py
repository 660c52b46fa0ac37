"""The layout the code keeps: no import cycles between the package's parts, the library never imports the
experiment configs, every import inside a function says why it is there, and the wheel carries everything."""

import ast
import os
import pathlib
import re
import subprocess
import sys
import venv

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ldae_jax"


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: pathlib.Path, modules: dict) -> list[tuple[str, int, bool, str]]:
    """(imported module, line, inside a function, the line's text) for each import of the project or configs."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module:
                names = [f"{child.module}.{a.name}" if f"{child.module}.{a.name}" in modules else child.module
                         for a in child.names]
            else:
                names = []
            for name in names:
                if name.split(".")[0] in ("ldae_jax", "configs"):
                    found.append((name, child.lineno, in_function, lines[child.lineno - 1]))
            visit(child, inner)

    visit(tree, False)
    return found


def _part(module: str) -> str:
    """The package part a module belongs to: ldae_jax.train.state -> ldae_jax.train; top-level modules alone."""
    return ".".join(module.split(".")[:2])


def _cycles(edges: dict[str, set]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from its first node)."""
    cycles, state = [], {}

    def dfs(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                dfs(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            dfs(node, [])
    return cycles


def test_no_import_cycles_between_parts_of_the_package():
    """Counting every import, the ones inside functions too: a cycle hidden in a function is still a cycle."""
    modules = _modules()
    parts, files = {}, {}
    for name, path in modules.items():
        for target, *_ in _imports(path, modules):
            if target.startswith("ldae_jax") and _part(target) != _part(name):
                parts.setdefault(_part(name), set()).add(_part(target))
            if target in modules and target != name:
                files.setdefault(name, set()).add(target)
    assert _cycles(parts) == []
    assert _cycles(files) == []


def test_the_library_never_imports_the_experiment_configs():
    modules = _modules()
    offenders = [f"{path.relative_to(REPO)}:{line}" for path in modules.values()
                 for target, line, *_ in _imports(path, modules) if target.split(".")[0] == "configs"]
    assert offenders == []


def test_every_import_inside_a_function_gives_its_reason():
    """Only where the comment on the line gives a reason other than an import cycle (`# here: ...`)."""
    modules = _modules()
    inside = [(path.relative_to(REPO), line, text) for path in modules.values()
              for _, line, in_function, text in _imports(path, modules) if in_function]
    bad = [f"{p}:{line}: {text.strip()}" for p, line, text in inside
           if "# here:" not in text or "cycle" in text or "imports this module" in text]
    assert bad == []
    assert len(inside) <= 10, inside  # the few there are; each listed in the README's layout section


def test_the_paper_notes_are_in_the_repository_and_nothing_points_outside():
    assert (REPO / "docs" / "paper_notes.md").is_file()
    offenders = []
    outside = re.compile(r"\.\./shared|\b(PAPER|DESIGN|STYLE|STACK)\.md")  # the design card's files
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "configs").rglob("*.py"), *(REPO / "bench").rglob("*"),
                 *(REPO / "launch").rglob("*"), *(REPO / "docs").rglob("*.md"), *(REPO / "tests").rglob("*"),
                 REPO / "README.md", REPO / "setup.py"]:
        if path.is_file() and path.suffix in (".py", ".md", ".sh", ".ipynb", ".txt") and path != pathlib.Path(__file__):
            if outside.search(path.read_text(errors="replace")):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A wheel of the checkout installed (not editable) into a fresh venv; its dependencies come from the test
    environment's site-packages (a path entry, so nothing of the checkout is on the path)."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(root / "dist"), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next((root / "dist").glob("ldae_jax-*.whl"))
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    site = subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   text=True).strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    pathlib.Path(site, "test_dependencies.pth").write_text("\n".join(deps) + "\n")
    return python, root / "elsewhere"


@pytest.mark.docs  # about a minute: it runs in CI's docs stage, beside the README's install and run commands
def test_a_wheel_install_runs_the_quickstart_and_a_ladder_row_from_outside_the_checkout(wheel_env):
    python, elsewhere = wheel_env
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.check_output([str(python), "-c", "import configs.ladder.rows, ldae_jax.ladder.rows, "
                                     "ldae_jax; print(ldae_jax.__file__)"], cwd=elsewhere, env=env, text=True)
    assert str(REPO) not in where and "site-packages" in where
    for config, mode, extra in (
            ("configs/quickstart.py:tiny", "pretrain_probe", ["--config.train.total_steps=2",
                                                               "--config.probe.baselines="]),
            ("configs/ladder/rows.py:row=t3.step5,scale=tiny", "pretrain", [])):
        proc = subprocess.run([str(python), "-m", "ldae_jax.main", f"--config={config}",
                               f"--workdir={elsewhere / config.split(':')[0].replace('/', '_')}",
                               f"--mode={mode}", "--config.mesh.data=1", *extra],
                              cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert f"Done ({mode})" in proc.stdout
