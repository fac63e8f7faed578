"""Write each question copy `notebooks/NN_*.ipynb` from its answered copy `notebooks/answers/NN_*.ipynb`.

The answered copy is the one to edit: its exercises' answers are cells tagged `answer` (cell metadata
`"tags": ["answer"]`). The question copy is the same notebook without those cells and without outputs;
`tests/notebooks/test_notebooks.py` checks that the two agree. Run `python notebooks/make_questions.py`
after editing an answered copy.
"""

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ANSWER_TAG = "answer"


def without_answers(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `notebook` without its answer cells and without outputs."""
    copy = nbformat.from_dict(notebook)
    copy.cells = [cell for cell in copy.cells if ANSWER_TAG not in cell.metadata.get("tags", [])]
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return copy


if __name__ == "__main__":
    for answered in sorted((HERE / "answers").glob("*.ipynb")):
        nbformat.write(without_answers(nbformat.read(answered, as_version=4)), HERE / answered.name)
        print(f"wrote notebooks/{answered.name}")
