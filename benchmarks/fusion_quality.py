"""Does fusion beat each modality alone? Fusion classifiers on `shapes_classification`.

Trains the four fusion types (early, late, attention, gated) on image + text,
and image-only and text-only classifiers, on the built-in
`shapes_classification` dataset, where the label ("is there a red shape?" ->
yes/no) depends on both the image and the question: each modality alone is at
chance by construction. Each model trains with `model.fit` (XLA) within a
wall-clock budget, then is scored on the test split (and on `test_unseen`,
whose images hold colour/shape pairs never seen in training) with
`mmzoo.evaluation.classification_report`: accuracy and macro F1.

    python benchmarks/fusion_quality.py --max-minutes 3

Prints a table and appends it, with the command, to benchmarks/README.md.
"""

import argparse
import os
import time

from _common import record

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("early", "late", "attention", "gated", "image_only", "text_only")

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--models", default=",".join(MODELS), help=f"subset of {MODELS}")
PARSER.add_argument("--preset", default="fusion_classifier_tiny")
PARSER.add_argument("--image-size", type=int, default=64)
PARSER.add_argument("--patch-size", type=int, default=16)
PARSER.add_argument("--width", type=int, default=64, help="hidden_dim of towers and fusion")
PARSER.add_argument("--train-examples", type=int, default=20000)
PARSER.add_argument("--test-examples", type=int, default=500)
PARSER.add_argument("--batch-size", type=int, default=64)
PARSER.add_argument("--learning-rate", type=float, default=1e-3)
PARSER.add_argument("--max-steps", type=int, default=8000)
PARSER.add_argument("--max-minutes", type=float, default=3.0, help="training budget per model")
PARSER.add_argument("--vocabulary-size", type=int, default=128)
PARSER.add_argument("--seed", type=int, default=0)
PARSER.add_argument("--no-record", action="store_true", help="do not append to README.md")


class TimeBudget:
    """Keras callback stopping training once `minutes` have passed."""

    def __init__(self, minutes):
        import keras

        class _Callback(keras.callbacks.Callback):
            def on_train_begin(cb, logs=None):
                cb.start = time.perf_counter()

            def on_train_batch_end(cb, batch, logs=None):
                if time.perf_counter() - cb.start > minutes * 60:
                    cb.model.stop_training = True

        self.callback = _Callback()


def build_model(args, name, tokenizer):
    import mmzoo

    config = mmzoo.presets.get_preset_config(args.preset)
    image_shape = (args.image_size, args.image_size, 3)
    widths = {"hidden_dim": args.width, "intermediate_dim": 2 * args.width}
    encoders = {}
    if name != "text_only":
        encoders["image"] = mmzoo.presets.build_from_preset(
            config["encoders"]["image"], image_shape=image_shape, patch_size=args.patch_size,
            **widths,
        )
    if name != "image_only":
        encoders["text"] = mmzoo.presets.build_from_preset(
            config["encoders"]["text"], vocabulary_size=tokenizer.vocabulary_size,
            sequence_length=tokenizer.sequence_length, **widths,
        )
    # One-modality baselines get the strongest head (co-attention over their
    # own tokens + attention pooling), so their result is not the head's fault.
    fusion = "attention" if name.endswith("_only") else name
    return mmzoo.presets.build_from_preset(
        args.preset, encoders=encoders, fusion=fusion, **widths
    )


def evaluate(model, dataset, class_names):
    import numpy as np

    import mmzoo

    y_true, y_pred = [], []
    for x, y in dataset:
        logits = model.predict_on_batch(x)
        y_true.append(np.asarray(y))
        y_pred.append(np.argmax(logits, axis=-1))
    report = mmzoo.evaluation.classification_report(
        np.concatenate(y_true), np.concatenate(y_pred), labels=list(range(len(class_names))),
        target_names=list(class_names),
    )
    return report


def main(args):
    import keras
    import tensorflow as tf

    import mmzoo
    from mmzoo import data

    names = args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise ValueError(f"Unknown models {unknown}; choose from {list(MODELS)}")
    load = lambda split, n: data.load_synthetic(  # noqa: E731
        "shapes_classification", split, num_examples=n, seed=args.seed,
        image_size=args.image_size,
    ).cache()
    train_examples = load("train", args.train_examples)
    vocabulary = data.train_word_piece_vocabulary(
        train_examples.map(lambda x: x["texts"]), vocabulary_size=args.vocabulary_size,
    )
    sequence_length = mmzoo.presets.get_preset_config(
        mmzoo.presets.get_preset_config(args.preset)["encoders"]["text"]
    )["sequence_length"]
    tokenizer = data.TextTokenizer(vocabulary, sequence_length=sequence_length)

    def pipeline(examples, model, training):
        keys = set(model.input)
        ds = data.fusion_pipeline(
            examples, tokenizer, batch_size=args.batch_size if training else 100,
            repeat=training, shuffle_buffer=4096 if training else None, seed=args.seed,
            deterministic=not training,
        ).map(mmzoo.models.classification_split)
        return ds.map(lambda x, y: ({k: v for k, v in x.items() if k in keys}, y))

    splits = {"test": load("test", args.test_examples),
              "test_unseen": load("test_unseen", args.test_examples)}
    class_names = data.CLASSIFICATION_CLASS_NAMES
    rows = []
    for name in names:
        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed)
        model = build_model(args, name, tokenizer)
        model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=True,
        )
        start = time.perf_counter()
        history = model.fit(
            pipeline(train_examples, model, True), steps_per_epoch=args.max_steps, epochs=1,
            verbose=2, callbacks=[TimeBudget(args.max_minutes).callback],
        )
        minutes = (time.perf_counter() - start) / 60
        steps = int(model.optimizer.iterations.numpy())
        reports = {
            split: evaluate(model, pipeline(examples, model, False), class_names)
            for split, examples in splits.items()
        }
        row = (
            name, "+".join(model.modalities), model.fusion, f"{model.count_params():,}",
            f"{steps} x {args.batch_size}", f"{minutes:.1f}",
            f"{history.history['accuracy'][-1]:.3f}",
            f"{reports['test']['accuracy']:.3f}", f"{reports['test']['macro avg']['f1-score']:.3f}",
            f"{reports['test_unseen']['accuracy']:.3f}",
        )
        print(mmzoo.evaluation.format_classification_report(reports["test"], digits=3))
        print(" | ".join(row), flush=True)
        rows.append(row)

    header = ("model", "modalities", "fusion head", "parameters", "steps x batch",
              "train min", "train acc (last epoch)", "test acc", "test macro F1",
              "test_unseen acc")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print("\n" + table)
    if not args.no_record:
        load_average = os.getloadavg()[0]
        record(
            "Fusion classifier quality",
            f"`{args.preset}` towers and fusion at width {args.width} (ViT patch "
            f"{args.patch_size} at {args.image_size}x{args.image_size}, text "
            f"Transformer), trained from scratch on {args.train_examples} "
            f"`shapes_classification` examples, Adam {args.learning_rate}, batch "
            f"{args.batch_size}, at most {args.max_steps} steps or "
            f"{args.max_minutes} minutes per model; scored on {args.test_examples} test "
            "and test_unseen examples with `mmzoo.evaluation.classification_report`. "
            "One-modality rows use the attention head over their own tokens. The "
            f"machine was shared with other jobs (1-minute load average {load_average:.1f} "
            "at the end), so step counts within the time budget vary from run to run.\n\n"
            + table,
        )
    return rows


if __name__ == "__main__":
    main(PARSER.parse_args())
