import collections

import keras
import numpy as np
from keras import ops

from mmzoo.data.inputs import as_strings
from mmzoo.data.inputs import check_batch_size
from mmzoo.data.inputs import check_padding_mask
from mmzoo.data.inputs import check_token_ids
from mmzoo.data.inputs import describe
from mmzoo.data.inputs import prepare_pixels
from mmzoo.data.inputs import run_in_batches
from mmzoo.data.inputs import token_vocabulary_size
from mmzoo.layers import AttentionPooling
from mmzoo.layers import CrossModalFusionBlock
from mmzoo.layers import ProjectionHead
from mmzoo.layers.validation import check_choice
from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rate
from mmzoo.models.fusion_classifier.fusion_classifier_layers import GatedModalityUnit
from mmzoo.models.fusion_classifier.fusion_classifier_layers import SequenceMask
from mmzoo.models.fusion_classifier.fusion_classifier_layers import WeightedLogitAverage
from mmzoo.models.fusion_classifier.fusion_classifier_preprocessor import (
    FusionClassifierPreprocessor,
)
from mmzoo.models.preprocessing import attach_preprocessor
from mmzoo.models.compression import CompressionMixin
from mmzoo.models.saving import model_config
from mmzoo.models.saving import model_from_config

FUSION_TYPES = ("early", "late", "attention", "gated")


