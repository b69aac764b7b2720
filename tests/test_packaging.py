"""The project's own files install everything, and the two documented commands are the ones CI runs."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None


def _norm(name: str) -> str:
    return re.split(r"[<>=!~ \[;]", name.strip(), maxsplit=1)[0].lower().replace("_", "-")


# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}


def _pyproject():
    if tomllib is None:
        pytest.skip("tomllib needs Python >= 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_names_the_same_packages_as_pyproject():
    proj = _pyproject()["project"]
    py = {_norm(d) for d in proj["dependencies"]} | {_norm(d) for d in proj["optional-dependencies"]["test"]}
    conda = set()
    deps_section = (ROOT / "environment.yml").read_text().split("\ndependencies:", 1)[1]
    for line in deps_section.splitlines():
        m = re.match(r"^  - ([A-Za-z0-9_.\-]+)", line)
        if m and m.group(1) not in ("pip", "python"):
            conda.add(CONDA_TO_PYPI.get(_norm(m.group(1)), _norm(m.group(1))))
    assert conda == py, f"only in environment.yml: {sorted(conda - py)}; only in pyproject: {sorted(py - conda)}"


def test_torchvision_is_not_a_dependency():
    proj = _pyproject()["project"]
    deps = {_norm(d) for d in proj["dependencies"]}
    assert "torchvision" not in deps and "torch" in deps


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    ci_cmds = [l.strip() for l in ci.splitlines() if l.strip() and not l.strip().startswith(("#", "set ", "cd "))]
    assert ci_cmds == ["make test"], ci_cmds
    # the quick start shows exactly two commands: make lab (main job) and make test
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", quick, re.S).group(1)
    cmds = [l.split("#")[0].strip() for l in block.splitlines() if l.split("#")[0].strip()]
    assert cmds == ["make lab", "make test"], cmds


def test_makefile_keeps_to_the_cpu_wheel_without_a_gpu():
    """Without nvidia-smi, the venv recipe asks for torch==2.13.0 (the local CPU wheel), never a bare torch."""
    out = subprocess.run(["make", "-n", "-B", "venv", "HAS_GPU=", "VENV=/nonexistent-venv"], cwd=ROOT,
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    installs = [l for l in out.stdout.splitlines() if "pip install" in l and "torch" in l]
    assert installs and all('"torch==2.13.0"' in l for l in installs), out.stdout
    gpu = subprocess.run(["make", "-n", "-B", "venv", "HAS_GPU=1", "VENV=/nonexistent-venv"], cwd=ROOT,
                         capture_output=True, text=True)
    assert '"torch>=2.2"' in gpu.stdout, gpu.stdout


def test_package_imports_without_torchvision(monkeypatch):
    code = ("import sys; sys.modules['torchvision'] = None; import srlearn, srlearn.models, srlearn.train, "
            "srlearn.experiments, srlearn.cli; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
