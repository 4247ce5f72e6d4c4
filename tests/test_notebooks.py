"""Execute every notebook in ``notebooks/`` top to bottom, as a reader would.

A notebook states its numbers with ``assert``s in its code cells, so a regression in torchff
that changes what a notebook shows fails here. The kernel is ``python3`` started from the
interpreter running pytest (jupyter_client substitutes ``sys.executable`` for the kernelspec's
``python``), so it imports the same installed torchff; the first cell checks that.
"""

from __future__ import annotations

import pathlib
import sys

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300  # each notebook is meant to run in well under a minute on 2 cores


def test_notebooks_are_found():
    names = [p.stem for p in NOTEBOOKS]
    assert len(names) >= 6, names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # pytest -n 2 already uses both cores
    nb = nbformat.read(path, as_version=4)
    probe = nbformat.v4.new_code_cell("import sys; print(sys.prefix)")
    nb.cells.insert(0, probe)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError (with the cell's traceback) on any error
    kernel_prefix = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
    assert kernel_prefix == sys.prefix, f"the kernel ran in {kernel_prefix}, pytest in {sys.prefix}"
