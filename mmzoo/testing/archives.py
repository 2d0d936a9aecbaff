"""Helpers for tests of saved `.keras` files."""

import zipfile


def rewrite_archive(source, target, edit):
    """Copies a `.keras` file (a zip), each member through `edit`.

    For tests of what loading does with a damaged or edited file: a missing
    vocabulary asset, an asset of another size, an edited config.

    Args:
        source: str. Path of the `.keras` file to read.
        target: str. Path of the copy to write.
        edit: `(name, data) -> bytes or None`: the new contents of the member
            `name` (its bytes are `data`), or None to leave it out.

    Returns:
        `target`.

    Example:

    ```python
    drop_assets = lambda name, data: None if name.startswith("assets/") else data
    broken = rewrite_archive("model.keras", "broken.keras", drop_assets)
    keras.saving.load_model(broken)  # fails naming the missing asset
    ```
    """
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = edit(item.filename, zin.read(item.filename))
            if data is not None:
                zout.writestr(item, data)
    return target
