"""The committed notebooks are clean sources: no outputs, a ``parameters`` cell first, and
only the public library (no ``_``-prefixed module) imported. Fast: nothing is executed."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: The notebooks of issue 21; one more needs its own execution test (test_notebooks_run.py).
EXPECTED = {"retrain_and_compare.ipynb", "explain_a_model.ipynb", "evaluate_on_your_book.ipynb"}
#: The product's packages: a notebook imports only their public modules.
PRODUCT = {"features", "models", "serving", "pipelines"}


def code_cells(path: Path) -> list[nbformat.NotebookNode]:
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code"]


def imported_modules(source: str) -> list[str]:
    """Every module a cell's code imports (IPython magics and shell lines skipped)."""
    code = "\n".join(line for line in source.splitlines()
                     if not line.lstrip().startswith(("%", "!")))
    out = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append("." * node.level + (node.module or ""))
            out += [f"{node.module}.{a.name}" for a in node.names if node.module]
    return out


def test_the_notebooks_are_the_expected_ones() -> None:
    assert {p.name for p in NOTEBOOKS} == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(code_cells(path)):
        assert cell.outputs == [], f"{path.name}: code cell {i} has outputs (strip them)"
        assert cell.execution_count is None, f"{path.name}: code cell {i} has a count"
        assert "execution" not in cell.metadata, f"{path.name}: code cell {i} has timings"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state is an output too"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_with_a_parameters_cell(path: Path) -> None:
    first = code_cells(path)[0]
    assert "parameters" in first.metadata.get("tags", []), path.name
    # Plain assignments only, so papermill or the tests can override each of them.
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.Assign), f"{path.name}: {ast.dump(node)[:80]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_imports_only_public_modules(path: Path) -> None:
    for cell in code_cells(path):
        for module in imported_modules(cell.source):
            parts = module.split(".")
            assert not module.startswith("."), f"{path.name}: relative import {module}"
            assert not any(p.startswith("_") for p in parts), f"{path.name}: imports {module}"
            assert parts[0] not in {"tests", "bench"}, f"{path.name}: imports {module}"


def test_private_imports_are_detected() -> None:
    """The check above sees a private module however it is imported."""
    cell = "import models._treeshap_kernels\nfrom serving import _reason_table\n%matplotlib inline"
    found = imported_modules(cell)
    assert "models._treeshap_kernels" in found and "serving._reason_table" in found
    assert any(p.startswith("_") for m in found for p in m.split("."))
    assert {m.split(".")[0] for m in found} <= PRODUCT
