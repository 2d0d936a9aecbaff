"""End-to-end recipes behind the `mmzoo` command line, one module per family.

Each family has `train_<family>(preset, data_spec, steps, model_dir, ...)`
(`mmzoo.training.Trainer` under any `tf.distribute` strategy, resuming from
the run directory's checkpoints), `evaluate_<family>(model_dir, ...)` and,
where the family has a serving format, `export_<family>(model_dir, output)`.
A run directory holds the checkpoints, `tokenizer/`, `metrics.jsonl`,
`tensorboard/`, `model.keras` and `eval_<split>.json`.

Example:

```python
from mmzoo import recipes

recipes.train_video_qa(preset="video_qa_tiny", steps=500, model_dir="runs/vqa")
recipes.evaluate_video_qa("runs/vqa")["vqa_accuracy"]
recipes.export_video_qa("runs/vqa")   # runs/vqa/saved_model, signature `answer`
```
"""

from mmzoo.recipes.dual_encoder import evaluate_dual_encoder
from mmzoo.recipes.dual_encoder import export_dual_encoder
from mmzoo.recipes.dual_encoder import train_dual_encoder
from mmzoo.recipes.fusion_classifier import evaluate_fusion_classifier
from mmzoo.recipes.fusion_classifier import train_fusion_classifier
from mmzoo.recipes.image_captioning import evaluate_image_captioning
from mmzoo.recipes.image_captioning import export_image_captioning
from mmzoo.recipes.image_captioning import train_image_captioning
from mmzoo.recipes.video_qa import evaluate_video_qa
from mmzoo.recipes.video_qa import export_video_qa
from mmzoo.recipes.video_qa import train_video_qa

FAMILIES = ("image_captioning", "video_qa", "dual_encoder", "fusion_classifier")
TRAIN = {
    "image_captioning": train_image_captioning,
    "video_qa": train_video_qa,
    "dual_encoder": train_dual_encoder,
    "fusion_classifier": train_fusion_classifier,
}
EVALUATE = {
    "image_captioning": evaluate_image_captioning,
    "video_qa": evaluate_video_qa,
    "dual_encoder": evaluate_dual_encoder,
    "fusion_classifier": evaluate_fusion_classifier,
}
EXPORT = {
    "image_captioning": export_image_captioning,
    "video_qa": export_video_qa,
    "dual_encoder": export_dual_encoder,
}

__all__ = [
    "FAMILIES", "TRAIN", "EVALUATE", "EXPORT",
    "train_image_captioning", "evaluate_image_captioning", "export_image_captioning",
    "train_video_qa", "evaluate_video_qa", "export_video_qa",
    "train_dual_encoder", "evaluate_dual_encoder", "export_dual_encoder",
    "train_fusion_classifier", "evaluate_fusion_classifier",
]
