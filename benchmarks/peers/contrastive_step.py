"""mmzoo's DualEncoder against open_clip: one contrastive training step (CLIP loss, AdamW).

Both models are built with the same sizes and random weights, trained on the
same random batch (images in [0, 1], token ids with an end token), with the
CLIP loss and AdamW, on the same number of threads. Configurations:

- `b32`: mmzoo `DualEncoder` with `vit_image_encoder_base` at patch 32 and
  `text_encoder_base` (12 x 512, 77 tokens, 49,408 words), projection 512,
  against open_clip's `ViT-B-32` (`open_clip.create_model("ViT-B-32")`).
- `b16`: the same at patch 16 (`vit_image_encoder_base` as is) against
  open_clip's `ViT-B-16`: the configuration of the GPU MFU target.
- `tiny`: mmzoo's `dual_encoder_tiny` preset against an open_clip `CLIP` built
  with the same sizes (2 layers, 32 wide, 2 heads, 32x32 images in 8x8
  patches; text 2 x 32, 32 tokens, 512 words; projection 32).

The towers are not identical: open_clip's ViT has a class token and a norm
before the blocks, and its text tower is causal and pools the end token;
mmzoo's ViT mean-pools the patches (no class token) and its text tower is
bidirectional and mean-pools the real tokens. The table gives both parameter
counts and both counted FLOPs.

Every measurement runs in a fresh process (so the peak resident memory is its
own): the model is built, `--warmup` steps run (compilation included), then
`--steps` timed steps. The frameworks alternate, and `--rounds` pairs of
processes are run per configuration and batch size; the table gives the median
and the range over rounds, and the ratio of the medians.

mmzoo runs `model.train_on_batch` on an in-memory batch with
`jit_compile=True` (the XLA step `mmzoo train` uses; `--xla off` for the graph
without XLA); open_clip runs its training step (forward, `open_clip.ClipLoss`,
backward, `torch.optim.AdamW`) eagerly, as its training script does. MFU is
training FLOPs per step (mmzoo: 3 x the forward pass counted by the TF
profiler, or by XLA's cost analysis on the JAX backend; open_clip: forward and
backward counted by `torch.utils.flop_counter`) over the float32 matmul rate
of the same framework measured in the same process (2048 x 2048).

    pip install -e '.[peers]'
    python benchmarks/peers/contrastive_step.py --configs tiny,b32 --batch-sizes 32,128

`--backend jax` runs mmzoo on Keras' JAX backend and `--dtype bfloat16` in
bfloat16 (Keras `mixed_bfloat16`; open_clip under `torch.autocast`): the GPU
configuration. Prints a table and writes it, with the command, into
benchmarks/README.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import median_time  # noqa: E402
from _common import package_versions  # noqa: E402
from _common import record  # noqa: E402
from _common import spread  # noqa: E402
from _common import table  # noqa: E402

CONFIGS = ("tiny", "b32", "b16")
FRAMEWORKS = ("mmzoo", "open_clip")

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--configs", default="tiny,b32", help=f"comma-separated of {CONFIGS}")
PARSER.add_argument("--batch-sizes", default="32,128")
PARSER.add_argument("--steps", type=int, default=5, help="least timed steps per process")
PARSER.add_argument("--min-seconds", type=float, default=10.0,
                    help="timed steps go on until this much time has passed too")
PARSER.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation)")
PARSER.add_argument("--rounds", type=int, default=2, help="processes per framework")
PARSER.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="intra-op threads of TensorFlow and torch (JAX's are not set)")
PARSER.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow",
                    help="Keras backend of mmzoo")
PARSER.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
PARSER.add_argument("--xla", choices=("on", "off"), default="on",
                    help="mmzoo's training step compiled with XLA (as `mmzoo train` does) or not")
PARSER.add_argument("--no-record", action="store_true")
# Internal: one measurement in this process, printed as JSON.
PARSER.add_argument("--measure", nargs=3, metavar=("FRAMEWORK", "CONFIG", "BATCH"),
                    help=argparse.SUPPRESS)

# Sizes of each configuration (shared by both frameworks).
SIZES = {
    "tiny": dict(image_size=32, patch_size=8, vision_layers=2, vision_width=32, vision_heads=2,
                 vision_mlp=64, context_length=32, vocab_size=512, text_layers=2, text_width=32,
                 text_heads=2, text_mlp=64, embed_dim=32),
    "b32": dict(image_size=224, patch_size=32, vision_layers=12, vision_width=768,
                vision_heads=12, vision_mlp=3072, context_length=77, vocab_size=49408,
                text_layers=12, text_width=512, text_heads=8, text_mlp=2048, embed_dim=512),
}
SIZES["b16"] = dict(SIZES["b32"], patch_size=16)


def random_batch(config, batch_size, seed=0):
    """Images in [0, 1] (NHWC) and token ids that end with the highest id."""
    import numpy as np

    s = SIZES[config]
    rng = np.random.RandomState(seed)
    images = rng.rand(batch_size, s["image_size"], s["image_size"], 3).astype("float32")
    tokens = rng.randint(4, 100, (batch_size, s["context_length"])).astype("int32")
    lengths = rng.randint(5, s["context_length"], batch_size)
    for row, length in enumerate(lengths):
        tokens[row, length - 1] = s["vocab_size"] - 1  # open_clip pools this token
        tokens[row, length:] = 0
    return images, tokens


def matmul_rate(framework, size=2048, repeats=5):
    """float32 matmul FLOP/s of `framework` in this process (median of `repeats`)."""
    import numpy as np

    if framework == "open_clip":
        import torch

        a, b = torch.randn(size, size), torch.randn(size, size)
        run = lambda: torch.matmul(a, b)  # noqa: E731
    else:
        from keras import ops

        a = ops.convert_to_tensor(np.random.rand(size, size).astype("float32"))
        run = lambda: ops.convert_to_numpy(ops.matmul(a, a))  # noqa: E731
    return 2 * size**3 / median_time(run, repeats)


def mmzoo_step(config, batch_size, args):
    """(step function, parameters, function counting training FLOPs per step)."""
    import keras
    import numpy as np

    import mmzoo

    if args.dtype == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    if config == "tiny":
        model = mmzoo.presets.build_from_preset("dual_encoder_tiny")
    else:
        s = SIZES[config]
        model = mmzoo.models.build_dual_encoder(
            mmzoo.presets.build_from_preset("vit_image_encoder_base", patch_size=s["patch_size"]),
            mmzoo.presets.build_from_preset("text_encoder_base"),
            projection_dim=s["embed_dim"],
        )
    images, tokens = random_batch(config, batch_size)
    x = {}
    for name in model.input:
        if name.endswith("token_ids"):
            x[name] = tokens
        elif name.endswith("padding_mask"):
            x[name] = (tokens != 0).astype("int32")
        else:
            x[name] = images

    def count_flops():
        if keras.backend.backend() == "jax":
            return 3 * _jax_forward_flops(model, x)
        from _common import forward_flops

        return 3 * forward_flops(model, x)

    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4), loss=mmzoo.losses.CLIPLoss(),
        jit_compile=args.xla == "on",
    )
    dummy = np.zeros((batch_size,), "float32")

    def step():
        model.train_on_batch(x, dummy)

    return step, model.count_params(), count_flops


def _jax_forward_flops(model, x):
    import jax

    def forward(trainable, non_trainable, inputs):
        return model.stateless_call(trainable, non_trainable, inputs)[0]

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    cost = jax.jit(forward).lower(trainable, non_trainable, x).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return cost["flops"]


def open_clip_step(config, batch_size, args):
    import open_clip
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    if config == "tiny":
        s = SIZES["tiny"]
        model = open_clip.CLIP(
            embed_dim=s["embed_dim"],
            vision_cfg=dict(image_size=s["image_size"], patch_size=s["patch_size"],
                            layers=s["vision_layers"], width=s["vision_width"],
                            head_width=s["vision_width"] // s["vision_heads"],
                            mlp_ratio=s["vision_mlp"] / s["vision_width"]),
            text_cfg=dict(context_length=s["context_length"], vocab_size=s["vocab_size"],
                          width=s["text_width"], heads=s["text_heads"],
                          layers=s["text_layers"],
                          mlp_ratio=s["text_mlp"] / s["text_width"]),
        )
    else:
        model = open_clip.create_model("ViT-B-32" if config == "b32" else "ViT-B-16")
    model.train()
    images, tokens = random_batch(config, batch_size)
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    tokens = torch.from_numpy(tokens).long()
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu" if not torch.cuda.is_available() else "cuda",
                              dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    images, tokens = images.to(device), tokens.to(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            image_features, text_features, logit_scale = model(images, tokens)
            loss = loss_fn(image_features, text_features, logit_scale)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    def count_flops():
        counter = FlopCounterMode(display=False)
        with counter:
            with autocast:
                image_features, text_features, logit_scale = model(images, tokens)
                loss = loss_fn(image_features, text_features, logit_scale)
            loss.backward()
        optimizer.zero_grad(set_to_none=True)
        return counter.get_total_flops()

    return step, sum(p.numel() for p in model.parameters()), count_flops


def measure(args):
    import resource

    framework, config, batch_size = args.measure
    batch_size = int(batch_size)
    if framework == "open_clip":
        import torch

        torch.set_num_threads(args.threads)
        step, params, count_flops = open_clip_step(config, batch_size, args)
    else:
        if args.backend == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        step, params, count_flops = mmzoo_step(config, batch_size, args)
    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    steps = 0
    while steps < args.steps or time.perf_counter() - start < args.min_seconds:
        step()
        steps += 1
    seconds = (time.perf_counter() - start) / steps
    # The peak is read before counting FLOPs (the TF profiler freezes a copy
    # of the weights into a graph).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    flops = count_flops()
    rate = matmul_rate(framework)
    print(json.dumps({"seconds": seconds, "params": params, "flops": flops,
                      "matmul_rate": rate, "peak_rss": peak}))


def run_one(args, framework, config, batch_size):
    env = dict(os.environ, KERAS_BACKEND=args.backend, TF_CPP_MIN_LOG_LEVEL="2")
    command = [
        sys.executable, os.path.abspath(__file__), "--measure", framework, config,
        str(batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--min-seconds", str(args.min_seconds),
        "--threads", str(args.threads), "--backend", args.backend, "--dtype", args.dtype,
        "--xla", args.xla,
    ]
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} {config} batch {batch_size} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(args):
    if args.measure:
        return measure(args)
    configs = args.configs.split(",")
    for config in configs:
        if config not in CONFIGS:
            raise ValueError(f"`--configs` must name some of {CONFIGS}. Received: {config!r}")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    for config in configs:
        for batch_size in batch_sizes:
            results = {f: [] for f in FRAMEWORKS}
            for round_index in range(args.rounds):
                order = FRAMEWORKS if round_index % 2 == 0 else FRAMEWORKS[::-1]
                for framework in order:
                    result = run_one(args, framework, config, batch_size)
                    print(framework, config, batch_size, result, flush=True)
                    results[framework].append(result)
            rates = {
                f: [batch_size / r["seconds"] for r in results[f]] for f in FRAMEWORKS
            }
            for framework in FRAMEWORKS:
                runs = results[framework]
                mfu = [100 * r["flops"] / r["seconds"] / r["matmul_rate"] for r in runs]
                ratio = statistics.median(rates["mmzoo"]) / statistics.median(rates["open_clip"])
                rows.append((
                    config, batch_size, framework, f"{runs[0]['params'] / 1e6:.1f}M",
                    f"{runs[0]['flops'] / 1e9 / batch_size:.3g}", spread(rates[framework]),
                    f"{ratio:.2f}x" if framework == "mmzoo" else "",
                    spread([r["matmul_rate"] for r in runs], 1e-9, "{:.0f}"),
                    spread(mfu), spread([r["peak_rss"] for r in runs], 2**-20, "{:,.0f}"),
                ))
    header = ["config", "batch", "library", "parameters", "GFLOP/example (train)",
              "examples/s", "mmzoo / open_clip", "matmul GFLOP/s", "MFU %", "peak RSS MiB"]
    versions = package_versions(["keras", args.backend, "torch", "open_clip_torch"])
    body = (
        f"{args.rounds} fresh processes per library, configuration and batch size, the "
        f"libraries alternating; each timed at least {args.steps} steps and "
        f"{args.min_seconds:.0f} s after {args.warmup} warm-up steps. Median (range) over "
        f"the processes. {args.threads} intra-op threads for both; mmzoo on Keras' "
        f"{args.backend} backend, {args.dtype}, XLA {args.xla}. Versions: {versions}. "
        f"1-minute load average at the end: {os.getloadavg()[0]:.1f}.\n\n{table(header, rows)}"
    )
    print(body)
    if not args.no_record:
        record(f"Peers: contrastive training step vs open_clip ({args.backend}, {args.dtype})",
               body)


if __name__ == "__main__":
    main(PARSER.parse_args())
