"""How fast does the video QA model train and answer? Clips/s, XLA on vs off.

Training: clips/s of `model.fit` steps (AdamW) for video QA presets in both
answer modes, compiled with XLA (`jit_compile=True`) and without, and the
MFU: 3 x the forward FLOPs per step (XLA's cost analysis) over the measured
fp32 matmul throughput of the machine (2048x2048).

Answering: clips/s of the compiled answer functions on prepared batches
(tokenized questions, float frames): the classifier's argmax, and in
generate mode the cached greedy decoder writing `answer_sequence_length`
tokens (the end token made unreachable, so every clip decodes the full
length), each as a `tf.function` with and without XLA.

Each round times every configuration once, in turn; the tables give the
median over rounds and the XLA on/off ratio as the median of the per-round
ratios, so machine-wide slowdowns (the machine is shared) mostly cancel.

    python benchmarks/video_qa_speed.py

Prints tables and appends them, with the command, to benchmarks/README.md.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import forward_flops  # noqa: E402
from _common import matmul_flops_per_second  # noqa: E402
from _common import record  # noqa: E402

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--presets", default="video_qa_tiny,video_qa_vivit_tiny")
PARSER.add_argument("--modes", default="classify,generate")
PARSER.add_argument("--batch-size", type=int, default=32)
PARSER.add_argument("--train-steps", type=int, default=10, help="steps per timed run")
PARSER.add_argument("--answer-batches", type=int, default=5, help="batches per timed answer run")
PARSER.add_argument("--rounds", type=int, default=5)
PARSER.add_argument("--no-record", action="store_true")

ANSWER_TOKENS = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"a{i}" for i in range(16)]


def build(preset, mode):
    import mmzoo

    overrides = {"answer_mode": mode}
    if mode == "generate":
        overrides["answer_vocabulary"] = ANSWER_TOKENS
    model = mmzoo.presets.build_from_preset(preset, **overrides)
    if mode == "generate":
        # The end token made unreachable: every clip decodes the full length.
        logits = model.text_decoder.logits_dense
        bias = logits.bias.numpy()
        bias[model.end_token_id] = -1e9
        logits.bias.assign(bias)
    return model


def make_batch(model, batch_size, seed=0):
    import numpy as np

    rng = np.random.RandomState(seed)
    x = {
        "videos": rng.rand(batch_size, *model.video_shape).astype("float32"),
        "question_token_ids": rng.randint(4, 100, (batch_size, model.question_length)).astype("int32"),
        "question_padding_mask": np.ones((batch_size, model.question_length), "int32"),
    }
    if model.answer_mode == "classify":
        return x, rng.randint(0, model.vocabulary_size, (batch_size,)).astype("int32")
    length = model.answer_sequence_length
    x["answer_token_ids"] = rng.randint(4, model.vocabulary_size, (batch_size, length)).astype("int32")
    x["answer_padding_mask"] = np.ones((batch_size, length), "int32")
    return x, rng.randint(4, model.vocabulary_size, (batch_size, length)).astype("int32")


def training_runs(args, preset, mode):
    """{xla: run()} for one preset and mode, each compiled and warmed up."""
    import keras
    import tensorflow as tf

    import mmzoo

    runs = {}
    for jit in (True, False):
        model = build(preset, mode)
        x, y = make_batch(model, args.batch_size)
        loss = (mmzoo.losses.SoftTargetCrossEntropy() if mode == "classify"
                else mmzoo.losses.MaskedSequenceCrossEntropy())
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=loss, jit_compile=jit)
        data = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)

        def run(model=model, data=data):
            model.fit(data, steps_per_epoch=args.train_steps, epochs=1, verbose=0)

        run()  # compile
        flops = 3 * forward_flops(model, x) * args.train_steps
        runs[jit] = (run, args.batch_size * args.train_steps, model.count_params(), flops)
    return runs


def answer_runs(args, preset, mode):
    """{xla: run()} timing the compiled answer functions on prepared batches."""
    model = build(preset, mode)
    x, _ = make_batch(model, args.batch_size, seed=1)
    inputs = (x["videos"], x["question_token_ids"], x["question_padding_mask"].astype(bool))
    runs = {}
    for jit in (True, False):
        if mode == "classify":
            function = model.make_classify_function(jit_compile=jit)
        else:
            function = model.make_generate_function(jit_compile=jit)

        def run(function=function):
            for _ in range(args.answer_batches):
                function(*inputs).numpy()

        run()  # compile
        runs[jit] = (run, args.batch_size * args.answer_batches, model.count_params())
    return runs


def measure(configurations, rounds):
    """Round-robin timing: {name: {xla: [clips/s per round]}}."""
    results = {name: {jit: [] for jit in runs} for name, runs in configurations.items()}
    for _ in range(rounds):
        for name, runs in configurations.items():
            for jit, (run, clips, *_) in runs.items():
                start = time.perf_counter()
                run()
                results[name][jit].append(clips / (time.perf_counter() - start))
    return results


def rows(configurations, results, peak=None):
    out = []
    for name, runs in configurations.items():
        on, off = results[name][True], results[name][False]
        ratios = [a / b for a, b in zip(on, off)]
        params = runs[True][2]
        row = name + (f"{params:,}", f"{statistics.median(on):.1f}", f"{statistics.median(off):.1f}",
                      f"{statistics.median(ratios):.2f}x")
        if peak:
            run, clips, _, flops = runs[True]
            mfu = [rate / clips * flops / peak for rate in (statistics.median(on), statistics.median(off))]
            row += (f"{mfu[0]:.1%}", f"{mfu[1]:.1%}")
        out.append(row)
    return out


def table(header, rows_):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows_]
    return "\n".join(lines)


def main(args):
    import keras

    presets = args.presets.split(",")
    modes = args.modes.split(",")
    keras.utils.set_random_seed(0)
    training = {(p, m): training_runs(args, p, m) for p in presets for m in modes}
    answering = {(p, m): answer_runs(args, p, m) for p in presets for m in modes}
    peak = matmul_flops_per_second()
    load_before = os.getloadavg()[0]
    train_results = measure(training, args.rounds)
    answer_results = measure(answering, args.rounds)
    load_after = os.getloadavg()[0]
    header = ["preset", "answer mode", "parameters", "clips/s XLA on", "clips/s XLA off", "on / off"]
    body = (
        f"Batch {args.batch_size}; training: {args.train_steps} `fit` steps per timed run; "
        f"answering: {args.answer_batches} batches per timed run (classify: argmax of the "
        "logits; generate: cached greedy decoding of the full answer length). Medians over "
        f"{args.rounds} round-robin rounds; ratios are medians of per-round ratios. "
        f"1-minute load average {load_before:.1f} before the timed rounds, {load_after:.1f} "
        f"after ({os.cpu_count()} cores).\n\nTraining:\n\n"
        + f"Measured fp32 matmul throughput: {peak / 1e9:.0f} GFLOP/s.\n\n"
        + table(header + ["MFU XLA on", "MFU XLA off"], rows(training, train_results, peak))
        + "\n\nAnswering:\n\n"
        + table(header, rows(answering, answer_results))
    )
    print(body)
    if not args.no_record:
        record("Video QA speed", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
