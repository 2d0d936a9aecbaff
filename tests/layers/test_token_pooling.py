import keras
import numpy as np

from mmzoo.layers import TokenPooling
from mmzoo.testing import TestCase


class TokenPoolingTest(TestCase):
    def test_modes(self):
        sequence = np.arange(2 * 4 * 3, dtype="float32").reshape((2, 4, 3))
        token_ids = np.array([[5, 9, 2, 0], [7, 3, 8, 8]])
        self.assertAllClose(TokenPooling("first")(sequence), sequence[:, 0])
        self.assertAllClose(TokenPooling("last")(sequence), sequence[:, -1])
        # The largest id (CLIP's end token); its first position when repeated.
        self.assertAllClose(
            TokenPooling("max_token_id")(sequence, token_ids), sequence[[0, 1], [1, 2]]
        )

    def test_in_a_saved_model(self):
        sequence = keras.Input((4, 3))
        token_ids = keras.Input((4,), dtype="int32")
        model = keras.Model(
            [sequence, token_ids], TokenPooling("max_token_id")(sequence, token_ids)
        )
        self.assertEqual(tuple(model.output.shape), (None, 3))
        restored = keras.Model.from_config(model.get_config())
        x = [np.random.default_rng(0).normal(size=(2, 4, 3)), np.array([[1, 4, 2, 0]] * 2)]
        self.assertAllClose(restored(x), model(x))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "`mode` must be one of.*'mean'"):
            TokenPooling("mean")
        with self.assertRaisesRegex(ValueError, "needs `token_ids`"):
            TokenPooling("max_token_id")(np.zeros((1, 2, 3)))
