import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import mmzoo.data
from mmzoo.data.tfds_loader import _to_rgb
from mmzoo.testing import TestCase


class LoadTFDSTest(TestCase):
    """`tfds.testing.mock_data` stands in for the real data: no network."""

    def mock(self, num_examples=4):
        # A fresh, empty data_dir: no metadata there, so TFDS builds the mock
        # examples from the builder's feature spec (coco_captions: images of
        # random sizes and 5-50 random caption strings each).
        return tfds.testing.mock_data(
            num_examples=num_examples,
            policy=tfds.testing.MockPolicy.USE_CODE,
            data_dir=self.get_temp_dir(),
        )

    def test_coco_captions(self):
        with self.mock():
            dataset = mmzoo.data.load_tfds("coco_captions", split="train", image_shape=(32, 24))
            examples = list(dataset.as_numpy_iterator())
        spec = dataset.element_spec
        self.assertEqual(tuple(spec["images"].shape), (32, 24, 3))
        self.assertEqual(spec["images"].dtype, tf.float32)
        self.assertEqual(tuple(spec["captions"].shape), (None,))
        self.assertLen(examples, 4)
        for example in examples:
            self.assertAllInRange(example["images"], 0.0, 1.0)
            self.assertGreater(len(example["captions"]), 0)

    def test_coco_captions_through_captioning_pipeline(self):
        tokenizer = mmzoo.data.TextTokenizer(
            ["[PAD]", "[UNK]", "[START]", "[END]"] + list("abcdefghij"), sequence_length=12
        )
        with self.mock(num_examples=6):
            examples = mmzoo.data.load_tfds("coco_captions", split="val", image_shape=(16, 16))
            train = mmzoo.data.captioning_pipeline(examples, tokenizer, batch_size=4, seed=0)
            batch = next(iter(train))
        self.assertShapesEqual(
            batch, {"images": (4, 16, 16, 3), "token_ids": (4, 12), "padding_mask": (4, 12)}
        )
        self.assertTrue(all(s.shape.is_fully_defined() for s in train.element_spec.values()))

    def test_other_dataset_needs_feature_names(self):
        with self.assertRaisesRegex(ValueError, "Received: name='mnist'"):
            mmzoo.data.load_tfds("mnist")

    def test_feature_names_are_checked(self):
        with self.mock():
            with self.assertRaisesRegex(ValueError, "Received: caption_key='text'"):
                mmzoo.data.load_tfds("coco_captions", caption_key="text")
            with self.assertRaisesRegex(ValueError, "must name a string"):
                mmzoo.data.load_tfds("mnist", image_key="image", caption_key="label")

    def test_grayscale_and_rgba_to_rgb(self):
        gray = tf.fill((2, 3, 1), tf.constant(51, tf.uint8))
        self.assertAllClose(_to_rgb(gray), tf.fill((2, 3, 3), 0.2))
        rgba = tf.concat([tf.fill((2, 3, 3), 0.5), tf.ones((2, 3, 1))], axis=-1)
        self.assertAllClose(_to_rgb(rgba), tf.fill((2, 3, 3), 0.5))
        unknown = tf.function(
            _to_rgb, input_signature=[tf.TensorSpec((None, None, None), tf.uint8)]
        )
        self.assertAllClose(unknown(gray), tf.fill((2, 3, 3), 0.2))


class TinyCaptions(tfds.core.GeneratorBasedBuilder):
    """Ten 8x8 images, each with one caption, prepared locally (nothing downloaded)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 3)),
                "caption": tfds.features.Text(),
            }),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(10):
            yield i, {"image": np.full((8, 8, 3), 20 * i, np.uint8), "caption": f"caption {i}"}


class LoadTFDSShareTest(TestCase):
    def test_each_input_pipeline_reads_its_own_examples(self):
        data_dir = self.get_temp_dir()
        TinyCaptions(data_dir=data_dir).download_and_prepare()

        def captions(context=None, split="train"):
            examples = mmzoo.data.load_tfds(
                "tiny_captions", split=split, image_shape=(8, 8), image_key="image",
                caption_key="caption", data_dir=data_dir, download=False,
                input_context=context,
            )
            return [x["captions"][0].decode() for x in examples.as_numpy_iterator()]

        everything = captions()
        self.assertCountEqual(everything, [f"caption {i}" for i in range(10)])
        for count in (2, 3):
            shares = [captions(tf.distribute.InputContext(count, i, count)) for i in range(count)]
            self.assertCountEqual(sum(shares, []), everything)  # each example once
            self.assertLessEqual(max(map(len, shares)) - min(map(len, shares)), 1)
        # A split expression is divided the same way.
        halves = [captions(tf.distribute.InputContext(2, i, 2), "train[:6]") for i in range(2)]
        self.assertCountEqual(sum(halves, []), captions(split="train[:6]"))
        self.assertEqual([len(h) for h in halves], [3, 3])
