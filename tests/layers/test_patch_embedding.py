import numpy as np

from mmzoo.layers import PatchEmbedding
from mmzoo.testing import TestCase


class PatchEmbeddingTest(TestCase):
    def setUp(self):
        super().setUp()
        self.init_kwargs = {"patch_size": 4, "hidden_dim": 8}
        self.input_data = np.random.RandomState(0).rand(2, 8, 12, 3).astype("float32")

    def test_layer_basics(self):
        self.run_layer_test(
            cls=PatchEmbedding,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape=(2, 6, 8),
            expected_num_trainable_weights=3,
        )

    def test_patches_are_row_major_and_local(self):
        layer = PatchEmbedding(**self.init_kwargs, use_position_embedding=False)
        base = layer(self.input_data)
        changed = self.input_data.copy()
        changed[:, 4:8, 0:4, :] += 1.0  # second patch row, first column -> token 3
        diff = np.abs(np.asarray(layer(changed)) - np.asarray(base)).sum(axis=(0, 2))
        self.assertGreater(diff[3], 0)
        self.assertAllClose(np.delete(diff, 3), np.zeros(5))

    def test_saving(self):
        import keras

        inputs = keras.Input((8, 12, 3))
        model = keras.Model(inputs, PatchEmbedding(**self.init_kwargs)(inputs))
        self.run_model_saving_test(model, self.input_data)

    def test_image_not_divisible_by_patch_size(self):
        with self.assertRaisesRegex(ValueError, "divisible by `patch_size`.*Received: image width=12"):
            PatchEmbedding(patch_size=5, hidden_dim=8)(np.zeros((1, 10, 12, 3), "float32"))

    def test_wrong_rank(self):
        with self.assertRaisesRegex(ValueError, r"rank 4.*Received: images with shape \(1, 8, 8\)"):
            PatchEmbedding(patch_size=4, hidden_dim=8)(np.zeros((1, 8, 8), "float32"))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: patch_size=0"):
            PatchEmbedding(patch_size=0, hidden_dim=8)
        with self.assertRaisesRegex(ValueError, "Received: hidden_dim=-2"):
            PatchEmbedding(patch_size=2, hidden_dim=-2)
