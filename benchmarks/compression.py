"""What do LoRA and int8 / int4 weight quantization cost and save, per family?

For each family, the tiny preset is trained with the recipe (`mmzoo.recipes.train`,
synthetic data) for `--steps` steps: the fp32 base. From it:

* `full FT`: all weights trained `--tune-steps` more steps on the same data;
* `LoRA rN`: only rank-N adapters trained the same steps (`--init-from` and
  `--lora-rank`, as `mmzoo train` does); the merged model is measured;
* `int8`, `int4`: the base quantized (`model.quantize`).

Each row gives the trainable parameters, the `.keras` file and the serving
SavedModel (all of it, and its `variables/` folder: the weights), CPU time of
the family's serving call at batch 1 and examples/s at batch 32 (median of
`--repeats` runs after a warm-up: `generate` (greedy) for the captioner,
`encode_images` + `encode_text` for the dual encoder, `answer` for video QA,
`predict_probabilities` for fusion), and the held-out score of
`mmzoo evaluate` (BLEU-4 / text-to-image recall@1 / VQA accuracy / accuracy).

A second table asks the question LoRA is for: the captioner, trained on
the synthetic captions, is fine-tuned to a shifted caption style (each
"a large blue circle" written "circle, blue, large": the same words in
another order) with full fine-tuning and with LoRA, the same steps, and
scored (BLEU-4) on held-out images captioned in the new style.

    python benchmarks/compression.py

Prints a table per family and appends them, with the command, to
benchmarks/README.md.
"""

import argparse
import json
import os
import re
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import median_time  # noqa: E402
from _common import record  # noqa: E402

FAMILIES = ("image_captioning", "dual_encoder", "video_qa", "fusion_classifier")
SCORES = {
    "image_captioning": "bleu_4",
    "dual_encoder": "text_to_image/recall@1",
    "video_qa": "vqa_accuracy",
    "fusion_classifier": "accuracy",
}
QUESTIONS = ["what colour is the shape?", "is the square left of the circle?"]

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--families", default=",".join(FAMILIES))
PARSER.add_argument("--steps", type=int, default=1500, help="training steps of the base")
PARSER.add_argument("--tune-steps", type=int, default=300, help="full / LoRA fine-tuning steps")
PARSER.add_argument("--lora-rank", type=int, default=8)
PARSER.add_argument("--full-learning-rate", type=float, default=5e-4,
                    help="peak rate of full fine-tuning (a large one forgets)")
PARSER.add_argument("--lora-learning-rate", type=float, default=2e-3,
                    help="peak rate of LoRA fine-tuning")
PARSER.add_argument("--num-examples", type=int, default=5000, help="training examples")
PARSER.add_argument("--eval-examples", type=int, default=500)
PARSER.add_argument("--repeats", type=int, default=5)
PARSER.add_argument("--style-examples", type=int, default=2000,
                    help="restyled training images for the style shift (0: skip it)")
PARSER.add_argument("--style-ranks", default="8,4,1", help="LoRA ranks for the style shift")
PARSER.add_argument(
    "--size-presets",
    default="image_captioning_small,dual_encoder_base,fusion_classifier_base",
    help="larger presets (untrained) measured for size and speed only ('' to skip)",
)
PARSER.add_argument("--no-record", action="store_true")


def directory_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path) for name in names
    )


def serving_call(family, model, batch_size):
    """A zero-argument function running the family's serving call on `batch_size` inputs."""
    import numpy as np

    rng = np.random.RandomState(0)
    preprocessor = model.preprocessor
    if preprocessor.video_converter is not None:
        converter = preprocessor.video_converter
        shape = (converter.num_frames,) + tuple(converter.image_shape)
    else:
        shape = tuple(preprocessor.image_converter.image_shape)
    pixels = rng.rand(batch_size, *shape).astype("float32")
    texts = [QUESTIONS[i % 2] for i in range(batch_size)]
    if family == "image_captioning":
        return lambda: model.generate(pixels, method="greedy")
    if family == "dual_encoder":
        return lambda: (model.encode_images(pixels), model.encode_text(texts))
    if family == "video_qa":
        return lambda: model.answer(pixels, texts)
    return lambda: model.predict_probabilities(images=pixels, texts=texts)


