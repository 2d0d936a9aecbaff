"""LoRA fine-tuning and weight quantization for every mmzoo model family.

The mechanisms are Keras core's (`Dense.enable_lora`, `EinsumDense.enable_lora`,
`Model.quantize`); `CompressionMixin` adds what a family model needs around
them:

* `enable_lora(rank, parts=None)` puts LoRA on the attention and MLP
  projections (every `Dense` and `EinsumDense` layer) of the chosen parts of
  the model (`model.lora_parts`: its towers, decoder, fusion blocks, heads),
  freezes every other weight, biases included, and reports the trainable and
  total parameter counts. Compile (or build the `Trainer`) afterwards.
* `save_lora_weights(path)` / `load_lora_weights(path)`: the adapters alone
  in a `.lora.h5` file, kilobytes to megabytes, tied to the base model they
  were trained on by a fingerprint of its frozen kernels.
* `merge_lora()` returns a new model with the adapters folded into the
  kernels (what `model.save` writes, too): a plain model for serving.
* `quantize("int8" | "int4")` quantizes the weights of every `Dense`,
  `EinsumDense` and `Embedding` layer (or those `filters` selects) and records
  which, so a quantized model saves and loads as `.keras` (`safe_mode=True`)
  and exports as a SavedModel like any other.

Example:

```python
model = keras.saving.load_model("runs/captioner/model.keras")
model.enable_lora(rank=8, parts=["text_decoder"])
model.compile(optimizer="adam", loss=mmzoo.losses.MaskedSequenceCrossEntropy())
model.fit(dataset, epochs=1)
model.save_lora_weights("captioner_style.lora.h5")

serving = model.merge_lora()  # plain weights, no adapters
serving.quantize("int8")
mmzoo.export.export_image_captioning_model(serving, "captioner_int8")
```
"""

import contextlib
import gc
import hashlib
import json
import os
import re
import tempfile
import warnings

import keras
import numpy as np

# What `quantize` accepts: the weight-only modes Keras implements for the
# layer types mmzoo models are made of.
QUANTIZATION_MODES = ("int8", "int4")
# The family models' caches of traced functions (`generate`, `encode_*`,
# `answer`, `predict_proba`), keyed by their arguments.
_TRACED_FUNCTION_CACHES = (
    "_generate_functions", "_encode_functions", "_classify_functions",
    "_probabilities_functions",
)
_LORA_FORMAT = "mmzoo-lora"
_LORA_VERSION = 1
_LORA_SUFFIX = ".lora.h5"


# The layers LoRA goes on, and those `quantize` quantizes.
_LORA_TYPES = (keras.layers.Dense, keras.layers.EinsumDense)
_QUANTIZED_TYPES = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)


def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def _sublayers(layer):
    """`layer` and every layer inside it, each once, in Keras' traversal order."""
    return list(layer._flatten_layers(include_self=True))


def _singular(name):
    return name[:-1] if name.endswith("s") else name


