"""Does the input pipeline keep up with training?

Trains `image_captioning_tiny` with `model.fit` (XLA) for the same number of
steps from three sources, interleaved over several rounds so that machine
load affects them alike:

* memory: one pre-made batch, repeated (the model's own consumption rate);
* synthetic: `load_synthetic("shapes_captions")` -> `captioning_pipeline`,
  every image generated afresh;
* synthetic, cached: 5,000 examples with `cache=True`, after the first epoch;
* files: JPEG files on disk -> `load_image_caption_files` ->
  `captioning_pipeline`, decoded every epoch;
* files, cached: the same with `cache=True`, after the first epoch.

    python benchmarks/pipeline_vs_memory.py                     # image_captioning_tiny
    python benchmarks/pipeline_vs_memory.py --family video_qa   # video_qa_tiny

For `video_qa` the sources are one batch in memory, `shapes_video_qa` clips
generated afresh, the same with `cache=True` (5,000 clips), `.npy` clip
files (16 frames of 64x64 on disk, sampled to 8 frames of 32x32) with and
without `cache=True`, and the same clips as JPEG frame folders.

Each `fit` call starts a new iterator (filling the shuffle buffer, starting
the map threads), a cost a real training run pays once, so the first 20
steps of every timed run are left out of its timing. Reports examples/s
(median over rounds), each pipeline's rate as a fraction
of training from memory (the median and range of the per-round ratios: the
speed of this 2-core machine drifts by tens of percent from minute to minute,
so a ratio is only meaningful within one round), and each pipeline's rate
on its own, without the model, as a multiple of the training rate from
memory (the issue asks for 3x); appends the table to benchmarks/README.md.
"""

import argparse
import csv
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import record  # noqa: E402

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--family", choices=("image_captioning", "video_qa"), default="image_captioning")
PARSER.add_argument("--batch-size", type=int, default=None, help="default: 64, 32 for video_qa")
PARSER.add_argument("--steps", type=int, default=200, help="steps per timed run")
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


def write_clips(directory, count, frames=16, size=64):
    """`.npy` clips and the same clips as JPEG frame folders; their two manifests."""
    import numpy as np
    from PIL import Image

    from mmzoo import data

    generated = data.generate_shapes_video_qa(count, split="train", image_size=size, num_frames=frames)
    manifests = {kind: os.path.join(directory, f"{kind}.csv") for kind in ("npy", "frames")}
    with open(manifests["npy"], "w", newline="") as f, open(manifests["frames"], "w", newline="") as g:
        writers = {"npy": csv.writer(f), "frames": csv.writer(g)}
        for writer in writers.values():
            writer.writerow(["video_path", "question", "answer"])
        for i in range(count):
            pixels = np.round(generated["videos"][i] * 255).astype("uint8")
            np.save(os.path.join(directory, f"clip_{i:05d}.npy"), pixels)
            folder = os.path.join(directory, f"clip_{i:05d}")
            os.makedirs(folder)
            for t, frame in enumerate(pixels):
                Image.fromarray(frame).save(os.path.join(folder, f"{t:02d}.jpg"), quality=90)
            qa = [generated["questions"][i], generated["answers"][i]]
            writers["npy"].writerow([f"clip_{i:05d}.npy"] + qa)
            writers["frames"].writerow([f"clip_{i:05d}"] + qa)
    return manifests


def video_qa_sources(args, directory):
    """The video QA model and its data sources (video_qa_tiny, 8 frames of 32x32)."""
    import tensorflow as tf

    import mmzoo
    from mmzoo import data

    examples = data.load_synthetic("shapes_video_qa", "train", num_examples=5000)
    vocabulary = data.train_word_piece_vocabulary(examples.map(lambda x: x["questions"]), 128)
    tokenizer = data.TextTokenizer(vocabulary)
    # The preprocessor packs questions to the question tower's length.
    model = mmzoo.presets.build_from_preset(
        "video_qa_tiny",
        question_encoder=mmzoo.presets.build_from_preset(
            "text_encoder_tiny", vocabulary_size=tokenizer.vocabulary_size
        ),
        preprocessor=mmzoo.models.VideoQAPreprocessor(tokenizer),
    )
    model.compile(optimizer="adamw", loss=mmzoo.losses.SoftTargetCrossEntropy(), jit_compile=True)
    answers = list(data.VIDEO_QA_ANSWERS)

    def from_pipeline(source, cache=False):
        ds = data.video_qa_pipeline(
            source, model, batch_size=args.batch_size, seed=0, cache=cache,
            answer_vocabulary=None if "answer_ids" in source.element_spec else answers,
        )
        return ds.map(mmzoo.models.video_qa_training_split)

    batch = next(iter(from_pipeline(examples)))
    manifests = write_clips(directory, args.num_files)
    files, _ = data.load_video_qa_files(manifests["npy"], num_frames=8, image_shape=(32, 32))
    frames, _ = data.load_video_qa_files(manifests["frames"], num_frames=8, image_shape=(32, 32))
    sources = {
        "memory (one batch, repeated)": (
            tf.data.Dataset.from_tensors(batch).repeat().prefetch(tf.data.AUTOTUNE)
        ),
        "synthetic: load_synthetic -> video_qa_pipeline": from_pipeline(
            data.load_synthetic("shapes_video_qa", "train", num_examples=200000)
        ),
        "synthetic, 5,000 clips, cache=True": from_pipeline(examples, cache=True),
        "files: 16x64px .npy clips -> 8 frames, resize, tokenize": from_pipeline(files),
        "files: .npy clips, cache=True": from_pipeline(files, cache=True),
        "files: 16x64px JPEG frame folders -> 8 frames, resize, tokenize": from_pipeline(frames),
    }
    what = "`video_qa_tiny` (8 frames of 32x32)"
    return model, sources, what


