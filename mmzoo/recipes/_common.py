"""Pieces the recipe steps share: run directories, the run's tokenizer, `--data` values."""

import contextlib
import json
import os
import shutil
import sys

DATA_HELP = "synthetic | tfds:NAME | tfrecord:DIR | path/to/manifest.jsonl|csv"
RUN_FILE = "run.json"
# The LoRA adapters alone, written by a `--lora-rank` run beside its merged model.keras.
ADAPTERS_FILE = "adapters.lora.h5"


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


def build_encoder(value, dtype=None):
    """An encoder given by preset name or `{"preset": ..., **overrides}`, built.

    A built model is returned as is. `dtype` (the model preset's, if any) is
    passed on unless the overrides give one, as `mmzoo.presets` does for
    nested encoders.
    """
    from mmzoo import presets

    spec = presets.encoder_spec(value)
    if spec is None:
        return value
    name, overrides = spec
    if dtype is not None:
        overrides.setdefault("dtype", dtype)
    return presets.build_from_preset(name, **overrides)


def preset_reference(preset):
    """A keras-hub preset as `run.json` records it: a directory by absolute path."""
    preset = os.fspath(preset)
    return os.path.abspath(preset) if os.path.isdir(preset) else preset


def input_shape(encoder):
    """The input shape (no batch axis) of a built image or video tower."""
    return tuple(encoder.inputs[0].shape[1:])


def example_shape(model):
    """The shape a model's examples are read at, from its preprocessor's converter.

    `(height, width, 3)`, or `(num_frames, height, width, 3)` for a video
    converter.
    """
    preprocessor = model.preprocessor
    if preprocessor.video_converter is not None:
        converter = preprocessor.video_converter
        return (converter.num_frames,) + tuple(converter.image_shape)
    return tuple(preprocessor.image_converter.image_shape)


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


def keras_hub_text_tower(text_encoder, replaces):
    """A keras-hub text preset as the text tower of a recipe's model.

    Args:
        text_encoder: a keras-hub preset name or directory (BERT, ...).
        replaces: the mmzoo preset's text tower (preset name or spec); its
            `sequence_length` is the length texts are packed to.
    """
    from mmzoo import encoders
    from mmzoo import presets

    length = (presets.encoder_config(replaces) or {}).get("sequence_length")
    if length is None:
        raise ValueError(
            f"The preset's text tower has no `sequence_length` to give the keras-hub "
            f"text tower. Received: text tower {replaces!r}"
        )
    return encoders.build_keras_hub_text_tower(text_encoder, sequence_length=length)


def run_tokenizer(run_dir, texts, vocabulary_size, save=True):
    """The run's tokenizer: read back when the run has one (resume), else trained.

    It is saved in `<run_dir>/tokenizer/` before training starts, so that a
    resumed run (whose `model.keras` is written only at the end) tokenizes
    with the same vocabulary. It packs no length of its own: the model's
    preprocessor packs to the model's lengths.

    Args:
        run_dir: str. The run directory.
        texts: `tf.data.Dataset` of strings (any shape) to train on.
        vocabulary_size: int. Most WordPiece tokens.
        save: bool. False on the non-chief workers of a multi-worker run:
            they train the same vocabulary from the same texts, and only the
            chief writes it.
    """
    from mmzoo import data

    path = os.path.join(run_dir, "tokenizer")
    if os.path.exists(os.path.join(path, "vocabulary.txt")):
        return data.TextTokenizer.load(path)
    vocabulary = data.train_word_piece_vocabulary(texts, vocabulary_size=vocabulary_size)
    tokenizer = data.TextTokenizer(vocabulary)
    if not save:
        return tokenizer
    staging = path + ".tmp"
    tokenizer.save(staging)
    os.replace(staging, path)
    return tokenizer


def text(value):
    """A str from an example's bytes (invalid UTF-8 replaced)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_run(run_dir):
    """The run's `run.json` (family, preset, ...) as a dict, or {} without one."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"Unreadable {path} ({e}). Received: --model-dir {run_dir!r}") from None
    return record if isinstance(record, dict) else {}


