import numpy as np

from mmzoo.evaluation import MaskedTokenAccuracy
from mmzoo.testing import TestCase


class MaskedTokenAccuracyTest(TestCase):
    def test_ignores_padding(self):
        y_true = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
        y_pred = np.zeros((2, 4, 4), "float32")
        y_pred[0, 0, 1] = 1.0  # right
        y_pred[0, 1, 3] = 1.0  # wrong
        y_pred[1, 0, 3] = 1.0  # right
        metric = MaskedTokenAccuracy()
        metric.update_state(y_true, y_pred)
        self.assertAllClose(metric.result(), 2 / 3)
        self.assertEqual(MaskedTokenAccuracy.from_config(metric.get_config()).pad_token_id, 0)