@keras.saving.register_keras_serializable(package="mmzoo")
class FusionClassifier(CompressionMixin, keras.Model):
    """Classifies an example from several modalities (image + text, ...).

    A functional graph: every modality's encoder, then one of four ways of
    fusing their features, then class logits (float32, also under mixed
    precision):

    * `"early"`: the encoders' pooled features are concatenated and an MLP
      (`hidden_dim`, GELU) classifies them.
    * `"late"`: each modality has its own MLP classifier; their logits are
      averaged with learned softmax weights (`modality_weights()`). Additive
      in the modalities' logits, so it cannot learn a label that depends on
      how two modalities relate (as in `shapes_classification`).
    * `"attention"`: each modality's token sequence, projected to
      `hidden_dim`, goes through `num_layers` `mmzoo.layers.CrossModalFusionBlock`s
      in both directions at once (co-attention: every modality attends to
      the concatenated tokens of all the others, padding never attended to),
      then `mmzoo.layers.AttentionPooling` per modality; the pooled vectors
      are concatenated and classified by an MLP.
    * `"gated"`: a gated multimodal unit (`GatedModalityUnit`, after Arevalo
      et al. 2017) weights each modality's `tanh` features by sigmoid gates
      computed from all modalities, then an MLP classifies the sum.

    With a single encoder the model is a one-modality classifier (used as a
    baseline): `"early"`, `"late"` and `"gated"` put the MLP on its pooled
    features, and `"attention"` lets its tokens attend to themselves.

    Binary tasks (`num_classes=2`) also get two logits, so every task uses the
    same loss (`SparseCategoricalCrossentropy(from_logits=True)`), `argmax`
    predictions and Keras `class_weight`; the softmax of two logits is the
    sigmoid of their difference, so nothing is lost against a single logit.

    **Inputs** are the union of the encoders' inputs, under their own names:
    an encoder taking a dict (mmzoo's text encoder: `token_ids`,
    `padding_mask`) contributes its keys; one taking a single tensor
    contributes the name of its `keras.Input` (`images` for mmzoo's image
    encoders), or the modality name when that input was left with a
    generated name (`input_layer_3`). A key that two encoders share is
    prefixed with the modality, `f"{modality}_{key}"`, for every encoder that
    has it (as in `question_token_ids`). `model.input_keys` shows the mapping.
    So an image and a text encoder give exactly the keys of
    `mmzoo.data.fusion_pipeline`: `images`, `token_ids`, `padding_mask`.

    **Padding**: an encoder input named `padding_mask` whose length equals
    that encoder's `sequence_output` length marks its real tokens; attention
    fusion never attends to, and never pools over, the other tokens.

    **Learning rate**: train attention fusion with a Transformer's rate
    (Adam 3e-4 from scratch), not Keras' default 1e-3. On
    `shapes_classification` the tiny preset's head (at width 64) then reaches
    0.91-0.98 test accuracy in 3,600 steps of batch 64 (two seeds); with 1e-3
    it learned the colour questions but stayed at chance on the shape
    questions for 18,000 steps (benchmarks/README.md, "Fusion classifier
    quality"). Early fusion learns faster at 1e-3.

    Args:
        encoders: dict, modality name (a Python identifier, e.g. `"image"`)
            -> encoder. An encoder is any mmzoo encoder (returning
            `{"sequence_output", "pooled_output"}`), a plain `keras.Model`
            returning one tensor `(batch, dim)` (features) or `(batch,
            length, dim)` (tokens, mean-pooled for the pooled features), an
            encoder preset name, or `{"preset": name, **overrides}`. Frozen
            encoders stay frozen.
        num_classes: int >= 2.
        fusion: str. One of `"early"`, `"late"`, `"attention"`, `"gated"`.
        hidden_dim: int. Width of the classifier MLPs, of the attention
            tokens and of the gated unit.
        num_heads: int. Attention heads (`"attention"` only); must divide
            `hidden_dim`.
        num_layers: int. Co-attention layers (`"attention"` only).
        intermediate_dim: int. MLP width inside the fusion blocks
            (`"attention"` only).
        dropout_rate: float. Dropout in the fusion blocks and classifier MLPs.
        layer_norm_epsilon: float.
        preprocessor: `FusionClassifierPreprocessor` or None. Kept by the
            model and saved in its `.keras` file (the vocabulary as an
            asset), so that `predict_classes` and `predict_probabilities`
            take image files and strings; its `sequence_length` is set to
            the text encoder's. Its tokenizer must have the text encoder's
            `vocabulary_size`, its image converter the image encoder's
            `image_shape`, and its `class_names` (if any) `num_classes`
            names.
        **kwargs: `name`, `dtype` (e.g. `"mixed_bfloat16"`), ...

    Call inputs:
        dict of the encoders' inputs (see above), e.g. `{"images": (batch,
        height, width, channels), "token_ids": (batch, sequence_length)
        int32, "padding_mask": (batch, sequence_length) bool}`.

    Returns:
        Logits `(batch, num_classes)`, float32.

    Example:

    ```python
    encoders = {
        "image": mmzoo.presets.build_from_preset("vit_image_encoder_tiny"),
        "text": mmzoo.presets.build_from_preset("text_encoder_tiny"),
    }
    preprocessor = mmzoo.models.FusionClassifierPreprocessor(
        tokenizer, image_converter=(64, 64), class_names=["no", "yes"])
    model = mmzoo.models.build_fusion_classifier(
        encoders, num_classes=2, fusion="attention", preprocessor=preprocessor)
    model.compile(optimizer=keras.optimizers.Adam(3e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=True)
    train = mmzoo.data.fusion_pipeline(examples, model, batch_size=64)
    model.fit(train.map(mmzoo.models.classification_split), steps_per_epoch=1000,
              class_weight={0: 1.0, 1: 3.0})

    test = mmzoo.data.fusion_pipeline(test_examples, model, batch_size=100,
                                      repeat=False, shuffle_buffer=None)
    y_true, y_pred = [], []
    for x, y, weight in test.map(mmzoo.models.classification_split):
        real = weight.numpy() > 0  # the last batch is padded (`example_mask`)
        y_true.append(y.numpy()[real])
        y_pred.append(np.argmax(model.predict_on_batch(x), axis=-1)[real])
    report = mmzoo.evaluation.classification_report(
        np.concatenate(y_true), np.concatenate(y_pred), target_names=["no", "yes"])
    print(mmzoo.evaluation.format_classification_report(report))

    # Raw inputs, through the preprocessor (also after `keras.saving.load_model`):
    model.predict_classes(images=["photo.jpg"], texts=["is there a red shape?"])  # ["yes"]
    ```
    """

    def __init__(
        self,
        encoders,
        num_classes,
        fusion="attention",
        hidden_dim=256,
        num_heads=4,
        num_layers=1,
        intermediate_dim=512,
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        preprocessor=None,
        dtype=None,
        **kwargs,
    ):
        encoders = _resolve_encoders(encoders, dtype)
        # Plain Python numbers (NumPy scalars are accepted), for a JSON-clean config.
        num_classes, hidden_dim, num_heads, num_layers, intermediate_dim, dropout_rate = (
            _check_arguments(
                encoders, num_classes, fusion, hidden_dim, num_heads, num_layers,
                intermediate_dim, dropout_rate,
            )
        )
        specs = _encoder_specs(encoders)
        modalities = list(encoders)

        # === Functional Model ===
        inputs = {}
        for spec in specs.values():
            for key, model_key in spec.keys.items():
                tensor = spec.inputs[key]
                inputs[model_key] = keras.Input(
                    shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=model_key
                )
        sequences, masks, pooled = {}, {}, {}
        for modality, spec in specs.items():
            encoder_inputs = {key: inputs[k] for key, k in spec.keys.items()}
            if not spec.takes_dict:
                (encoder_inputs,) = encoder_inputs.values()
            outputs = spec.encoder(encoder_inputs)
            masks[modality] = _sequence_mask(spec, inputs)
            sequences[modality], pooled[modality] = _features(
                modality, outputs, masks[modality], dtype
            )

        # === Layers ===
        # Created while wiring, each named after the attribute that holds it.
        self.encoders = encoders
        self.projections = {}
        self.fusion_blocks = {}
        self.poolings = {}
        self.heads = {}
        self.logit_average = None
        self.gated_unit = None
        head_kwargs = {
            "projection_dim": num_classes, "intermediate_dim": hidden_dim,
            "dropout_rate": dropout_rate, "dtype": dtype,
        }
        if fusion == "late":
            logits = []
            for modality in modalities:
                self.heads[modality] = ProjectionHead(
                    **head_kwargs, name=f"{modality}_classifier_head"
                )
                logits.append(self.heads[modality](pooled[modality]))
            self.logit_average = WeightedLogitAverage(dtype=dtype, name="logit_average")
            logits = self.logit_average(logits)
        else:
            if fusion == "early":
                features = _concatenate([pooled[m] for m in modalities], dtype, "early_concat")
            elif fusion == "gated":
                self.gated_unit = GatedModalityUnit(hidden_dim, dtype=dtype, name="gated_unit")
                features = self.gated_unit([pooled[m] for m in modalities])
            else:
                features = self._attention_fusion(
                    sequences, masks, num_heads, num_layers, hidden_dim,
                    intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
                )
            self.heads["fused"] = ProjectionHead(**head_kwargs, name="classifier_head")
            logits = self.heads["fused"](features)
        # Softmax statistics in float32 whatever the compute dtype.
        logits = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(logits)
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.fusion = fusion
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.intermediate_dim = intermediate_dim
        self.dropout_rate = dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.modalities = tuple(modalities)
        self.input_keys = {m: dict(spec.keys) for m, spec in specs.items()}
        self.preprocessor, self._vocabulary_size = _attach_preprocessor(
            preprocessor, specs, inputs, num_classes
        )
        self._probabilities_functions = {}  # traced on first use

    def _attention_fusion(
        self, sequences, masks, num_heads, num_layers, hidden_dim, intermediate_dim,
        dropout_rate, layer_norm_epsilon, dtype,
    ):
        """Co-attention between all modalities, then attention pooling of each."""
        modalities = list(sequences)
        tokens = {}
        for m in modalities:
            self.projections[m] = keras.layers.Dense(hidden_dim, dtype=dtype, name=f"{m}_projection")
            tokens[m] = self.projections[m](sequences[m])
        for i in range(num_layers):
            updated = {}
            for m in modalities:
                others = [o for o in modalities if o != m] or [m]  # one modality: itself
                context = _concatenate([tokens[o] for o in others], dtype, f"{m}_context_{i}", axis=1)
                context_mask = None
                if any(masks[o] is not None for o in others):
                    context_mask = _concatenate(
                        [
                            masks[o] if masks[o] is not None
                            else SequenceMask(dtype=dtype, name=f"{o}_mask_for_{m}_{i}")(tokens[o])
                            for o in others
                        ],
                        dtype, f"{m}_context_mask_{i}", axis=1,
                    )
                block = CrossModalFusionBlock(
                    num_heads=num_heads,
                    intermediate_dim=intermediate_dim,
                    dropout_rate=dropout_rate,
                    layer_norm_epsilon=layer_norm_epsilon,
                    dtype=dtype,
                    name=f"{m}_fusion_block_{i}",
                )
                self.fusion_blocks.setdefault(m, []).append(block)
                updated[m] = block(
                    tokens[m], context, padding_mask=masks[m], context_padding_mask=context_mask
                )
            tokens = updated
        pooled = []
        for m in modalities:
            self.poolings[m] = AttentionPooling(
                num_heads=num_heads, layer_norm_epsilon=layer_norm_epsilon, dtype=dtype,
                name=f"{m}_attention_pooling",
            )
            pooled.append(self.poolings[m](tokens[m], padding_mask=masks[m]))
        return _concatenate(pooled, dtype, "attention_concat")

    def modality_weights(self):
        """Late fusion's learned weight of each modality: `{modality: float}`, summing to 1."""
        if self.logit_average is None:
            raise ValueError(
                "`modality_weights()` exists only for late fusion. "
                f"Received: fusion={self.fusion!r}"
            )
        weights = ops.convert_to_numpy(self.logit_average.modality_weights())
        return {m: float(w) for m, w in zip(self.modalities, weights)}

    # ------------------------------------------------------ raw inputs
    def predict_probabilities(self, images=None, texts=None, batch_size=None):
        """Class probabilities of raw examples: float32 `(n, num_classes)`.

        Every input is checked in NumPy before the model runs. A model whose
        inputs are more than `images`, `token_ids` and `padding_mask` (and a
        BERT-style tower's `segment_ids`, given zeros) is called on arrays
        instead (`model.predict(x)`).

        Args:
            images: the image modality's `n` images, when the model has one:
                an array `(n, height, width, channels)` of floats in [0, 1]
                or uint8 (scaled by 1/255); with a preprocessor, also of any
                size and 1 (gray), 2, 3 or 4 (RGBA) channels, or a list of
                arrays, image file paths and encoded bytes
                (`mmzoo.data.ImageConverter.convert`).
            texts: the text modality's `n` texts, when the model has one: a
                list (or 1-D array) of str or bytes (needs a preprocessor
                with a tokenizer; invalid UTF-8 is replaced, long texts are
                cut to the text encoder's length), or a dict of `token_ids`
                int and `padding_mask` bool arrays `(n, sequence_length)`.
            batch_size: positive int, or None for all examples at once.
                Splits large inputs into batches of this size (the last one
                padded, so one traced function serves all).

        Returns:
            float32 NumPy `(n, num_classes)`, each row summing to 1;
            `(0, num_classes)` for no examples, without running the model.

        Example:

        ```python
        model.predict_probabilities(
            images=["cat.jpg", uint8_array], texts=["is there a red shape?", "a circle?"])
        ```
        """
        batch_size = check_batch_size(batch_size)
        x = self._raw_inputs(images, texts)
        empty = np.zeros((0, self.num_classes), "float32")
        return run_in_batches(self._probabilities, (x,), batch_size, empty).astype("float32")

    def predict_classes(self, images=None, texts=None, batch_size=None):
        """The most probable class of each raw example.

        Args:
            images, texts, batch_size: as in `predict_probabilities`.

        Returns:
            a list of `n` class names when the preprocessor has
            `class_names`, else int32 NumPy `(n,)` class ids.

        Example:

        ```python
        model.predict_classes(images=["photo.jpg"], texts=["is there a circle?"])  # ["yes"]
        ```
        """
        probabilities = self.predict_probabilities(images, texts, batch_size=batch_size)
        class_ids = np.argmax(probabilities, axis=-1).astype("int32")
        if self.preprocessor is not None and self.preprocessor.class_names is not None:
            return self.preprocessor.class_ids_to_names(class_ids)
        return class_ids

    def _probabilities(self, x):
        if "probabilities" not in self._probabilities_functions:
            def probabilities(x):
                return ops.softmax(ops.cast(self(x, training=False), "float32"), axis=-1)

            if keras.config.backend() == "tensorflow":
                import tensorflow as tf  # tracing is backend-specific

                # Traced once per batch shape; no XLA: compiling costs more
                # than the few batches a user classifies this way.
                probabilities = tf.function(probabilities, autograph=False)
            self._probabilities_functions["probabilities"] = probabilities
        return self._probabilities_functions["probabilities"](x)

    def _raw_inputs(self, images, texts):
        """The model's input arrays from `predict_*`'s `images` and `texts`."""
        keys = set(self.input)
        others = sorted(keys - {"images", "token_ids", "padding_mask", "segment_ids"})
        if others:
            raise ValueError(
                "`predict_classes` and `predict_probabilities` make `images`, `token_ids` "
                f"and `padding_mask` from images and texts, but this model also takes "
                f"{others}: call it on arrays (`model.predict(x)`). Received: model "
                f"inputs {sorted(keys)}"
            )
        x = {}
        for name, value, key in (("images", images, "images"), ("texts", texts, "token_ids")):
            if key in keys and value is None:
                raise ValueError(
                    f"This model takes {name} (inputs {sorted(keys)}); pass `{name}=`. "
                    f"Received: {name}=None"
                )
            if key not in keys and value is not None:
                raise ValueError(
                    f"This model takes no {name} (its inputs are {sorted(keys)}). "
                    f"Received: {name} of {describe(value)}"
                )
        if "images" in keys:
            x["images"] = self._prepare_images(images)
        if "token_ids" in keys:
            x.update(self._prepare_texts(texts))
            if "segment_ids" in keys:  # a BERT-style tower: one segment
                x["segment_ids"] = np.zeros_like(x["token_ids"])
        if "images" in x and "token_ids" in x and len(x["images"]) != len(x["token_ids"]):
            raise ValueError(
                "`images` and `texts` must hold as many examples each. Received: "
                f"{len(x['images'])} images and {len(x['token_ids'])} texts"
            )
        return {k: v for k, v in x.items() if k in keys}  # e.g. a tower without a mask

    def _prepare_images(self, images):
        converter = None if self.preprocessor is None else self.preprocessor.image_converter
        if converter is not None:
            return converter.convert(images)
        return prepare_pixels("images", images, tuple(self.input["images"].shape[1:]))

    def _prepare_texts(self, texts):
        length = self.input["token_ids"].shape[1]
        if length is None and isinstance(texts, dict) and np.ndim(texts.get("token_ids")) == 2:
            length = np.shape(texts["token_ids"])[1]  # a KerasHub tower: any length
        if isinstance(texts, dict):
            token_ids = check_token_ids(
                "texts['token_ids']", texts.get("token_ids"), length, self._vocabulary_size,
            )
            padding_mask = check_padding_mask(
                "texts['padding_mask']", texts.get("padding_mask"), token_ids.shape
            )
            return {"token_ids": token_ids, "padding_mask": padding_mask}
        tokenizer = None if self.preprocessor is None else self.preprocessor.tokenizer
        if tokenizer is None:
            if as_strings("texts", texts, "a list of strings") is not None:
                raise ValueError(
                    "`texts` are strings but the model has no preprocessor with a "
                    "tokenizer; build it with `preprocessor=FusionClassifierPreprocessor("
                    "tokenizer, ...)` or pass `{'token_ids', 'padding_mask'}` arrays. "
                    f"Received: texts of {describe(texts)}"
                )
            raise ValueError(
                "`texts` must be a list of strings or a dict of `token_ids` and "
                f"`padding_mask` arrays (n, {length}). Received: texts of {describe(texts)}"
            )
        token_ids, padding_mask = self.preprocessor.tokenize_strings(texts, name="texts")
        return {"token_ids": token_ids, "padding_mask": padding_mask}

    def get_config(self):
        return model_config(
            self,
            encoders=self.encoders,
            num_classes=self.num_classes,
            fusion=self.fusion,
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            intermediate_dim=self.intermediate_dim,
            dropout_rate=self.dropout_rate,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )

    @classmethod
    def from_config(cls, config):
        return model_from_config(cls, config)


