"""Loaders for user data on disk, described by a JSONL or CSV manifest.

Image captioning manifests have the columns `image_path` and `caption`;
video QA manifests have `video_path`, `question`, `answer` and, optionally,
`question_type`. Relative paths are resolved against the manifest's folder.
A JSONL manifest has one JSON object per line; a CSV manifest has a header
row. Rows that list the same image are grouped into one example with several
captions.

Images are decoded inside the `tf.data` graph (no Python per image): JPEG
and PNG files, recognised by their first bytes, by TensorFlow's decoders,
a JPEG at the smallest DCT scale (1, 1/2, 1/4 or 1/8) that still covers the
output size, which costs much less than decoding in full and resizing
afterwards; any other format Pillow reads (BMP, GIF, TIFF, WebP, ...) by
Pillow. Grayscale, palette, CMYK and RGBA images become RGB (alpha is
dropped), and resizing to `image_shape` (`mmzoo.data.ops.resize`: area
averaging when shrinking, antialiased bilinear when enlarging) happens in
TensorFlow, as in the serving signatures of `mmzoo.export`.
A video is a folder of JPEG/PNG frames (taken in file-name order, so number
them with leading zeros; the folder is listed when the loader is called and
its frames are decoded in the graph), or a `.npy` file, or a `.npz` file
with a `frames` array (or a single array): `(frames, height, width[,
channels])`, uint8 in [0, 255] or float in [0, 1]. A `.npy` file of uint8 or
little-endian float32 in C order, up to 32 MiB, is read in the graph too
(its header is read when the loader is called); other array files are read
by numpy (memory-mapped for `.npy`), one Python call per clip.

Bad input never stops an epoch. By default a bad record is skipped, logged
once as a warning on the `mmzoo.data` logger naming the file (or manifest
line), and counted in the returned `LoadReport`:

* problems found when the manifest is read (missing file, empty or
  non-UTF-8 caption/question/answer, a row without the needed columns, a
  frame folder without frames) are counted as soon as the loader returns;
* images or videos that fail to decode (corrupt or truncated files, frames
  of different sizes) are counted as the dataset reaches them. The reason
  logged comes from reading the bad file again with Pillow (or numpy), so
  files that decode cost no Python call.

With `strict=True` the first problem raises instead: a `ValueError` naming
the file for manifest problems (from the loader call), and, for files that
fail to decode, a `tf.errors.InvalidArgumentError` whose message names the
file (from the iteration that reaches it).

Repaired rather than skipped: a caption longer than the tokenizer's
`sequence_length` is truncated by the tokenizer (keeping `[END]`); a video
with fewer than `num_frames` frames is padded by repeating its last frame
(a frozen ending keeps motion answers true, which looping would not) and
listed in `LoadReport.padded` (a frame folder or a `.npy` read in the graph
when the loader is called, another array file when the dataset reaches it);
a longer video is subsampled to `num_frames`
evenly spaced frames (only those are decoded).
"""

import collections
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
from mmzoo.data._images import decode_jpegs_covering
from mmzoo.data._images import scale_uint8_images

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


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _decode_images_in_graph(paths, min_size):
    """uint8 `(len(paths), height, width, 3)`: image files decoded in the graph.

    `paths` is a list of scalar string tensors, images of one size (the
    frames of a clip, or one image). When the first is a JPEG (recognised by
    its first bytes, whatever the file name), all are decoded by
    TensorFlow's JPEG decoder at the smallest DCT scale (1, 1/2, 1/4 or 1/8)
    that still covers `min_size` `(width, height)`, chosen once from the
    first image's header; otherwise each is decoded as PNG by TensorFlow, or
    by Pillow for any other format. Raises (an op error) on a file that does
    not decode, and when the images differ in size.
    """
    contents = [tf.io.read_file(path) for path in paths]

    def jpeg():
        return decode_jpegs_covering(contents, min_size)

    def read_with_pillow(path):
        return _read_image(path.decode("utf-8", errors="surrogateescape"), min_size)

    def other():
        return tf.stack([
            tf.cond(
                tf.strings.substr(c, 0, len(_PNG_MAGIC)) == _PNG_MAGIC,
                lambda c=c: tf.io.decode_png(c, channels=3, dtype=tf.uint8),
                lambda path=path: tf.numpy_function(
                    read_with_pillow, [path], tf.uint8, stateful=False
                ),
            )
            for c, path in zip(contents, paths)
        ])

    pixels = tf.cond(tf.io.is_jpeg(contents[0]), jpeg, other)
    return tf.ensure_shape(pixels, (len(paths), None, None, 3))


def _path_tensor(paths):
    """A string tensor of file paths (bytes, so that any file name survives)."""
    return tf.constant([p.encode("utf-8", errors="surrogateescape") for p in paths], tf.string)


def _placeholder(spec):
    """A tensor of `spec` with every unknown dimension 0."""
    shape = [0 if d is None else d for d in spec.shape]
    if spec.dtype == tf.string:
        return tf.fill(shape, "")
    return tf.zeros(shape, spec.dtype)


