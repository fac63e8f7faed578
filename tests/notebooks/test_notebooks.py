"""Every notebooks/*.ipynb runs top to bottom in small mode (LAB_SMALL=1) and is committed without outputs."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 600  # per cell; small mode takes about a minute in all


@pytest.fixture(params=NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def notebook(request):
    return request.param


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/*.ipynb found"


def test_committed_without_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    with_outputs = [i for i, cell in enumerate(nb.cells)
                    if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not with_outputs, f"{notebook.name}: clear the outputs of cells {with_outputs}"


def test_has_a_small_mode(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert any("LAB_SMALL" in cell.source for cell in nb.cells if cell.cell_type == "code"), \
        f"{notebook.name} never reads LAB_SMALL: the tests would run its full mode"


def test_runs_in_small_mode(notebook, monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_SMALL", "1")  # the kernel inherits the environment
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs if out.output_type == "error"]
    assert not errors