def measure(family, run_dir, args, work, trainable):
    """Sizes, speed and score of the model in `run_dir`."""
    import keras

    from mmzoo import recipes

    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
    row = {"trainable": trainable, "keras_bytes": os.path.getsize(os.path.join(run_dir, "model.keras"))}
    if family in recipes.EXPORT:
        saved = os.path.join(work, "saved_model")
        shutil.rmtree(saved, ignore_errors=True)
        recipes.export(family, model_dir=run_dir, output=saved)
        row["saved_bytes"] = directory_bytes(saved)
        row["variables_bytes"] = directory_bytes(os.path.join(saved, "variables"))
    one = serving_call(family, model, 1)
    many = serving_call(family, model, 32)
    row["latency_ms"] = 1000 * median_time(one, args.repeats, warmup=2)
    row["examples_per_s"] = 32 / median_time(many, args.repeats, warmup=2)
    scores = recipes.evaluate(family, model_dir=run_dir, num_examples=args.eval_examples)
    row["score"] = scores[SCORES[family]]
    return row


def quantized_run(base_dir, mode, work):
    """A run directory holding the base run's model, quantized."""
    import keras

    from mmzoo import training

    run_dir = os.path.join(work, mode)
    os.makedirs(run_dir, exist_ok=True)
    shutil.copy(os.path.join(base_dir, "run.json"), run_dir)
    model = keras.saving.load_model(os.path.join(base_dir, "model.keras"), safe_mode=True)
    model.quantize(mode)
    training.save_model(model, os.path.join(run_dir, "model.keras"))
    return run_dir


def parameter_count(run_dir):
    import keras

    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
    return model.count_params()


def family_rows(family, args, work):
    from mmzoo import recipes

    common = {"num_examples": args.num_examples, "verbose": 0, "checkpoint_every": 10**6}
    base = os.path.join(work, "base")
    recipes.train(family, steps=args.steps, model_dir=base, **common)
    total = parameter_count(base)
    rows = {"fp32": measure(family, base, args, work, total)}
    full = os.path.join(work, "full")
    recipes.train(family, steps=args.tune_steps, model_dir=full, init_from=base,
                  learning_rate=args.full_learning_rate, **common)
    rows["full FT"] = measure(family, full, args, work, total)
    lora = os.path.join(work, "lora")
    recipes.train(family, steps=args.tune_steps, model_dir=lora, init_from=base,
                  lora_rank=args.lora_rank, learning_rate=args.lora_learning_rate, **common)
    import keras

    tuned = keras.saving.load_model(os.path.join(base, "model.keras"), safe_mode=True)
    tuned.load_lora_weights(os.path.join(lora, "adapters.lora.h5"))
    rows[f"LoRA r{args.lora_rank}"] = measure(
        family, lora, args, work, tuned.parameter_report()["trainable_parameters"]
    )
    rows[f"LoRA r{args.lora_rank}"]["adapter_bytes"] = os.path.getsize(
        os.path.join(lora, "adapters.lora.h5")
    )
    for mode in ("int8", "int4"):
        rows[mode] = measure(family, quantized_run(base, mode, work), args, work, 0)
    return rows


def restyle(caption):
    """The shifted style: "a large blue circle" -> "circle, blue, large"."""
    return re.sub(r"\ba (small|large) (\w+) (circle|square|triangle|diamond)\b", r"\3, \2, \1", caption)


def restyled_manifest(path, split, num_examples, seed):
    """A JSONL manifest of synthetic images (PNG) and their restyled captions."""
    import numpy as np
    from PIL import Image

    import mmzoo

    folder = os.path.splitext(path)[0]
    os.makedirs(folder, exist_ok=True)
    examples = mmzoo.data.load_synthetic(
        "shapes_captions", split, num_examples=num_examples, seed=seed, image_size=32
    )
    with open(path, "w", encoding="utf-8") as f:
        for i, example in enumerate(examples.as_numpy_iterator()):
            image_path = os.path.join(folder, f"{i}.png")
            pixels = np.round(example["images"] * 255).astype("uint8")
            Image.fromarray(pixels).save(image_path)
            captions = [restyle(c.decode()) for c in example["captions"]]
            f.write(json.dumps({"image_path": image_path, "caption": captions}) + "\n")
    return path


