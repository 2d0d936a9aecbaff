"""Zero-shot classification with a contrastive dual encoder (CLIP style).

A class is represented by the mean of the L2-normalised text embeddings of
prompts built from templates ("a photo of a {}."), re-normalised (prompt
ensembling, Radford et al. 2021, as in open_clip's `build_zero_shot_classifier`).
An image is assigned the class whose embedding has the largest dot product
with the image embedding. Image embeddings are expected L2-normalised, as for
retrieval; the predicted class and the top-K results do not depend on it,
since scaling an image's embedding scales all its scores alike.
"""

import numpy as np

from mmzoo.evaluation.retrieval import _as_embeddings
from mmzoo.evaluation.retrieval import _check_block_size
from mmzoo.evaluation.retrieval import _check_ks

_EPSILON = 1e-12  # as torch.nn.functional.normalize in open_clip


def _l2_normalize(x):
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, _EPSILON)


def zero_shot_classifier(encode_text, class_names, templates=("a photo of a {}.",), batch_size=256):
    """Class embeddings from prompt templates, for zero-shot classification.

    For each class, every template is filled with the class name (its `{}`
    replaced), the prompts are encoded with `encode_text`, each embedding is
    L2-normalised, the embeddings are averaged and the mean is L2-normalised
    again. Prompts of all classes are encoded together in batches of up to
    `batch_size` strings; the result is the same as encoding class by class.

    Args:
        encode_text: callable, list of str -> array-like `(len(list), dim)`
            (for a dual encoder, e.g. a function that tokenizes and calls
            its text tower).
        class_names: list of str, one per class.
        templates: str or list of str, each containing `{}` once or more.
        batch_size: int. Most prompts per `encode_text` call.

    Returns:
        float32 array `(num_classes, dim)` with unit-norm rows (a zero row
        only if the normalised prompt embeddings of a class cancel out).

    Example:

    >>> table = {"a photo of a cat.": [1.0, 0.0], "a photo of a dog.": [0.0, 2.0]}
    >>> encode = lambda texts: np.array([table[t] for t in texts])
    >>> zero_shot_classifier(encode, ["cat", "dog"])
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    if not callable(encode_text):
        raise ValueError(f"`encode_text` must be callable. Received: {encode_text!r}")
    if isinstance(class_names, (str, bytes)):
        raise ValueError(f"`class_names` must be a list of names, not one string. Received: {class_names!r}")
    class_names = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in class_names]
    if not class_names:
        raise ValueError("`class_names` must not be empty. Received: []")
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not templates:
        raise ValueError("`templates` must not be empty. Received: []")
    for template in templates:
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(
                f'Every template must be a str containing "{{}}" for the class name. Received: {template!r}'
            )
    batch_size = _check_block_size(batch_size)

    prompts = [template.replace("{}", name) for name in class_names for template in templates]
    embeddings = []
    for begin in range(0, len(prompts), batch_size):
        batch = prompts[begin : begin + batch_size]
        encoded = np.asarray(encode_text(batch), dtype=np.float64)
        if encoded.ndim != 2 or encoded.shape[0] != len(batch):
            raise ValueError(
                f"`encode_text` must return an array `(num_texts, dim)`. Received: shape "
                f"{encoded.shape} for {len(batch)} texts"
            )
        if embeddings and encoded.shape[1] != embeddings[0].shape[1]:
            raise ValueError(
                "`encode_text` returned embeddings of different sizes. Received: "
                f"dim {embeddings[0].shape[1]} then {encoded.shape[1]}"
            )
        embeddings.append(encoded)
    embeddings = _l2_normalize(np.concatenate(embeddings, axis=0))
    embeddings = embeddings.reshape(len(class_names), len(templates), -1)
    return _l2_normalize(embeddings.mean(axis=1)).astype(np.float32)


def _prepare(image_embeddings, classifier):
    images = _as_embeddings(image_embeddings, "image_embeddings")
    classifier = _as_embeddings(classifier, "classifier")
    if images.shape[1] != classifier.shape[1]:
        raise ValueError(
            "Image embeddings and classifier must have the same dimension. Received: "
            f"image_embeddings shape {images.shape}, classifier shape {classifier.shape}"
        )
    dtype = np.result_type(images.dtype, classifier.dtype)
    return images.astype(dtype, copy=False), classifier.astype(dtype, copy=False)


def _score_blocks(images, classifier, block_size):
    """Yields `(begin, end, scores)` with scores `(end - begin, num_classes)`."""
    block_size = _check_block_size(block_size)
    classifier_t = np.ascontiguousarray(classifier.T)
    for begin in range(0, images.shape[0], block_size):
        end = min(begin + block_size, images.shape[0])
        yield begin, end, images[begin:end] @ classifier_t


def zero_shot_predict(image_embeddings, classifier, block_size=4096):
    """Predicted class index per image: the arg-max of the dot products.

    Args:
        image_embeddings: array-like `(num_images, dim)`, L2-normalised.
        classifier: array-like `(num_classes, dim)` from
            `zero_shot_classifier`.
        block_size: int. Images scored at a time.

    Returns:
        int64 array `(num_images,)`; ties go to the lowest class index.

    Example:

    >>> zero_shot_predict([[0.6, 0.8], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]])
    array([1, 0])
    """
    images, classifier = _prepare(image_embeddings, classifier)
    chunks = [np.argmax(scores, axis=1) for _, _, scores in _score_blocks(images, classifier, block_size)]
    return np.concatenate(chunks).astype(np.int64)


def zero_shot_accuracy(image_embeddings, classifier, labels, ks=(1, 5), block_size=4096):
    """Top-K zero-shot accuracy.

    An image is right at K when fewer than K classes rank above its true
    class, ranking by score and breaking exact ties by class index (lower
    first), so that top-1 accuracy equals the accuracy of
    `zero_shot_predict`. Only the K not larger than the number of classes
    are reported (top-K with K >= num_classes is always 1): with 3 classes,
    `ks=(1, 5)` gives only `"top1"`.

    Args:
        image_embeddings: array-like `(num_images, dim)`, L2-normalised.
        classifier: array-like `(num_classes, dim)` from
            `zero_shot_classifier`.
        labels: int array-like `(num_images,)`, the true class indices.
        ks: ints.
        block_size: int. Images scored at a time.

    Returns:
        dict `{"top{K}": float}` for each K <= num_classes.

    Example:

    >>> classifier = np.eye(3)
    >>> images = [[0.6, 0.8, 0.0], [0.0, 0.6, 0.8], [0.8, 0.0, 0.6]]
    >>> zero_shot_accuracy(images, classifier, labels=[1, 2, 2], ks=(1, 2, 5))
    {'top1': 0.666..., 'top2': 1.0}
    """
    ks = _check_ks(ks)
    images, classifier = _prepare(image_embeddings, classifier)
    num_images, num_classes = images.shape[0], classifier.shape[0]
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "`labels` must be a 1-D array of class indices. Received: shape "
            f"{labels.shape}, dtype {labels.dtype}"
        )
    if len(labels) != num_images:
        raise ValueError(
            "`labels` must have one class index per image. Received: "
            f"{len(labels)} labels for {num_images} images"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"`labels` must be in [0, {num_classes}) for {num_classes} classes. "
            f"Received: min {labels.min()}, max {labels.max()}"
        )
    ranks = np.empty(num_images, np.int64)
    class_index = np.arange(num_classes)[None, :]
    for begin, end, scores in _score_blocks(images, classifier, block_size):
        block_labels = labels[begin:end]
        true_scores = scores[np.arange(end - begin), block_labels][:, None]
        # Classes ranked above the true one: higher score, or an equal score
        # and a lower index (np.argmax's tie rule).
        above = (scores > true_scores) | ((scores == true_scores) & (class_index < block_labels[:, None]))
        ranks[begin:end] = 1 + np.count_nonzero(above, axis=1)
    return {f"top{k}": float(np.mean(ranks <= k)) for k in ks if k <= num_classes}
