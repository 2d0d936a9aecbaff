import numpy as np

from mmzoo.losses import MaskedSequenceCrossEntropy
from mmzoo.testing import TestCase


class MaskedSequenceCrossEntropyTest(TestCase):
    def test_hand_computed(self):
        # Sequence 0: two real tokens, uniform logits over 4 -> log 4 each.
        # Sequence 1: one real token predicted with logit 10 vs 0s.
        y_true = np.array([[1, 2, 0], [3, 0, 0]])
        y_pred = np.zeros((2, 3, 4), "float32")
        y_pred[1, 0, 3] = 10.0
        loss = MaskedSequenceCrossEntropy()(y_true, y_pred)
        seq1 = -np.log(np.exp(10.0) / (np.exp(10.0) + 3))
        self.assertAllClose(loss, (np.log(4) + seq1) / 2, atol=1e-6)

    def test_padding_logits_do_not_matter(self):
        y_true = np.array([[1, 2, 0]])
        y_pred = np.random.RandomState(0).randn(1, 3, 4).astype("float32")
        changed = y_pred.copy()
        changed[0, 2] = 100.0
        loss = MaskedSequenceCrossEntropy()
        self.assertAllClose(loss(y_true, y_pred), loss(y_true, changed))

    def test_all_padding_is_zero_not_nan(self):
        self.assertAllClose(MaskedSequenceCrossEntropy()(np.zeros((1, 3)), np.zeros((1, 3, 4))), 0.0)

    def test_label_smoothing(self):
        y_true = np.array([[1]])
        y_pred = np.zeros((1, 1, 4), "float32")
        # Uniform predictions: smoothing changes nothing.
        self.assertAllClose(MaskedSequenceCrossEntropy(label_smoothing=0.1)(y_true, y_pred), np.log(4))

    def test_config(self):
        loss = MaskedSequenceCrossEntropy(pad_token_id=5, label_smoothing=0.1)
        self.assertEqual(MaskedSequenceCrossEntropy.from_config(loss.get_config()).pad_token_id, 5)
        with self.assertRaisesRegex(ValueError, "Received: label_smoothing=1.0"):
            MaskedSequenceCrossEntropy(label_smoothing=1.0)
