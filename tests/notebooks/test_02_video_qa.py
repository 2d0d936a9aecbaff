"""The video QA tutorial runs top to bottom (with fewer training steps)."""

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
class VideoQANotebookTest(TestCase):
    def test_video_qa(self):
        notebook = run_notebook("02_video_qa.ipynb", steps=60)
        text = outputs_text(notebook)
        self.assertIn("exact_match", text)
        self.assertIn("majority baseline", text)
        self.assertIn("SavedModel:", text)
        self.assertIn("from PNG frames:", text)
        # The served answer is the model's answer.
        lines = dict(
            line.split(":", 1) for line in text.splitlines()
            if line.startswith(("SavedModel:", "answer():"))
        )
        self.assertEqual(lines["SavedModel"].strip(), lines["answer()"].strip())
        images = [
            out for cell in notebook.cells for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})
        ]
        # Training strips, loss curve, test strips, accuracy bar chart.
        self.assertGreaterEqual(len(images), 4)
