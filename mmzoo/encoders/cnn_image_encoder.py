import keras
import keras_hub

from mmzoo.encoders.common import check_image_shape
from mmzoo.encoders.keras_hub_towers import converter_rescaling
from mmzoo.encoders.keras_hub_towers import load_keras_hub_backbone
from mmzoo.layers.validation import check_bool
from mmzoo.layers.validation import check_choice

# keras.applications backbones whose preprocessing is part of the model
# (`include_preprocessing`), so they take pixels in [0, 255] and need nothing
# outside the graph. Name -> (constructor, takes `include_preprocessing`).
KERAS_APPLICATIONS = {
    "convnext_tiny": (keras.applications.ConvNeXtTiny, True),
    "convnext_small": (keras.applications.ConvNeXtSmall, True),
    "efficientnet_b0": (keras.applications.EfficientNetB0, False),
    "efficientnet_v2_b0": (keras.applications.EfficientNetV2B0, True),
    "efficientnet_v2_s": (keras.applications.EfficientNetV2S, True),
    "mobilenet_v3_small": (keras.applications.MobileNetV3Small, True),
    "mobilenet_v3_large": (keras.applications.MobileNetV3Large, True),
}


def build_cnn_image_encoder(
    backbone,
    image_shape=(224, 224, 3),
    weights=None,
    trainable=True,
    pooling="mean",
    name="cnn_image_encoder",
    dtype=None,
):
    """Wraps a convolutional (or any image) backbone as an mmzoo image tower.

    The backbone's feature map `(batch, h, w, channels)` becomes a token
    sequence `(batch, h * w, channels)` for cross-attention, and its spatial
    mean (or max) the pooled output. Images enter in mmzoo's convention,
    floats in [0, 1]; they are rescaled to what the backbone expects inside the
    graph.

    Args:
        backbone: one of
            * a name from `KERAS_APPLICATIONS` (e.g. `"efficientnet_v2_b0"`),
              built by `keras.applications` without its top;
            * a keras-hub preset name or a local preset directory, loaded with
              `keras_hub.models.Backbone.from_preset`; the scale and offset of
              the preset's `ImageConverter`, when it has one, are applied in
              the graph (give `image_shape` the preset's image size);
            * a dict `{"class_name": "ResNetBackbone", "config": {...}}` naming a
              class of `keras_hub.models`, built from scratch;
            * a built Keras model or layer, used as is (it receives the [0, 1]
              images).
        image_shape: tuple `(height, width, channels)`.
        weights: None for random initialisation (the only choice offline),
            `"imagenet"` or a weights file for `keras.applications` backbones,
            or any non-None value to load a keras-hub preset's weights.
        trainable: bool. False freezes the backbone (its batch norms then run
            in inference mode), e.g. for LiT-style locked towers.
        pooling: `"mean"` or `"max"` over the spatial positions.
        name: str.
        dtype: dtype or policy name; None for the global policy.

    Returns:
        A functional `keras.Model` with input `images`
        `(batch_size, height, width, channels)` and outputs
        `{"sequence_output": (batch_size, h * w, channels),
        "pooled_output": (batch_size, channels)}`.

    Example:

    ```python
    encoder = mmzoo.encoders.build_cnn_image_encoder(
        "mobilenet_v3_small", image_shape=(96, 96, 3), trainable=False)
    # A keras-hub backbone, from a preset (needs the preset on disk or a
    # network connection) or from a config:
    encoder = mmzoo.encoders.build_cnn_image_encoder(
        {"class_name": "ResNetBackbone", "config": {...}}, image_shape=(64, 64, 3))
    ```
    """
    image_shape = check_image_shape(image_shape)
    check_choice("pooling", pooling, ("mean", "max"))
    check_bool("trainable", trainable)

    # === Layers ===
    backbone, preprocessing = _resolve_backbone(backbone, image_shape, weights, dtype)
    backbone.trainable = trainable

    # === Functional Model ===
    images = keras.Input(shape=image_shape, name="images")
    x = images
    for layer in preprocessing:
        x = layer(x)
    features = backbone(x)
    if isinstance(features, dict):
        if "sequence_output" not in features:
            raise ValueError(
                "A backbone returning a dict must have `sequence_output`. "
                f"Received: output keys {sorted(features)}"
            )
        features = features["sequence_output"]
    if len(features.shape) == 4:
        _, height, width, channels = features.shape
        sequence = keras.layers.Reshape(
            (height * width, channels), dtype=dtype, name="flatten_positions"
        )(features)
    elif len(features.shape) == 3:
        sequence = features
    else:
        raise ValueError(
            "The backbone must return a feature map (batch, h, w, channels) or a "
            f"sequence (batch, length, channels). Received: output shape {features.shape}"
        )
    pool_cls = (
        keras.layers.GlobalAveragePooling1D
        if pooling == "mean"
        else keras.layers.GlobalMaxPooling1D
    )
    pooled = pool_cls(dtype=dtype, name="pooling")(sequence)
    return keras.Model(
        images, {"sequence_output": sequence, "pooled_output": pooled}, name=name
    )


