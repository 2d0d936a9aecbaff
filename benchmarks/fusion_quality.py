"""Does fusion beat each modality alone? Fusion classifiers on `shapes_classification`.

Trains the four fusion types (early, late, attention, gated) on image + text,
and image-only and text-only classifiers, on the built-in
`shapes_classification` dataset, where the label ("is there a red shape?" ->
yes/no) depends on both the image and the question: each modality alone is at
chance by construction. Each model trains with `model.fit` (XLA) within a
time budget (`--max-minutes` of wall-clock or, with `--clock cpu`, CPU time),
then is scored on the test split (and on `test_unseen`, whose images hold
colour/shape pairs never seen in training) with
`mmzoo.evaluation.classification_report`: accuracy and macro F1, and accuracy
on colour and on shape questions.

    python benchmarks/fusion_quality.py --clock cpu --max-minutes 10

Prints a table and appends it, with the command, to benchmarks/README.md.
"""

import argparse
import os

from _common import TimeBudget
from _common import add_budget_arguments
from _common import record

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("early", "late", "attention", "gated", "image_only", "text_only")
# Adam's rate per fusion head. Attention fusion (also the head of the
# one-modality rows) needs a Transformer's rate: with 1e-3 it learned the
# colour questions but stayed at chance on the shape questions for 18,000
# steps; early fusion learns faster at 1e-3 than at 3e-4 (benchmarks/README.md).
LEARNING_RATES = {"attention": 3e-4, "image_only": 3e-4, "text_only": 3e-4}
DEFAULT_LEARNING_RATE = 1e-3

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--models", default=",".join(MODELS), help=f"subset of {MODELS}")
PARSER.add_argument("--preset", default="fusion_classifier_tiny")
PARSER.add_argument(
    "--image-encoder", default=None,
    help="image tower preset (default: the fusion preset's), built at --image-size",
)
PARSER.add_argument("--image-size", type=int, default=64)
PARSER.add_argument("--patch-size", type=int, default=None, help="ViT towers only")
PARSER.add_argument("--width", type=int, default=64, help="hidden_dim of the fusion and of "
                    "the Transformer towers")
PARSER.add_argument("--train-examples", type=int, default=20000)
PARSER.add_argument("--test-examples", type=int, default=500)
PARSER.add_argument("--batch-size", type=int, default=64)
PARSER.add_argument(
    "--learning-rate", type=float, default=None,
    help="Adam's rate for every model (default: each head's own, LEARNING_RATES)",
)
PARSER.add_argument("--max-steps", type=int, default=8000)
add_budget_arguments(PARSER, 10.0, "training budget per model")
PARSER.add_argument("--vocabulary-size", type=int, default=128)
PARSER.add_argument("--seed", type=int, default=0)
PARSER.add_argument("--eval-every", type=int, default=0, help="print test accuracy per "
                    "question type every this many steps (0: never; counts in the budget)")
PARSER.add_argument("--no-record", action="store_true", help="do not append to README.md")


def build_tower(encoder, **overrides):
    """The encoder preset with those of `overrides` its builder takes (and not None)."""
    import importlib
    import inspect

    import mmzoo

    name, nested = mmzoo.presets.encoder_spec(encoder)
    builder = mmzoo.presets.get_preset(name).builder
    if isinstance(builder, str):  # "module:function", as mmzoo's own presets name it
        module, _, function = builder.partition(":")
        builder = getattr(importlib.import_module(module), function)
    names = inspect.signature(builder).parameters
    overrides = {k: v for k, v in overrides.items() if k in names and v is not None}
    return mmzoo.presets.build_from_preset(name, **{**nested, **overrides})


def build_model(args, name, tokenizer):
    import mmzoo

    config = mmzoo.presets.get_preset_config(args.preset)
    image_shape = (args.image_size, args.image_size, 3)
    widths = {"hidden_dim": args.width, "intermediate_dim": 2 * args.width}
    encoders = {}
    if name != "text_only":
        encoders["image"] = build_tower(
            args.image_encoder or config["encoders"]["image"], image_shape=image_shape,
            patch_size=args.patch_size, **widths,
        )
    if name != "image_only":
        encoders["text"] = build_tower(
            config["encoders"]["text"], vocabulary_size=tokenizer.vocabulary_size,
            sequence_length=tokenizer.sequence_length, **widths,
        )
    # One-modality baselines get the strongest head (co-attention over their
    # own tokens + attention pooling), so their result is not the head's fault.
    fusion = "attention" if name.endswith("_only") else name
    return mmzoo.presets.build_from_preset(
        args.preset, encoders=encoders, fusion=fusion, **widths
    )


def learning_rate(args, name):
    if args.learning_rate is not None:
        return args.learning_rate
    return LEARNING_RATES.get(name, DEFAULT_LEARNING_RATE)


