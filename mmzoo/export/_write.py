"""Atomic SavedModel writes that replace only what mmzoo exported."""

import json
import numbers
import os
import shutil
import tempfile

from mmzoo.training import writes


def check_export_path(path, overwrite):
    """Fails before any work when `path` may not be written (see `mmzoo.training.writes`)."""
    writes.check_replaceable(path, writes.EXPORT_MARKER, writes.SAVED_MODEL_ENTRIES, overwrite)


def check_max_pixels(max_image_pixels):
    """`max_image_pixels` is a positive int or None."""
    if max_image_pixels is None:
        return
    if isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, numbers.Integral) \
            or max_image_pixels <= 0:
        raise ValueError(
            "`max_image_pixels` must be a positive integer or None (no limit). "
            f"Received: max_image_pixels={max_image_pixels!r}"
        )


def write_atomically(archive, path, family, signatures, overwrite=False):
    """`archive.write_out` into a temporary sibling directory, then renamed.

    The directory gets the marker file `mmzoo_export.json` (the family, the
    signatures and the mmzoo version), by which a later export recognises it
    as its own and replaces it. An existing directory that mmzoo did not
    write is refused unless `overwrite`; a training run directory never is
    replaced (`mmzoo.training.writes`).
    """
    import mmzoo

    path = os.fspath(path)
    # The exporters call `check_export_path` before tracing anything;
    # `replace_directory` checks again right before the rename.
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        archive.write_out(staging, verbose=False)
        marker = {
            "format": "mmzoo SavedModel",
            "family": family,
            "signatures": list(signatures),
            "mmzoo_version": mmzoo.__version__,
        }
        with open(os.path.join(staging, writes.EXPORT_MARKER), "w", encoding="utf-8") as f:
            json.dump(marker, f, indent=2)
        writes.replace_directory(
            staging, path, writes.EXPORT_MARKER, writes.SAVED_MODEL_ENTRIES, overwrite
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path
