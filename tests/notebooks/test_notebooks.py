"""Every tutorial notebook runs top to bottom (with fewer training steps)."""

import pytest

from _notebooks import outputs_text
from _notebooks import run_notebook

from mmzoo.testing import TestCase


# Over a minute on 2 cores, like the other notebooks (the README's blocks,
# which CI runs, cover the same API); `pytest --run-slow --run-large
# tests/notebooks` runs them all.
@pytest.mark.large
class NotebookTest(TestCase):
    def test_image_captioning(self):
        notebook = run_notebook("01_image_captioning.ipynb", steps=30)
        text = outputs_text(notebook)
        self.assertIn("bleu_4", text)
        self.assertIn("SavedModel:", text)
        images = [
            out for cell in notebook.cells for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})
        ]
        self.assertGreaterEqual(len(images), 3)  # loss curve, caption grid, attention
