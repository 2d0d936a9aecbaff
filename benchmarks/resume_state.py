"""How large is a run's resume state, and does it grow with the dataset?

`mmzoo.training.Trainer` checkpoints the `tf.data` iterator with the model,
so a run resumes at the same example. That state holds whatever the
pipeline buffers: the shuffle buffer (decoded images), and with `cache=True`
the cache itself. For each source of the same image-caption examples
(mmzoo's synthetic data generated in `tf.data`, a JPEG manifest, and its
TFRecord shards from `mmzoo.data.pack_records`, also with the records
shuffled before decoding and no shuffle after, as `mmzoo train` reads them),
each cache mode (off, in
memory, in a file) and each dataset size, this builds `captioning_pipeline` as the
recipes do (default shuffle buffer), reads a few batches (a whole pass and
then some when cached, so the cache is complete), saves
`tf.train.Checkpoint(iterator=...)` and reports its size on disk.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/resume_state.py --sizes 1000,10000,100000

`--images noise` writes JPEGs of random pixels instead of mmzoo's shapes (and
leaves out the synthetic source): the checkpoint compresses the flat colours of
the shapes well, and photographs far less, so noise gives the upper end.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/resume_state.py --sizes 2000 \
        --image-size 224 --images noise
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--sizes", default="1000,10000,100000", help="dataset sizes (examples)")
parser.add_argument("--image-size", type=int, default=32, help="image side (files and model)")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--batches", type=int, default=5, help="batches read before saving")
parser.add_argument("--num-shards", type=int, default=8)
parser.add_argument("--images", choices=("shapes", "noise"), default="shapes",
                    help="what the JPEGs show")
parser.add_argument("--record", action="store_true", help="append the table to README.md")
args = parser.parse_args()

import os  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import tensorflow as tf  # noqa: E402

import mmzoo.data  # noqa: E402
from _common import record  # noqa: E402


def directory_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path) for name in names
    )


def write_manifest(folder, count):
    """`count` JPEGs (of mmzoo's shapes, or noise) and a CSV manifest of captions."""
    data = mmzoo.data.generate_shapes_captions(
        count, image_size=args.image_size, captions_per_image=1, seed=1
    )
    os.makedirs(os.path.join(folder, "images"))
    rows = ["image_path,caption"]
    rng = np.random.RandomState(1)
    for i, (image, captions) in enumerate(zip(data["images"], data["captions"])):
        name = f"images/{i:06d}.jpg"
        pixels = (
            rng.randint(0, 256, image.shape, dtype=np.uint8) if args.images == "noise"
            else (image * 255).astype("uint8")
        )
        PIL.Image.fromarray(pixels).save(os.path.join(folder, name))
        rows.append(f"{name},{captions[0]}")
    path = os.path.join(folder, "captions.csv")
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path


def state_bytes(examples, tokenizer, count, cache, folder, shuffle=True):
    """Bytes of the iterator checkpoint after reading the pipeline."""
    dataset = mmzoo.data.captioning_pipeline(
        examples, tokenizer, batch_size=args.batch_size, seed=0, cache=cache,
        **({} if shuffle else {"shuffle_buffer": None}),
    )
    iterator = iter(dataset)
    batches = args.batches + (count // args.batch_size + 1 if cache else 0)
    for _ in range(batches):
        next(iterator)
    prefix = tf.train.Checkpoint(iterator=iterator).write(os.path.join(folder, "ckpt", "it"))
    size = directory_bytes(os.path.dirname(prefix))
    tf.io.gfile.rmtree(os.path.dirname(prefix))
    return size


def main():
    sizes = [int(s) for s in args.sizes.split(",")]
    shape = (args.image_size, args.image_size)
    texts = mmzoo.data.generate_shapes_captions(500, image_size=32)["captions"][:, 0]
    vocabulary = mmzoo.data.train_word_piece_vocabulary(texts.tolist(), vocabulary_size=200)
    tokenizer = mmzoo.data.TextTokenizer(vocabulary, sequence_length=24)
    rows = []
    for count in sizes:
        with tempfile.TemporaryDirectory() as folder:
            manifest = write_manifest(folder, count)
            shards = os.path.join(folder, "shards")
            mmzoo.data.pack_records(manifest, shards, num_shards=args.num_shards, verbose=False)
            sources = {
                "synthetic (tf.data)": lambda: mmzoo.data.load_synthetic(
                    "shapes_captions", num_examples=count, image_size=args.image_size),
                "JPEG manifest": lambda: mmzoo.data.load_image_caption_files(
                    manifest, image_shape=shape)[0],
                f"TFRecord shards ({args.num_shards})": lambda: mmzoo.data.load_tfrecords(
                    shards, image_shape=shape)[0],
                # As `mmzoo train --data tfrecord:` reads them: the records
                # shuffled before decoding, the pipeline not shuffling again.
                f"TFRecord shards ({args.num_shards}), records shuffled":
                    lambda: mmzoo.data.load_tfrecords(
                        shards, image_shape=shape, shuffle_buffer=1024, seed=0)[0],
            }
            if args.images == "noise":  # the synthetic data are shapes
                del sources["synthetic (tf.data)"]
            for number, (source, load) in enumerate(sources.items()):
                cache_file = os.path.join(folder, f"cache{number}", "examples")
                os.makedirs(os.path.dirname(cache_file))
                for mode, cache in (("off", False), ("memory", True), ("file", cache_file)):
                    size = state_bytes(load(), tokenizer, count, cache, folder,
                                       shuffle="records shuffled" not in source)
                    rows.append((source, mode, count, size))
                    print(f"{source:28s} cache={mode:6s} {count:>7,d} examples: "
                          f"{size / 2**20:9.2f} MiB", flush=True)
    lines = [
        "| source | cache | examples | iterator state |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {s} | {c} | {n:,} | {b / 2**20:,.2f} MiB |" for s, c, n, b in rows]
    table = "\n".join(lines)
    print(table)
    if args.record:
        one_image = args.image_size * args.image_size * 3 * 4
        record("Resume state against dataset size", (
            f"`captioning_pipeline` with its default shuffle buffer (1,024 examples), "
            f"{args.image_size}px images of {args.images} (one decoded image: {one_image:,} bytes of float32), "
            f"batch {args.batch_size}; the iterator checkpointed after {args.batches} "
            "batches (after a whole pass and as many more when cached). "
            f"1-minute load average {os.getloadavg()[0]:.1f} at the end.\n\n{table}"
        ))


if __name__ == "__main__":
    main()
