"""The TestCase helpers fail when the contract they check is broken."""

import keras
import numpy as np
import tensorflow as tf

from mmzoo.layers import ProjectionHead
from mmzoo.testing import TestCase


class ForgetfulDense(keras.layers.Dense):
    """get_config drops `units`: the config round trip must catch it."""

    def get_config(self):
        config = super().get_config()
        config["units"] = 1
        return config


class FrozenHalf(keras.layers.Layer):
    """One weight never gets a gradient: the training check must catch it."""

    def build(self, shape):
        self.used = self.add_weight(shape=(shape[-1],), name="used")
        self.unused = self.add_weight(shape=(shape[-1],), name="unused")

    def call(self, x):
        return x * self.used

    def compute_output_shape(self, shape):
        return shape


class FloatOnly(keras.layers.Layer):
    """Computes in float32 whatever the policy: the mixed check must catch it."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), name="w")

    def call(self, x):
        return ops_cast(x * self.w)

    def compute_output_shape(self, shape):
        return shape


def ops_cast(x):
    return keras.ops.cast(x, "float32")


class TestCaseHelpersTest(TestCase):
    def test_layer_test_passes_a_good_layer(self):
        self.run_layer_test(ProjectionHead, {"projection_dim": 3}, np.ones((2, 4), "float32"), (2, 3))

    def test_layer_test_catches_a_bad_config(self):
        with self.assertRaises(AssertionError):
            self.run_layer_test(ForgetfulDense, {"units": 3}, np.ones((2, 4), "float32"), (2, 3))

    def test_layer_test_catches_a_wrong_shape(self):
        with self.assertRaises(AssertionError):
            self.run_layer_test(ProjectionHead, {"projection_dim": 3}, np.ones((2, 4), "float32"), (2, 4))

    def test_layer_test_catches_weights_without_gradient(self):
        with self.assertRaisesRegex(AssertionError, "weights without gradient.*unused"):
            self.run_layer_test(FrozenHalf, {}, np.ones((2, 4), "float32"), (2, 4),
                                run_mixed_precision_check=False)

    def test_layer_test_catches_float32_under_mixed_precision(self):
        with self.assertRaises(AssertionError):
            self.run_layer_test(FloatOnly, {}, np.ones((2, 4), "float32"), (2, 4))

    def test_export_test_catches_different_outputs(self):
        inputs = keras.Input((4,), name="x")
        model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        with self.assertRaises(AssertionError):
            self.run_export_test(
                model, {"x": np.ones((2, 4), "float32")}, expected_output=np.zeros((2, 2))
            )

    def test_export_test_reports_a_failed_load_and_goes_on_serving(self):
        inputs = keras.Input((4,), name="x")
        model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        data = {"x": np.ones((2, 4), "float32")}
        # Nothing written at the path: the serving process's error comes back.
        with self.assertRaisesRegex(AssertionError, "serving process failed"):
            self.run_export_test(model, data, export_fn=lambda path: None)
        with self.assertRaisesRegex(AssertionError, "(?s)serving process failed.*no_such_signature"):
            self.run_export_test(model, data, endpoint="no_such_signature")
        # The same process serves the next export.
        served = self.run_export_test(model, data)
        self.assertAllClose(next(iter(served.values())), model(data["x"]), atol=1e-5)

    def test_dataset_op_test_catches_batch_dependence(self):
        def normalize_by_batch(x):  # wrong when batched: mixes examples
            return {"v": x["v"] - tf.reduce_mean(x["v"])}

        with self.assertRaises(AssertionError):
            self.run_dataset_op_test(normalize_by_batch, {"v": np.arange(6, dtype="float32").reshape(3, 2)})

    def test_dataset_op_test_passes_a_pure_op(self):
        out = self.run_dataset_op_test(
            lambda x: {"v": x["v"] * 2}, {"v": np.arange(6, dtype="float32").reshape(3, 2)}
        )
        self.assertAllClose(out[1]["v"], [4.0, 6.0])

    def test_saving_test_catches_unregistered_layers(self):
        class Unregistered(keras.layers.Layer):
            def call(self, x):
                return x + 1

        inputs = keras.Input((2,))
        model = keras.Model(inputs, Unregistered()(inputs))
        with self.assertRaises(Exception):
            self.run_model_saving_test(model, np.ones((1, 2), "float32"))
