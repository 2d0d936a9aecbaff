"""`TwoViewEncoder`: two views of one modality in one embedding space (SimCLR)."""

import keras

from mmzoo.data.inputs import check_batch_size
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
from mmzoo.models.dual_encoder.momentum import check_momentum

_VIEWS = (1, 2)


@keras.saving.register_keras_serializable(package="mmzoo")
class TwoViewEncoder(ContrastiveEncoder):
    """Two views of the same examples projected into one embedding space (SimCLR).

    A functional graph: by default one image (or video) tower and one
    `ProjectionHead` shared by both views (SimCLR: the views are two
    augmentations of each example), or a second tower of the same modality
    with its own projection. Then a `DualEncoderHead` (L2 normalisation,
    logit scale and optional bias, in float32 under mixed precision), as in
    `DualEncoder`.

    Inputs: the tower's input key with a view prefix, `view_1_images` and
    `view_2_images` `(batch_size, height, width, channels)` (or
    `view_1_videos`, `view_2_videos` for video towers). Outputs:
    `view_1_embeddings`, `view_2_embeddings` `(batch_size, projection_dim)`,
    L2-normalised, `logit_scale` `(batch_size,)` and, with `use_bias`,
    `logit_bias` `(batch_size,)`. `compile(loss=mmzoo.losses.NTXentLoss())`
    (or `CLIPLoss`, `SigLIPLoss`) and `fit` on datasets that yield the two
    views alone work as for `DualEncoder`, global negatives across replicas
    included.

    Args:
        encoder: `keras.Model` image or video tower (any mmzoo image or video
            encoder), shared by both views unless `second_encoder` is given.
        projection_dim: int. Size of the embedding space; None for no
            projection (the towers' pooled outputs are the embeddings).
        second_encoder: `keras.Model` or None. A tower of the same modality
            for the second view (with its own projection); None to share
            `encoder` and its projection.
        projection_intermediate_dim: int or None. Hidden size of a two-layer
            MLP projection (SimCLR's); None for a linear projection.
        projection_use_bias: bool. Whether the projection has biases.
        initial_temperature: float. The logit scale starts at its inverse
            (SimCLR: 0.1, or 0.5 for small batches).
        max_logit_scale: float. Upper clamp of the logit scale.
        trainable_temperature: bool. Learn the scale (False: SimCLR's fixed
            temperature).
        use_bias: bool. Learn a logit bias (SigLIP-style losses).
        initial_bias: float. Starting logit bias.
        freeze_encoder: bool. Lock `encoder` (the shared tower, by default).
        freeze_second_encoder: bool. Lock `second_encoder` (only with one).
        dropout_rate: float. Dropout in an MLP projection.
        momentum: None, or a float in [0, 1): a momentum encoder (a moving
            average copy of the tower(s) and projection(s)), as for
            `DualEncoder`; its `view_1_keys` and `view_2_keys` make
            `mmzoo.losses.CLIPLoss` MoCo v2's symmetric loss.
        queue_size: int >= 0. With `momentum`, a feature queue of past keys
            (extra negatives), as for `DualEncoder`.
        preprocessor: `DualEncoderPreprocessor` without a tokenizer, or
            None. Kept by the model and saved in its `.keras` file; both
            views go through its one image (or video) converter, so that
            `encode_images` takes images of any size, image files or encoded
            bytes, and calling it on `{"view_1_images", "view_2_images"}`
            resizes both. The model gives it a converter for the tower's
            input shape when it has none.
        **kwargs: `name`, `dtype` (e.g. `"mixed_bfloat16"`), ...

    Example:

    ```python
    model = mmzoo.models.build_two_view_encoder(
        mmzoo.presets.build_from_preset("vit_image_encoder_tiny"),
        projection_dim=32, projection_intermediate_dim=64,
        initial_temperature=0.1, trainable_temperature=False,
        preprocessor=mmzoo.models.DualEncoderPreprocessor())
    model.compile(optimizer="adam", loss=mmzoo.losses.NTXentLoss())
    model.fit(views)  # {"view_1_images": ..., "view_2_images": ...}
    embeddings = model.encode_images(["cat.jpg", pixels])  # (2, 32), any size
    ```
    """

    def __init__(
        self,
        encoder,
        projection_dim,
        second_encoder=None,
        projection_intermediate_dim=None,
        projection_use_bias=True,
        initial_temperature=0.07,
        max_logit_scale=100.0,
        trainable_temperature=True,
        use_bias=False,
        initial_bias=0.0,
        freeze_encoder=False,
        freeze_second_encoder=False,
        dropout_rate=0.0,
        momentum=None,
        queue_size=0,
        preprocessor=None,
        dtype=None,
        **kwargs,
    ):
        check_tower(encoder, "encoder")
        check_momentum(momentum, queue_size)
        if second_encoder is not None:
            check_tower(second_encoder, "second_encoder")
        if second_encoder is encoder:
            second_encoder = None  # one shared tower; stored once in the config
        projection_dim, projection_intermediate_dim, dropout_rate = check_head_arguments(
            projection_dim, projection_intermediate_dim, dropout_rate
        )
        modality = tower_modality(encoder, "encoder")
        if modality == "text":
            raise ValueError(
                "`encoder` must be an image or video tower; for images and texts use "
                f"`mmzoo.models.build_dual_encoder`. Received: {describe_tower(encoder)}"
            )
        if second_encoder is None:
            if freeze_second_encoder:
                raise ValueError(
                    "There is no `second_encoder` to freeze: both views share "
                    "`encoder`, frozen with `freeze_encoder=True`. Received: "
                    "freeze_second_encoder=True"
                )
        else:
            if tower_modality(second_encoder, "second_encoder") != modality:
                raise ValueError(
                    f"`second_encoder` must take {modality}s, as `encoder` does; for "
                    "images and texts use `mmzoo.models.build_dual_encoder`. Received: "
                    f"second_encoder={describe_tower(second_encoder)}"
                )
            check_different_names(encoder, second_encoder, ("encoder", "second_encoder"))

        # === Layers ===
        self.encoder = encoder
        self.second_encoder = second_encoder
        encoder.trainable = not freeze_encoder
        if second_encoder is not None:
            second_encoder.trainable = not freeze_second_encoder
        # "image_projection", as `DualEncoder` names the projection of its
        # image (or video) tower: two-view `DualEncoder` files saved before
        # this class existed load into it.
        self.image_projection = self._make_projection(
            "image_projection", projection_dim, projection_intermediate_dim, dropout_rate,
            projection_use_bias, dtype,
        )
        self.second_projection = (
            self.image_projection if second_encoder is None
            else self._make_projection(
                "second_projection", projection_dim, projection_intermediate_dim,
                dropout_rate, projection_use_bias, dtype,
            )
        )
        self.head = self._make_head(
            initial_temperature, max_logit_scale, use_bias, initial_bias, trainable_temperature
        )

        # === Functional Model ===
        embedding_keys = ("view_1_embeddings", "view_2_embeddings")
        towers = (encoder, second_encoder or encoder)
        projections = (self.image_projection, self.second_projection)
        inputs, pooled = {}, []
        for view, tower in zip(_VIEWS, towers):
            view_inputs = tower_inputs(tower, f"view_{view}_")
            inputs.update(input_dict(view_inputs))
            pooled.append(pooled_features(tower, tower(view_inputs), _argument(view)))
        embedding_dim = self._embedding_dim(
            projection_dim, pooled, (_argument(1), _argument(2))
        )
        features = [projection(x) for projection, x in zip(projections, pooled)]
        outputs = self._head_outputs(*features, embedding_keys)
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
        self.freeze_encoder = freeze_encoder
        self.freeze_second_encoder = freeze_second_encoder
        self.embedding_keys = embedding_keys
        # `"image"` or `"video"`: what both towers take.
        self.modality = modality
        self.preprocessor = attach_dual_encoder_preprocessor(
            preprocessor, encoder, second_view_encoder=second_encoder,
            arguments=("encoder", "second_encoder"),
        )
        self._set_momentum(momentum, queue_size, [
            (f"view_{view}", tower, projection, f"view_{view}_", _argument(view))
            for view, tower, projection in zip(_VIEWS, towers, projections)
        ])

    def get_config(self):
        return self._model_config(
            encoder=self.encoder,
            second_encoder=self.second_encoder,
            freeze_encoder=self.freeze_encoder,
            freeze_second_encoder=self.freeze_second_encoder,
        )

    # ------------------------------------------------------- embeddings
    def _view(self, view):
        """`(tower, projection)` of view 1 or 2."""
        if isinstance(view, bool) or view not in _VIEWS:
            raise ValueError(f"`view` must be 1 or 2. Received: view={view!r}")
        if view == 1 or self.second_encoder is None:
            return self.encoder, self.image_projection
        return self.second_encoder, self.second_projection

    def encode_images_tensor(self, images, training=False, view=1):
        """`encode_images` on tensors, traceable (no batching, no numpy):
        float32 `(batch, projection_dim)`, L2-normalised. Used by the export."""
        tower, projection = self._view(view)
        return self._embed(tower, projection, images, training, _argument(view))

    def encode_images(self, images, batch_size=None, view=1):
        """L2-normalised embeddings of images (or videos, for video towers).

        Inputs are checked in NumPy before anything is compiled.

        Args:
            images: array `(n, height, width, channels)` (or `(n, frames,
                height, width, channels)`): floats in [0, 1], or uint8 in
                [0, 255] (scaled by 1/255). With a preprocessor, also images
                of any size and 1 to 4 channels, and lists of image file
                paths or encoded bytes (`mmzoo.data.ImageConverter.convert`;
                videos as in `mmzoo.data.VideoConverter.convert`).
            batch_size: positive int, or None for all images at once.
                Encode in batches of this size (the last one padded, so one
                compiled function serves all).
            view: 1 or 2. The tower and projection to use; with one shared
                tower both give the same embeddings.

        Returns:
            float32 numpy array `(n, projection_dim)`; `(0, projection_dim)`
            for no images, without running the model.
        """
        batch_size = check_batch_size(batch_size)
        tower, _ = self._view(view)
        images = self._prepare_pixels("images", images, tower)
        if self.second_encoder is None:
            view = 1  # one compiled function for both views of a shared tower

        def encode(pixels):
            return self.encode_images_tensor(pixels, view=view)

        return self._run_batched(f"view_{view}", encode, images, batch_size)

    def pair_logits(self, view_1_embeddings, view_2_embeddings):
        """Logits `(n_1, n_2)`: `logit_scale * a @ b.T (+ logit_bias)`.

        Args:
            view_1_embeddings: float `(n_1, projection_dim)`, from
                `encode_images`.
            view_2_embeddings: float `(n_2, projection_dim)`.

        Returns:
            float32 numpy array `(n_1, n_2)`.
        """
        return self._pair_logits(
            (("view_1_embeddings", view_1_embeddings), ("view_2_embeddings", view_2_embeddings))
        )


