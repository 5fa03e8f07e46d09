"""The set-up around the library: scripts, CI, publishing workflow."""

import ast
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


def _library_modules():
    """{dotted name: parsed source} for every module of src/backprop."""
    package = ROOT / "src" / "backprop"
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"))
    return modules


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def _private_names_defined(tree):
    """The private names a module defines: its own, and its classes' members."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)  # self._x = ...
    return {name for name in names if _private(name)}


def _crossings(modules):
    """Each private name one module of ``modules`` takes from another: an import
    of ``_name`` from a backprop module other than backprop._checks, or ``x._name``
    (``x`` not ``self`` or ``cls``) for a ``_name`` that only other modules define."""
    defined = {name: _private_names_defined(tree) for name, tree in modules.items()}
    crossings = []
    for module, tree in modules.items():
        elsewhere = set().union(*(d for m, d in defined.items() if m != module))
        foreign = elsewhere - defined[module]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                source = node.module
                if source.split(".")[0] != "backprop" or source == "backprop._checks":
                    continue
                crossings += [
                    f"{module}:{node.lineno} imports {alias.name} from {source}"
                    for alias in node.names
                    if _private(alias.name)
                ]
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in foreign
                and not (isinstance(node.value, ast.Name) and node.value.id in OWN)
            ):
                crossings.append(
                    f"{module}:{node.lineno} reads {ast.unparse(node)}, private to "
                    "another module"
                )
    return crossings


OWN = {"self", "cls"}


def test_no_private_name_crosses_a_module_boundary():
    # What two modules share is public, or is a check in backprop._checks: a
    # private name is free to change with the one module that defines it.
    crossings = _crossings(_library_modules())
    assert not crossings, "\n".join(crossings)


def test_the_boundary_check_sees_private_imports_and_method_calls():
    # The check above on made-up modules, so that it is seen to fail.
    sources = {
        "backprop.attention": (
            "def _scores(): pass\nclass A:\n    def _mask(self): pass"
        ),
        "backprop._checks": "def require_x(): pass\ndef _helper(): pass",
        "backprop.bench": (
            "from backprop.attention import _scores, A\n"
            "from backprop._checks import _helper, require_x\n"
            "import torch\n"
            "class B:\n"
            "    def _own(self): self._mask = None\n"
            "A()._mask()\n"
            "torch._C\n"
            "self._mask\n"
        ),
    }
    modules = {name: ast.parse(source) for name, source in sources.items()}
    assert _crossings(modules) == [
        "backprop.bench:1 imports _scores from backprop.attention",
    ]
    modules["backprop.bench"] = ast.parse("A()._mask()\n")
    assert _crossings(modules) == [
        "backprop.bench:1 reads A()._mask, private to another module"
    ]
