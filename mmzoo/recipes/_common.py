"""Pieces shared by the family recipes: run directories, tokenizers, data specs."""

import json
import os
import sys

DATA_HELP = "synthetic | tfds:NAME | path/to/manifest.jsonl|csv"


def write_json(path, value):
    """Writes `value` as JSON to `path` atomically (temporary file + rename)."""
    staging = path + ".tmp"
    with open(staging, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
    os.replace(staging, path)


def check_family(preset, family):
    """The preset's record, or a clear error when it belongs to another family."""
    from mmzoo import presets

    record = presets.get_preset(preset)
    if record.family != family:
        raise ValueError(
            f"`--preset` must be a {family} preset ({presets.list_presets(family)}). "
            f"Received: --preset {preset!r}"
        )
    return record


def _build_encoder(value):
    """Builds an encoder given by preset name or `{"preset": ..., **overrides}`."""
    from mmzoo import presets

    name, overrides = presets.encoder_spec(value)
    return presets.build_from_preset(name, **overrides)


def input_shape(value):
    """The input shape (no batch axis) of an encoder given by preset or as a model."""
    from mmzoo import presets

    config = presets.encoder_config(value)
    if config is not None:
        if "image_shape" in config:
            frames = (config["num_frames"],) if "num_frames" in config else ()
            return frames + tuple(config["image_shape"])
        # Otherwise built to read its input: the input shape of a keras-hub
        # tower is only known once built (tiny presets build in well under
        # a second).
        value = _build_encoder(value)
    return tuple(value.inputs[0].shape[1:])


def text_length(value):
    """The token length a text encoder (given by preset or as a model) takes."""
    from mmzoo import presets

    config = presets.encoder_config(value)
    if config is not None:
        if "sequence_length" in config:
            return int(config["sequence_length"])
        value = _build_encoder(value)
    return int(value.input["token_ids"].shape[1])


def is_text_encoder(value):
    """Whether an encoder given by preset is a text tower (takes a vocabulary)."""
    from mmzoo import presets

    config = presets.encoder_config(value)
    return config is not None and "vocabulary_size" in config


def text_encoder_for(value, vocabulary_size):
    """A text encoder given by preset, built with the run's vocabulary size.

    A built model is returned as is.
    """
    from mmzoo import presets

    spec = presets.encoder_spec(value)
    if spec is None:
        return value
    name, overrides = spec
    return presets.build_from_preset(name, **{**overrides, "vocabulary_size": vocabulary_size})


def tokenizer_for(run_dir, texts, sequence_length, vocabulary_size):
    """The run's tokenizer: loaded when the run has one (resume), else trained.

    Args:
        run_dir: str. The run directory; the tokenizer lives in `tokenizer/`.
        texts: `tf.data.Dataset` of strings (any shape) to train on.
        sequence_length: int. Packed length (start and end tokens included).
        vocabulary_size: int. WordPiece vocabulary size.
    """
    from mmzoo import data

    path = os.path.join(run_dir, "tokenizer")
    if os.path.exists(os.path.join(path, "vocabulary.txt")):
        return data.TextTokenizer.load(path)
    vocabulary = data.train_word_piece_vocabulary(texts, vocabulary_size=vocabulary_size)
    tokenizer = data.TextTokenizer(vocabulary, sequence_length=sequence_length)
    staging = path + ".tmp"
    tokenizer.save(staging)
    os.replace(staging, path)
    return tokenizer


def load_run(run_dir):
    """The run's `model.keras` (safe mode) and its tokenizer."""
    import keras

    from mmzoo import data

    model_path = os.path.join(run_dir, "model.keras")
    if not os.path.exists(model_path):
        raise ValueError(
            f"No trained model in the run directory (expected {model_path}; run "
            f"`mmzoo train` first). Received: --model-dir {run_dir!r}"
        )
    model = keras.saving.load_model(model_path, safe_mode=True)
    return model, data.TextTokenizer.load(os.path.join(run_dir, "tokenizer"))


def synthetic_name(data_spec, expected):
    """`expected` when `data_spec` names mmzoo's built-in data for it, else None."""
    if data_spec == "synthetic" or data_spec.startswith("synthetic:"):
        name = data_spec.partition(":")[2] or expected
        if name != expected:
            raise ValueError(
                f"This family trains on the synthetic dataset {expected!r}. "
                f"Received: --data {data_spec!r}"
            )
        return name
    return None


def load_caption_examples(data_spec, split, image_shape, num_examples=None, seed=0):
    """Unbatched `images` + `captions` examples from a `--data` value."""
    from mmzoo import data

    if synthetic_name(data_spec, "shapes_captions"):
        if image_shape[0] != image_shape[1]:
            raise ValueError(f"Synthetic images are square. Received: image_shape={image_shape}")
        return data.load_synthetic(
            "shapes_captions", split, num_examples=num_examples, seed=seed,
            image_size=image_shape[0],
        )
    if data_spec.startswith("tfds:"):
        examples = data.load_tfds(
            data_spec[len("tfds:"):], split=split, image_shape=image_shape[:2], download=False
        )
    elif os.path.isfile(data_spec):
        examples, report = data.load_image_caption_files(data_spec, image_shape=image_shape[:2])
        print(f"{data_spec}: {report.num_records} records", file=sys.stderr)
    else:
        raise ValueError(f"`--data` must be {DATA_HELP}. Received: --data {data_spec!r}")
    return examples.take(num_examples) if num_examples else examples


def fit(trainer, dataset, steps, checkpoint_every, verbose, model_dir):
    """`trainer.fit` with the CLI's logging cadence; saves `model.keras` on the chief."""
    from mmzoo import training

    history = trainer.fit(
        dataset, steps=steps, checkpoint_every=checkpoint_every,
        log_every=max(1, min(100, steps // 10)), verbose=verbose,
    )
    if training.is_chief(trainer.strategy):
        training.save_model(trainer.model, os.path.join(model_dir, "model.keras"))
    return history
