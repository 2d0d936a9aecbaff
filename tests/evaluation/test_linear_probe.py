import numpy as np

from mmzoo.evaluation import linear_probe
from mmzoo.testing import TestCase


def blobs(num, seed, separation):
    """Three Gaussian classes in 5-D, `separation` apart along the first axes."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 3, num)
    centres = np.eye(3, 5) * separation
    return centres[labels] + rng.randn(num, 5), labels


class LinearProbeTest(TestCase):
    def test_separable_features_score_high_and_noise_scores_chance(self):
        train_x, train_y = blobs(300, 0, separation=6.0)
        test_x, test_y = blobs(150, 1, separation=6.0)
        result = linear_probe(train_x, train_y, test_x, test_y)
        self.assertGreater(result["accuracy"], 0.95)
        self.assertGreater(result["train_accuracy"], 0.95)
        self.assertEqual(result["report"]["macro avg"]["support"], 150)
        # Features that say nothing of the labels: about chance (1/3).
        rng = np.random.RandomState(2)
        noise = linear_probe(rng.randn(300, 5), train_y, rng.randn(150, 5), test_y)
        self.assertLess(noise["accuracy"], 0.5)

    def test_same_inputs_give_the_same_result(self):
        train_x, train_y = blobs(100, 0, separation=1.5)
        test_x, test_y = blobs(60, 1, separation=1.5)
        first = linear_probe(train_x, train_y, test_x, test_y, steps=50)
        second = linear_probe(train_x, train_y, test_x, test_y, steps=50)
        self.assertEqual(first["accuracy"], second["accuracy"])
        self.assertEqual(first["train_accuracy"], second["train_accuracy"])

    def test_bad_input(self):
        x, y = blobs(10, 0, 1.0)
        with self.assertRaisesRegex(ValueError, r"`train_features` must be 2-D.*shape \(10,\)"):
            linear_probe(x[:, 0], y, x, y)
        with self.assertRaisesRegex(ValueError, r"same dimension.*\(10, 5\) and \(10, 4\)"):
            linear_probe(x, y, x[:, :4], y)
        with self.assertRaisesRegex(ValueError, r"`test_labels` must be integer.*shape \(9,\)"):
            linear_probe(x, y, x, y[:9])
        with self.assertRaisesRegex(ValueError, "NaN"):
            linear_probe(np.full((10, 5), np.nan), y, x, y)
        with self.assertRaisesRegex(ValueError, "Received: l2=-1"):
            linear_probe(x, y, x, y, l2=-1)
        with self.assertRaisesRegex(ValueError, "Received: steps=0"):
            linear_probe(x, y, x, y, steps=0)
