"""Loaders for user data on disk, described by a JSONL or CSV manifest.

Image captioning manifests have the columns `image_path` and `caption`;
video QA manifests have `video_path`, `question`, `answer` and, optionally,
`question_type`. Relative paths are resolved against the manifest's folder.
A JSONL manifest has one JSON object per line; a CSV manifest has a header
row. Rows that list the same image are grouped into one example with several
captions.

Images are decoded with Pillow (JPEG, PNG and the other formats it reads);
grayscale, palette and RGBA images become RGB (alpha is dropped), and
resizing to `image_shape` (bilinear, antialiased) happens in TensorFlow.
A video is a folder of JPEG/PNG frames (taken in file-name order, so number
them with leading zeros), or a `.npy` file, or a `.npz` file with a `frames`
array (or a single array): `(frames, height, width[, channels])`, uint8 in
[0, 255] or float in [0, 1].

Bad input never stops an epoch. By default a bad record is skipped, logged
once as a warning on the `mmzoo.data` logger naming the file (or manifest
line), and counted in the returned `LoadReport`:

* problems found when the manifest is read (missing file, empty or
  non-UTF-8 caption/question/answer, a row without the needed columns) are
  counted as soon as the loader returns;
* images or videos that fail to decode (corrupt or truncated files, empty
  frame folders) are counted as the dataset reaches them.

With `strict=True` the first problem raises instead: a `ValueError` naming
the file for manifest problems (from the loader call), and, for files that
fail to decode, a `tf.errors.InvalidArgumentError` whose message names the
file (from the iteration that reaches it).

Repaired rather than skipped: a caption longer than the tokenizer's
`sequence_length` is truncated by the tokenizer (keeping `[END]`); a video
with fewer than `num_frames` frames is padded by repeating its last frame
(a frozen ending keeps motion answers true, which looping would not) and
listed in `LoadReport.padded`; a longer video is subsampled to `num_frames`
evenly spaced frames (only those are decoded).
"""

import csv
import json
import logging
import os
import threading

import numpy as np
import PIL.Image
import tensorflow as tf

from mmzoo.data import ops
from mmzoo.data._checks import check_image_shape
from mmzoo.data._checks import check_int

logger = logging.getLogger("mmzoo.data")

_FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
_MANIFEST_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}


class LoadReport:
    """What a file loader skipped or repaired.

    Attributes:
        manifest_path: str.
        num_records: int. Rows read from the manifest.
        skipped: dict mapping a file path (or `"manifest:line"`) to the reason
            it was skipped. Decoding problems are added while the dataset is
            iterated; each file is counted once, however many epochs run.
        padded: dict mapping a video path to its frame count, for videos
            shorter than `num_frames` (padded by repeating the last frame).

    Example:

    ```python
    dataset, report = mmzoo.data.load_image_caption_files("data/train.jsonl")
    for _ in dataset:
        pass
    print(report.summary())  # e.g. "1000 records, 3 skipped: ..."
    ```
    """

    def __init__(self, manifest_path):
        self.manifest_path = manifest_path
        self.num_records = 0
        self.skipped = {}
        self.padded = {}
        self._lock = threading.Lock()

    @property
    def num_skipped(self):
        """int. Number of skipped records (or files)."""
        return len(self.skipped)

    def skip(self, where, reason, strict):
        """Records a bad record, or raises `ValueError` when `strict`."""
        message = f"{where}: {reason}"
        if strict:
            raise ValueError(f"mmzoo.data: bad record in {self.manifest_path}: {message}")
        with self._lock:
            if where in self.skipped:
                return
            self.skipped[where] = reason
        logger.warning("mmzoo.data: skipping %s", message)

    def pad(self, where, num_frames):
        with self._lock:
            if where in self.padded:
                return
            self.padded[where] = num_frames
        logger.info("mmzoo.data: padded %s (%d frames) by repeating its last frame",
                    where, num_frames)

    def summary(self):
        """str. One line per skipped or padded file, after a count line."""
        lines = [
            f"{self.manifest_path}: {self.num_records} records, {self.num_skipped} "
            f"skipped, {len(self.padded)} videos padded"
        ]
        lines += [f"  skipped {where}: {reason}" for where, reason in self.skipped.items()]
        lines += [f"  padded {where}: {n} frames" for where, n in self.padded.items()]
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"LoadReport(manifest_path={self.manifest_path!r}, "
            f"num_records={self.num_records}, num_skipped={self.num_skipped}, "
            f"num_padded={len(self.padded)})"
        )