class CompressionMixin:
    """LoRA and quantization for a functional mmzoo model; see the module docs."""

    # ------------------------------------------------------------ parts
    @property
    def lora_parts(self):
        """Names of the model's parts, in graph order (towers, decoder, heads).

        A part is a top-level layer of the model's graph that holds weights,
        named by the attribute that holds it (`image_encoder`,
        `text_decoder`, ...; a fusion classifier's `encoders["image"]` is
        `image_encoder`) or else by its layer name.
        """
        return tuple(self._parts())

    def _parts(self):
        graph = [layer for layer in self.layers if layer.weights]
        in_graph = {id(layer) for layer in graph}
        names = {}
        for attribute, value in vars(self).items():
            if attribute.startswith("_"):
                continue
            if isinstance(value, keras.layers.Layer) and id(value) in in_graph:
                names.setdefault(id(value), attribute)
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, keras.layers.Layer) and id(item) in in_graph:
                        names.setdefault(id(item), f"{key}_{_singular(attribute)}")
        return {names.get(id(layer), layer.name): layer for layer in graph}

    def parts(self, names=None):
        """`{name: layer}` of the model's parts (all, or those `names` lists).

        The parts are those of `lora_parts`; unknown names are refused with
        the list of known ones. `mmzoo.training.optimizer_by_part` uses them
        to give parts their own optimizers.
        """
        return self._selected_parts(names, "names")

    def _selected_parts(self, parts, argument):
        available = self._parts()
        if parts is None:
            return available
        if isinstance(parts, str):
            parts = [parts]
        parts = list(parts)
        unknown = [name for name in parts if name not in available]
        if unknown or not parts:
            raise ValueError(
                f"`{argument}` must name parts of this {type(self).__name__}: "
                f"{', '.join(available)}. Received: {argument}={parts!r}"
            )
        return {name: available[name] for name in parts}

    @staticmethod
    def _layers_of_types(parts, types):
        """`(part name, index in the part, layer)` of each built layer of `types`, once."""
        seen, found = set(), []
        for name, part in parts.items():
            for index, layer in enumerate(_sublayers(part)):
                if isinstance(layer, types) and layer.weights and id(layer) not in seen:
                    seen.add(id(layer))
                    found.append((name, index, layer))
        return found

    # ------------------------------------------------------------- LoRA
    @property
    def lora_rank(self):
        """The rank of the model's LoRA adapters, or None without them."""
        return getattr(self, "_lora", {}).get("rank")

    def lora_layers(self):
        """The layers that carry LoRA adapters, in a fixed order (empty without)."""
        lora = getattr(self, "_lora", None)
        if not lora:
            return []
        return self._layers_at(lora["layers"])

    def _layers_at(self, names):
        """The layers named `(part, index inside the part)`, as adapted and quantized
        layers are recorded; each part is walked once."""
        parts, walked = self._parts(), {}
        layers = []
        for part, index in names:
            if part not in walked:
                walked[part] = _sublayers(parts[part])
            layers.append(walked[part][index])
        return layers

    def enable_lora(self, rank, parts=None, alpha=None):
        """Puts LoRA adapters on the model's projections and freezes the rest.

        Every `Dense` and `EinsumDense` layer of the chosen parts (attention
        query / key / value / output, MLP, projection and output layers) gets
        a trainable low-rank update `alpha / rank * A @ B` (B starts at zero,
        so the model's outputs do not change); every other weight, biases and
        normalization included, stops training. Compile the model (or build
        the `mmzoo.training.Trainer`) after this call.

        Layers whose kernel has a side smaller than `rank` (a small output
        layer) stay frozen without LoRA, with a warning naming them.

        Args:
            rank: int >= 1.
            parts: None (all of `model.lora_parts`), a part name or a list of
                them, e.g. `["text_decoder"]`.
            alpha: positive float or None (`rank`). Scale of the update.

        Returns:
            dict with `trainable_parameters`, `total_parameters`,
            `trainable_fraction` and `layers` (number of adapted layers).

        Example:

        ```python
        report = model.enable_lora(8, parts=["image_encoder", "text_decoder"])
        report["trainable_fraction"]  # 0.2 on the tiny captioner at rank 8
        ```
        """
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
            raise ValueError(f"`rank` must be an int >= 1. Received: rank={rank!r}")
        rank = int(rank)
        if alpha is not None and (
            isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0
        ):
            raise ValueError(f"`alpha` must be a positive number or None. Received: alpha={alpha!r}")
        if self.lora_rank is not None:
            raise ValueError(
                f"LoRA is already enabled on this model (rank {self.lora_rank}); it can be "
                f"enabled once. Received: rank={rank}"
            )
        if getattr(self, "has_momentum_encoder", False):
            raise ValueError(
                "LoRA is not supported on a model with a momentum encoder (its copy would "
                "average the frozen base weights, not the adapters); build it with "
                "momentum=None. Received: a model with momentum="
                f"{getattr(self, 'momentum', None)!r}"
            )
        selected = self._selected_parts(parts, "parts")
        candidates = self._layers_of_types(selected, _LORA_TYPES)
        if not candidates:
            raise ValueError(
                "No Dense or EinsumDense layer to put LoRA on in the parts "
                f"{list(selected)} of this {type(self).__name__} (convolutional towers "
                f"have none). Received: parts={parts!r}"
            )
        too_small = [item for item in candidates if rank > min(self._kernel_sides(item[2]))]
        if len(too_small) == len(candidates):
            smallest = min(min(self._kernel_sides(layer)) for _, _, layer in candidates)
            raise ValueError(
                f"`rank` must be at most the smaller side of an adapted kernel; the largest "
                f"kernel in parts {list(selected)} allows rank {smallest}. "
                f"Received: rank={rank}"
            )
        if too_small:
            # e.g. a 2-class output layer: an update of that rank would be full-rank.
            warnings.warn(
                f"{len(too_small)} layer(s) have a kernel side smaller than rank {rank} and "
                f"stay frozen without LoRA: "
                + ", ".join(f"{name}: {layer.path} {tuple(layer.kernel.shape)}"
                            for name, _, layer in too_small),
                stacklevel=2,
            )
            skipped = {id(layer) for _, _, layer in too_small}
            candidates = [item for item in candidates if id(item[2]) not in skipped]
        fingerprint = _fingerprint([layer.kernel for _, _, layer in candidates])
        # What `merge_lora` gives back: each layer trainable or frozen as now.
        self._trainable_before_lora = [
            layer.trainable for layer in self._flatten_layers(include_self=True)
        ]
        self.trainable = True
        for layer in self._flatten_layers(include_self=False):
            layer.trainable = False
        for _, _, layer in candidates:
            layer.trainable = True
            layer.enable_lora(rank, lora_alpha=alpha)
            if layer.bias is not None:
                layer.bias.trainable = False
        self._lora = {
            "rank": rank,
            "alpha": float(alpha if alpha is not None else rank),
            "parts": list(selected),
            "layers": [(name, index) for name, index, _ in candidates],
            "base_fingerprint": fingerprint,
        }
        self._forget_traced_functions()
        return self.parameter_report()

    @staticmethod
    def _kernel_sides(layer):
        # Keras' LoRA factors a kernel as (all axes but the last, the last).
        shape = tuple(layer.kernel.shape)
        return int(np.prod(shape[:-1])), shape[-1]

    def parameter_report(self):
        """Trainable and total parameter counts (and the adapted layer count)."""
        trainable = _count(self.trainable_weights)
        total = _count(self.weights)
        return {
            "trainable_parameters": trainable,
            "total_parameters": total,
            "trainable_fraction": trainable / total if total else 0.0,
            "layers": len(getattr(self, "_lora", {}).get("layers", [])),
        }

    def _require_lora(self, action):
        if self.lora_rank is None:
            raise ValueError(
                f"This model has no LoRA adapters to {action}; call "
                "`model.enable_lora(rank)` first (or `load_lora_weights`)."
            )

    def save_lora_weights(self, filepath, overwrite=False):
        """Writes the LoRA adapters alone to `filepath` (ending `.lora.h5`), atomically.

        The file holds each adapted layer's two factors, the rank, alpha and
        parts, and a fingerprint of the base kernels they were trained on; it
        loads onto the same base model with `load_lora_weights`. An existing
        LoRA file at `filepath` is replaced; any other file is refused unless
        `overwrite=True`.

        Returns:
            `filepath`.
        """
        import h5py

        self._require_lora("save")
        filepath = os.fspath(filepath)
        if not filepath.endswith(_LORA_SUFFIX):
            raise ValueError(
                f"`filepath` must end in `{_LORA_SUFFIX}`. Received: filepath={filepath!r}"
            )
        if os.path.isdir(filepath):
            raise ValueError(f"`filepath` is a directory. Received: filepath={filepath!r}")
        if os.path.lexists(filepath) and not overwrite and _read_lora_header(filepath) is None:
            raise ValueError(
                "`filepath` exists and is not an mmzoo LoRA file; choose another path or pass "
                f"overwrite=True to replace it. Received: filepath={filepath!r}"
            )
        directory = os.path.dirname(os.path.abspath(filepath))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(filepath)}.", suffix=".tmp", dir=directory)
        os.close(fd)
        header = {
            "format": _LORA_FORMAT,
            "version": _LORA_VERSION,
            "model_class": type(self).__name__,
            **{key: self._lora[key] for key in ("rank", "alpha", "parts", "base_fingerprint")},
            "layers": [list(item) for item in self._lora["layers"]],
        }
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["mmzoo_lora"] = json.dumps(header)
                for i, layer in enumerate(self.lora_layers()):
                    group = f.create_group(str(i))
                    group.attrs["path"] = layer.path
                    group["lora_kernel_a"] = keras.ops.convert_to_numpy(layer.lora_kernel_a)
                    group["lora_kernel_b"] = keras.ops.convert_to_numpy(layer.lora_kernel_b)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            from mmzoo.training import writes

            writes.apply_umask(tmp)
            os.replace(tmp, filepath)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return filepath

    def load_lora_weights(self, filepath):
        """Loads adapters written by `save_lora_weights` onto this (base) model.

        Enables LoRA with the file's rank, alpha and parts when the model has
        none yet. Refused, naming the difference, when the file was written
        for another model class, other parts or layer shapes, or another base
        (its frozen kernels differ from the ones the adapters were trained
        on: e.g. a merged model, or another training run).
        """
        import h5py

        filepath = os.fspath(filepath)
        header = _read_lora_header(filepath)
        if header is None:
            raise ValueError(
                f"`filepath` is not an mmzoo LoRA file (`save_lora_weights`). "
                f"Received: filepath={filepath!r}"
            )
        if header["model_class"] != type(self).__name__:
            raise ValueError(
                f"The LoRA file was written for a {header['model_class']}, not a "
                f"{type(self).__name__}. Received: filepath={filepath!r}"
            )
        if self.lora_rank is None:
            unknown = [name for name in header["parts"] if name not in self._parts()]
            if unknown:
                raise ValueError(
                    f"The LoRA file adapts parts {unknown} this model does not have "
                    f"({', '.join(self.lora_parts)}). Received: filepath={filepath!r}"
                )
            try:
                base = [layer.kernel for layer in self._layers_at(header["layers"])]
            except (IndexError, AttributeError):
                base = None
            if base is None or _fingerprint(base) != header["base_fingerprint"]:
                raise ValueError(_another_base(filepath))
            self.enable_lora(header["rank"], parts=header["parts"], alpha=header["alpha"])
        else:
            mine = (self._lora["rank"], self._lora["alpha"], self._lora["parts"])
            theirs = (header["rank"], header["alpha"], header["parts"])
            if mine != theirs:
                raise ValueError(
                    f"The model's LoRA (rank, alpha, parts) {mine} differ from the file's "
                    f"{theirs}. Received: filepath={filepath!r}"
                )
            if self._lora["base_fingerprint"] != header["base_fingerprint"]:
                raise ValueError(_another_base(filepath))
        if [tuple(item) for item in header["layers"]] != [tuple(x) for x in self._lora["layers"]]:
            raise ValueError(
                "The LoRA file's adapted layers do not match this model's. "
                f"Received: filepath={filepath!r}"
            )
        layers = self.lora_layers()
        with h5py.File(filepath, "r") as f:
            values = [
                (f[str(i)]["lora_kernel_a"][()], f[str(i)]["lora_kernel_b"][()])
                for i in range(len(layers))
            ]
        for layer, (a, b) in zip(layers, values):
            if a.shape != tuple(layer.lora_kernel_a.shape) or b.shape != tuple(layer.lora_kernel_b.shape):
                raise ValueError(
                    f"The LoRA file's factors for {layer.path} have shapes {a.shape} and "
                    f"{b.shape}; the model's are {tuple(layer.lora_kernel_a.shape)} and "
                    f"{tuple(layer.lora_kernel_b.shape)}. Received: filepath={filepath!r}"
                )
        for layer, (a, b) in zip(layers, values):
            layer.lora_kernel_a.assign(a)
            layer.lora_kernel_b.assign(b)

    def merge_lora(self):
        """A new model with the adapters folded into the kernels; this one is unchanged.

        The new model has no LoRA layers, and its layers are trainable or
        frozen as this model's were before `enable_lora`. It is what
        `model.save` then `keras.saving.load_model` gives (that is how it is
        made), not compiled. Its outputs equal this model's.
        """
        self._require_lora("merge")
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "merged.keras")
            self.save(path)
            # Not compiled: the optimizer's state has the adapters' slots.
            merged = keras.saving.load_model(path, compile=False, safe_mode=True)
        # Parents come before their sublayers, so each layer ends with its own flag.
        for layer, trainable in zip(merged._flatten_layers(include_self=True),
                                    self._trainable_before_lora):
            layer.trainable = trainable
        return merged

    # ----------------------------------------------------- quantization
    @property
    def weight_quantization(self):
        """`"int8"` or `"int4"` for a quantized model, else None."""
        return getattr(self, "_quantization", {}).get("mode")

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Quantizes the weights of the model's Dense, EinsumDense and Embedding layers.

        Keras' weight quantization (`keras.Model.quantize`), limited to the
        layers it implements, with the choice recorded in the model's config:
        a quantized model saves and loads as `.keras` (`safe_mode=True`) and
        exports as a SavedModel. Convolutions and normalizations stay float.

        Args:
            mode: `"int8"` or `"int4"` (per-channel absmax weights; int8 also
                quantizes activations on the fly).
            config: optional `keras.quantizers.QuantizationConfig`.
            filters: optional regex, list of regexes or callable selecting
                layers (Keras' semantics), among the eligible ones.

        Example:

        ```python
        model.quantize("int8")
        model.save("captioner_int8.keras")
        ```
        """
        if config is not None and mode is None:
            mode = getattr(config, "mode", None)
        if mode not in QUANTIZATION_MODES:
            raise ValueError(
                f"`mode` must be one of {QUANTIZATION_MODES} (weight quantization of mmzoo "
                f"models). Received: mode={mode!r}"
            )
        if self.weight_quantization is not None:
            raise ValueError(
                f"The model is already quantized ({self.weight_quantization}); quantize the "
                f"float model it came from. Received: mode={mode!r}"
            )
        if self.lora_rank is not None:
            raise ValueError(
                "The model has LoRA adapters; merge them first (`model.merge_lora()`), then "
                f"quantize the merged model. Received: mode={mode!r}"
            )
        chosen = self._layers_of_types(self._parts(), _QUANTIZED_TYPES)
        chosen_ids = {id(layer) for _, _, layer in chosen}

        def selected(layer):
            return id(layer) in chosen_ids and _matches(layer, filters)

        quantized = [(name, index) for name, index, layer in chosen if selected(layer)]
        if not quantized:
            raise ValueError(
                f"`filters` selects none of the model's quantizable layers. Received: "
                f"filters={filters!r}"
            )
        with _fast_collection():
            super().quantize(mode, config=config, filters=selected, **kwargs)
        self._forget_traced_functions()
        self._quantization = {
            "mode": mode,
            "layers": quantized,
            "config": None if config is None else keras.saving.serialize_keras_object(config),
        }

    def _forget_traced_functions(self):
        """Drops functions traced before the layers changed: they would still
        read the replaced float kernels, or skip the adapters."""
        self.train_function = self.test_function = self.predict_function = None
        for name in _TRACED_FUNCTION_CACHES:
            cache = getattr(self, name, None)
            if cache:
                cache.clear()

    def _restore_quantization(self, spec):
        """Quantizes the layers a saved config names (before its weights load)."""
        config = spec.get("config")
        config = None if config is None else keras.saving.deserialize_keras_object(config)
        layers = self._layers_at(spec["layers"])
        with _fast_collection():
            for layer in layers:
                layer.quantize(spec["mode"], config=config)
        self._quantization = {
            "mode": spec["mode"],
            "layers": [tuple(item) for item in spec["layers"]],
            "config": spec.get("config"),
        }

    def _compression_config(self):
        spec = getattr(self, "_quantization", None)
        if not spec:
            return {}
        return {"quantization": {**spec, "layers": [list(item) for item in spec["layers"]]}}


@contextlib.contextmanager
def _fast_collection():
    """Keras runs `gc.collect()` for every variable a quantized layer drops (0.2 s
    each in a process holding TensorFlow); objects older than the call are
    frozen meanwhile, so each collection scans only the new ones."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _matches(layer, filters):
    """Keras' `filters` of `Model.quantize`: None, a regex or regexes on the name, a callable."""
    if filters is None:
        return True
    if isinstance(filters, str):
        return bool(re.search(filters, layer.name))
    if isinstance(filters, (list, tuple)):
        return any(re.search(pattern, layer.name) for pattern in filters)
    if callable(filters):
        return bool(filters(layer))
    raise ValueError(
        "`filters` must be a regex string, a list of them or a callable. "
        f"Received: filters={filters!r}"
    )


def _fingerprint(kernels):
    digest = hashlib.sha256()
    for kernel in kernels:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(kernel))
        digest.update(str((value.shape, value.dtype.str)).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _read_lora_header(filepath):
    import h5py

    try:
        with h5py.File(filepath, "r") as f:
            header = json.loads(f.attrs["mmzoo_lora"])
    except (OSError, KeyError, ValueError, TypeError):
        return None
    if not isinstance(header, dict) or header.get("format") != _LORA_FORMAT:
        return None
    return header


def _another_base(filepath):
    return (
        "The LoRA file was trained on another base model: the frozen kernels it was "
        "trained on differ from this model's (a merged model, or another run's weights). "
        f"Load it onto the model it came from. Received: filepath={filepath!r}"
    )