def style_shift_rows(args, work):
    """BLEU-4 on the shifted style: the base, full fine-tuning and LoRA."""
    import keras

    from mmzoo import recipes

    common = {"verbose": 0, "checkpoint_every": 10**6}
    train = restyled_manifest(os.path.join(work, "train.jsonl"), "train", args.style_examples, 1)
    test = restyled_manifest(os.path.join(work, "test.jsonl"), "test", args.eval_examples, 2)
    base = os.path.join(work, "base")
    recipes.train("image_captioning", steps=args.steps, model_dir=base,
                  num_examples=args.num_examples, **common)
    total = keras.saving.load_model(os.path.join(base, "model.keras")).count_params()
    rows = {}

    def score(run_dir):
        return recipes.evaluate("image_captioning", model_dir=run_dir, data_spec=test,
                                num_examples=args.eval_examples)["bleu_4"]

    rows["base, not tuned"] = (0, total, score(base))
    full = os.path.join(work, "full")
    recipes.train("image_captioning", data_spec=train, steps=args.tune_steps, model_dir=full,
                  init_from=base, learning_rate=args.full_learning_rate, **common)
    rows["full fine-tuning"] = (total, total, score(full))
    for rank in (int(r) for r in args.style_ranks.split(",")):
        lora = os.path.join(work, f"lora{rank}")
        recipes.train("image_captioning", data_spec=train, steps=args.tune_steps,
                      model_dir=lora, init_from=base, lora_rank=rank,
                      learning_rate=args.lora_learning_rate, **common)
        tuned = keras.saving.load_model(os.path.join(base, "model.keras"))
        tuned.load_lora_weights(os.path.join(lora, "adapters.lora.h5"))
        report = tuned.parameter_report()
        rows[f"LoRA r{rank}"] = (report["trainable_parameters"], report["total_parameters"],
                                 score(lora))
    header = ("model", "trainable parameters (of all, adapters included)",
              "BLEU-4, shifted style", "vs full fine-tuning")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    full_score = rows["full fine-tuning"][2]
    for name, (trainable, all_parameters, bleu) in rows.items():
        lines.append(f"| {name} | {trainable:,} ({trainable / all_parameters:.1%}) | {bleu:.3f} "
                     f"| {bleu - full_score:+.3f} |")
    return "\n".join(lines)


def random_inputs(model, batch_size, seed=0):
    import numpy as np

    rng = np.random.RandomState(seed)
    inputs = {}
    for name, tensor in model.input.items():
        shape = (batch_size,) + tuple(tensor.shape[1:])
        if tensor.dtype == "bool":
            inputs[name] = np.ones(shape, bool)
        elif "int" in tensor.dtype:
            inputs[name] = rng.randint(4, 100, shape).astype(tensor.dtype)
        else:
            inputs[name] = rng.rand(*shape).astype(tensor.dtype)
    return inputs


def size_rows(preset, args, work):
    """Weights and speed of a larger (untrained) preset: fp32, int8, int4.

    Speed: greedy `generate` for a captioner, else the XLA-compiled forward
    pass, at batch 1 (ms) and 32 (examples/s).
    """
    import keras
    import tensorflow as tf

    from mmzoo import presets

    rows = {}
    for mode in ("fp32", "int8", "int4"):
        keras.utils.set_random_seed(0)
        model = presets.build_from_preset(preset)
        if mode != "fp32":
            model.quantize(mode)
        path = os.path.join(work, f"{mode}.keras")
        model.save(path)
        weights = sum(int(v.numpy().nbytes) for v in model.weights)
        if hasattr(model, "generate"):
            calls = {n: (lambda x=random_inputs(model, n)["images"]: model.generate(x))
                     for n in (1, 32)}
        else:
            forward = tf.function(lambda x: model(x, training=False), jit_compile=True)
            calls = {n: (lambda x=random_inputs(model, n): forward(x)) for n in (1, 32)}
        rows[mode] = {
            "parameters": model.count_params(), "keras_bytes": os.path.getsize(path),
            "weight_bytes": weights,
            "latency_ms": 1000 * median_time(calls[1], args.repeats, warmup=2),
            "examples_per_s": 32 / median_time(calls[32], args.repeats, warmup=2),
        }
    return rows


