import math

import keras
import numpy as np

from mmzoo.layers import ContrastiveHead
from mmzoo.testing import TestCase


class ContrastiveHeadTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.a = rng.randn(3, 4).astype("float32")
        self.b = rng.randn(5, 4).astype("float32")

    def test_layer_basics(self):
        self.run_layer_test(
            cls=ContrastiveHead,
            init_kwargs={"use_bias": True, "initial_temperature": 0.1, "initial_bias": -10.0},
            input_data={"embeddings": self.a, "other_embeddings": self.b[:3]},
            expected_output_shape=(3, 3),
            expected_num_trainable_weights=2,
        )

    def test_hand_computed_logits(self):
        # Unit vectors along the axes and at 45 degrees: cosines 1, 0, 1/sqrt(2).
        a = np.array([[2.0, 0.0], [0.0, 3.0]], "float32")
        b = np.array([[1.0, 0.0], [1.0, 1.0]], "float32")
        head = ContrastiveHead(initial_temperature=0.5, use_bias=True, initial_bias=-1.0)
        c = 1 / math.sqrt(2)
        expected = 2.0 * np.array([[1.0, c], [0.0, c]]) - 1.0
        self.assertAllClose(head(a, b), expected, atol=1e-5)

    def test_logit_scale_is_clamped(self):
        head = ContrastiveHead(initial_temperature=0.07, max_logit_scale=100.0)
        head.build((None, 4), (None, 4))
        self.assertAllClose(head.logit_scale, 1 / 0.07, rtol=1e-5)
        head.log_logit_scale.assign(10.0)  # exp(10) > 100
        self.assertAllClose(head.logit_scale, 100.0)
        logits = head(self.a, self.a)
        self.assertAllClose(np.diag(logits), np.full(3, 100.0), rtol=1e-4)

    def test_different_batch_sizes(self):
        self.assertEqual(tuple(ContrastiveHead()(self.a, self.b).shape), (3, 5))

    def test_fixed_temperature(self):
        head = ContrastiveHead(trainable_temperature=False)
        head.build((None, 4), (None, 4))
        self.assertEmpty(head.trainable_weights)

    def test_saving(self):
        x = keras.Input((4,))
        y = keras.Input((4,))
        model = keras.Model([x, y], ContrastiveHead(use_bias=True)(x, y))
        self.run_model_saving_test(model, [self.a, self.b])

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: initial_temperature=0"):
            ContrastiveHead(initial_temperature=0)
        with self.assertRaisesRegex(ValueError, "must not exceed `max_logit_scale`"):
            ContrastiveHead(initial_temperature=0.001, max_logit_scale=100.0)
