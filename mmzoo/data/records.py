"""TFRecord shards: a manifest packed once, then read fast.

`pack_records` writes the examples of a manifest as TFRecord shards:

* an image-caption manifest (`image_path, caption` rows, as
  `mmzoo.data.load_image_caption_files` reads): one record per image with
  its captions; the image file's encoded bytes are kept as they are (a JPEG
  or PNG; an image in any other format Pillow reads is stored as a lossless
  PNG of its RGB pixels);
* a video QA manifest (`video_path, question, answer[, question_type]`
  rows, as `mmzoo.data.load_video_qa_files` reads): one record per clip
  with all its questions; a frame folder's JPEG / PNG files are kept as
  they are, the frames of a `.npy` / `.npz` array stored as PNGs (float
  frames rounded to uint8: within half a level of what the manifest loader
  reads). Every frame is kept; the frames used are chosen when reading.

`load_tfrecords` reads them back as the examples the manifest loaders give,
decoded in the `tf.data` graph by the same decoders (bit for bit, but for
float arrays), so the pipelines, models and recipes take either source.

An output directory holds:

    schema.json                             written last: the pack is finished
    image_caption-00000-of-00008.tfrecord   the shards (video_qa-... for clips)
    .pack/                                  only while packing (plan, finished shards)

Packing is resumable: shards are written under a temporary name and renamed
when complete, so a shard file never looks finished when it is not. Run the
same `pack_records` call again after an interruption (a crash, SIGKILL, a
full disk) and the shards already finished are kept; only the rest are
written. Images and clips are checked (decoded by Pillow, arrays checked as
the manifest loader checks them) while packing: a missing or undecodable
file, like a bad manifest row, is skipped, counted and named in the returned
`LoadReport` (or raises with `strict=True`), as the manifest loaders do.

Reading checks each shard's size against the schema when `load_tfrecords`
is called: a missing or truncated shard is skipped as a whole and named in
the report (`strict=True` raises). A record that fails its checksum is found
while the dataset is read; TensorFlow reads no record of that shard after
it, so that record and the rest of its shard are skipped, each named (shard
file and record index) with the reason. An image TensorFlow cannot decode is
skipped the same way.

Under `tf.distribute`, `load_tfrecords(..., input_context=context)` reads and
decodes only one input pipeline's share (whole shards when there are at
least as many shards as pipelines, records by position otherwise), for
`strategy.distribute_datasets_from_function` or `Trainer.fit(dataset_fn)`.
`shuffle_buffer=` shuffles the encoded records before they are decoded.

Example:

```python
report = mmzoo.data.pack_records("data/train.jsonl", "data/train_records", num_shards=16)
examples, report = mmzoo.data.load_tfrecords("data/train_records", image_shape=(64, 64))
train = mmzoo.data.captioning_pipeline(examples, model, batch_size=32)
```

From the command line: `mmzoo data pack data/train.jsonl data/train_records
--num-shards 16`, then `mmzoo train image_captioning --data
tfrecord:data/train_records` (or `mmzoo train video_qa` for clips).
"""

import concurrent.futures
import csv
import hashlib
import io
import json
import os
import re
import shutil
import struct
import threading

import numpy as np
import PIL.Image
import tensorflow as tf

from mmzoo.data._checks import check_image_shape
from mmzoo.data._checks import check_int
from mmzoo.data.files import LoadReport
from mmzoo.data.files import _FRAME_EXTENSIONS
from mmzoo.data.files import _captions_by_image
from mmzoo.data.files import _check_no_records
from mmzoo.data.files import _read_array
from mmzoo.data.files import _read_frames
from mmzoo.data.files import _read_records
from mmzoo.data.files import _placeholder
from mmzoo.data.images import decode_jpegs_covering
from mmzoo.data.images import resize_images
from mmzoo.data.images import scale_uint8_images

SCHEMA_FILE = "schema.json"
FORMAT = "mmzoo.tfrecords"
VERSION = 1
KINDS = ("image_caption", "video_qa")
_PACK_DIR = ".pack"
_PLAN_FILE = "plan.json"
_FEATURES = {
    "image_caption": {
        "image": "the image file's bytes: JPEG or PNG (other formats stored as PNG)",
        "captions": "the image's captions, UTF-8 strings",
        "source": "the image file's path when packed",
    },
    "video_qa": {
        "frames": "the clip's frames, JPEG or PNG bytes (a folder's files as they are; "
                  "an array's frames as PNG)",
        "question": "the clip's questions, UTF-8 strings (one example each)",
        "answer": "their answers",
        "question_type": "their question types ('' when the manifest has none)",
        "source": "the clip's path when packed",
    },
}
_SHARD_PATTERN = re.compile(r"^[a-z_]+-\d{5}-of-\d{5}\.tfrecord$")
_PARTIAL_PATTERN = re.compile(
    r"^\.([a-z_]+-\d{5}-of-\d{5}\.tfrecord|schema\.json)\.[\d-]+\.partial$"
)