def _resolve_backbone(backbone, image_shape, weights, dtype):
    """Returns `(backbone, preprocessing layers applied before it)`."""
    to_pixels = keras.layers.Rescaling(255.0, dtype=dtype, name="to_pixels")
    if isinstance(backbone, keras.layers.Layer):  # models are layers too
        return backbone, []
    if isinstance(backbone, dict):
        if set(backbone) != {"class_name", "config"}:
            raise ValueError(
                "A backbone dict needs exactly the keys `class_name` and `config`. "
                f"Received: backbone keys {sorted(backbone)}"
            )
        cls = getattr(keras_hub.models, backbone["class_name"], None)
        if cls is None or not issubclass(cls, keras_hub.models.Backbone):
            raise ValueError(
                "`class_name` must name a backbone class of `keras_hub.models`. "
                f"Received: class_name={backbone['class_name']!r}"
            )
        config = {"image_shape": image_shape, **backbone["config"], "dtype": dtype}
        return cls(**config), []
    if isinstance(backbone, str) and backbone in KERAS_APPLICATIONS:
        constructor, takes_preprocessing = KERAS_APPLICATIONS[backbone]
        kwargs = {"include_preprocessing": True} if takes_preprocessing else {}
        model = constructor(
            include_top=False, weights=weights, input_shape=image_shape, **kwargs
        )
        return model, [to_pixels]
    if isinstance(backbone, str):
        model, converter = load_keras_hub_backbone(
            backbone, load_weights=weights is not None, dtype=dtype
        )
        if converter is None:
            return model, []
        # The converter's scale and offset as one Rescaling from [0, 1]
        # images; the converter layer itself is not put in the graph: nested
        # inside a functional model it made the backbone's batch norms run in
        # training mode on `model(x)` (keras-hub 0.32). Resizing is the data
        # pipeline's job: pass the preset's image size as `image_shape`.
        return model, [converter_rescaling(converter, dtype=dtype)]
    raise ValueError(
        "`backbone` must be a keras.applications name "
        f"({sorted(KERAS_APPLICATIONS)}), a keras-hub preset, a "
        "{'class_name', 'config'} dict or a Keras model. "
        f"Received: backbone={backbone!r}"
    )


def build_conv_image_encoder(
    image_shape=(64, 64, 3),
    stackwise_num_filters=(16, 32, 64, 64),
    stackwise_num_strides=(1, 2, 2, 2),
    pooling="mean",
    name="conv_image_encoder",
    dtype=None,
):
    """A small from-scratch CNN tower that keeps the spatial detail of small objects.

    A stack of `3x3 convolution -> BatchNormalization -> ReLU` blocks, one per
    entry of `stackwise_num_filters`, with the given strides, wrapped by
    `build_cnn_image_encoder`. Unlike ImageNet backbones (a stride-2 stem and
    max-pooling: 4x downsampling before the first block), the first block can
    run at full resolution, so a shape a few pixels across still spans several
    positions when its outline is read (with the defaults, 64x64 images become
    8x8 tokens of 64 channels, each position seeing 17x17 pixels).

    Args:
        image_shape: tuple `(height, width, channels)`; images are floats in
            [0, 1].
        stackwise_num_filters: list of ints. Output channels of each block.
        stackwise_num_strides: list of ints (1 or 2), one per block. Strides of
            each block's convolution.
        pooling: `"mean"` or `"max"` over the spatial positions.
        name: str.
        dtype: dtype or policy name; None for the global policy.

    Returns:
        A functional `keras.Model` with input `images`
        `(batch_size, height, width, channels)` and outputs
        `{"sequence_output": (batch_size, h * w, stackwise_num_filters[-1]),
        "pooled_output": (batch_size, stackwise_num_filters[-1])}`, where
        `h, w` are the image size divided by the product of the strides
        (rounded up).

    Example:

    ```python
    encoder = mmzoo.encoders.build_conv_image_encoder(image_shape=(64, 64, 3))
    outputs = encoder(np.random.rand(2, 64, 64, 3).astype("float32"))
    outputs["sequence_output"].shape  # (2, 64, 64): 8x8 positions, 64 channels
    ```
    """
    image_shape = check_image_shape(image_shape)
    stackwise_num_filters = list(stackwise_num_filters)
    stackwise_num_strides = list(stackwise_num_strides)
    if not stackwise_num_filters or len(stackwise_num_filters) != len(stackwise_num_strides):
        raise ValueError(
            "`stackwise_num_filters` and `stackwise_num_strides` must be non-empty and of "
            f"the same length. Received: stackwise_num_filters={stackwise_num_filters}, "
            f"stackwise_num_strides={stackwise_num_strides}"
        )
    if not all(isinstance(f, int) and not isinstance(f, bool) and f > 0
               for f in stackwise_num_filters):
        raise ValueError(
            "`stackwise_num_filters` must be positive ints. "
            f"Received: stackwise_num_filters={stackwise_num_filters}"
        )
    if any(s not in (1, 2) for s in stackwise_num_strides):
        raise ValueError(
            "`stackwise_num_strides` must be 1s and 2s. "
            f"Received: stackwise_num_strides={stackwise_num_strides}"
        )
    check_choice("pooling", pooling, ("mean", "max"))

    # === Backbone: the conv blocks as a functional model ===
    images = keras.Input(shape=image_shape, name="images")
    x = images
    for i, (filters, strides) in enumerate(zip(stackwise_num_filters, stackwise_num_strides)):
        prefix = f"{name}_block_{i}"
        # No bias: the batch norm right after has its own offset.
        x = keras.layers.Conv2D(
            filters, 3, strides=strides, padding="same", use_bias=False, dtype=dtype,
            name=f"{prefix}_conv",
        )(x)
        x = keras.layers.BatchNormalization(dtype=dtype, name=f"{prefix}_batch_norm")(x)
        x = keras.layers.ReLU(dtype=dtype, name=f"{prefix}_relu")(x)
    backbone = keras.Model(images, x, name=f"{name}_backbone")

    # === Encoder: tokens and pooled output ===
    return build_cnn_image_encoder(
        backbone, image_shape=image_shape, pooling=pooling, name=name, dtype=dtype
    )
