"""`DualEncoder`: an image or video tower and a text tower (CLIP, SigLIP, LiT)."""

import keras
import numpy as np
from keras import ops

from mmzoo.data.inputs import as_strings
from mmzoo.data.inputs import check_batch_size
from mmzoo.data.inputs import check_padding_mask
from mmzoo.data.inputs import check_token_ids
from mmzoo.data.inputs import describe
from mmzoo.data.inputs import token_vocabulary_size
from mmzoo.models.dual_encoder.dual_encoder_base import ContrastiveEncoder
from mmzoo.models.dual_encoder.dual_encoder_base import attach_dual_encoder_preprocessor
from mmzoo.models.dual_encoder.dual_encoder_base import check_different_names
from mmzoo.models.dual_encoder.dual_encoder_base import check_head_arguments
from mmzoo.models.dual_encoder.dual_encoder_base import check_tower
from mmzoo.models.dual_encoder.dual_encoder_base import describe_tower
from mmzoo.models.dual_encoder.dual_encoder_base import input_dict
from mmzoo.models.dual_encoder.dual_encoder_base import pooled_features
from mmzoo.models.dual_encoder.dual_encoder_base import tower_inputs
from mmzoo.models.dual_encoder.dual_encoder_base import tower_modality
from mmzoo.models.dual_encoder.keras_hub_dual_encoder import dual_encoder_from_keras_hub
from mmzoo.models.dual_encoder.momentum import check_momentum
from mmzoo.models.dual_encoder.two_view_encoder_model import TwoViewEncoder