def _skipping_failures(indexed, count, on_failure, strict):
    """Drops the examples whose decoding failed and reports each one.

    `indexed` yields `(index, example)` in increasing `index` order (a
    deterministic map over `range(count)`); an element whose map raised is
    dropped by `ignore_errors`, and the gap it leaves in the indices names
    it: `on_failure(index)` runs (in Python) for each missing index, only
    when a gap is found, so files that decode cost no Python call. A
    sentinel element closes the last gap of each pass.

    When skipping, the sentinel fails an assertion once it has closed the
    gap and a second `ignore_errors` drops it: two stages per example fewer
    than filtering it out. `strict` filters it out, since there the error
    that `on_failure` raises must get through.
    """
    indexed = indexed.ignore_errors()
    _, example_spec = indexed.element_spec
    sentinel = tf.data.Dataset.from_tensors(
        (tf.constant(count, tf.int64), tf.nest.map_structure(_placeholder, example_spec))
    )

    def report(first, stop):
        for index in range(int(first), int(stop)):
            on_failure(index)
        return np.bool_(True)

    def check(expected, element):
        index, example = element
        reported = tf.cond(
            index > expected,
            lambda: tf.numpy_function(report, [expected, index], tf.bool, stateful=True),
            lambda: tf.constant(True),
        )
        if strict:
            return index + 1, (example, tf.logical_and(reported, index < count))
        with tf.control_dependencies([reported]):
            real = tf.debugging.assert_less(index, tf.constant(count, tf.int64), "sentinel")
        with tf.control_dependencies([real]):
            return index + 1, tf.nest.map_structure(tf.identity, example)

    checked = indexed.concatenate(sentinel).scan(tf.constant(0, tf.int64), check)
    if not strict:
        return checked.ignore_errors()

    def keep(example, kept):
        return kept

    def drop_flag(example, kept):
        return example

    return checked.filter(keep).map(drop_flag)


def _failure_reporter(paths, read, report, strict, what):
    """`on_failure(index)` for `_skipping_failures`: reads the file again in
    Python for the reason, then skips it (or raises when `strict`)."""

    def on_failure(index):
        path = paths[index]
        try:
            read(path)
            reason = f"cannot decode {what} (TensorFlow's decoder rejects it; Pillow reads it)"
        except Exception as e:  # noqa: BLE001 - any failure is the reason
            reason = f"cannot decode {what} ({type(e).__name__}: {e})"
        report.skip(path, reason, strict)

    return on_failure


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
    min_size = (width, height)
    path_tensor = _path_tensor(paths)

    def load(index, path, image_captions):
        pixels = _decode_images_in_graph([path], min_size)[0]
        # The serving signatures of `mmzoo.export` scale with the same helper.
        images = scale_uint8_images(pixels, height, width)
        return index, {"images": images, "captions": image_captions}

    indexed = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), path_tensor, captions)
    ).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    on_failure = _failure_reporter(
        paths, lambda path: _read_image(path, min_size), report, strict, "image"
    )
    dataset = _skipping_failures(indexed, len(paths), on_failure, strict)
    return dataset, report


def _frame_indices(count, num_frames):
    """Evenly spaced frames of a long clip; a short clip's last frame repeated."""
    if count >= num_frames:
        return np.linspace(0, count - 1, num_frames).round().astype(int)
    return np.minimum(np.arange(num_frames), count - 1)


def _list_frames(path, num_frames, report, strict):
    """The `num_frames` frame files kept from a frame folder, or None (skipped)."""
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(_FRAME_EXTENSIONS))
    if not names:
        report.skip(path, f"cannot decode video (no {'/'.join(_FRAME_EXTENSIONS)} frames "
                    "in the folder)", strict)
        return None
    if len(names) < num_frames:
        report.pad(path, len(names))
    return [os.path.join(path, names[i]) for i in _frame_indices(len(names), num_frames)]


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


# `.npy` clips up to this many bytes of data, of these dtypes, are read in
# the `tf.data` graph (the whole file: a longer one is better memory-mapped).
_NPY_IN_GRAPH_MAX_BYTES = 32 * 2**20
_NPY_IN_GRAPH_DTYPES = {np.dtype("uint8"): tf.uint8, np.dtype("<f4"): tf.float32}

# Where a `.npy` clip's data starts, its `(frames, height, width, channels)`
# and its TensorFlow dtype.
_NpyLayout = collections.namedtuple("_NpyLayout", ["offset", "shape", "dtype"])


def _npy_layout(path):
    """The `_NpyLayout` of a `.npy` clip the graph can read, or None (numpy
    reads it, and reports it if bad)."""
    if not path.lower().endswith(".npy"):
        return None
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return None
            offset = f.tell()
        size = os.path.getsize(path)
    except Exception:  # noqa: BLE001 - numpy reads it again and names the problem
        return None
    if len(shape) == 3:
        shape = shape + (1,)
    if (
        fortran_order
        or dtype not in _NPY_IN_GRAPH_DTYPES
        or len(shape) != 4
        or shape[-1] not in (1, 3, 4)
        or min(shape[:3]) == 0
    ):
        return None
    num_bytes = int(np.prod(shape)) * dtype.itemsize
    if num_bytes > _NPY_IN_GRAPH_MAX_BYTES or size != offset + num_bytes:
        return None
    return _NpyLayout(offset, shape, _NPY_IN_GRAPH_DTYPES[dtype])


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


