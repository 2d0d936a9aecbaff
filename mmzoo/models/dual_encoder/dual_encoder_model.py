import keras
import numpy as np
from keras import ops

from mmzoo.layers import ContrastiveHead
from mmzoo.layers import ProjectionHead
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rate
from mmzoo.data.inputs import as_strings
from mmzoo.data.inputs import check_batch_size
from mmzoo.data.inputs import check_padding_mask
from mmzoo.data.inputs import check_token_ids
from mmzoo.data.inputs import describe
from mmzoo.data.inputs import prepare_pixels
from mmzoo.data.inputs import run_in_batches
from mmzoo.data.inputs import token_vocabulary_size
from mmzoo.data.preprocessing import ImageConverter
from mmzoo.data.preprocessing import VideoConverter
from mmzoo.models.dual_encoder.dual_encoder_preprocessor import DualEncoderPreprocessor
from mmzoo.models.preprocessing import attach_preprocessor


@keras.saving.register_keras_serializable(package="mmzoo")
class DualEncoderHead(ContrastiveHead):
    """The `ContrastiveHead` of a dual encoder, as graph outputs.

    Instead of the `(batch, batch)` logits of one device, it returns what a
    contrastive loss needs to score embeddings against those of every replica:
    both L2-normalised embeddings, and the clamped `logit_scale` (and
    `logit_bias` when `use_bias`) repeated once per example, so that every
    output has a batch axis (`predict` concatenates outputs batch by batch).
    `pair_logits` gives the `ContrastiveHead` logits.

    Args:
        **kwargs: `ContrastiveHead` arguments (`initial_temperature`,
            `max_logit_scale`, `use_bias`, `initial_bias`,
            `trainable_temperature`) and base layer arguments.

    Call arguments:
        embeddings: `(batch_size, dim)`.
        other_embeddings: `(batch_size, dim)`.

    Returns:
        dict with `embeddings`, `other_embeddings` `(batch_size, dim)`,
        `logit_scale` `(batch_size,)` and, with `use_bias`, `logit_bias`
        `(batch_size,)`.

    Example:

    >>> head = mmzoo.models.dual_encoder.DualEncoderHead()
    >>> sorted(head(np.ones((4, 8)), np.ones((4, 8))))
    ['embeddings', 'logit_scale', 'other_embeddings']
    """

    def call(self, embeddings, other_embeddings):
        a = self.normalize(embeddings)
        b = self.normalize(other_embeddings)
        ones = ops.ones_like(a[:, 0])
        outputs = {
            "embeddings": a,
            "other_embeddings": b,
            "logit_scale": ones * ops.cast(self.logit_scale, a.dtype),
        }
        if self.logit_bias is not None:
            outputs["logit_bias"] = ones * ops.cast(self.logit_bias, a.dtype)
        return outputs

    def pair_logits(self, embeddings, other_embeddings):
        """`logit_scale * a @ b.T + logit_bias`, `(batch_a, batch_b)`."""
        return super().call(embeddings, other_embeddings)

    def compute_output_shape(self, embeddings_shape, other_embeddings_shape):
        shapes = {
            "embeddings": tuple(embeddings_shape),
            "other_embeddings": tuple(other_embeddings_shape),
            "logit_scale": (embeddings_shape[0],),
        }
        if self.use_bias:
            shapes["logit_bias"] = (embeddings_shape[0],)
        return shapes


def _modality(encoder, argument):
    """`"image"`, `"video"` or `"text"`, from the tower's inputs."""
    if isinstance(encoder.input, dict):
        if "token_ids" in encoder.input:
            return "text"
        raise ValueError(
            f"`{argument}` takes a dict without `token_ids`; text towers take "
            f"`token_ids` and `padding_mask`. Received: inputs {sorted(encoder.input)}"
        )
    if len(encoder.inputs) != 1:
        raise ValueError(
            f"`{argument}` must take one images/videos tensor or a text dict. "
            f"Received: {len(encoder.inputs)} inputs"
        )
    rank = len(encoder.inputs[0].shape)
    if rank == 4:
        return "image"
    if rank == 5:
        return "video"
    raise ValueError(
        f"`{argument}` must take images (batch, height, width, channels), videos "
        "(batch, frames, height, width, channels) or text. Received: input shape "
        f"{encoder.inputs[0].shape}"
    )


