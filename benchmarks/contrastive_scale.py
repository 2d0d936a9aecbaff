"""What does exact gradient accumulation cost and buy for contrastive training?

Two parts, on `dual_encoder_tiny` with `mmzoo.losses.CLIPLoss` and
`mmzoo.training.Trainer` (XLA, one device):

1. Memory and speed. Each configuration trains in its own process (so its
   peak resident memory is its own): an accumulated global batch
   (`--micro-batch` x `--accumulation-steps`, the output gradients cached,
   see the Trainer's docstring) and direct batches of the micro-batch size
   doubling up to the global batch. Reported: the process's peak resident
   set size (`ru_maxrss`, the whole process: TensorFlow itself takes most of
   it), its growth over the process before training, and examples/s over
   `--timed-steps` steps after one warm-up step (compilation).
2. Quality for the same number of examples seen: text-to-image and
   image-to-text recall@1 on 1,000 held-out `shapes_captions` pairs after
   training on `--examples-seen` examples with in-batch negatives, with
   hard-negative weighting (`hard_negative_beta`), and with accumulation
   (4 micro-batches per update: 4x the negatives, a quarter of the updates),
   and with a momentum encoder and a feature queue (`--momentum`,
   `--queue-size`: the queue's negatives at the in-batch run's updates).

    python benchmarks/contrastive_scale.py

Prints both tables and appends them to benchmarks/README.md (unless --no-record).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import record  # noqa: E402

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--micro-batch", type=int, default=128)
PARSER.add_argument("--accumulation-steps", type=int, default=32)
PARSER.add_argument("--timed-steps", type=int, default=3)
PARSER.add_argument("--examples-seen", type=int, default=32768)
PARSER.add_argument("--quality-batch", type=int, default=64)
PARSER.add_argument("--hard-negative-beta", type=float, default=0.5)
PARSER.add_argument("--momentum", type=float, default=0.99)
PARSER.add_argument("--queue-size", type=int, default=4096)
PARSER.add_argument("--learning-rate", type=float, default=2e-3)
PARSER.add_argument("--parts", default="memory,quality", help="comma-separated")
PARSER.add_argument("--seed", type=int, default=0)
PARSER.add_argument("--no-record", action="store_true")
PARSER.add_argument("--child", default=None, help=argparse.SUPPRESS)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(vocabulary_size=128, sequence_length=32):
    import mmzoo

    return mmzoo.presets.build_from_preset(
        "dual_encoder_tiny",
        text_encoder={"vocabulary_size": vocabulary_size, "sequence_length": sequence_length},
    )


def random_pairs(batch_size, seed):
    """A dataset repeating random image-text batches (the speed part needs no meaning)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    batch = {
        "images": rng.uniform(size=(batch_size, 32, 32, 3)).astype("float32"),
        "token_ids": rng.integers(1, 128, size=(batch_size, 32)).astype("int32"),
        "padding_mask": np.ones((batch_size, 32), bool),
    }
    return tf.data.Dataset.from_tensors(batch).repeat()


def child_speed(config):
    """One memory/speed configuration, in this process; prints a JSON line."""
    import keras

    import mmzoo

    keras.utils.set_random_seed(0)
    model = build()
    trainer = mmzoo.training.Trainer(
        model, mmzoo.losses.CLIPLoss(), keras.optimizers.AdamW(1e-3),
        accumulation_steps=config["accumulation_steps"],
    )
    before = peak_rss_mib()
    dataset = random_pairs(config["batch_size"], 0)
    trainer.fit(dataset, steps=1, verbose=0)  # compiles
    start = time.perf_counter()
    trainer.fit(dataset, steps=1 + config["timed_steps"], verbose=0)
    elapsed = time.perf_counter() - start
    examples = config["batch_size"] * config["accumulation_steps"] * config["timed_steps"]
    print(json.dumps({
        "peak_mib": peak_rss_mib(), "before_mib": before, "examples_per_second": examples / elapsed,
    }))


def run_child(config):
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(config)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"configuration {config} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_part(args):
    global_batch = args.micro_batch * args.accumulation_steps
    configs = [(f"accumulated: {args.accumulation_steps} x {args.micro_batch}",
                {"batch_size": args.micro_batch, "accumulation_steps": args.accumulation_steps})]
    batch = args.micro_batch
    while batch <= global_batch:
        configs.append((f"direct: {batch}", {"batch_size": batch, "accumulation_steps": 1}))
        batch *= 2
    rows, results = [], {}
    for name, config in configs:
        result = run_child({**config, "timed_steps": args.timed_steps})
        results[name] = result
        rows.append(
            f"| {name} | {config['batch_size'] * config['accumulation_steps']:,} | "
            f"{result['peak_mib']:,.0f} | {result['peak_mib'] - result['before_mib']:,.0f} | "
            f"{result['examples_per_second']:,.0f} |"
        )
        print(rows[-1], flush=True)
    accumulated = results[configs[0][0]]
    fitting = [
        name for name, _ in configs[1:]
        if results[name]["peak_mib"] <= accumulated["peak_mib"]
    ]
    summary = (
        f"Largest direct batch within the accumulated run's peak memory: "
        f"{fitting[-1] if fitting else 'none'}."
    )
    table = (
        "| configuration | examples per update | peak RSS MiB | growth in training MiB | "
        "examples/s |\n| --- | --- | --- | --- | --- |\n" + "\n".join(rows)
    )
    return table, summary


