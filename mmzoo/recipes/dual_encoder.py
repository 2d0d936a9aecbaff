"""`mmzoo train|evaluate|export dual_encoder`: the image-text contrastive recipe."""

from mmzoo.recipes import _common
from mmzoo.recipes import recipe


def _tower(preset, config):
    from mmzoo import presets

    image_tower = presets.encoder_config(config.get("image_encoder")) or {}
    if config.get("text_encoder") is None or "num_frames" in image_tower:
        raise ValueError(
            "`mmzoo train dual_encoder` trains image-text presets on image-caption data "
            "(CLIP / SigLIP); train two-view models (`mmzoo.models.TwoViewEncoder`, "
            "SimCLR) or video-text models from Python. "
            f"Received: --preset {preset!r}"
        )
    return config["image_encoder"]


def _build_model(preset, tower, tokenizer, freeze_image_encoder=False, text_encoder=None):
    from mmzoo import models
    from mmzoo import presets

    # The preset's text tower with the run's vocabulary (or a keras-hub text
    # preset at its length); the model sets its preprocessor's text length
    # and image converter (and saves them).
    preprocessor = models.DualEncoderPreprocessor(tokenizer)
    text_tower = (
        {"vocabulary_size": preprocessor.vocabulary_size} if text_encoder is None
        else _common.keras_hub_text_tower(
            text_encoder, presets.get_preset_config(preset)["text_encoder"]
        )
    )
    return presets.build_from_preset(
        preset, image_encoder=tower, text_encoder=text_tower,
        preprocessor=preprocessor, freeze_image_encoder=freeze_image_encoder,
    )


def _from_pretrained(preset, freeze_image_encoder):
    from mmzoo import models

    return models.DualEncoder.from_keras_hub(
        preset, freeze_image_encoder=freeze_image_encoder
    )


def _pipeline(examples, model, batch_size, seed, deterministic, report, **pipeline_options):
    from mmzoo import data

    # `x` only: the contrastive losses need only the model's outputs.
    return data.contrastive_pipeline(
        examples, model, batch_size=batch_size, seed=seed, deterministic=deterministic,
        **pipeline_options,
    )


def _loss(model):
    from mmzoo import losses

    # Both score each replica's rows against the whole global batch.
    return losses.SigLIPLoss() if model.use_bias else losses.CLIPLoss()


def _score(model, examples, batch_size):
    import numpy as np

    from mmzoo import evaluation

    images = np.stack([example["images"] for example in examples])
    captions, text_to_image = [], []
    for i, example in enumerate(examples):
        for caption in np.atleast_1d(example["captions"]):
            captions.append(_common.text(caption))
            text_to_image.append(i)
    text_to_image = np.asarray(text_to_image)
    image_embeddings = model.encode_images(images, batch_size=batch_size)
    text_embeddings = model.encode_text(captions, batch_size=batch_size)
    scores = evaluation.retrieval_metrics(
        image_embeddings, text_embeddings, text_to_image=text_to_image
    )
    scores = {k: float(v) for k, v in scores.items()}
    scores.update(num_images=len(images), num_texts=len(captions))
    outputs = {
        "captions": captions, "text_to_image": text_to_image,
        "image_embeddings": image_embeddings, "text_embeddings": text_embeddings,
    }
    return scores, outputs


def _export(model, output, overwrite, **pixels):
    from mmzoo import export

    export.export_dual_encoder(model, output, overwrite=overwrite, **pixels)


RECIPE = recipe.Recipe(
    family="dual_encoder",
    model_class="DualEncoder",
    tower=_tower,
    texts="captions",
    load_examples=_common.load_caption_examples,
    build_model=_build_model,
    pipeline=_pipeline,
    loss=_loss,
    score=_score,
    export=_export,
    options={
        "train": {"freeze_image_encoder": False, "image_encoder": None, "text_encoder": None},
        "evaluate": {"num_examples": 1000, "batch_size": 256},
    },
    cross_replica_loss=True,
    from_pretrained=_from_pretrained,
    model_options=("freeze_image_encoder",),
    shuffle_buffer=4096,  # contrastive_pipeline's: more distinct negatives per batch
)


@recipe.with_options(RECIPE, "train")
def train_dual_encoder(*args, **options):
    """Trains an image-text dual encoder preset with `mmzoo.training.Trainer`.

    The options are those of `mmzoo.recipes.train` (`help()` shows their
    defaults). `preset` may also be a keras-hub CLIP, SigLIP or MetaCLIP 2
    preset name or directory (`mmzoo.models.DualEncoder.from_keras_hub`): the run
    fine-tunes it with its own tokenizer; `freeze_image_encoder=True` locks
    its image tower (LiT). `image_encoder` (a keras-hub image preset name
    or directory) puts a pretrained image tower beside the preset's new text
    tower; with `freeze_image_encoder=True` that is LiT as published. The loss is `SigLIPLoss` for presets with a logit bias
    (`use_bias`) and `CLIPLoss` otherwise; both score each replica's rows
    against the whole global batch. With several replicas the step runs
    without XLA (the all-gather of the embeddings cannot be XLA-compiled on
    CPU).

    Returns:
        the `Trainer.fit` history.
    """
    return recipe.train(RECIPE, *args, **options)


@recipe.with_options(RECIPE, "evaluate")
def evaluate_dual_encoder(*args, **options):
    """Image-text retrieval on `split`: recall@1/5/10 and ranks, both directions.

    The options are those of `mmzoo.recipes.evaluate`. Every caption of an
    image is a query (COCO-style); an image query counts as found at K when
    any of its captions is in its top K. Writes `eval_<split>.json` in the
    run directory.

    Returns:
        the scores dict, with `num_images` and `num_texts`.
        `mmzoo.recipes.evaluate_with_outputs` also returns `{"captions": list
        of str, "text_to_image": (num_texts,) image index of each caption,
        "image_embeddings", "text_embeddings"}`.
    """
    return recipe.evaluate(RECIPE, *args, **options)


@recipe.with_options(RECIPE, "export")
def export_dual_encoder(*args, **options):
    """Writes the run's `encode_images` / `encode_text` SavedModel; returns its path.

    The options are those of `mmzoo.recipes.export`
    (`mmzoo.export.export_dual_encoder`).
    """
    return recipe.export(RECIPE, *args, **options)
