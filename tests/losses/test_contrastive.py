import math

import keras
import numpy as np
import tensorflow as tf

from mmzoo.losses import CLIPLoss
from mmzoo.losses import NTXentLoss
from mmzoo.losses import SigLIPLoss
from mmzoo.losses import gather_from_replicas
from mmzoo.testing import TestCase
from mmzoo.training import get_strategy


def log_sigmoid(z):
    return -math.log(1.0 + math.exp(-z))


def outputs(x, y, scale, bias=None, batch=None):
    """A DualEncoder-like output dict (scale/bias repeated per example)."""
    batch = len(x) if batch is None else batch
    out = {
        "image_embeddings": np.asarray(x, "float32"),
        "text_embeddings": np.asarray(y, "float32"),
        "logit_scale": np.full((batch,), scale, "float32"),
    }
    if bias is not None:
        out["logit_bias"] = np.full((batch,), bias, "float32")
    return out


# Unit-norm embeddings: x @ y.T = [[1, 0.6], [0, 0.8]].
X = [[1.0, 0.0], [0.0, 1.0]]
Y = [[1.0, 0.0], [0.6, 0.8]]


class ContrastiveLossHandComputedTest(TestCase):
    def test_clip_loss(self):
        # scale 2: logits [[2, 1.2], [0, 1.6]]; rows are image->text, columns
        # text->image, label = the diagonal.
        row0 = -2.0 + math.log(math.exp(2.0) + math.exp(1.2))
        row1 = -1.6 + math.log(math.exp(0.0) + math.exp(1.6))
        col0 = -2.0 + math.log(math.exp(2.0) + math.exp(0.0))
        col1 = -1.6 + math.log(math.exp(1.2) + math.exp(1.6))
        expected = ((row0 + col0) / 2 + (row1 + col1) / 2) / 2
        self.assertAllClose(CLIPLoss()(None, outputs(X, Y, 2.0)), expected, atol=1e-5)
        per_pair = CLIPLoss(reduction=None)(None, outputs(X, Y, 2.0))
        self.assertAllClose(per_pair, [(row0 + col0) / 2, (row1 + col1) / 2], atol=1e-5)

    def test_clip_loss_is_symmetric_and_normalises(self):
        a = CLIPLoss()(None, outputs(X, Y, 2.0))
        swapped = {**outputs(Y, X, 2.0)}
        self.assertAllClose(CLIPLoss()(None, swapped), a, atol=1e-6)
        scaled = outputs(np.array(X) * 3.0, np.array(Y) * 0.5, 2.0)
        self.assertAllClose(CLIPLoss()(None, scaled), a, atol=1e-5)

    def test_siglip_loss(self):
        # scale 2, bias -1: z = [[1, 0.2], [-1, 0.6]]; +1 labels on the diagonal.
        row0 = -log_sigmoid(1.0) - log_sigmoid(-0.2)
        row1 = -log_sigmoid(1.0) - log_sigmoid(0.6)
        loss = SigLIPLoss()(None, outputs(X, Y, 2.0, bias=-1.0))
        self.assertAllClose(loss, (row0 + row1) / 2, atol=1e-5)

    def test_nt_xent_loss(self):
        x = [[1.0, 0.0], [0.0, 1.0]]
        y = [[0.6, 0.8], [0.8, 0.6]]
        # Temperature 0.5 (scale 2). Cosine similarities: x0.x1 = 0,
        # x0.y0 = 0.6, x0.y1 = 0.8, x1.y0 = 0.8, x1.y1 = 0.6, y0.y1 = 0.96.
        e = math.exp
        anchor_x0 = -1.2 + math.log(e(0.0) + e(1.2) + e(1.6))  # positive y0
        anchor_x1 = -1.2 + math.log(e(0.0) + e(1.6) + e(1.2))  # positive y1
        anchor_y0 = -1.2 + math.log(e(1.2) + e(1.6) + e(1.92))  # positive x0
        anchor_y1 = -1.2 + math.log(e(1.6) + e(1.2) + e(1.92))  # positive x1
        expected = (anchor_x0 + anchor_x1 + anchor_y0 + anchor_y1) / 4
        views = {
            "view_1_embeddings": np.array(x, "float32"),
            "view_2_embeddings": np.array(y, "float32"),
            "logit_scale": np.full((2,), 7.0, "float32"),  # ignored: fixed temperature
        }
        self.assertAllClose(NTXentLoss(temperature=0.5)(None, views), expected, atol=1e-5)
        # temperature=None takes the model's logit scale.
        views["logit_scale"] = np.full((2,), 2.0, "float32")
        self.assertAllClose(NTXentLoss()(None, views), expected, atol=1e-5)

    def test_sample_weight_and_serialization(self):
        per_pair = CLIPLoss(reduction=None)(None, outputs(X, Y, 2.0))
        weighted = CLIPLoss()(None, outputs(X, Y, 2.0), sample_weight=np.array([1.0, 0.0]))
        self.assertAllClose(weighted, per_pair[0] / 2, atol=1e-5)
        for loss in (CLIPLoss(), SigLIPLoss(), NTXentLoss(temperature=0.2)):
            restored = keras.losses.deserialize(keras.losses.serialize(loss))
            self.assertIsInstance(restored, type(loss))
        self.assertEqual(NTXentLoss(temperature=0.2).get_config()["temperature"], 0.2)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "output dict of a DualEncoder"):
            CLIPLoss()(None, np.zeros((2, 2)))
        with self.assertRaisesRegex(ValueError, "exactly two `\\*_embeddings`"):
            CLIPLoss()(None, {"image_embeddings": np.zeros((2, 2)), "logit_scale": np.ones(2)})
        with self.assertRaisesRegex(ValueError, "must hold `logit_bias`"):
            SigLIPLoss()(None, outputs(X, Y, 2.0))
        with self.assertRaisesRegex(ValueError, "Received: temperature=0"):
            NTXentLoss(temperature=0)

    def test_gather_is_identity_without_replicas(self):
        x = np.ones((3, 2), "float32")
        gathered, offset = gather_from_replicas(x)
        self.assertAllClose(gathered, x)
        self.assertEqual(offset, 0)