# How `load_video_qa_files` reads each clip.
_FROM_FOLDER, _FROM_NUMPY, _FROM_NPY_UINT8, _FROM_NPY_FLOAT32 = range(4)


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
    min_size = (width, height)
    report = LoadReport(manifest_path)
    records = _read_records(
        manifest_path, ("question", "answer"), "video_path", report, strict,
        optional=("question_type",),
    )
    # Frame folders are listed once, here, and `.npy` headers read: the
    # frames kept are decoded (or cut from the array) in the graph. Other
    # array files are read in Python (memory-mapped for `.npy`).
    listed, layouts = {}, {}
    kept, frame_paths, kinds, npy = [], [], [], []
    # The graph's `.npy` tables hold this for clips read another way.
    no_npy = (_NpyLayout(0, (1, 1, 1, 1), tf.uint8), [0] * num_frames)
    for path, values in records:
        layout = None
        if os.path.isdir(path):
            if path not in listed:
                listed[path] = _list_frames(path, num_frames, report, strict)
            if listed[path] is None:
                continue
            frame_paths.append(listed[path])
            kinds.append(_FROM_FOLDER)
        else:
            frame_paths.append([""] * num_frames)
            if path not in layouts:
                layouts[path] = _npy_layout(path)
                if layouts[path] is not None and layouts[path].shape[0] < num_frames:
                    report.pad(path, layouts[path].shape[0])
            layout = layouts[path]
            if layout is None:
                kinds.append(_FROM_NUMPY)
            else:
                kinds.append(_FROM_NPY_UINT8 if layout.dtype == tf.uint8 else _FROM_NPY_FLOAT32)
        npy.append(
            no_npy if layout is None
            else (layout, _frame_indices(layout.shape[0], num_frames))
        )
        kept.append((path, values))
    records = kept
    _check_no_records(records, manifest_path, report)
    paths = [path for path, _ in records]
    path_tensor = _path_tensor(paths)
    frame_tensor = tf.reshape(
        _path_tensor([p for clip in frame_paths for p in clip]), (len(records), num_frames)
    )
    kind = tf.constant(kinds, tf.int32)
    npy_offsets = tf.constant([layout.offset for layout, _ in npy], tf.int64)
    npy_shapes = tf.constant([layout.shape for layout, _ in npy], tf.int64)
    npy_frames = tf.constant(np.array([indices for _, indices in npy], np.int64))
    texts = {
        key: tf.constant([values[column] for _, values in records], tf.string)
        for key, column in (
            ("questions", "question"), ("answers", "answer"), ("question_types", "question_type")
        )
    }

    def read_array(path):
        path = path.decode("utf-8", errors="surrogateescape")
        frames, count = _read_frames(path, num_frames, min_size)
        if count < num_frames:
            report.pad(path, count)
        return frames

    def from_folder(index):
        frames = _decode_images_in_graph(
            [frame_tensor[index, t] for t in range(num_frames)], min_size
        )
        return tf.cast(frames, tf.float32) / 255.0

    def from_array(index):
        return tf.numpy_function(read_array, [path_tensor[index]], tf.float32, stateful=False)

    def from_npy(index, dtype):
        contents = tf.io.read_file(path_tensor[index])
        shape = npy_shapes[index]
        # The header ends at the offset; the data is the rest of the file
        # (its size was checked when the loader was called).
        values = tf.io.decode_raw(
            tf.strings.substr(
                contents, npy_offsets[index], tf.cast(tf.strings.length(contents), tf.int64)
            ),
            dtype, little_endian=True,
        )
        frames = tf.gather(tf.reshape(values, shape), npy_frames[index])
        frames = tf.cond(
            shape[-1] == 1,
            lambda: tf.repeat(frames, 3, axis=-1),
            lambda: frames[..., :3],
        )
        if dtype == tf.uint8:
            return tf.cast(frames, tf.float32) / 255.0
        return tf.clip_by_value(frames, 0.0, 1.0)

    resize = ops.resize((height, width), key="videos")

    def load(index):
        frames = tf.switch_case(
            kind[index],
            {
                _FROM_FOLDER: lambda: from_folder(index),
                _FROM_NUMPY: lambda: from_array(index),
                _FROM_NPY_UINT8: lambda: from_npy(index, tf.uint8),
                _FROM_NPY_FLOAT32: lambda: from_npy(index, tf.float32),
            },
        )
        frames = tf.ensure_shape(frames, (num_frames, None, None, 3))
        example = {"videos": frames, **{key: text[index] for key, text in texts.items()}}
        return index, resize(example)

    indexed = tf.data.Dataset.range(len(records)).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    on_failure = _failure_reporter(
        paths, lambda path: _read_frames(path, num_frames, min_size), report, strict, "video"
    )
    return _skipping_failures(indexed, len(records), on_failure, strict), report
