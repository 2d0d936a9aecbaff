import keras
import numpy as np

from mmzoo.layers import ProjectionHead
from mmzoo.testing import TestCase


class ProjectionHeadTest(TestCase):
    def setUp(self):
        super().setUp()
        self.input_data = np.random.RandomState(0).randn(4, 8).astype("float32")

    def test_linear(self):
        self.run_layer_test(
            cls=ProjectionHead,
            init_kwargs={"projection_dim": 4},
            input_data=self.input_data,
            expected_output_shape=(4, 4),
            expected_num_trainable_weights=2,
        )

    def test_mlp(self):
        self.run_layer_test(
            cls=ProjectionHead,
            init_kwargs={"projection_dim": 4, "intermediate_dim": 16, "dropout_rate": 0.1},
            input_data=self.input_data,
            expected_output_shape=(4, 4),
            expected_num_trainable_weights=4,
        )

    def test_sequence_input(self):
        out = ProjectionHead(projection_dim=3)(np.zeros((2, 5, 8), "float32"))
        self.assertEqual(tuple(out.shape), (2, 5, 3))

    def test_saving(self):
        inputs = keras.Input((8,))
        model = keras.Model(inputs, ProjectionHead(4, intermediate_dim=16)(inputs))
        self.run_model_saving_test(model, self.input_data)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: projection_dim=0"):
            ProjectionHead(projection_dim=0)
        with self.assertRaisesRegex(ValueError, "Received: dropout_rate=1.5"):
            ProjectionHead(projection_dim=4, dropout_rate=1.5)