def _has_bad_utf8(text):
    # Bytes that are not UTF-8 are read as lone surrogates (surrogateescape).
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _manifest_rows(manifest_path, report, strict):
    """Yields (where, row dict) for each record of a JSONL or CSV manifest."""
    if not os.path.isfile(manifest_path):
        raise ValueError(
            f"`manifest_path` must be an existing file. Received: manifest_path={manifest_path!r}"
        )
    extension = os.path.splitext(manifest_path)[1].lower()
    if extension not in _MANIFEST_FORMATS:
        raise ValueError(
            f"`manifest_path` must end in {sorted(_MANIFEST_FORMATS)}. "
            f"Received: manifest_path={manifest_path!r}"
        )
    name = os.path.basename(manifest_path)
    with open(manifest_path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        if _MANIFEST_FORMATS[extension] == "csv":
            reader = csv.DictReader(f)
            for row in reader:
                yield f"{name}:{reader.line_num}", row
            return
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{name}:{line_number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                report.num_records += 1
                report.skip(where, f"invalid JSON ({e.msg})", strict)
                continue
            if not isinstance(row, dict):
                report.num_records += 1
                report.skip(where, "a JSONL line must be a JSON object", strict)
                continue
            yield where, row


def _read_records(manifest_path, text_columns, path_column, report, strict, optional=()):
    """Checks each manifest row; returns (absolute path, {column: text}) pairs.

    Columns in `optional` may be missing or empty (they then read as "").
    """
    folder = os.path.dirname(os.path.abspath(manifest_path))
    records = []
    for where, row in _manifest_rows(manifest_path, report, strict):
        report.num_records += 1
        values = {}
        for column in (path_column,) + text_columns + tuple(optional):
            value = row.get(column)
            if value is None and column in optional:
                value = ""
            if value is None:
                report.skip(where, f"no `{column}` column", strict)
                break
            value = str(value)
            if _has_bad_utf8(value):
                report.skip(where, f"`{column}` is not valid UTF-8", strict)
                break
            if not value.strip() and column not in optional:
                report.skip(where, f"empty `{column}`", strict)
                break
            values[column] = value.strip()
        else:
            path = os.path.normpath(os.path.join(folder, values.pop(path_column)))
            if not os.path.exists(path):
                report.skip(path, "file not found", strict)
                continue
            records.append((path, values))
    return records


def _check_no_records(records, manifest_path, report):
    if not records:
        raise ValueError(
            f"No usable records in the manifest.\n{report.summary()}\n"
            f"Received: manifest_path={manifest_path!r}"
        )


def _read_image(path, min_size=None):
    """uint8 (height, width, 3) from an image file; raises on bad files.

    With `min_size` (width, height), a JPEG is decoded at the smallest of
    1, 1/2, 1/4 or 1/8 scale that is still at least that large (libjpeg's DCT
    scaling, much cheaper than decoding in full and resizing afterwards).
    """
    with PIL.Image.open(path) as image:
        if min_size is not None:
            image.draft("RGB", min_size)  # No-op for formats other than JPEG.
        image.load()  # Decodes fully: truncated files raise here.
        return np.asarray(image.convert("RGB"), dtype="uint8")


def _decoder(read, report, strict, what):
    """Wraps `read(path)` for `tf.numpy_function`: (pixels, ok), never raising
    unless `strict`."""

    def decode(path):
        path = path.decode("utf-8", errors="surrogateescape")
        try:
            return read(path), True
        except Exception as e:  # noqa: BLE001 - any decoding failure skips
            reason = f"cannot decode {what} ({type(e).__name__}: {e})"
            report.skip(path, reason, strict)
            return None, False

    return decode


def load_image_caption_files(manifest_path, image_shape=(224, 224), strict=False):
    """Image-caption pairs listed in a JSONL or CSV manifest.

    See the module docstring for the manifest format and the bad-input policy.

    Args:
        manifest_path: str. `.jsonl` or `.csv` file with `image_path` and
            `caption` columns.
        image_shape: (height, width) or (height, width, 3). Output image size.
        strict: bool. Raise on the first bad record instead of skipping it.

    Returns:
        `(dataset, report)`: an unbatched `tf.data.Dataset` of dicts with
        `images` float32 `(height, width, 3)` in [0, 1] and `captions`
        string `(num_captions,)` (all captions of that image), and the
        `LoadReport`.

    Example:

    ```python
    examples, report = mmzoo.data.load_image_caption_files(
        "data/captions.csv", image_shape=(64, 64)
    )
    train = mmzoo.data.captioning_pipeline(examples, tokenizer, batch_size=32)
    ```
    """
    height, width = check_image_shape(image_shape)
    report = LoadReport(manifest_path)
    records = _read_records(manifest_path, ("caption",), "image_path", report, strict)
    _check_no_records(records, manifest_path, report)
    grouped = {}
    for path, values in records:
        grouped.setdefault(path, []).append(values["caption"])
    paths = list(grouped)
    captions = tf.RaggedTensor.from_row_lengths(
        tf.constant([c for path in paths for c in grouped[path]], tf.string),
        tf.constant([len(grouped[path]) for path in paths], tf.int64),
    )
    decode = _decoder(lambda path: _read_image(path, (width, height)), report, strict, "image")

    def numpy_decode(path):
        pixels, ok = decode(path)
        return (pixels if ok else np.zeros((1, 1, 3), "uint8")), np.bool_(ok)

    def load(index, path):
        pixels, ok = tf.numpy_function(numpy_decode, [path], [tf.uint8, tf.bool])
        pixels = tf.ensure_shape(pixels, (None, None, 3))
        return {"images": pixels, "captions": captions[index]}, ok

    resize = ops.resize((height, width))
    dataset = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), paths))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.filter(lambda example, ok: ok)
    dataset = dataset.map(
        lambda example, ok: resize(
            {**example, "images": tf.cast(example["images"], tf.float32) / 255.0}
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset, report


def _frame_indices(count, num_frames):
    """Evenly spaced frames of a long clip; a short clip's last frame repeated."""
    if count >= num_frames:
        return np.linspace(0, count - 1, num_frames).round().astype(int)
    return np.minimum(np.arange(num_frames), count - 1)


def _read_array(path):
    """The frames array of a .npy or .npz file (memory-mapped for .npy)."""
    if path.lower().endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if "frames" in keys:
                return archive["frames"]
            if len(keys) == 1:
                return archive[keys[0]]
            raise ValueError(f"expected a `frames` array or a single array, got {keys}")
    if path.lower().endswith(".npy"):
        return np.load(path, mmap_mode="r", allow_pickle=False)
    raise ValueError("a video must be a frame folder, a .npy or a .npz file")


def _read_frames(path, num_frames, min_size):
    """`num_frames` frames, float32 in [0, 1], and the clip's frame count.

    Only the frames kept are decoded (or read from a memory-mapped .npy).
    """
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(_FRAME_EXTENSIONS))
        if not names:
            raise ValueError(f"no {'/'.join(_FRAME_EXTENSIONS)} frames in the folder")
        indices = _frame_indices(len(names), num_frames)
        decoded = {i: _read_image(os.path.join(path, names[i]), min_size) for i in set(indices)}
        if len({f.shape for f in decoded.values()}) > 1:
            raise ValueError("frames differ in size")
        frames = np.stack([decoded[i] for i in indices])
        return frames.astype("float32") / 255.0, len(names)
    array = _read_array(path)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:3]) == 0:
        raise ValueError(
            f"expected (frames, height, width[, 1|3|4]) with frames >= 1, got {array.shape}"
        )
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"expected uint8 or float frames, got {array.dtype}")
    count = array.shape[0]
    array = np.asarray(array[_frame_indices(count, num_frames)])
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    array = array[..., :3]
    if array.dtype == np.uint8:
        return array.astype("float32") / 255.0, count
    return np.clip(array.astype("float32"), 0.0, 1.0), count


