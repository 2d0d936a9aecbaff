"""Image-text retrieval metrics: recall@K and mean / median rank, both ways.

The similarity of an image and a text is the dot product of their
embeddings, so pass L2-normalised embeddings to rank by cosine similarity
(as CLIP-style dual encoders do). The score matrix is computed one block of
image rows at a time, so that evaluating 10,000 images against 10,000 texts
holds one `(block_size, num_texts)` score block (and a boolean comparison of
it) at a time instead of the full `10,000 x 10,000` matrix. One pass over the
blocks serves both directions (see `_ranks`), so the matrix product, the
main cost, is computed once.

Ranks are 1-based and exact, computed without sorting: the rank of a query is
`1 + the number of candidates scoring strictly higher than its best positive`.
Ties are therefore resolved in the query's favour: a positive that ties with
negatives gets the best of the tied ranks (the optimistic convention; the
pessimistic one would count `>=`).

Identical embeddings tie exactly. Repeated captions (or images) give
bit-identical embeddings, but a matrix product can round their scores
differently depending on where they sit in a block of the product (about
1e-7 apart in float32), which would rank a copy of the positive above it.
So identical rows are grouped before scoring: each group is scored once and
counted once per copy, and the ranks do not depend on `block_size` or on
the order of the candidates. Scores of distinct embeddings are compared as
computed, in the embeddings' dtype: two distinct candidates within float
rounding of each other (about 1e-7 relative in float32) may order either
way; pass float64 embeddings to decide those in float64.

With several captions per image (COCO has five), `text_to_image` gives each
text's image. A text query has one positive, its image. An image query has
several positives, its captions: its rank is the rank of its best-ranked
caption, so it counts as a hit at K when any of its captions is in its top
K, as in the usual COCO / Flickr30k protocol.
"""

import numpy as np


def _as_embeddings(values, name):
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be 2-D `(num_items, dim)`. Received: shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"`{name}` must not be empty. Received: shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            raise ValueError(f"`{name}` must be numeric. Received: dtype {array.dtype}")
        array = array.astype(np.float64)
    elif array.dtype.itemsize < 4:
        array = array.astype(np.float32)  # float16 / bfloat16: no fast matmul
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values. Received: shape {array.shape}")
    return array


def _check_block_size(block_size):
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"`block_size` must be a positive int. Received: block_size={block_size!r}")
    return int(block_size)


def _check_ks(ks):
    ks = [ks] if isinstance(ks, (int, np.integer)) else list(ks)
    if not ks:
        raise ValueError("`ks` must name at least one K. Received: ks=()")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"Every K in `ks` must be a positive int. Received: ks={ks!r}")
    return list(dict.fromkeys(int(k) for k in ks))


def _check_text_to_image(text_to_image, num_images, num_texts):
    if text_to_image is None:
        if num_texts != num_images:
            raise ValueError(
                "Without `text_to_image`, there must be one text per image, in the same "
                f"order. Received: {num_images} images and {num_texts} texts"
            )
        return np.arange(num_texts)
    mapping = np.asarray(text_to_image)
    if mapping.ndim != 1 or mapping.shape[0] != num_texts:
        raise ValueError(
            "`text_to_image` must be 1-D with one image index per text. Received: "
            f"shape {mapping.shape} for {num_texts} texts"
        )
    if not np.issubdtype(mapping.dtype, np.integer):
        raise ValueError(f"`text_to_image` must hold integer indices. Received: dtype {mapping.dtype}")
    if mapping.min() < 0 or mapping.max() >= num_images:
        raise ValueError(
            f"`text_to_image` indices must be in [0, {num_images}) for {num_images} images. "
            f"Received: min {mapping.min()}, max {mapping.max()}"
        )
    counts = np.bincount(mapping, minlength=num_images)
    if np.any(counts == 0):
        missing = np.flatnonzero(counts == 0)
        raise ValueError(
            "Every image needs at least one text (its rank is undefined otherwise). "
            f"Received: no text for {len(missing)} images, e.g. image indices {missing[:5].tolist()}"
        )
    return mapping.astype(np.int64)


