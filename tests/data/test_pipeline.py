import collections

import numpy as np
import tensorflow as tf

import mmzoo.data
from mmzoo.testing import TestCase

_VOCABULARY = None
# Every example once, in dataset order.
IN_ORDER = {"shuffle_buffer": None, "repeat": False, "deterministic": True}


def vocabulary():
    """A WordPiece vocabulary trained on the synthetic datasets' texts (cached)."""
    global _VOCABULARY
    if _VOCABULARY is None:
        texts = (
            mmzoo.data.generate_shapes_captions(256, image_size=24)["captions"].ravel().tolist()
            + mmzoo.data.generate_shapes_video_qa(64, image_size=24)["questions"].tolist()
            + mmzoo.data.generate_shapes_classification(256, image_size=24)["texts"].tolist()
        )
        _VOCABULARY = mmzoo.data.train_word_piece_vocabulary(texts, vocabulary_size=300)
    return _VOCABULARY


def indexed_images(num):
    """Examples whose image is filled with its index / 100 (to track order)."""
    images = np.ones((num, 4, 4, 3), "float32") * (np.arange(num) / 100)[:, None, None, None]
    captions = np.array([[f"a red circle {i}", "a blue square"] for i in range(num)])
    return tf.data.Dataset.from_tensor_slices({"images": images, "captions": captions})


def index_of(images):
    return np.round(images[:, 0, 0, 0] * 100).astype(int).tolist()


