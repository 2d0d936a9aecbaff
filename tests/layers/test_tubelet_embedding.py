import keras
import numpy as np

from mmzoo.layers import TubeletEmbedding
from mmzoo.testing import TestCase


class TubeletEmbeddingTest(TestCase):
    def setUp(self):
        super().setUp()
        self.init_kwargs = {"tubelet_size": (2, 4, 4), "hidden_dim": 8}
        self.input_data = np.random.RandomState(0).rand(2, 4, 8, 8, 3).astype("float32")

    def test_layer_basics(self):
        self.run_layer_test(
            cls=TubeletEmbedding,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape=(2, 2, 4, 8),
            expected_num_trainable_weights=4,
        )

    def test_int_tubelet_size(self):
        layer = TubeletEmbedding(tubelet_size=2, hidden_dim=4)
        self.assertEqual(layer.tubelet_size, (2, 2, 2))
        self.assertEqual(tuple(layer(self.input_data).shape), (2, 2, 16, 4))

    def test_tubelets_are_local_in_time(self):
        layer = TubeletEmbedding(**self.init_kwargs, use_position_embedding=False)
        base = np.asarray(layer(self.input_data))
        changed = self.input_data.copy()
        changed[:, 2:4] += 1.0  # frames 2-3 form the second tubelet step
        out = np.asarray(layer(changed))
        self.assertAllClose(out[:, 0], base[:, 0])
        self.assertGreater(np.abs(out[:, 1] - base[:, 1]).min(), 0.0)

    def test_saving(self):
        inputs = keras.Input((4, 8, 8, 3))
        model = keras.Model(inputs, TubeletEmbedding(**self.init_kwargs)(inputs))
        self.run_model_saving_test(model, self.input_data)

    def test_frames_not_divisible(self):
        with self.assertRaisesRegex(ValueError, "Received: video num_frames=5"):
            TubeletEmbedding(**self.init_kwargs)(np.zeros((1, 5, 8, 8, 3), "float32"))

    def test_wrong_rank(self):
        with self.assertRaisesRegex(ValueError, r"rank 5.*Received: videos with shape \(1, 8, 8, 3\)"):
            TubeletEmbedding(**self.init_kwargs)(np.zeros((1, 8, 8, 3), "float32"))

    def test_bad_tubelet_size(self):
        with self.assertRaisesRegex(ValueError, r"Received: tubelet_size=\(2, 4\)"):
            TubeletEmbedding(tubelet_size=(2, 4), hidden_dim=8)