# Half-width of the bracket around each text's estimated positive score, in
# units of eps * sqrt(dim) * sum(|text * image|) (a typical float rounding
# error of the dot product). Any value gives exact ranks (see `_ranks`); it
# only trades the number of kept in-bracket scores against recomputations.
_BRACKET_SCALE = 8.0
# Kept in-bracket scores beyond max(_WINDOW_MIN_ENTRIES, _WINDOW_ENTRIES_PER_TEXT
# * num_texts) (degenerate inputs, e.g. many identical embeddings) switch the
# text queries to their own pass over text blocks.
_WINDOW_MIN_ENTRIES = 1_000_000
_WINDOW_ENTRIES_PER_TEXT = 16


def _positive_brackets(images, texts, text_to_image, block_size):
    """`(low, high)`, in the score dtype, around each text's positive score."""
    num_texts, dim = texts.shape
    eps = np.finfo(texts.dtype).eps
    low = np.empty(num_texts, texts.dtype)
    high = np.empty(num_texts, texts.dtype)
    for begin in range(0, num_texts, block_size):
        end = min(begin + block_size, num_texts)
        products = texts[begin:end].astype(np.float64) * images[text_to_image[begin:end]]
        estimate = products.sum(axis=1)
        margin = _BRACKET_SCALE * eps * np.sqrt(dim) * np.abs(products).sum(axis=1)
        low[begin:end] = estimate - margin
        high[begin:end] = estimate + margin
    return low, high


