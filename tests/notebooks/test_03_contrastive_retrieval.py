"""The contrastive retrieval tutorial runs top to bottom (with fewer training steps)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from mmzoo.testing import TestCase

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "..", "notebooks")


def run_notebook(name, steps):
    path = os.path.join(NOTEBOOKS, name)
    notebook = nbformat.read(path, as_version=4)
    os.environ["MMZOO_TUTORIAL_STEPS"] = str(steps)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": NOTEBOOKS}})
    client.execute()
    return notebook


def outputs_text(notebook):
    texts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


@pytest.mark.slow
class ContrastiveRetrievalNotebookTest(TestCase):
    def test_contrastive_retrieval(self):
        notebook = run_notebook("03_contrastive_retrieval.ipynb", steps=100)
        text = outputs_text(notebook)
        self.assertIn("text_to_image/recall@1", text)
        self.assertIn("zero-shot shape accuracy", text)
        self.assertIn("zero-shot colour accuracy", text)
        self.assertIn("SavedModel best image per query", text)
        images = [
            out for cell in notebook.cells for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})
        ]
        # Loss curve, similarity heatmap, search grid, zero-shot examples.
        self.assertGreaterEqual(len(images), 4)
