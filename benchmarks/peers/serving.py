"""Serving captions from image files: mmzoo's exported SavedModel against transformers.

Both sides start from the same JPEG files on disk and end with caption
strings, with the same model sizes and random weights (see
`caption_generation.py` for the two models) and exactly `--new-tokens` tokens
per caption:

- mmzoo: `mmzoo.export.export_image_captioning_model` (greedy), loaded back
  with `tf.saved_model.load`; a call gets the files' bytes and does the rest
  in its graph: JPEG decoding, resizing, the image encoder, the cached XLA
  greedy loop and detokenization.
- transformers: the way its model cards serve a `VisionEncoderDecoderModel`
  (transformers 5 removed the `image-to-text` pipeline, and its replacement,
  `image-text-to-text`, fails on a `TrOCRProcessor`'s output with
  `BatchEncoding.to() got an unexpected keyword argument 'dtype'`): Pillow
  opens the files, `ViTImageProcessor` resizes them (no normalisation, as
  mmzoo feeds [0, 1]), `generate` with its key/value cache, and the fast
  tokenizer's `batch_decode` (a `tokenizers` WordLevel over the same words).

The files are read from disk in every call on both sides. Images/s over
`--images` files in batches of each size, median (range) over `--rounds`
rounds, the libraries alternating, on the same number of threads.

    pip install -e '.[peers]'
    python benchmarks/peers/serving.py

Prints a table and writes it, with the command, into benchmarks/README.md.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--configs", default="small", help="comma-separated: small, tiny")
PARSER.add_argument("--batch-sizes", default="1,8")
PARSER.add_argument("--images", type=int, default=16, help="files captioned per round")
PARSER.add_argument("--new-tokens", type=int, default=24)
PARSER.add_argument("--rounds", type=int, default=3)
PARSER.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads, both")
PARSER.add_argument("--no-record", action="store_true")


def write_images(directory, count, seed=0):
    """`count` 320x240 JPEGs of smooth random colour, as camera images are."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(seed)
    paths = []
    for i in range(count):
        small = (rng.rand(6, 8, 3) * 255).astype("uint8")
        image = Image.fromarray(small).resize((320, 240), Image.BICUBIC)
        path = os.path.join(directory, f"{i:04d}.jpg")
        image.save(path, quality=90)
        paths.append(path)
    return paths


def vocabulary(size):
    """mmzoo's reserved tokens, then made-up words: `size` tokens."""
    from mmzoo.data.tokenizer import RESERVED_TOKENS

    return list(RESERVED_TOKENS) + [f"w{i}" for i in range(size - len(RESERVED_TOKENS))]


def mmzoo_server(config, directory, new_tokens):
    """The `caption` signature of an exported mmzoo captioner."""
    import tensorflow as tf
    from caption_generation import PRESETS
    from caption_generation import mmzoo_captioner

    import mmzoo

    preset = mmzoo.presets.get_preset_config(PRESETS[config])
    image_shape = mmzoo.presets.get_preset_config(preset["image_encoder"])["image_shape"]
    model = mmzoo_captioner(config, mmzoo.models.ImageCaptioningPreprocessor(
        mmzoo.data.TextTokenizer(vocabulary(preset["vocabulary_size"])),
        image_converter=tuple(image_shape[:2]),
    ))
    path = os.path.join(directory, f"mmzoo_{config}")
    mmzoo.export.export_image_captioning_model(model, path, max_length=new_tokens)
    caption = tf.saved_model.load(path).signatures["caption"]

    def serve(paths):
        files = []
        for p in paths:
            with open(p, "rb") as f:
                files.append(f.read())
        out = caption(images=tf.constant(files))
        assert all(s == b"ok" for s in out["status"].numpy())
        assert out["token_ids"].shape == (len(paths), new_tokens), out["token_ids"].shape
        return out["captions"].numpy()

    return serve


def transformers_server(config, new_tokens):
    import torch
    from caption_generation import transformers_captioner
    from PIL import Image
    from tokenizers import Tokenizer
    from tokenizers import models
    from tokenizers import pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers import ViTImageProcessor

    model, image_shape = transformers_captioner(config)
    words = vocabulary(model.decoder.config.vocab_size)
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
        bos_token="[START]", eos_token="[END]",
    )
    processor = ViTImageProcessor(
        size={"height": image_shape[0], "width": image_shape[1]}, do_normalize=False,
    )

    def serve(paths):
        images = [Image.open(p).convert("RGB") for p in paths]
        pixels = processor(images=images, return_tensors="pt").pixel_values
        with torch.inference_mode():
            ids = model.generate(pixel_values=pixels, max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, num_beams=1)
        # The decoder start token comes first.
        assert ids.shape == (len(paths), new_tokens + 1), ids.shape
        return tokenizer.batch_decode(ids, skip_special_tokens=True)

    return serve


def main(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import torch

    from caption_generation import import_transformers_first

    import_transformers_first()
    import tensorflow as tf
    from _common import package_versions
    from _common import record
    from _common import spread
    from _common import table

    torch.set_num_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        paths = write_images(directory, args.images)
        for config in args.configs.split(","):
            import keras

            keras.utils.set_random_seed(0)
            torch.manual_seed(0)
            servers = {
                "mmzoo": mmzoo_server(config, directory, args.new_tokens),
                "transformers": transformers_server(config, args.new_tokens),
            }
            for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
                batches = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]

                def run(serve):
                    start = time.perf_counter()
                    for batch in batches:
                        serve(batch)
                    return len(paths) / (time.perf_counter() - start)

                for serve in servers.values():  # warm-up (mmzoo compiles here)
                    serve(batches[0])
                rates = {name: [] for name in servers}
                for round_index in range(args.rounds):
                    names = list(servers) if round_index % 2 == 0 else list(servers)[::-1]
                    for name in names:
                        rates[name].append(run(servers[name]))
                ratio = statistics.median(rates["mmzoo"]) / statistics.median(rates["transformers"])
                row = (config, batch_size, spread(rates["mmzoo"], fmt="{:.1f}"),
                       spread(rates["transformers"], fmt="{:.1f}"), f"{ratio:.2f}x")
                print(row, flush=True)
                rows.append(row)
    header = ["config", "batch", "mmzoo SavedModel images/s", "transformers images/s",
              "mmzoo / transformers"]
    versions = package_versions(["tensorflow", "torch", "transformers", "pillow"])
    body = (
        f"{args.images} 320x240 JPEG files per round, {args.new_tokens} new tokens per caption "
        f"(greedy), median (range) of {args.rounds} rounds after a warm-up batch, the "
        f"libraries alternating. {args.threads} intra-op threads for both. Versions: "
        f"{versions}. 1-minute load average at the end: {os.getloadavg()[0]:.1f}.\n\n"
        f"{table(header, rows)}"
    )
    print(body)
    if not args.no_record:
        record("Peers: serving captions from image files vs transformers", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
