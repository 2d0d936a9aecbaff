import doctest

import numpy as np

from mmzoo.evaluation import zero_shot as zero_shot_module
from mmzoo.evaluation import zero_shot_accuracy
from mmzoo.evaluation import zero_shot_classifier
from mmzoo.evaluation import zero_shot_predict
from mmzoo.testing import TestCase

# A deterministic toy text encoder: a lookup table of prompt -> embedding.
TABLE = {
    "a cat": [3.0, 4.0, 0.0],  # normalised: [0.6, 0.8, 0]
    "the cat": [1.0, 0.0, 0.0],
    "a dog": [0.0, 0.0, 2.0],
    "the dog": [0.0, 5.0, 0.0],
    "a bird": [0.0, 1.0, 0.0],
    "the bird": [0.0, 1.0, 0.0],
}


class LookupEncoder:
    def __init__(self):
        self.calls = []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return np.array([TABLE[t] for t in texts], dtype="float32")


class ZeroShotClassifierTest(TestCase):
    def test_hand_computed(self):
        classifier = zero_shot_classifier(LookupEncoder(), ["cat", "dog", "bird"], ["a {}", "the {}"])
        self.assertEqual(classifier.dtype, np.float32)
        self.assertEqual(classifier.shape, (3, 3))
        # cat: mean([0.6, 0.8, 0], [1, 0, 0]) = [0.8, 0.4, 0] -> [2, 1, 0] / sqrt(5).
        self.assertAllClose(classifier[0], np.array([2.0, 1.0, 0.0]) / np.sqrt(5))
        # dog: mean([0, 0, 1], [0, 1, 0]) -> [0, 1, 1] / sqrt(2).
        self.assertAllClose(classifier[1], np.array([0.0, 1.0, 1.0]) / np.sqrt(2))
        self.assertAllClose(classifier[2], [0.0, 1.0, 0.0])

    def test_single_template_and_batching(self):
        expected = zero_shot_classifier(LookupEncoder(), ["cat", "dog", "bird"], templates=["a {}", "the {}"])
        for batch_size in (1, 4, 6, 100):
            encoder = LookupEncoder()
            classifier = zero_shot_classifier(
                encoder, ["cat", "dog", "bird"], templates=["a {}", "the {}"], batch_size=batch_size
            )
            self.assertAllClose(classifier, expected, atol=1e-7, rtol=0)
            self.assertEqual([len(c) for c in encoder.calls][0], min(batch_size, 6))
            self.assertEqual(sum(len(c) for c in encoder.calls), 6)
        single = zero_shot_classifier(LookupEncoder(), ["cat"], templates="the {}")
        self.assertAllClose(single, [[1.0, 0.0, 0.0]])

    def test_default_template(self):
        encoder = LookupEncoder()
        TABLE["a photo of a cat."] = [0.0, 3.0, 4.0]
        try:
            classifier = zero_shot_classifier(encoder, ["cat"])
        finally:
            del TABLE["a photo of a cat."]
        self.assertEqual(encoder.calls, [["a photo of a cat."]])
        self.assertAllClose(classifier, [[0.0, 0.6, 0.8]])

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "containing \"\\{\\}\".*Received: 'a photo'"):
            zero_shot_classifier(LookupEncoder(), ["cat"], templates=["a {}", "a photo"])
        with self.assertRaisesRegex(ValueError, "`class_names` must not be empty"):
            zero_shot_classifier(LookupEncoder(), [])
        with self.assertRaisesRegex(ValueError, "not one string"):
            zero_shot_classifier(LookupEncoder(), "cat")
        with self.assertRaisesRegex(ValueError, "Received: shape \\(3,\\) for 2 texts"):
            zero_shot_classifier(lambda texts: np.zeros(3), ["cat", "dog"], templates=["a {}"])
        with self.assertRaisesRegex(ValueError, "must be callable"):
            zero_shot_classifier(TABLE, ["cat"])