# ------------------------------------------------------------------ wiring
def _attach_preprocessor(preprocessor, specs, inputs, num_classes):
    """`preprocessor`, checked against the model's text and image inputs."""
    expected = {}
    vocabulary_size = None
    if "token_ids" in inputs and len(inputs["token_ids"].shape) == 2:
        length = inputs["token_ids"].shape[1]
        if length is not None:  # None: a KerasHub tower, any length
            expected["sequence_length"] = int(length)
        elif preprocessor is not None and preprocessor.sequence_length is None:
            raise ValueError(
                "The text encoder takes token ids of any length, so the preprocessor "
                "must give one: `FusionClassifierPreprocessor(tokenizer, "
                "sequence_length=...)`. Received: sequence_length=None"
            )
        owner = next(s for s in specs.values() if "token_ids" in s.keys.values())
        vocabulary_size = token_vocabulary_size(owner.encoder)
    images = inputs.get("images")
    if images is not None and len(images.shape) == 4 and images.shape[-1] == 3:
        expected["image_shape"] = tuple(images.shape[1:])
    preprocessor = attach_preprocessor(
        preprocessor, FusionClassifierPreprocessor, vocabulary_size, **expected
    )
    if preprocessor is not None:
        # A BERT-style text tower also takes segment ids, which the
        # preprocessor (and so `fusion_pipeline`) then makes.
        preprocessor.return_segment_ids = "segment_ids" in inputs
    names = None if preprocessor is None else preprocessor.class_names
    if names is not None and len(names) != num_classes:
        raise ValueError(
            "The preprocessor's `class_names` and the model disagree on the number of "
            f"classes: {len(names)} names, num_classes={num_classes}. "
            f"Received: class_names={names!r}"
        )
    return preprocessor, vocabulary_size