@keras.saving.register_keras_serializable(package="mmzoo")
class DualEncoder(ContrastiveEncoder):
    """An image or video tower and a text tower in one embedding space (CLIP, SigLIP).

    A functional graph: each tower's pooled output -> `ProjectionHead` (a
    linear map, or an MLP with `projection_intermediate_dim`) ->
    `DualEncoderHead` (L2 normalisation; learned, clamped logit scale and
    optional bias; in float32 under mixed precision).

    Inputs `images` (or `videos` for a video tower), `token_ids`,
    `padding_mask` (and `segment_ids` for a BERT-style text tower); outputs
    `image_embeddings` (or `video_embeddings`) and `text_embeddings`
    `(batch_size, projection_dim)`, L2-normalised. Two views of one modality
    (SimCLR, or two image towers) are `mmzoo.models.TwoViewEncoder`'s graph.
    With `momentum`, training-mode calls also return the momentum encoder's
    `image_keys` and `text_keys` and, with `queue_size`, `image_queue`,
    `text_queue` `(queue_size, projection_dim)` and `queue_mask`
    `(queue_size,)` (see the `momentum` argument).

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
        text_encoder: `keras.Model` text tower (an mmzoo text encoder or a
            KerasHub backbone) taking `token_ids` and `padding_mask`.
        projection_dim: int. Size of the shared embedding space. None for
            no projection: the towers' pooled outputs (of one size) are the
            embeddings (SigLIP's towers end in their own heads).
        projection_intermediate_dim: int or None. Hidden size of a two-layer
            MLP projection; None for CLIP's linear projection.
        projection_use_bias: bool. Whether the projection has biases (CLIP's
            has none).
        initial_temperature: float. The logit scale starts at its inverse
            (CLIP 0.07, SigLIP 0.1).
        max_logit_scale: float. Upper clamp of the logit scale (CLIP: 100).
        trainable_temperature: bool. Learn the scale (False: a fixed
            temperature).
        use_bias: bool. Learn a logit bias (SigLIP).
        initial_bias: float. SigLIP starts at -10.
        freeze_image_encoder: bool. Lock the image tower (LiT: a pretrained,
            frozen image tower with a trained text tower).
        freeze_text_encoder: bool. Lock the text tower.
        dropout_rate: float. Dropout in an MLP projection.
        momentum: None, or a float in [0, 1): keep a momentum encoder, a
            copy of both towers and projections whose weights follow the
            trained ones as `momentum * copy + (1 - momentum) * trained` at
            every training forward pass (MoCo, ALBEF; e.g. 0.995). In
            training mode the model then also outputs the copy's embeddings
            of the batch, `*_keys`, which `mmzoo.losses.CLIPLoss` uses as
            positives and in-batch negatives.
        queue_size: int >= 0. With `momentum`, a feature queue of the keys of
            the last `queue_size` training examples (gathered across
            replicas), used as extra negatives by `CLIPLoss`; a multiple of
            the global batch size. The queue and the copy are saved with the
            model and in checkpoints. Cached gradient accumulation
            (`Trainer(accumulation_steps>1)` with a contrastive loss) is
            refused for a model with `momentum`: each forward pass moves the
            copy and the queue.
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
        projection_use_bias=True,
        initial_temperature=0.07,
        max_logit_scale=100.0,
        trainable_temperature=True,
        use_bias=False,
        initial_bias=0.0,
        freeze_image_encoder=False,
        freeze_text_encoder=False,
        dropout_rate=0.0,
        momentum=None,
        queue_size=0,
        preprocessor=None,
        dtype=None,
        **kwargs,
    ):
        check_tower(image_encoder, "image_encoder")
        if text_encoder is None:
            raise ValueError(
                "`DualEncoder` takes an image or video tower and a text tower. For two "
                "views of one modality with one shared tower (SimCLR), use "
                "`mmzoo.models.build_two_view_encoder(encoder, projection_dim)`. "
                "Received: text_encoder=None"
            )
        check_tower(text_encoder, "text_encoder")
        check_momentum(momentum, queue_size)
        projection_dim, projection_intermediate_dim, dropout_rate = check_head_arguments(
            projection_dim, projection_intermediate_dim, dropout_rate
        )
        image_modality = tower_modality(image_encoder, "image_encoder")
        if image_modality == "text":
            raise ValueError(
                "`image_encoder` must be an image or video tower (the text tower is "
                f"`text_encoder`). Received: {describe_tower(image_encoder)}"
            )
        if tower_modality(text_encoder, "text_encoder") != "text":
            raise ValueError(
                "`text_encoder` must be a text tower (inputs `token_ids` and "
                "`padding_mask`). For two towers of the same modality, use "
                "`mmzoo.models.build_two_view_encoder(encoder, projection_dim, "
                f"second_encoder=...)`. Received: text_encoder={describe_tower(text_encoder)}"
            )
        check_different_names(image_encoder, text_encoder, ("image_encoder", "text_encoder"))

        # === Layers ===
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        image_encoder.trainable = not freeze_image_encoder
        text_encoder.trainable = not freeze_text_encoder
        self.image_projection = self._make_projection(
            "image_projection", projection_dim, projection_intermediate_dim, dropout_rate,
            projection_use_bias, dtype,
        )
        self.text_projection = self._make_projection(
            "text_projection", projection_dim, projection_intermediate_dim, dropout_rate,
            projection_use_bias, dtype,
        )
        self.head = self._make_head(
            initial_temperature, max_logit_scale, use_bias, initial_bias, trainable_temperature
        )

        # === Functional Model ===
        embedding_keys = (f"{image_modality}_embeddings", "text_embeddings")
        image_inputs = tower_inputs(image_encoder, "")
        text_inputs = tower_inputs(text_encoder, "")
        image_pooled = pooled_features(image_encoder, image_encoder(image_inputs), "image_encoder")
        text_pooled = pooled_features(text_encoder, text_encoder(text_inputs), "text_encoder")
        embedding_dim = self._embedding_dim(
            projection_dim, (image_pooled, text_pooled), ("image_encoder", "text_encoder")
        )
        image_features = self.image_projection(image_pooled)
        text_features = self.text_projection(text_pooled)
        outputs = self._head_outputs(image_features, text_features, embedding_keys)
        inputs = {**input_dict(image_inputs), **input_dict(text_inputs)}
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self._set_head_config(
            projection_dim=embedding_dim,
            projection_intermediate_dim=projection_intermediate_dim,
            projection_use_bias=projection_use_bias,
            initial_temperature=initial_temperature,
            max_logit_scale=max_logit_scale,
            trainable_temperature=trainable_temperature,
            use_bias=use_bias,
            initial_bias=initial_bias,
            dropout_rate=dropout_rate,
        )
        self.freeze_image_encoder = freeze_image_encoder
        self.freeze_text_encoder = freeze_text_encoder
        # Output keys of the two embeddings, and the image tower's modality.
        self.embedding_keys = embedding_keys
        self.image_modality = image_modality
        self.preprocessor = attach_dual_encoder_preprocessor(
            preprocessor, image_encoder, text_encoder=text_encoder
        )
        self._set_momentum(momentum, queue_size, [
            (image_modality, image_encoder, self.image_projection, "", "image_encoder"),
            ("text", text_encoder, self.text_projection, "", "text_encoder"),
        ])

    @classmethod
    def from_keras_hub(cls, preset, **kwargs):
        """A `DualEncoder` from a keras-hub CLIP, SigLIP or MetaCLIP 2 preset or backbone.

        For the same images and token ids, `pair_logits` equals keras-hub's
        `vision_logits`; the preset's tokenizer and image normalisation
        become the model's preprocessor. See
        `mmzoo.models.dual_encoder.keras_hub_dual_encoder.dual_encoder_from_keras_hub`
        for the arguments (`preprocessor`, `load_weights`,
        `freeze_image_encoder`, `freeze_text_encoder`, `max_logit_scale`,
        `dtype`, `name`, ...).

        Example:

        ```python
        model = mmzoo.models.DualEncoder.from_keras_hub("clip_vit_base_patch16")
        lit = mmzoo.models.DualEncoder.from_keras_hub(
            "siglip_base_patch16_224", freeze_image_encoder=True)
        ```
        """
        return dual_encoder_from_keras_hub(preset, **kwargs)

    def get_config(self):
        return self._model_config(
            image_encoder=self.image_encoder,
            text_encoder=self.text_encoder,
            freeze_image_encoder=self.freeze_image_encoder,
            freeze_text_encoder=self.freeze_text_encoder,
        )

    @classmethod
    def from_config(cls, config):
        if config.get("text_encoder") is None:
            # A two-view model saved before `TwoViewEncoder` existed (one
            # shared tower): its layers have the names `TwoViewEncoder`
            # gives them, so the file's weights load into it.
            return TwoViewEncoder.from_config(_two_view_config(config))
        return super().from_config(config)

    # ------------------------------------------------------- embeddings
    def encode_images_tensor(self, images, training=False):
        """`encode_images` on tensors, traceable (no batching, no numpy):
        float32 `(batch, projection_dim)`, L2-normalised. Used by the export."""
        return self._embed(
            self.image_encoder, self.image_projection, images, training, "image_encoder"
        )

    def encode_text_tensor(self, inputs, training=False):
        """`encode_text` on token tensors, traceable: float32 `(batch,
        projection_dim)`, L2-normalised. Used by the export."""
        inputs = {
            k: ops.cast(v, "bool") if k == "padding_mask" else ops.convert_to_tensor(v)
            for k, v in inputs.items()
        }
        if "segment_ids" in self.text_encoder.input and "segment_ids" not in inputs:
            # A BERT-style tower: one segment.
            inputs["segment_ids"] = ops.zeros_like(inputs["token_ids"])
        return self._embed(
            self.text_encoder, self.text_projection, inputs, training, "text_encoder"
        )

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
        return self._run_batched("image", self.encode_images_tensor, images, batch_size)

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
            batch_size: positive int, or None, as in `encode_images`.

        Returns:
            float32 numpy array `(n, projection_dim)`; `(0, projection_dim)`
            for no texts (an empty list), without running the model.
        """
        batch_size = check_batch_size(batch_size)
        return self._run_batched(
            "text", self.encode_text_tensor, self._prepare_text_inputs(inputs), batch_size
        )

    def _prepare_text_inputs(self, inputs):
        """`encode_text`'s inputs (strings or a token dict), checked, as a dict of arrays."""
        encoder = self.text_encoder
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
        return self._pair_logits(
            (("image_embeddings", image_embeddings), ("text_embeddings", text_embeddings))
        )


