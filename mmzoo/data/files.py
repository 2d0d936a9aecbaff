"""Loaders for user data on disk, described by a JSONL or CSV manifest.

Image captioning manifests have the columns `image_path` and `caption`;
video QA manifests have `video_path`, `question`, `answer` and, optionally,
`question_type`. Relative paths are resolved against the manifest's folder.
A JSONL manifest has one JSON object per line; a CSV manifest has a header
row. Both are read as UTF-8, with or without a byte-order mark (as Excel
writes them). Rows that list the same image are grouped into one example
with several captions.

Values of a JSONL record: text columns hold strings; numbers are read as
their text (`"answer": 3` is the answer `"3"`); any other JSON value (an
object, an array, `true`/`false`, `null`) skips the record with a reason
naming the column and the JSON type, never its Python `str()`. Two
exceptions: a `null` or absent `question_type` reads as `""` (it is
optional), and a `caption` may be an array of strings, the several
captions of that image. Each entry of such a list is checked as a single
caption would be; a bad entry (empty, not valid UTF-8, not a string) is
dropped and listed in `LoadReport.skipped` as `"manifest:line caption[i]"`,
and the record is skipped only when no entry remains.

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

Float frames are checked (the frames kept, whichever way the clip is read):
a clip with a NaN or an infinity, or with values outside [0, 1] by more
than 1/255 (float frames holding 0..255, or -1..1), fails to decode, as a
corrupt file does (below), with the reason and the range found: such a
clip would otherwise stop training with a non-finite loss naming no file,
or be clipped to a white (or black) video. Values within 1/255 of [0, 1]
(rounding) are clipped to [0, 1].

Bad input never stops an epoch. By default a bad record is skipped, logged
as a warning on the `mmzoo.data` logger naming the file (or manifest
line), and counted in the returned `LoadReport`. Only the first 5 records
skipped for the same reason are logged one by one; the rest are counted and
summed up in one line ("... and 40 more records skipped: file not found").

* problems found when the manifest is read (missing file, empty or
  non-UTF-8 caption/question/answer, a value of the wrong JSON type, a row
  without the needed columns, a frame folder without frames) are counted as
  soon as the loader returns;
* images or videos that fail to decode (corrupt or truncated files, frames
  of different sizes, float frames that are not finite or not in [0, 1])
  are counted as the dataset reaches them. The reason logged comes from
  reading the bad file again with Pillow (or numpy), so files that decode
  cost no Python call. A bad file is decoded once per process: later passes
  over the dataset (the training pipelines repeat it) drop it without
  reading it, so a decoder's own message on stderr (libjpeg's "Bogus
  Huffman table definition") appears once, not every epoch. The elements
  are the same as if it were decoded again, so a checkpointed iterator
  resumes exactly in a new process. (A bad file fixed on disk while the
  process runs stays skipped until the loader is called again.)

Errors rather than skips, even when not strict, since every record would
fail: a CSV header without a needed column (one `ValueError` naming the
missing columns, the header and a close match), a JSONL manifest in which
no record has a needed column, and a manifest without any usable record.
Records that fail to decode are only found while the dataset is iterated:
`LoadReport.require_examples(dataset)` reads up to the first example and
raises a `ValueError` with the report's summary when there is none.

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
import difflib
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
from mmzoo.data.images import _PNG_MAGIC
from mmzoo.data.images import decode_jpegs_covering
from mmzoo.data.images import scale_uint8_images

logger = logging.getLogger("mmzoo.data")

_FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
_MANIFEST_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}


# Records skipped for one reason that are logged one by one; the rest are
# counted, and summed up in one line.
_MAX_LOGGED_PER_REASON = 5


class LoadReport:
    """What a file loader skipped or repaired, and what a pipeline dropped.

    Attributes:
        manifest_path: str.
        num_records: int. Rows read from the manifest.
        skipped: dict mapping a file path (or `"manifest:line"`, or
            `"manifest:line caption[i]"` for one entry of a JSON caption
            list) to the reason it was skipped. Decoding problems are added
            while the dataset is iterated; each file is counted once, however
            many epochs run.
        padded: dict mapping a video path to its frame count, for videos
            shorter than `num_frames` (padded by repeating the last frame).
        dropped_answers: dict mapping an answer that is not in the answer
            vocabulary to the number of examples dropped for it, filled by
            `mmzoo.data.video_qa_pipeline(..., report=report)` as the
            pipeline runs (counted again in every epoch that reads them).

    Example:

    ```python
    dataset, report = mmzoo.data.load_image_caption_files("data/train.jsonl")
    dataset = report.require_examples(dataset)  # a clear error if none decodes
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
        self.dropped_answers = {}
        # tf.data runs the loaders' and pipelines' maps in parallel threads.
        self._lock = threading.Lock()
        self._reason_counts = collections.Counter()
        self._reason_summarised = collections.Counter()
        self._manifest_read = False

    @property
    def num_skipped(self):
        """int. Number of skipped records (or files)."""
        return len(self.skipped)

    def skip(self, where, reason, strict):
        """Records a bad record, or raises `ValueError` when `strict`.

        The first 5 records skipped for one reason are logged one by one;
        the rest are counted, and summed up once the manifest is read.
        """
        message = f"{where}: {reason}"
        if strict:
            raise ValueError(f"mmzoo.data: bad record in {self.manifest_path}: {message}")
        with self._lock:
            if where in self.skipped:
                return
            self.skipped[where] = reason
            self._reason_counts[reason] += 1
            count = self._reason_counts[reason]
            manifest_read = self._manifest_read
        if count <= _MAX_LOGGED_PER_REASON:
            logger.warning("mmzoo.data: skipping %s", message)
        elif count == _MAX_LOGGED_PER_REASON + 1 and manifest_read:
            # While the dataset is iterated there is no end to sum up at.
            logger.warning(
                "mmzoo.data: more records skipped for this reason are counted in the "
                "LoadReport, not logged: %s", reason,
            )

    def _log_suppressed(self):
        """One line per reason whose records were not all logged (the
        manifest has been read)."""
        with self._lock:
            self._manifest_read = True
            lines = []
            for reason, count in self._reason_counts.items():
                more = count - _MAX_LOGGED_PER_REASON - self._reason_summarised[reason]
                if more > 0:
                    self._reason_summarised[reason] += more
                    lines.append((more, reason))
        for more, reason in lines:
            logger.warning("mmzoo.data: ... and %d more records skipped: %s", more, reason)

    def pad(self, where, num_frames):
        with self._lock:
            if where in self.padded:
                return
            self.padded[where] = num_frames
        logger.info("mmzoo.data: padded %s (%d frames) by repeating its last frame",
                    where, num_frames)

    def drop_answer(self, answer, hint=None):
        """Counts an example dropped for its out-of-vocabulary `answer`.

        The first drop of each distinct answer is logged as a warning on the
        `mmzoo.data` logger, followed by `hint` when given.
        """
        with self._lock:
            count = self.dropped_answers.get(answer, 0) + 1
            self.dropped_answers[answer] = count
        if count == 1:
            message = f"answer {answer!r} is not in the answer vocabulary"
            if hint:
                message += f"; {hint}"
            logger.warning("mmzoo.data: dropping examples: %s", message)

    def require_examples(self, dataset):
        """Returns `dataset`, after checking that it yields an example.

        Records that fail to decode are only found while the dataset is
        read, so a manifest whose every file is bad makes a dataset with
        nothing in it, which fails much later (an `OutOfRangeError`, or a
        vocabulary trainer's `StopIteration`). This reads `dataset.take(1)`:
        the files up to the first good one are decoded (and any bad ones
        counted here, once).

        Args:
            dataset: `tf.data.Dataset` from the loader that returned this
                report (or a pipeline built on it).

        Returns:
            `dataset`, unchanged.

        Raises:
            ValueError: the dataset is empty; the message names the manifest
                and holds `summary()`.

        Example:

        ```python
        examples, report = mmzoo.data.load_image_caption_files("data/x.csv")
        examples = report.require_examples(examples)
        ```
        """
        if not isinstance(dataset, tf.data.Dataset):
            raise ValueError(
                "`dataset` must be a `tf.data.Dataset`. "
                f"Received: dataset={type(dataset).__name__}"
            )
        for _ in dataset.take(1):
            return dataset
        if self.dropped_answers:
            why = (
                f"{sum(self.dropped_answers.values())} examples were dropped as their "
                f"answers are not in the answer vocabulary and {self.num_skipped} "
                "records were skipped"
            )
        else:
            why = f"all {self.num_records} records were skipped"
        raise ValueError(
            f"No usable examples in {self.manifest_path}: {why}.\n{self.summary()}"
        )

    def summary(self):
        """str. One line per skipped or padded file, after a count line."""
        lines = [
            f"{self.manifest_path}: {self.num_records} records, {self.num_skipped} "
            f"skipped, {len(self.padded)} videos padded"
        ]
        if self.dropped_answers:
            lines[0] += (
                f", {sum(self.dropped_answers.values())} examples dropped (answer not in "
                "the answer vocabulary)"
            )
        lines += [f"  skipped {where}: {reason}" for where, reason in self.skipped.items()]
        lines += [f"  padded {where}: {n} frames" for where, n in self.padded.items()]
        lines += [
            f"  dropped answer {answer!r}: {n} examples"
            for answer, n in self.dropped_answers.items()
        ]
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


def _column_names(columns):
    return ", ".join(f"`{c}`" for c in columns)


def _close_matches(missing, columns):
    """" (did you mean 'captions' for `caption`?)", or "" when none is close."""
    hints = []
    for column in missing:
        close = difflib.get_close_matches(column, [str(c) for c in columns], n=1, cutoff=0.6)
        if close:
            hints.append(f"{close[0]!r} for `{column}`")
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


def _manifest_rows(manifest_path, required, report, strict):
    """Yields (where, row dict) for each record of a JSONL or CSV manifest.

    A CSV header is checked once for the `required` columns: one error,
    rather than one skipped row per line.
    """
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
    # "utf-8-sig" drops a leading byte-order mark (Excel writes one), which
    # would otherwise be part of the first column's name.
    with open(manifest_path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        if _MANIFEST_FORMATS[extension] == "csv":
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise ValueError(
                    "A CSV manifest needs a header row naming its columns "
                    f"{list(required)}; the file is empty. "
                    f"Received: manifest_path={manifest_path!r}"
                )
            missing = [c for c in required if c not in reader.fieldnames]
            if missing:
                raise ValueError(
                    f"{_column_names(missing)} column{'s' if len(missing) > 1 else ''} "
                    f"missing from {name}; the header has {reader.fieldnames}"
                    f"{_close_matches(missing, reader.fieldnames)}. "
                    f"Received: manifest_path={manifest_path!r}"
                )
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


def _json_type(value):
    """The JSON name of a parsed JSON value's type."""
    names = {dict: "object", list: "array", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _text(value, column):
    """`(text, None)` for a string (or number) value, else `(None, reason)`.

    The text is stripped; numbers become their text (`3` -> `"3"`). Other
    JSON values are refused rather than `str()`-ed: a caption `"['a', 'b']"`
    or `"None"` would be trained on.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None, f"`{column}` must be a string; got a JSON {_json_type(value)}"
    value = str(value)
    if _has_bad_utf8(value):
        return None, f"`{column}` is not valid UTF-8"
    return value.strip(), None


def _text_list(value, column, where, report, strict):
    """The good entries of a JSON array in `column`, or None (row skipped).

    Each entry is checked as a single value is; a bad one is skipped alone,
    under `"manifest:line column[i]"`.
    """
    texts = []
    for i, entry in enumerate(value):
        text, reason = _text(entry, f"{column}[{i}]")
        if reason is None and not text:
            reason = f"empty `{column}[{i}]`"
        if reason is not None:
            report.skip(f"{where} {column}[{i}]", reason, strict)
            continue
        texts.append(text)
    if not texts:
        what = "an empty list" if not value else "a list without a usable entry"
        report.skip(where, f"`{column}` is {what}", strict)
        return None
    return texts


def _read_records(
    manifest_path, text_columns, path_column, report, strict, optional=(), lists=()
):
    """Checks each manifest row; returns (absolute path, {column: text}) pairs.

    Columns in `optional` may be missing, null or empty (they then read as
    ""). Columns in `lists` may hold a JSON array of strings: their value is
    then a list of the good entries (bad ones are skipped one by one).
    """
    folder = os.path.dirname(os.path.abspath(manifest_path))
    name = os.path.basename(manifest_path)
    required = (path_column,) + tuple(text_columns)
    records = []
    seen_columns = set()
    for where, row in _manifest_rows(manifest_path, required, report, strict):
        report.num_records += 1
        seen_columns.update(row)
        values = {}
        for column in required + tuple(optional):
            if column not in row and column not in optional:
                report.skip(where, f"no `{column}` column", strict)
                break
            value = row.get(column)
            if value is None and column in optional:
                value = ""
            # csv.DictReader fills the fields a short row lacks with None.
            if value is None and manifest_path.lower().endswith(".csv"):
                report.skip(
                    where, f"no `{column}` value (the row has fewer fields than the header)",
                    strict,
                )
                break
            if isinstance(value, list) and column in lists:
                texts = _text_list(value, column, where, report, strict)
                if texts is None:
                    break
                values[column] = texts
                continue
            text, reason = _text(value, column)
            if reason is None and not text and column not in optional:
                reason = f"empty `{column}`"
            if reason is not None:
                report.skip(where, reason, strict)
                break
            values[column] = text
        else:
            path = os.path.normpath(os.path.join(folder, values.pop(path_column)))
            if not os.path.exists(path):
                report.skip(path, "file not found", strict)
                continue
            records.append((path, values))
    report._log_suppressed()
    absent = [c for c in required if c not in seen_columns]
    if seen_columns and absent:
        # Rows of a JSONL file may differ, so a missing key is skipped row by
        # row; when no row has it at all, the manifest is wrong as a whole.
        raise ValueError(
            f"No record of {name} has a {_column_names(absent)} key; the records "
            f"have the keys {sorted(map(str, seen_columns))}"
            f"{_close_matches(absent, seen_columns)}. "
            f"Received: manifest_path={manifest_path!r}"
        )
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


def _per_pass_source(paths, report, columns=()):
    """`(index, known_good, *columns)` for each record, made anew each pass.

    `known_good` is False for the records whose file is already in
    `report.skipped` (found bad by an earlier pass or iterator, such as
    `require_examples`'): the decode map fails those at once with
    `_unless_known_bad`, so a bad file is decoded once per process and the
    decoder's own message on stderr (libjpeg's "Bogus Huffman table
    definition") is not printed again every epoch. A known bad file fails
    either way, so the elements are the same whatever the mask holds, and an
    iterator checkpoint restored in a new process (nothing known yet) goes
    on exactly. The mask costs one Python call per pass, when the pass
    starts (`flat_map` makes the slices then), and one bool per example.
    """
    count = len(paths)

    def known_good(_):
        skipped = report.skipped
        return np.fromiter((path not in skipped for path in paths), np.bool_, count)

    def source(pass_token):
        # Not `stateful`: under op determinism a stateful op anywhere in the
        # pipeline makes tf.data run every parallel map serially. The input
        # is the dataset's element, not a constant, so it is not folded.
        good = tf.numpy_function(known_good, [pass_token], tf.bool, stateful=False)
        good = tf.ensure_shape(good, (count,))
        return tf.data.Dataset.from_tensor_slices(
            (tf.range(count, dtype=tf.int64), good) + tuple(columns)
        )

    return tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(source)


def _unless_known_bad(known_good, value):
    """`value`, or an op error when its file is known bad (the element is
    then dropped as a decode failure is): nothing that reads the file runs.

    A bare `Assert` (string data only, so no `tf.cond` around it): one op
    per example, and a stateful op that op determinism still lets a
    parallel map run in parallel (TensorFlow exempts `Assert`).
    """
    checked = tf.debugging.Assert(known_good, ["file known bad from an earlier pass"])
    with tf.control_dependencies([checked]):
        return tf.identity(value)


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

    The reporting `tf.numpy_function` is not marked `stateful` although it
    logs: under op determinism (mmzoo's training turns it on) a stateful op
    anywhere in the pipeline makes tf.data run the parallel decode map
    serially. Its side effects are idempotent (`LoadReport.skip` counts a
    file once) and its output is used, so it is neither dropped nor merged.
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
            lambda: tf.numpy_function(report, [expected, index], tf.bool, stateful=False),
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
    Python for the reason, then skips it (or raises when `strict`). A file
    already in the report (a known bad file, or one listed twice) is not
    read again."""

    def on_failure(index):
        path = paths[index]
        if path in report.skipped:
            return
        try:
            read(path)
            reason = f"cannot decode {what} (TensorFlow's decoder rejects it; Pillow reads it)"
        except Exception as e:  # noqa: BLE001 - any failure is the reason
            reason = f"cannot decode {what} ({type(e).__name__}: {e})"
        report.skip(path, reason, strict)

    return on_failure


def _captions_by_image(manifest_path, report, strict):
    """`{absolute image path: [captions]}` of a caption manifest, in file order.

    Rows that list the same image are grouped into one example; the rows are
    checked (and bad ones counted in `report`) as the module docstring says.
    """
    records = _read_records(
        manifest_path, ("caption",), "image_path", report, strict, lists=("caption",)
    )
    _check_no_records(records, manifest_path, report)
    grouped = {}
    for path, values in records:
        caption = values["caption"]
        grouped.setdefault(path, []).extend([caption] if isinstance(caption, str) else caption)
    return grouped


def load_image_caption_files(manifest_path, image_shape=(224, 224), strict=False):
    """Image-caption pairs listed in a JSONL or CSV manifest.

    See the module docstring for the manifest format and the bad-input policy.

    Args:
        manifest_path: str. `.jsonl` or `.csv` file with `image_path` and
            `caption` columns (in JSONL, `caption` may be a list of strings).
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
    train = mmzoo.data.captioning_pipeline(examples, model, batch_size=32)
    ```
    """
    height, width = check_image_shape(image_shape)
    report = LoadReport(manifest_path)
    grouped = _captions_by_image(manifest_path, report, strict)
    paths = list(grouped)
    # The captions of image i are `caption_values[start[i]:start[i] + size[i]]`,
    # sliced by one op per example: a `tf.RaggedTensor` in the per-pass
    # source made TensorFlow's type inference warn (once per process), and
    # indexing one is several ops per example.
    caption_values = tf.constant([c for path in paths for c in grouped[path]], tf.string)
    sizes = np.array([len(grouped[path]) for path in paths], np.int64)
    starts = np.cumsum(sizes) - sizes
    min_size = (width, height)
    path_tensor = _path_tensor(paths)

    def load(index, known_good, path, start, size):
        path = _unless_known_bad(known_good, path)
        pixels = _decode_images_in_graph([path], min_size)[0]
        # The serving signatures of `mmzoo.export` scale with the same helper.
        images = scale_uint8_images(pixels, height, width)
        return index, {"images": images, "captions": tf.slice(caption_values, start, size)}

    columns = (path_tensor, tf.constant(starts[:, None]), tf.constant(sizes[:, None]))
    indexed = _per_pass_source(paths, report, columns).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
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


# Float frames may stray this far outside [0, 1] (rounding; they are
# clipped). Float32, so that numpy and the graph draw the same line.
_FLOAT_LOW = np.float32(-1 / 255)
_FLOAT_HIGH = np.float32(1 + 1 / 255)


def _check_float_frames(frames):
    """Raises `ValueError` naming the problem unless float `frames` are
    finite and within 1/255 of [0, 1] (the numpy twin of `_float_frames_ok`)."""
    if not np.all(np.isfinite(frames)):
        raise ValueError("non-finite values (NaN or inf) in the frames")
    low, high = frames.min(), frames.max()
    if low < _FLOAT_LOW or high > _FLOAT_HIGH:
        if low >= _FLOAT_LOW and high <= 255 + 1 / 255:
            hint = "store uint8, or divide by 255"
        elif low >= -1 - 1 / 255 and high <= _FLOAT_HIGH:
            hint = "map [-1, 1] to [0, 1] with (x + 1) / 2"
        else:
            hint = "rescale them to [0, 1]"
        raise ValueError(
            f"float frames must be in [0, 1]; found values in [{float(low):g}, "
            f"{float(high):g}] ({hint})"
        )


def _float_frames_ok(frames):
    """bool scalar tensor: float `frames` are finite and within 1/255 of [0, 1].

    Three reductions and no per-value bool tensor: a sum is finite only when
    every value is (NaN and inf propagate; finite values large enough to
    overflow it are out of range anyway).
    """
    finite = tf.math.is_finite(tf.reduce_sum(frames))
    in_range = tf.logical_and(
        tf.reduce_min(frames) >= _FLOAT_LOW, tf.reduce_max(frames) <= _FLOAT_HIGH
    )
    return tf.logical_and(finite, in_range)


def _read_frames(path, num_frames, min_size):
    """`num_frames` frames, float32 in [0, 1], and the clip's frame count.

    Only the frames kept are decoded (or read from a memory-mapped .npy).
    Raises on a bad file, and on float frames that are not finite or not
    within 1/255 of [0, 1] (checked on the frames kept).
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
    _check_float_frames(array)
    return np.clip(array.astype("float32"), 0.0, 1.0), count


