"""mmzoo's captioner against Hugging Face `VisionEncoderDecoderModel.generate`: tokens/s.

Both models are built with the same sizes and random weights:

- `small`: mmzoo's `image_captioning_small` preset (ViT-S/16 at 224x224, a
  4-layer 384-wide decoder with 6 heads, MLP 1536, 8,000 words) against a
  transformers `VisionEncoderDecoderModel` of a `ViTModel` (12 x 384, 6 heads,
  MLP 1536, patch 16, 224x224) and a `GPT2LMHeadModel` with cross-attention
  (4 x 384, 6 heads, MLP 1536, 8,000 words);
- `tiny`: `image_captioning_tiny` (ViT 2 x 32 on 32x32 images in 8x8 patches, a
  2-layer 64-wide decoder, 512 words) against the same built from
  `ViTModel` and `GPT2LMHeadModel` (transformers projects the 32-wide image
  tokens to the decoder's 64, as mmzoo does).

Each call writes exactly `--new-tokens` tokens per caption: the end token
cannot win in mmzoo (its logit bias is set to -1e9) and transformers is given
`min_new_tokens` equal to `max_new_tokens`. transformers runs `generate` with
its key/value cache (`use_cache=True`, the default) under `torch.inference_mode`;
mmzoo runs `model.generate`, one XLA-compiled loop over a fixed-length cache.
Greedy and beam search (`--num-beams`) at each batch size; the first call of
each is a warm-up (mmzoo compiles there). Both libraries run in this one
process on the same number of threads, alternating call by call over
`--rounds` rounds; the table gives the median and the range of tokens per
second (captions x new tokens / seconds per call) and the ratio of the
medians.

    pip install -e '.[peers]'
    python benchmarks/peers/caption_generation.py

`--backend jax` runs mmzoo on Keras' JAX backend (set before Keras is
imported). Prints a table and writes it, with the command, into
benchmarks/README.md.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--configs", default="small,tiny", help="comma-separated: small, tiny")
PARSER.add_argument("--batch-sizes", default="1,8")
PARSER.add_argument("--new-tokens", type=int, default=24)
PARSER.add_argument("--num-beams", type=int, default=4)
PARSER.add_argument("--rounds", type=int, default=5)
PARSER.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads, both")
PARSER.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow",
                    help="Keras backend of mmzoo")
PARSER.add_argument("--no-record", action="store_true")

# Special ids shared by both models: pad 0, start 2, end 3.
PAD, START, END = 0, 2, 3
PRESETS = {"small": "image_captioning_small", "tiny": "image_captioning_tiny"}


def mmzoo_captioner(config, preprocessor=None):
    """The preset, its end token made unreachable (every caption is full length)."""
    import numpy as np

    import mmzoo

    model = mmzoo.presets.build_from_preset(
        PRESETS[config], pad_token_id=PAD, start_token_id=START, end_token_id=END,
        preprocessor=preprocessor,
    )
    logits = model.text_decoder.logits_dense
    bias = np.asarray(logits.bias).copy()
    bias[model.end_token_id] = -1e9
    logits.bias.assign(bias)
    return model


def transformers_captioner(config):
    """A `VisionEncoderDecoderModel` with the sizes of the mmzoo preset."""
    import mmzoo
    from transformers import GPT2Config
    from transformers import GPT2LMHeadModel
    from transformers import ViTConfig
    from transformers import ViTModel
    from transformers import VisionEncoderDecoderModel

    preset = mmzoo.presets.get_preset_config(PRESETS[config])
    tower = mmzoo.presets.get_preset_config(preset["image_encoder"])
    encoder = ViTModel(ViTConfig(
        hidden_size=tower["hidden_dim"], num_hidden_layers=tower["num_layers"],
        num_attention_heads=tower["num_heads"], intermediate_size=tower["intermediate_dim"],
        image_size=tower["image_shape"][0], patch_size=tower["patch_size"],
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    ), add_pooling_layer=False)
    decoder = GPT2LMHeadModel(GPT2Config(
        vocab_size=preset["vocabulary_size"], n_positions=preset["sequence_length"] + 1,
        n_embd=preset["hidden_dim"], n_layer=preset["num_layers"], n_head=preset["num_heads"],
        n_inner=preset["intermediate_dim"], add_cross_attention=True, is_decoder=True,
        bos_token_id=START, eos_token_id=END, pad_token_id=PAD,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    ))
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id = START
    model.config.pad_token_id = PAD
    model.config.eos_token_id = END
    model.generation_config.decoder_start_token_id = START
    model.generation_config.pad_token_id = PAD
    model.generation_config.eos_token_id = END
    return model.eval(), tower["image_shape"]


def import_transformers_first():
    """Imports transformers' generation code (torch._dynamo, triton) before
    TensorFlow: the other way round, importing triton crashes the process."""
    import transformers.generation.utils  # noqa: F401
    from transformers import GPT2LMHeadModel  # noqa: F401


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(args):
    os.environ.setdefault("KERAS_BACKEND", args.backend)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import torch

    import_transformers_first()
    import keras

    from _common import package_versions
    from _common import record
    from _common import spread
    from _common import table

    torch.set_num_threads(args.threads)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    rows = []
    for config in args.configs.split(","):
        if config not in PRESETS:
            raise ValueError(f"`--configs` must name some of {list(PRESETS)}. Received: {config!r}")
        keras.utils.set_random_seed(0)
        torch.manual_seed(0)
        ours = mmzoo_captioner(config)
        theirs, image_shape = transformers_captioner(config)
        params = (ours.count_params(), sum(p.numel() for p in theirs.parameters()))
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            images = np.random.RandomState(1).rand(batch_size, *image_shape).astype("float32")
            pixels = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
            for method, beams in (("greedy", 1), ("beam", args.num_beams)):
                def run_mmzoo():
                    out = ours.generate(images, max_length=args.new_tokens, method=method,
                                        num_beams=beams)
                    assert out.shape == (batch_size, args.new_tokens), out.shape

                def run_transformers():
                    with torch.inference_mode():
                        out = theirs.generate(
                            pixel_values=pixels, max_new_tokens=args.new_tokens,
                            min_new_tokens=args.new_tokens, num_beams=beams, do_sample=False,
                            use_cache=True,
                        )
                    # The decoder start token comes first.
                    assert out.shape == (batch_size, args.new_tokens + 1), out.shape

                run_mmzoo()
                run_transformers()
                seconds = {"mmzoo": [], "transformers": []}
                for round_index in range(args.rounds):
                    pairs = [("mmzoo", run_mmzoo), ("transformers", run_transformers)]
                    for name, fn in pairs if round_index % 2 == 0 else pairs[::-1]:
                        seconds[name].append(timed(fn))
                tokens = batch_size * args.new_tokens
                rate = {k: [tokens / s for s in v] for k, v in seconds.items()}
                ratio = statistics.median(rate["mmzoo"]) / statistics.median(rate["transformers"])
                row = (config, f"{params[0] / 1e6:.1f}M / {params[1] / 1e6:.1f}M", batch_size,
                       method if beams == 1 else f"beam-{beams}",
                       spread(rate["mmzoo"], fmt="{:.0f}"),
                       spread(rate["transformers"], fmt="{:.0f}"), f"{ratio:.2f}x")
                print(row, flush=True)
                rows.append(row)
    header = ["config", "parameters (mmzoo / transformers)", "batch", "search",
              "mmzoo tokens/s", "transformers tokens/s", "mmzoo / transformers"]
    versions = package_versions(["keras", keras.backend.backend(), "torch", "transformers"])
    body = (
        f"{args.new_tokens} new tokens per caption, median (range) of {args.rounds} calls "
        f"per library after one warm-up call, the libraries alternating. {args.threads} "
        f"intra-op threads for both; mmzoo on Keras' {keras.backend.backend()} backend. "
        f"Versions: {versions}. 1-minute load average at the end: "
        f"{os.getloadavg()[0]:.1f}.\n\n{table(header, rows)}"
    )
    print(body)
    if not args.no_record:
        record(f"Peers: caption generation vs transformers ({keras.backend.backend()})", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
