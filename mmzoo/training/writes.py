"""Writes that replace a path replace only what mmzoo wrote there.

Every mmzoo writer (SavedModel exports, `.keras` files, the demo's outputs)
follows one rule before it replaces an existing path:

* a path that does not exist, or an empty directory, is written;
* a path that mmzoo wrote itself (a directory holding the writer's marker
  file and nothing but the entries that writer makes, or a `.keras` archive)
  is replaced;
* anything else is refused with an error listing what the path holds, unless
  the caller passes `overwrite=True`;
* a training run directory (checkpoints, `model.keras`, `metrics.jsonl`) is
  never replaced, nor a directory that contains one, nor the working
  directory or one of its parents, whatever `overwrite` says.

New files and directories get the permissions the process umask gives (a
temporary file or directory is created private, 0600 / 0700, and would keep
those bits after the rename).

Example:

```python
from mmzoo.training import writes

writes.is_run_directory("runs/captioner")  # True after `mmzoo train`
writes.check_replaceable("runs/captioner/saved_model", writes.EXPORT_MARKER,
                         writes.SAVED_MODEL_ENTRIES)
```
"""

import os
import shutil
import tempfile

# What marks a training run directory (`mmzoo.training.Trainer`, the recipes).
RUN_DIRECTORY_ENTRIES = ("checkpoint", "model.keras", "metrics.jsonl", "run.json")
# The marker file an mmzoo SavedModel export writes, and what else it holds.
EXPORT_MARKER = "mmzoo_export.json"
SAVED_MODEL_ENTRIES = ("saved_model.pb", "fingerprint.pb", "variables", "assets", EXPORT_MARKER)
_LISTED = 8


def current_umask():
    """The process umask (read without changing it where the OS allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # Elsewhere: set and restore (not thread-safe).
    os.umask(mask)
    return mask


def apply_umask(path):
    """Gives `path` the permissions a plain `open` / `mkdir` would have.

    `tempfile.mkstemp` / `mkdtemp` create 0600 / 0700 entries; a file renamed
    into place keeps them. Only `path` itself is changed (what is inside a
    directory was created with the umask already).
    """
    mode = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, mode & ~current_umask())


def is_run_directory(path):
    """Whether `path` is a training run directory (checkpoints, `model.keras`...)."""
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, entry)) for entry in RUN_DIRECTORY_ENTRIES
    )


def find_run_directory(path):
    """The first run directory at or under `path`, or None."""
    if is_run_directory(path):
        return path
    for root, directories, _ in os.walk(path):
        for name in directories:
            candidate = os.path.join(root, name)
            if is_run_directory(candidate):
                return candidate
    return None


def _describe(path):
    entries = sorted(os.listdir(path))
    shown = [e + ("/" if os.path.isdir(os.path.join(path, e)) else "") for e in entries[:_LISTED]]
    more = f" and {len(entries) - _LISTED} more" if len(entries) > _LISTED else ""
    return ", ".join(shown) + more


def _is_own(path, marker, entries):
    if not os.path.isfile(os.path.join(path, marker)):
        return False
    return set(os.listdir(path)) <= set(entries)


def check_replaceable(path, marker, entries, overwrite=False, what="export"):
    """Raises `ValueError` unless the directory `path` may be (re)written.

    Args:
        path: str. The directory about to be written.
        marker: str. The marker file the writer puts in every directory it
            writes.
        entries: the names such a directory holds (the marker included).
        overwrite: bool. Also replace a directory mmzoo did not write (never
            a run directory, one containing a run directory, or the working
            directory or one of its parents).
        what: str. What is being written, for the message.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.lexists(path):
        return
    if is_run_directory(path):
        raise ValueError(
            f"The {what} path is a training run directory (it holds {_describe(path)}); "
            "writing there would delete the run. Choose another path, e.g. "
            f"{os.path.join(path, 'saved_model')!r}. Received: path={path!r}"
        )
    if os.path.isdir(path) and (not os.listdir(path) or _is_own(path, marker, entries)):
        return
    if not overwrite:
        held = f"it holds {_describe(path)}" if os.path.isdir(path) else "it is a file"
        raise ValueError(
            f"The {what} path already exists and was not written by mmzoo ({held}). "
            "Choose another path, or pass overwrite=True (`--overwrite`) to replace it. "
            f"Received: path={path!r}"
        )
    cwd = os.path.abspath(os.getcwd())
    if cwd == path or cwd.startswith(path.rstrip(os.sep) + os.sep):
        raise ValueError(
            f"The {what} path is the working directory or one of its parents; it is "
            f"never replaced, even with overwrite=True. Received: path={path!r}"
        )
    if os.path.isdir(path):
        run = find_run_directory(path)
        if run is not None:
            raise ValueError(
                f"The {what} path contains a training run directory ({run!r}); it is "
                f"never replaced, even with overwrite=True. Received: path={path!r}"
            )


def replace_directory(staging, path, marker, entries, overwrite=False, what="export"):
    """Moves the finished directory `staging` to `path`, under the rules above.

    The previous `path` (if any) is first renamed aside, then `staging` is
    renamed into place, then the old one is deleted: a reader sees the old
    directory or the new one, and a failure puts the old one back.

    Returns:
        `path`.
    """
    path = os.fspath(path)
    check_replaceable(path, marker, entries, overwrite, what)
    apply_umask(staging)
    if not os.path.lexists(path):
        os.replace(staging, path)
        return path
    parent = os.path.dirname(os.path.abspath(path))
    aside = tempfile.mkdtemp(prefix=".replaced-", dir=parent)
    old = os.path.join(aside, "old")
    os.replace(path, old)
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(old, path)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return path
