"""Does the tiny captioner learn? Trains on `shapes_captions`, reports BLEU / CIDEr-D.

Trains an `image_captioning_*` preset with `model.fit` (XLA) on the built-in
synthetic captions within a wall-clock budget, then captions the test split
with greedy decoding and scores it against all reference captions.

    python benchmarks/captioning_quality.py --max-minutes 10

Prints a table and appends it, with the command, to benchmarks/README.md.
"""

import argparse
import os
import time

from _common import TimeBudget
from _common import add_budget_arguments
from _common import record

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--preset", default="image_captioning_tiny")
PARSER.add_argument("--image-size", type=int, default=32)
PARSER.add_argument("--train-examples", type=int, default=20000)
PARSER.add_argument("--test-examples", type=int, default=500)
PARSER.add_argument("--batch-size", type=int, default=64)
PARSER.add_argument("--learning-rate", type=float, default=2e-3)
PARSER.add_argument("--max-steps", type=int, default=6000)
add_budget_arguments(PARSER, 10.0)
PARSER.add_argument("--vocabulary-size", type=int, default=128)
PARSER.add_argument("--seed", type=int, default=0)
PARSER.add_argument("--no-record", action="store_true", help="do not append to README.md")


def main(args):
    import keras
    import numpy as np
    import mmzoo
    from mmzoo import data

    keras.utils.set_random_seed(args.seed)
    train_examples = data.load_synthetic(
        "shapes_captions", "train", num_examples=args.train_examples,
        seed=args.seed, image_size=args.image_size,
    )
    config = mmzoo.presets.get_preset_config(args.preset)
    vocabulary = data.train_word_piece_vocabulary(
        train_examples.map(lambda x: x["captions"]), vocabulary_size=args.vocabulary_size,
    )
    # The preprocessor packs captions to the model's length + 1 and makes
    # `generate` return strings.
    preprocessor = mmzoo.models.ImageCaptioningPreprocessor(
        data.TextTokenizer(vocabulary), image_converter=(args.image_size, args.image_size),
    )
    image_shape = (args.image_size, args.image_size, 3)
    encoder = mmzoo.presets.build_from_preset(config["image_encoder"], image_shape=image_shape)
    model = mmzoo.presets.build_from_preset(
        args.preset, image_encoder=encoder, vocabulary_size=len(vocabulary),
        preprocessor=preprocessor,
    )
    train = data.captioning_pipeline(
        train_examples, model, batch_size=args.batch_size, seed=args.seed
    ).map(mmzoo.models.teacher_forcing_split)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, args.max_steps, warmup_target=args.learning_rate, warmup_steps=200,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01),
        loss=mmzoo.losses.MaskedSequenceCrossEntropy(),
        metrics=[mmzoo.evaluation.MaskedTokenAccuracy()],
        jit_compile=True,
    )
    start = time.perf_counter()
    history = model.fit(
        train, steps_per_epoch=args.max_steps, epochs=1, verbose=2,
        callbacks=[TimeBudget(args.max_minutes, args.clock).callback],
    )
    train_minutes = (time.perf_counter() - start) / 60
    steps_done = model.optimizer.iterations.numpy()

    test = data.load_synthetic(
        "shapes_captions", "test", num_examples=args.test_examples,
        seed=args.seed, image_size=args.image_size,
    )
    images, references = [], []
    for example in test.as_numpy_iterator():
        images.append(example["images"])
        references.append([c.decode() for c in example["captions"]])
    images = np.stack(images)
    start = time.perf_counter()
    predictions = model.generate(images, method="greedy", batch_size=100)
    generate_seconds = time.perf_counter() - start
    scores = mmzoo.evaluation.caption_metrics(predictions, references)
    rows = [
        ("preset", args.preset),
        ("image size", f"{args.image_size}x{args.image_size}"),
        ("parameters", f"{model.count_params():,}"),
        ("training steps x batch", f"{steps_done} x {args.batch_size}"),
        ("training minutes", f"{train_minutes:.1f}"),
        ("final train loss", f"{history.history['loss'][-1]:.3f}"),
        ("test images", str(len(images))),
    ] + [(k, f"{v:.3f}") for k, v in scores.items()]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    print("\n| metric | value |\n| --- | --- |\n" + table)
    print("\nexamples:")
    for p, r in list(zip(predictions, references))[:5]:
        print(f"  predicted: {p!r}\n  reference: {r[0]!r}")
    print(f"greedy captioning of {len(images)} images took {generate_seconds:.1f} s")
    if not args.no_record:
        record(
            "Captioning quality",
            "Greedy decoding on the `shapes_captions` test split, scored against all "
            "5 reference captions per image.\n\n| metric | value |\n| --- | --- |\n" + table,
        )
    return scores


if __name__ == "__main__":
    main(PARSER.parse_args())
