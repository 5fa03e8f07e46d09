"""The set-up around the library: scripts, CI, publishing workflow."""

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from site_sources import ROOT


def test_render_check_names_the_command_when_python_is_not_set_up():
    # -I -S: no site-packages, so neither the library nor the kernel is importable.
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(ROOT / "scripts" / "check_render_env.py")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "./scripts/render.sh" in result.stderr
    assert "backprop" in result.stderr
    assert "Traceback" not in result.stderr


def test_render_check_passes_in_this_environment():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_render_env.py")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./scripts/test.sh" in readme and "./scripts/test.sh" in ci
    assert "./scripts/render.sh" in readme


def test_publish_workflow_renders_with_python_and_publishes_to_pages():
    workflow = yaml.safe_load(
        (ROOT / ".github" / "workflows" / "publish.yml").read_text(encoding="utf-8")
    )
    steps = workflow["jobs"]["build-deploy"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("quarto-dev/quarto-actions/setup@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    publish = next(
        step
        for step in steps
        if step.get("uses", "").startswith("quarto-dev/quarto-actions/publish@")
    )
    assert publish["with"]["target"] == "gh-pages"
    # The site is rendered by the step before, as ./scripts/render.sh renders it, and
    # published as it is.
    assert publish["with"]["render"] is False
    render = steps[steps.index(publish) - 1]
    assert "scripts/render_site.py --full" in render["run"]
    assert "QUARTO_PYTHON" in render["run"]
    installs = " ".join(step.get("run", "") for step in steps)
    assert "pip install -e" in installs, (
        "the workflow installs the library the posts import"
    )
    assert workflow["permissions"]["contents"] == "write"


def python_blocks(path):
    text = path.read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


@pytest.mark.parametrize("doc", ["README.md", "about.qmd"])
def test_documented_python_examples_run(doc):
    blocks = python_blocks(ROOT / doc)
    assert blocks, f"{doc} shows no Python example"
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (
            f"an example in {doc} fails:\n{block}\n{result.stderr}"
        )
        assert result.stderr == "", (
            f"an example in {doc} writes to stderr:\n{result.stderr}"
        )


def test_publish_workflow_pins_quarto_and_python_and_names_every_step():
    text = (ROOT / ".github" / "workflows" / "publish.yml").read_text(encoding="utf-8")
    steps = yaml.safe_load(text)["jobs"]["build-deploy"]["steps"]
    unnamed = [
        step.get("uses") or step.get("run") for step in steps if not step.get("name")
    ]
    assert not unnamed, f"workflow steps without a name: {unnamed}"
    setup = next(
        s
        for s in steps
        if s.get("uses", "").startswith("quarto-dev/quarto-actions/setup@")
    )
    assert re.fullmatch(r"1\.10\.\d+", str(setup.get("with", {}).get("version"))), (
        "the workflow pins a Quarto 1.10.x release"
    )
    python = next(
        s for s in steps if s.get("uses", "").startswith("actions/setup-python@")
    )
    assert re.fullmatch(r"3\.\d+(\.\d+)?", str(python["with"]["python-version"]))


def test_quarto_from_pypi_is_bounded_to_the_tested_releases():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    site = pyproject["project"]["optional-dependencies"]["site"]
    assert "quarto-cli>=1.7,<1.11" in site
    name = pyproject["project"]["name"]
    assert name == "backprop-from-scratch", "the distribution's name is free on PyPI"
    assert f"{name}[notebook]" in site, "the site extra refers to the distribution"


def test_test_command_runs_lint_format_and_type_checks_before_pytest():
    script = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    steps = ("ruff check", "ruff format --check", "mypy", "pytest")
    order = [script.index(f"python -m {step}") for step in steps]
    assert order == sorted(order)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    test_extra = " ".join(pyproject["project"]["optional-dependencies"]["test"])
    for tool in ("ruff", "mypy", "quartodoc"):
        assert tool in test_extra, f"the test extra installs {tool}"


def test_reference_build_names_the_command_when_quartodoc_is_missing():
    # -I -S: no site-packages, so quartodoc is not importable.
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(ROOT / "scripts" / "build_reference.py")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "quartodoc" in result.stderr and "./scripts/render.sh" in result.stderr
    assert "Traceback" not in result.stderr
