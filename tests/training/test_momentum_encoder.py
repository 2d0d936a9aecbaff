"""Momentum encoder and feature queue of `DualEncoder` / `TwoViewEncoder` (MoCo, ALBEF).

The SIGKILL-resume test of `test_checkpoints.py` trains a model with a
momentum encoder and a queue (`training_child.py --momentum`).
"""

import keras
import numpy as np
import tensorflow as tf

from mmzoo import losses
from mmzoo.models import build_two_view_encoder
from mmzoo.models.dual_encoder.dual_encoder_base import pooled_features
from mmzoo.presets import build_from_preset
from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import get_strategy
from test_contrastive_accumulation import pair_data

BATCH = 4


def momentum_dual_encoder(seed=0, momentum=0.8, queue_size=8, **overrides):
    keras.utils.set_random_seed(seed)
    arguments = {"image_encoder": {"num_layers": 1}, "text_encoder": {"num_layers": 1}}
    return build_from_preset(
        "dual_encoder_tiny", momentum=momentum, queue_size=queue_size,
        **{**arguments, **overrides},
    )


def batches(data, size):
    return tf.data.Dataset.from_tensor_slices(data).batch(size, drop_remainder=True)


def normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def reference_loss(x, y, x_keys, y_keys, x_queue, y_queue, mask, scale, beta=0.0):
    """CLIP with momentum keys and a queue (ALBEF's ITC), in NumPy float64."""
    x, y, x_keys, y_keys = (normalize(a.astype("float64")) for a in (x, y, x_keys, y_keys))
    x_queue, y_queue = (normalize(q.astype("float64"))[mask] for q in (x_queue, y_queue))

    def direction(anchors, keys, queue):
        columns = np.concatenate([keys, queue])
        logits = scale * anchors @ columns.T
        rows = []
        for i, row in enumerate(logits):
            negatives = np.ones(len(row), bool)
            negatives[i] = False
            weighted = row.copy()
            if beta:
                weights = np.exp(beta * row[negatives])
                weighted[negatives] += np.log(weights / weights.mean())
            rows.append(-log_softmax(weighted[None])[0, i])
        return np.asarray(rows)

    return 0.5 * (direction(x, y_keys, y_queue) + direction(y, x_keys, x_queue))


class MomentumLossTest(TestCase):
    def outputs(self, seed=0, dim=6):
        rng = np.random.default_rng(seed)
        draw = lambda n: rng.normal(size=(n, dim)).astype("float32")  # noqa: E731
        mask = np.array([True, True, True, False, True, False, False, True])
        return {
            "image_embeddings": draw(BATCH), "text_embeddings": draw(BATCH),
            "image_keys": draw(BATCH), "text_keys": draw(BATCH),
            "image_queue": draw(8), "text_queue": draw(8), "queue_mask": mask,
            "logit_scale": np.full((BATCH,), 3.0, "float32"),
        }

    def test_clip_loss_with_keys_and_queue_equals_numpy(self):
        y_pred = self.outputs()
        for beta in (0.0, 0.7):
            expected = reference_loss(
                *(y_pred[k] for k in ("image_embeddings", "text_embeddings", "image_keys",
                                      "text_keys", "image_queue", "text_queue", "queue_mask")),
                scale=3.0, beta=beta,
            )
            got = losses.CLIPLoss(hard_negative_beta=beta, reduction=None, dtype="float64")(
                None, y_pred)
            self.assertAllClose(expected, got, atol=1e-10)

    def test_unwritten_queue_entries_do_not_count(self):
        y_pred = self.outputs()
        loss = losses.CLIPLoss(reduction=None)
        changed = dict(y_pred, image_queue=y_pred["image_queue"].copy())
        changed["image_queue"][~y_pred["queue_mask"]] = 50.0
        self.assertAllClose(loss(None, y_pred), loss(None, changed), atol=1e-6)
        # A written entry does count.
        changed["image_queue"][0] = 50.0
        self.assertNotAllClose(loss(None, y_pred), loss(None, changed))

    def test_keys_without_queue_replace_the_in_batch_candidates(self):
        y_pred = self.outputs()
        for key in ("image_queue", "text_queue", "queue_mask"):
            del y_pred[key]
        empty = np.zeros((0, 6), "float32")
        expected = reference_loss(
            y_pred["image_embeddings"], y_pred["text_embeddings"], y_pred["image_keys"],
            y_pred["text_keys"], empty, empty, np.zeros((0,), bool), scale=3.0)
        self.assertAllClose(expected, losses.CLIPLoss(reduction=None)(None, y_pred), atol=1e-5)

    def test_siglip_and_nt_xent_refuse_momentum_outputs(self):
        y_pred = dict(self.outputs(), logit_bias=np.zeros((BATCH,), "float32"))
        for loss in (losses.SigLIPLoss(), losses.NTXentLoss(temperature=0.1)):
            with self.assertRaisesRegex(ValueError, "train such a model with `mmzoo.losses.CLIPLoss`.*image_keys"):
                loss(None, y_pred)


