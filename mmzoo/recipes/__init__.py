"""End-to-end recipes behind the `mmzoo` command line: one recipe, one `Recipe` per family.

`mmzoo.recipes.recipe` holds the steps every family runs (`train`,
`evaluate`, `export`) and the options with their defaults; each family module
holds its `Recipe` (what differs: data, model, pipeline, loss, scores,
export) and the thin wrappers `train_<family>(preset, data_spec, steps,
model_dir, ...)` (`mmzoo.training.Trainer` under any `tf.distribute`
strategy, resuming from the run directory's checkpoints),
`evaluate_<family>(model_dir, ...)` and, where the family has a serving
format, `export_<family>(model_dir, output)`.

A run directory holds the checkpoints, `run.json`, `tokenizer/` (the run's
vocabulary, read back on resume), `metrics.jsonl`, `tensorboard/`,
`model.keras` (the model with its preprocessor: all that `evaluate` and
`export` read) and `eval_<split>.json`. `evaluate` returns the same type for
every family: the scores dict written to `eval_<split>.json`;
`evaluate_with_outputs` also returns what was scored.

Example:

```python
from mmzoo import recipes

recipes.train_video_qa(preset="video_qa_tiny", steps=500, model_dir="runs/vqa")
recipes.evaluate_video_qa("runs/vqa")["vqa_accuracy"]
recipes.export_video_qa("runs/vqa")   # runs/vqa/saved_model, signature `answer`
recipes.RECIPES["video_qa"].defaults("train")["batch_size"]  # 32
```
"""

# Importing the recipes imports no TensorFlow (the steps import it when
# they run): the `mmzoo` command reads the options and defaults from here.
from mmzoo.recipes._common import DATA_HELP
from mmzoo.recipes._common import load_caption_examples
from mmzoo.recipes._common import write_json
from mmzoo.recipes.dual_encoder import evaluate_dual_encoder
from mmzoo.recipes.dual_encoder import export_dual_encoder
from mmzoo.recipes.dual_encoder import train_dual_encoder
from mmzoo.recipes.fusion_classifier import evaluate_fusion_classifier
from mmzoo.recipes.fusion_classifier import train_fusion_classifier
from mmzoo.recipes.image_captioning import evaluate_image_captioning
from mmzoo.recipes.image_captioning import export_image_captioning
from mmzoo.recipes.image_captioning import train_image_captioning
from mmzoo.recipes.recipe import Recipe
from mmzoo.recipes.recipe import evaluate
from mmzoo.recipes.recipe import evaluate_with_outputs
from mmzoo.recipes.recipe import export
from mmzoo.recipes.recipe import train
from mmzoo.recipes.video_qa import evaluate_video_qa
from mmzoo.recipes.video_qa import export_video_qa
from mmzoo.recipes.video_qa import train_video_qa
from mmzoo.recipes.dual_encoder import RECIPE as _DUAL_ENCODER
from mmzoo.recipes.fusion_classifier import RECIPE as _FUSION_CLASSIFIER
from mmzoo.recipes.image_captioning import RECIPE as _IMAGE_CAPTIONING
from mmzoo.recipes.video_qa import RECIPE as _VIDEO_QA

# Each family's `Recipe`: what it does differently, its options' defaults.
RECIPES = {
    recipe.family: recipe
    for recipe in (_IMAGE_CAPTIONING, _VIDEO_QA, _DUAL_ENCODER, _FUSION_CLASSIFIER)
}
FAMILIES = tuple(RECIPES)
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
    "DATA_HELP", "EVALUATE", "EXPORT", "FAMILIES", "RECIPES", "Recipe", "TRAIN",
    "evaluate", "evaluate_with_outputs", "export", "load_caption_examples", "train",
    "write_json",
    "train_image_captioning", "evaluate_image_captioning", "export_image_captioning",
    "train_video_qa", "evaluate_video_qa", "export_video_qa",
    "train_dual_encoder", "evaluate_dual_encoder", "export_dual_encoder",
    "train_fusion_classifier", "evaluate_fusion_classifier",
]
