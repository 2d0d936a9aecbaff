"""Fine-tuning a pretrained keras-hub CLIP preset: untuned vs locked image tower (LiT) vs full.

A small keras-hub CLIP (random weights) is pretrained with mmzoo on the
synthetic `shapes_captions` (one shape or two, captions such as "a large
blue circle to the left of a small red square"), written back into its
`CLIPBackbone` and saved as a keras-hub preset (`save_to_preset`). That
preset is then loaded with `mmzoo.models.DualEncoder.from_keras_hub` and
fine-tuned for the same number of steps, at the same rate, in two modes:
LiT (`freeze_image_encoder=True`) and full fine-tuning, on a shifted task:
the images of `shapes_classification` (one to three shapes, one size, no
layout words) with captions in another style, listing each shape as
"circle in blue", joined by "and", in random order.

Reported for the pretrained model and each mode, on held-out examples:
text-to-image and image-to-text recall@1 on the shifted task (one caption
per image, among `--eval-examples` images), the same on `shapes_captions`
(what the pretraining taught, to see what fine-tuning keeps), and
zero-shot shape accuracy on single-shape images of the shifted task with
the pretraining's prompt style ("a {shape}", "a small {shape}", "a large
{shape}").
"""

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import record  # noqa: E402

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--pretrain-steps", type=int, default=3000)
PARSER.add_argument("--tune-steps", type=int, default=1000)
PARSER.add_argument("--batch-size", type=int, default=64)
PARSER.add_argument("--learning-rate", type=float, default=1e-3, help="pretraining peak rate")
PARSER.add_argument("--tune-learning-rate", type=float, default=3e-4,
                    help="fine-tuning peak rate, both modes")
PARSER.add_argument("--train-examples", type=int, default=8000)
PARSER.add_argument("--eval-examples", type=int, default=500)
PARSER.add_argument("--hidden-dim", type=int, default=64)
PARSER.add_argument("--seed", type=int, default=0)
PARSER.add_argument("--no-record", action="store_true")


def shifted_caption(scene, index, rng, shapes, colors):
    """ "circle in blue and square in red", the shapes in random order."""
    count = int(scene["num_shapes"][index])
    parts = [
        f"{shapes[scene['shapes'][index, k]]} in {colors[scene['colors'][index, k]]}"
        for k in range(count)
    ]
    rng.shuffle(parts)
    return " and ".join(parts)


def shifted_data(num_examples, split, seed):
    import numpy as np

    from mmzoo import data

    raw = data.generate_shapes_classification(num_examples, split=split, seed=seed, image_size=32)
    rng = np.random.default_rng(seed)
    captions = [
        shifted_caption(raw["scene"], i, rng, data.SHAPES, data.COLORS)
        for i in range(num_examples)
    ]
    return raw["images"], captions, raw["scene"]


def scores(model, shifted_test, captions_test):
    import numpy as np

    import mmzoo

    results = {}
    for name, (images, captions) in (("shifted", shifted_test[:2]), ("captions", captions_test)):
        metrics = mmzoo.evaluation.retrieval_metrics(
            model.encode_images(images, batch_size=250),
            model.encode_text(captions, batch_size=250), ks=(1,),
        )
        results[f"{name} T->I R@1"] = float(metrics["text_to_image/recall@1"])
        results[f"{name} I->T R@1"] = float(metrics["image_to_text/recall@1"])
    images, _, scene = shifted_test
    single = scene["num_shapes"] == 1
    classifier = mmzoo.evaluation.zero_shot_classifier(
        model.encode_text, list(mmzoo.data.SHAPES),
        templates=["a {}", "a small {}", "a large {}"],
    )
    accuracy = mmzoo.evaluation.zero_shot_accuracy(
        model.encode_images(images[single], batch_size=250), classifier,
        scene["shapes"][single, 0], ks=(1,),
    )
    results["zero-shot shape"] = float(accuracy["top1"])
    results["zero-shot images"] = int(np.sum(single))
    return results


def train(model, images, captions, steps, batch_size, learning_rate, seed):
    import keras
    import tensorflow as tf

    import mmzoo

    examples = tf.data.Dataset.from_tensor_slices({"images": images, "captions": captions})
    pipeline = mmzoo.data.contrastive_pipeline(examples, model, batch_size=batch_size, seed=seed)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=learning_rate, warmup_steps=min(200, steps // 10),
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.05),
        loss=mmzoo.losses.CLIPLoss(), jit_compile=True,
    )
    model.fit(pipeline, steps_per_epoch=steps, epochs=1, verbose=0)


