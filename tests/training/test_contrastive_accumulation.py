"""`Trainer(accumulation_steps=k)` with contrastive losses equals one big batch.

A contrastive loss couples the rows of a batch (each row's negatives are
the other rows), so summing micro-batch losses is not the big-batch loss;
the Trainer caches output gradients instead (see its module docstring).
"""

import keras
import numpy as np
import tensorflow as tf

from mmzoo import losses
from mmzoo.models import build_two_view_encoder
from mmzoo.presets import build_from_preset
from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import get_strategy


def dual_encoder(seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    return build_from_preset(
        "dual_encoder_tiny",
        image_encoder={"num_layers": 1},
        text_encoder={"num_layers": 1},
        **overrides,
    )


def two_view_encoder(seed=0):
    keras.utils.set_random_seed(seed)
    encoder = build_from_preset("vit_image_encoder_tiny", num_layers=1)
    return build_two_view_encoder(encoder, projection_dim=16)


def pair_data(num_examples=16, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, 100, size=(num_examples, 32)).astype("int32")
    lengths = rng.integers(4, 32, size=(num_examples, 1))
    padding_mask = np.arange(32)[None, :] < lengths
    return {
        "images": rng.uniform(size=(num_examples, 32, 32, 3)).astype("float32"),
        "token_ids": np.where(padding_mask, token_ids, 0).astype("int32"),
        "padding_mask": padding_mask,
    }


def view_data(num_examples=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(num_examples, 32, 32, 3)).astype("float32")
    return {"view_1_images": images, "view_2_images": images[:, ::-1] * 0.9}


def weights_of(model):
    return [v.numpy() for v in model.trainable_variables]


class SummedMicroBatches(losses.CLIPLoss):
    """CLIPLoss accumulated as if it were a per-example loss (the wrong way)."""

    couples_batch = False


class ContrastiveAccumulationTest(TestCase):
    def train(self, model_fn, loss, data, batch_size, strategy=None, steps=2, **kwargs):
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            model = model_fn()
            optimizer = keras.optimizers.SGD(0.5)
        trainer = Trainer(model, loss, optimizer, strategy=strategy, **kwargs)
        dataset = tf.data.Dataset.from_tensor_slices(data).batch(batch_size, drop_remainder=True)
        trainer.fit(dataset, steps=steps, verbose=0)
        return trainer

    def assert_equals_big_batch(self, model_fn, loss, data, strategy=None, jit_compile=False):
        # XLA compiling costs more than these steps: only the CLIP test (on
        # one device, where it is the default) compiles.
        before = weights_of(model_fn())
        big = self.train(model_fn, loss, data, batch_size=8, jit_compile=jit_compile)
        accumulated = self.train(model_fn, loss, data, batch_size=4, strategy=strategy,
                                 accumulation_steps=2, jit_compile=jit_compile)
        self.assertEqual(accumulated.step, 2)
        big_weights, accumulated_weights = weights_of(big.model), weights_of(accumulated.model)
        # The update is large enough for the comparison to mean something.
        moved = max(np.max(np.abs(a - b)) for a, b in zip(big_weights, before))
        self.assertGreater(moved, 1e-2)
        self.assertAllCloseNested(big_weights, accumulated_weights, atol=1e-5)
        return big_weights

    def test_clip_loss(self):
        big = self.assert_equals_big_batch(
            dual_encoder, losses.CLIPLoss(), pair_data(), jit_compile=True
        )
        # Summing micro-batch losses (the per-example path) is measurably
        # different, so the comparison above can fail.
        summed = self.train(dual_encoder, SummedMicroBatches(), pair_data(), batch_size=4,
                            accumulation_steps=2, jit_compile=False)
        difference = max(np.max(np.abs(a - b)) for a, b in zip(big, weights_of(summed.model)))
        self.assertGreater(difference, 1e-3)

    def test_siglip_loss(self):
        model_fn = lambda: dual_encoder(use_bias=True, initial_bias=-10.0)  # noqa: E731
        self.assert_equals_big_batch(model_fn, losses.SigLIPLoss(), pair_data())

    def test_nt_xent_loss(self):
        self.assert_equals_big_batch(
            two_view_encoder, losses.NTXentLoss(temperature=0.2), view_data()
        )

    def test_clip_loss_on_two_replicas(self):
        # (The all-gather of global negatives cannot be XLA-compiled on CPU.)
        self.assert_equals_big_batch(
            dual_encoder, losses.CLIPLoss(), pair_data(), strategy=get_strategy("mirrored")
        )

    def test_nt_xent_loss_on_two_replicas(self):
        self.assert_equals_big_batch(
            two_view_encoder, losses.NTXentLoss(temperature=0.2), view_data(),
            strategy=get_strategy("mirrored"),
        )

    def test_dropout_masks_match_between_the_two_passes(self):
        # With dropout, the reference is one tape over the same two forward
        # passes (same seeds) and the loss of their concatenated outputs.
        def model_fn():
            return dual_encoder(projection_intermediate_dim=64, dropout_rate=0.5)

        data = pair_data(num_examples=8)
        trained = self.train(model_fn, losses.CLIPLoss(), data, batch_size=4, steps=1,
                             accumulation_steps=2, jit_compile=False)
        model = model_fn()
        first = {k: v[:4] for k, v in data.items()}
        second = {k: v[4:] for k, v in data.items()}
        with tf.GradientTape() as tape:
            outputs = [model(first, training=True), model(second, training=True)]
            joined = {k: tf.concat([o[k] for o in outputs], axis=0) for k in outputs[0]}
            loss = losses.CLIPLoss()(None, joined)
        grads = tape.gradient(loss, model.trainable_variables)
        expected = [
            v.numpy() - 0.5 * tf.convert_to_tensor(g).numpy()
            for v, g in zip(model.trainable_variables, grads)
        ]
        self.assertAllCloseNested(expected, weights_of(trained.model), atol=1e-5)
        # The seed state advanced once per micro-batch, as without caching.
        seeds = [v.numpy() for v in model.non_trainable_variables]
        self.assertAllCloseNested(seeds, [v.numpy() for v in trained.model.non_trainable_variables])
