import hashlib

import numpy as np
import tensorflow as tf

import mmzoo.data
from mmzoo.testing import TestCase

GENERATORS = {
    "shapes_captions": mmzoo.data.generate_shapes_captions,
    "shapes_video_qa": mmzoo.data.generate_shapes_video_qa,
    "shapes_classification": mmzoo.data.generate_shapes_classification,
}
PIXELS = {"shapes_captions": "images", "shapes_video_qa": "videos",
          "shapes_classification": "images"}


def hashes(pixels):
    return {hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest() for x in pixels}


class LoadSyntheticTest(TestCase):
    def test_element_specs_are_static(self):
        expected = {
            "shapes_captions": {"images": (32, 32, 3), "captions": (5,)},
            "shapes_video_qa": {"videos": (8, 32, 32, 3), "questions": (), "answers": (),
                                "answer_ids": (), "question_types": ()},
            "shapes_classification": {"images": (32, 32, 3), "texts": (), "labels": ()},
        }
        for name, shapes in expected.items():
            dataset = mmzoo.data.load_synthetic(name, num_examples=3, image_size=32)
            spec = dataset.element_spec
            self.assertEqual({k: tuple(v.shape) for k, v in spec.items()}, shapes)
            self.assertEqual(spec[PIXELS[name]].dtype, tf.float32)
            self.assertEqual(len(dataset), 3)
            self.assertLen(list(dataset), 3)

    def test_dataset_equals_numpy_generator(self):
        for name, generate in GENERATORS.items():
            dataset = mmzoo.data.load_synthetic(name, split="test", num_examples=70, seed=4,
                                                image_size=24)
            numpy_data = generate(70, split="test", seed=4, image_size=24)
            examples = list(dataset.as_numpy_iterator())
            for key, value in examples[-1].items():
                value, expected = np.asarray(value), np.asarray(numpy_data[key][-1])
                if expected.dtype == object:  # str from numpy, bytes from tf.data
                    expected = np.char.encode(expected.astype(str), "utf-8")
                self.assertAllEqual(value, expected, msg=f"{name}/{key}")

    def test_same_seed_same_data(self):
        for name, generate in GENERATORS.items():
            a, b = generate(5, seed=7), generate(5, seed=7)
            self.assertAllEqual(a[PIXELS[name]], b[PIXELS[name]])

    def test_different_seed_different_data(self):
        for name, generate in GENERATORS.items():
            a, b = generate(5, seed=7), generate(5, seed=8)
            self.assertEmpty(hashes(a[PIXELS[name]]) & hashes(b[PIXELS[name]]))

    def test_prefix_does_not_depend_on_num_examples(self):
        for name, generate in GENERATORS.items():
            small, large = generate(3), generate(300)
            self.assertAllEqual(small[PIXELS[name]], large[PIXELS[name]][:3])

    def test_splits_never_share_an_image(self):
        for name, generate in GENERATORS.items():
            seen = set()
            for split in mmzoo.data.SPLITS:
                split_hashes = hashes(generate(300, split=split, image_size=24)[PIXELS[name]])
                self.assertLen(split_hashes, 300, msg=f"duplicates within {name}/{split}")
                self.assertEmpty(seen & split_hashes, msg=f"{name}/{split}")
                seen |= split_hashes

    def test_synthetic_info(self):
        info = mmzoo.data.synthetic_info("shapes_video_qa")
        self.assertEqual(info["answer_vocabulary"], list(mmzoo.data.VIDEO_QA_ANSWERS))
        self.assertEqual(info["question_types"], list(mmzoo.data.VIDEO_QA_QUESTION_TYPES))
        self.assertEqual(mmzoo.data.synthetic_info("shapes_classification")["class_names"],
                         ["no", "yes"])
        self.assertEqual(mmzoo.data.synthetic_info("shapes_captions")["splits"],
                         ["train", "validation", "test", "test_unseen"])

    def test_unknown_name(self):
        with self.assertRaisesRegex(ValueError, "Received: name='shapes'"):
            mmzoo.data.load_synthetic("shapes")
        with self.assertRaisesRegex(ValueError, "Received: name='mnist'"):
            mmzoo.data.synthetic_info("mnist")

    def test_unknown_split(self):
        with self.assertRaisesRegex(ValueError, "Received: split='val'"):
            mmzoo.data.load_synthetic("shapes_captions", split="val")

    def test_image_size_too_small(self):
        with self.assertRaisesRegex(ValueError, r"in \[24, 512\]. Received: image_size=16"):
            mmzoo.data.load_synthetic("shapes_captions", image_size=16)

    def test_num_frames_out_of_range(self):
        for num_frames in (7, 17):
            with self.assertRaisesRegex(ValueError, f"Received: num_frames={num_frames}"):
                mmzoo.data.load_synthetic("shapes_video_qa", num_frames=num_frames)

    def test_option_of_another_dataset(self):
        with self.assertRaisesRegex(ValueError, "Received: num_frames=8"):
            mmzoo.data.load_synthetic("shapes_captions", num_frames=8)

    def test_bad_counts(self):
        with self.assertRaisesRegex(ValueError, "Received: num_examples=0"):
            mmzoo.data.generate_shapes_captions(0)
        with self.assertRaisesRegex(ValueError, "Received: seed=-1"):
            mmzoo.data.generate_shapes_classification(2, seed=-1)
        with self.assertRaisesRegex(ValueError, "Received: captions_per_image=6"):
            mmzoo.data.generate_shapes_captions(2, captions_per_image=6)