def size_table(preset, rows):
    fp32 = rows["fp32"]
    header = ("variant", "weights MiB", ".keras MiB", "ms at batch 1", "examples/s at 32",
              "speed vs fp32 (batch 1, 32)")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, row in rows.items():
        lines.append("| " + " | ".join((
            name,
            f"{row['weight_bytes'] / 2**20:,.1f} ({row['weight_bytes'] / fp32['weight_bytes']:.2f}x)",
            f"{row['keras_bytes'] / 2**20:,.1f} ({row['keras_bytes'] / fp32['keras_bytes']:.2f}x)",
            f"{row['latency_ms']:.1f}", f"{row['examples_per_s']:.1f}",
            f"{fp32['latency_ms'] / row['latency_ms']:.2f}x, "
            f"{row['examples_per_s'] / fp32['examples_per_s']:.2f}x",
        )) + " |")
    return (f"**`{preset}`** ({fp32['parameters']:,} parameters, untrained)\n\n"
            + "\n".join(lines))


def table(family, rows):
    fp32 = rows["fp32"]
    header = ("variant", "trainable", ".keras KiB", "SavedModel KiB (weights)", "ms at batch 1",
              "examples/s at 32", "score", "vs fp32")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, row in rows.items():
        saved = (f"{row['saved_bytes'] / 1024:,.0f} ({row['variables_bytes'] / 1024:,.0f}, "
                 f"{row['variables_bytes'] / fp32['variables_bytes']:.2f}x)"
                 if "saved_bytes" in row else "no export")
        keras_size = f"{row['keras_bytes'] / 1024:,.0f}"
        if "adapter_bytes" in row:
            keras_size += f" (adapters {row['adapter_bytes'] / 1024:,.0f})"
        lines.append("| " + " | ".join((
            name, f"{row['trainable']:,}", keras_size, saved, f"{row['latency_ms']:.1f}",
            f"{row['examples_per_s']:.0f}", f"{row['score']:.3f}",
            f"{row['score'] - fp32['score']:+.3f}",
        )) + " |")
    return f"**{family}** (`{family}_tiny`, score: {SCORES[family]})\n\n" + "\n".join(lines)


def main(args):
    import tensorflow as tf

    # Every model loaded here traces its own serving functions; TensorFlow's
    # retracing warnings about that say nothing about any one of them.
    tf.get_logger().setLevel("ERROR")
    families = [f for f in args.families.split(",") if f]
    results = {}
    for family in families:
        with tempfile.TemporaryDirectory() as work:
            results[family] = family_rows(family, args, work)
            print(table(family, results[family]), flush=True)
    sizes = []
    for preset in filter(None, args.size_presets.split(",")):
        with tempfile.TemporaryDirectory() as work:
            sizes.append(size_table(preset, size_rows(preset, args, work)))
        print(sizes[-1], flush=True)
    style = ""
    if args.style_examples:
        with tempfile.TemporaryDirectory() as work:
            style = style_shift_rows(args, work)
        print(style, flush=True)
    load_average = os.getloadavg()[0]
    body = (
        f"Each family's tiny preset trained {args.steps} steps on synthetic data "
        f"({args.num_examples} examples), then {args.tune_steps} more steps for `full FT` "
        f"(peak rate {args.full_learning_rate:g}) and `LoRA r{args.lora_rank}` (peak rate "
        f"{args.lora_learning_rate:g}), on the same data; scores on {args.eval_examples} held-out "
        f"examples. Times: median of {args.repeats} runs after two warm-ups; 1-minute load "
        f"average at the end: {load_average:.1f} ({os.cpu_count()} cores). The SavedModel "
        "column gives the whole directory and, in brackets, its `variables/` (the weights) "
        "with the ratio to fp32's.\n\n"
        + "\n\n".join(table(family, results[family]) for family in families)
    )
    if sizes:
        body += (
            "\n\n**Larger presets: size and speed only.** The weights held in memory (the "
            "`variables/` of a SavedModel are the same bytes) and the `.keras` file, and the "
            "serving speed: greedy `generate` for the captioner, the XLA-compiled forward pass "
            "for the others.\n\n" + "\n\n".join(sizes)
        )
    if style:
        body += (
            f"\n\n**Shifted caption style** (captioner trained {args.steps} steps on the "
            f"synthetic captions, then {args.tune_steps} steps on {args.style_examples} images "
            f"(full fine-tuning at a peak rate of {args.full_learning_rate:g}, LoRA at "
            f"{args.lora_learning_rate:g}) "
            "captioned \"circle, blue, large\" for \"a large blue circle\"; BLEU-4 on "
            f"{args.eval_examples} held-out images in that style)\n\n" + style
        )
    print(json.dumps(results, indent=1))
    if not args.no_record:
        record("Compression: LoRA, int8, int4", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