def _two_view_config(config):
    """A `TwoViewEncoder` config from a `DualEncoder` one without a text tower."""
    config = dict(config)
    config.pop("text_encoder", None)
    config.pop("freeze_text_encoder", None)
    config["encoder"] = config.pop("image_encoder")
    config["freeze_encoder"] = config.pop("freeze_image_encoder", False)
    return config


def build_dual_encoder(image_encoder, text_encoder, projection_dim, **kwargs):
    """Builds a `DualEncoder` (see its docstring for all arguments).

    Args:
        image_encoder: any mmzoo image or video encoder.
        text_encoder: an mmzoo text encoder (or a KerasHub text backbone).
        projection_dim: int. Embedding size.
        **kwargs: `projection_intermediate_dim`, `projection_use_bias`,
            `initial_temperature`,
            `max_logit_scale`, `trainable_temperature`, `use_bias`,
            `initial_bias`, `freeze_image_encoder`, `freeze_text_encoder`,
            `dropout_rate`, `preprocessor`, `name`, `dtype`.

    Returns:
        A `DualEncoder`. For two views of one modality (SimCLR), see
        `mmzoo.models.build_two_view_encoder`.

    Example:

    ```python
    clip = mmzoo.models.build_dual_encoder(
        mmzoo.presets.build_from_preset("vit_image_encoder_tiny"),
        mmzoo.presets.build_from_preset("text_encoder_tiny"), projection_dim=32)
    lit = mmzoo.models.build_dual_encoder(
        pretrained_image_tower, text_tower, projection_dim=32,
        freeze_image_encoder=True)
    ```
    """
    return DualEncoder(image_encoder, text_encoder, projection_dim, **kwargs)
