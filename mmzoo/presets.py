"""Named configurations for every mmzoo builder.

A preset is a plain dict of builder arguments, registered with the builder it
feeds. Each family and encoder has a `*_tiny` preset that trains in seconds on a
CPU (used by the tests, notebooks and the demo) and larger ones for real runs.
A preset argument whose value is another preset's name (for example the image
encoder of a video encoder) is built from that preset first; a dict
`{"preset": name, **overrides}` builds that preset with the overrides (a text
tower with a longer `sequence_length`, say).

Example:

>>> import mmzoo
>>> mmzoo.presets.list_presets(family="encoders")[:2]
['cnn_image_encoder_efficientnet_v2_b0', 'cnn_image_encoder_tiny']
>>> encoder = mmzoo.presets.build_from_preset("vit_image_encoder_tiny")
>>> encoder = mmzoo.presets.build_from_preset("vit_image_encoder_tiny", num_layers=4)
>>> # Override arguments of a nested encoder preset with a dict:
>>> model = mmzoo.presets.build_from_preset(
...     "dual_encoder_tiny", text_encoder={"vocabulary_size": 300})
"""

import copy
import dataclasses
import difflib
import importlib
import inspect

# The modules that register mmzoo's own presets. They name their builders as
# "module:function" strings, so listing presets imports no model code (and
# no TensorFlow): `mmzoo presets` starts in well under a second.
_PRESET_MODULES = (
    "mmzoo.encoders.encoder_presets",
    "mmzoo.models.image_captioning.image_captioning_presets",
    "mmzoo.models.video_qa.video_qa_presets",
    "mmzoo.models.dual_encoder.dual_encoder_presets",
    "mmzoo.models.fusion_classifier.fusion_classifier_presets",
)
# Keyword arguments every Keras model takes; a builder with `**kwargs`
# passes them on.
_MODEL_KWARGS = ("name", "dtype", "trainable")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One registered preset: its name, family, builder, arguments and summary.

    `builder` is a callable or a `"module:function"` string (imported when the
    preset is built); `forwards_to` is the class (or `"module:Class"`) that a
    builder taking `**kwargs` passes them to, whose arguments are accepted as
    overrides.
    """

    name: str
    family: str
    builder: object
    config: dict
    description: str = ""
    forwards_to: object = None


_PRESETS = {}
_registered = False


def register_preset(name, builder, config, family, description="", forwards_to=None):
    """Registers `config` (builder keyword arguments) under `name`.

    Args:
        name: str. Unique preset name.
        builder: callable returning a Keras model from `**config`, or its
            `"module:function"` path (imported on first build).
        config: dict. Keyword arguments of `builder`.
        family: str. Group shown by `list_presets(family=...)`.
        description: str. One line for listings.
        forwards_to: None, or the class (or `"module:Class"`) to which a
            builder with `**kwargs` passes them: its constructor arguments
            are valid overrides too. Other unknown overrides are refused.
    """
    if name in _PRESETS and _PRESETS[name].builder != builder:
        raise ValueError(f"A preset named '{name}' is already registered. Received: name={name!r}")
    _PRESETS[name] = Preset(name, family, builder, dict(config), description, forwards_to)


def _ensure_registered():
    global _registered
    if not _registered:
        _registered = True
        for module in _PRESET_MODULES:
            importlib.import_module(module)


def _resolve(target):
    """A callable given as itself or as a `"module:attribute"` string."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _accepted_arguments(record):
    """The override names `record`'s builder takes, or None for any."""
    parameters = inspect.signature(_resolve(record.builder)).parameters
    names = {n for n, p in parameters.items() if p.kind is not p.VAR_KEYWORD}
    if len(names) == len(parameters):
        return names
    if record.forwards_to is None:
        return None
    forwarded = inspect.signature(_resolve(record.forwards_to).__init__).parameters
    names |= {n for n, p in forwarded.items() if p.kind is p.POSITIONAL_OR_KEYWORD or
              p.kind is p.KEYWORD_ONLY}
    return (names | set(_MODEL_KWARGS)) - {"self"}


def _get(name):
    _ensure_registered()
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
    _ensure_registered()
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


def encoder_spec(value):
    """`(preset_name, overrides)` of an encoder given by preset, else None.

    An encoder argument of a preset is a preset name (`"text_encoder_tiny"`),
    a dict `{"preset": "text_encoder_tiny", "sequence_length": 24}`, or
    anything else (a built model, None), for which this returns None.
    """
    if isinstance(value, str) and value in _PRESETS:
        return value, {}
    if isinstance(value, dict) and "preset" in value:
        overrides = dict(value)
        name = overrides.pop("preset")
        _get(name)  # a clear error for an unknown name
        return name, overrides
    return None


def encoder_config(value):
    """The builder arguments of an encoder given by preset (see `encoder_spec`).

    The preset's config with the spec's overrides applied, or None when
    `value` is not given by preset (a built model, None).

    Example:

    >>> config = mmzoo.presets.get_preset_config("dual_encoder_tiny")
    >>> mmzoo.presets.encoder_config(config["text_encoder"])["sequence_length"]
    32
    """
    spec = encoder_spec(value)
    if spec is None:
        return None
    name, overrides = spec
    return {**get_preset_config(name), **copy.deepcopy(overrides)}


def build_from_preset(preset, /, **overrides):
    """Builds the model registered under the name `preset`.

    Args:
        preset: str. A name from `list_presets()`.
        **overrides: builder arguments replacing those of the preset (the
            model's `name` and `dtype` included). For an encoder argument
            (one whose name ends in `encoder`) that the preset gives by
            preset name, a dict without a `"preset"` key overrides arguments
            of that nested preset, e.g. `text_encoder={"vocabulary_size":
            300}`; a dict with one names another preset, and a built model
            is used as is.

    Returns:
        What the preset's builder returns (a Keras model).
    """
    record = _get(preset)
    names = _accepted_arguments(record)
    unknown = sorted(k for k in overrides if names is not None and k not in names)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            if close:
                hints.append(f"{close[0]!r} for {key!r}")
        hint = f" Did you mean {', '.join(hints)}?" if hints else ""
        raise ValueError(
            f"Preset '{preset}' has no argument(s) {unknown}.{hint} Valid arguments: "
            f"{sorted(names)}. Received: {overrides}"
        )
    config = copy.deepcopy(record.config)
    for key, value in overrides.items():
        if key.endswith("encoder") and isinstance(value, dict) and "preset" not in value:
            spec = encoder_spec(config.get(key))
            if spec is None:
                raise ValueError(
                    f"Preset '{preset}' does not build its `{key}` from a preset, so there "
                    f"is nothing to override; pass a built model or "
                    f"{{'preset': name, ...}}. Received: {key}={value!r}"
                )
            value = {"preset": spec[0], **spec[1], **value}
        config[key] = value
    for key, value in config.items():
        # A tower given by preset (e.g. a video encoder's image encoder) is
        # built first, in the same dtype policy.
        spec = encoder_spec(value) if key.endswith("encoder") else None
        if spec is not None:
            name, nested = spec
            if config.get("dtype") and "dtype" not in nested:
                nested["dtype"] = config["dtype"]
            config[key] = build_from_preset(name, **nested)
    return _resolve(record.builder)(**config)