_EncoderSpec = collections.namedtuple(
    "_EncoderSpec", ["encoder", "inputs", "takes_dict", "keys"]
)


def _resolve_encoders(encoders, dtype):
    """Builds the encoders given by preset (in the model's dtype policy)."""
    if not isinstance(encoders, dict):
        raise ValueError(
            "`encoders` must be a dict {modality: encoder}, e.g. {'image': "
            f"image_encoder, 'text': text_encoder}}. Received: encoders={encoders!r}"
        )
    from mmzoo import presets

    resolved = {}
    for modality, encoder in encoders.items():
        if isinstance(encoder, str):
            spec = (encoder, {})  # an unknown name gets the presets' error
        else:
            spec = presets.encoder_spec(encoder)
        if spec is not None:
            name, overrides = spec
            if dtype is not None:
                overrides.setdefault("dtype", dtype)
            encoder = presets.build_from_preset(name, **overrides)
        resolved[modality] = encoder
    return resolved


def _check_arguments(
    encoders, num_classes, fusion, hidden_dim, num_heads, num_layers, intermediate_dim,
    dropout_rate,
):
    if not encoders:
        raise ValueError(
            "`encoders` must hold at least one {modality: encoder} entry. Received: encoders={}"
        )
    for modality, encoder in encoders.items():
        if not isinstance(modality, str) or not modality.isidentifier():
            raise ValueError(
                "Modality names (the keys of `encoders`) must be Python identifiers "
                f"such as 'image' or 'text'. Received: modality={modality!r}"
            )
        if not isinstance(encoder, keras.Model):
            raise ValueError(
                f"`encoders[{modality!r}]` must be a keras.Model or an encoder preset "
                f"name. Received: {encoder!r}"
            )
    names = collections.Counter(e.name for e in encoders.values())
    repeated = sorted(n for n, c in names.items() if c > 1)
    if repeated:
        raise ValueError(
            "Every encoder needs its own name (Keras matches weights by layer name); "
            "build them with distinct `name=` arguments. Received: encoder names "
            f"{[e.name for e in encoders.values()]}"
        )
    if (
        isinstance(num_classes, (bool, np.bool_))
        or not isinstance(num_classes, (int, np.integer))
        or num_classes < 2
    ):
        raise ValueError(
            "`num_classes` must be an int >= 2 (binary tasks use 2 logits). "
            f"Received: num_classes={num_classes!r}"
        )
    check_choice("fusion", fusion, FUSION_TYPES)
    sizes = [
        check_positive_int(name, value)
        for name, value in (
            ("hidden_dim", hidden_dim),
            ("num_heads", num_heads),
            ("num_layers", num_layers),
            ("intermediate_dim", intermediate_dim),
        )
    ]
    if fusion == "attention":
        check_divisible("hidden_dim", hidden_dim, "num_heads", num_heads)
    return (int(num_classes), *sizes, check_rate("dropout_rate", dropout_rate))


