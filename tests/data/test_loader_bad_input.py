"""Bad input a new user hits, each with a clear answer: a counted and logged
skip naming the file, or an error naming the value. One test per case."""

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from unittest import mock

import keras
import numpy as np
import PIL.Image
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.python.framework import op_def_registry

import mmzoo.data
from mmzoo.data import files
from mmzoo.losses import MaskedSequenceCrossEntropy
from mmzoo.models import classification_split
from mmzoo.models import teacher_forcing_split
from mmzoo.models import video_qa_training_split
from mmzoo.testing import TestCase

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]", "a", "red", "circle", "what", "?"]


def write_csv(path, rows, header, encoding="utf-8"):
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path, rows, encoding="utf-8"):
    with open(path, "w", encoding=encoding) as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def write_corrupt_jpeg(path):
    """A JPEG with one byte flipped in its Huffman tables: TensorFlow's decoder
    rejects it, and libjpeg prints "Bogus Huffman table definition" to
    stderr itself (file descriptor 2, past Python's `sys.stderr`)."""
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    PIL.Image.fromarray(noise).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    data[400] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    return path


def stateful_ops(dataset):
    """The stateful ops in the functions of `dataset` (its maps, scan, ...)."""
    graph = graph_pb2.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    return {
        node.op
        for function in graph.library.function
        for node in function.node_def
        if op_def_registry.get(node.op).is_stateful and not node.op.endswith("Dataset")
    }