def _unique_rows(array):
    """`(unique rows in first-seen order, original -> unique index, copies - 1)`.

    Without duplicates, `(array, None, None)`.
    """
    _, first, inverse, counts = np.unique(
        array, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    if len(first) == len(array):
        return array, None, None
    # np.unique sorts rows; keep them in the order they first appear.
    order = np.argsort(first, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return array[first[order]], position[inverse.reshape(-1)], counts[order] - 1


class _Copies:
    """Counts of candidates above a threshold, each unique row weighing its copies.

    `extra[u]` is the number of copies of unique candidate `u` beyond the
    first. Counting is `above.sum(axis)` plus the few duplicated candidates'
    extra copies.
    """

    def __init__(self, extra):
        self.duplicated = None if extra is None else np.flatnonzero(extra)
        self.extra = extra

    def count(self, above, axis, offset=0, size=None):
        """Weighted count of True along `axis` (candidates `offset:offset + size`)."""
        total = above.sum(axis=axis, dtype=np.int64)
        if self.duplicated is None or not len(self.duplicated):
            return total
        size = above.shape[axis] if size is None else size
        local = self.duplicated[(self.duplicated >= offset) & (self.duplicated < offset + size)]
        if not len(local):
            return total
        picked = np.take(above, local - offset, axis=axis)
        weights = self.extra[local]
        if axis == 0:
            return total + weights @ picked
        return total + picked @ weights


def _ranks(images, texts, text_to_image, block_size):
    """Image->text and text->image ranks from one pass over image blocks.

    Identical rows are grouped first (`_unique_rows`): every copy of an
    embedding then shares one score per pair, so copies tie exactly and the
    "strictly higher" rule holds whatever the block size or the order of the
    candidates (scores of one row computed in different blocks can differ in
    the last bit). Counts weigh each unique candidate by its copies.

    Each block of unique image rows of the score matrix gives the image
    queries' ranks directly. A text query's scores form a column, spread
    over all blocks, and its positive score is known only once the block
    holding its image is done. So each block counts, per text, the scores
    above `high` and keeps the few in `(low, high]`, a bracket around a
    float64 estimate of the positive score; at the end the kept scores are
    compared with the positive score taken from the same matmul. When the
    positive score lies in its bracket, which is checked, every score
    outside the bracket is on the known side of it, so the rank is exact.
    Texts whose positive falls outside the bracket are re-ranked with their
    own rows of scores. This costs one matmul instead of one per direction.
    """
    num_images, num_texts = images.shape[0], texts.shape[0]
    unique_images, image_of, image_extra = _unique_rows(images)
    unique_texts, text_of, text_extra = _unique_rows(texts)
    image_copies, text_copies = _Copies(image_extra), _Copies(text_extra)
    if image_of is None:
        image_of = np.arange(num_images)
    num_unique_images = unique_images.shape[0]
    # Original images grouped by unique row, and texts grouped by image.
    image_order = np.argsort(image_of, kind="stable")
    image_starts = np.searchsorted(image_of[image_order], np.arange(num_unique_images + 1))
    order = np.argsort(text_to_image, kind="stable")
    starts = np.searchsorted(text_to_image[order], np.arange(num_images + 1))
    text_image = image_of[text_to_image]  # each text's positive unique image row
    low, high = _positive_brackets(images, texts, text_to_image, block_size)
    texts_t = np.ascontiguousarray(unique_texts.T)
    image_ranks = np.empty(num_images, np.int64)
    positive = np.empty(num_texts, images.dtype)
    text_above_high = np.zeros(num_texts, np.int64)
    window_texts, window_scores, window_size = [], [], 0
    window_limit = max(_WINDOW_MIN_ENTRIES, _WINDOW_ENTRIES_PER_TEXT * num_texts)
    for begin in range(0, num_unique_images, block_size):
        end = min(begin + block_size, num_unique_images)
        unique_scores = unique_images[begin:end] @ texts_t
        # One column per text (copies of a text share their column's values).
        scores = unique_scores if text_of is None else unique_scores[:, text_of]

        # Image queries. Positive scores are read from this same matrix (not
        # recomputed), so the comparison never sees a positive differing by
        # rounding.
        queries = image_order[image_starts[begin] : image_starts[end]]
        lengths = starts[queries + 1] - starts[queries]
        first = np.repeat(starts[queries], lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        query_texts = order[first + within]
        query_positive = scores[text_image[query_texts] - begin, query_texts]
        best = np.maximum.reduceat(query_positive, np.cumsum(lengths) - lengths)
        if image_extra is None:  # query i is row i of the block
            image_ranks[queries] = 1 + text_copies.count(unique_scores > best[:, None], axis=1)
        else:  # copies of an image share its row; at most block_size rows at a time
            rows = image_of[queries] - begin
            for chunk in range(0, len(queries), block_size):
                part = slice(chunk, chunk + block_size)
                above = unique_scores[rows[part]] > best[part, None]
                image_ranks[queries[part]] = 1 + text_copies.count(above, axis=1)

        # Text queries: counts above the bracket, in-bracket scores kept.
        block_texts = np.flatnonzero((text_image >= begin) & (text_image < end))
        positive[block_texts] = scores[text_image[block_texts] - begin, block_texts]
        if window_texts is None:
            continue
        above_high = image_copies.count(scores > high, axis=0, offset=begin)
        text_above_high += above_high
        in_bracket = np.flatnonzero(
            image_copies.count(scores > low, axis=0, offset=begin) > above_high
        )
        if len(in_bracket):
            candidates = scores[:, in_bracket]
            keep = (candidates > low[in_bracket]) & (candidates <= high[in_bracket])
            kept_rows, columns = np.nonzero(keep)
            kept_texts, kept_scores = in_bracket[columns], candidates[kept_rows, columns]
            if image_extra is not None:  # one entry per copy of the image
                copies = 1 + image_extra[begin + kept_rows]
                kept_texts, kept_scores = np.repeat(kept_texts, copies), np.repeat(kept_scores, copies)
            window_texts.append(kept_texts)
            window_scores.append(kept_scores)
            window_size += len(kept_rows)
            if window_size > window_limit:
                window_texts = None

    if window_texts is None:
        text_ranks = _text_to_image_ranks(
            unique_images, image_copies, texts, text_image, block_size
        )
        return image_ranks, text_ranks
    text_ranks = 1 + text_above_high
    if window_texts:
        kept_texts = np.concatenate(window_texts)
        kept_scores = np.concatenate(window_scores)
        # The positive itself is in its bracket and is not counted (not >).
        text_ranks += np.bincount(kept_texts[kept_scores > positive[kept_texts]], minlength=num_texts)
    missed = np.flatnonzero(~((positive > low) & (positive <= high)))
    if len(missed):
        text_ranks[missed] = _text_to_image_ranks(
            unique_images, image_copies, texts[missed], text_image[missed], block_size
        )
    return image_ranks, text_ranks


def _text_to_image_ranks(unique_images, image_copies, texts, text_image, block_size):
    """Text-query ranks from their own rows of scores (`_ranks`' fallback).

    `text_image` is each text's positive as a row of `unique_images`.
    """
    num_texts = texts.shape[0]
    images_t = np.ascontiguousarray(unique_images.T)
    ranks = np.empty(num_texts, np.int64)
    for begin in range(0, num_texts, block_size):
        end = min(begin + block_size, num_texts)
        scores = texts[begin:end] @ images_t
        best = scores[np.arange(end - begin), text_image[begin:end]]
        ranks[begin:end] = 1 + image_copies.count(scores > best[:, None], axis=1)
    return ranks


def retrieval_metrics(
    image_embeddings,
    text_embeddings,
    text_to_image=None,
    ks=(1, 5, 10),
    block_size=1024,
    return_ranks=False,
):
    """Recall@K, mean and median rank for image->text and text->image retrieval.

    Similarity is the dot product: pass L2-normalised embeddings for cosine
    similarity. Ranks are 1-based, `1 + the number of candidates scoring
    strictly higher than the best positive` (ties count in the query's
    favour; identical embeddings always tie, see the module docstring). An
    image with several captions is a hit at K when any caption is in its
    top K. The result does not depend on `block_size`.

    Args:
        image_embeddings: array-like `(num_images, dim)` (NumPy, a tf / keras
            tensor, nested lists).
        text_embeddings: array-like `(num_texts, dim)`.
        text_to_image: optional int array-like `(num_texts,)`, the image index
            of each text; every image needs at least one text. None: one text
            per image, in the same order.
        ks: ints. The K of each recall@K. A K at least the number of
            candidates gives recall 1.
        block_size: int. Image rows of the score matrix computed at a
            time (a speed and memory knob only); the score block and its
            comparison take about `block_size * num_texts * (itemsize + 1)`
            bytes.
        return_ranks: bool. Also return the per-query ranks.

    Returns:
        dict with float values under `"image_to_text/recall@{K}"`,
        `"image_to_text/mean_rank"`, `"image_to_text/median_rank"` and the
        same three for `"text_to_image/..."`. With `return_ranks=True`,
        `(metrics, {"image_to_text": ranks (num_images,), "text_to_image":
        ranks (num_texts,)})`.

    Example:

    >>> images = np.eye(3)
    >>> texts = np.array([[1.0, 0, 0], [0, 0, 1], [0, 1, 0]])
    >>> metrics = retrieval_metrics(images, texts, ks=(1, 2))
    >>> metrics["image_to_text/recall@1"], metrics["text_to_image/mean_rank"]
    (0.333..., 1.666...)
    >>> # Two captions per image: texts 0, 1 describe image 0, texts 2, 3 image 1.
    >>> retrieval_metrics(
    ...     np.eye(2), [[1, 0], [0, 1], [0, 1], [0.6, 0.8]],
    ...     text_to_image=[0, 0, 1, 1], ks=(1,))["image_to_text/recall@1"]
    1.0
    """
    images = _as_embeddings(image_embeddings, "image_embeddings")
    texts = _as_embeddings(text_embeddings, "text_embeddings")
    if images.shape[1] != texts.shape[1]:
        raise ValueError(
            "Image and text embeddings must have the same dimension. Received: "
            f"image_embeddings shape {images.shape}, text_embeddings shape {texts.shape}"
        )
    dtype = np.result_type(images.dtype, texts.dtype)
    images, texts = images.astype(dtype, copy=False), texts.astype(dtype, copy=False)
    mapping = _check_text_to_image(text_to_image, images.shape[0], texts.shape[0])
    ks = _check_ks(ks)
    block_size = _check_block_size(block_size)

    image_ranks, text_ranks = _ranks(images, texts, mapping, block_size)
    ranks = {"image_to_text": image_ranks, "text_to_image": text_ranks}
    metrics = {}
    for direction, direction_ranks in ranks.items():
        for k in ks:
            metrics[f"{direction}/recall@{k}"] = float(np.mean(direction_ranks <= k))
        metrics[f"{direction}/mean_rank"] = float(np.mean(direction_ranks))
        metrics[f"{direction}/median_rank"] = float(np.median(direction_ranks))
    if return_ranks:
        return metrics, ranks
    return metrics