def _pooled(encoder, outputs, argument):
    """The tower's pooled `(batch, dim)` features."""
    if isinstance(outputs, dict):
        if "pooled_output" not in outputs:
            raise ValueError(
                f"`{argument}` returns a dict without `pooled_output` (every mmzoo "
                f"encoder has one). Received: outputs {sorted(outputs)}"
            )
        outputs = outputs["pooled_output"]
    if len(outputs.shape) != 2:
        raise ValueError(
            f"`{argument}` must return pooled features (batch_size, dim). "
            f"Received: output shape {outputs.shape}"
        )
    return outputs


def _tower_inputs(encoder, prefix):
    """Fresh `keras.Input`s for a tower, named by its input keys (+ prefix)."""
    if isinstance(encoder.input, dict):
        return {
            key: keras.Input(
                shape=tuple(spec.shape[1:]), dtype=spec.dtype, name=prefix + key
            )
            for key, spec in encoder.input.items()
        }
    spec = encoder.inputs[0]
    key = "images" if len(spec.shape) == 4 else "videos"
    return keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype, name=prefix + key)


def _attach(preprocessor, image_encoder, second_encoder, second_modality):
    """Checks `preprocessor` against the towers and completes it (length, converter)."""
    if preprocessor is None:
        return None
    shape = tuple(image_encoder.inputs[0].shape[1:])
    is_video = len(shape) == 4
    vocabulary_size, expected = None, {}
    if isinstance(preprocessor, DualEncoderPreprocessor):
        if second_modality == "text":
            vocabulary_size = token_vocabulary_size(second_encoder)
            length = second_encoder.input["token_ids"].shape[1]
            if length is not None:  # KerasHub towers take any length
                expected["sequence_length"] = int(length)
            # A BERT-style tower (KerasHub's BertBackbone) takes segment
            # ids: the pipelines and exports then make them (one segment).
            preprocessor.return_segment_ids = "segment_ids" in second_encoder.input
        elif preprocessor.tokenizer is not None:
            raise ValueError(
                "A two-view model (no text tower) takes a preprocessor without a "
                f"tokenizer. Received: preprocessor.tokenizer={preprocessor.tokenizer!r}"
            )
        else:
            other = tuple(second_encoder.inputs[0].shape[1:])
            if other != shape:
                raise ValueError(
                    "With a preprocessor, both views go through its one converter, so "
                    "the two towers must take the same input shape. Received: "
                    f"image_encoder input {shape}, text_encoder input {other}"
                )
        have, want = (
            ("image_converter", "video_converter") if is_video
            else ("video_converter", "image_converter")
        )
        if getattr(preprocessor, have) is not None:
            raise ValueError(
                f"The image tower takes {'videos' if is_video else 'images'}, so the "
                f"preprocessor needs a `{want}`. Received: {have}={getattr(preprocessor, have)!r}"
            )
        if preprocessor.converter is None:
            converter = (
                VideoConverter(shape[0], shape[1:], name="video_converter") if is_video
                else ImageConverter(shape, name="image_converter")
            )
            setattr(preprocessor, want, converter)
        expected["image_shape"] = shape[-3:]
        if is_video:
            expected["num_frames"] = shape[0]
    return attach_preprocessor(
        preprocessor, DualEncoderPreprocessor, vocabulary_size, **expected
    )


def _input_dict(tower_inputs):
    if isinstance(tower_inputs, dict):
        return {t.name: t for t in tower_inputs.values()}
    return {tower_inputs.name: tower_inputs}