def hard_negative_infonce(logits, positive, negatives, beta):
    """Robinson et al. 2021's estimator for one anchor, in NumPy float64.

    Their code: `imp = exp(beta * log(neg))`, `Ng = sum(imp * neg) / mean(imp)`,
    `loss = -log(pos / (pos + Ng))`, with `pos`, `neg` the exponentiated
    logits of the positive and of the negatives.
    """
    pos = np.exp(logits[positive])
    neg = np.exp(logits[negatives])
    imp = neg ** beta
    return -np.log(pos / (pos + np.sum(imp * neg) / np.mean(imp)))


def random_unit(rng, n, dim):
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class HardNegativesAndPrecisionTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.x, self.y = random_unit(rng, 6, 8), random_unit(rng, 6, 8)

    def clip_reference(self, scale, beta):
        logits = scale * self.x @ self.y.T
        n = len(logits)
        per_pair = []
        for i in range(n):
            others = np.arange(n) != i
            row = hard_negative_infonce(logits[i], i, others, beta)
            column = hard_negative_infonce(logits[:, i], i, others, beta)
            per_pair.append((row + column) / 2)
        return np.array(per_pair)

    def float64_outputs(self, scale):
        return {
            "image_embeddings": self.x, "text_embeddings": self.y,
            "logit_scale": np.full((len(self.x),), scale),
        }

    def test_clip_hard_negatives_equal_the_reference(self):
        for beta in (0.0, 0.5, 2.0):
            loss = CLIPLoss(hard_negative_beta=beta, reduction=None, dtype="float64")
            values = loss(None, self.float64_outputs(5.0))
            self.assertEqual(values.dtype, tf.float64)
            self.assertAllClose(values, self.clip_reference(5.0, beta), atol=1e-12, rtol=0)
        # The weighting changes the loss, and beta=0 is the plain loss.
        plain = CLIPLoss(dtype="float64")(None, self.float64_outputs(5.0))
        hard = CLIPLoss(hard_negative_beta=2.0, dtype="float64")(None, self.float64_outputs(5.0))
        self.assertGreater(abs(float(hard) - float(plain)), 1e-3)

    def test_nt_xent_hard_negatives_equal_the_reference(self):
        temperature, beta, n = 0.3, 1.5, len(self.x)
        views = np.concatenate([self.x, self.y])
        logits = views @ views.T / temperature
        anchors = []
        for a in range(2 * n):
            positive = (a + n) % (2 * n)
            negatives = (np.arange(2 * n) != a) & (np.arange(2 * n) != positive)
            anchors.append(hard_negative_infonce(logits[a], positive, negatives, beta))
        expected = (np.array(anchors[:n]) + np.array(anchors[n:])) / 2
        loss = NTXentLoss(temperature=temperature, hard_negative_beta=beta, reduction=None,
                          dtype="float64")
        values = loss(None, {"view_1_embeddings": self.x, "view_2_embeddings": self.y})
        self.assertAllClose(values, expected, atol=1e-12, rtol=0)

    def test_float64_is_computed_in_float64(self):
        # Logits of scale 100 lose ~1e-5 in float32; float64 keeps ~1e-13.
        expected = self.clip_reference(100.0, 0.0)
        float64 = CLIPLoss(reduction=None, dtype="float64")(None, self.float64_outputs(100.0))
        float32 = CLIPLoss(reduction=None)(None, self.float64_outputs(100.0))
        self.assertEqual(float32.dtype, tf.float32)
        self.assertAllClose(float64, expected, atol=1e-10, rtol=0)
        self.assertGreater(np.max(np.abs(float32.numpy() - expected)), 1e-9)
        siglip = SigLIPLoss(dtype="float64")(
            None, {**self.float64_outputs(10.0), "logit_bias": np.full((6,), -10.0)}
        )
        self.assertEqual(siglip.dtype, tf.float64)

    def test_zero_embedding_has_finite_gradients(self):
        x = tf.constant(np.concatenate([np.zeros((1, 8)), self.x[1:]]), "float32")
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = CLIPLoss()(None, {**self.float64_outputs(5.0), "image_embeddings": x})
        self.assertTrue(np.all(np.isfinite(tape.gradient(loss, x).numpy())))

    def test_bad_hard_negative_beta(self):
        for bad in (-0.1, float("nan"), True, "2"):
            with self.assertRaisesRegex(ValueError, "Received: hard_negative_beta="):
                CLIPLoss(hard_negative_beta=bad)
            with self.assertRaisesRegex(ValueError, "Received: hard_negative_beta="):
                NTXentLoss(temperature=0.1, hard_negative_beta=bad)

    def test_hard_negative_beta_is_serialised(self):
        for loss in (CLIPLoss(hard_negative_beta=0.7),
                     NTXentLoss(temperature=0.2, hard_negative_beta=0.7)):
            restored = keras.losses.deserialize(keras.losses.serialize(loss))
            self.assertEqual(restored.hard_negative_beta, 0.7)