def check_fine_tuning(model_dir, init_from, lora_rank):
    """A run's starting point (`--init-from`, `--lora-rank`), checked before anything runs.

    The run directory must not be the one it starts from (its model.keras
    would be replaced), and a run is resumed from the starting point it was
    started from.
    """
    if init_from is not None:
        if not os.path.isdir(init_from):
            raise ValueError(
                f"`--init-from` must be a run directory (one `mmzoo train` wrote). "
                f"Received: --init-from {init_from!r}"
            )
        if os.path.realpath(init_from) == os.path.realpath(model_dir):
            raise ValueError(
                "`--init-from` is the run directory itself; fine-tune into another "
                "--model-dir so that the starting model.keras is kept. Received: "
                f"--init-from {init_from!r}, --model-dir {model_dir!r}"
            )
    record = read_run(model_dir) if os.path.isdir(model_dir) else {}
    if not record:
        return
    started = (record.get("init_from"), record.get("lora_rank"))
    given = (None if init_from is None else os.path.abspath(init_from), lora_rank)
    if started != given:
        raise ValueError(
            f"The run directory holds a run started with --init-from {started[0]} and "
            f"--lora-rank {started[1]}; resume it with the same, or use another "
            f"--model-dir. Received: --init-from {init_from}, --lora-rank {lora_rank}, "
            f"--model-dir {model_dir!r}"
        )


def _other_family_error(run_dir, family, other):
    return ValueError(
        f"The run directory holds a {other} run, not {family}: use `mmzoo <command> {other} "
        f"--model-dir {run_dir}`, or another --model-dir. Received: family {family!r}, "
        f"--model-dir {run_dir!r}"
    )


def _is_unstarted(run_dir):
    """No checkpoint, no model and no logged step: what a failed start leaves."""
    from mmzoo import training

    if training.latest_checkpoint(run_dir) or os.path.exists(os.path.join(run_dir, "model.keras")):
        return False
    return not training.read_metrics(run_dir)


@contextlib.contextmanager
def run_directory(model_dir, family, preset, chief=True, **settings):
    """The run directory of a training recipe, checked, recorded and cleaned up.

    Refuses a directory that holds a run of another family or preset, writes
    `run.json` (family, preset and `settings`) in a new one, and, when
    training fails before its first checkpoint or logged step, removes the
    directory if this call created it (a failed start leaves nothing
    behind). With `chief=False` (the other workers of a multi-worker run) it
    only checks: the chief writes `run.json` and removes the directory.
    """
    import mmzoo

    existed = os.path.isdir(model_dir)
    record = read_run(model_dir) if existed else {}
    if record.get("family", family) != family:
        raise _other_family_error(model_dir, family, record["family"])
    if record.get("preset", preset) != preset:
        raise ValueError(
            f"The run directory holds a run of preset {record['preset']!r}; resuming it "
            f"with another preset would not match its checkpoints. Use --preset "
            f"{record['preset']} or another --model-dir. Received: --preset {preset!r}, "
            f"--model-dir {model_dir!r}"
        )
    os.makedirs(model_dir, exist_ok=True)
    try:
        if not record and chief:
            write_json(
                os.path.join(model_dir, RUN_FILE),
                {"family": family, "preset": preset, **settings,
                 "mmzoo_version": mmzoo.__version__},
            )
        yield model_dir
    except BaseException:
        if chief and not existed and _is_unstarted(model_dir):
            shutil.rmtree(model_dir, ignore_errors=True)
        raise


def load_run(run_dir, family=None):
    """The run's `model.keras`, loaded in safe mode; it carries its preprocessor.

    With `family`, a run of another family is refused with a message naming
    both, before anything is loaded when the run has a `run.json`.
    """
    import keras

    import mmzoo
    from mmzoo.recipes import RECIPES

    mmzoo.import_all()  # the `mmzoo` command imports lazily

    if not os.path.isdir(run_dir):
        raise ValueError(
            f"No such run directory (train one with `mmzoo train`). Received: "
            f"--model-dir {run_dir!r}"
        )
    recorded = read_run(run_dir).get("family")
    if family is not None and recorded is not None and recorded != family:
        raise _other_family_error(run_dir, family, recorded)
    model_path = os.path.join(run_dir, "model.keras")
    if not os.path.exists(model_path):
        raise ValueError(
            f"No trained model in the run directory (expected {model_path}; run "
            f"`mmzoo train` first). Received: --model-dir {run_dir!r}"
        )
    model = keras.saving.load_model(model_path, safe_mode=True)
    # Runs made before `run.json` existed are recognised by their model class.
    model_classes = {f: recipe.model_class for f, recipe in RECIPES.items()}
    class_names = {c.__name__ for c in type(model).__mro__}
    if family is not None and model_classes[family] not in class_names:
        other = next((f for f, c in model_classes.items() if c in class_names), None)
        if other is not None:
            raise _other_family_error(run_dir, family, other)
        raise ValueError(
            f"The run's model.keras holds a {type(model).__name__}, not a "
            f"{model_classes[family]}. Received: --model-dir {run_dir!r}"
        )
    if getattr(model, "preprocessor", None) is None:
        raise ValueError(
            f"The run's model.keras has no preprocessor (it was trained before models "
            f"carried their tokenizer); train it again. Received: --model-dir {run_dir!r}"
        )
    return model