def main(args):
    if args.batch_size is None:
        args.batch_size = 32 if args.family == "video_qa" else 64
    if args.family == "video_qa":
        with tempfile.TemporaryDirectory() as directory:
            model, sources, what = video_qa_sources(args, directory)
            return measure(args, model, sources, what)
    return caption_main(args)


def caption_main(args):
    import tensorflow as tf

    import mmzoo
    load_before = os.getloadavg()[0]
    from mmzoo import data

    image_size = 32
    examples = data.load_synthetic("shapes_captions", "train", num_examples=5000, image_size=image_size)
    vocabulary = data.train_word_piece_vocabulary(examples.map(lambda x: x["captions"]), 128)
    # The preprocessor packs captions to the model's length + 1.
    preprocessor = mmzoo.models.ImageCaptioningPreprocessor(
        data.TextTokenizer(vocabulary), image_converter=(image_size, image_size)
    )
    model = mmzoo.presets.build_from_preset(
        "image_captioning_tiny", vocabulary_size=len(vocabulary), preprocessor=preprocessor
    )
    model.compile(optimizer="adamw", loss=mmzoo.losses.MaskedSequenceCrossEntropy(), jit_compile=True)

    def from_pipeline(source, cache=False):
        ds = data.captioning_pipeline(
            source, model, batch_size=args.batch_size, seed=0, cache=cache
        )
        return ds.map(mmzoo.models.teacher_forcing_split)

    batch = next(iter(from_pipeline(examples)))
    # Prefetched like the pipelines, so that only the work per batch differs.
    memory = tf.data.Dataset.from_tensors(batch).repeat().prefetch(tf.data.AUTOTUNE)
    with tempfile.TemporaryDirectory() as directory:
        manifest = write_files(directory, args.num_files, args.file_size)
        files, _ = data.load_image_caption_files(manifest, image_shape=(image_size, image_size))
        sources = {
            "memory (one batch, repeated)": memory,
            "synthetic: load_synthetic -> captioning_pipeline": from_pipeline(
                data.load_synthetic("shapes_captions", "train", num_examples=200000, image_size=image_size)
            ),
            "synthetic, 5,000 examples, cache=True": from_pipeline(examples, cache=True),
            f"files: {args.file_size}px JPEG -> decode, resize, tokenize": from_pipeline(files),
            f"files: {args.file_size}px JPEG, cache=True": from_pipeline(files, cache=True),
        }
        return measure(args, model, sources, "`image_captioning_tiny` (32x32 images)", load_before)


# Steps of each `fit` left out of its timing: every `fit` call makes a new
# iterator, whose start (filling the shuffle buffer, starting the map
# threads) a real training run pays once, not every few hundred steps.
SKIP_STEPS = 20


def steady_clock(skip):
    """A Keras callback whose `seconds` times the steps after the first `skip` of a `fit`."""
    import keras

    class SteadyClock(keras.callbacks.Callback):
        start = seconds = None

        def on_train_batch_begin(self, batch, logs=None):
            if batch == skip:
                self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start

    return SteadyClock()


def measure(args, model, sources, what, load_before=None):
    load_before = os.getloadavg()[0] if load_before is None else load_before
    # Compile, warm up, and run every source through one full epoch
    # (which fills the caches).
    warm_up = -(-max(5000, args.num_files) // args.batch_size) + 1
    for ds in sources.values():
        model.fit(ds, steps_per_epoch=warm_up, epochs=1, verbose=0)
    rates = {name: [] for name in sources}
    alone = {name: [] for name in sources}
    iterators = {name: iter(ds) for name, ds in sources.items()}
    skip = min(SKIP_STEPS, args.steps // 2)
    for _ in range(args.rounds):
        for name, ds in sources.items():
            clock = steady_clock(skip)
            model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[clock])
            rates[name].append((args.steps - skip) * args.batch_size / clock.seconds)
            # The pipeline on its own: batches produced per second, no model.
            iterator = iterators[name]
            start = time.perf_counter()
            for _ in range(args.steps):
                next(iterator)
            alone[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    # Each round's rate over the memory rate of the same round, so that
    # drifts in the machine's speed between rounds cancel out.
    memory = rates["memory (one batch, repeated)"]
    rows = []
    for name, r in rates.items():
        ratios = [a / b for a, b in zip(r, memory)]
        # How many times faster the pipeline alone is than training consumes.
        headroom = [a / b for a, b in zip(alone[name], memory)]
        rows.append(
            f"| {name} | {statistics.median(r):,.0f} | {statistics.median(ratios):.2f} "
            f"| {min(ratios):.2f}-{max(ratios):.2f} | {statistics.median(alone[name]):,.0f} "
            f"| {statistics.median(headroom):.1f}x |"
        )
    load = os.getloadavg()[0]
    body = (
        f"{what}, `model.fit` with XLA, batch {args.batch_size}, "
        f"{args.steps} steps per run, the first {skip} untimed (each `fit` starts a new "
        "iterator: shuffle buffer, map threads), "
        f"{args.rounds} interleaved rounds (examples/s: median; "
        "vs memory: median and range of the per-round ratios to the memory run of the same "
        f"round); 1-minute load average {load_before:.1f} before, {load:.1f} at the end. "
        "Pipeline alone: the same source iterated without the model, right after its "
        "training run; headroom: that rate over the rate of training from memory in the "
        "same round (median of rounds; the memory row's is the cost of handing over a "
        "ready batch).\n\n"
        "| data source | examples/s | vs memory | range | pipeline alone, examples/s "
        "| headroom |\n"
        "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_record:
        title = "Input pipeline vs training from memory"
        record(title if args.family == "image_captioning" else f"{title}: video QA", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