def shard_name(kind, index, num_shards):
    """`kind-00003-of-00016.tfrecord`."""
    return f"{kind}-{index:05d}-of-{num_shards:05d}.tfrecord"


# ------------------------------------------------------------------ writing
def _temporary_path(path):
    """A name beside `path` for its write in progress (one per process and thread).

    Opened with a plain `open`, it gets the permissions the umask gives
    (`tempfile.mkstemp` would make it private, and the rename keep that).
    """
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{os.getpid()}-{threading.get_ident()}.partial")


def _write_json(path, value):
    """Writes `value` as JSON to `path` atomically (temporary file, rename)."""
    tmp = _temporary_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _own_entries(entries):
    """The entries of a directory that a pack writes."""
    return {
        e for e in entries
        if e in (SCHEMA_FILE, _PACK_DIR) or _SHARD_PATTERN.match(e) or _PARTIAL_PATTERN.match(e)
    }


def _remove_own(output_dir):
    for entry in _own_entries(os.listdir(output_dir)):
        path = os.path.join(output_dir, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _listed(entries, limit=8):
    entries = sorted(entries)
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def _check_output(output_dir, overwrite):
    """Refuses an `output_dir` that packing may not write (before any work).

    Never deletes a file that a pack did not write: a directory that holds
    other files is refused, with or without `overwrite`.
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"`output_dir` is a file. Received: output_dir={output_dir!r}")
    entries = set(os.listdir(output_dir)) if os.path.isdir(output_dir) else set()
    foreign = entries - _own_entries(entries)
    if foreign:
        raise ValueError(
            f"`output_dir` holds files that mmzoo did not pack ({_listed(foreign)}); records "
            "are packed into a new or empty directory, or over an earlier pack. "
            f"Received: output_dir={output_dir!r}"
        )
    if SCHEMA_FILE in entries and not overwrite:
        raise ValueError(
            "`output_dir` already holds packed records (schema.json). Pass "
            "overwrite=True (`--overwrite`) to pack them again, or choose another "
            f"directory. Received: output_dir={output_dir!r}"
        )
    return entries


def _prepare_output(output_dir, plan, overwrite):
    """Makes `output_dir` ready for `plan`; returns the shards already finished."""
    pack_dir = os.path.join(output_dir, _PACK_DIR)
    entries = _check_output(output_dir, overwrite)
    finished = set()
    if SCHEMA_FILE in entries:  # overwrite=True
        _remove_own(output_dir)
    elif _PACK_DIR in entries:
        try:
            earlier = _read_json(os.path.join(pack_dir, _PLAN_FILE))
        except (OSError, ValueError):
            earlier = None
        if earlier == plan:
            # The same pack, interrupted: keep the shards it finished.
            for index in range(plan["num_shards"]):
                done = os.path.join(pack_dir, f"{index:05d}.json")
                name = shard_name(plan["kind"], index, plan["num_shards"])
                if os.path.exists(done) and os.path.exists(os.path.join(output_dir, name)):
                    finished.add(index)
            for entry in entries:
                if _PARTIAL_PATTERN.match(entry):
                    os.remove(os.path.join(output_dir, entry))
            return finished
        if not overwrite:
            raise ValueError(
                "`output_dir` holds an unfinished pack of another manifest, manifest "
                "content or shard count. Run that pack again to finish it, or pass "
                "overwrite=True (`--overwrite`) to start this one over it. "
                f"Received: output_dir={output_dir!r}"
            )
        _remove_own(output_dir)
    elif entries:  # only leftover partial shards
        _remove_own(output_dir)
    os.makedirs(pack_dir, exist_ok=True)
    _write_json(os.path.join(pack_dir, _PLAN_FILE), plan)
    return finished


def _stored_image(path):
    """`(bytes to store, (width, height))` for the image file `path`.

    A JPEG or PNG is stored as it is; any other format Pillow reads as a
    PNG of its RGB pixels. Raises when the file does not decode.
    """
    with PIL.Image.open(path) as image:
        image.load()  # Decodes fully: truncated and corrupt files raise here.
        if image.format in ("JPEG", "PNG"):  # told by content, not the name
            with open(path, "rb") as f:
                data = f.read()
        else:
            data = _png(image.convert("RGB"))
        return data, image.size


def _png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _stored_frames(path):
    """The encoded frames to store for a clip; raises when it does not decode.

    A frame folder's JPEG / PNG files are stored as they are (in file-name
    order); the frames of a `.npy` / `.npz` array as PNGs (float frames,
    checked to be finite and in [0, 1], rounded to uint8).
    """
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(_FRAME_EXTENSIONS))
        if not names:
            raise ValueError(f"no {'/'.join(_FRAME_EXTENSIONS)} frames in the folder")
        frames, sizes = [], set()
        for name in names:
            data, size = _stored_image(os.path.join(path, name))
            frames.append(data)
            sizes.add(size)
        if len(sizes) > 1:
            raise ValueError("frames differ in size")
        return frames
    count = _read_array(path).shape[0]
    pixels, _ = _read_frames(path, count, None)  # float32 in [0, 1], checked
    pixels = np.round(pixels * 255.0).astype(np.uint8)
    return [_png(PIL.Image.fromarray(frame)) for frame in pixels]


def _bytes_feature(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _utf8(texts):
    return [t.encode("utf-8", errors="surrogateescape") for t in texts]


def _example(features):
    return tf.train.Example(features=tf.train.Features(feature={
        name: _bytes_feature(values) for name, values in features.items()
    })).SerializeToString(deterministic=True)


def _image_caption_example(path, captions):
    """A record of an image and its captions (raises if the image does not decode)."""
    image, _ = _stored_image(path)
    return _example({"image": [image], "captions": _utf8(captions), "source": _utf8([path])})


def _video_qa_example(path, qas):
    """A record of a clip and all its question-answer rows (decoded once when read)."""
    return _example({
        "frames": _stored_frames(path),
        **{key: _utf8(qa[key] for qa in qas) for key in ("question", "answer", "question_type")},
        "source": _utf8([path]),
    })


def _video_qa_rows(manifest_path, report, strict):
    """`{absolute video path: [{question, answer, question_type}]}`, in file order."""
    records = _read_records(
        manifest_path, ("question", "answer"), "video_path", report, strict,
        optional=("question_type",),
    )
    _check_no_records(records, manifest_path, report)
    grouped = {}
    for path, values in records:
        grouped.setdefault(path, []).append(values)
    return grouped


def _manifest_kind(manifest_path):
    """`video_qa` when the manifest has a `video_path` column, else `image_caption`."""
    try:
        with open(manifest_path, encoding="utf-8-sig", errors="replace", newline="") as f:
            if manifest_path.lower().endswith(".csv"):
                columns = next(csv.reader(f), [])
            else:
                line = next((line for line in f if line.strip()), "{}")
                row = json.loads(line)
                columns = list(row) if isinstance(row, dict) else []
    except (OSError, ValueError):
        return "image_caption"  # its loader names the problem
    return "video_qa" if "video_path" in columns else "image_caption"


class _Progress:
    """A `keras.utils.Progbar` over images or clips, updated from the writer threads."""

    def __init__(self, total, verbose, unit):
        self._lock = threading.Lock()
        self._bar = None
        if verbose and total:
            import keras

            self._bar = keras.utils.Progbar(total, unit_name=unit)

    def add(self):
        if self._bar is not None:
            with self._lock:
                self._bar.add(1)


def pack_records(manifest_path, output_dir, num_shards=8, overwrite=False, strict=False,
                 num_threads=None, verbose=True):
    """Packs an image-caption or video QA manifest into TFRecord shards.

    See the module docstring for what is stored. The kind of manifest is
    told by its columns (`video_path`: video QA).

    Examples are assigned to shards in manifest order (shard `i` holds a
    contiguous slice), so the same call always writes the same shards, and
    an interrupted call run again keeps what it finished.

    Args:
        manifest_path: str. A JSONL or CSV manifest with `image_path` and
            `caption` columns (as `mmzoo.data.load_image_caption_files`), or
            `video_path`, `question`, `answer` and optional
            `question_type` columns (as `mmzoo.data.load_video_qa_files`).
        output_dir: str. A new or empty directory, an earlier pack of the
            same call (finished shards are kept), or an earlier pack to
            replace with `overwrite=True`. A directory holding other files is
            refused: nothing that mmzoo did not write is deleted.
        num_shards: int. At most the number of usable examples; use at
            least as many as the workers that will read them.
        overwrite: bool. Replace a finished earlier pack, or an unfinished
            pack of another manifest or shard count.
        strict: bool. Raise at the first bad record or image instead of
            skipping it.
        num_threads: int or None. Shards written at once (default: one per
            CPU core, at most `num_shards`).
        verbose: bool. Show a progress bar.

    Returns:
        The `LoadReport`: records read and those skipped, with reasons (the
        skips of shards finished by an earlier, interrupted call included).

    Example:

    ```python
    report = mmzoo.data.pack_records("data/captions.jsonl", "data/records", num_shards=4)
    print(report.summary())
    ```
    """
    num_shards = check_int("num_shards", num_shards, 1)
    if num_threads is not None:
        num_threads = check_int("num_threads", num_threads, 1)
    output_dir = os.fspath(output_dir)
    _check_output(output_dir, overwrite)
    report = LoadReport(manifest_path)
    kind = _manifest_kind(manifest_path)
    rows = _video_qa_rows if kind == "video_qa" else _captions_by_image
    write_example = _video_qa_example if kind == "video_qa" else _image_caption_example
    items = list(rows(manifest_path, report, strict).items())
    if num_shards > len(items):
        raise ValueError(
            f"`num_shards` must be at most the number of usable examples ({len(items)}): "
            f"a shard would be empty. Received: num_shards={num_shards}"
        )
    fingerprint = hashlib.sha256(json.dumps(items).encode("utf-8", "surrogateescape"))
    plan = {
        "kind": kind, "num_shards": num_shards, "source": os.path.abspath(manifest_path),
        "content_sha256": fingerprint.hexdigest(),
    }
    finished = _prepare_output(output_dir, plan, overwrite)
    pack_dir = os.path.join(output_dir, _PACK_DIR)
    bounds = [round(i * len(items) / num_shards) for i in range(num_shards + 1)]
    todo = [i for i in range(num_shards) if i not in finished]
    progress = _Progress(
        sum(bounds[i + 1] - bounds[i] for i in todo), verbose,
        "clip" if kind == "video_qa" else "image",
    )

    def write_shard(index):
        name = shard_name(kind, index, num_shards)
        tmp = _temporary_path(os.path.join(output_dir, name))
        skipped, num_records, num_examples = {}, 0, 0
        try:
            with tf.io.TFRecordWriter(tmp) as writer:
                for path, values in items[bounds[index]:bounds[index + 1]]:
                    progress.add()
                    try:
                        record = write_example(path, values)
                    except Exception as e:  # noqa: BLE001 - any failure is the reason
                        what = "video" if kind == "video_qa" else "image"
                        reason = f"cannot decode {what} ({type(e).__name__}: {e})"
                        report.skip(path, reason, strict)
                        skipped[path] = reason
                        continue
                    writer.write(record)
                    num_records += 1
                    num_examples += len(values) if kind == "video_qa" else 1
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(output_dir, name))
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        # Written after the shard's rename: a shard counts as finished only
        # when both are there.
        _write_json(os.path.join(pack_dir, f"{index:05d}.json"), {
            "num_records": num_records, "num_examples": num_examples, "skipped": skipped,
        })

    if todo:
        threads = num_threads or min(len(todo), os.cpu_count() or 1)
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(write_shard, index) for index in todo]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                # Shards not started are not written; those being written
                # finish (a rerun keeps them).
                for future in futures:
                    future.cancel()
                raise
    shards = []
    for index in range(num_shards):
        done = _read_json(os.path.join(pack_dir, f"{index:05d}.json"))
        for path, reason in done["skipped"].items():
            if index in finished:  # skipped by the earlier call: counted, not logged again
                with report._lock:
                    report.skipped.setdefault(path, reason)
        name = shard_name(kind, index, num_shards)
        shards.append({
            "file": name, "num_records": done["num_records"],
            "num_examples": done["num_examples"],
            "num_bytes": os.path.getsize(os.path.join(output_dir, name)),
        })
    _write_json(os.path.join(output_dir, SCHEMA_FILE), {
        "format": FORMAT, "version": VERSION, "kind": kind, "features": _FEATURES[kind],
        "num_examples": sum(s["num_examples"] for s in shards),
        "manifest_rows": report.num_records, "num_skipped": report.num_skipped,
        "source": plan["source"], "shards": shards,
    })
    shutil.rmtree(pack_dir)
    report._log_suppressed()
    return report


# ------------------------------------------------------------------ reading
def read_schema(directory):
    """The `schema.json` of a directory of packed records, checked.

    Raises:
        ValueError: no such directory, a pack that did not finish, no
            schema, or a schema of another format, version or kind.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(
            f"No directory of packed records at this path. Received: directory={directory!r}"
        )
    path = os.path.join(directory, SCHEMA_FILE)
    if not os.path.exists(path):
        if os.path.isdir(os.path.join(directory, _PACK_DIR)):
            raise ValueError(
                "Packing into this directory did not finish (no schema.json yet); run the "
                "same `mmzoo data pack` (or `pack_records`) again to finish it. "
                f"Received: directory={directory!r}"
            )
        raise ValueError(
            "No schema.json: not a directory of records packed by `mmzoo data pack`. "
            f"Received: directory={directory!r}"
        )
    try:
        schema = _read_json(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"Cannot read {path} ({type(e).__name__}: {e}).") from None
    if not isinstance(schema, dict) or schema.get("format") != FORMAT:
        raise ValueError(f"{path} is not an mmzoo records schema (no \"format\": {FORMAT!r}).")
    if schema.get("version") != VERSION or schema.get("kind") not in KINDS:
        raise ValueError(
            f"{path} describes records of version {schema.get('version')!r}, kind "
            f"{schema.get('kind')!r}; this mmzoo reads version {VERSION} of {list(KINDS)}."
        )
    shards = schema.get("shards")
    if not isinstance(shards, list) or not all(
        isinstance(s, dict) and isinstance(s.get("file"), str)
        and all(isinstance(s.get(key), int) for key in ("num_records", "num_examples",
                                                        "num_bytes"))
        for s in shards
    ) or not isinstance(schema.get("num_examples"), int):
        raise ValueError(
            f"{path} is damaged: `shards` must list each shard's `file`, `num_records`, "
            f"`num_examples` and `num_bytes`, with the total `num_examples`."
        )
    return schema


