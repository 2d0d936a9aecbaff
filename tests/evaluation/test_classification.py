import doctest
import warnings

import numpy as np
from sklearn import metrics as sk_metrics

from mmzoo.evaluation import classification as classification_module
from mmzoo.evaluation import classification_report
from mmzoo.evaluation import format_classification_report
from mmzoo.testing import TestCase


def sklearn_report(y_true, y_pred, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning and friends
        return sk_metrics.classification_report(y_true, y_pred, output_dict=True, **kwargs)


class ClassificationReportTest(TestCase):
    def assertReportsEqual(self, ours, expected):
        self.assertEqual(list(ours), list(expected))
        for key, value in expected.items():
            if isinstance(value, dict):
                self.assertEqual(list(ours[key]), list(value), msg=key)
                for field, number in value.items():
                    np.testing.assert_allclose(
                        ours[key][field], number, rtol=0, atol=1e-12, err_msg=f"{key}/{field}"
                    )
                    self.assertIsInstance(ours[key][field], float)
            else:
                np.testing.assert_allclose(ours[key], value, rtol=0, atol=1e-12, err_msg=key)
                self.assertIsInstance(ours[key], float)

    def check(self, y_true, y_pred, **kwargs):
        self.assertReportsEqual(
            classification_report(y_true, y_pred, **kwargs), sklearn_report(y_true, y_pred, **kwargs)
        )

    def test_hand_computed(self):
        # true 0 1 2 2, predicted 0 2 2 2: class 2 has tp 2, 3 predictions.
        report = classification_report([0, 1, 2, 2], [0, 2, 2, 2])
        self.assertEqual(report["0"], {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 1.0})
        self.assertEqual(report["1"], {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1.0})
        self.assertAllClose(report["2"]["precision"], 2 / 3)
        self.assertAllClose(report["2"]["f1-score"], 0.8)
        self.assertEqual(report["accuracy"], 0.75)
        self.assertAllClose(report["weighted avg"]["precision"], (1 + 0 + 2 * 2 / 3) / 4)
        self.assertEqual(report["macro avg"]["support"], 4.0)

    def test_binary(self):
        rng = np.random.RandomState(0)
        for _ in range(3):
            y_true = rng.randint(0, 2, 50)
            y_pred = np.where(rng.rand(50) < 0.7, y_true, 1 - y_true)
            self.check(y_true, y_pred)
            self.check(y_true, y_pred, target_names=["neg", "pos"])

    def test_multiclass(self):
        rng = np.random.RandomState(1)
        for num_classes in (3, 5, 10):
            y_true = rng.randint(0, num_classes, 200)
            y_pred = np.where(rng.rand(200) < 0.5, y_true, rng.randint(0, num_classes, 200))
            self.check(y_true, y_pred)

    def test_string_labels(self):
        rng = np.random.RandomState(2)
        names = np.array(["cat", "dog", "bird", "fish"])
        y_true = names[rng.randint(0, 4, 60)]
        y_pred = names[rng.randint(0, 4, 60)]
        self.check(list(y_true), list(y_pred))

    def test_missing_classes(self):
        # Class 3 never predicted, class 4 never true, class 5 in neither.
        rng = np.random.RandomState(3)
        y_true = rng.choice([0, 1, 2, 3], 80)
        y_pred = rng.choice([0, 1, 2, 4], 80)
        self.check(y_true, y_pred)
        self.check(y_true, y_pred, labels=[0, 1, 2, 3, 4, 5])
        for zero_division in (0.0, 1.0, np.nan):
            self.check(y_true, y_pred, labels=[5, 4, 3, 2, 1, 0], zero_division=zero_division)

    def test_labels_subset_gives_micro_avg(self):
        rng = np.random.RandomState(4)
        y_true = rng.randint(0, 5, 100)
        y_pred = rng.randint(0, 5, 100)
        for labels in ([0, 1, 2], [4, 2], [1, 2, 3, 7]):
            self.check(y_true, y_pred, labels=labels)
            report = classification_report(y_true, y_pred, labels=labels)
            self.assertIn("micro avg", report)
            self.assertNotIn("accuracy", report)
        self.check(y_true, y_pred, labels=[0, 1, 2], target_names=["a", "b", "c"])
        # A superset of the present labels keeps "accuracy".
        self.assertIn("accuracy", classification_report(y_true, y_pred, labels=range(6)))

    def test_sample_weights(self):
        rng = np.random.RandomState(5)
        for num_classes in (2, 4):
            y_true = rng.randint(0, num_classes, 120)
            y_pred = rng.randint(0, num_classes, 120)
            weights = rng.rand(120) * 3
            self.check(y_true, y_pred, sample_weight=weights)
            self.check(y_true, y_pred, sample_weight=weights, labels=[0, 1])
        # Zero weights can leave a class with zero support.
        y_true = np.array([0, 0, 1, 2, 2])
        y_pred = np.array([0, 1, 1, 2, 0])
        weights = np.array([1.0, 2.0, 0.0, 0.5, 0.0])
        for zero_division in (0.0, 1.0, np.nan):
            self.check(y_true, y_pred, sample_weight=weights, zero_division=zero_division)

    def test_zero_division(self):
        # Class 1 is never predicted; class 2 never true.
        y_true = [0, 0, 1, 1]
        y_pred = [0, 2, 0, 0]
        for zero_division in (0, 1, 0.0, 1.0, np.nan):
            self.check(y_true, y_pred, zero_division=zero_division)
        # All classes undefined for one metric: NaN averages stay NaN.
        self.check([0, 0], [1, 1], labels=[1], zero_division=np.nan)
        with self.assertWarnsRegex(RuntimeWarning, "ill-defined"):
            ours = classification_report(y_true, y_pred, zero_division="warn")
        self.assertReportsEqual(ours, sklearn_report(y_true, y_pred, zero_division="warn"))

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "Received: 3 true labels and 2 predicted labels"):
            classification_report([0, 1, 1], [0, 1])
        with self.assertRaisesRegex(ValueError, "Received: 0 labels"):
            classification_report([], [])
        with self.assertRaisesRegex(ValueError, "Received: 1 names for 2 labels"):
            classification_report([0, 1], [0, 1], target_names=["a"])
        with self.assertRaisesRegex(ValueError, "zero_division=0.5"):
            classification_report([0, 1], [0, 1], zero_division=0.5)
        with self.assertRaisesRegex(ValueError, "Received: shape \\(2, 2\\)"):
            classification_report([[0, 1], [1, 0]], [[0, 1], [1, 0]])
        with self.assertRaisesRegex(ValueError, "repeat a label. Received: labels=\\[1, 1\\]"):
            classification_report([0, 1], [0, 1], labels=[1, 1])
        with self.assertRaisesRegex(ValueError, "shape \\(3,\\) for 2 examples"):
            classification_report([0, 1], [0, 1], sample_weight=[1, 1, 1])


class FormatClassificationReportTest(TestCase):
    def test_same_text_as_sklearn(self):
        rng = np.random.RandomState(6)
        y_true = rng.randint(0, 4, 70)
        y_pred = rng.randint(0, 4, 70)
        cases = [
            {},
            {"target_names": ["circle", "square", "a much longer name", "x"]},
            {"labels": [0, 2]},
        ]
        for kwargs in cases:
            for digits in (2, 4):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    expected = sk_metrics.classification_report(
                        y_true, y_pred, digits=digits, zero_division=0.0, **kwargs
                    )
                report = classification_report(y_true, y_pred, **kwargs)
                text = format_classification_report(report, digits=digits)
                self.assertEqual(text, expected)

    def test_rejects_other_input(self):
        with self.assertRaisesRegex(ValueError, "Received: list"):
            format_classification_report([1, 2])

    def test_docstring_examples(self):
        result = doctest.testmod(classification_module, optionflags=doctest.ELLIPSIS)
        self.assertGreater(result.attempted, 0)
        self.assertEqual(result.failed, 0)
