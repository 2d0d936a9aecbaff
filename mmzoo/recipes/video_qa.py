"""`mmzoo train|evaluate|export video_qa`: the video question answering recipe."""

from mmzoo.recipes import _common
from mmzoo.recipes import recipe


def _tower(preset, config):
    if config.get("answer_mode", "classify") != "classify":
        raise ValueError(
            "`mmzoo train video_qa` trains classify-mode presets (answers from the "
            "preset's answer vocabulary); train generate mode from Python as in "
            f"notebooks/02_video_qa.ipynb. Received: --preset {preset!r}"
        )
    return config["video_encoder"]


def load_video_qa_examples(data_spec, split, video_shape, num_examples=None, seed=0,
                           strict=False, input_context=None, shuffle_buffer=None):
    """Unbatched `videos` / `questions` / `answers` / `question_types` examples.

    Args:
        data_spec: `synthetic` (mmzoo's `shapes_video_qa`), the path of a
            JSONL/CSV manifest of `video_path, question, answer[,
            question_type]` rows, or `tfrecord:DIR` (such a manifest packed
            by `mmzoo data pack`).
        split: str. Split of the synthetic data (a manifest is one split).
        video_shape: `(num_frames, height, width, channels)`, or the
            `(height, width, channels)` of an image tower (a one-frame video).
        num_examples: int or None.
        seed: int.
        strict: bool. Stop at the first bad record of a manifest.

    Returns:
        `(examples, report)`: the manifest's `LoadReport`, or None for the
        built-in data.
    """
    from mmzoo import data

    if len(video_shape) == 3:
        video_shape = (1,) + tuple(video_shape)
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
            "`--data` must be `synthetic`, `tfrecord:DIR` or a path to a video QA manifest "
            f"(.jsonl or .csv). Received: --data {data_spec!r}"
        )
    if data_spec.startswith("tfrecord:"):  # `mmzoo data pack` shards
        examples, report = data.load_tfrecords(
            data_spec[len("tfrecord:"):], image_shape=(height, width), num_frames=num_frames,
            strict=strict, kind="video_qa", input_context=input_context,
            shuffle_buffer=shuffle_buffer, seed=seed,
        )
    else:
        _common.check_data_path(data_spec)
        examples, report = data.load_video_qa_files(
            data_spec, num_frames=num_frames, image_shape=(height, width), strict=strict
        )
    examples = _common.checked_examples(examples, report)
    return (examples.take(num_examples) if num_examples else examples), report


def _build_model(preset, tower, tokenizer, text_encoder=None):
    from mmzoo import models
    from mmzoo import presets

    # The preset's question tower with the run's vocabulary (or a keras-hub
    # text preset at its length); the model sets its preprocessor's question
    # length and video converter.
    preprocessor = models.VideoQAPreprocessor(tokenizer)
    question_encoder = (
        {"vocabulary_size": preprocessor.vocabulary_size} if text_encoder is None
        else _common.keras_hub_text_tower(
            text_encoder, presets.get_preset_config(preset)["question_encoder"]
        )
    )
    return presets.build_from_preset(
        preset, video_encoder=tower, question_encoder=question_encoder,
        preprocessor=preprocessor,
    )


def _pipeline(examples, model, batch_size, seed, deterministic, report, fold_answer_case,
              **pipeline_options):
    from mmzoo import data
    from mmzoo import models

    # Answers outside the model's answer vocabulary are dropped and counted
    # in the manifest's report.
    dataset = data.video_qa_pipeline(
        examples, model, batch_size=batch_size, seed=seed, deterministic=deterministic,
        answer_vocabulary=list(model.answer_vocabulary), fold_case=fold_answer_case,
        report=report, **pipeline_options,
    )
    return dataset.map(models.video_qa_training_split)


def _loss(model):
    from mmzoo import losses

    return losses.SoftTargetCrossEntropy()


def _score(model, examples, batch_size):
    import numpy as np

    from mmzoo import evaluation

    videos = np.stack([example["videos"] for example in examples])
    questions = [_common.text(example["questions"]) for example in examples]
    answers = [_common.text(example["answers"]) for example in examples]
    types = [_common.text(example["question_types"]) or "all" for example in examples]
    predictions = model.answer(videos, questions, batch_size=batch_size)
    scores = evaluation.vqa_metrics(predictions, answers, question_types=types)
    outputs = {
        "questions": questions, "answers": answers, "question_types": types,
        "predictions": predictions,
    }
    return scores, outputs


def _export(model, output, overwrite, **pixels):
    from mmzoo import export

    export.export_video_qa_model(model, output, overwrite=overwrite, **pixels)


RECIPE = recipe.Recipe(
    family="video_qa",
    model_class="VideoQAModel",
    tower=_tower,
    texts="questions",
    load_examples=load_video_qa_examples,
    build_model=_build_model,
    pipeline=_pipeline,
    loss=_loss,
    score=_score,
    export=_export,
    options={
        "train": {
            "batch_size": 32, "fold_answer_case": False, "text_encoder": None,
            "video_encoder": None,
        },
        "evaluate": {"batch_size": 64},
    },
)


@recipe.with_options(RECIPE, "train")
def train_video_qa(*args, **options):
    """Trains a classify-mode video QA preset with `mmzoo.training.Trainer`.

    The options are those of `mmzoo.recipes.train` (`help()` shows their
    defaults). Answers outside the preset's answer vocabulary are dropped,
    logged and counted (in the manifest's report, printed at the end);
    `fold_answer_case=True` matches them case-insensitively ("Red" as
    "red").

    Returns:
        the `Trainer.fit` history.
    """
    return recipe.train(RECIPE, *args, **options)


@recipe.with_options(RECIPE, "evaluate")
def evaluate_video_qa(*args, **options):
    """Answers `split` and scores it (exact match and VQA accuracy by question type).

    The options are those of `mmzoo.recipes.evaluate`. Writes
    `eval_<split>.json` in the run directory.

    Returns:
        the scores dict. `mmzoo.recipes.evaluate_with_outputs` also returns
        `{"questions", "answers", "question_types", "predictions"}` (lists of
        str).
    """
    return recipe.evaluate(RECIPE, *args, **options)


@recipe.with_options(RECIPE, "export")
def export_video_qa(*args, **options):
    """Writes the run's `answer` SavedModel; returns its path.

    The options are those of `mmzoo.recipes.export`
    (`mmzoo.export.export_video_qa_model`).
    """
    return recipe.export(RECIPE, *args, **options)