def _encoder_specs(encoders):
    """Each encoder's inputs and the model input key of each of them."""
    specs = {}
    for modality, encoder in encoders.items():
        try:
            structure = encoder.input
        except (AttributeError, ValueError) as error:
            raise ValueError(
                f"`encoders[{modality!r}]` has no defined inputs; pass a functional or "
                f"built Sequential model. Received: {encoder!r}"
            ) from error
        if isinstance(structure, dict):
            inputs, takes_dict = dict(structure), True
        else:
            if isinstance(structure, (list, tuple)):
                if len(structure) != 1:
                    raise ValueError(
                        f"`encoders[{modality!r}]` must take one tensor or a dict of "
                        f"tensors. Received: {len(structure)} positional inputs"
                    )
                structure = structure[0]
            name = structure.name
            if name.startswith("input_layer") or name.startswith("keras_tensor"):
                name = modality  # a generated name says nothing; use the modality
            inputs, takes_dict = {name: structure}, False
        output = encoder.output
        if isinstance(output, dict):
            missing = {"sequence_output", "pooled_output"} - set(output)
            if missing:
                raise ValueError(
                    f"`encoders[{modality!r}]` returns a dict, so it must hold "
                    "`sequence_output` and `pooled_output` (as every mmzoo encoder "
                    f"does). Received: outputs {sorted(output)}"
                )
        elif not hasattr(output, "shape") or len(output.shape) not in (2, 3):
            shape = getattr(output, "shape", type(output).__name__)
            raise ValueError(
                f"`encoders[{modality!r}]` must return a dict with `sequence_output` "
                "and `pooled_output`, or one tensor (batch, dim) or (batch, length, "
                f"dim). Received: output {shape}"
            )
        specs[modality] = _EncoderSpec(encoder, inputs, takes_dict, {})
    counts = collections.Counter(k for spec in specs.values() for k in spec.inputs)
    for modality, spec in specs.items():
        for key in spec.inputs:
            spec.keys[key] = f"{modality}_{key}" if counts[key] > 1 else key
    model_keys = collections.Counter(k for spec in specs.values() for k in spec.keys.values())
    clashes = sorted(k for k, c in model_keys.items() if c > 1)
    if clashes:
        raise ValueError(
            f"Two encoder inputs would share the model input name {clashes}. Rename an "
            f"encoder input or a modality. Received: modalities {list(specs)}"
        )
    return specs


