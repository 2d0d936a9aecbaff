"""`mmzoo train|evaluate|export video_qa`: the video question answering recipe."""

import os

from mmzoo.recipes import _common

FAMILY = "video_qa"


def _video_shape(config):
    shape = _common.input_shape(config["video_encoder"])
    return shape if len(shape) == 4 else (1,) + shape  # an image is a one-frame video


def load_video_qa_examples(data_spec, split, video_shape, num_examples=None, seed=0,
                           strict=False):
    """Unbatched `videos` / `questions` / `answers` / `question_types` examples.

    Args:
        data_spec: `synthetic` (mmzoo's `shapes_video_qa`) or the path of a
            JSONL/CSV manifest of `video_path, question, answer[,
            question_type]` rows.
        split: str. Split of the synthetic data (a manifest is one split).
        video_shape: `(num_frames, height, width, channels)`.
        num_examples: int or None.
        seed: int.
        strict: bool. Stop at the first bad record of a manifest.

    Returns:
        `(examples, report)`: the manifest's `LoadReport`, or None for the
        built-in data.
    """
    from mmzoo import data

    num_frames, height, width = video_shape[:3]
    if _common.synthetic_name(data_spec, "shapes_video_qa"):
        if height != width or not 8 <= num_frames <= 16:
            raise ValueError(
                "The synthetic `shapes_video_qa` clips are square with 8-16 frames; "
                f"this preset takes {num_frames} frames of {height}x{width}. Train it on "
                f"a manifest of your clips. Received: video shape {tuple(video_shape)}"
            )
        return data.load_synthetic(
            "shapes_video_qa", split, num_examples=num_examples, seed=seed,
            image_size=height, num_frames=num_frames,
        ), None
    if data_spec.startswith("tfds:"):
        raise ValueError(
            "`--data` must be `synthetic` or a path to a video QA manifest (.jsonl or .csv). "
            f"Received: --data {data_spec!r}"
        )
    _common.check_data_path(data_spec)
    examples, report = data.load_video_qa_files(
        data_spec, num_frames=num_frames, image_shape=(height, width), strict=strict
    )
    examples = _common.checked_examples(examples, report)
    return (examples.take(num_examples) if num_examples else examples), report


def train_video_qa(
    preset="video_qa_tiny",
    data_spec="synthetic",
    steps=2000,
    model_dir="runs/video_qa",
    strategy="auto",
    batch_size=32,
    learning_rate=1e-3,
    vocabulary_size=128,
    num_examples=20000,
    seed=0,
    checkpoint_every=500,
    verbose=1,
    deterministic=True,
    strict=False,
    fold_answer_case=False,
):
    """Trains a classify-mode video QA preset with `mmzoo.training.Trainer`.

    `deterministic` and `strict` are as in `train_image_captioning`. Answers
    outside the preset's answer vocabulary are dropped, logged and counted
    (in the manifest's report, printed at the end); `fold_answer_case=True`
    matches them case-insensitively ("Red" as "red").

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
    if config.get("answer_mode", "classify") != "classify":
        raise ValueError(
            "`mmzoo train video_qa` trains classify-mode presets (answers from the "
            "preset's answer vocabulary); train generate mode from Python as in "
            f"notebooks/02_video_qa.ipynb. Received: --preset {preset!r}"
        )
    strategy = training.get_strategy(strategy)
    keras.utils.set_random_seed(seed)
    with _common.run_directory(model_dir, FAMILY, preset, batch_size=batch_size, seed=seed):
        examples, report = load_video_qa_examples(
            data_spec, "train", _video_shape(config), num_examples, seed, strict=strict
        )
        tokenizer = _common.tokenizer_for(
            model_dir, examples.map(lambda x: x["questions"]),
            _common.text_length(config["question_encoder"]), vocabulary_size,
        )
        dataset = data.video_qa_pipeline(
            examples, tokenizer, batch_size=batch_size, seed=seed, deterministic=deterministic,
            answer_vocabulary=list(config["answer_vocabulary"]), fold_case=fold_answer_case,
            report=report,
        ).map(mmzoo.models.video_qa_training_split)
        schedule = training.warmup_cosine_decay(
            learning_rate, total_steps=steps, warmup_steps=min(200, steps // 10)
        )

        def model_fn():
            # The preset's question tower, with the run's vocabulary.
            return presets.build_from_preset(
                preset, question_encoder={"vocabulary_size": tokenizer.vocabulary_size}
            )

        trainer = training.Trainer(
            model_fn=model_fn,
            loss=mmzoo.losses.SoftTargetCrossEntropy(),
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01, global_clipnorm=1.0),
            strategy=strategy,
            model_dir=model_dir,
            deterministic=deterministic,
        )
        return _common.fit(
            trainer, dataset, steps, checkpoint_every, verbose, model_dir, report
        )


def evaluate_video_qa(model_dir, data_spec="synthetic", split="test", num_examples=500,
                      batch_size=64, strict=False):
    """Answers `split` and scores it (exact match and VQA accuracy by question type).

    Writes `eval_<split>.json` in the run directory.

    Returns:
        `(scores, predictions, references)`.
    """
    import numpy as np

    from mmzoo import evaluation

    model, tokenizer = _common.load_run(model_dir, FAMILY)
    shape = tuple(model.video_encoder.inputs[0].shape[1:])
    shape = shape if len(shape) == 4 else (1,) + shape
    examples, _ = load_video_qa_examples(data_spec, split, shape, num_examples, strict=strict)
    videos, questions, answers, types = [], [], [], []
    for example in examples.as_numpy_iterator():
        videos.append(example["videos"])
        questions.append(example["questions"].decode("utf-8", "replace"))
        answers.append(example["answers"].decode("utf-8", "replace"))
        types.append(example["question_types"].decode("utf-8", "replace") or "all")
    if not videos:
        raise ValueError(f"No examples to evaluate. Received: --data {data_spec!r} --split {split!r}")
    predictions = model.answer(np.stack(videos), questions, batch_size=batch_size, tokenizer=tokenizer)
    scores = evaluation.vqa_metrics(predictions, answers, question_types=types)
    _common.write_json(os.path.join(model_dir, f"eval_{split}.json"), scores)
    return scores, predictions, answers


def export_video_qa(model_dir, output=None, overwrite=False, max_image_pixels=None):
    """Writes the run's `answer` SavedModel; returns its path.

    `overwrite` and `max_image_pixels` (None: the exporter's default) are
    those of `mmzoo.export.export_video_qa_model`.
    """
    from mmzoo import export

    model, tokenizer = _common.load_run(model_dir, FAMILY)
    output = output or os.path.join(model_dir, "saved_model")
    pixels = {} if max_image_pixels is None else {"max_image_pixels": max_image_pixels}
    export.export_video_qa_model(model, tokenizer, output, overwrite=overwrite, **pixels)
    return output
