"""What wrapping a keras-hub CLIP in an mmzoo `DualEncoder` costs per training step.

A CLIP ViT-B/16-sized `keras_hub.models.CLIPBackbone` (keras-hub's config
for `clip_vit_base_patch16`: 224x224 images, 12 layers of 768 in the
vision tower, 12 of 512 in the text tower, 77 tokens, 512-dimensional
projections; random weights, nothing downloaded) is trained one step at a
time on the CPU, each configuration in its own process:

* `keras-hub`: the backbone's `text_logits` and CLIP's symmetric
  cross-entropy written by hand;
* `mmzoo, same loss`: `mmzoo.models.DualEncoder.from_keras_hub(backbone)`,
  the logits made from its outputs and the same hand-written loss;
* `mmzoo, CLIPLoss`: the same model with `mmzoo.losses.CLIPLoss` (what
  `model.fit` and the Trainer use).

Each step is a `tf.function` (no XLA: compiling a ViT-B costs minutes on
this machine) of forward, loss, gradients and an Adam update. Reported:
the median step time over `--steps` steps after `--warmup` steps, examples
per second, the ratio to keras-hub's, the process's peak resident memory,
and how many times the step was traced (1 means no retracing).
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

CONFIGS = ("keras-hub", "mmzoo, same loss", "mmzoo, CLIPLoss")

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--batch-size", type=int, default=8)
PARSER.add_argument("--steps", type=int, default=5)
PARSER.add_argument("--warmup", type=int, default=2)
PARSER.add_argument("--rounds", type=int, default=1,
                    help="each configuration runs this many times, interleaved")
PARSER.add_argument("--small", action="store_true", help="a tiny backbone (a smoke run)")
PARSER.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
PARSER.add_argument("--no-record", action="store_true")


def backbone(small):
    import keras_hub

    if small:
        vision = dict(patch_size=8, hidden_dim=32, num_layers=2, num_heads=2,
                      intermediate_dim=64, image_shape=(32, 32, 3))
        text = dict(vocabulary_size=100, embedding_dim=32, hidden_dim=32, num_layers=2,
                    num_heads=2, intermediate_dim=64, max_sequence_length=16)
        projection = 16
    else:  # clip_vit_base_patch16
        vision = dict(patch_size=16, hidden_dim=768, num_layers=12, num_heads=12,
                      intermediate_dim=3072, image_shape=(224, 224, 3))
        text = dict(vocabulary_size=49408, embedding_dim=512, hidden_dim=512, num_layers=12,
                    num_heads=8, intermediate_dim=2048, max_sequence_length=77)
        projection = 512
    return keras_hub.models.CLIPBackbone(
        keras_hub.models.CLIPVisionEncoder(**vision),
        keras_hub.models.CLIPTextEncoder(**text),
        projection_dim=projection,
    )


def child(config, args):
    import keras
    import numpy as np
    import tensorflow as tf

    import mmzoo

    keras.utils.set_random_seed(0)
    clip = backbone(args.small)
    height, width, _ = clip.vision_encoder.image_shape
    length = clip.text_encoder.max_sequence_length
    rng = np.random.default_rng(0)
    token_ids = rng.integers(1, clip.text_encoder.vocabulary_size - 1, (args.batch_size, length))
    token_ids[:, -1] = clip.text_encoder.vocabulary_size - 1  # the end token: the largest id
    inputs = {
        "images": tf.constant(rng.uniform(size=(args.batch_size, height, width, 3)), "float32"),
        "token_ids": tf.constant(token_ids, "int32"),
        "padding_mask": tf.ones((args.batch_size, length), "bool"),
    }

    def clip_loss(text_logits):
        labels = tf.range(tf.shape(text_logits)[0])
        loss = keras.losses.sparse_categorical_crossentropy
        return (tf.reduce_mean(loss(labels, text_logits, from_logits=True))
                + tf.reduce_mean(loss(labels, tf.transpose(text_logits), from_logits=True))) / 2

    if config == "keras-hub":
        model = clip

        def compute_loss(x):
            outputs = model({"images": x["images"], "token_ids": x["token_ids"]}, training=True)
            return clip_loss(outputs["text_logits"])
    else:
        model = mmzoo.models.DualEncoder.from_keras_hub(clip)  # no preprocessor: [0, 1] pixels
        mmzoo_loss = mmzoo.losses.CLIPLoss()

        def compute_loss(x):
            outputs = model(x, training=True)
            if config == "mmzoo, CLIPLoss":
                return mmzoo_loss(None, outputs)
            logits = tf.matmul(outputs["text_embeddings"], outputs["image_embeddings"],
                               transpose_b=True) * outputs["logit_scale"][0]
            return clip_loss(logits)

    optimizer = keras.optimizers.Adam(1e-5)
    optimizer.build(model.trainable_variables)
    traces = []

    @tf.function
    def step(x):
        traces.append(1)  # Python runs once per trace
        with tf.GradientTape() as tape:
            loss = compute_loss(x)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        float(step(inputs))
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    print(json.dumps({
        "step_s": float(np.median(times)),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "traces": len(traces),
        "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
    }))


def main(args):
    if args.child:
        return child(args.child, args)
    flags = [f"--batch-size={args.batch_size}", f"--steps={args.steps}",
             f"--warmup={args.warmup}"] + (["--small"] if args.small else [])
    runs = {config: [] for config in CONFIGS}
    for round_ in range(args.rounds):
        for config in CONFIGS:
            output = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", config, *flags],
                check=True, capture_output=True, text=True,
            ).stdout
            runs[config].append(json.loads(output.strip().splitlines()[-1]))
            print(config, runs[config][-1], file=sys.stderr, flush=True)
    import numpy as np

    base = float(np.median([r["step_s"] for r in runs["keras-hub"]]))
    rows = ["| configuration | step (s, median) | examples/s | vs keras-hub | peak RSS (MiB) "
            "| traces | trainable parameters |", "|---|---|---|---|---|---|---|"]
    for config, results in runs.items():
        step_s = float(np.median([r["step_s"] for r in results]))
        rows.append(
            f"| {config} | {step_s:.3f} | {args.batch_size / step_s:.2f} | "
            f"{step_s / base:.3f} | {max(r['peak_rss_mib'] for r in results):,.0f} | "
            f"{max(r['traces'] for r in results)} | {results[0]['parameters']:,} |"
        )
    table = "\n".join(rows)
    print(table)
    load_average = os.getloadavg()[0]
    body = (
        f"{'A tiny' if args.small else 'A CLIP ViT-B/16-sized'} keras-hub `CLIPBackbone`, random "
        f"weights, batch {args.batch_size}, one `tf.function` step (no XLA) at a time on the "
        f"CPU; median of {args.steps} steps after {args.warmup} warm-up steps, each "
        f"configuration in its own process, {args.rounds} round(s) interleaved (step time: "
        "median over rounds). `vs keras-hub` is the step time's ratio (above 1: slower). "
        f"1-minute load average at the end: {load_average:.1f} ({os.cpu_count()} cores).\n\n"
        + table
    )
    if not args.no_record:
        record("Pretrained keras-hub CLIP in mmzoo: overhead per step", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