@keras.saving.register_keras_serializable(package="mmzoo")
class DualEncoder(keras.Model):
    """Two towers projected into one embedding space (CLIP, SigLIP, SimCLR).

    A functional graph: each tower's pooled output -> `ProjectionHead` (a
    linear map, or an MLP with `projection_intermediate_dim`) ->
    `DualEncoderHead` (L2 normalisation; learned, clamped logit scale and
    optional bias; in float32 under mixed precision).

    Tower pairs:

    * image or video + text (CLIP / SigLIP; video-text retrieval): inputs
      `images` (or `videos`), `token_ids`, `padding_mask`; outputs
      `image_embeddings` (or `video_embeddings`) and `text_embeddings`.
    * two towers of the same modality, e.g. two image towers, or
      `text_encoder=None` for one shared tower and one shared projection
      (SimCLR): every input key gets a view prefix, `view_1_images` and
      `view_2_images`; outputs `view_1_embeddings` and `view_2_embeddings`.

    The outputs also hold `logit_scale` and, with `use_bias`, `logit_bias`,
    one copy per example `(batch_size,)`. The contrastive losses of
    `mmzoo.losses` (`CLIPLoss`, `SigLIPLoss`, `NTXentLoss`) read these
    outputs rather than a logit matrix, so that under a `tf.distribute`
    strategy they can score each replica's rows against the embeddings of
    all replicas. Keras applies a single `compile` loss to each output of a
    dict-output model separately (`CompileLoss.build` maps it over `y_pred`);
    `compute_loss` below gives such losses the whole dict instead, so
    `model.compile(loss=mmzoo.losses.CLIPLoss())` and `model.fit(dataset)`
    work with datasets that yield the inputs alone (no labels).

    With several CPU replicas, compile with `jit_compile=False`: XLA cannot
    compile the all-gather collective on CPU (the loss says so if you try).
    Under MirroredStrategy, `model.fit` averages the first batch across
    replicas to build the model (Keras 3.15), which fails on a bool
    `padding_mask` (`AddN` has no bool kernel): feed it as int32 there
    (the model casts it back), or train with `mmzoo.training.Trainer`.

    Args:
        image_encoder: `keras.Model` image or video tower (any mmzoo image or
            video encoder): one input `(batch, height, width, channels)` or
            `(batch, frames, height, width, channels)`, output dict with
            `pooled_output` (or one `(batch, dim)` tensor).
        text_encoder: `keras.Model` second tower (an mmzoo text encoder, or
            another image/video tower for two views), or None to share
            `image_encoder` (and its projection) between two views.
        projection_dim: int. Size of the shared embedding space.
        projection_intermediate_dim: int or None. Hidden size of a two-layer
            MLP projection (SimCLR); None for CLIP's linear projection.
        initial_temperature: float. The logit scale starts at its inverse
            (CLIP 0.07, SigLIP 0.1).
        max_logit_scale: float. Upper clamp of the logit scale (CLIP: 100).
        trainable_temperature: bool. Learn the scale (False: SimCLR's fixed
            temperature).
        use_bias: bool. Learn a logit bias (SigLIP).
        initial_bias: float. SigLIP starts at -10.
        freeze_image_encoder: bool. Lock the image tower (LiT: a pretrained,
            frozen image tower with a trained text tower).
        freeze_text_encoder: bool. Lock the text tower.
        dropout_rate: float. Dropout in an MLP projection.
        preprocessor: `DualEncoderPreprocessor` or None. Kept by the model
            and saved in its `.keras` file, so that `encode_text` takes
            strings and `encode_images` takes images of any size, image
            files or encoded bytes. The model sets its `sequence_length` (the
            text tower's) and, when it has none, its image or video
            converter (the image tower's input shape).
        **kwargs: `name`, `dtype` (e.g. `"mixed_bfloat16"`), ...

    Example:

    ```python
    tokenizer = mmzoo.data.TextTokenizer(vocabulary)
    model = mmzoo.models.build_dual_encoder(
        mmzoo.presets.build_from_preset("vit_image_encoder_tiny"),
        mmzoo.presets.build_from_preset(
            "text_encoder_tiny", vocabulary_size=tokenizer.vocabulary_size),
        projection_dim=64,
        preprocessor=mmzoo.models.DualEncoderPreprocessor(tokenizer))
    model.compile(optimizer="adam", loss=mmzoo.losses.CLIPLoss())
    model.fit(mmzoo.data.contrastive_pipeline(examples, model, 64), steps_per_epoch=100)
    text = model.encode_text(["a red circle"])           # (1, 64), L2-normalised
    images = model.encode_images(["cat.jpg", pixels])    # (2, 64), any image size
    scores = text @ images.T
    ```
    """

    def __init__(
        self,
        image_encoder,
        text_encoder,
        projection_dim,
        projection_intermediate_dim=None,
        initial_temperature=0.07,
        max_logit_scale=100.0,
        trainable_temperature=True,
        use_bias=False,
        initial_bias=0.0,
        freeze_image_encoder=False,
        freeze_text_encoder=False,
        dropout_rate=0.0,
        preprocessor=None,
        dtype=None,
        **kwargs,
    ):
        if not isinstance(image_encoder, keras.Model):
            raise ValueError(
                f"`image_encoder` must be a keras.Model. Received: image_encoder={image_encoder!r}"
            )
        if text_encoder is not None and not isinstance(text_encoder, keras.Model):
            raise ValueError(
                "`text_encoder` must be a keras.Model or None (one tower shared by two "
                f"views). Received: text_encoder={text_encoder!r}"
            )
        if text_encoder is image_encoder:
            text_encoder = None  # one shared tower; stored once in the config
        # Plain Python numbers (NumPy scalars are accepted), for a JSON-clean config.
        projection_dim = check_positive_int("projection_dim", projection_dim)
        if projection_intermediate_dim is not None:
            projection_intermediate_dim = check_positive_int(
                "projection_intermediate_dim", projection_intermediate_dim
            )
        dropout_rate = check_rate("dropout_rate", dropout_rate)
        first_modality = _modality(image_encoder, "image_encoder")
        if first_modality == "text":
            raise ValueError(
                "`image_encoder` must be an image or video tower (the text tower is "
                "`text_encoder`). Received: an encoder taking "
                f"{sorted(image_encoder.input)}"
            )
        shared = text_encoder is None
        second_encoder = image_encoder if shared else text_encoder
        second_modality = _modality(second_encoder, "text_encoder")
        if not shared and text_encoder.name == image_encoder.name:
            raise ValueError(
                "The two towers must have different names (layers are matched by "
                "name when saving); pass `name=` to one of the encoder builders. "
                f"Received: both named {image_encoder.name!r}"
            )
        two_views = second_modality == first_modality
        if shared and freeze_text_encoder != freeze_image_encoder:
            raise ValueError(
                "A shared tower is frozen or not as a whole: pass the same "
                "`freeze_image_encoder` and `freeze_text_encoder`. Received: "
                f"freeze_image_encoder={freeze_image_encoder}, "
                f"freeze_text_encoder={freeze_text_encoder}"
            )

        # === Layers ===
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        image_encoder.trainable = not freeze_image_encoder
        if text_encoder is not None:
            text_encoder.trainable = not freeze_text_encoder

        def projection(name):
            return ProjectionHead(
                projection_dim,
                intermediate_dim=projection_intermediate_dim,
                dropout_rate=dropout_rate,
                dtype=dtype,
                name=name,
            )

        self.image_projection = projection("image_projection")
        self.text_projection = self.image_projection if shared else projection("text_projection")
        # Normalisation and logits in float32 whatever the compute dtype.
        self.head = DualEncoderHead(
            initial_temperature=initial_temperature,
            max_logit_scale=max_logit_scale,
            use_bias=use_bias,
            initial_bias=initial_bias,
            trainable_temperature=trainable_temperature,
            dtype="float32",
            name="contrastive_head",
        )

        # === Functional Model ===
        if two_views:
            first_prefix, second_prefix = "view_1_", "view_2_"
            first_key, second_key = "view_1_embeddings", "view_2_embeddings"
        else:
            first_prefix = second_prefix = ""
            first_key = f"{first_modality}_embeddings"
            second_key = f"{second_modality}_embeddings"
        first_inputs = _tower_inputs(image_encoder, first_prefix)
        second_inputs = _tower_inputs(second_encoder, second_prefix)
        image_features = self.image_projection(
            _pooled(image_encoder, image_encoder(first_inputs), "image_encoder")
        )
        text_features = self.text_projection(
            _pooled(second_encoder, second_encoder(_strip(second_inputs, second_prefix)),
                    "text_encoder")
        )
        head_outputs = self.head(image_features, text_features)
        outputs = {
            first_key: head_outputs["embeddings"],
            second_key: head_outputs["other_embeddings"],
            "logit_scale": head_outputs["logit_scale"],
        }
        if use_bias:
            outputs["logit_bias"] = head_outputs["logit_bias"]
        inputs = {**_input_dict(first_inputs), **_input_dict(second_inputs)}
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.projection_dim = projection_dim
        self.projection_intermediate_dim = projection_intermediate_dim
        self.initial_temperature = initial_temperature
        self.max_logit_scale = max_logit_scale
        self.trainable_temperature = trainable_temperature
        self.use_bias = use_bias
        self.initial_bias = initial_bias
        self.freeze_image_encoder = freeze_image_encoder
        self.freeze_text_encoder = freeze_text_encoder
        self.dropout_rate = dropout_rate
        # Output keys of the two embeddings, the second tower's input-key
        # prefix (two views), and each tower's modality.
        self.embedding_keys = (first_key, second_key)
        self.text_input_prefix = second_prefix
        self.image_modality = first_modality
        self.text_modality = second_modality
        self.preprocessor = _attach(preprocessor, image_encoder, second_encoder, second_modality)
        self._encode_functions = {}

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
            "text_encoder": (
                None
                if self.text_encoder is None
                else keras.saving.serialize_keras_object(self.text_encoder)
            ),
            "projection_dim": self.projection_dim,
            "projection_intermediate_dim": self.projection_intermediate_dim,
            "initial_temperature": self.initial_temperature,
            "max_logit_scale": self.max_logit_scale,
            "trainable_temperature": self.trainable_temperature,
            "use_bias": self.use_bias,
            "initial_bias": self.initial_bias,
            "freeze_image_encoder": self.freeze_image_encoder,
            "freeze_text_encoder": self.freeze_text_encoder,
            "dropout_rate": self.dropout_rate,
            "preprocessor": (
                None if self.preprocessor is None
                else keras.saving.serialize_keras_object(self.preprocessor)
            ),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("image_encoder", "text_encoder", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    # ------------------------------------------------------------- loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Gives whole-output losses (the `mmzoo.losses` contrastive ones) the dict.

        A loss whose `takes_output_dict` is True gets the model's whole output
        dict, and `y` may be None (datasets yielding inputs only). Any other
        `compile` loss goes through Keras's usual per-output handling.
        """
        if not getattr(self.loss, "takes_output_dict", False):
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        total = self.loss(y, y_pred, sample_weight)
        for extra in self.losses:  # regularisation, as Keras adds it
            total = total + self._aggregate_additional_loss(extra)
        return total

    # ------------------------------------------------------- embeddings
    def encode_images_tensor(self, images, training=False):
        """`encode_images` on tensors, traceable (no batching, no numpy):
        float32 `(batch, projection_dim)`, L2-normalised. Used by the export."""
        features = self.image_encoder(images, training=training)
        features = _pooled(self.image_encoder, features, "image_encoder")
        return self.head.normalize(ops.cast(self.image_projection(features), "float32"))

    def encode_text_tensor(self, inputs, training=False):
        """`encode_text` on token tensors (or a second view), traceable:
        float32 `(batch, projection_dim)`, L2-normalised. Used by the export."""
        encoder = self.image_encoder if self.text_encoder is None else self.text_encoder
        if isinstance(inputs, dict):
            inputs = {
                k: ops.cast(v, "bool") if k == "padding_mask" else ops.convert_to_tensor(v)
                for k, v in _strip(inputs, self.text_input_prefix).items()
            }
            if "segment_ids" in encoder.input and "segment_ids" not in inputs:
                # A BERT-style tower: one segment.
                inputs["segment_ids"] = ops.zeros_like(inputs["token_ids"])
        features = _pooled(encoder, encoder(inputs, training=training), "text_encoder")
        return self.head.normalize(ops.cast(self.text_projection(features), "float32"))

    def encode_images(self, images, batch_size=None):
        """L2-normalised embeddings of images (or videos, for a video tower).

        Inputs are checked in NumPy before anything is compiled.

        Args:
            images: array `(n, height, width, channels)` (or `(n, frames,
                height, width, channels)`): floats in [0, 1], or uint8 in
                [0, 255] (scaled by 1/255). NaN, inf and floats outside
                [0, 1] (by more than 1/255) are refused. With a
                preprocessor, also images of any size and 1 to 4 channels,
                and lists of image file paths or encoded bytes
                (`mmzoo.data.ImageConverter.convert`; videos as in
                `mmzoo.data.VideoConverter.convert`).
            batch_size: positive int, or None for all images at once.
                Encode in batches of this size (the last one padded, so one
                compiled function serves all).

        Returns:
            float32 numpy array `(n, projection_dim)`; `(0, projection_dim)`
            for no images, without running the model.
        """
        batch_size = check_batch_size(batch_size)
        images = self._prepare_pixels("images", images, self.image_encoder)
        return self._run_batched("image", images, batch_size)

    def _prepare_pixels(self, name, pixels, encoder):
        if self.preprocessor is not None:
            return self.preprocessor.preprocess_images(pixels, name=name)
        expected = tuple(encoder.inputs[0].shape[1:])
        return prepare_pixels(name, pixels, expected, batch_name="n")

    def encode_text(self, inputs, batch_size=None):
        """L2-normalised embeddings of texts (of the second tower's inputs).

        Inputs are checked in NumPy before anything is compiled.

        Args:
            inputs: a str or a list (or 1-D array) of strings (or UTF-8
                bytes; invalid sequences become U+FFFD) when the model has a
                preprocessor with a tokenizer: empty strings are encoded as
                start and end tokens, long ones are cut to the text tower's
                `sequence_length`. Or a dict with `token_ids` int and
                `padding_mask` bool arrays `(n, sequence_length)` (ids in
                the text encoder's vocabulary; other keys are ignored).
                For a two-view model, the second view's inputs: images or
                videos as in `encode_images`.
            batch_size: positive int, or None, as in `encode_images`.

        Returns:
            float32 numpy array `(n, projection_dim)`; `(0, projection_dim)`
            for no texts (an empty list), without running the model.
        """
        batch_size = check_batch_size(batch_size)
        return self._run_batched("text", self._prepare_text_inputs(inputs), batch_size)

    def _prepare_text_inputs(self, inputs):
        """`encode_text`'s inputs, checked: an array (visual view) or a dict of arrays."""
        encoder = self.image_encoder if self.text_encoder is None else self.text_encoder
        if self.text_modality != "text":  # a second image or video view
            if isinstance(inputs, dict) and len(inputs) == 1:
                (inputs,) = inputs.values()
            return self._prepare_pixels("inputs", inputs, encoder)
        keys = sorted(encoder.input)
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, dict):
            texts = as_strings("inputs", inputs, "strings or a token dict")
            if texts is None:
                raise ValueError(
                    "`encode_text` takes strings (with a preprocessor's tokenizer) or a "
                    f"dict with {keys} arrays (n, sequence_length). Received: inputs of "
                    f"{describe(inputs)}"
                )
            if not texts:
                return {
                    key: np.zeros((0,) + tuple(d or 1 for d in spec.shape[1:]), spec.dtype)
                    for key, spec in encoder.input.items()
                }
            if self.preprocessor is None or self.preprocessor.tokenizer is None:
                raise ValueError(
                    "`encode_text` got strings but the model has no tokenizer; build it "
                    "with `preprocessor=mmzoo.models.DualEncoderPreprocessor(tokenizer)` "
                    f"or pass token ids. Received: {len(texts)} strings"
                )
            token_ids, padding_mask = self.preprocessor.tokenize_strings(texts, "inputs")
            inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
            if "segment_ids" in keys:  # a BERT-style tower: one segment
                inputs["segment_ids"] = np.zeros_like(token_ids)
        inputs = _strip(inputs, self.text_input_prefix)
        missing = [key for key in keys if key not in inputs]
        if missing:
            raise ValueError(
                f"`encode_text` takes a dict with {keys} (the text encoder's inputs); "
                f"{missing} missing. Received: inputs with keys {sorted(map(str, inputs))}"
            )
        inputs = {key: inputs[key] for key in keys}  # other keys (`images`) are ignored
        if "padding_mask" not in keys:
            return {key: np.asarray(value) for key, value in inputs.items()}
        length = encoder.input["token_ids"].shape[1]
        if length is None and np.ndim(inputs["token_ids"]) == 2:  # KerasHub towers: any length
            length = np.shape(inputs["token_ids"])[1]
        token_ids = check_token_ids(
            "token_ids", inputs["token_ids"], length, token_vocabulary_size(encoder),
            hint=" (the text encoder's sequence_length; use a tokenizer with that sequence_length)",
        )
        checked = {
            "token_ids": token_ids,
            "padding_mask": check_padding_mask(
                "padding_mask", inputs["padding_mask"], token_ids.shape
            ),
        }
        if "segment_ids" in keys:
            checked["segment_ids"] = check_token_ids("segment_ids", inputs["segment_ids"], length)
        return checked

    def pair_logits(self, image_embeddings, text_embeddings):
        """Logits `(n_images, n_texts)`: `logit_scale * a @ b.T (+ logit_bias)`.

        Args:
            image_embeddings: float `(n_images, projection_dim)`, from
                `encode_images`.
            text_embeddings: float `(n_texts, projection_dim)`, from
                `encode_text`.

        Returns:
            float32 numpy array `(n_images, n_texts)`.
        """
        arrays = []
        for name, embeddings in (
            ("image_embeddings", image_embeddings), ("text_embeddings", text_embeddings)
        ):
            array = np.asarray(embeddings)
            if (
                array.ndim != 2
                or array.shape[1] != self.projection_dim
                or not np.issubdtype(array.dtype, np.number)
            ):
                raise ValueError(
                    f"`{name}` must be a float array (n, {self.projection_dim}) (the "
                    f"model's projection_dim). Received: {name} with dtype {array.dtype} "
                    f"and shape {array.shape}"
                )
            arrays.append(ops.convert_to_tensor(array.astype("float32")))
        return ops.convert_to_numpy(self.head.pair_logits(*arrays))

    def _encode_function(self, tower):
        if tower in self._encode_functions:
            return self._encode_functions[tower]
        fn = self.encode_images_tensor if tower == "image" else self.encode_text_tensor
        if keras.config.backend() == "tensorflow":
            import tensorflow as tf  # compilation is backend-specific

            # No autograph: there is no tensor-dependent Python control flow.
            fn = tf.function(fn, jit_compile=True, autograph=False)
        self._encode_functions[tower] = fn
        return fn

    def _run_batched(self, tower, inputs, batch_size):
        empty = np.zeros((0, self.projection_dim), "float32")
        function = self._encode_function(tower)
        return run_in_batches(function, (inputs,), batch_size, empty).astype("float32")


def _strip(inputs, prefix):
    """A tower's own input keys from the model's (view-prefixed) ones."""
    if not prefix or not isinstance(inputs, dict):
        return inputs
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in inputs.items()}


def build_dual_encoder(image_encoder, text_encoder, projection_dim, **kwargs):
    """Builds a `DualEncoder` (see its docstring for all arguments).

    Args:
        image_encoder: any mmzoo image or video encoder.
        text_encoder: an mmzoo text encoder; another image/video encoder for
            two-view (SimCLR-style) training; or None to share `image_encoder`.
        projection_dim: int. Embedding size.
        **kwargs: `projection_intermediate_dim`, `initial_temperature`,
            `max_logit_scale`, `trainable_temperature`, `use_bias`,
            `initial_bias`, `freeze_image_encoder`, `freeze_text_encoder`,
            `dropout_rate`, `name`, `dtype`.

    Returns:
        A `DualEncoder`.

    Example:

    ```python
    clip = mmzoo.models.build_dual_encoder(
        mmzoo.presets.build_from_preset("vit_image_encoder_tiny"),
        mmzoo.presets.build_from_preset("text_encoder_tiny"), projection_dim=32)
    simclr = mmzoo.models.build_dual_encoder(
        mmzoo.presets.build_from_preset("vit_image_encoder_tiny"), None,
        projection_dim=32, projection_intermediate_dim=64,
        initial_temperature=0.1, trainable_temperature=False)
    lit = mmzoo.models.build_dual_encoder(
        pretrained_image_tower, text_tower, projection_dim=32,
        freeze_image_encoder=True)
    ```
    """
    return DualEncoder(image_encoder, text_encoder, projection_dim, **kwargs)
