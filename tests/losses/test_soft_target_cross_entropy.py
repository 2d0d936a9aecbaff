import keras
import numpy as np

from mmzoo.losses import SoftTargetCrossEntropy
from mmzoo.losses import vqa_target_scores
from mmzoo.testing import TestCase


def log_softmax(x):
    x = np.asarray(x, "float64")
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


class SoftTargetCrossEntropyTest(TestCase):
    def setUp(self):
        super().setUp()
        self.logits = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.0, 3.0]], "float32")

    def test_one_id_per_example_is_plain_cross_entropy(self):
        loss = SoftTargetCrossEntropy()
        expected = -(log_softmax(self.logits[0])[0] + log_softmax(self.logits[1])[3]) / 2
        self.assertAllClose(loss(np.array([0, 3]), self.logits), expected)
        sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.assertAllClose(loss(np.array([0, 3]), self.logits), sparse(np.array([0, 3]), self.logits))

    def test_vqa_scores_hand_computed(self):
        # Row 0: answer 1 given 4 times (score 1), answer 2 once (1/3).
        # Row 1: answer 3 twice (2/3); -1 is padding.
        scores = vqa_target_scores(np.array([[1, 1, 2, 1, 1], [3, 3, -1, -1, -1]]), 4)
        self.assertAllClose(scores, [[0, 1, 1 / 3, 0], [0, 0, 0, 2 / 3]])

    def test_several_references(self):
        loss = SoftTargetCrossEntropy()
        y_true = np.array([[1, 1, 2, 1, 1], [3, 3, -1, -1, -1]])
        # Targets normalised to sum 1: (0, 3/4, 1/4, 0) and (0, 0, 0, 1).
        row0 = -(0.75 * log_softmax(self.logits[0])[1] + 0.25 * log_softmax(self.logits[0])[2])
        row1 = -log_softmax(self.logits[1])[3]
        self.assertAllClose(loss(y_true, self.logits), (row0 + row1) / 2, atol=1e-6)

    def test_scores_format_and_no_target(self):
        loss = SoftTargetCrossEntropy(target_format="scores", reduction=None)
        scores = np.array([[0, 1, 1 / 3, 0], [0, 0, 0, 0]], "float32")
        expected0 = -(0.75 * log_softmax(self.logits[0])[1] + 0.25 * log_softmax(self.logits[0])[2])
        self.assertAllClose(loss(scores, self.logits), [expected0, 0.0], atol=1e-6)
        ids = SoftTargetCrossEntropy(reduction=None)
        self.assertAllClose(ids(np.array([[-1, -1]]), self.logits[:1]), [0.0])

    def test_label_smoothing(self):
        loss = SoftTargetCrossEntropy(label_smoothing=0.2, reduction=None)
        targets = np.array([0.05, 0.05, 0.05, 0.85])
        self.assertAllClose(
            loss(np.array([3]), self.logits[1:]), [-(targets * log_softmax(self.logits[1])).sum()]
        )

    def test_gradient_is_softmax_minus_target(self):
        import tensorflow as tf

        logits = tf.Variable(self.logits)
        with tf.GradientTape() as tape:
            value = SoftTargetCrossEntropy(reduction="sum")(np.array([[1, 1, 2, 1, 1]] * 2), logits)
        target = np.array([0, 0.75, 0.25, 0])
        expected = np.exp(log_softmax(self.logits)) - target
        self.assertAllClose(tape.gradient(value, logits), expected, atol=1e-6)

    def test_config_and_errors(self):
        loss = SoftTargetCrossEntropy(target_format="scores", label_smoothing=0.1)
        restored = SoftTargetCrossEntropy.from_config(loss.get_config())
        self.assertEqual((restored.target_format, restored.label_smoothing), ("scores", 0.1))
        with self.assertRaisesRegex(ValueError, "Received: target_format='probs'"):
            SoftTargetCrossEntropy(target_format="probs")
        with self.assertRaisesRegex(ValueError, "Received: label_smoothing=1.0"):
            SoftTargetCrossEntropy(label_smoothing=1.0)
        with self.assertRaisesRegex(ValueError, r"Received: y_true shape \(1, 2, 2\)"):
            SoftTargetCrossEntropy()(np.zeros((1, 2, 2)), self.logits[:1])