def _sequence_mask(spec, inputs):
    """The encoder's `padding_mask` input when it masks its `sequence_output`."""
    if "padding_mask" not in spec.inputs:
        return None
    output = spec.encoder.output
    sequence = output["sequence_output"] if isinstance(output, dict) else output
    mask = spec.inputs["padding_mask"]
    if len(sequence.shape) != 3 or len(mask.shape) != 2 or sequence.shape[1] != mask.shape[1]:
        return None
    return inputs[spec.keys["padding_mask"]]


def _features(modality, outputs, mask, dtype):
    """`(sequence (batch, length, dim), pooled (batch, dim))` of one encoder."""
    if isinstance(outputs, dict):
        return outputs["sequence_output"], outputs["pooled_output"]
    if len(outputs.shape) == 2:
        tokens = keras.layers.Reshape((1, outputs.shape[-1]), dtype=dtype, name=f"{modality}_tokens")
        return tokens(outputs), outputs
    pooling = keras.layers.GlobalAveragePooling1D(dtype=dtype, name=f"{modality}_pooling")
    return outputs, pooling(outputs, mask=mask)


def _concatenate(tensors, dtype, name, axis=-1):
    if len(tensors) == 1:
        return tensors[0]
    return keras.layers.Concatenate(axis=axis, dtype=dtype, name=name)(tensors)


