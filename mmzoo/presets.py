"""Named configurations for every mmzoo builder.

A preset is a plain dict of builder arguments, registered with the builder it
feeds. Each family and encoder has a `*_tiny` preset that trains in seconds on a
CPU (used by the tests, notebooks and the demo) and larger ones for real runs.
A preset argument whose value is another preset's name (for example the image
encoder of a video encoder) is built from that preset first.

Example:

>>> import mmzoo
>>> mmzoo.presets.list_presets(family="encoders")[:2]
['cnn_image_encoder_tiny', 'frame_video_encoder_tiny']
>>> encoder = mmzoo.presets.build_from_preset("vit_image_encoder_tiny")
>>> encoder = mmzoo.presets.build_from_preset("vit_image_encoder_tiny", num_layers=4)
"""

import copy
import dataclasses
import difflib
import inspect


@dataclasses.dataclass(frozen=True)
class Preset:
    """One registered preset: its name, family, builder, arguments and summary."""

    name: str
    family: str
    builder: object
    config: dict
    description: str = ""


_PRESETS = {}


def register_preset(name, builder, config, family, description=""):
    """Registers `config` (builder keyword arguments) under `name`.

    Args:
        name: str. Unique preset name.
        builder: callable returning a Keras model from `**config`.
        config: dict. Keyword arguments of `builder`.
        family: str. Group shown by `list_presets(family=...)`.
        description: str. One line for listings.
    """
    if name in _PRESETS and _PRESETS[name].builder is not builder:
        raise ValueError(f"A preset named '{name}' is already registered. Received: name={name!r}")
    _PRESETS[name] = Preset(name, family, builder, dict(config), description)


def _get(name):
    if name not in _PRESETS:
        close = difflib.get_close_matches(str(name), list(_PRESETS), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"Unknown preset.{hint} Available presets: {sorted(_PRESETS)}. "
            f"Received: preset={name!r}"
        )
    return _PRESETS[name]


def list_presets(family=None):
    """Sorted preset names, optionally of one family."""
    families = {p.family for p in _PRESETS.values()}
    if family is not None and family not in families:
        raise ValueError(
            f"Unknown preset family. Available: {sorted(families)}. Received: family={family!r}"
        )
    return sorted(n for n, p in _PRESETS.items() if family is None or p.family == family)


def get_preset(name):
    """The `Preset` record for `name` (its config is a copy you may edit)."""
    preset = _get(name)
    return dataclasses.replace(preset, config=copy.deepcopy(preset.config))


def get_preset_config(name):
    """A copy of the builder arguments registered under `name`."""
    return copy.deepcopy(_get(name).config)


def build_from_preset(preset, /, **overrides):
    """Builds the model registered under the name `preset`.

    Args:
        preset: str. A name from `list_presets()`.
        **overrides: builder arguments replacing those of the preset (the
            model's `name` and `dtype` included).

    Returns:
        What the preset's builder returns (a Keras model).
    """
    record = _get(preset)
    names = set(inspect.signature(record.builder).parameters)
    unknown = sorted(k for k in overrides if k not in names)
    if unknown:
        raise ValueError(
            f"Preset '{preset}' has no argument(s) {unknown}; valid arguments: "
            f"{sorted(names)}. Received: {overrides}"
        )
    config = {**copy.deepcopy(record.config), **overrides}
    for key, value in config.items():
        # A tower given by preset name (e.g. a video encoder's image encoder)
        # is built first, in the same dtype policy.
        if key.endswith("encoder") and isinstance(value, str) and value in _PRESETS:
            nested = {"dtype": config["dtype"]} if config.get("dtype") else {}
            config[key] = build_from_preset(value, **nested)
    return record.builder(**config)
