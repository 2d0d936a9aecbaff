"""How long does `retrieval_metrics` take for 10,000 images x 10,000 texts?

Times `mmzoo.evaluation.retrieval_metrics` (both directions, recall@1/5/10,
mean and median rank) on random L2-normalised float32 embeddings for several
`block_size` values, next to the floor set by one full score matmul
(`images @ texts.T`, NumPy/BLAS) and to the same function with the one-pass
text-query ranking turned off (each direction then has its own pass and
matmul, as a plain blocked implementation would). Configurations are
interleaved over rounds so machine load affects them alike; the table has the
median over rounds and the ratio to the matmul floor (medians of one run).

    python benchmarks/retrieval_speed.py

Appends the table to benchmarks/README.md (unless --no-record).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import record  # noqa: E402

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--num", type=int, default=10000, help="images and texts (one text per image)")
PARSER.add_argument("--dim", type=int, default=256)
PARSER.add_argument("--block-sizes", default="256,1024,4096,10000", help="comma-separated")
PARSER.add_argument("--rounds", type=int, default=5)
PARSER.add_argument("--seed", type=int, default=0)
PARSER.add_argument("--no-record", action="store_true")


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(args):
    import numpy as np

    from mmzoo.evaluation import retrieval
    from mmzoo.evaluation import retrieval_metrics

    rng = np.random.default_rng(args.seed)
    images = rng.standard_normal((args.num, args.dim), dtype=np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    # Texts are noisy copies of their images, so the recalls are neither 0 nor 1.
    noise = rng.standard_normal((args.num, args.dim), dtype=np.float32) / np.sqrt(args.dim)
    texts = images + 5.0 * noise
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    block_sizes = [int(b) for b in args.block_sizes.split(",")]

    def two_passes(block_size):
        # An empty bracket sends every text query to its own pass (the one-pass
        # bookkeeping still runs, so this is a little slower than a plain
        # two-pass implementation).
        scale = retrieval._BRACKET_SCALE
        retrieval._BRACKET_SCALE = 0.0
        try:
            return retrieval_metrics(images, texts, block_size=block_size)
        finally:
            retrieval._BRACKET_SCALE = scale

    floor_name = "one full matmul, images @ texts.T (floor)"
    configs = {floor_name: lambda: images @ texts.T}
    for block_size in block_sizes:
        configs[f"retrieval_metrics, block_size={block_size}"] = (
            lambda b=block_size: retrieval_metrics(images, texts, block_size=b)
        )
    configs["two passes (one per direction), block_size=1024"] = lambda: two_passes(1024)
    # Repeated captions and images: identical rows are grouped before scoring.
    duplicated_images, duplicated_texts = images.copy(), texts.copy()
    copies = rng.choice(args.num, size=args.num // 5, replace=False)
    duplicated_images[copies] = duplicated_images[rng.integers(0, args.num, len(copies))]
    duplicated_texts[copies] = duplicated_texts[rng.integers(0, args.num, len(copies))]
    configs["retrieval_metrics, block_size=1024, 20% of rows copies of others"] = (
        lambda: retrieval_metrics(duplicated_images, duplicated_texts, block_size=1024)
    )
    for fn in configs.values():  # warm-up (allocations, BLAS threads)
        fn()
    times = {name: [] for name in configs}
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, fn in configs.items():
            times[name].append(timed(fn))
    load_after = os.getloadavg()[0]

    floor = statistics.median(times[floor_name])
    # How many text queries the default one-pass run had to re-rank.
    rerank = retrieval._text_to_image_ranks
    reranked = []

    def counting_rerank(unique_images, image_copies, texts, *args):
        reranked.append(len(texts))
        return rerank(unique_images, image_copies, texts, *args)

    retrieval._text_to_image_ranks = counting_rerank
    try:
        metrics = retrieval_metrics(images, texts)
    finally:
        retrieval._text_to_image_ranks = rerank
    assert metrics == two_passes(1024), "one-pass and two-pass ranks differ"
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        block = name.split("block_size=")[1].split(",")[0] if "block_size" in name else None
        memory = (
            f"{min(int(block), args.num) * args.num * 5 / 2**20:.0f} MiB" if block else
            f"{args.num * args.num * 4 / 2**20:.0f} MiB"
        )
        spread = f"{min(values):.3f} - {max(values):.3f}"
        rows.append(f"| {name} | {median:.3f} | {spread} | {median / floor:.2f} | {memory} |")
    body = (
        f"{args.num:,} images x {args.num:,} texts, dim {args.dim}, float32, one text per image; "
        f"both directions, recall@1/5/10, mean and median rank. Median of {args.rounds} interleaved "
        f"rounds. 1-minute load average {load_before:.1f} before, {load_after:.1f} after "
        f"({os.cpu_count()} cores); compare the ratios rather than the seconds.\n\n"
        "| configuration | median s | min - max s | vs matmul floor | score memory |\n"
        "| --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n"
        "Score memory: one `(block_size, N)` float32 score block plus its boolean comparison "
        "(the floor row: the full float32 matrix). Every retrieval_metrics row first looks for "
        "identical rows (`np.unique`); the duplicated row then scores only the unique ones. "
        f"Text queries re-ranked in their own pass by the one-pass method: {sum(reranked)} of "
        f"{args.num:,}; its metrics equal the two-pass ones. "
        f"Sanity: image_to_text/recall@1 = {metrics['image_to_text/recall@1']:.4f}, "
        f"text_to_image/recall@1 = {metrics['text_to_image/recall@1']:.4f}."
    )
    print(body)
    if not args.no_record:
        record("Retrieval metrics speed", body)


if __name__ == "__main__":
    main(PARSER.parse_args())