class ZeroShotPredictAccuracyTest(TestCase):
    def setUp(self):
        super().setUp()
        self.classifier = np.eye(4, dtype="float32")
        # Scores of each image are its row (the classifier is the identity).
        self.images = np.array(
            [
                [0.9, 0.1, 0.0, 0.0],  # class 0 first
                [0.5, 0.2, 0.7, 0.1],  # order 2, 0, 1, 3
                [0.1, 0.3, 0.2, 0.4],  # order 3, 1, 2, 0
                [0.0, 0.6, 0.6, 0.1],  # tie 1 / 2: class 1 first (lower index)
            ]
        )
        self.labels = np.array([0, 1, 0, 2])

    def test_predict(self):
        self.assertAllEqual(zero_shot_predict(self.images, self.classifier), [0, 2, 3, 1])
        self.assertAllEqual(zero_shot_predict(self.images, self.classifier, block_size=3), [0, 2, 3, 1])

    def test_accuracy_hand_computed(self):
        # True-class ranks: image 0 -> 1, image 1 (class 1) -> 3,
        # image 2 (class 0) -> 4, image 3 (class 2, tied with 1) -> 2.
        for block_size in (1, 3, 4096):
            accuracy = zero_shot_accuracy(
                self.images, self.classifier, self.labels, ks=(1, 2, 3, 4, 5), block_size=block_size
            )
            self.assertEqual(accuracy, {"top1": 0.25, "top2": 0.5, "top3": 0.75, "top4": 1.0})

    def test_top1_equals_predict_accuracy(self):
        rng = np.random.RandomState(0)
        # Quantised embeddings make exact ties common.
        images = rng.randint(-1, 2, (200, 3)).astype("float32")
        classifier = rng.randint(-1, 2, (6, 3)).astype("float32")
        labels = rng.randint(0, 6, 200)
        predicted = zero_shot_predict(images, classifier)
        accuracy = zero_shot_accuracy(images, classifier, labels, ks=(1, 5), block_size=17)
        self.assertEqual(accuracy["top1"], float(np.mean(predicted == labels)))
        self.assertEqual(sorted(accuracy), ["top1", "top5"])

    def test_default_ks_with_few_classes(self):
        accuracy = zero_shot_accuracy(self.images[:, :3], np.eye(3), [0, 2, 1, 2])
        self.assertEqual(list(accuracy), ["top1"])

    def test_end_to_end_with_lookup_encoder(self):
        classifier = zero_shot_classifier(LookupEncoder(), ["cat", "dog", "bird"], ["a {}", "the {}"])
        images = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        # Image 2 ([0, 1, 0]): bird 1.0, dog 0.707, cat 0.447.
        self.assertAllEqual(zero_shot_predict(images, classifier), [0, 1, 2])
        accuracy = zero_shot_accuracy(images, classifier, [0, 1, 1], ks=(1, 2))
        self.assertEqual(accuracy, {"top1": 2 / 3, "top2": 1.0})

    def test_errors(self):
        message = "image_embeddings shape \\(4, 4\\), classifier shape \\(3, 3\\)"
        with self.assertRaisesRegex(ValueError, message):
            zero_shot_predict(self.images, np.eye(3))
        with self.assertRaisesRegex(ValueError, "Received: 3 labels for 4 images"):
            zero_shot_accuracy(self.images, self.classifier, [0, 1, 2])
        with self.assertRaisesRegex(ValueError, "in \\[0, 4\\) for 4 classes. Received: min 0, max 4"):
            zero_shot_accuracy(self.images, self.classifier, [0, 1, 2, 4])
        with self.assertRaisesRegex(ValueError, "dtype float64"):
            zero_shot_accuracy(self.images, self.classifier, [0.0, 1.0, 2.0, 3.0])
        with self.assertRaisesRegex(ValueError, "must be 2-D"):
            zero_shot_predict(self.images[0], self.classifier)

    def test_docstring_examples(self):
        result = doctest.testmod(zero_shot_module, optionflags=doctest.ELLIPSIS, extraglobs={"np": np})
        self.assertGreater(result.attempted, 0)
        self.assertEqual(result.failed, 0)
