"""The video QA tutorial runs top to bottom (with fewer training steps)."""

import pytest

from _notebooks import outputs_text
from _notebooks import run_notebook

from mmzoo.testing import TestCase


# Over a minute on 2 cores; `pytest --run-slow --run-large tests/notebooks`
# runs every notebook.
@pytest.mark.large
class VideoQANotebookTest(TestCase):
    def test_video_qa(self):
        notebook = run_notebook("02_video_qa.ipynb", steps=20)
        text = outputs_text(notebook)
        self.assertIn("exact_match", text)
        self.assertIn("majority baseline", text)
        self.assertIn("SavedModel:", text)
        self.assertIn("from PNG frames:", text)
        # The served answer, and the reloaded `.keras` file's from PNG frame
        # files, are the model's answer.
        lines = dict(
            line.split(":", 1) for line in text.splitlines()
            if line.startswith(("SavedModel:", "answer():", "reloaded .keras from PNG files:"))
        )
        self.assertEqual(lines["SavedModel"].strip(), lines["answer()"].strip())
        self.assertEqual(lines["reloaded .keras from PNG files"].strip(), lines["answer()"].strip())
        images = [
            out for cell in notebook.cells for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})
        ]
        # Training strips, loss curve, test strips, accuracy bar chart.
        self.assertGreaterEqual(len(images), 4)
