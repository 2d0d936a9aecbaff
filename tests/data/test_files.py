import csv
import io
import json
import os
from unittest import mock

import numpy as np
import PIL.Image
import tensorflow as tf

import mmzoo.data
from mmzoo.testing import TestCase

RED = (200, 20, 20)


def write_image(path, mode="RGB", size=(20, 16), color=RED, fmt=None):
    if mode == "L":
        color = 128
    elif mode == "RGBA":
        color = color + (100,)
    PIL.Image.new(mode, size, color).save(path, format=fmt)
    return path


def jpeg_bytes():
    buffer = io.BytesIO()
    image = PIL.Image.fromarray(
        (np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")
    )
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def write_csv(path, rows, header=("image_path", "caption")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


class ImageCaptionFilesTest(TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.get_temp_dir()
        os.makedirs(os.path.join(self.dir, "images"))
        self.good = write_image(os.path.join(self.dir, "images", "good.jpg"))
        write_image(os.path.join(self.dir, "images", "good.png"))

    def path(self, name):
        return os.path.join(self.dir, name)

    def load(self, rows, **kwargs):
        manifest = write_csv(self.path("manifest.csv"), rows)
        kwargs.setdefault("image_shape", (8, 8))
        return mmzoo.data.load_image_caption_files(manifest, **kwargs)

    def test_loads_resizes_and_groups_captions(self):
        dataset, report = self.load([
            ("images/good.jpg", "a red square"),
            ("images/good.png", "red"),
            ("images/good.jpg", "a square"),
        ])
        self.assertEqual(tuple(dataset.element_spec["images"].shape), (8, 8, 3))
        examples = list(dataset.as_numpy_iterator())
        self.assertLen(examples, 2)
        self.assertAllEqual(examples[0]["captions"], [b"a red square", b"a square"])
        self.assertAllEqual(examples[1]["captions"], [b"red"])
        self.assertAllClose(examples[1]["images"], np.broadcast_to(np.array(RED) / 255, (8, 8, 3)),
                            atol=1e-5)
        self.assertEqual((report.num_records, report.num_skipped), (3, 0))

    def test_jsonl_manifest_and_relative_paths(self):
        manifest = write_jsonl(self.path("data.jsonl"), [
            {"image_path": "images/good.png", "caption": "a red square"},
            {"image_path": self.good, "caption": "absolute path"},
        ])
        cwd = os.getcwd()
        os.chdir(self.get_temp_dir())  # relative to the manifest, not the cwd
        try:
            dataset, report = mmzoo.data.load_image_caption_files(manifest, image_shape=(4, 4))
            self.assertLen(list(dataset), 2)
        finally:
            os.chdir(cwd)
        self.assertEqual(report.num_skipped, 0)

    def test_grayscale_and_rgba_become_rgb(self):
        write_image(self.path("gray.png"), mode="L")
        write_image(self.path("rgba.png"), mode="RGBA")
        dataset, _ = self.load([("gray.png", "gray"), ("rgba.png", "rgba")])
        gray, rgba = list(dataset.as_numpy_iterator())
        self.assertAllClose(gray["images"], np.full((8, 8, 3), 128 / 255), atol=1e-5)
        # Alpha is dropped, the colour kept.
        self.assertAllClose(rgba["images"], np.broadcast_to(np.array(RED) / 255, (8, 8, 3)),
                            atol=1e-5)

    def test_corrupt_image_skipped_counted_and_named(self):
        with open(self.path("corrupt.jpg"), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 this is not a jpeg at all" * 10)
        dataset, report = self.load([("corrupt.jpg", "bad"), ("images/good.jpg", "good")])
        with self.assertLogs("mmzoo.data", "WARNING") as logs:
            examples = list(dataset.as_numpy_iterator())
        self.assertAllEqual([e["captions"] for e in examples], [[b"good"]])
        self.assertEqual(report.num_skipped, 1)
        self.assertIn(self.path("corrupt.jpg"), report.skipped)
        self.assertRegex(report.skipped[self.path("corrupt.jpg")], "cannot decode image")
        self.assertIn("corrupt.jpg", "\n".join(logs.output))

    def test_truncated_image_skipped(self):
        with open(self.path("truncated.jpg"), "wb") as f:
            f.write(jpeg_bytes()[:400])
        dataset, report = self.load([("truncated.jpg", "cut"), ("images/good.jpg", "good")])
        self.assertLen(list(dataset), 1)
        self.assertRegex(report.skipped[self.path("truncated.jpg")], "(?i)truncated")

    def test_skipped_once_however_many_epochs(self):
        with open(self.path("corrupt.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n garbage")
        dataset, report = self.load([("corrupt.png", "bad"), ("images/good.jpg", "good")])
        for _ in range(3):
            self.assertLen(list(dataset), 1)
        self.assertEqual(report.num_skipped, 1)

    def test_jpeg_decoded_in_graph_at_reduced_scale_matches_pillow(self):
        # A 64x64 JPEG read for 16x16 output is decoded at 1/4 scale in the
        # graph, as Pillow's draft mode does; the two agree.
        with open(self.path("noise.jpg"), "wb") as f:
            f.write(jpeg_bytes())
        dataset, _ = self.load([("noise.jpg", "noise")], image_shape=(16, 16))
        (example,) = list(dataset.as_numpy_iterator())
        with PIL.Image.open(self.path("noise.jpg")) as image:
            image.draft("RGB", (16, 16))
            self.assertEqual(image.size, (16, 16))
            expected = np.asarray(image.convert("RGB"), "float32") / 255
        self.assertAllClose(example["images"], expected, atol=2 / 255)

    def test_format_read_from_content_and_other_formats_through_pillow(self):
        write_image(self.path("png_named.jpg"), fmt="PNG")
        write_image(self.path("image.bmp"))
        write_image(self.path("image.gif"))
        write_image(self.path("image.tiff"))
        names = ["png_named.jpg", "image.bmp", "image.gif", "image.tiff"]
        dataset, report = self.load([(name, name) for name in names])
        examples = list(dataset.as_numpy_iterator())
        self.assertEqual([e["captions"][0].decode() for e in examples], names)
        for example in examples:
            # GIF is palette-quantised, hence the looser tolerance.
            self.assertAllClose(
                example["images"], np.broadcast_to(np.array(RED) / 255, (8, 8, 3)), atol=0.05
            )
        self.assertEqual(report.num_skipped, 0)

    def test_bad_images_anywhere_in_a_long_manifest_are_each_named(self):
        # Bad files first, in a run and last: each is reported, no good file
        # is, and the good ones all come through, over several epochs and
        # through a shuffling, non-deterministic pipeline.
        bad = {0, 7, 8, 9, 29}
        rows = []
        for i in range(30):
            rows.append((f"{'bad' if i in bad else 'good'}_{i}.jpg", f"caption {i}"))
            if i in bad:
                with open(self.path(rows[-1][0]), "wb") as f:
                    f.write(jpeg_bytes()[: 200 + i])
            else:
                write_image(self.path(rows[-1][0]))
        dataset, report = self.load(rows)
        for _ in range(2):
            captions = [e["captions"][0].decode() for e in dataset.as_numpy_iterator()]
            self.assertEqual(captions, [f"caption {i}" for i in range(30) if i not in bad])
        self.assertEqual(sorted(report.skipped), sorted(self.path(f"bad_{i}.jpg") for i in bad))
        tokenizer = mmzoo.data.TextTokenizer(
            ["[PAD]", "[UNK]", "[START]", "[END]", "caption"], sequence_length=4
        )
        batches = mmzoo.data.captioning_pipeline(
            dataset, tokenizer, batch_size=5, seed=1, repeat=False
        )
        self.assertEqual(sum(len(b["images"]) for b in batches.as_numpy_iterator()), 25)
        self.assertEqual(report.num_skipped, len(bad))

    def test_iterator_checkpoint_resumes_after_skipped_files(self):
        rows = []
        for i in range(8):
            rows.append((f"image_{i}.jpg", f"caption {i}"))
            if i in (2, 7):
                with open(self.path(rows[-1][0]), "wb") as f:
                    f.write(b"\xff\xd8\xff not a jpeg")
            else:
                write_image(self.path(rows[-1][0]))
        dataset, report = self.load(rows)
        options = tf.data.Options()
        options.experimental_external_state_policy = (
            tf.data.experimental.ExternalStatePolicy.WARN
        )
        dataset = dataset.with_options(options)
        iterator = iter(dataset)
        for _ in range(3):
            next(iterator)
        saved = tf.train.Checkpoint(iterator=iterator).save(self.path("checkpoint"))
        rest = [e["captions"][0].numpy() for e in iterator]
        restored = iter(dataset)
        tf.train.Checkpoint(iterator=restored).restore(saved)
        self.assertEqual([e["captions"][0].numpy() for e in restored], rest)
        self.assertEqual(rest, [b"caption 4", b"caption 5", b"caption 6"])
        self.assertEqual(report.num_skipped, 2)

    def test_missing_file_skipped(self):
        with self.assertLogs("mmzoo.data", "WARNING") as logs:
            dataset, report = self.load([("missing.jpg", "gone"), ("images/good.jpg", "good")])
        self.assertLen(list(dataset), 1)
        self.assertEqual(report.skipped, {self.path("missing.jpg"): "file not found"})
        self.assertIn("missing.jpg", logs.output[0])

    def test_empty_caption_skipped(self):
        dataset, report = self.load([("images/good.png", "  "), ("images/good.jpg", "good")])
        self.assertLen(list(dataset), 1)
        self.assertEqual(report.skipped, {"manifest.csv:2": "empty `caption`"})

    def test_non_utf8_caption_skipped(self):
        with open(self.path("manifest.csv"), "wb") as f:
            f.write(b"image_path,caption\nimages/good.png,caf\xe9 au lait\n"
                    b"images/good.jpg,good\n")
        dataset, report = mmzoo.data.load_image_caption_files(
            self.path("manifest.csv"), image_shape=(8, 8)
        )
        self.assertLen(list(dataset), 1)
        self.assertEqual(report.skipped, {"manifest.csv:2": "`caption` is not valid UTF-8"})

    def test_invalid_json_line_skipped(self):
        manifest = self.path("data.jsonl")
        with open(manifest, "w", encoding="utf-8") as f:
            f.write('{"image_path": "images/good.jpg", "caption": "ok"}\n{not json\n')
        dataset, report = mmzoo.data.load_image_caption_files(manifest, image_shape=(8, 8))
        self.assertLen(list(dataset), 1)
        self.assertRegex(report.skipped["data.jsonl:2"], "invalid JSON")

    def test_over_long_caption_truncated_keeping_end(self):
        tokenizer = mmzoo.data.TextTokenizer(
            ["[PAD]", "[UNK]", "[START]", "[END]", "red"], sequence_length=6
        )
        dataset, report = self.load([("images/good.jpg", " ".join(["red"] * 500))])
        batch = next(iter(mmzoo.data.captioning_pipeline(
            dataset, tokenizer, batch_size=1, shuffle_buffer=None, repeat=False
        )))
        self.assertAllEqual(batch["token_ids"], [[2, 4, 4, 4, 4, 3]])
        self.assertEqual(report.num_skipped, 0)

    def test_strict_raises_on_missing_file(self):
        with self.assertRaisesRegex(ValueError, "missing.jpg: file not found"):
            self.load([("missing.jpg", "gone")], strict=True)

    def test_strict_raises_on_empty_caption(self):
        with self.assertRaisesRegex(ValueError, r"manifest.csv:2: empty `caption`"):
            self.load([("images/good.jpg", "")], strict=True)

    def test_strict_raises_on_non_utf8_caption(self):
        with open(self.path("manifest.csv"), "wb") as f:
            f.write(b"image_path,caption\nimages/good.png,\xff\xfe\n")
        with self.assertRaisesRegex(ValueError, "not valid UTF-8"):
            mmzoo.data.load_image_caption_files(self.path("manifest.csv"), strict=True)

    def test_strict_raises_on_corrupt_image_naming_it(self):
        with open(self.path("corrupt.jpg"), "wb") as f:
            f.write(b"not an image")
        dataset, _ = self.load([("corrupt.jpg", "bad")], strict=True)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "corrupt.jpg"):
            list(dataset)

    def test_no_usable_records(self):
        with self.assertRaisesRegex(ValueError, "No usable records"):
            self.load([("missing.jpg", "gone")])

    def test_bad_manifest(self):
        with self.assertRaisesRegex(ValueError, "Received: manifest_path='nope.csv'"):
            mmzoo.data.load_image_caption_files("nope.csv")
        text = write_jsonl(self.path("data.txt"), [])
        with self.assertRaisesRegex(ValueError, "must end in"):
            mmzoo.data.load_image_caption_files(text)

    def test_bad_image_shape(self):
        with self.assertRaisesRegex(ValueError, r"Received: image_shape=\(8, 8, 4\)"):
            mmzoo.data.load_image_caption_files(self.good, image_shape=(8, 8, 4))


class JpegScaleTest(TestCase):
    def test_decodes_at_the_smallest_scale_that_covers_the_size(self):
        from mmzoo.data.images import decode_jpegs_covering

        buffer = io.BytesIO()
        PIL.Image.fromarray(np.zeros((97, 130, 3), "uint8")).save(buffer, "JPEG")
        jpeg = tf.constant(buffer.getvalue())
        # (min width, min height) -> decoded (height, width): ceil(97 / r), ceil(130 / r).
        cases = {
            (130, 97): (97, 130),  # only full size covers
            (65, 49): (49, 65),  # 1/2 exactly covers
            (65, 50): (97, 130),  # 1/2 gives 49 rows, one short
            (33, 25): (25, 33),  # 1/4
            (17, 13): (13, 17),  # 1/8
            (1, 1): (13, 17),  # never smaller than 1/8
            (200, 10): (97, 130),  # one side larger than the image
        }
        for min_size, expected in cases.items():
            images = decode_jpegs_covering([jpeg, jpeg], min_size)
            self.assertEqual(tuple(images.shape), (2, *expected, 3), msg=str(min_size))


class VideoQAFilesTest(TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.get_temp_dir()
        # Frame t of every clip is filled with the value t / 100.
        self.frames = (np.arange(12)[:, None, None, None] / 100 * np.ones((12, 6, 5, 3)))
        np.save(self.path("long.npy"), self.frames.astype("float32"))
        np.save(self.path("short.npy"), (self.frames[:3] * 255).round().astype("uint8"))
        np.savez(self.path("clip.npz"), frames=self.frames[:8].astype("float32"), other=1)
        np.save(self.path("gray.npy"), np.full((8, 6, 5), 0.5, "float32"))
        os.makedirs(self.path("frames"))
        for t in range(4):
            write_image(self.path(f"frames/{t:03d}.png"), size=(5, 6), color=(t * 10, 0, 0))

    def path(self, name):
        return os.path.join(self.dir, name)

    def load(self, rows, header=("video_path", "question", "answer"), **kwargs):
        manifest = write_csv(self.path("qa.csv"), rows, header=header)
        kwargs.setdefault("num_frames", 8)
        kwargs.setdefault("image_shape", (6, 5))
        return mmzoo.data.load_video_qa_files(manifest, **kwargs)

    def frame_values(self, video):
        return np.round(video[:, 0, 0, 0] * 100).astype(int).tolist()

    def test_long_video_subsampled_evenly(self):
        dataset, report = self.load([("long.npy", "what?", "red")])
        (example,) = list(dataset.as_numpy_iterator())
        self.assertEqual(example["videos"].shape, (8, 6, 5, 3))
        self.assertEqual(self.frame_values(example["videos"]), [0, 2, 3, 5, 6, 8, 9, 11])
        self.assertEqual((example["questions"], example["answers"]), (b"what?", b"red"))
        self.assertEqual(example["question_types"], b"")
        self.assertEqual(report.padded, {})

    def test_short_video_padded_with_last_frame(self):
        dataset, report = self.load([("short.npy", "what?", "red")])
        (example,) = list(dataset.as_numpy_iterator())
        self.assertEqual(self.frame_values(example["videos"]), [0, 1, 2, 2, 2, 2, 2, 2])
        self.assertEqual(report.padded, {self.path("short.npy"): 3})
        self.assertEqual(report.num_skipped, 0)

    def test_npz_frame_folder_and_grayscale(self):
        dataset, report = self.load(
            [("clip.npz", "q1", "a", "count"), ("frames", "q2", "b", "color"),
             ("gray.npy", "q3", "c", "")],
            header=("video_path", "question", "answer", "question_type"),
        )
        clip, folder, gray = list(dataset.as_numpy_iterator())
        self.assertEqual(self.frame_values(clip["videos"]), list(range(8)))
        self.assertEqual(clip["question_types"], b"count")
        self.assertAllClose(folder["videos"][:4, 0, 0, 0], np.arange(4) * 10 / 255, atol=1e-5)
        self.assertEqual(report.padded, {self.path("frames"): 4})
        self.assertAllClose(gray["videos"], np.full((8, 6, 5, 3), 0.5))

    def test_resize_frames(self):
        dataset, _ = self.load([("long.npy", "q", "a")], image_shape=(3, 4), num_frames=2)
        self.assertEqual(tuple(dataset.element_spec["videos"].shape), (2, 3, 4, 3))
        self.assertEqual(next(iter(dataset))["videos"].shape, (2, 3, 4, 3))

    def test_corrupt_video_skipped_and_named(self):
        with open(self.path("corrupt.npy"), "wb") as f:
            f.write(b"\x93NUMPY garbage")
        dataset, report = self.load([("corrupt.npy", "q", "a"), ("long.npy", "q", "a")])
        with self.assertLogs("mmzoo.data", "WARNING") as logs:
            self.assertLen(list(dataset), 1)
        self.assertRegex(report.skipped[self.path("corrupt.npy")], "cannot decode video")
        self.assertIn("corrupt.npy", "\n".join(logs.output))

    def test_corrupt_frame_and_empty_folder_skipped(self):
        os.makedirs(self.path("broken"))
        write_image(self.path("broken/000.jpg"), size=(5, 6))
        with open(self.path("broken/001.jpg"), "wb") as f:
            f.write(jpeg_bytes()[:300])
        os.makedirs(self.path("empty"))
        dataset, report = self.load(
            [("broken", "q", "a"), ("empty", "q", "a"), ("long.npy", "q", "a")]
        )
        self.assertLen(list(dataset), 1)
        self.assertEqual(sorted(report.skipped), [self.path("broken"), self.path("empty")])
        self.assertRegex(report.skipped[self.path("empty")], "no .jpg")

    def test_frame_folder_decoded_in_graph_subsampled_and_checked(self):
        os.makedirs(self.path("jpegs"))
        for t in range(16):
            write_image(self.path(f"jpegs/{t:02d}.jpg"), size=(40, 48), color=(t * 15, 0, 0))
        os.makedirs(self.path("mixed"))
        write_image(self.path("mixed/0.png"), size=(5, 6))
        write_image(self.path("mixed/1.png"), size=(6, 6))
        dataset, report = self.load([("jpegs", "q", "a"), ("mixed", "q", "a")])
        (example,) = list(dataset.as_numpy_iterator())
        # 8 of the 16 frames, evenly spaced: 0, 2, 4, 6, 9, 11, 13, 15.
        self.assertAllClose(
            example["videos"][:, 3, 2, 0] * 255, [0, 30, 60, 90, 135, 165, 195, 225], atol=3
        )
        self.assertEqual(list(report.skipped), [self.path("mixed")])
        self.assertRegex(report.skipped[self.path("mixed")], "frames differ in size")

    def test_strict_raises_on_corrupt_frame_naming_the_folder(self):
        os.makedirs(self.path("broken"))
        with open(self.path("broken/000.jpg"), "wb") as f:
            f.write(jpeg_bytes()[:300])
        dataset, _ = self.load([("frames", "q", "a"), ("broken", "q", "a")], strict=True)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "broken"):
            list(dataset)

    def test_strict_raises_on_empty_frame_folder_when_read(self):
        os.makedirs(self.path("empty"))
        with self.assertRaisesRegex(ValueError, "empty.*no .jpg"):
            self.load([("empty", "q", "a")], strict=True)

    def test_missing_video_and_empty_answer_skipped(self):
        dataset, report = self.load(
            [("missing.npy", "q", "a"), ("long.npy", "q", " "), ("long.npy", "q", "a")]
        )
        self.assertLen(list(dataset), 1)
        self.assertEqual(report.skipped, {
            self.path("missing.npy"): "file not found", "qa.csv:3": "empty `answer`",
        })

    def test_strict_raises_on_corrupt_video(self):
        with open(self.path("corrupt.npz"), "wb") as f:
            f.write(b"PK not a zip")
        dataset, _ = self.load([("corrupt.npz", "q", "a")], strict=True)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "corrupt.npz"):
            list(dataset)

    def test_video_qa_pipeline_from_files(self):
        tokenizer = mmzoo.data.TextTokenizer(
            ["[PAD]", "[UNK]", "[START]", "[END]", "what", "?"], sequence_length=5
        )
        dataset, _ = self.load([("long.npy", "what?", "red"), ("short.npy", "what?", "blue"),
                                ("clip.npz", "what?", "green")])
        batches = mmzoo.data.video_qa_pipeline(
            dataset, tokenizer, batch_size=2, answer_vocabulary=["red", "green"],
            shuffle_buffer=None, repeat=False, deterministic=True,
        )
        (batch,) = list(batches.as_numpy_iterator())
        self.assertAllEqual(batch["answer_ids"], [0, 1])  # "blue" is not in the vocabulary
        self.assertAllEqual(batch["question_token_ids"][0], [2, 4, 5, 3, 0])
        self.assertEqual(batch["videos"].shape, (2, 8, 6, 5, 3))

    def test_npy_read_in_graph_matches_numpy(self):
        from mmzoo.data import files

        rng = np.random.RandomState(0)
        arrays = {
            "rgb.npy": rng.randint(0, 256, (16, 6, 5, 3)).astype("uint8"),
            "rgba.npy": rng.randint(0, 256, (9, 6, 5, 4)).astype("uint8"),
            "gray3d.npy": rng.rand(10, 6, 5).astype("float32"),
            # Within the 1/255 rounding tolerance of [0, 1]: clipped. (Further
            # out is refused: see test_loader_bad_input.py.)
            "bright.npy": (rng.rand(8, 6, 5, 3) * (1 + 1.8 / 255) - 0.9 / 255).astype("float32"),
            "few.npy": rng.randint(0, 256, (3, 6, 5, 1)).astype("uint8"),  # padded
        }
        expected = {}
        for name, array in arrays.items():
            np.save(self.path(name), array)
            self.assertIsNotNone(files._npy_layout(self.path(name)), msg=name)
            expected[name] = files._read_frames(self.path(name), 8, (5, 6))[0]
        # No numpy call per clip: every clip is cut from its file in the graph.
        with mock.patch.object(files, "_read_frames", side_effect=AssertionError("numpy")):
            dataset, report = self.load([(name, "q", "a") for name in arrays])
            # A short clip read in the graph is listed when the loader returns.
            self.assertEqual(report.padded, {self.path("few.npy"): 3})
            videos = [example["videos"] for example in dataset.as_numpy_iterator()]
        self.assertLen(videos, len(arrays))
        for name, video in zip(arrays, videos):
            self.assertAllClose(video, expected[name], atol=1e-6, msg=name)

    def test_npy_other_layouts_read_by_numpy(self):
        from mmzoo.data import files

        frames = (self.frames[:8] * 255).round()
        np.save(self.path("float64.npy"), frames / 255)
        np.save(self.path("fortran.npy"), np.asfortranarray(frames.astype("uint8")))
        with open(self.path("truncated.npy"), "wb") as f:
            np.save(f, frames.astype("uint8"))
        with open(self.path("truncated.npy"), "r+b") as f:
            f.truncate(os.path.getsize(self.path("truncated.npy")) - 10)
        for name in ("float64.npy", "fortran.npy", "truncated.npy", "clip.npz"):
            self.assertIsNone(files._npy_layout(self.path(name)), msg=name)
        dataset, report = self.load(
            [("float64.npy", "q", "a"), ("fortran.npy", "q", "a"), ("truncated.npy", "q", "a")]
        )
        videos = [example["videos"] for example in dataset.as_numpy_iterator()]
        self.assertLen(videos, 2)
        for video in videos:
            self.assertEqual(self.frame_values(video), list(range(8)))
        self.assertEqual(list(report.skipped), [self.path("truncated.npy")])
        self.assertRegex(report.skipped[self.path("truncated.npy")], "cannot decode video")

    def test_bad_num_frames(self):
        with self.assertRaisesRegex(ValueError, "Received: num_frames=0"):
            self.load([("long.npy", "q", "a")], num_frames=0)