# How `load_video_qa_files` reads each clip.
_FROM_FOLDER, _FROM_NUMPY, _FROM_NPY_UINT8, _FROM_NPY_FLOAT32 = range(4)


def load_video_qa_files(manifest_path, num_frames=8, image_shape=(64, 64), strict=False):
    """Video question-answer records listed in a JSONL or CSV manifest.

    See the module docstring for the manifest format, the video formats, the
    bad-input policy (float clips with NaN/inf, or outside [0, 1] by more
    than 1/255, are skipped as undecodable) and the short-video policy (pad
    with the last frame).

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
    examples = report.require_examples(examples)
    train = mmzoo.data.video_qa_pipeline(
        examples, model, batch_size=16, answer_vocabulary=answers, report=report)
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

    # Each way returns the frames and whether they are usable: the check is
    # asserted after `tf.switch_case`, since an `Assert` inside a branch makes
    # the `Case` op stateful, and under op determinism tf.data then runs the
    # whole map serially.
    def from_folder(index):
        frames = _decode_images_in_graph(
            [frame_tensor[index, t] for t in range(num_frames)], min_size
        )
        return tf.cast(frames, tf.float32) / 255.0, tf.constant(True)

    def from_array(index):
        frames = tf.numpy_function(read_array, [path_tensor[index]], tf.float32, stateful=False)
        return frames, tf.constant(True)

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
            return tf.cast(frames, tf.float32) / 255.0, tf.constant(True)
        return tf.clip_by_value(frames, 0.0, 1.0), _float_frames_ok(frames)

    resize = ops.resize((height, width), key="videos")

    def load(index, known_good):
        index = _unless_known_bad(known_good, index)
        frames, usable = tf.switch_case(
            kind[index],
            {
                _FROM_FOLDER: lambda: from_folder(index),
                _FROM_NUMPY: lambda: from_array(index),
                _FROM_NPY_UINT8: lambda: from_npy(index, tf.uint8),
                _FROM_NPY_FLOAT32: lambda: from_npy(index, tf.float32),
            },
        )
        # A failed element is dropped and reported by `_skipping_failures`;
        # `_read_frames` finds the reason (the same check, in numpy).
        checked = tf.debugging.Assert(usable, ["float frames not finite or not in [0, 1]"])
        with tf.control_dependencies([checked]):
            frames = tf.ensure_shape(frames, (num_frames, None, None, 3))
        example = {"videos": frames, **{key: text[index] for key, text in texts.items()}}
        return index, resize(example)

    indexed = _per_pass_source(paths, report).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    on_failure = _failure_reporter(
        paths, lambda path: _read_frames(path, num_frames, min_size), report, strict, "video"
    )
    return _skipping_failures(indexed, len(records), on_failure, strict), report