def quality_part(args):
    import keras

    import mmzoo
    from mmzoo import data

    train_examples = data.load_synthetic(
        "shapes_captions", "train", num_examples=50000, seed=args.seed, image_size=32
    )
    vocabulary = data.train_word_piece_vocabulary(
        train_examples.map(lambda x: x["captions"]), vocabulary_size=128
    )
    tokenizer = data.TextTokenizer(vocabulary)
    test = data.generate_shapes_captions(1000, split="test", seed=args.seed, image_size=32)
    queries = list(test["captions"][:, 0])
    batch = args.quality_batch
    queue = {"momentum": args.momentum, "queue_size": args.queue_size}
    configs = [
        ("in-batch negatives", batch, 1, 0.0, {}),
        (f"hard negatives, beta {args.hard_negative_beta}", batch, 1, args.hard_negative_beta,
         {}),
        ("accumulation, 4 micro-batches per update", batch, 4, 0.0, {}),
        (f"momentum encoder {args.momentum} + queue of {args.queue_size:,}", batch, 1, 0.0,
         queue),
    ]
    rows = []
    for name, micro, accumulation, beta, momentum in configs:
        keras.utils.set_random_seed(args.seed)
        model = mmzoo.presets.build_from_preset(
            "dual_encoder_tiny",
            text_encoder={"sequence_length": 32, "vocabulary_size": tokenizer.vocabulary_size},
            preprocessor=mmzoo.models.DualEncoderPreprocessor(tokenizer),
            **momentum,
        )
        train = data.contrastive_pipeline(train_examples, model, batch_size=micro, seed=args.seed)
        updates = args.examples_seen // (micro * accumulation)
        trainer = mmzoo.training.Trainer(
            model, mmzoo.losses.CLIPLoss(hard_negative_beta=beta),
            keras.optimizers.AdamW(args.learning_rate, weight_decay=0.05),
            accumulation_steps=accumulation,
        )
        start = time.process_time()
        history = trainer.fit(train, steps=updates, verbose=0, log_every=max(1, updates // 4))
        cpu_minutes = (time.process_time() - start) / 60
        metrics = mmzoo.evaluation.retrieval_metrics(
            model.encode_images(test["images"], batch_size=250),
            model.encode_text(queries, batch_size=250), ks=(1, 5),
        )
        rows.append(
            f"| {name} | {micro * accumulation} | {updates} | {history[-1]['loss']:.3f} | "
            f"{metrics['text_to_image/recall@1']:.3f} | {metrics['image_to_text/recall@1']:.3f} | "
            f"{metrics['text_to_image/recall@5']:.3f} | {cpu_minutes:.1f} |"
        )
        print(rows[-1], flush=True)
    return (
        "| training | examples per update | updates | last logged loss | text-to-image R@1 | "
        "image-to-text R@1 | text-to-image R@5 | CPU min |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows)
    )


def main(args):
    if args.child:
        child_speed(json.loads(args.child))
        return
    parts = args.parts.split(",")
    load_before = os.getloadavg()[0]
    sections = []
    if "memory" in parts:
        table, summary = memory_part(args)
        sections.append(
            f"Memory and speed: `dual_encoder_tiny`, CLIPLoss, random 32x32 images and 32 "
            f"tokens, AdamW, XLA, one process per row; examples/s over {args.timed_steps} "
            f"updates after a compiling one.\n\n{table}\n\n{summary}"
        )
    if "quality" in parts:
        sections.append(
            f"Quality for {args.examples_seen:,} training examples seen in every row "
            f"(`shapes_captions`, 32x32, AdamW {args.learning_rate}, seed {args.seed}); "
            "recall on 1,000 held-out pairs, each image with its first caption (chance "
            f"0.001).\n\n{quality_part(args)}"
        )
    body = (
        "\n\n".join(sections)
        + f"\n\n1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        f"({os.cpu_count()} cores)."
    )
    print(body)
    if not args.no_record:
        record("Contrastive training at scale", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