def load_video_qa_files(manifest_path, num_frames=8, image_shape=(64, 64), strict=False):
    """Video question-answer records listed in a JSONL or CSV manifest.

    See the module docstring for the manifest format, the video formats, the
    bad-input policy and the short-video policy (pad with the last frame).

    Args:
        manifest_path: str. `.jsonl` or `.csv` file with `video_path`,
            `question`, `answer` and optional `question_type` columns.
        num_frames: int >= 1. Frames per output clip.
        image_shape: (height, width) or (height, width, 3). Frame size.
        strict: bool. Raise on the first bad record instead of skipping it.

    Returns:
        `(dataset, report)`: an unbatched `tf.data.Dataset` of dicts with
        `videos` float32 `(num_frames, height, width, 3)` in [0, 1],
        `questions`, `answers` and `question_types` strings (`""` when the
        manifest has no `question_type`), and the `LoadReport`. Map
        `answers` to ids with `video_qa_pipeline(answer_vocabulary=...)`.

    Example:

    ```python
    examples, report = mmzoo.data.load_video_qa_files("clips/qa.jsonl", num_frames=8)
    ```
    """
    height, width = check_image_shape(image_shape)
    num_frames = check_int("num_frames", num_frames, 1)
    report = LoadReport(manifest_path)
    records = _read_records(
        manifest_path, ("question", "answer"), "video_path", report, strict,
        optional=("question_type",),
    )
    _check_no_records(records, manifest_path, report)
    decode = _decoder(
        lambda path: _read_frames(path, num_frames, (width, height)), report, strict, "video"
    )

    def numpy_decode(path):
        result, ok = decode(path)
        if not ok:
            return np.zeros((num_frames, 1, 1, 3), "float32"), np.bool_(False)
        frames, count = result
        if count < num_frames:
            report.pad(path.decode("utf-8", errors="surrogateescape"), count)
        return frames, np.bool_(True)

    def load(example):
        frames, ok = tf.numpy_function(numpy_decode, [example["path"]], [tf.float32, tf.bool])
        frames = tf.ensure_shape(frames, (num_frames, None, None, 3))
        example = {k: v for k, v in example.items() if k != "path"}
        return {"videos": frames, **example}, ok

    resize = ops.resize((height, width), key="videos")
    dataset = tf.data.Dataset.from_tensor_slices(
        {
            "path": [path for path, _ in records],
            "questions": [values["question"] for _, values in records],
            "answers": [values["answer"] for _, values in records],
            "question_types": [values["question_type"] for _, values in records],
        }
    )
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.filter(lambda example, ok: ok)
    dataset = dataset.map(
        lambda example, ok: resize(example),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset, report
