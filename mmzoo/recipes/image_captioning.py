"""`mmzoo train|evaluate|export image_captioning`: the captioning recipe."""

import os

from mmzoo.recipes import _common
from mmzoo.recipes._common import load_caption_examples

FAMILY = "image_captioning"


def _image_shape(preset):
    from mmzoo import presets

    return _common.input_shape(presets.get_preset_config(preset)["image_encoder"])


def _load_run(run_dir):
    model, tokenizer = _common.load_run(run_dir, FAMILY)
    model.tokenizer = tokenizer
    return model


def train_image_captioning(
    preset="image_captioning_tiny",
    data_spec="synthetic",
    steps=2000,
    model_dir="runs/image_captioning",
    strategy="auto",
    batch_size=64,
    learning_rate=2e-3,
    vocabulary_size=128,
    num_examples=20000,
    seed=0,
    checkpoint_every=500,
    verbose=1,
    deterministic=True,
    strict=False,
):
    """Trains a captioning preset with `mmzoo.training.Trainer`; returns the history.

    With `deterministic=True` (the default) two runs with the same seed and
    data give bit-identical weights (TensorFlow's op determinism; see
    `mmzoo.training.Trainer`). `strict=True` stops at the first bad record
    of a manifest instead of skipping it.
    """
    import keras

    import mmzoo
    from mmzoo import data
    from mmzoo import presets
    from mmzoo import training

    config = _common.check_family(preset, FAMILY)
    strategy = training.get_strategy(strategy)
    keras.utils.set_random_seed(seed)
    image_shape = _image_shape(preset)
    with _common.run_directory(model_dir, FAMILY, preset, batch_size=batch_size, seed=seed):
        examples, report = load_caption_examples(
            data_spec, "train", image_shape, num_examples, seed, strict=strict
        )
        tokenizer = _common.tokenizer_for(
            model_dir, examples.map(lambda x: x["captions"]),
            config.config["sequence_length"] + 1, vocabulary_size,
        )
        dataset = data.captioning_pipeline(
            examples, tokenizer, batch_size=batch_size, seed=seed, deterministic=deterministic
        )
        dataset = dataset.map(mmzoo.models.teacher_forcing_split)
        schedule = training.warmup_cosine_decay(
            learning_rate, total_steps=steps, warmup_steps=min(200, steps // 10)
        )
        trainer = training.Trainer(
            model_fn=lambda: presets.build_from_preset(
                preset, vocabulary_size=tokenizer.vocabulary_size
            ),
            loss=mmzoo.losses.MaskedSequenceCrossEntropy(pad_token_id=tokenizer.pad_token_id),
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01, global_clipnorm=1.0),
            strategy=strategy,
            model_dir=model_dir,
            deterministic=deterministic,
        )
        return _common.fit(
            trainer, dataset, steps, checkpoint_every, verbose, model_dir, report
        )


def evaluate_image_captioning(
    model_dir, data_spec="synthetic", split="test", num_examples=500,
    method="greedy", num_beams=4, batch_size=100, strict=False,
):
    """Captions `split` and scores it; writes `eval_<split>.json` in the run."""
    import numpy as np

    from mmzoo import evaluation

    model = _load_run(model_dir)
    examples, _ = load_caption_examples(
        data_spec, split, model.image_shape, num_examples, strict=strict
    )
    images, references = [], []
    for example in examples.as_numpy_iterator():
        images.append(example["images"])
        references.append([c.decode("utf-8", "replace") for c in np.atleast_1d(example["captions"])])
    if not images:
        raise ValueError(f"No examples to evaluate. Received: --data {data_spec!r} --split {split!r}")
    captions = model.generate(np.stack(images), method=method, num_beams=num_beams, batch_size=batch_size)
    scores = evaluation.caption_metrics(captions, references)
    scores["num_examples"] = len(images)
    _common.write_json(os.path.join(model_dir, f"eval_{split}.json"), scores)
    return scores, captions, np.stack(images), references


def export_image_captioning(model_dir, output=None, method="greedy", num_beams=4,
                            overwrite=False, max_image_pixels=None):
    """Writes the run's `caption` SavedModel; returns its path.

    `overwrite` and `max_image_pixels` (None: the exporter's default) are
    those of `mmzoo.export.export_image_captioning_model`.
    """
    from mmzoo import export

    model = _load_run(model_dir)
    output = output or os.path.join(model_dir, "saved_model")
    pixels = {} if max_image_pixels is None else {"max_image_pixels": max_image_pixels}
    export.export_image_captioning_model(
        model, model.tokenizer, output, method=method, num_beams=num_beams,
        overwrite=overwrite, **pixels,
    )
    return output
