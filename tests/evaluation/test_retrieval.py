import doctest
from unittest import mock

import numpy as np

from mmzoo.evaluation import retrieval as retrieval_module
from mmzoo.evaluation import retrieval_metrics
from mmzoo.testing import TestCase


def brute_force_ranks(images, texts, text_to_image):
    """Ranks from the full score matrix, one query at a time."""
    scores = images @ texts.T  # (num_images, num_texts)
    image_ranks = []
    for i in range(len(images)):
        positives = np.flatnonzero(text_to_image == i)
        image_ranks.append(min(1 + np.sum(scores[i] > scores[i, t]) for t in positives))
    text_ranks = [1 + np.sum(scores[:, t] > scores[text_to_image[t], t]) for t in range(len(texts))]
    return np.array(image_ranks), np.array(text_ranks)


def brute_force_metrics(images, texts, text_to_image, ks):
    image_ranks, text_ranks = brute_force_ranks(images, texts, text_to_image)
    metrics = {}
    for name, ranks in (("image_to_text", image_ranks), ("text_to_image", text_ranks)):
        for k in ks:
            metrics[f"{name}/recall@{k}"] = np.mean(ranks <= k)
        metrics[f"{name}/mean_rank"] = np.mean(ranks)
        metrics[f"{name}/median_rank"] = np.median(ranks)
    return metrics


def normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class RetrievalMetricsTest(TestCase):
    def test_hand_computed(self):
        # Scores (images x texts):
        #   image 0: [0.9, 0.1, 0.5, 0.0]  -> own text 0 is first: rank 1
        #   image 1: [0.8, 0.3, 0.4, 0.5]  -> own text 1 is 4th: rank 4
        #   image 2: [0.1, 0.7, 0.6, 0.9]  -> own text 2 is 3rd: rank 3
        #   image 3: [0.0, 0.2, 0.1, 0.3]  -> own text 3 is first: rank 1
        scores = np.array(
            [[0.9, 0.1, 0.5, 0.0], [0.8, 0.3, 0.4, 0.5], [0.1, 0.7, 0.6, 0.9], [0.0, 0.2, 0.1, 0.3]]
        )
        # Images are the identity, so texts are the score columns.
        metrics = retrieval_metrics(np.eye(4), scores.T, ks=(1, 3))
        self.assertEqual(metrics["image_to_text/recall@1"], 0.5)
        self.assertEqual(metrics["image_to_text/recall@3"], 0.75)
        self.assertEqual(metrics["image_to_text/mean_rank"], (1 + 4 + 3 + 1) / 4)
        self.assertEqual(metrics["image_to_text/median_rank"], 2.0)
        # Text queries are the columns: text 0 [0.9, 0.8, 0.1, 0.0] -> image 0
        # rank 1; text 1 [0.1, 0.3, 0.7, 0.2] -> rank 2; text 2
        # [0.5, 0.4, 0.6, 0.1] -> rank 1; text 3 [0.0, 0.5, 0.9, 0.3] -> rank 3.
        self.assertEqual(metrics["text_to_image/recall@1"], 0.5)
        self.assertEqual(metrics["text_to_image/recall@3"], 1.0)
        self.assertEqual(metrics["text_to_image/mean_rank"], (1 + 2 + 1 + 3) / 4)
        self.assertEqual(metrics["text_to_image/median_rank"], 1.5)
        self.assertEqual(
            sorted(metrics),
            sorted(
                f"{d}/{m}"
                for d in ("image_to_text", "text_to_image")
                for m in ("recall@1", "recall@3", "mean_rank", "median_rank")
            ),
        )
        for value in metrics.values():
            self.assertIsInstance(value, float)

    def test_ties_count_in_favour_of_the_query(self):
        # Every text scores the same for every image: all ranks are 1.
        metrics, ranks = retrieval_metrics(np.ones((3, 2)), np.ones((3, 2)), ks=(1,), return_ranks=True)
        self.assertEqual(metrics["image_to_text/recall@1"], 1.0)
        self.assertAllEqual(ranks["text_to_image"], [1, 1, 1])

    def test_multi_caption_hand_computed(self):
        # Image 0 has texts 0, 1; image 1 has texts 2, 3, 4 (order mixed below).
        images = np.array([[1.0, 0.0], [0.0, 1.0]])
        texts = np.array([[0.2, 0.1], [0.9, 0.0], [0.5, 0.6], [0.3, 0.4], [0.95, 0.3]])
        text_to_image = np.array([0, 0, 1, 1, 1])
        # Image 0 scores [0.2, 0.9, 0.5, 0.3, 0.95]: best own caption 0.9 is
        # second. Image 1 scores [0.1, 0.0, 0.6, 0.4, 0.3]: own 0.6 is first.
        metrics, ranks = retrieval_metrics(images, texts, text_to_image, ks=(1, 2), return_ranks=True)
        self.assertAllEqual(ranks["image_to_text"], [2, 1])
        self.assertEqual(metrics["image_to_text/recall@1"], 0.5)
        self.assertEqual(metrics["image_to_text/recall@2"], 1.0)
        # Text queries: [0.2 vs 0.1] rank 1, [0.9 vs 0] 1, [0.6 vs 0.5] 1,
        # [0.4 vs 0.3] 1, [0.3 vs 0.95] 2.
        self.assertAllEqual(ranks["text_to_image"], [1, 1, 1, 1, 2])
        self.assertAllClose(metrics["text_to_image/mean_rank"], 6 / 5)

    def test_equal_to_brute_force_random(self):
        rng = np.random.RandomState(0)
        images = normalize(rng.randn(37, 8))
        texts = normalize(images + 1.5 * rng.randn(37, 8))
        mapping = np.arange(37)
        expected = brute_force_metrics(images, texts, mapping, ks=(1, 5, 10))
        for block_size in (1, 5, 16, 37, 1024):
            metrics = retrieval_metrics(images, texts, block_size=block_size)
            self.assertEqual(metrics, expected, msg=f"block_size={block_size}")

    def test_equal_to_brute_force_with_ties_and_multi_captions(self):
        # Small integer embeddings: dot products are exact whatever the
        # blocking, and ties are frequent.
        rng = np.random.RandomState(1)
        num_images = 23
        text_to_image = np.concatenate([np.arange(num_images), rng.randint(0, num_images, 40)])
        rng.shuffle(text_to_image)
        images = rng.randint(-2, 3, (num_images, 4))
        texts = images[text_to_image] + rng.randint(-2, 3, (len(text_to_image), 4))
        expected = brute_force_metrics(images.astype(float), texts.astype(float), text_to_image, ks=(1, 3, 5))
        _, brute_text_ranks = brute_force_ranks(images, texts, text_to_image)
        for block_size in (1, 4, 7, 23, 63, 100):
            metrics, ranks = retrieval_metrics(
                images, texts, text_to_image, ks=(1, 3, 5), block_size=block_size, return_ranks=True
            )
            self.assertEqual(metrics, expected, msg=f"block_size={block_size}")
            self.assertAllEqual(ranks["text_to_image"], brute_text_ranks)

    def test_text_query_paths_agree(self):
        # The text-query ranks come from brackets around each positive score;
        # force each fallback and check all paths give the brute-force ranks.
        rng = np.random.RandomState(3)
        text_to_image = np.concatenate([np.arange(30), rng.randint(0, 30, 45)])
        images = normalize(rng.randn(30, 16)).astype("float32")
        texts = normalize(images[text_to_image] + rng.randn(75, 16)).astype("float32")
        expected_images, expected_texts = brute_force_ranks(
            images.astype("float64"), texts.astype("float64"), text_to_image
        )
        # Float32 scores rank like these float64 ones: no text's positive is
        # within float32 rounding of another image's score.
        scores = images.astype("float64") @ texts.astype("float64").T
        gaps = np.abs(scores - scores[text_to_image, np.arange(75)])
        gaps[text_to_image, np.arange(75)] = np.inf
        self.assertGreater(gaps.min(), 1e-5)
        calls = []
        original = retrieval_module._text_to_image_ranks

        def counting(unique_images, image_copies, texts, *args):
            calls.append(len(texts))
            return original(unique_images, image_copies, texts, *args)

        settings = [
            ({}, 0),  # brackets hold every positive: no re-ranking
            ({"_BRACKET_SCALE": 0.0}, 75),  # empty brackets: every text re-ranked
            ({"_BRACKET_SCALE": 1e5}, 0),  # wide brackets: many kept scores
            ({"_BRACKET_SCALE": 1e5, "_WINDOW_MIN_ENTRIES": 10, "_WINDOW_ENTRIES_PER_TEXT": 0}, 75),
        ]
        for patches, recomputed in settings:
            calls.clear()
            with mock.patch.multiple(retrieval_module, _text_to_image_ranks=counting, **patches):
                for block_size in (4, 30):
                    _, ranks = retrieval_metrics(
                        images, texts, text_to_image, block_size=block_size, return_ranks=True
                    )
                    self.assertAllEqual(ranks["image_to_text"], expected_images, msg=str(patches))
                    self.assertAllEqual(ranks["text_to_image"], expected_texts, msg=str(patches))
            self.assertEqual(sum(calls), 2 * recomputed, msg=str(patches))

    def test_duplicated_embeddings_do_not_depend_on_block_size_or_order(self):
        # Repeated captions and images give bit-identical float32 embeddings;
        # copies must tie exactly (ties count in the query's favour) however
        # the score matrix is blocked and the candidates are ordered.
        rng = np.random.RandomState(4)
        image_pool = normalize(rng.randn(25, 64)).astype("float32")
        caption_pool = normalize(rng.randn(30, 64)).astype("float32")
        images = image_pool[rng.randint(0, 25, 60)]
        text_to_image = np.concatenate([np.arange(60), rng.randint(0, 60, 240)])
        # Each image's captions come from a few shared strings, as in real data.
        texts = caption_pool[(text_to_image % 7 + rng.randint(0, 3, 300)) % 30]
        # Reference: float64 scores, each pair summed in one fixed order, so
        # copies score bit-identically.
        scores = (images[:, None, :].astype("float64") * texts[None, :, :]).sum(axis=-1)
        expected_images = np.array([
            min(1 + np.sum(scores[i] > scores[i, t]) for t in np.flatnonzero(text_to_image == i))
            for i in range(60)
        ])
        expected_texts = np.array([
            1 + np.sum(scores[:, t] > scores[text_to_image[t], t]) for t in range(300)
        ])
        # The data has the duplicates this test is about.
        self.assertLess(len(np.unique(images, axis=0)), 30)
        self.assertLess(len(np.unique(texts, axis=0)), 31)
        permutation = rng.permutation(300)
        for block_size in (1, 7, 64, 1024):
            _, ranks = retrieval_metrics(images, texts, text_to_image, block_size=block_size,
                                         return_ranks=True)
            self.assertAllEqual(ranks["image_to_text"], expected_images, msg=f"{block_size}")
            self.assertAllEqual(ranks["text_to_image"], expected_texts, msg=f"{block_size}")
            _, shuffled = retrieval_metrics(images, texts[permutation],
                                            text_to_image[permutation], block_size=block_size,
                                            return_ranks=True)
            self.assertAllEqual(shuffled["image_to_text"], expected_images)
            self.assertAllEqual(shuffled["text_to_image"], expected_texts[permutation])
        # Every path of the text queries (brackets, their fallback) groups copies.
        for patches in ({"_BRACKET_SCALE": 0.0},
                        {"_BRACKET_SCALE": 1e5, "_WINDOW_MIN_ENTRIES": 10,
                         "_WINDOW_ENTRIES_PER_TEXT": 0}):
            with mock.patch.multiple(retrieval_module, **patches):
                _, ranks = retrieval_metrics(images, texts, text_to_image, block_size=7,
                                             return_ranks=True)
            self.assertAllEqual(ranks["text_to_image"], expected_texts, msg=str(patches))
            self.assertAllEqual(ranks["image_to_text"], expected_images, msg=str(patches))

    def test_float32_and_tensor_inputs(self):
        import tensorflow as tf

        rng = np.random.RandomState(2)
        images = normalize(rng.randn(50, 16)).astype("float32")
        texts = normalize(images + rng.randn(50, 16)).astype("float32")
        expected = retrieval_metrics(images, texts, block_size=7)
        self.assertEqual(retrieval_metrics(tf.constant(images), tf.constant(texts), block_size=7), expected)
        self.assertEqual(retrieval_metrics(images.tolist(), texts.tolist(), block_size=7), expected)

    def test_large_k(self):
        metrics = retrieval_metrics(np.eye(3), np.eye(3)[::-1], ks=(100,))
        self.assertEqual(metrics["image_to_text/recall@100"], 1.0)

    def test_errors(self):
        images, texts = np.eye(3), np.eye(3)
        with self.assertRaisesRegex(ValueError, "must be 2-D.*Received: shape \\(3,\\)"):
            retrieval_metrics(np.ones(3), texts)
        message = "image_embeddings shape \\(3, 3\\), text_embeddings shape \\(3, 2\\)"
        with self.assertRaisesRegex(ValueError, message):
            retrieval_metrics(images, np.ones((3, 2)))
        with self.assertRaisesRegex(ValueError, "Received: 3 images and 2 texts"):
            retrieval_metrics(images, texts[:2])
        with self.assertRaisesRegex(ValueError, "shape \\(2,\\) for 3 texts"):
            retrieval_metrics(images, texts, text_to_image=[0, 1])
        with self.assertRaisesRegex(ValueError, "in \\[0, 3\\).*Received: min 0, max 3"):
            retrieval_metrics(images, texts, text_to_image=[0, 1, 3])
        with self.assertRaisesRegex(ValueError, "no text for 1 images, e.g. image indices \\[2\\]"):
            retrieval_metrics(images, texts, text_to_image=[0, 1, 1])
        with self.assertRaisesRegex(ValueError, "integer indices. Received: dtype float64"):
            retrieval_metrics(images, texts, text_to_image=[0.0, 1.0, 2.0])
        with self.assertRaisesRegex(ValueError, "block_size=0"):
            retrieval_metrics(images, texts, block_size=0)
        with self.assertRaisesRegex(ValueError, "Received: ks=\\[1, 0\\]"):
            retrieval_metrics(images, texts, ks=(1, 0))
        with self.assertRaisesRegex(ValueError, "NaN or infinite"):
            retrieval_metrics(images * np.nan, texts)

    def test_docstring_examples(self):
        result = doctest.testmod(retrieval_module, optionflags=doctest.ELLIPSIS, extraglobs={"np": np})
        self.assertGreater(result.attempted, 0)
        self.assertEqual(result.failed, 0)
