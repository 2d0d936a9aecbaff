"""`mmzoo train|evaluate|export image_captioning`: the captioning recipe."""

from mmzoo.recipes import _common
from mmzoo.recipes import recipe


def _tower(preset, config):
    return config["image_encoder"]


def _build_model(preset, tower, tokenizer):
    from mmzoo import models
    from mmzoo import presets

    # The model sets the preprocessor's `sequence_length` (its own).
    preprocessor = models.ImageCaptioningPreprocessor(
        tokenizer, image_converter=_common.input_shape(tower)
    )
    return presets.build_from_preset(
        preset, image_encoder=tower, vocabulary_size=preprocessor.vocabulary_size,
        preprocessor=preprocessor,
    )


def _pipeline(examples, model, batch_size, seed, deterministic, report, **pipeline_options):
    from mmzoo import data
    from mmzoo import models

    dataset = data.captioning_pipeline(
        examples, model, batch_size=batch_size, seed=seed, deterministic=deterministic,
        **pipeline_options,
    )
    return dataset.map(models.teacher_forcing_split)


def _loss(model):
    from mmzoo import losses

    return losses.MaskedSequenceCrossEntropy(pad_token_id=model.pad_token_id)


def _score(model, examples, batch_size, method, num_beams):
    import numpy as np

    from mmzoo import evaluation

    images = np.stack([example["images"] for example in examples])
    references = [
        [_common.text(c) for c in np.atleast_1d(example["captions"])] for example in examples
    ]
    captions = model.generate(images, method=method, num_beams=num_beams, batch_size=batch_size)
    scores = evaluation.caption_metrics(captions, references)
    scores["num_examples"] = len(images)
    return scores, {"images": images, "references": references, "captions": captions}


def _export(model, output, overwrite, method, num_beams, **pixels):
    from mmzoo import export

    export.export_image_captioning_model(
        model, output, method=method, num_beams=num_beams, overwrite=overwrite, **pixels
    )


RECIPE = recipe.Recipe(
    family="image_captioning",
    model_class="ImageCaptioningModel",
    tower=_tower,
    texts="captions",
    load_examples=_common.load_caption_examples,
    build_model=_build_model,
    pipeline=_pipeline,
    loss=_loss,
    score=_score,
    export=_export,
    options={
        "train": {"learning_rate": 2e-3, "image_encoder": None},
        "evaluate": {"batch_size": 100, "method": "greedy", "num_beams": 4},
        "export": {"method": "greedy", "num_beams": 4},
    },
)


@recipe.with_options(RECIPE, "train")
def train_image_captioning(*args, **options):
    """Trains a captioning preset with `mmzoo.training.Trainer`; returns the history.

    The options are those of `mmzoo.recipes.train` (`help()` shows their
    defaults). With `deterministic=True` (the default) two runs with the
    same seed and data give bit-identical weights (TensorFlow's op
    determinism; see `mmzoo.training.Trainer`). `strict=True` stops at the
    first bad record of a manifest instead of skipping it.
    `image_encoder="vit_base_patch16_224_imagenet"` (a keras-hub image
    preset name or directory) puts a pretrained image tower under the
    preset's decoder (`mmzoo.encoders.build_keras_hub_image_tower`).
    """
    return recipe.train(RECIPE, *args, **options)


@recipe.with_options(RECIPE, "evaluate")
def evaluate_image_captioning(*args, **options):
    """Captions `split` and scores it (BLEU, CIDEr-D, ROUGE-L); writes `eval_<split>.json`.

    The options are those of `mmzoo.recipes.evaluate`, with `method` and
    `num_beams` of `ImageCaptioningModel.generate`.

    Returns:
        the scores dict, with `num_examples`. `mmzoo.recipes.evaluate_with_outputs`
        also returns `{"images": (n, height, width, 3), "references": lists of
        str, "captions": list of str}`.
    """
    return recipe.evaluate(RECIPE, *args, **options)


@recipe.with_options(RECIPE, "export")
def export_image_captioning(*args, **options):
    """Writes the run's `caption` SavedModel; returns its path.

    The options are those of `mmzoo.recipes.export`, with `method` and
    `num_beams` of `mmzoo.export.export_image_captioning_model`.
    """
    return recipe.export(RECIPE, *args, **options)