def _argument(view):
    return "encoder" if view == 1 else "second_encoder"


def build_two_view_encoder(encoder, projection_dim, second_encoder=None, **kwargs):
    """Builds a `TwoViewEncoder` (see its docstring for all arguments).

    Args:
        encoder: any mmzoo image or video encoder; shared by both views
            unless `second_encoder` is given.
        projection_dim: int. Embedding size.
        second_encoder: None, or a second tower of the same modality (with a
            different `name`) for the second view.
        **kwargs: `projection_intermediate_dim`, `initial_temperature`,
            `max_logit_scale`, `trainable_temperature`, `use_bias`,
            `initial_bias`, `freeze_encoder`, `freeze_second_encoder`,
            `dropout_rate`, `preprocessor`, `name`, `dtype`.

    Returns:
        A `TwoViewEncoder` with inputs `view_1_images`, `view_2_images` (or
        `view_*_videos`) and outputs `view_1_embeddings`, `view_2_embeddings`
        `(batch_size, projection_dim)` and `logit_scale` `(batch_size,)`.

    Example:

    ```python
    simclr = mmzoo.models.build_two_view_encoder(
        mmzoo.presets.build_from_preset("vit_image_encoder_tiny"),
        projection_dim=32, projection_intermediate_dim=64,
        initial_temperature=0.1, trainable_temperature=False)
    two_towers = mmzoo.models.build_two_view_encoder(
        mmzoo.presets.build_from_preset("vit_image_encoder_tiny"), projection_dim=32,
        second_encoder=mmzoo.presets.build_from_preset(
            "vit_image_encoder_tiny", name="second_image_encoder"))
    ```
    """
    return TwoViewEncoder(encoder, projection_dim, second_encoder=second_encoder, **kwargs)