def check_data_path(data_spec):
    """A clear error for a `--data` path that does not name a manifest file."""
    if os.path.isfile(data_spec):
        return
    if os.path.isdir(data_spec):
        raise ValueError(
            "`--data` is a directory; pass the manifest file (.jsonl or .csv) that lists "
            f"its files. Received: --data {data_spec!r}"
        )
    looks_like_path = os.sep in data_spec or data_spec.lower().endswith((".jsonl", ".json", ".csv"))
    if looks_like_path:
        raise ValueError(f"`--data`: no such file. Received: --data {data_spec!r}")
    raise ValueError(
        f"`--data` must be {DATA_HELP} (and no file of that name exists). "
        f"Received: --data {data_spec!r}"
    )


def checked_examples(examples, report):
    """Prints the manifest's counts and fails clearly when nothing is usable."""
    print(report.summary().splitlines()[0], file=sys.stderr)
    return report.require_examples(examples)


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


def load_caption_examples(data_spec, split, image_shape, num_examples=None, seed=0,
                          strict=False, input_context=None, shuffle_buffer=None):
    """Unbatched `images` + `captions` examples from a `--data` value.

    `input_context` (`tfrecord:` and `tfds:` data) reads one input pipeline's
    share; `shuffle_buffer` (`tfrecord:` data) shuffles the records before
    decoding (`seed` fixes the order).

    Returns:
        `(examples, report)`: the report is the manifest's `LoadReport`
        (records, skipped and padded files), None for built-in or TFDS data.
    """
    from mmzoo import data

    if synthetic_name(data_spec, "shapes_captions"):
        if image_shape[0] != image_shape[1]:
            raise ValueError(f"Synthetic images are square. Received: image_shape={image_shape}")
        return data.load_synthetic(
            "shapes_captions", split, num_examples=num_examples, seed=seed,
            image_size=image_shape[0],
        ), None
    report = None
    if data_spec.startswith("tfds:"):
        examples = data.load_tfds(
            data_spec[len("tfds:"):], split=split, image_shape=image_shape[:2], download=False,
            input_context=input_context,
        )
    elif data_spec.startswith("tfrecord:"):  # `mmzoo data pack` shards
        examples, report = data.load_tfrecords(
            data_spec[len("tfrecord:"):], image_shape=image_shape[:2], strict=strict,
            kind="image_caption", input_context=input_context,
            shuffle_buffer=shuffle_buffer, seed=seed,
        )
        examples = checked_examples(examples, report)
    else:
        check_data_path(data_spec)
        examples, report = data.load_image_caption_files(
            data_spec, image_shape=image_shape[:2], strict=strict
        )
        examples = checked_examples(examples, report)
    return (examples.take(num_examples) if num_examples else examples), report


def fit(trainer, dataset, steps, checkpoint_every, verbose, model_dir, report=None):
    """`trainer.fit` with the CLI's logging cadence; saves `model.keras` on the chief.

    A manifest's `report` is printed at the end: files that failed to decode
    are only found while the dataset is read. `report` may be a function that
    returns it (the report of a dataset function's share, made inside `fit`).
    """
    from mmzoo import training

    history = trainer.fit(
        dataset, steps=steps, checkpoint_every=checkpoint_every,
        log_every=max(1, min(100, steps // 10)), verbose=verbose,
    )
    if training.is_chief(trainer.strategy):
        training.save_model(trainer.model, os.path.join(model_dir, "model.keras"))
        if callable(report):
            report = report()
        if report is not None:
            print(report.summary(), file=sys.stderr)
    return history