class MomentumEncoderTest(TestCase):
    def test_training_calls_read_the_queue_then_push_the_batch(self):
        model = momentum_dual_encoder()
        data = pair_data(BATCH)
        self.assertEqual(sorted(model(data, training=False)),
                         ["image_embeddings", "logit_scale", "text_embeddings"])
        self.assertEqual(int(model.feature_queue.filled.numpy()), 0)  # inference writes nothing
        # Compiled (XLA) as the Trainer runs it: the outputs hold the queue as
        # it was before the call, the variables the batch's keys.
        outputs = tf.function(lambda x: model(x, training=True), jit_compile=True)(data)
        self.assertEqual(
            sorted(outputs),
            ["image_embeddings", "image_keys", "image_queue", "logit_scale", "queue_mask",
             "text_embeddings", "text_keys", "text_queue"],
        )
        self.assertFalse(np.any(outputs["queue_mask"]))
        self.assertEqual(int(model.feature_queue.filled.numpy()), BATCH)
        self.assertEqual(int(model.feature_queue.position.numpy()), BATCH)
        # Untrained, the copy is the model: keys are the model's embeddings.
        self.assertAllClose(outputs["image_keys"], outputs["image_embeddings"], atol=1e-5)
        self.assertAllClose(model.feature_queue.queues["text"].numpy()[:BATCH],
                            model.encode_text(data), atol=1e-5)

    def test_moving_average_and_queue_through_trainer_steps(self):
        momentum = 0.8
        model = momentum_dual_encoder(momentum=momentum, queue_size=8)
        data = pair_data(12)
        copies = model.momentum_towers + model.momentum_projections
        originals = [model.image_encoder, model.text_encoder, model.image_projection,
                     model.text_projection]
        read = lambda layers: [w.numpy() for layer in layers for w in layer.weights  # noqa: E731
                               if "float" in str(w.dtype)]
        snapshots = [(read(originals), read(copies))]
        trainer = Trainer(model, losses.CLIPLoss(), keras.optimizers.SGD(0.5))
        record = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda step, logs: snapshots.append((read(originals), read(copies)))
        )
        trainer.fit(batches(data, BATCH), steps=3, verbose=0, callbacks=[record])

        self.assertLen(snapshots, 4)
        self.assertAllCloseNested(snapshots[1][1], snapshots[0][0])  # starts as the model
        for step in (2, 3):  # the copy moved towards the weights before the step
            expected = [momentum * c + (1 - momentum) * o
                        for c, o in zip(snapshots[step - 1][1], snapshots[step - 1][0])]
            self.assertAllCloseNested(expected, snapshots[step][1], atol=1e-6)
        moved = max(np.max(np.abs(a - b)) for a, b in zip(snapshots[3][0], snapshots[0][0]))
        self.assertGreater(moved, 1e-2)

        # Queue of 8, batches of 4: batch 3 overwrote batch 1; batch 2 stays.
        queue = model.feature_queue
        self.assertEqual((int(queue.filled.numpy()), int(queue.position.numpy())), (8, 4))
        variables = [w for layer in copies for w in layer.weights if "float" in str(w.dtype)]
        for step, rows in ((2, slice(4, 8)), (3, slice(0, 4))):
            for variable, value in zip(variables, snapshots[step][1]):
                variable.assign(value)
            batch = {k: v[(step - 1) * BATCH: step * BATCH] for k, v in data.items()}
            text = {k: batch[k] for k in ("token_ids", "padding_mask")}
            for name, inputs, tower, projection in (
                ("image", batch["images"], *copies[0::2]), ("text", text, *copies[1::2])
            ):
                keys = normalize(projection(pooled_features(tower, tower(inputs), name)).numpy())
                self.assertAllClose(queue.queues[name].numpy()[rows], keys, atol=1e-5,
                                    msg=f"{name} keys of batch {step}")

    def test_two_replicas_equal_one_device(self):
        # The queue takes the keys of both replicas, in replica order.
        def train(strategy):
            with strategy.scope():
                model = momentum_dual_encoder(queue_size=16)
                optimizer = keras.optimizers.SGD(0.5)
            # (The all-gather cannot be XLA-compiled on CPU.)
            trainer = Trainer(model, losses.CLIPLoss(), optimizer, strategy=strategy,
                              jit_compile=False)
            trainer.fit(batches(pair_data(24), 8), steps=3, verbose=0)
            return [v.numpy() for v in model.variables if "float" in str(v.dtype)], model

        one, model = train(tf.distribute.get_strategy())
        two, _ = train(get_strategy("mirrored"))
        self.assertEqual(int(model.feature_queue.filled.numpy()), 16)
        self.assertAllCloseNested(one, two, atol=1e-5)

    def test_saved_model_keeps_the_copy_and_the_queue(self):
        model = momentum_dual_encoder()
        trainer = Trainer(model, losses.CLIPLoss(), keras.optimizers.SGD(0.5))
        trainer.fit(batches(pair_data(8), BATCH), steps=2, verbose=0)
        path = self.get_temp_dir() + "/momentum.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        self.assertEqual((loaded.momentum, loaded.queue_size), (0.8, 8))
        self.assertLen(loaded.variables, len(model.variables))
        for saved, restored in zip(model.variables, loaded.variables):
            self.assertAllEqual(saved.numpy(), restored.numpy(), msg=saved.path)
        # The copy differs from the model after training: it was saved, not rebuilt.
        self.assertNotAllClose(model.momentum_projections[0].weights[0].numpy(),
                               model.image_projection.weights[0].numpy())

    def test_export_serves_the_model_without_the_copy_and_queue(self):
        import tensorflow_text  # noqa: F401  (the tokenizer's ops, to load the SavedModel)

        from mmzoo.data import TextTokenizer
        from mmzoo.export import export_dual_encoder
        from mmzoo.models import DualEncoderPreprocessor

        vocabulary = ["[PAD]", "[UNK]", "[START]", "[END]", "red", "circle"]
        model = momentum_dual_encoder(
            queue_size=64, text_encoder={"num_layers": 1, "vocabulary_size": len(vocabulary)},
            preprocessor=DualEncoderPreprocessor(TextTokenizer(vocabulary)))
        path = export_dual_encoder(model, self.get_temp_dir() + "/serving")
        served = tf.saved_model.load(path)
        texts = ["red circle", "circle"]
        self.assertAllClose(served.signatures["encode_text"](texts=tf.constant(texts))["embeddings"],
                            model.encode_text(texts), atol=1e-5)
        # The graph's variables only: not the copy's, not the queue's.
        training_state = {
            id(v) for layer in model.momentum_towers + model.momentum_projections
            + [model.feature_queue] for v in layer.variables
        }
        served_state = [v for v in model.variables if id(v) not in training_state]
        self.assertLen(served.variables, len(served_state))
        self.assertFalse([v.name for v in served.variables if "queue" in v.name])

    def test_two_view_encoder_as_moco_through_model_fit(self):
        keras.utils.set_random_seed(0)
        encoder = build_from_preset("vit_image_encoder_tiny", num_layers=1)
        model = build_two_view_encoder(encoder, projection_dim=16, initial_temperature=0.2,
                                       trainable_temperature=False, momentum=0.9, queue_size=8)
        self.assertLen(model.momentum_towers, 1)  # one tower for both views
        images = pair_data(8)["images"]
        views = {"view_1_images": images, "view_2_images": images[:, ::-1]}
        model.compile(optimizer="sgd", loss=losses.CLIPLoss())
        model.fit(batches(views, BATCH), epochs=1, verbose=0, shuffle=False)
        self.assertEqual(int(model.feature_queue.filled.numpy()), 8)
        model.compile(optimizer="sgd", loss=losses.NTXentLoss(temperature=0.2))
        with self.assertRaisesRegex(ValueError, "view_1_keys"):
            model.fit(batches(views, BATCH), epochs=1, verbose=0, shuffle=False)