class GlobalNegativesTest(TestCase):
    """Two replicas (two logical CPUs) equal one device on the same global batch."""

    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.batch = 8
        self.image_features = rng.randn(self.batch, 5).astype("float32")
        self.text_features = rng.randn(self.batch, 3).astype("float32")
        self.image_kernel = rng.randn(5, 4).astype("float32")
        self.text_kernel = rng.randn(3, 4).astype("float32")

    def loss_and_gradients(self, loss_fn, strategy=None, bias=None):
        """Loss summed over replicas and gradients summed over replicas."""
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            variables = [
                tf.Variable(self.image_kernel),
                tf.Variable(self.text_kernel),
                tf.Variable(2.5),
                tf.Variable(-1.0 if bias is None else bias),
            ]
        replicas = strategy.num_replicas_in_sync
        local = self.batch // replicas

        def replica_step(images, texts):
            with tf.GradientTape() as tape:
                image_embeddings = tf.matmul(images, variables[0])
                text_embeddings = tf.matmul(texts, variables[1])
                ones = tf.ones((tf.shape(images)[0],))
                y_pred = {
                    "image_embeddings": image_embeddings,
                    "text_embeddings": text_embeddings,
                    "logit_scale": ones * variables[2],
                    "logit_bias": ones * variables[3],
                }
                loss = loss_fn(None, y_pred)
            grads = tape.gradient(
                loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
            return loss, grads

        images = tf.constant(self.image_features)
        texts = tf.constant(self.text_features)
        if replicas == 1:
            loss, grads = tf.function(replica_step)(images, texts)
            return loss.numpy(), [g.numpy() for g in grads]
        distributed = strategy.experimental_distribute_values_from_function(
            lambda ctx: (
                images[ctx.replica_id_in_sync_group * local : (ctx.replica_id_in_sync_group + 1) * local],
                texts[ctx.replica_id_in_sync_group * local : (ctx.replica_id_in_sync_group + 1) * local],
            )
        )

        @tf.function
        def step():
            loss, grads = strategy.run(replica_step, args=distributed)
            return (
                strategy.reduce("SUM", loss, axis=None),
                [strategy.reduce("SUM", g, axis=None) for g in grads],
            )

        loss, grads = step()
        return loss.numpy(), [g.numpy() for g in grads]

    def test_two_replicas_equal_one_device(self):
        strategy = get_strategy("mirrored")
        self.assertEqual(strategy.num_replicas_in_sync, 2)
        for loss_fn in (CLIPLoss(), SigLIPLoss(), NTXentLoss(), NTXentLoss(temperature=0.3)):
            with self.subTest(loss=loss_fn.name):
                loss_one, grads_one = self.loss_and_gradients(loss_fn)
                loss_two, grads_two = self.loss_and_gradients(loss_fn, strategy)
                self.assertAllClose(loss_two, loss_one, atol=1e-5, rtol=1e-5)
                for g_two, g_one in zip(grads_two, grads_one):
                    self.assertAllClose(g_two, g_one, atol=1e-5, rtol=1e-5)

    def test_local_logits_would_differ(self):
        # Guards the test above: without the gather, two replicas see half
        # the negatives and the loss is different.
        strategy = get_strategy("mirrored")
        one, _ = self.loss_and_gradients(CLIPLoss())

        class LocalCLIPLoss(CLIPLoss):
            def call(self, y_true, y_pred):
                import mmzoo.losses.contrastive as module

                original = module.gather_from_replicas
                module.gather_from_replicas = lambda x: (x, 0)
                try:
                    return super().call(y_true, y_pred)
                finally:
                    module.gather_from_replicas = original

        two, _ = self.loss_and_gradients(LocalCLIPLoss(), strategy)
        self.assertGreater(abs(two - one), 1e-3)

    def test_xla_with_cpu_replicas_has_a_clear_error(self):
        strategy = get_strategy("mirrored")
        embeddings = tf.ones((4, 2))

        def replica_step():
            return gather_from_replicas(embeddings)[0]

        compiled = tf.function(replica_step, jit_compile=True)

        @tf.function
        def step():
            return strategy.run(lambda: compiled())

        with self.assertRaisesRegex(RuntimeError, "jit_compile=False"):
            step()
