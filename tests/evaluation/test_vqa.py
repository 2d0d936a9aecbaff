import doctest

import numpy as np

from mmzoo.evaluation import exact_match_accuracy
from mmzoo.evaluation import normalize_answer
from mmzoo.evaluation import vqa_accuracy
from mmzoo.evaluation import vqa_metrics
from mmzoo.evaluation import vqa as vqa_module
from mmzoo.testing import TestCase


class NormalizeAnswerTest(TestCase):
    def test_table(self):
        cases = [
            ("Yes", "yes"),
            ("  The  Red   cube. ", "red cube"),
            ("an apple, a pear", "apple pear"),
            ("Two", "2"),
            ("zero one ten eleven", "0 1 10 eleven"),
            ("2.5", "2.5"),
            ("end.", "end"),
            ("1,000", "1000"),
            ("red,blue", "red blue"),
            ("don't", "dont"),
            ("t-shirt", "t shirt"),
            ("theater", "theater"),  # articles only as whole words
            (b"TWO Circles", "2 circles"),
            (np.bytes_(b"Left!"), "left"),
            (np.str_("Right?"), "right"),
            ("", ""),
        ]
        for text, expected in cases:
            self.assertEqual(normalize_answer(text), expected, msg=repr(text))

    def test_rejects_non_strings(self):
        with self.assertRaisesRegex(TypeError, "str or bytes. Received: 3"):
            normalize_answer(3)


class VQAMetricsTest(TestCase):
    def setUp(self):
        super().setUp()
        # Three questions with four references each.
        self.predictions = ["two", "Red", "cube"]
        self.references = [
            ["2", "2", "3", "2"],  # 3 matches, majority
            ["blue", "red", "blue", "green"],  # 1 match, not majority
            ["sphere", "ball", "cube", "cone"],  # 1 match, 4-way tie
        ]

    def test_exact_match_hand_computed(self):
        # q1 right (majority "2"), q2 wrong (majority "blue"), q3 right (tie).
        self.assertAllClose(exact_match_accuracy(self.predictions, self.references), 2 / 3)

    def test_exact_match_tie_does_not_depend_on_order(self):
        refs = [["red", "blue"], ["blue", "red"]]
        self.assertEqual(exact_match_accuracy(["blue", "blue"], refs), 1.0)
        self.assertEqual(exact_match_accuracy(["green", "green"], refs), 0.0)

    def test_vqa_accuracy_hand_computed(self):
        # min(3/3, 1), min(1/3, 1), min(1/3, 1).
        expected = (1 + 1 / 3 + 1 / 3) / 3
        self.assertAllClose(vqa_accuracy(self.predictions, self.references), expected)

    def test_vqa_accuracy_caps_at_one(self):
        refs = [["yes"] * 10]
        self.assertEqual(vqa_accuracy(["yes"], refs), 1.0)

    def test_single_reference_equals_exact_match(self):
        predictions = ["red", "3", "cube", "left"]
        references = ["red", "three", "sphere", "right"]
        self.assertEqual(vqa_accuracy(predictions, references), 0.5)
        self.assertEqual(exact_match_accuracy(predictions, references), 0.5)

    def test_literal_formula(self):
        # Without adapting, one matching reference out of one scores 1/3.
        score = vqa_accuracy(["red"], ["red"], adapt_to_references=False)
        self.assertAllClose(score, 1 / 3)
        # Two references: adaptive threshold is 2.
        self.assertAllClose(vqa_accuracy(["red"], [["red", "blue"]]), 0.5)
        self.assertAllClose(vqa_accuracy(["red"], [["red", "red"]]), 1.0)

    def test_leave_one_out_matches_official_definition(self):
        # 10 references, 3 of them match: official score is
        # (3 * min(2/3, 1) + 7 * min(3/3, 1)) / 10 = 0.9.
        refs = [["red"] * 3 + ["blue"] * 7]
        self.assertAllClose(vqa_accuracy(["red"], refs, leave_one_out=True), 0.9)
        # Brute force over the ten subsets for several match counts.
        for matches in range(11):
            refs = ["red"] * matches + ["blue"] * (10 - matches)
            subsets = [refs[:i] + refs[i + 1 :] for i in range(10)]
            expected = np.mean([min(s.count("red") / 3, 1) for s in subsets])
            self.assertAllClose(vqa_accuracy(["red"], [refs], leave_one_out=True), expected)

    def test_leave_one_out_needs_two_references(self):
        with self.assertRaisesRegex(ValueError, "at least 2 references.*Received: 1 at references\\[0\\]"):
            vqa_accuracy(["red"], ["red"], leave_one_out=True)

    def test_metrics_by_question_type(self):
        metrics = vqa_metrics(
            self.predictions + ["3"],
            self.references + ["three"],
            question_types=["count", "color", "shape", b"count"],
        )
        self.assertEqual(metrics["count"], 4)
        self.assertAllClose(metrics["exact_match"], 3 / 4)
        self.assertAllClose(metrics["vqa_accuracy"], (1 + 1 / 3 + 1 / 3 + 1) / 4)
        self.assertEqual(sorted(metrics["by_question_type"]), ["color", "count", "shape"])
        count = metrics["by_question_type"]["count"]
        self.assertEqual(count, {"exact_match": 1.0, "vqa_accuracy": 1.0, "count": 2})
        color = metrics["by_question_type"]["color"]
        self.assertEqual(color["exact_match"], 0.0)
        self.assertAllClose(color["vqa_accuracy"], 1 / 3)

    def test_metrics_without_question_types(self):
        metrics = vqa_metrics(["a"], ["a"])
        self.assertEqual(metrics, {"exact_match": 1.0, "vqa_accuracy": 1.0, "count": 1})

    def test_accepts_arrays(self):
        predictions = np.array([b"Two", b"red"], dtype=object)
        references = np.array([[b"2", b"2", b"3"], [b"red", b"blue", b"blue"]], dtype=object)
        self.assertAllClose(exact_match_accuracy(predictions, references), 0.5)
        self.assertAllClose(vqa_accuracy(predictions, references), (2 / 3 + 1 / 3) / 2)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "Received: 2 predictions and 1 references"):
            vqa_accuracy(["a", "b"], ["a"])
        with self.assertRaisesRegex(ValueError, "Received: 0 predictions"):
            exact_match_accuracy([], [])
        with self.assertRaisesRegex(ValueError, "empty list at references\\[1\\]"):
            vqa_metrics(["a", "b"], [["a"], []])
        with self.assertRaisesRegex(ValueError, "not one string"):
            vqa_accuracy("abc", ["abc"])
        with self.assertRaisesRegex(ValueError, "Received: 1 question types and 2 predictions"):
            vqa_metrics(["a", "b"], ["a", "b"], question_types=["x"])
        with self.assertRaisesRegex(ValueError, "min_matches=0"):
            vqa_accuracy(["a"], ["a"], min_matches=0)

    def test_docstring_examples(self):
        result = doctest.testmod(vqa_module, optionflags=doctest.ELLIPSIS)
        self.assertGreater(result.attempted, 0)
        self.assertEqual(result.failed, 0)
