import numpy as np
import tensorflow as tf

import mmzoo.data
from mmzoo.data import ops
from mmzoo.data.images import resize_images
from mmzoo.testing import TestCase


class OpsTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.images = rng.random((3, 12, 10, 3)).astype("float32")
        self.videos = rng.random((3, 4, 12, 10, 3)).astype("float32")
        self.captions = np.array(
            [["a red circle", "a circle", "red"], ["a blue square", "blue", "a square"],
             ["one", "two", "three"]]
        )
        self.randoms = np.array([5, 0, -7], "int64")

    def test_resize_images(self):
        outputs = self.run_dataset_op_test(ops.resize((6, 8)), {"images": self.images})
        self.assertEqual(outputs[0]["images"].shape, (6, 8, 3))

    def test_resize_videos(self):
        outputs = self.run_dataset_op_test(
            ops.resize((6, 5, 3), key="videos"), {"videos": self.videos}
        )
        self.assertEqual(outputs[0]["videos"].shape, (4, 6, 5, 3))

    def test_resize_keeps_constant_images_and_range(self):
        example = {"images": np.full((12, 10, 3), 0.25, "float32"), "labels": 1}
        outputs = ops.resize((30, 30))(example)
        self.assertAllClose(outputs["images"], np.full((30, 30, 3), 0.25))
        self.assertEqual(outputs["labels"], 1)  # other keys pass through

    def test_resize_to_the_same_size_keeps_pixels_and_clips(self):
        images = np.concatenate([self.images, np.full((1, 12, 10, 3), 1.5, "float32")])
        outputs = self.run_dataset_op_test(ops.resize((12, 10)), {"images": images})
        self.assertAllEqual([o["images"] for o in outputs[:3]], self.images)
        self.assertAllEqual(outputs[3]["images"], np.ones((12, 10, 3)))
        uint8 = ops.resize((12, 10))({"images": np.full((12, 10, 3), 7, "uint8")})
        self.assertEqual(uint8["images"].dtype, tf.float32)

    def test_resize_shrinks_by_area_and_enlarges_bilinearly(self):
        images = np.random.RandomState(0).rand(2, 12, 10, 3).astype("float32")
        # Halving: each output pixel is the mean of a 2x2 block.
        blocks = images.reshape(2, 6, 2, 5, 2, 3).mean(axis=(2, 4))
        halved = ops.resize((6, 5), key="videos")({"videos": images})["videos"]
        self.assertAllClose(halved, blocks, atol=1e-6)
        for size in [(24, 20), (6, 20)]:  # a side grows: antialiased bilinear
            out = ops.resize(size)({"images": images})["images"]
            expected = tf.clip_by_value(tf.image.resize(images, size, antialias=True), 0.0, 1.0)
            self.assertAllClose(out, expected, atol=1e-6)

    def test_resize_with_sizes_known_only_at_run_time(self):
        # As for decoded files: the graph does not know the image size.
        resize = tf.function(
            lambda x: ops.resize((6, 5), key="videos")({"videos": x})["videos"],
            input_signature=[tf.TensorSpec((None, None, None, None, 3), tf.float32)],
        )
        videos = np.random.RandomState(1).rand(2, 3, 12, 10, 3).astype("float32")
        blocks = videos.reshape(2, 3, 6, 2, 5, 2, 3).mean(axis=(3, 5))
        self.assertAllClose(resize(videos), blocks, atol=1e-6)
        same = videos[:, :, :6, :5]
        self.assertAllEqual(resize(same), same)  # exactly the pixels
        small = videos[:, :, :3, :5]
        expected = tf.image.resize(small.reshape(6, 3, 5, 3), (6, 5), antialias=True)
        self.assertAllClose(resize(small), tf.reshape(expected, (2, 3, 6, 5, 3)), atol=1e-6)
        # Not even the rank known: the same pixels.
        any_rank = tf.function(
            lambda x: resize_images(x, 6, 5), input_signature=[tf.TensorSpec(None, tf.float32)]
        )
        self.assertAllClose(any_rank(videos), blocks, atol=1e-6)
        self.assertAllClose(any_rank(videos[0, 0]), blocks[0, 0], atol=1e-6)

    def test_resize_bad_shape(self):
        for bad in [(8,), (8, 8, 1), (0, 8), "8x8", (8.0, 8)]:
            with self.assertRaisesRegex(ValueError, "Received: image_shape="):
                ops.resize(bad)

    def test_choose_caption(self):
        outputs = self.run_dataset_op_test(
            ops.choose_caption(), {"captions": self.captions, "caption_random": self.randoms}
        )
        # 5 % 3 = 2, 0 % 3 = 0, -7 % 3 = 2 (floor modulo).
        self.assertEqual([o["captions"] for o in outputs], [b"red", b"a blue square", b"three"])
        self.assertNotIn("caption_random", outputs[0])

    def test_choose_caption_from_ragged_batch(self):
        # Images with different numbers of captions, batched with ragged_batch.
        captions = tf.ragged.constant([["a", "b", "c"], ["d"], ["e", "f"]])
        op = ops.choose_caption()
        outputs = op({"captions": captions, "caption_random": tf.constant([4, 9, -1], tf.int64)})
        # 4 % 3 = 1, 9 % 1 = 0, -1 % 2 = 1.
        self.assertAllEqual(outputs["captions"], [b"b", b"d", b"f"])
        self.assertNotIn("caption_random", outputs)
        # The same choices as the dense op when the rows have equal lengths.
        dense = op({"captions": self.captions, "caption_random": self.randoms})
        ragged = op({"captions": tf.RaggedTensor.from_tensor(self.captions),
                     "caption_random": self.randoms})
        self.assertAllEqual(dense["captions"], ragged["captions"])

    def test_choose_caption_never_draws_empty_padding(self):
        # `padded_batch` pads shorter caption vectors with empty strings.
        captions = tf.constant([["a", "b", "c"], ["d", "", ""], ["", "e", "f"], ["", "", ""]])
        op = ops.choose_caption()
        for random in range(-6, 7):
            randoms = tf.fill([4], tf.constant(random, tf.int64))
            outputs = op({"captions": captions, "caption_random": randoms})["captions"]
            expected = [
                ["a", "b", "c"][random % 3], "d", ["e", "f"][random % 2], "",
            ]
            self.assertAllEqual(outputs, [e.encode() for e in expected])
        # A single example, as in a per-example map.
        single = op({"captions": tf.constant(["", "x", "", "y"]), "caption_random": 3})
        self.assertEqual(single["captions"].numpy(), b"y")

    def test_tokenize_with_prefix(self):
        tokenizer = mmzoo.data.TextTokenizer(
            ["[PAD]", "[UNK]", "[START]", "[END]", "red", "?"], sequence_length=4
        )
        outputs = self.run_dataset_op_test(
            ops.tokenize(tokenizer, key="questions", prefix="question_"),
            {"questions": np.array(["red?", "", "blue red red"])},
        )
        self.assertAllEqual(outputs[0]["question_token_ids"], [2, 4, 5, 3])
        self.assertAllEqual(outputs[2]["question_token_ids"], [2, 1, 4, 3])
        self.assertAllEqual(outputs[1]["question_padding_mask"], [1, 1, 0, 0])

    def test_answers_to_ids(self):
        outputs = self.run_dataset_op_test(
            ops.answers_to_ids(["yes", "no", "red"]),
            {"answers": np.array(["red", "maybe", "yes"])},
        )
        self.assertEqual([int(o["answer_ids"]) for o in outputs], [2, -1, 0])
        self.assertEqual(outputs[0]["answer_ids"].dtype, np.int32)

    def test_answers_to_ids_bad_vocabulary(self):
        with self.assertRaisesRegex(ValueError, "Received: answer_vocabulary="):
            ops.answers_to_ids(["yes", "yes"])

    def test_keep(self):
        op = ops.keep("labels", "images")
        outputs = self.run_dataset_op_test(
            op, {"images": self.images, "labels": np.arange(3), "texts": np.array(["a"] * 3)}
        )
        self.assertEqual(list(outputs[0]), ["labels", "images"])
        with self.assertRaisesRegex(KeyError, "lacks"):
            op({"images": tf.zeros((2, 2, 3))})
