"""Does the input pipeline keep up with training?

Trains `image_captioning_tiny` with `model.fit` (XLA) for the same number of
steps from three sources, interleaved over several rounds so that machine
load affects them alike:

* memory: one pre-made batch, repeated (the model's own consumption rate);
* synthetic: `load_synthetic("shapes_captions")` -> `captioning_pipeline`;
* files: JPEG files on disk -> `load_image_caption_files` -> `captioning_pipeline`.

    python benchmarks/pipeline_vs_memory.py

Reports examples/s (median over rounds) and each pipeline's rate as a fraction
of training from memory; appends the table to benchmarks/README.md.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import record  # noqa: E402

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--batch-size", type=int, default=64)
PARSER.add_argument("--steps", type=int, default=100, help="steps per timed run")
PARSER.add_argument("--rounds", type=int, default=3)
PARSER.add_argument("--num-files", type=int, default=2000)
PARSER.add_argument("--file-size", type=int, default=128, help="side of the JPEGs on disk")
PARSER.add_argument("--no-record", action="store_true")


def write_files(directory, count, size):
    import numpy as np
    from PIL import Image

    from mmzoo import data

    generated = data.generate_shapes_captions(count, split="train", image_size=size)
    images, captions = generated["images"], generated["captions"]
    rows = []
    for i in range(count):
        path = os.path.join(directory, f"{i:05d}.jpg")
        Image.fromarray(np.round(images[i] * 255).astype("uint8")).save(path, quality=90)
        rows.append({"image_path": os.path.basename(path), "caption": str(captions[i][0])})
    manifest = os.path.join(directory, "train.jsonl")
    with open(manifest, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return manifest


def main(args):
    import tensorflow as tf

    import mmzoo
    from mmzoo import data

    image_size = 32
    examples = data.load_synthetic("shapes_captions", "train", num_examples=5000, image_size=image_size)
    vocabulary = data.train_word_piece_vocabulary(examples.map(lambda x: x["captions"]), 128)
    tokenizer = data.TextTokenizer(vocabulary, sequence_length=25)
    model = mmzoo.presets.build_from_preset("image_captioning_tiny", vocabulary_size=tokenizer.vocabulary_size)
    model.compile(optimizer="adamw", loss=mmzoo.losses.MaskedSequenceCrossEntropy(), jit_compile=True)

    def from_pipeline(source):
        ds = data.captioning_pipeline(source, tokenizer, batch_size=args.batch_size, seed=0)
        return ds.map(mmzoo.models.teacher_forcing_split)

    batch = next(iter(from_pipeline(examples)))
    memory = tf.data.Dataset.from_tensors(batch).repeat()
    with tempfile.TemporaryDirectory() as directory:
        manifest = write_files(directory, args.num_files, args.file_size)
        files, _ = data.load_image_caption_files(manifest, image_shape=(image_size, image_size))
        sources = {
            "memory (one batch, repeated)": memory,
            "synthetic: load_synthetic -> captioning_pipeline": from_pipeline(
                data.load_synthetic("shapes_captions", "train", num_examples=50000, image_size=image_size)
            ),
            f"files: {args.file_size}px JPEG -> decode, resize, tokenize": from_pipeline(files.repeat()),
        }
        for ds in sources.values():  # compile and warm up every source
            model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)
        rates = {name: [] for name in sources}
        for _ in range(args.rounds):
            for name, ds in sources.items():
                start = time.perf_counter()
                model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
                rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    base = statistics.median(rates["memory (one batch, repeated)"])
    rows = [
        f"| {name} | {statistics.median(r):,.0f} | {statistics.median(r) / base:.2f} |"
        for name, r in rates.items()
    ]
    load = os.getloadavg()[0]
    body = (
        f"`image_captioning_tiny` (32x32 images), `model.fit` with XLA, batch {args.batch_size}, "
        f"{args.steps} steps per run, median of {args.rounds} interleaved rounds; 1-minute load "
        f"average {load:.1f} at the end.\n\n| data source | examples/s | vs memory |\n"
        "| --- | --- | --- |\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_record:
        record("Input pipeline vs training from memory", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