class BadInputTest(TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.get_temp_dir()
        PIL.Image.new("RGB", (6, 6), (200, 20, 20)).save(self.path("red.png"))
        PIL.Image.new("RGB", (6, 6), (20, 20, 200)).save(self.path("blue.jpg"))
        with open(self.path("corrupt.jpg"), "wb") as f:
            f.write(b"\xff\xd8\xff not a jpeg")
        write_corrupt_jpeg(self.path("bogus.jpg"))
        # Clips of 12 frames of 4x4 (8 kept: 0, 2, 3, 5, 6, 8, 9, 11).
        good = np.full((12, 4, 4, 3), 0.5, "float32")
        # 0..255 stored as float (the kept frames hold both 0 and 255).
        ramp = (np.arange(good.size).reshape(good.shape) % 256).astype("float32")
        clips = {
            "good.npy": good,
            "nan.npy": np.where(np.arange(12)[:, None, None, None] == 3, np.nan, good),
            "inf.npz": np.where(np.arange(12)[:, None, None, None] == 3, np.inf, good),
            "scale255.npy": ramp,  # read in the graph (float32)
            "scale255_f64.npy": ramp.astype("float64"),  # read by numpy
            "minus1.npz": good * 2 - 1.5,  # in [-1, 1]
            "rounding.npy": good + 0.5 + 0.5 / 255,  # within 1/255 of 1: clipped
            # NaN only in frame 1, which is not kept: not read, not refused.
            "nan_dropped.npy": np.where(np.arange(12)[:, None, None, None] == 1, np.nan, good),
        }
        for name, clip in clips.items():
            if name.endswith(".npz"):
                np.savez(self.path(name), frames=clip)
            else:
                np.save(self.path(name), clip)
        self.tokenizer = mmzoo.data.TextTokenizer(VOCABULARY, sequence_length=6)

    def path(self, name):
        return os.path.join(self.dir, name)

    def load_images(self, names, **kwargs):
        manifest = write_csv(
            self.path("images.csv"), [(n, n) for n in names], header=("image_path", "caption")
        )
        return mmzoo.data.load_image_caption_files(manifest, image_shape=(4, 4), **kwargs)

    def load_videos(self, names, **kwargs):
        manifest = write_csv(
            self.path("qa.csv"), [(n, "what?", "red") for n in names],
            header=("video_path", "question", "answer"),
        )
        return mmzoo.data.load_video_qa_files(
            manifest, num_frames=8, image_shape=(4, 4), **kwargs
        )

    # --- 1. video clips are checked ---------------------------------------

    def test_non_finite_clip_skipped_named_and_counted(self):
        # The graph path (.npy float32) and the numpy path (.npz) agree.
        self.assertIsNotNone(files._npy_layout(self.path("nan.npy")))
        self.assertIsNone(files._npy_layout(self.path("inf.npz")))
        dataset, report = self.load_videos(["nan.npy", "inf.npz", "good.npy"])
        with self.assertLogs("mmzoo.data", "WARNING") as logs:
            self.assertLen(list(dataset), 1)
        self.assertEqual(sorted(report.skipped), [self.path("inf.npz"), self.path("nan.npy")])
        for name in ("nan.npy", "inf.npz"):
            self.assertRegex(
                report.skipped[self.path(name)], r"non-finite values \(NaN or inf\)"
            )
        self.assertRegex("\n".join(logs.output), r"nan\.npy.*non-finite")

    def test_out_of_range_float_clip_refused_with_the_range_found(self):
        cases = {
            "scale255.npy": r"found values in \[0, 255\] \(store uint8, or divide by 255\)",
            "scale255_f64.npy": r"found values in \[0, 255\] \(store uint8, or divide by 255\)",
            "minus1.npz": r"found values in \[-0\.5, -0\.5\] \(map \[-1, 1\] to \[0, 1\]",
        }
        dataset, report = self.load_videos(list(cases) + ["good.npy"])
        with self.assertLogs("mmzoo.data", "WARNING"):
            self.assertLen(list(dataset), 1)
        for name, message in cases.items():
            reason = report.skipped[self.path(name)]
            self.assertRegex(reason, r"float frames must be in \[0, 1\]")
            self.assertRegex(reason, message)

    def test_float_clip_within_rounding_clipped_and_unread_frames_unchecked(self):
        dataset, report = self.load_videos(["rounding.npy", "nan_dropped.npy"])
        rounding, nan_dropped = list(dataset.as_numpy_iterator())
        self.assertAllClose(rounding["videos"], np.ones((8, 4, 4, 3)))
        self.assertAllClose(nan_dropped["videos"], np.full((8, 4, 4, 3), 0.5))
        self.assertEqual(report.num_skipped, 0)

    def test_strict_raises_on_bad_float_clip_naming_it(self):
        for name in ("nan.npy", "scale255_f64.npy"):
            dataset, _ = self.load_videos([name], strict=True)
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError, name):
                list(dataset)

    # --- 2. byte-order mark -----------------------------------------------

    def test_manifest_with_byte_order_mark(self):
        csv_manifest = write_csv(
            self.path("bom.csv"), [("red.png", "a red circle")], ("image_path", "caption"),
            encoding="utf-8-sig",
        )
        jsonl_manifest = write_jsonl(
            self.path("bom.jsonl"), [{"image_path": "red.png", "caption": "a red circle"}],
            encoding="utf-8-sig",
        )
        for manifest in (csv_manifest, jsonl_manifest):
            with open(manifest, "rb") as f:
                self.assertEqual(f.read(3), b"\xef\xbb\xbf")
            dataset, report = mmzoo.data.load_image_caption_files(manifest, image_shape=(4, 4))
            self.assertLen(list(dataset), 1)
            self.assertEqual(report.num_skipped, 0, msg=report.summary())

    # --- 3. wrong header / missing columns ---------------------------------

    def test_csv_wrong_header_is_one_error_up_front(self):
        manifest = write_csv(
            self.path("wrong.csv"), [("red.png", "a red circle")] * 20, ("image", "captions")
        )
        with self.assertNoLogs("mmzoo.data", "WARNING"):
            with self.assertRaisesRegex(
                ValueError,
                r"`image_path`, `caption` columns missing from wrong\.csv; the header has "
                r"\['image', 'captions'\] \(did you mean 'image' for `image_path`, "
                r"'captions' for `caption`\?\)\. Received: manifest_path=.*wrong\.csv",
            ):
                mmzoo.data.load_image_caption_files(manifest)

    def test_jsonl_missing_column_logged_a_few_times_then_summed_up(self):
        rows = [{"image_path": "red.png", "text": f"caption {i}"} for i in range(8)]
        rows.append({"image_path": "red.png", "caption": "a red circle"})
        manifest = write_jsonl(self.path("some.jsonl"), rows)
        with self.assertLogs("mmzoo.data", "WARNING") as logs:
            dataset, report = mmzoo.data.load_image_caption_files(manifest, image_shape=(4, 4))
        self.assertLen(logs.output, 6)
        self.assertIn("... and 3 more records skipped: no `caption` column", logs.output[-1])
        self.assertEqual(report.num_skipped, 8)
        self.assertLen(list(dataset), 1)

    def test_jsonl_column_in_no_record_is_an_error(self):
        rows = [{"image_path": "red.png", "text": "a red circle"}] * 3
        manifest = write_jsonl(self.path("none.jsonl"), rows)
        with self.assertRaisesRegex(
            ValueError,
            r"No record of none\.jsonl has a `caption` key; the records have the keys "
            r"\['image_path', 'text'\]\. Received: manifest_path=",
        ):
            mmzoo.data.load_image_caption_files(manifest)

    # --- 4. JSON value types -----------------------------------------------

    def test_json_caption_list_is_several_captions(self):
        manifest = write_jsonl(self.path("lists.jsonl"), [
            {"image_path": "red.png", "caption": ["a red circle", "a circle"]},
            {"image_path": "blue.jpg", "caption": ["a blue square", "", {"text": "x"}]},
            {"image_path": "blue.jpg", "caption": [" ", None]},
            {"image_path": "blue.jpg", "caption": []},
        ])
        dataset, report = mmzoo.data.load_image_caption_files(manifest, image_shape=(4, 4))
        red, blue = list(dataset.as_numpy_iterator())
        self.assertAllEqual(red["captions"], [b"a red circle", b"a circle"])
        self.assertAllEqual(blue["captions"], [b"a blue square"])
        self.assertEqual(report.skipped, {
            "lists.jsonl:2 caption[1]": "empty `caption[1]`",
            "lists.jsonl:2 caption[2]": "`caption[2]` must be a string; got a JSON object",
            "lists.jsonl:3 caption[0]": "empty `caption[0]`",
            "lists.jsonl:3 caption[1]": "`caption[1]` must be a string; got a JSON null",
            "lists.jsonl:3": "`caption` is a list without a usable entry",
            "lists.jsonl:4": "`caption` is an empty list",
        })

    def test_json_non_string_values_skipped_naming_column_and_type(self):
        manifest = write_jsonl(self.path("types.jsonl"), [
            {"video_path": "good.npy", "question": ["what?"], "answer": "red"},
            {"video_path": "good.npy", "question": "what?", "answer": None},
            {"video_path": "good.npy", "question": "what?", "answer": True},
            {"video_path": "good.npy", "question": "what?", "answer": "red",
             "question_type": {"kind": "color"}},
            {"video_path": "good.npy", "question": "what?", "answer": 3,
             "question_type": None},
        ])
        dataset, report = mmzoo.data.load_video_qa_files(
            manifest, num_frames=8, image_shape=(4, 4)
        )
        self.assertEqual(report.skipped, {
            "types.jsonl:1": "`question` must be a string; got a JSON array",
            "types.jsonl:2": "`answer` must be a string; got a JSON null",
            "types.jsonl:3": "`answer` must be a string; got a JSON boolean",
            "types.jsonl:4": "`question_type` must be a string; got a JSON object",
        })
        (example,) = list(dataset.as_numpy_iterator())
        self.assertEqual((example["answers"], example["question_types"]), (b"3", b""))

    # --- 5. nothing usable --------------------------------------------------

    def test_require_examples_when_every_record_fails_to_decode(self):
        manifest = write_csv(
            self.path("bad.csv"), [("corrupt.jpg", "a"), ("corrupt.jpg", "b")],
            ("image_path", "caption"),
        )
        dataset, report = mmzoo.data.load_image_caption_files(manifest, image_shape=(4, 4))
        with self.assertLogs("mmzoo.data", "WARNING"):
            with self.assertRaisesRegex(
                ValueError,
                r"(?s)No usable examples in .*bad\.csv: all 2 records were skipped\.\n"
                r".*skipped .*corrupt\.jpg: cannot decode image",
            ):
                report.require_examples(dataset)
        good = write_csv(self.path("good.csv"), [("red.png", "a")], ("image_path", "caption"))
        dataset, report = mmzoo.data.load_image_caption_files(good, image_shape=(4, 4))
        self.assertIs(report.require_examples(dataset), dataset)

    def test_vocabulary_from_no_texts(self):
        empty = tf.data.Dataset.from_tensor_slices(tf.constant([], tf.string))
        for data in (empty, ["", "  "]):
            with self.assertRaisesRegex(ValueError, "no texts to train the vocabulary on"):
                mmzoo.data.train_word_piece_vocabulary(data, vocabulary_size=20)

    # --- 6. out-of-vocabulary answers ---------------------------------------

    def video_examples(self, answers):
        return tf.data.Dataset.from_tensor_slices({
            "videos": np.zeros((len(answers), 2, 4, 4, 3), "float32"),
            "questions": ["what?"] * len(answers),
            "answers": answers,
        })

    def test_out_of_vocabulary_answers_counted_and_logged_once_each(self):
        examples = self.video_examples(["red", "Red", "maybe", "Red", "blue"])
        report = mmzoo.data.LoadReport("answers")
        dataset = mmzoo.data.video_qa_pipeline(
            examples, self.tokenizer, batch_size=2, answer_vocabulary=["red", "blue"],
            shuffle_buffer=None, repeat=False, deterministic=True, report=report,
        )
        with self.assertLogs("mmzoo.data", "WARNING") as logs:
            batches = list(dataset.as_numpy_iterator())
        self.assertAllEqual(batches[0]["answer_ids"], [0, 1])
        self.assertEqual(report.dropped_answers, {"Red": 2, "maybe": 1})
        self.assertLen(logs.output, 2)
        self.assertIn(
            "answer 'Red' is not in the answer vocabulary; 'red' is — pass fold_case=True",
            "\n".join(logs.output),
        )
        self.assertIn("dropped answer 'Red': 2 examples", report.summary())

    def test_fold_case(self):
        examples = self.video_examples(["red", "Red", "BLUE"])
        dataset = mmzoo.data.video_qa_pipeline(
            examples, self.tokenizer, batch_size=3, answer_vocabulary=["red", "Blue"],
            shuffle_buffer=None, repeat=False, deterministic=True, fold_case=True,
        )
        (batch,) = list(dataset.as_numpy_iterator())
        self.assertAllEqual(batch["answer_ids"], [0, 0, 1])
        op = mmzoo.data.ops.answers_to_ids(["Red", "blue"], fold_case=True)
        self.assertAllEqual(op({"answers": ["RED", "blue", "green"]})["answer_ids"], [0, 1, -1])
        with self.assertRaisesRegex(ValueError, r"collide: \[\['Red', 'red'\]\]"):
            mmzoo.data.ops.answers_to_ids(["Red", "red", "blue"], fold_case=True)

    # --- 7. evaluation counts every example ---------------------------------

    def test_evaluation_pipelines_pad_and_mask_the_last_batch(self):
        images = np.zeros((10, 4, 4, 3), "float32")
        captions = tf.data.Dataset.from_tensor_slices(
            {"images": images, "captions": ["a red circle"] * 10}
        )
        # In order (as evaluation reads them), so that the padded batch is the last.
        ordered = {"repeat": False, "shuffle_buffer": None, "deterministic": True}
        cases = {
            "captioning": mmzoo.data.captioning_pipeline(
                captions, self.tokenizer, batch_size=4, **ordered),
            "contrastive": mmzoo.data.contrastive_pipeline(
                captions, self.tokenizer, batch_size=4, **ordered),
            "video_qa": mmzoo.data.video_qa_pipeline(
                self.video_examples(["red"] * 10), self.tokenizer, batch_size=4,
                answer_vocabulary=["red"], **ordered),
            "fusion": mmzoo.data.fusion_pipeline(
                tf.data.Dataset.from_tensor_slices(
                    {"images": images, "texts": ["a"] * 10, "labels": [1] * 10}),
                self.tokenizer, batch_size=4, **ordered),
        }
        for name, dataset in cases.items():
            for spec in dataset.element_spec.values():
                self.assertEqual(spec.shape[0], 4, msg=name)
            masks = [b["example_mask"] for b in dataset.as_numpy_iterator()]
            self.assertAllEqual(masks, [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]], msg=name)

    def test_evaluate_counts_exactly_500_examples(self):
        # Labels at random; the "prediction" is written in the image, right
        # for two thirds of the examples. 500 = 7 * 64 + 52.
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 3, 500)
        predicted = np.where(np.arange(500) % 3 == 0, (labels + 1) % 3, labels)
        examples = tf.data.Dataset.from_tensor_slices({
            "images": np.broadcast_to(predicted[:, None, None, None] / 10, (500, 2, 2, 3)
                                      ).astype("float32"),
            "texts": ["a red circle"] * 500,
            "labels": labels,
        })
        dataset = mmzoo.data.fusion_pipeline(
            examples, self.tokenizer, batch_size=64, shuffle_buffer=None, repeat=False,
            deterministic=True,
        ).map(classification_split)
        self.assertEqual(sum(float(np.sum(w)) for _, _, w in dataset), 500.0)

        class ReadsTheImage(keras.Model):
            def call(self, x):
                predicted = keras.ops.cast(keras.ops.round(x["images"][:, 0, 0, 0] * 10), "int32")
                return keras.ops.one_hot(predicted, 3) * 10.0

        model = ReadsTheImage()
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        results = model.evaluate(dataset, return_dict=True, verbose=0)
        self.assertAllClose(results["accuracy"], np.mean(predicted == labels))
        self.assertNotAllClose(results["accuracy"], np.mean(predicted[:448] == labels[:448]))

    def test_split_functions_weigh_by_the_mask(self):
        mask = np.array([1.0, 1.0, 0.0], "float32")
        captions = {
            "images": np.zeros((3, 4, 4, 3), "float32"),
            "token_ids": np.array([[2, 5, 3, 0]] * 3, "int32"),
            "padding_mask": np.array([[True, True, True, False]] * 3),
        }
        x, y = teacher_forcing_split(captions)
        x, y, weight = teacher_forcing_split({**captions, "example_mask": mask})
        self.assertEqual(tuple(weight.shape), (3, 1))
        # The per-caption loss of the padding row (here made huge) is ignored.
        logits = np.zeros((3, 3, 8), "float32")
        logits[2, :, 0] = 100.0
        loss = MaskedSequenceCrossEntropy()
        self.assertAllClose(loss(y, logits, sample_weight=weight) * 3, 2 * np.log(8))

        videos = {
            "videos": np.zeros((3, 2, 4, 4, 3), "float32"),
            "question_token_ids": np.zeros((3, 4), "int32"),
            "question_padding_mask": np.ones((3, 4), bool),
            "answer_ids": np.array([0, 1, 0], "int32"),
        }
        self.assertLen(video_qa_training_split(videos), 2)
        _, _, weight = video_qa_training_split({**videos, "example_mask": mask})
        self.assertAllEqual(weight, mask)

        fusion = {"images": captions["images"], "labels": np.array([0, 1, 2]),
                  "example_mask": mask}
        x, _, weight = classification_split(fusion, class_weights=[1.0, 2.0, 3.0])
        self.assertNotIn("example_mask", x)
        self.assertAllEqual(weight, [1.0, 2.0, 0.0])

    # --- 8. a bad file is decoded once per process ------------------------

    def test_decoder_message_printed_once_over_epochs(self):
        # libjpeg writes to the process's stderr, so the loader runs in a child.
        manifest = write_csv(
            self.path("bogus.csv"), [("bogus.jpg", "bad"), ("red.png", "good")],
            header=("image_path", "caption"),
        )
        script = textwrap.dedent("""
            import sys
            import mmzoo.data
            dataset, report = mmzoo.data.load_image_caption_files(sys.argv[1], image_shape=(4, 4))
            print(len(list(dataset.repeat(3))), report.num_skipped)
        """)
        child = subprocess.run(
            [sys.executable, "-c", script, manifest], capture_output=True, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300,
        )
        self.assertEqual(child.returncode, 0, msg=child.stderr[-3000:])
        self.assertEqual(child.stdout.split()[-2:], ["3", "1"])
        self.assertEqual(child.stderr.count("Bogus Huffman table definition"), 1,
                         msg=child.stderr[-3000:])

    def test_file_found_bad_is_not_read_in_later_passes(self):
        dataset, report = self.load_images(["bogus.jpg", "red.png"])
        with self.assertLogs("mmzoo.data", "WARNING"):
            self.assertLen(list(dataset), 1)
        # Repaired on disk: still skipped, as it is not read again.
        PIL.Image.new("RGB", (6, 6), (20, 200, 20)).save(self.path("bogus.jpg"), format="JPEG")
        self.assertLen(list(dataset), 1)
        self.assertEqual(list(report.skipped), [self.path("bogus.jpg")])

    def test_elements_same_whether_bad_files_known_or_not(self):
        names = ["bogus.jpg", "red.png", "corrupt.jpg", "blue.jpg"]
        dataset, report = self.load_images(names)
        with self.assertLogs("mmzoo.data", "WARNING"):
            first = list(dataset.as_numpy_iterator())  # nothing known yet
        self.assertEqual(report.num_skipped, 2)
        later = list(dataset.as_numpy_iterator())  # both known
        self.assertLen(first, 2)
        self.assertAllCloseNested(later, first, atol=0, rtol=0)

    def test_iterator_restored_where_nothing_is_known_goes_on_exactly(self):
        # Saved in the second pass (both bad files known), restored into a
        # freshly loaded dataset, as a resumed run in a new process does.
        names = ["bogus.jpg", "red.png", "corrupt.jpg", "blue.jpg"]
        options = tf.data.Options()  # as `mmzoo.training.Trainer` saves it
        options.experimental_external_state_policy = (
            tf.data.experimental.ExternalStatePolicy.IGNORE
        )
        dataset, _ = self.load_images(names)
        iterator = iter(dataset.repeat(2).with_options(options))
        with self.assertLogs("mmzoo.data", "WARNING"):
            for _ in range(3):  # red, blue, red
                next(iterator)
        saved = tf.train.Checkpoint(iterator=iterator).save(self.path("checkpoint"))
        rest = [e["images"].numpy() for e in iterator]
        fresh, _ = self.load_images(names)
        restored = iter(fresh.repeat(2).with_options(options))
        tf.train.Checkpoint(iterator=restored).restore(saved)
        self.assertLen(rest, 1)
        self.assertAllCloseNested([e["images"].numpy() for e in restored], rest,
                                  atol=0, rtol=0)

    def test_reason_read_with_pillow_once(self):
        dataset, report = self.load_images(["bogus.jpg", "red.png"])
        with mock.patch.object(files, "_read_image", wraps=files._read_image) as read:
            with self.assertLogs("mmzoo.data", "WARNING"):
                for _ in range(3):
                    self.assertLen(list(dataset), 1)
        self.assertEqual(read.call_count, 1)
        self.assertRegex(report.skipped[self.path("bogus.jpg")], "cannot decode image")

    def test_bad_clip_listed_twice_read_once(self):
        dataset, report = self.load_videos(["nan.npy", "good.npy", "nan.npy"])
        with mock.patch.object(files, "_read_frames", wraps=files._read_frames) as read:
            with self.assertLogs("mmzoo.data", "WARNING"):
                for _ in range(2):
                    self.assertLen(list(dataset), 1)
        self.assertEqual(read.call_count, 1)
        self.assertEqual(report.num_skipped, 1)

    def test_strict_raises_on_every_pass(self):
        dataset, report = self.load_images(["bogus.jpg", "red.png"], strict=True)
        for _ in range(2):
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"bogus\.jpg"):
                list(dataset)
        self.assertEqual(report.num_skipped, 0)

    def test_decode_maps_stay_parallel_under_op_determinism(self):
        # With op determinism on (mmzoo's training default), tf.data runs every
        # parallel map serially when any function of the pipeline holds a
        # stateful op other than `Assert` (and an `If` around one).
        images, _ = self.load_images(["red.png"])
        videos, _ = self.load_videos(["good.npy", "scale255_f64.npy"])
        for dataset in (images, videos):
            self.assertLessEqual(stateful_ops(dataset), {"Assert", "If"})