# ------------------------------------------------------------------ builder
def build_fusion_classifier(
    encoders,
    num_classes,
    fusion="attention",
    hidden_dim=256,
    num_heads=4,
    num_layers=1,
    intermediate_dim=512,
    dropout_rate=0.1,
    layer_norm_epsilon=1e-6,
    preprocessor=None,
    name=None,
    dtype=None,
):
    """Builds a `FusionClassifier` (see its docstring for all arguments).

    Args:
        encoders: dict, modality name -> encoder (any mmzoo encoder, a plain
            `keras.Model` returning one tensor, an encoder preset name, or
            `{"preset": name, **overrides}`).
            One entry gives a single-modality classifier.
        num_classes: int >= 2. Binary tasks get two logits.
        fusion: `"early"` (concatenated pooled features + MLP), `"late"`
            (per-modality classifiers, logits averaged with learned softmax
            weights), `"attention"` (co-attention with
            `mmzoo.layers.CrossModalFusionBlock`, attention pooling, MLP) or
            `"gated"` (gated multimodal unit + MLP).
        hidden_dim, num_heads, num_layers, intermediate_dim, dropout_rate,
            layer_norm_epsilon: see `FusionClassifier`.
        preprocessor: `FusionClassifierPreprocessor` or None (see
            `FusionClassifier`).
        name: str or None.
        dtype: dtype or policy name; None for the global policy.

    Returns:
        A `FusionClassifier` returning float32 logits `(batch, num_classes)`.

    Example:

    ```python
    model = mmzoo.models.build_fusion_classifier(
        {"image": mmzoo.presets.build_from_preset("vit_image_encoder_tiny"),
         "text": mmzoo.presets.build_from_preset("text_encoder_tiny")},
        num_classes=2, fusion="gated", hidden_dim=64)
    sorted(model.input)  # ['images', 'padding_mask', 'token_ids']
    ```
    """
    return FusionClassifier(
        encoders,
        num_classes,
        fusion=fusion,
        hidden_dim=hidden_dim,
        num_heads=num_heads,
        num_layers=num_layers,
        intermediate_dim=intermediate_dim,
        dropout_rate=dropout_rate,
        layer_norm_epsilon=layer_norm_epsilon,
        preprocessor=preprocessor,
        name=name,
        dtype=dtype,
    )