_CRC_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0x82F63B78 if _crc & 1 else _crc >> 1
    _CRC_TABLE.append(_crc)


def _masked_crc32c(data):
    """The TFRecord checksum of `data` (CRC-32C, masked)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class _ShardProblems:
    """Why a record of a shard was not read; found in Python, only on failure."""

    def __init__(self, report, strict, kind):
        self._report = report
        self._strict = strict
        self._feature = "frames" if kind == "video_qa" else "image"
        self._lock = threading.Lock()
        self._offsets = {}  # shard -> [(offset, length)] of its framed records
        self._ends = {}  # shard -> why the framing stops where it does
        self._first_corrupt = {}

    def _frame(self, path):
        offsets, end = [], "end of file"
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            while True:
                header = f.read(12)
                if not header:
                    break
                if len(header) < 12:
                    end = "truncated inside a record header"
                    break
                length, crc = struct.unpack("<QI", header)
                if _masked_crc32c(header[:8]) != crc:
                    end = "a record header fails its checksum"
                    break
                start = f.tell()
                f.seek(length + 4, os.SEEK_CUR)
                if f.tell() > size:
                    end = "truncated inside a record"
                    break
                offsets.append((start, length))
        return offsets, end

    def reason(self, path, index):
        with self._lock:
            if path not in self._offsets:
                self._offsets[path], self._ends[path] = self._frame(path)
            offsets = self._offsets[path]
            if index >= len(offsets):
                return (f"unreadable: the shard holds {len(offsets)} whole records "
                        f"({self._ends[path]})")
            start, length = offsets[index]
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(length)
                (crc,) = struct.unpack("<I", f.read(4))
            if _masked_crc32c(data) != crc:
                self._first_corrupt.setdefault(path, index)
                return "fails its checksum (a corrupt record)"
            first = self._first_corrupt.get(path)
            if first is not None and index > first:
                return (f"unreadable: after record {first}, which fails its checksum "
                        "(a shard is not read past a corrupt record)")
        feature = self._feature
        what = "video" if feature == "frames" else "image"
        try:
            example = tf.train.Example.FromString(data)
            for image in example.features.feature[feature].bytes_list.value:
                with PIL.Image.open(io.BytesIO(image)) as decoded:
                    decoded.load()
            return (f"cannot decode {what} (TensorFlow's decoder rejects it; Pillow reads "
                    f"{'every frame' if what == 'video' else 'it'})")
        except Exception as e:  # noqa: BLE001 - any failure is the reason
            return f"cannot decode {what} ({type(e).__name__}: {e})"

    def on_failure(self, index, path):
        path = path.decode("utf-8", errors="surrogateescape")
        where = f"{path} record {index}"
        if where in self._report.skipped:
            return
        self._report.skip(where, self.reason(path, index), self._strict)


# Records whose (shard, index) each record carries past the decoding (see
# `load_tfrecords`): up to this many failures in a row are named.
_HISTORY = 16


def _frame_positions(count, num_frames):
    """int64 `(num_frames,)`: `mmzoo.data.files._frame_indices` in the graph.

    Evenly spaced frames of a long clip (numpy's `linspace(...).round()`,
    ties to even), the last frame repeated for a short one.
    """
    if num_frames == 1:
        return tf.zeros([1], tf.int64)
    last = tf.cast(count - 1, tf.float64)
    spaced = tf.round(tf.range(num_frames, dtype=tf.float64) * (last / (num_frames - 1)))
    spaced = tf.concat([spaced[:-1], [last]], axis=0)
    return tf.cond(
        count >= num_frames,
        lambda: tf.cast(spaced, tf.int64),
        lambda: tf.minimum(tf.range(num_frames, dtype=tf.int64), count - 1),
    )


def load_tfrecords(directory, image_shape=(224, 224), num_frames=8, strict=False, kind=None,
                   input_context=None, shuffle_buffer=None, seed=None):
    """The examples of a directory written by `pack_records`.

    Shards are read in parallel, interleaved one record at a time (so the
    order is not the manifest's), and decoded in parallel, deterministically:
    the same directory gives the same sequence every time. A video QA
    record holds a clip and all its questions: the clip is decoded once and
    gives one example per question.

    Args:
        directory: str. What `pack_records` (`mmzoo data pack`) wrote.
        image_shape: (height, width) or (height, width, 3). Output image
            (or frame) size.
        num_frames: int >= 1. Frames per clip (video QA records), chosen
            as `load_video_qa_files` does: evenly spaced, the last frame
            repeated for a shorter clip. Only those are decoded.
        strict: bool. Raise at a missing, truncated or corrupt shard or an
            undecodable image or clip instead of skipping it.
        kind: None, `"image_caption"` or `"video_qa"`: the kind of records
            expected (an error names both when the directory holds the
            other); None takes what it holds.
        input_context: a `tf.distribute.InputContext`, or None to read
            everything. With one, this input pipeline reads and decodes only
            its share: the shards `input_pipeline_id::num_input_pipelines`
            when there are at least as many shards as pipelines, otherwise
            the records at those positions of every shard (each shard is
            then read through, but only its share decoded). The pipelines
            together see every example once per pass. Batch the share at
            `input_context.get_per_replica_batch_size(global_batch)` and do
            not give the pipeline the context again (it would shard again).
        shuffle_buffer: int or None. Shuffle this many encoded records
            before decoding, anew in every pass (`seed` fixes the order).
            Then give the pipeline `shuffle_buffer=None`: its buffer would
            hold decoded images, and a `tf.data` iterator's checkpoint holds
            its buffers (at 224px, 1,024 decoded images made 365 MiB a
            checkpoint in `benchmarks/resume_state.py`; records are the
            size of the packed files).
        seed: int or None. The shuffle's seed.

    Returns:
        `(dataset, report)`: an unbatched `tf.data.Dataset` of the dicts the
        manifest loaders give (`load_image_caption_files`: `images` float32
        `(height, width, 3)` in [0, 1] and `captions` string
        `(num_captions,)`; `load_video_qa_files`: `videos` float32
        `(num_frames, height, width, 3)`, `questions`, `answers`,
        `question_types`), and a `LoadReport` of what was skipped while
        reading.

    Example:

    ```python
    examples, report = mmzoo.data.load_tfrecords(
        "data/records", image_shape=(64, 64), shuffle_buffer=1024, seed=0)
    examples = report.require_examples(examples)
    train = mmzoo.data.captioning_pipeline(examples, model, batch_size=64,
                                           shuffle_buffer=None)
    ```
    """
    schema = read_schema(directory)
    height, width = check_image_shape(image_shape)
    num_frames = check_int("num_frames", num_frames, 1)
    if shuffle_buffer is not None:
        check_int("shuffle_buffer", shuffle_buffer, 1)
    if seed is not None:
        check_int("seed", seed, 0)
    if kind is not None and kind != schema["kind"]:
        raise ValueError(
            f"{directory} holds {schema['kind']} records; {kind} records are needed here. "
            f"Received: directory={directory!r}"
        )
    kind = schema["kind"]
    directory = os.fspath(directory)
    entries, stride, start = schema["shards"], 1, 0
    if input_context is not None:
        if not isinstance(input_context, tf.distribute.InputContext):
            raise ValueError(
                "`input_context` must be a `tf.distribute.InputContext` or None. "
                f"Received: input_context={input_context!r}"
            )
        pipelines = input_context.num_input_pipelines
        pipeline = input_context.input_pipeline_id
        if len(entries) >= pipelines:
            entries = entries[pipeline::pipelines]  # whole shards
        else:
            stride, start = pipelines, pipeline  # records by position
    report = LoadReport(directory)
    # The examples of this share (records for video QA shared by position).
    report.num_records = sum(
        e["num_examples"] if stride == 1 else len(range(start, e["num_records"], stride))
        for e in entries
    )
    shards, counts = [], []
    for entry in entries:
        path = os.path.join(directory, entry["file"])
        if not os.path.exists(path):
            report.skip(path, "shard missing", strict)
        elif os.path.getsize(path) != entry["num_bytes"]:
            report.skip(
                path,
                f"truncated or changed: {os.path.getsize(path)} bytes, {entry['num_bytes']} "
                "when packed",
                strict,
            )
        else:
            shards.append(path.encode("utf-8", errors="surrogateescape"))
            counts.append(entry["num_records"])
    report._log_suppressed()
    if not shards:
        raise ValueError(f"No readable shard in {directory}.\n{report.summary()}")
    min_size = (width, height)
    problems = _ShardProblems(report, strict, kind)

    def decode_images(contents):
        """uint8 `(len(contents), h, w, 3)` from JPEG (at a DCT scale) or PNG bytes."""
        pixels = tf.cond(
            tf.io.is_jpeg(contents[0]),
            lambda: decode_jpegs_covering(contents, min_size),
            lambda: tf.stack([tf.io.decode_png(c, channels=3, dtype=tf.uint8)
                              for c in contents]),
        )
        return tf.ensure_shape(pixels, (len(contents), None, None, 3))

    if kind == "video_qa":
        features = {"frames": tf.io.VarLenFeature(tf.string)}
        features.update({key: tf.io.VarLenFeature(tf.string)
                         for key in ("question", "answer", "question_type")})
        texts = {"questions": "question", "answers": "answer", "question_types": "question_type"}

        def decode(record):
            parsed = tf.io.parse_single_example(record, features)
            frames = tf.sparse.to_dense(parsed["frames"])
            positions = _frame_positions(tf.shape(frames, out_type=tf.int64)[0], num_frames)
            chosen = tf.gather(frames, positions)
            pixels = decode_images([chosen[t] for t in range(num_frames)])
            videos = resize_images(tf.cast(pixels, tf.float32) / 255.0, height, width)
            return {
                "videos": tf.clip_by_value(videos, 0.0, 1.0),
                **{key: tf.sparse.to_dense(parsed[column]) for key, column in texts.items()},
            }

        example_spec = {
            "videos": tf.TensorSpec((num_frames, height, width, 3), tf.float32),
            **{key: tf.TensorSpec((None,), tf.string) for key in texts},
        }
    else:
        features = {
            "image": tf.io.FixedLenFeature([], tf.string),
            "captions": tf.io.VarLenFeature(tf.string),
        }

        def decode(record):
            parsed = tf.io.parse_single_example(record, features)
            pixels = decode_images([parsed["image"]])[0]
            return {
                "images": scale_uint8_images(pixels, height, width),
                "captions": tf.sparse.to_dense(parsed["captions"]),
            }

        example_spec = {
            "images": tf.TensorSpec((height, width, 3), tf.float32),
            "captions": tf.TensorSpec((None,), tf.string),
        }

    num_shards = len(shards)
    counts = tf.constant(counts, tf.int64)

    def read_shard(shard):
        # A record that fails its checksum ends the shard (TensorFlow reads
        # no further); a sentinel (index = the shard's count) follows the
        # records, so that the gap check below sees where it ended.
        records = tf.data.TFRecordDataset(tf.gather(paths, shard)).enumerate().ignore_errors()
        if stride > 1:  # this pipeline's positions only, before decoding
            records = records.filter(lambda index, record: index % stride == start)
        sentinel = tf.data.Dataset.from_tensors((tf.gather(counts, shard), tf.constant("")))
        return records.concatenate(sentinel).map(lambda index, record: (shard, index, record))

    def report_gap(shard, first, stop):
        for index in range(int(first), int(stop), stride):
            problems.on_failure(index, shards[int(shard)])
        return np.bool_(True)

    def is_record(shard, index):
        # Not a sentinel (the one after each shard, or the one after all).
        return tf.logical_and(shard >= 0, index < tf.gather(counts, tf.maximum(shard, 0)))

    def read_check(expected, element):
        # In read order, each shard's records come with increasing indices
        # (of this share's positions: `start`, `start + stride`, ...). A gap
        # is where TensorFlow stopped reading a shard (a record that fails
        # its checksum ends it): the sentinel after the records shows it.
        # Python runs only then, to name the records and why; with `strict`
        # the gap travels with the element and is raised after decoding
        # (`ignore_errors` there would swallow an error raised here).
        shard, index, record = element
        next_index = tf.gather(expected, shard)
        gap = index > next_index
        if strict:
            reported = tf.constant(True)
            first, stop = tf.where(gap, next_index, 0), tf.where(gap, index, 0)
        else:
            reported = tf.cond(
                gap,
                lambda: tf.numpy_function(report_gap, [shard, next_index, index], tf.bool,
                                          stateful=False),
                lambda: tf.constant(True),
            )
            first = stop = tf.constant(0, tf.int64)
        expected = tf.tensor_scatter_nd_update(expected, [[shard]], [index + stride])
        keep = tf.logical_and(tf.logical_or(is_record(shard, index), stop > first), reported)
        return expected, (shard, index, record, first, stop, keep)

    def remember(history, element):
        # Each record carries the (shard, index) of the `_HISTORY` records
        # before it (newest first), so that one whose decoding fails, and
        # which `ignore_errors` drops, can still be named after a shuffle.
        shard, index, record, first, stop = element
        return (
            tf.concat([[[shard, index]], history[:-1]], axis=0),
            (shard, index, record, first, stop, history),
        )

    def decode_or_placeholder(position, element):
        shard, index, record, first, stop, history = element
        example = tf.cond(
            is_record(shard, index),
            lambda: decode(record),
            lambda: tf.nest.map_structure(_placeholder, example_spec),
        )
        return position, shard, index, first, stop, history, example

    def report_lost(lost, history):
        for shard, index in history[:min(int(lost), _HISTORY)]:
            problems.on_failure(int(index), shards[int(shard)])
        if lost > _HISTORY:
            report.skip(
                f"{directory}: {int(lost) - _HISTORY} more records",
                f"cannot decode (more than {_HISTORY} in a row failed; not named)",
                strict,
            )
        return np.bool_(True)

    def decode_check(expected, element):
        # Decoding keeps the order, so a position missing after
        # `ignore_errors` is a record that failed to decode; the next
        # record's history names it.
        position, shard, index, first, stop, history, example = element
        reported = tf.cond(
            position > expected,
            lambda: tf.numpy_function(report_lost, [position - expected, history], tf.bool,
                                      stateful=False),
            lambda: tf.constant(True),
        )
        read_reported = tf.cond(  # with `strict` only (see `read_check`)
            stop > first,
            lambda: tf.numpy_function(report_gap, [shard, first, stop], tf.bool,
                                      stateful=False),
            lambda: tf.constant(True),
        )
        real = tf.logical_and(is_record(shard, index), tf.logical_and(reported, read_reported))
        return position + 1, (example, real)

    paths = tf.constant(shards, tf.string)
    # Raw records of the shards, one at a time from each in turn.
    dataset = tf.data.Dataset.range(num_shards).interleave(
        read_shard, cycle_length=min(num_shards, 8), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    )
    dataset = dataset.scan(tf.fill([num_shards], tf.constant(start, tf.int64)), read_check)
    dataset = dataset.filter(lambda shard, index, record, first, stop, keep: keep).map(
        lambda shard, index, record, first, stop, keep: (shard, index, record, first, stop)
    )
    if shuffle_buffer:
        # Encoded records, not decoded pixels, wait in the buffer (and in
        # the iterator's checkpoint).
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    none = tf.constant(-1, tf.int64)
    end = tf.data.Dataset.from_tensors(
        (none, none, tf.constant(""), tf.constant(0, tf.int64), tf.constant(0, tf.int64))
    )
    dataset = dataset.concatenate(end)  # names failures among the last records
    dataset = dataset.scan(tf.fill([_HISTORY, 2], tf.constant(-1, tf.int64)), remember)
    # One parallel decode for all the shards (faster than a decode per shard).
    dataset = dataset.enumerate().map(
        decode_or_placeholder, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = dataset.ignore_errors().scan(tf.constant(0, tf.int64), decode_check)
    dataset = dataset.filter(lambda example, real: real).map(lambda example, real: example)
    if kind == "video_qa":
        # One example per question of the clip, decoded once (`unbatch`
        # measured faster than a `flat_map` of one dataset per clip).
        def per_question(example):
            count = tf.shape(example["questions"])[0]
            videos = tf.repeat(example["videos"][None], count, axis=0)
            return {"videos": videos, **{key: example[key] for key in texts}}

        dataset = dataset.map(per_question).unbatch()
    return dataset, report
