"""The course's notebooks: each question copy `notebooks/NN_*.ipynb` is its answered copy `notebooks/answers/NN_*.ipynb`
without the answer cells; both are committed without outputs; every answered copy runs top to bottom in small mode
(LAB_SMALL=1), which runs the question copy's every cell too."""

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parents[2] / "notebooks"
sys.path.insert(0, str(HERE))
from make_questions import ANSWER_TAG, without_answers  # noqa: E402

QUESTIONS = sorted(HERE.glob("*.ipynb"))
ANSWERED = sorted((HERE / "answers").glob("*.ipynb"))
TIMEOUT_S = 600  # per cell


def ids(paths):
    return [path.stem for path in paths]


def test_there_are_notebooks_and_each_has_its_answered_copy():
    assert QUESTIONS, "no notebooks/*.ipynb found"
    assert [p.name for p in QUESTIONS] == [p.name for p in ANSWERED], "every notebook needs its copy in notebooks/answers/"


def cell_contents(notebook) -> list[tuple]:
    return [(cell.cell_type, cell.source, cell.metadata.get("tags", [])) for cell in notebook.cells]


@pytest.mark.parametrize("answered", ANSWERED, ids=ids(ANSWERED))
def test_the_question_copy_is_the_answered_copy_without_its_answers(answered):
    full = nbformat.read(answered, as_version=4)
    questions = nbformat.read(HERE / answered.name, as_version=4)
    assert any(ANSWER_TAG in cell.metadata.get("tags", []) for cell in full.cells), f"{answered.name} has no answers"
    assert any(cell.source.lstrip().startswith("**Exercise") for cell in questions.cells), f"{answered.name}: no exercises"
    assert cell_contents(questions) == cell_contents(without_answers(full)), \
        f"notebooks/{answered.name} differs from its answered copy minus the answers: run python notebooks/make_questions.py"


@pytest.mark.parametrize("notebook", QUESTIONS + ANSWERED, ids=ids(QUESTIONS) + [f"answers/{i}" for i in ids(ANSWERED)])
def test_committed_without_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    with_outputs = [i for i, cell in enumerate(nb.cells)
                    if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not with_outputs, f"{notebook.name}: clear the outputs of cells {with_outputs}"


@pytest.mark.parametrize("answered", ANSWERED, ids=ids(ANSWERED))
def test_has_a_small_mode(answered):
    nb = nbformat.read(answered, as_version=4)
    assert any("LAB_SMALL" in cell.source for cell in nb.cells if cell.cell_type == "code"), \
        f"{answered.name} never reads LAB_SMALL: the tests would run its full mode"


@pytest.mark.parametrize("answered", ANSWERED, ids=ids(ANSWERED))
def test_runs_in_small_mode(answered, monkeypatch):
    monkeypatch.setenv("LAB_SMALL", "1")  # the kernel inherits the environment
    nb = nbformat.read(answered, as_version=4)
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(HERE)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs if out.output_type == "error"]
    assert not errors
