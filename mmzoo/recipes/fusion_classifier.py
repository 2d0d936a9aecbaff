"""`mmzoo train|evaluate fusion_classifier`: the image + text classification recipe."""

from mmzoo.recipes import _common
from mmzoo.recipes import recipe


def _tower(preset, config):
    """The preset's image tower; the recipe trains image + text presets only."""
    from mmzoo import presets

    image, text = None, None
    for encoder in config["encoders"].values():
        if presets.encoder_spec(encoder) is None:
            continue
        if _common.is_text_encoder(encoder):
            text = encoder
        else:
            image = encoder
    if image is None or text is None or len(config["encoders"]) != 2:
        raise ValueError(
            "`mmzoo train fusion_classifier` trains image + text presets on "
            "`shapes_classification`; build other modality sets from Python. "
            f"Received: --preset {preset!r} with encoders {config['encoders']}"
        )
    return image


def load_classification_examples(data_spec, split, image_shape, num_examples=None, seed=0,
                                 strict=False):
    """Unbatched `images` / `texts` / `labels` examples (mmzoo's built-in data).

    Returns:
        `(examples, None)`: built-in data has no manifest report (`strict`
        is accepted for the recipes' one signature).
    """
    from mmzoo import data

    if not _common.synthetic_name(data_spec, "shapes_classification"):
        raise ValueError(
            "`mmzoo train fusion_classifier` reads the built-in `synthetic` "
            "(shapes_classification) data; load your own with tf.data and "
            "`mmzoo.data.fusion_pipeline` from Python. "
            f"Received: --data {data_spec!r}"
        )
    if image_shape[0] != image_shape[1]:
        raise ValueError(f"Synthetic images are square. Received: image_shape={image_shape}")
    return data.load_synthetic(
        "shapes_classification", split, num_examples=num_examples, seed=seed,
        image_size=image_shape[0],
    ), None


def _build_model(preset, tower, tokenizer, text_encoder=None):
    from mmzoo import data
    from mmzoo import models
    from mmzoo import presets

    # The model keeps the preprocessor (and saves it in model.keras) and sets
    # its text length: the one thing `evaluate` needs. The built-in data's
    # labels are `("no", "yes")`.
    preprocessor = models.FusionClassifierPreprocessor(
        tokenizer, image_converter=_common.input_shape(tower),
        class_names=list(data.CLASSIFICATION_CLASS_NAMES),
    )
    # The image tower (built first) and the text tower with the run's
    # vocabulary, in the preset's order.
    encoders = {
        modality: (
            _common.text_encoder_for(encoder, preprocessor.vocabulary_size)
            if text_encoder is None else _common.keras_hub_text_tower(text_encoder, encoder)
        ) if _common.is_text_encoder(encoder) else tower
        for modality, encoder in presets.get_preset_config(preset)["encoders"].items()
    }
    return presets.build_from_preset(preset, encoders=encoders, preprocessor=preprocessor)


def _pipeline(examples, model, batch_size, seed, deterministic, report, **pipeline_options):
    from mmzoo import data
    from mmzoo import models

    dataset = data.fusion_pipeline(
        examples, model, batch_size=batch_size, seed=seed, deterministic=deterministic,
        **pipeline_options,
    )
    return dataset.map(models.classification_split)


def _loss(model):
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _score(model, examples, batch_size):
    import numpy as np

    from mmzoo import evaluation

    images = np.stack([example["images"] for example in examples])
    texts = [_common.text(example["texts"]) for example in examples]
    labels = np.asarray([int(example["labels"]) for example in examples])
    probabilities = model.predict_probabilities(images=images, texts=texts, batch_size=batch_size)
    predictions = np.argmax(probabilities, axis=-1)
    report = evaluation.classification_report(
        labels, predictions, labels=list(range(model.num_classes)),
        target_names=model.preprocessor.class_names,
    )
    outputs = {
        "texts": texts, "labels": labels, "predictions": predictions,
        "probabilities": probabilities,
    }
    return report, outputs


RECIPE = recipe.Recipe(
    family="fusion_classifier",
    model_class="FusionClassifier",
    tower=_tower,
    texts="texts",
    load_examples=load_classification_examples,
    build_model=_build_model,
    pipeline=_pipeline,
    loss=_loss,
    score=_score,
    options={
        # Attention fusion learns only at a Transformer's rate: at 1e-3 it
        # stays at chance on the shape questions of shapes_classification
        # (benchmarks/README.md).
        "train": {"learning_rate": 3e-4, "image_encoder": None, "text_encoder": None},
        "evaluate": {"num_examples": 1000, "batch_size": 128},
    },
)


@recipe.with_options(RECIPE, "train")
def train_fusion_classifier(*args, **options):
    """Trains an image + text fusion classifier preset with `mmzoo.training.Trainer`.

    The options are those of `mmzoo.recipes.train` (`help()` shows their
    defaults); `strict` is accepted for the one signature (this recipe
    reads only built-in data). `image_encoder` (a keras-hub image preset
    name or directory) replaces the preset's image tower with a pretrained
    one (`mmzoo.encoders.build_keras_hub_image_tower`); `text_encoder` (a
    keras-hub text preset: BERT, RoBERTa...) its text tower, with the
    preset's tokenizer.

    Returns:
        the `Trainer.fit` history.
    """
    return recipe.train(RECIPE, *args, **options)


@recipe.with_options(RECIPE, "evaluate")
def evaluate_fusion_classifier(*args, **options):
    """Precision / recall / F1 per class and accuracy on `split`.

    The options are those of `mmzoo.recipes.evaluate`. Only the run's
    `model.keras` is read: the model carries its tokenizer, image converter
    and class names (`model.preprocessor`). Writes `eval_<split>.json` (the
    `classification_report` dict, classes keyed by their names).

    Returns:
        the report dict. `mmzoo.recipes.evaluate_with_outputs` also returns
        `{"texts": list of str, "labels", "predictions": (n,) class ids,
        "probabilities": (n, num_classes)}`.
    """
    return recipe.evaluate(RECIPE, *args, **options)
