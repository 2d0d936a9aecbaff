"""Runs a tutorial notebook top to bottom and reads back its outputs."""

import os

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "..", "notebooks")


def run_notebook(name, steps):
    """Executes `notebooks/<name>` with `MMZOO_TUTORIAL_STEPS=steps`; returns it."""
    path = os.path.join(NOTEBOOKS, name)
    notebook = nbformat.read(path, as_version=4)
    os.environ["MMZOO_TUTORIAL_STEPS"] = str(steps)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": NOTEBOOKS}})
    client.execute()
    return notebook


def outputs_text(notebook):
    """The printed text and plain-text results of every cell, joined."""
    texts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)