def main(args):
    import keras
    import keras_hub
    import numpy as np

    import mmzoo
    from mmzoo.testing.keras_hub_presets import save_contrastive_preset
    from mmzoo.testing.keras_hub_presets import save_trained_preset

    keras.utils.set_random_seed(args.seed)
    pretrain = mmzoo.data.generate_shapes_captions(
        args.train_examples, split="train", seed=args.seed, image_size=32
    )
    shifted_train = shifted_data(args.train_examples, "train", args.seed + 1)
    shifted_test = shifted_data(args.eval_examples, "test", args.seed + 2)
    captions_test = mmzoo.data.generate_shapes_captions(
        args.eval_examples, split="test", seed=args.seed + 3, image_size=32
    )
    captions_test = (captions_test["images"], [c for c in captions_test["captions"][:, 0]])
    texts = [c for c in pretrain["captions"].ravel()] + shifted_train[1]

    rows = {}
    with tempfile.TemporaryDirectory() as work:
        random_preset = save_contrastive_preset(
            os.path.join(work, "random"), "clip", texts=texts, hidden_dim=args.hidden_dim,
            intermediate_dim=4 * args.hidden_dim, projection_dim=args.hidden_dim,
            num_heads=4, sequence_length=32,
        )
        backbone = keras_hub.models.Backbone.from_preset(random_preset)
        preprocessor = keras_hub.models.CLIPPreprocessor.from_preset(random_preset)
        model = mmzoo.models.DualEncoder.from_keras_hub(backbone, preprocessor=preprocessor)
        captions = [str(np.random.default_rng(args.seed).choice(c)) for c in pretrain["captions"]]
        print(f"pretraining {args.pretrain_steps} steps", file=sys.stderr, flush=True)
        train(model, pretrain["images"], captions, args.pretrain_steps, args.batch_size,
              args.learning_rate, args.seed)
        preset = save_trained_preset(
            model, backbone, preprocessor, os.path.join(work, "pretrained")
        )
        pretrained = mmzoo.models.DualEncoder.from_keras_hub(preset)
        # The preset holds what was trained: the same embeddings back.
        check = captions_test[1][:8]
        difference = np.abs(pretrained.encode_text(check) - model.encode_text(check)).max()
        assert difference < 1e-5, difference
        rows["pretrained, untuned"] = scores(pretrained, shifted_test, captions_test)
        print(rows, file=sys.stderr, flush=True)
        for mode, freeze in (("LiT (image tower locked)", True), ("full fine-tuning", False)):
            keras.utils.set_random_seed(args.seed)
            tuned = mmzoo.models.DualEncoder.from_keras_hub(preset, freeze_image_encoder=freeze)
            train(tuned, shifted_train[0], shifted_train[1], args.tune_steps, args.batch_size,
                  args.tune_learning_rate, args.seed)
            rows[mode] = scores(tuned, shifted_test, captions_test)
            print(mode, rows[mode], file=sys.stderr, flush=True)
        # From the random preset, for scale: what the shifted task alone teaches.
        keras.utils.set_random_seed(args.seed)
        scratch = mmzoo.models.DualEncoder.from_keras_hub(random_preset)
        train(scratch, shifted_train[0], shifted_train[1], args.tune_steps, args.batch_size,
              args.tune_learning_rate, args.seed)
        rows["random weights, full training (reference)"] = scores(
            scratch, shifted_test, captions_test
        )

    columns = list(next(iter(rows.values())))
    table = "| model | " + " | ".join(columns) + " |\n" + "|---" * (len(columns) + 1) + "|\n"
    for name, values in rows.items():
        table += f"| {name} | " + " | ".join(
            f"{values[c]:.3f}" if isinstance(values[c], float) else str(values[c])
            for c in columns
        ) + " |\n"
    print(table)
    print(json.dumps(rows, indent=1))
    load_average = os.getloadavg()[0]
    body = (
        f"A keras-hub `CLIPBackbone` ({args.hidden_dim} wide, 2 layers, 32x32 images, patch 8, "
        f"random weights) pretrained by mmzoo for {args.pretrain_steps} steps on "
        f"`shapes_captions` ({args.train_examples} images, batch {args.batch_size}, AdamW peak "
        f"{args.learning_rate:g}), saved as a keras-hub preset, then loaded with "
        f"`DualEncoder.from_keras_hub` and fine-tuned {args.tune_steps} steps (peak "
        f"{args.tune_learning_rate:g}) on the shifted task: `shapes_classification` images with "
        "captions like \"square in red and circle in blue\". Recall@1 among "
        f"{args.eval_examples} held-out images (one caption each) of the shifted task and of "
        "`shapes_captions`; zero-shot shape accuracy on the shifted task's single-shape images "
        "with the pretraining's prompt style. The last row trains the random preset on the "
        f"shifted task alone. 1-minute load average at the end: {load_average:.1f} "
        f"({os.cpu_count()} cores).\n\n" + table
    )
    if not args.no_record:
        record("Fine-tuning a keras-hub CLIP preset: LiT vs full", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
