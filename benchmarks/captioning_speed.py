"""How fast does the captioner train and generate?

Training: examples/s and MFU (model FLOPs per step, counted by the TF
profiler as 3x the forward pass, over the matmul throughput measured in the
same run) for captioning presets, XLA on vs off.

Generation: tokens/s of the cached, XLA-compiled greedy and beam-4 decoders
against a Python loop that reruns the full model for every token (the way of
the keras.io captioning example), at batch 8 and max_length 24.

    python benchmarks/captioning_speed.py

Prints tables and appends them, with the command, to benchmarks/README.md.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import forward_flops  # noqa: E402
from _common import matmul_flops_per_second  # noqa: E402
from _common import median_time  # noqa: E402
from _common import record  # noqa: E402

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--presets", default="image_captioning_tiny,image_captioning_small")
PARSER.add_argument("--batch-size", type=int, default=16)
PARSER.add_argument("--train-steps", type=int, default=10, help="steps per timed run")
PARSER.add_argument("--repeats", type=int, default=5)
PARSER.add_argument("--generate-batch", type=int, default=8)
PARSER.add_argument("--max-length", type=int, default=24)
PARSER.add_argument("--no-record", action="store_true")


def batch(model, batch_size, seed=0):
    import numpy as np

    rng = np.random.RandomState(seed)
    length = model.sequence_length
    x = {
        "images": rng.rand(batch_size, *model.image_shape).astype("float32"),
        "token_ids": rng.randint(4, model.vocabulary_size, (batch_size, length)).astype("int32"),
        "padding_mask": np.ones((batch_size, length), "int32"),
    }
    y = rng.randint(4, model.vocabulary_size, (batch_size, length)).astype("int32")
    return x, y


def training_rows(args, preset, peak):
    import keras
    import tensorflow as tf

    import mmzoo

    rows = []
    for jit in (True, False):
        keras.backend.clear_session()
        model = mmzoo.presets.build_from_preset(preset)
        x, y = batch(model, args.batch_size)
        flops = 3 * forward_flops(model, x)
        model.compile(
            optimizer="adamw", loss=mmzoo.losses.MaskedSequenceCrossEntropy(), jit_compile=jit
        )
        data = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)

        def run():
            model.fit(data, steps_per_epoch=args.train_steps, epochs=1, verbose=0)

        seconds = median_time(run, args.repeats) / args.train_steps
        rows.append(
            (preset, "on" if jit else "off", f"{model.count_params():,}",
             f"{args.batch_size / seconds:.1f}", f"{flops / 1e9:.2f}",
             f"{100 * flops / seconds / peak:.1f}%")
        )
    return rows


def generation_rows(args, preset):
    import keras
    import numpy as np

    import mmzoo

    keras.backend.clear_session()
    model = mmzoo.presets.build_from_preset(preset)
    images = np.random.RandomState(1).rand(args.generate_batch, *model.image_shape).astype("float32")
    # The end token is made unreachable so every decoder writes max_length tokens.
    logits = model.text_decoder.logits_dense
    bias = np.asarray(logits.bias).copy()
    bias[model.end_token_id] = -1e9
    logits.bias.assign(bias)
    tokens = args.generate_batch * args.max_length

    def python_loop():
        ids = np.full((args.generate_batch, model.sequence_length), model.pad_token_id, "int32")
        ids[:, 0] = model.start_token_id
        mask = np.ones_like(ids)
        for t in range(1, args.max_length + 1):
            out = model({"images": images, "token_ids": ids, "padding_mask": mask}, training=False)
            next_ids = np.argmax(np.asarray(out)[:, t - 1], axis=-1)
            if t < model.sequence_length:
                ids[:, t] = next_ids

    results = {}
    results["python loop, full rerun per token"] = median_time(python_loop, max(2, args.repeats // 2))
    results["cached XLA greedy"] = median_time(
        lambda: model.generate(images, max_length=args.max_length), args.repeats
    )
    results["cached XLA beam-4"] = median_time(
        lambda: model.generate(images, max_length=args.max_length, method="beam", num_beams=4),
        args.repeats,
    )
    base = tokens / results["python loop, full rerun per token"]
    return [
        (preset, name, f"{tokens / s:.0f}", f"{tokens / s / base:.1f}x")
        for name, s in results.items()
    ]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def main(args):
    peak = matmul_flops_per_second()
    presets = args.presets.split(",")
    train = [r for p in presets for r in training_rows(args, p, peak)]
    train_table = table(
        ["preset", "XLA", "parameters", "examples/s", "GFLOP/step", "MFU"], train
    )
    generate = generation_rows(args, presets[0])
    generate_table = table(["preset", "decoder", "tokens/s", "vs loop"], generate)
    body = (
        f"Measured fp32 matmul throughput (2048x2048): {peak / 1e9:.0f} GFLOP/s; MFU is "
        f"3 x forward FLOPs per step over it. Training batch {args.batch_size}, median "
        f"of {args.repeats} runs of {args.train_steps} steps.\n\n{train_table}\n\n"
        f"Generation at batch {args.generate_batch}, {args.max_length} tokens, median of "
        f"{args.repeats} runs (ratios from the same run):\n\n{generate_table}"
    )
    print(body)
    if not args.no_record:
        record("Captioning speed", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
