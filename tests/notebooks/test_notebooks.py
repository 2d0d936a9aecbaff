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

    def test_finetune_pretrained(self):
        notebook = run_notebook("04_finetune_pretrained.ipynb", steps=20)
        text = outputs_text(notebook)
        self.assertIn("config.json", text)  # the notebook's preset, saved by keras-hub
        self.assertRegex(text, r"LiT trains [\d,]+ of [\d,]+ parameters")
        for row in ("new task text->image R@1", "pretraining task text->image R@1",
                    "zero-shot shape accuracy"):
            self.assertRegex(text, rf"{row} +\d\.\d{{3}} +\d\.\d{{3}} +\d\.\d{{3}}")
        self.assertIn("SavedModel:", text)
        self.assertRegex(text, r"bleu_4 \d\.\d{3}, cider_d")

    def test_lora_and_quantization(self):
        notebook = run_notebook("05_lora_and_quantization.ipynb", steps=20)
        text = outputs_text(notebook)
        self.assertRegex(text, r"LoRA: [\d,]+ of [\d,]+ parameters trainable")
        self.assertIn("full fine-tune BLEU-4", text)
        self.assertRegex(text, r"merged model, same captions on 1[0-6] of 16 images")
        self.assertIn("reloaded adapters, same captions on 16 of 16 images", text)
        for mode in ("float32", "int8", "int4"):
            self.assertRegex(text, rf"\n{mode} +\d\.\d{{3}} ")
        self.assertIn("SavedModel (int8):", text)