def classification_split(features, class_weights=None):
    """`{..., "labels"}` -> `(x, y)`, or `(x, y, sample_weight)` with weights.

    A pure `dict -> tuple` function for `tf.data.Dataset.map` (with
    `functools.partial` for `class_weights`), after
    `mmzoo.data.fusion_pipeline`: `x` holds every key but `labels` and
    `example_mask`, `y` the labels. Boolean tensors (padding masks) are
    passed on as int32, which the model casts back: under
    `tf.distribute.MirroredStrategy`, Keras 3.15's `model.fit` averages the
    first batch across replicas to build the model, which fails on bool
    tensors (`AddN` has no bool kernel).

    Evaluation batches (`fusion_pipeline(repeat=False)`) carry
    `example_mask`, 0.0 for the rows that pad the last batch: it becomes
    the sample weight (times the class weight), so `model.evaluate` and
    weighted metrics count each real example once and no padding row.

    Args:
        features: dict of batched tensors with `labels` int `(batch,)`, and
            optionally `example_mask` float `(batch,)`.
        class_weights: None, or a list (one weight per class) or dict
            `{class: weight}` of non-negative floats (classes missing from a
            dict weigh 1). Each example is weighted by its class's weight:
            the same as `model.fit(class_weight=...)`, but also usable with
            `mmzoo.training.Trainer` and `evaluate`.

    Returns:
        `(x, y)`, or `(x, y, sample_weight)` with float32 `(batch,)` weights
        when `class_weights` is given or `features` has `example_mask`.

    Example:

    ```python
    train = mmzoo.data.fusion_pipeline(examples, tokenizer, batch_size=32)
    train = train.map(functools.partial(
        mmzoo.models.classification_split, class_weights=[1.0, 4.0]))
    test = mmzoo.data.fusion_pipeline(
        test_examples, tokenizer, batch_size=32, repeat=False, shuffle_buffer=None)
    model.evaluate(test.map(mmzoo.models.classification_split))  # (x, y, mask)
    ```
    """
    if "labels" not in features:
        raise ValueError(
            f"`features` must hold `labels`. Received: keys {sorted(features)}"
        )
    x = {}
    for key, value in features.items():
        if key in ("labels", "example_mask"):
            continue
        if keras.backend.standardize_dtype(value.dtype) == "bool":
            value = ops.cast(value, "int32")
        x[key] = value
    y = features["labels"]
    weight = None
    if "example_mask" in features:
        weight = ops.cast(features["example_mask"], "float32")
    if class_weights is not None:
        weights = ops.convert_to_tensor(_class_weight_vector(class_weights), "float32")
        class_weight = ops.take(weights, ops.cast(y, "int32"))
        weight = class_weight if weight is None else weight * class_weight
    if weight is None:
        return x, y
    return x, y, weight


def _class_weight_vector(class_weights):
    if isinstance(class_weights, dict):
        if not all(isinstance(k, (int, np.integer)) and k >= 0 for k in class_weights):
            raise ValueError(
                "`class_weights` keys must be class ids (ints >= 0). "
                f"Received: class_weights={class_weights!r}"
            )
        vector = np.ones(max(class_weights) + 1, "float32")
        for k, w in class_weights.items():
            vector[k] = w
    else:
        vector = np.asarray(class_weights, "float32")
    if vector.ndim != 1 or not len(vector) or not np.all(np.isfinite(vector)) or np.any(vector < 0):
        raise ValueError(
            "`class_weights` must be a list or dict of finite, non-negative floats, "
            f"one per class. Received: class_weights={class_weights!r}"
        )
    return vector
