"""The contrastive retrieval tutorial runs top to bottom (with fewer training steps)."""

import pytest

from _notebooks import outputs_text
from _notebooks import run_notebook

from mmzoo.testing import TestCase


# Over a minute on 2 cores; `pytest --run-slow --run-large tests/notebooks`
# runs every notebook.
@pytest.mark.large
class ContrastiveRetrievalNotebookTest(TestCase):
    def test_contrastive_retrieval(self):
        notebook = run_notebook("03_contrastive_retrieval.ipynb", steps=20)
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