def question_types(examples):
    """"colour" or "shape" for each example's question, in dataset order."""
    from mmzoo.data.synthetic import shapes

    colours = set(shapes.COLORS)
    return [
        "colour" if colours & set(text.decode().rstrip("?").split()) else "shape"
        for text in examples.map(lambda x: x["texts"]).as_numpy_iterator()
    ]


def evaluate(model, dataset, class_names, types):
    """`classification_report` of the split, and its accuracy per question type."""
    import numpy as np

    import mmzoo

    y_true, y_pred = [], []
    for x, y, *weight in dataset:
        # Evaluation batches are padded to a full batch; the weight (the
        # pipeline's `example_mask`) is 0 on the padding.
        real = np.asarray(weight[0]) > 0 if weight else slice(None)
        logits = model.predict_on_batch(x)
        y_true.append(np.asarray(y)[real])
        y_pred.append(np.argmax(logits, axis=-1)[real])
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    report = mmzoo.evaluation.classification_report(
        y_true, y_pred, labels=list(range(len(class_names))), target_names=list(class_names),
    )
    types = np.array(types[: len(y_true)])
    by_type = {
        t: float(np.mean(y_true[types == t] == y_pred[types == t])) for t in sorted(set(types))
    }
    return report, by_type


def main(args):
    import keras

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
    sequence_length = mmzoo.presets.encoder_config(
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
        return ds.map(lambda x, y, *w: ({k: v for k, v in x.items() if k in keys}, y, *w))

    splits = {"test": load("test", args.test_examples),
              "test_unseen": load("test_unseen", args.test_examples)}
    types = {split: question_types(examples) for split, examples in splits.items()}
    class_names = data.CLASSIFICATION_CLASS_NAMES
    rows = []
    for name in names:
        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed)
        model = build_model(args, name, tokenizer)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(args, name)),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=True,
        )
        budget = TimeBudget(
            args.max_minutes, args.clock, eval_every=args.eval_every,
            evaluate=lambda: evaluate(
                model, pipeline(splits["test"], model, False), class_names, types["test"]
            )[1],
        )
        history = model.fit(
            pipeline(train_examples, model, True), steps_per_epoch=args.max_steps, epochs=1,
            verbose=2, callbacks=[budget.callback],
        )
        steps = int(model.optimizer.iterations.numpy())
        reports, by_types = {}, {}
        for split, examples in splits.items():
            reports[split], by_types[split] = evaluate(
                model, pipeline(examples, model, False), class_names, types[split]
            )
        by_type = by_types["test"]
        row = (
            name, "+".join(model.modalities), model.fusion,
            f"{learning_rate(args, name):g}", f"{model.count_params():,}",
            f"{steps} x {args.batch_size}", f"{budget.train_seconds / 60:.1f}",
            f"{budget.cpu_seconds / 60:.1f}", f"{history.history['accuracy'][-1]:.3f}",
            f"{reports['test']['accuracy']:.3f}", f"{by_type['colour']:.3f}",
            f"{by_type['shape']:.3f}", f"{reports['test']['macro avg']['f1-score']:.3f}",
            f"{reports['test_unseen']['accuracy']:.3f}",
        )
        print(mmzoo.evaluation.format_classification_report(reports["test"], digits=3))
        print(f"test accuracy by question type: {by_type}", flush=True)
        print(" | ".join(row), flush=True)
        rows.append(row)

    header = ("model", "modalities", "fusion head", "Adam rate", "parameters", "steps x batch",
              "train min (wall)", "train CPU min", "train acc (last epoch)", "test acc",
              "test acc, colour questions", "test acc, shape questions", "test macro F1",
              "test_unseen acc")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print("\n" + table)
    if not args.no_record:
        load_average = os.getloadavg()[0]
        # Models are often run separately (each with its own budget): one
        # section per model set and seed.
        record(
            f"Fusion classifier quality: {args.models}"
            + (f", seed {args.seed}" if args.seed else ""),
            f"`{args.preset}` fusion at width {args.width}, image tower "
            f"`{args.image_encoder or mmzoo.presets.get_preset_config(args.preset)['encoders']['image']}` "
            f"at {args.image_size}x{args.image_size}"
            + (f" (patch {args.patch_size})" if args.patch_size else "")
            + f", text Transformer, trained from scratch on {args.train_examples} "
            f"`shapes_classification` examples, Adam at "
            + ", ".join(f"{learning_rate(args, n):g} ({n})" for n in names)
            + ", batch "
            f"{args.batch_size}, at most {args.max_steps} steps or "
            f"{args.max_minutes} {args.clock} minutes per model (after compilation); scored on {args.test_examples} test "
            "and test_unseen examples with `mmzoo.evaluation.classification_report`. "
            "One-modality rows use the attention head over their own tokens. 1-minute "
            f"load average at the end: {load_average:.1f}.\n\n"
            + table,
        )
    return rows


if __name__ == "__main__":
    main(PARSER.parse_args())