class PipelineTest(TestCase):
    def setUp(self):
        super().setUp()
        self.tokenizer = mmzoo.data.TextTokenizer(vocabulary(), sequence_length=16)
        self.captions = mmzoo.data.load_synthetic(
            "shapes_captions", num_examples=24, image_size=24
        )

    def assertStaticBatches(self, dataset, expected_shapes):
        spec = dataset.element_spec
        self.assertEqual({k: tuple(v.shape) for k, v in spec.items()}, expected_shapes)
        for value in spec.values():
            self.assertTrue(value.shape.is_fully_defined())
        batch = next(iter(dataset))
        self.assertShapesEqual(batch, expected_shapes)
        return batch

    def test_captioning_batches(self):
        dataset = mmzoo.data.captioning_pipeline(self.captions, self.tokenizer, batch_size=8)
        batch = self.assertStaticBatches(
            dataset, {"images": (8, 24, 24, 3), "token_ids": (8, 16), "padding_mask": (8, 16)}
        )
        self.assertEqual(batch["images"].dtype, tf.float32)
        self.assertEqual(batch["token_ids"].dtype, tf.int32)
        self.assertEqual(batch["padding_mask"].dtype, tf.bool)
        self.assertAllEqual(batch["token_ids"][:, 0], [self.tokenizer.start_token_id] * 8)
        self.assertNotIn(self.tokenizer.unk_token_id, batch["token_ids"].numpy())

    def test_caption_is_one_of_the_image_references(self):
        tokenizer = mmzoo.data.TextTokenizer(vocabulary(), sequence_length=40)
        dataset = mmzoo.data.captioning_pipeline(
            self.captions, tokenizer, batch_size=8, **IN_ORDER
        )
        references = [
            tokenizer(e["captions"])["token_ids"].numpy().tolist()
            for e in self.captions.as_numpy_iterator()
        ]
        batches = list(dataset.as_numpy_iterator())
        self.assertLen(batches, 3)
        token_ids = np.concatenate([b["token_ids"] for b in batches]).tolist()
        for ids, refs in zip(token_ids, references):
            self.assertIn(ids, refs)

    def test_images_with_different_numbers_of_captions(self):
        # As in COCO: each image has its own number of references (here 1-3),
        # and an extra key of varying length that the pipeline drops.
        references = [[f"a red circle {i}", "a blue square", "a green diamond"][: 1 + i % 3]
                      for i in range(12)]

        def examples():
            for i, refs in enumerate(references):
                yield {"images": np.full((4, 4, 3), i / 100, "float32"),
                       "captions": np.array(refs), "ids": np.arange(i % 4)}

        dataset = tf.data.Dataset.from_generator(examples, output_signature={
            "images": tf.TensorSpec((4, 4, 3), tf.float32),
            "captions": tf.TensorSpec((None,), tf.string),
            "ids": tf.TensorSpec((None,), tf.int64),
        })
        tokenizer = mmzoo.data.TextTokenizer(vocabulary(), sequence_length=12)
        pipeline = mmzoo.data.captioning_pipeline(
            dataset, tokenizer, batch_size=4, shuffle_buffer=None, seed=3, deterministic=True
        )
        self.assertEqual(set(pipeline.element_spec), {"images", "token_ids", "padding_mask"})
        chosen = collections.defaultdict(set)
        for batch in pipeline.take(30).as_numpy_iterator():
            self.assertEqual(batch["token_ids"].shape, (4, 12))
            for i, ids in zip(index_of(batch["images"]), batch["token_ids"].tolist()):
                refs = [tokenizer(r)["token_ids"].numpy().tolist() for r in references[i]]
                self.assertIn(ids, refs)  # always one of the image's own captions
                chosen[i].add(tuple(ids))
        # Over 10 epochs every image with several captions got more than one.
        self.assertEqual({i: len(c) > 1 for i, c in chosen.items()},
                         {i: len(references[i]) > 1 for i in range(12)})

    def test_ragged_extra_key_batched_too(self):
        # A RaggedTensor in the examples (which `padded_batch` refuses): the
        # batch is ragged, and the captions are still drawn from each image's own.
        dataset = tf.data.Dataset.from_tensor_slices({
            "images": np.arange(4, dtype="float32")[:, None, None, None] * np.ones((4, 4, 4, 3)),
            "captions": tf.ragged.constant([["a red circle"], ["a blue square", "a red circle"],
                                            ["a blue square"], ["a green diamond"]]),
            "boxes": tf.ragged.constant([[[0.0, 1.0]], [], [[1.0], [2.0, 3.0]], []],
                                        ragged_rank=2, inner_shape=()),
        })
        self.assertIsInstance(dataset.element_spec["boxes"], tf.RaggedTensorSpec)
        tokenizer = mmzoo.data.TextTokenizer(vocabulary(), sequence_length=12)
        pipeline = mmzoo.data.captioning_pipeline(
            dataset, tokenizer, batch_size=4, shuffle_buffer=None, repeat=False
        )
        (batch,) = list(pipeline.as_numpy_iterator())
        captions = tokenizer.detokenize(batch["token_ids"]).numpy().tolist()
        self.assertEqual(captions[0], b"a red circle")
        self.assertIn(captions[1], [b"a blue square", b"a red circle"])
        self.assertEqual(captions[2:], [b"a blue square", b"a green diamond"])

    def test_caption_choice_changes_across_epochs(self):
        dataset = mmzoo.data.captioning_pipeline(
            indexed_images(2), self.tokenizer, batch_size=2, shuffle_buffer=None, seed=0,
            deterministic=True,
        )
        first_captions = [b["token_ids"][0, 1:4].numpy().tolist() for b in dataset.take(20)]
        self.assertLen({tuple(c) for c in first_captions}, 2)

    def test_last_batch_padded_and_masked_without_repeat(self):
        # Evaluation keeps every example: the last batch is padded by
        # repeating its rows, and `example_mask` marks the padding.
        dataset = mmzoo.data.captioning_pipeline(
            indexed_images(10), self.tokenizer, batch_size=4, **IN_ORDER
        )
        self.assertEqual(tuple(dataset.element_spec["example_mask"].shape), (4,))
        batches = list(dataset.as_numpy_iterator())
        self.assertEqual([index_of(b["images"]) for b in batches],
                         [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]])
        self.assertAllEqual([b["example_mask"] for b in batches],
                            [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]])

    def test_drop_remainder_when_repeating(self):
        dataset = mmzoo.data.captioning_pipeline(
            indexed_images(10), self.tokenizer, batch_size=4, shuffle_buffer=None,
            deterministic=True,
        )
        self.assertNotIn("example_mask", dataset.element_spec)
        self.assertEqual([index_of(b["images"]) for b in dataset.take(3).as_numpy_iterator()],
                         [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]])

    def test_deterministic_mode_repeats_exactly(self):
        def run(seed):
            dataset = mmzoo.data.captioning_pipeline(
                self.captions, self.tokenizer, batch_size=4, shuffle_buffer=16, seed=seed,
                deterministic=True, augmentation=mmzoo.data.caption_safe_augmentation(seed=1),
            )
            return [b for b in dataset.take(8).as_numpy_iterator()]

        first, second, other = run(3), run(3), run(4)
        for a, b in zip(first, second):
            self.assertAllClose(a["images"], b["images"])
            self.assertAllEqual(a["token_ids"], b["token_ids"])
        self.assertNotAllClose(
            np.stack([b["images"] for b in first]), np.stack([b["images"] for b in other])
        )

    def test_shuffle_reorders_each_epoch(self):
        dataset = mmzoo.data.captioning_pipeline(
            indexed_images(8), self.tokenizer, batch_size=8, shuffle_buffer=8, seed=0,
            deterministic=True,
        )
        epochs = [index_of(b["images"]) for b in dataset.take(3).as_numpy_iterator()]
        for order in epochs:
            self.assertEqual(sorted(order), list(range(8)))
        self.assertGreater(len({tuple(o) for o in epochs}), 1)

    def test_sharding_with_input_context(self):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=4
        )
        dataset = mmzoo.data.captioning_pipeline(
            indexed_images(12), self.tokenizer, batch_size=8, shuffle_buffer=None,
            repeat=False, deterministic=True, input_context=context,
        )
        # Pipeline 1 of 2 reads examples 1, 3, 5, ...; per-replica batch 8 / 4.
        self.assertEqual([index_of(b["images"]) for b in dataset.as_numpy_iterator()],
                         [[1, 3], [5, 7], [9, 11]])

    def test_caption_safe_augmentation(self):
        augment = mmzoo.data.caption_safe_augmentation(seed=0)
        self.assertEqual([type(layer).__name__ for layer in augment.layers],
                         ["RandomBrightness", "RandomContrast"])
        dataset = mmzoo.data.captioning_pipeline(
            self.captions, self.tokenizer, batch_size=8, **IN_ORDER,
            seed=0, augmentation=augment,
        )
        plain = mmzoo.data.captioning_pipeline(
            self.captions, self.tokenizer, batch_size=8, **IN_ORDER,
            seed=0,
        )
        augmented, original = next(iter(dataset)), next(iter(plain))
        self.assertShapesEqual(augmented["images"], (8, 24, 24, 3))
        self.assertNotAllClose(augmented["images"], original["images"])
        self.assertAllInRange(augmented["images"], 0.0, 1.0)
        self.assertAllEqual(augmented["token_ids"], original["token_ids"])

    def test_contrastive_batches(self):
        dataset = mmzoo.data.contrastive_pipeline(self.captions, self.tokenizer, batch_size=4)
        self.assertStaticBatches(
            dataset, {"images": (4, 24, 24, 3), "token_ids": (4, 16), "padding_mask": (4, 16)}
        )

    def test_contrastive_needs_two_per_replica(self):
        context = tf.distribute.InputContext(1, 0, num_replicas_in_sync=2)
        with self.assertRaisesRegex(ValueError, "Received: batch_size=2"):
            mmzoo.data.contrastive_pipeline(
                self.captions, self.tokenizer, batch_size=2, input_context=context
            )

    def test_video_qa_batches(self):
        examples = mmzoo.data.load_synthetic("shapes_video_qa", num_examples=8, image_size=24)
        dataset = mmzoo.data.video_qa_pipeline(
            examples, self.tokenizer, batch_size=4, **IN_ORDER
        )
        batch = self.assertStaticBatches(dataset, {
            "videos": (4, 8, 24, 24, 3),
            "question_token_ids": (4, 16),
            "question_padding_mask": (4, 16),
            "answer_ids": (4,),
            "example_mask": (4,),  # evaluation batches (repeat=False) are masked
        })
        expected = [e["answer_ids"] for e in examples.take(4).as_numpy_iterator()]
        self.assertAllEqual(batch["answer_ids"], expected)

    def test_video_qa_answers_mapped_and_unknown_dropped(self):
        examples = tf.data.Dataset.from_tensor_slices({
            "videos": np.zeros((4, 2, 4, 4, 3), "float32"),
            "questions": ["what color?"] * 4,
            "answers": ["red", "maybe", "blue", "red"],
        })
        dataset = mmzoo.data.video_qa_pipeline(
            examples, self.tokenizer, batch_size=3, answer_vocabulary=["blue", "red"],
            **IN_ORDER,
        )
        (batch,) = list(dataset.as_numpy_iterator())
        self.assertAllEqual(batch["answer_ids"], [1, 0, 1])

    def test_video_qa_needs_answer_vocabulary(self):
        examples = tf.data.Dataset.from_tensor_slices({
            "videos": np.zeros((2, 2, 4, 4, 3), "float32"),
            "questions": ["q"] * 2, "answers": ["a"] * 2,
        })
        with self.assertRaisesRegex(ValueError, "Received: answer_vocabulary=None"):
            mmzoo.data.video_qa_pipeline(examples, self.tokenizer, batch_size=2)

    def test_fusion_batches(self):
        examples = mmzoo.data.load_synthetic(
            "shapes_classification", num_examples=8, image_size=24
        )
        dataset = mmzoo.data.fusion_pipeline(
            examples, self.tokenizer, batch_size=4, **IN_ORDER
        )
        batch = self.assertStaticBatches(dataset, {
            "images": (4, 24, 24, 3), "token_ids": (4, 16), "padding_mask": (4, 16),
            "labels": (4,), "example_mask": (4,),
        })
        self.assertEqual(batch["labels"].dtype, tf.int32)

    def test_missing_keys(self):
        examples = mmzoo.data.load_synthetic("shapes_classification", num_examples=2,
                                             image_size=24)
        with self.assertRaisesRegex(ValueError, r"\['captions'\] missing"):
            mmzoo.data.captioning_pipeline(examples, self.tokenizer, batch_size=2)

    def test_images_need_static_shape(self):
        examples = tf.data.Dataset.from_generator(
            lambda: iter([]),
            output_signature={"images": tf.TensorSpec((None, None, 3), tf.float32),
                              "captions": tf.TensorSpec((), tf.string)},
        )
        with self.assertRaisesRegex(ValueError, r"Received: images shape=\(None, None, 3\)"):
            mmzoo.data.captioning_pipeline(examples, self.tokenizer, batch_size=2)

    def test_bad_arguments(self):
        cases = [
            ({"batch_size": 0}, "Received: batch_size=0"),
            ({"batch_size": 4, "shuffle_buffer": 0}, "Received: shuffle_buffer=0"),
            ({"batch_size": 4, "seed": -1}, "Received: seed=-1"),
            ({"batch_size": 4, "augmentation": "flip"}, "Received: augmentation='flip'"),
            ({"batch_size": 4, "input_context": 2}, "Received: input_context=2"),
            ({"batch_size": 4, "cache": ""}, "Received: cache=''"),
            ({"batch_size": 4, "cache": 1}, "Received: cache=1"),
            ({"batch_size": 3, "input_context": tf.distribute.InputContext(1, 0, 2)},
             "Received: batch_size=3"),
        ]
        for kwargs, message in cases:
            with self.assertRaisesRegex(ValueError, message):
                mmzoo.data.captioning_pipeline(self.captions, self.tokenizer, **kwargs)
        with self.assertRaisesRegex(ValueError, "Received: dataset=list"):
            mmzoo.data.fusion_pipeline([1, 2], self.tokenizer, batch_size=2)

    def test_batched_tokenization_equals_per_example(self):
        # Tokenizing whole batches must give each row what tokenizing that
        # row's caption alone gives.
        examples = indexed_images(12)
        dataset = mmzoo.data.captioning_pipeline(
            examples, self.tokenizer, batch_size=4, seed=3, **IN_ORDER
        )
        for batch in dataset.as_numpy_iterator():
            for i, index in enumerate(index_of(batch["images"])):
                references = [f"a red circle {index}", "a blue square"]
                alone = [self.tokenizer(c)["token_ids"].numpy() for c in references]
                self.assertTrue(
                    any(np.array_equal(batch["token_ids"][i], t) for t in alone),
                    f"row {i} (example {index}) is neither reference's tokens",
                )

    def test_cache_skips_loading_after_the_first_epoch(self):
        loads = []

        def count(image):
            loads.append(1)
            return image

        def load(example):
            images = example["images"]
            image = tf.numpy_function(count, [images], images.dtype, stateful=True)
            return {**example, "images": tf.ensure_shape(image, (4, 4, 3))}

        examples = indexed_images(8).map(load)
        epochs = 3
        batches = {}
        for cache in (False, True):
            del loads[:]
            dataset = mmzoo.data.captioning_pipeline(
                examples, self.tokenizer, batch_size=4, seed=5, deterministic=True,
                cache=cache,
            )
            batches[cache] = list(dataset.take(2 * epochs).as_numpy_iterator())
            if cache:  # read once, whatever the read-ahead
                self.assertLen(loads, 8)
            else:  # read again every epoch (and ahead, by prefetching)
                self.assertGreaterEqual(len(loads), 8 * epochs)
        # Same order, same captions drawn: caching changes only the cost.
        for uncached, cached in zip(batches[False], batches[True]):
            self.assertAllClose(uncached["images"], cached["images"])
            self.assertAllEqual(uncached["token_ids"], cached["token_ids"])

    def test_cache_to_files(self):
        prefix = self.get_temp_dir() + "/examples"
        dataset = mmzoo.data.fusion_pipeline(
            mmzoo.data.load_synthetic("shapes_classification", num_examples=8, image_size=24),
            self.tokenizer, batch_size=4, repeat=False, cache=prefix,
        )
        self.assertLen(list(dataset), 2)
        self.assertTrue(tf.io.gfile.glob(prefix + "*"))
