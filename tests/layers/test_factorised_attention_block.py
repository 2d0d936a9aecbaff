import keras
import numpy as np

from mmzoo.layers import FactorisedAttentionBlock
from mmzoo.testing import TestCase


class FactorisedAttentionBlockTest(TestCase):
    def setUp(self):
        super().setUp()
        self.init_kwargs = {"num_heads": 2, "intermediate_dim": 16}
        self.input_data = np.random.RandomState(0).randn(2, 3, 4, 8).astype("float32")

    def test_layer_basics(self):
        self.run_layer_test(
            cls=FactorisedAttentionBlock,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape=(2, 3, 4, 8),
            expected_num_trainable_weights=26,
        )

    def test_information_flows_through_space_then_time(self):
        # One block mixes (t, p) with (t, p') in space and (t', p) in time, and
        # the temporal step sees the spatially mixed tokens: every token reaches
        # every other in one block, but only through those two hops.
        layer = FactorisedAttentionBlock(**self.init_kwargs)
        base = np.asarray(layer(self.input_data))
        changed = self.input_data.copy()
        # Not a constant shift: layer norm would erase it.
        changed[:, 0, 0] += np.linspace(-1.0, 1.0, 8)
        diff = np.abs(np.asarray(layer(changed)) - base).max(axis=(0, 3))
        self.assertGreater(diff[2, 3], 1e-5)  # other time step, other position
        # Other videos in the batch are never touched.
        changed = self.input_data.copy()
        changed[0] += np.linspace(-1.0, 1.0, 8)
        self.assertAllClose(np.asarray(layer(changed))[1], base[1], atol=1e-6)

    def test_saving(self):
        inputs = keras.Input((3, 4, 8))
        model = keras.Model(inputs, FactorisedAttentionBlock(**self.init_kwargs)(inputs))
        self.run_model_saving_test(model, self.input_data)

    def test_heads_must_divide_hidden_dim(self):
        with self.assertRaisesRegex(ValueError, "Received: hidden_dim=8"):
            FactorisedAttentionBlock(num_heads=3, intermediate_dim=8)(self.input_data)

    def test_wrong_rank(self):
        with self.assertRaisesRegex(ValueError, r"rank 4.*Received: inputs with shape \(2, 4, 8\)"):
            FactorisedAttentionBlock(**self.init_kwargs)(np.zeros((2, 4, 8), "float32"))
