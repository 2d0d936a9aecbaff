"""`mmzoo train|evaluate fusion_classifier`: the image + text classification recipe."""

import os

from mmzoo.recipes import _common

FAMILY = "fusion_classifier"


def _encoders(config, vocabulary_size):
    """The preset's encoders, text towers built with the run's vocabulary size."""
    return {
        modality: _common.text_encoder_for(encoder, vocabulary_size)
        if _common.is_text_encoder(encoder) else encoder
        for modality, encoder in config["encoders"].items()
    }


def _image_and_text(preset, config):
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
    return image, text


def load_classification_examples(data_spec, split, image_shape, num_examples=None, seed=0):
    """Unbatched `images` / `texts` / `labels` examples (mmzoo's built-in data)."""
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
    )


def train_fusion_classifier(
    preset="fusion_classifier_tiny",
    data_spec="synthetic",
    steps=2000,
    model_dir="runs/fusion_classifier",
    strategy="auto",
    batch_size=64,
    learning_rate=3e-4,
    vocabulary_size=128,
    num_examples=20000,
    seed=0,
    checkpoint_every=500,
    verbose=1,
    deterministic=True,
    strict=False,
):
    """Trains an image + text fusion classifier preset with `mmzoo.training.Trainer`.

    `deterministic` is as in `train_image_captioning`; `strict` is accepted
    for a uniform signature (this recipe reads only built-in data).

    Returns:
        the `Trainer.fit` history.
    """
    import keras

    import mmzoo
    from mmzoo import data
    from mmzoo import presets
    from mmzoo import training

    record = _common.check_family(preset, FAMILY)
    config = record.config
    image, text = _image_and_text(preset, config)
    strategy = training.get_strategy(strategy)
    keras.utils.set_random_seed(seed)
    with _common.run_directory(model_dir, FAMILY, preset, batch_size=batch_size, seed=seed):
        examples = load_classification_examples(
            data_spec, "train", _common.input_shape(image), num_examples, seed
        )
        tokenizer = _common.tokenizer_for(
            model_dir, examples.map(lambda x: x["texts"]), _common.text_length(text),
            vocabulary_size,
        )
        dataset = data.fusion_pipeline(
            examples, tokenizer, batch_size=batch_size, seed=seed, deterministic=deterministic
        )
        dataset = dataset.map(mmzoo.models.classification_split)
        schedule = training.warmup_cosine_decay(
            learning_rate, total_steps=steps, warmup_steps=min(200, steps // 10)
        )
        trainer = training.Trainer(
            model_fn=lambda: presets.build_from_preset(
                preset, encoders=_encoders(config, tokenizer.vocabulary_size)
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01, global_clipnorm=1.0),
            strategy=strategy,
            model_dir=model_dir,
            deterministic=deterministic,
        )
        return _common.fit(trainer, dataset, steps, checkpoint_every, verbose, model_dir)


def evaluate_fusion_classifier(model_dir, data_spec="synthetic", split="test", num_examples=1000,
                               batch_size=128, strict=False):
    """Precision / recall / F1 per class and accuracy on `split`.

    Writes `eval_<split>.json` (the `classification_report` dict) in the run
    directory.

    Returns:
        the report dict.
    """
    import numpy as np

    from mmzoo import evaluation

    model, tokenizer = _common.load_run(model_dir, FAMILY)
    image_shape = tuple(model.input["images"].shape[1:])
    examples = load_classification_examples(data_spec, split, image_shape, num_examples)
    images, texts, labels = [], [], []
    for example in examples.as_numpy_iterator():
        images.append(example["images"])
        texts.append(example["texts"].decode("utf-8", "replace"))
        labels.append(int(example["labels"]))
    if not labels:
        raise ValueError(f"No examples to evaluate. Received: --data {data_spec!r} --split {split!r}")
    tokens = tokenizer(np.asarray(texts, dtype=object))
    x = {
        "images": np.stack(images),
        "token_ids": np.asarray(tokens["token_ids"]),
        "padding_mask": np.asarray(tokens["padding_mask"]).astype("int32"),
    }
    predictions = np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    report = evaluation.classification_report(np.asarray(labels), predictions)
    _common.write_json(os.path.join(model_dir, f"eval_{split}.json"), report)
    return report
