"""`mmzoo train|evaluate|export dual_encoder`: the image-text contrastive recipe."""

import os

from mmzoo.recipes import _common

FAMILY = "dual_encoder"


def _check_image_text(preset, config):
    if config.get("text_encoder") is None or len(_common.input_shape(config["image_encoder"])) != 3:
        raise ValueError(
            "`mmzoo train dual_encoder` trains image-text presets on image-caption data "
            "(CLIP / SigLIP); train two-view (SimCLR) or video-text models from Python. "
            f"Received: --preset {preset!r}"
        )


def train_dual_encoder(
    preset="dual_encoder_tiny",
    data_spec="synthetic",
    steps=2000,
    model_dir="runs/dual_encoder",
    strategy="auto",
    batch_size=64,
    learning_rate=1e-3,
    vocabulary_size=128,
    num_examples=20000,
    seed=0,
    checkpoint_every=500,
    verbose=1,
    deterministic=True,
    strict=False,
):
    """Trains an image-text dual encoder preset with `mmzoo.training.Trainer`.

    `deterministic` and `strict` are as in `train_image_captioning`.

    The loss is `SigLIPLoss` for presets with a logit bias (`use_bias`) and
    `CLIPLoss` otherwise; both score each replica's rows against the whole
    global batch. With several replicas the step runs without XLA (the
    all-gather of the embeddings cannot be XLA-compiled on CPU).

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
    _check_image_text(preset, config)
    strategy = training.get_strategy(strategy)
    keras.utils.set_random_seed(seed)
    image_shape = _common.input_shape(config["image_encoder"])
    with _common.run_directory(model_dir, FAMILY, preset, batch_size=batch_size, seed=seed):
        examples, report = _common.load_caption_examples(
            data_spec, "train", image_shape, num_examples, seed, strict=strict
        )
        tokenizer = _common.tokenizer_for(
            model_dir, examples.map(lambda x: x["captions"]),
            _common.text_length(config["text_encoder"]), vocabulary_size,
        )
        dataset = data.contrastive_pipeline(
            examples, tokenizer, batch_size=batch_size, seed=seed, deterministic=deterministic
        )
        schedule = training.warmup_cosine_decay(
            learning_rate, total_steps=steps, warmup_steps=min(200, steps // 10)
        )

        def model_fn():
            # The preset's text tower, with the run's vocabulary.
            return presets.build_from_preset(
                preset, text_encoder={"vocabulary_size": tokenizer.vocabulary_size}
            )

        loss = mmzoo.losses.SigLIPLoss() if config.get("use_bias") else mmzoo.losses.CLIPLoss()
        trainer = training.Trainer(
            model_fn=model_fn,
            loss=loss,
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01, global_clipnorm=1.0),
            strategy=strategy,
            model_dir=model_dir,
            jit_compile=strategy.num_replicas_in_sync == 1,
            deterministic=deterministic,
        )
        return _common.fit(
            trainer, dataset, steps, checkpoint_every, verbose, model_dir, report
        )


def evaluate_dual_encoder(model_dir, data_spec="synthetic", split="test", num_examples=1000,
                          batch_size=256, strict=False):
    """Image-text retrieval on `split`: recall@1/5/10 and ranks, both directions.

    Every caption of an image is a query (COCO-style); an image query counts
    as found at K when any of its captions is in its top K. Writes
    `eval_<split>.json` in the run directory.

    Returns:
        the scores dict.
    """
    import numpy as np

    from mmzoo import evaluation

    model, tokenizer = _common.load_run(model_dir, FAMILY)
    model.tokenizer = tokenizer
    image_shape = tuple(model.image_encoder.inputs[0].shape[1:])
    examples, _ = _common.load_caption_examples(
        data_spec, split, image_shape, num_examples, strict=strict
    )
    images, captions, text_to_image = [], [], []
    for i, example in enumerate(examples.as_numpy_iterator()):
        images.append(example["images"])
        for caption in np.atleast_1d(example["captions"]):
            captions.append(caption.decode("utf-8", "replace"))
            text_to_image.append(i)
    if not images:
        raise ValueError(f"No examples to evaluate. Received: --data {data_spec!r} --split {split!r}")
    image_embeddings = model.encode_images(np.stack(images), batch_size=batch_size)
    text_embeddings = model.encode_text(captions, batch_size=batch_size)
    scores = evaluation.retrieval_metrics(
        image_embeddings, text_embeddings, text_to_image=np.asarray(text_to_image)
    )
    scores = {k: float(v) for k, v in scores.items()}
    scores.update(num_images=len(images), num_texts=len(captions))
    _common.write_json(os.path.join(model_dir, f"eval_{split}.json"), scores)
    return scores


def export_dual_encoder(model_dir, output=None, overwrite=False, max_image_pixels=None):
    """Writes the run's `encode_images` / `encode_text` SavedModel; returns its path.

    `overwrite` and `max_image_pixels` (None: the exporter's default) are
    those of `mmzoo.export.export_dual_encoder`.
    """
    from mmzoo import export

    model, tokenizer = _common.load_run(model_dir, FAMILY)
    output = output or os.path.join(model_dir, "saved_model")
    pixels = {} if max_image_pixels is None else {"max_image_pixels": max_image_pixels}
    export.export_dual_encoder(model, tokenizer, output, overwrite=overwrite, **pixels)
    return output