class MomentumBadInputTest(TestCase):
    def test_momentum_and_queue_size_are_checked_before_building(self):
        for momentum in (1.0, -0.1, True, "0.9"):
            with self.assertRaisesRegex(ValueError, f"momentum={momentum!r}"):
                momentum_dual_encoder(momentum=momentum)
        for queue_size in (-1, 2.5, True):
            with self.assertRaisesRegex(ValueError, f"queue_size={queue_size!r}"):
                momentum_dual_encoder(queue_size=queue_size)
        with self.assertRaisesRegex(ValueError, "pass `momentum`.*queue_size=8"):
            momentum_dual_encoder(momentum=None, queue_size=8)

    def test_queue_size_must_be_a_multiple_of_the_global_batch(self):
        model = momentum_dual_encoder(queue_size=10)
        trainer = Trainer(model, losses.CLIPLoss(), keras.optimizers.SGD(0.5))
        with self.assertRaisesRegex(ValueError, "queue_size=10, global batch size 4"):
            trainer.fit(batches(pair_data(8), BATCH), steps=1, verbose=0)
        self.assertEqual(trainer.step, 0)

    def test_cached_accumulation_is_refused(self):
        with self.assertRaisesRegex(ValueError, "accumulation_steps=2.*momentum=0.8"):
            Trainer(momentum_dual_encoder(), losses.CLIPLoss(), keras.optimizers.SGD(0.5),
                    accumulation_steps=2)
