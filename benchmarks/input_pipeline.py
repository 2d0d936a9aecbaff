"""How fast are mmzoo's input pipelines and synthetic data generation?

Writes JPEG images, JPEG frame folders and .npy clips into a temporary folder,
then times, in examples per second (median over --runs runs, after a warm-up):

* image-caption files -> decode, resize, tokenize, batch (`captioning_pipeline`),
  and the same files packed into TFRecord shards (`pack_records`, `load_tfrecords`)
* the shards read by two reader processes at once, as two workers read them:
  each its own share (`load_tfrecords(input_context=...)`, what
  `Trainer.fit(dataset_fn)` does), or each all of it, keeping half of every
  global batch (what `Trainer.fit(dataset)` does on two workers). The rate is
  the examples the two processes keep per second, summed.
* video-QA files (JPEG frame folders, and .npy clips) -> decode, sample frames,
  resize, tokenize, batch (`video_qa_pipeline`)
* synthetic generation in numpy (`generate_shapes_*`), and `load_synthetic`
  through `captioning_pipeline`.

Prints a table and writes it, with the command, the machine and the date,
to benchmarks/README.md (the "Input pipeline" section's results, replacing
the earlier run).

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/input_pipeline.py
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--num-batches", type=int, default=20, help="timed batches per run")
parser.add_argument("--warmup-batches", type=int, default=5)
parser.add_argument("--sequence-length", type=int, default=24)
parser.add_argument("--num-images", type=int, default=256, help="image files written")
parser.add_argument("--source-size", type=int, default=256, help="side of the JPEGs on disk")
parser.add_argument("--num-shards", type=int, default=4, help="TFRecord shards packed")
parser.add_argument("--image-size", type=int, default=64, help="side after resizing")
parser.add_argument("--num-videos", type=int, default=64, help="clips written per format")
parser.add_argument("--source-frames", type=int, default=16, help="frames per clip on disk")
parser.add_argument("--source-frame-size", type=int, default=128)
parser.add_argument("--num-frames", type=int, default=8, help="frames per clip after sampling")
parser.add_argument("--frame-size", type=int, default=32, help="frame side after resizing")
parser.add_argument("--synthetic-examples", type=int, default=2048)
parser.add_argument("--readme", default="benchmarks/README.md", help="'' to skip writing")
# Internal: one of the two reader processes (see `reader_rates`).
parser.add_argument("--reader", help=argparse.SUPPRESS)
args = parser.parse_args()

import csv  # noqa: E402
import datetime  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import tensorflow as tf  # noqa: E402

import mmzoo.data  # noqa: E402

SECTION_START = "<!-- input_pipeline results start -->"
SECTION_END = "<!-- input_pipeline results end -->"


def median_rate(fn, count):
    """Median of `count / seconds` over `args.runs` calls of `fn`."""
    rates = []
    for _ in range(args.runs):
        start = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - start))
    return float(np.median(rates)), float(np.min(rates)), float(np.max(rates))


def pipeline_rate(dataset):
    """Examples/s of a batched dataset after a warm-up, median over runs."""

    iterator = iter(dataset)  # one iterator: runs continue where the last stopped

    def run():
        for _ in range(args.num_batches):
            next(iterator)

    for _ in range(args.warmup_batches):  # starts the threads, fills the buffers
        next(iterator)
    return median_rate(run, args.num_batches * args.batch_size)


def reader(spec):
    """One reader process: `MODE,ID,SHARDS,VOCABULARY,READY_DIR` (see `reader_rates`).

    Prints its median / min / max rate of examples kept per second, and the
    CPU seconds the process spent (all its threads) per 1,000 examples kept.
    """
    import json

    mode, index, shards, vocabulary_file, ready_dir = spec.split(",")
    index = int(index)
    vocabulary = open(vocabulary_file).read().split("\n")
    tokenizer = mmzoo.data.TextTokenizer(vocabulary, sequence_length=args.sequence_length)
    shape = (args.image_size,) * 2
    context = tf.distribute.InputContext(2, index, 2)
    if mode == "share":  # this worker's shards, per-replica batches
        images, _ = mmzoo.data.load_tfrecords(shards, image_shape=shape, input_context=context)
        keep = 1.0
    else:  # every record, global batches of which this worker keeps half
        images, _ = mmzoo.data.load_tfrecords(shards, image_shape=shape)
        context, keep = None, 0.5
    dataset = mmzoo.data.captioning_pipeline(
        images, tokenizer, batch_size=args.batch_size, shuffle_buffer=256, seed=0,
        input_context=context,
    )
    batch = args.batch_size // 2 if mode == "share" else args.batch_size
    iterator = iter(dataset)
    for _ in range(args.warmup_batches):
        next(iterator)
    # Both processes time the same stretch.
    open(os.path.join(ready_dir, str(index)), "w").close()
    while len(os.listdir(ready_dir)) < 2:
        time.sleep(0.01)

    def run():
        for _ in range(args.num_batches):
            next(iterator)

    cpu = time.process_time()
    median, low, high = median_rate(run, args.num_batches * batch * keep)
    cpu = time.process_time() - cpu
    kept = args.runs * args.num_batches * batch * keep
    print(json.dumps([median, low, high, 1000 * cpu / kept]))


def reader_rates(mode, shards, vocabulary, folder):
    """Examples kept per second by two reader processes at once, summed, and
    their mean CPU seconds per 1,000 examples kept."""
    import json

    vocabulary_file = os.path.join(folder, "vocabulary.txt")
    with open(vocabulary_file, "w") as f:
        f.write("\n".join(vocabulary))
    ready_dir = tempfile.mkdtemp(dir=folder)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, *sys.argv[1:], "--readme", "",
             "--reader", f"{mode},{i},{shards},{vocabulary_file},{ready_dir}"],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        for i in range(2)
    ]
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"a reader process failed ({proc.returncode})")
        rates.append(json.loads(out.strip().splitlines()[-1]))
    cpu = float(np.mean([r[3] for r in rates]))
    return tuple(float(sum(r[i] for r in rates)) for i in range(3)), (cpu, cpu, cpu)


def write_files(folder):
    """JPEG images + captions manifest; JPEG-folder and .npy clips + QA manifests."""
    data = mmzoo.data.generate_shapes_captions(
        args.num_images, image_size=args.source_size, captions_per_image=1
    )
    rows = ["image_path,caption"]
    for i, (image, captions) in enumerate(zip(data["images"], data["captions"])):
        name = f"images/{i:05d}.jpg"
        os.makedirs(os.path.join(folder, "images"), exist_ok=True)
        PIL.Image.fromarray((image * 255).astype("uint8")).save(
            os.path.join(folder, name), quality=90
        )
        rows.append(f"{name},{captions[0]}")
    with open(os.path.join(folder, "captions.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")

    clips = mmzoo.data.generate_shapes_video_qa(
        args.num_videos, image_size=args.source_frame_size, num_frames=args.source_frames
    )
    header = ("video_path", "question", "answer")
    frame_rows, npy_rows = [header], [header]
    for i, video in enumerate(clips["videos"]):
        pixels = (video * 255).astype("uint8")
        clip_dir = f"frames/{i:05d}"
        os.makedirs(os.path.join(folder, clip_dir))
        for t, frame in enumerate(pixels):
            PIL.Image.fromarray(frame).save(os.path.join(folder, clip_dir, f"{t:03d}.jpg"),
                                            quality=90)
        np.save(os.path.join(folder, f"clip_{i:05d}.npy"), pixels)
        # Through the csv module: some questions hold a comma.
        qa = (clips["questions"][i], clips["answers"][i])
        frame_rows.append((clip_dir, *qa))
        npy_rows.append((f"clip_{i:05d}.npy", *qa))
    for name, lines in (("frames.csv", frame_rows), ("npy.csv", npy_rows)):
        with open(os.path.join(folder, name), "w", newline="") as f:
            csv.writer(f).writerows(lines)
    return data["captions"][:, 0].tolist() + clips["questions"].tolist()


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next(
            line.split(":", 1)[1].strip() for line in lscpu.splitlines()
            if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{cores}-core CPU ({cpu}), no GPU; Python {platform.python_version()}, " \
           f"TensorFlow {tf.__version__}"


def load_average():
    """1-minute load average (other processes share the 2 cores)."""
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return float("nan")


def main():
    load_before = load_average()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        texts = write_files(folder)
        vocabulary = mmzoo.data.train_word_piece_vocabulary(texts, vocabulary_size=400)
        tokenizer = mmzoo.data.TextTokenizer(vocabulary, sequence_length=args.sequence_length)
        answers = list(mmzoo.data.VIDEO_QA_ANSWERS)
        common = {"batch_size": args.batch_size, "shuffle_buffer": 256, "seed": 0}

        images, report = mmzoo.data.load_image_caption_files(
            os.path.join(folder, "captions.csv"), image_shape=(args.image_size,) * 2
        )
        rate = pipeline_rate(mmzoo.data.captioning_pipeline(images, tokenizer, **common))
        results.append((
            "image-caption files",
            f"{args.source_size}px JPEG -> decode, resize {args.image_size}px, tokenize, batch",
            "examples/s", rate,
        ))
        assert report.num_skipped == 0, report.summary()

        # The same files packed into TFRecord shards (`mmzoo data pack`).
        shards = os.path.join(folder, "records")
        start = time.perf_counter()
        mmzoo.data.pack_records(os.path.join(folder, "captions.csv"), shards,
                                num_shards=args.num_shards, verbose=False)
        pack_rate = args.num_images / (time.perf_counter() - start)
        images, report = mmzoo.data.load_tfrecords(shards, image_shape=(args.image_size,) * 2)
        results.append((
            f"image-caption TFRecord shards ({args.num_shards})",
            f"the same JPEGs packed -> decode, resize {args.image_size}px, tokenize, batch",
            "examples/s",
            pipeline_rate(mmzoo.data.captioning_pipeline(images, tokenizer, **common)),
        ))
        results.append((
            "pack_records (one run)", f"{args.num_images} JPEGs checked and written to "
            f"{args.num_shards} shards", "images/s", (pack_rate, pack_rate, pack_rate),
        ))
        assert report.num_skipped == 0, report.summary()
        for mode, what in (
            ("share", "each its own shards (input_context), batches of "
             f"{args.batch_size // 2}"),
            ("whole", f"each all shards, batches of {args.batch_size}, half of each kept"),
        ):
            rate, cpu = reader_rates(mode, shards, vocabulary, folder)
            results.append((
                f"image-caption TFRecord shards, 2 reader processes at once ({mode})",
                f"{what}; examples kept, both processes summed", "examples/s", rate,
            ))
            results.append((
                f"the same ({mode}): CPU time of one reader process",
                "CPU seconds (all threads) per 1,000 examples it keeps, mean of the two",
                "CPU-s", cpu,
            ))

        for name, what in (("frames.csv", "JPEG frame folders"), ("npy.csv", ".npy clips")):
            videos, report = mmzoo.data.load_video_qa_files(
                os.path.join(folder, name), num_frames=args.num_frames,
                image_shape=(args.frame_size,) * 2,
            )
            dataset = mmzoo.data.video_qa_pipeline(
                videos, tokenizer, answer_vocabulary=answers, **common
            )
            results.append((
                f"video-QA files ({what})",
                f"{args.source_frames}x{args.source_frame_size}px -> {args.num_frames} frames, "
                f"resize {args.frame_size}px, tokenize, batch",
                "examples/s", pipeline_rate(dataset),
            ))
            assert report.num_skipped == 0, report.summary()

        # The frame folders packed into TFRecord shards (one record a clip).
        shards = os.path.join(folder, "clip_records")
        mmzoo.data.pack_records(os.path.join(folder, "frames.csv"), shards,
                                num_shards=args.num_shards, verbose=False)
        videos, report = mmzoo.data.load_tfrecords(
            shards, image_shape=(args.frame_size,) * 2, num_frames=args.num_frames
        )
        dataset = mmzoo.data.video_qa_pipeline(
            videos, tokenizer, answer_vocabulary=answers, **common
        )
        results.append((
            f"video-QA TFRecord shards ({args.num_shards})",
            "the same JPEG frame folders packed -> the same work",
            "examples/s", pipeline_rate(dataset),
        ))
        assert report.num_skipped == 0, report.summary()

    n = args.synthetic_examples
    for name, generate, what, unit in (
        ("shapes_captions (numpy)", mmzoo.data.generate_shapes_captions,
         "64px images with 5 captions", "images/s"),
        ("shapes_classification (numpy)", mmzoo.data.generate_shapes_classification,
         "64px images with a question", "images/s"),
        ("shapes_video_qa (numpy)", mmzoo.data.generate_shapes_video_qa,
         "8x32px clips with a question", "clips/s"),
    ):
        results.append((name, what, unit, median_rate(lambda: generate(n), n)))

    synthetic = mmzoo.data.load_synthetic(
        "shapes_captions", num_examples=100_000, image_size=64
    )
    results.append((
        "load_synthetic -> captioning_pipeline",
        "64px shapes_captions generated in tf.data, tokenize, batch",
        "examples/s",
        pipeline_rate(mmzoo.data.captioning_pipeline(synthetic, tokenizer, **common)),
    ))

    header = f"| pipeline | what is timed | rate (median of {args.runs}) | min-max |"
    lines = [header, "| --- | --- | --- | --- |"]
    for name, what, unit, (median, low, high) in results:
        if unit == "CPU-s":  # one measurement, not a median of runs
            lines.append(f"| {name} | {what} | {median:.2f} {unit} | - |")
        else:
            lines.append(
                f"| {name} | {what} | {median:,.0f} {unit} | {low:,.0f}-{high:,.0f} |"
            )
    table = "\n".join(lines)
    print(table)

    if args.readme:
        command = "TF_CPP_MIN_LOG_LEVEL=2 python " + " ".join(
            shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:]
        )
        block = (
            f"\n### {datetime.date.today().isoformat()}\n\n"
            f"Command: `{command}`  \n"
            f"Machine: {machine()}  \n"
            f"1-minute load average {load_before:.1f} before, {load_average():.1f} after "
            "(the value before counts only other jobs, so above ~0.5 means they shared the "
            "cores; the value after also counts this benchmark's own threads).  \n"
            f"Batch size {args.batch_size}, {args.num_batches} timed batches per run after "
            f"{args.warmup_batches} warm-up batches.\n\n{table}\n"
        )
        text = open(args.readme).read() if os.path.exists(args.readme) else "# mmzoo benchmarks\n"
        if SECTION_END in text:
            # The latest run replaces the earlier ones (git keeps them).
            head, _, rest = text.partition(SECTION_START)
            _, _, tail = rest.partition(SECTION_END)
            text = head + SECTION_START + "\n" + block.lstrip("\n") + "\n" + SECTION_END + tail
        else:
            text = text.rstrip("\n") + "\n" + block
        with open(args.readme, "w") as f:
            f.write(text)
        print(f"wrote the results to {args.readme}")


if __name__ == "__main__":
    if args.reader:
        reader(args.reader)
    else:
        main()
