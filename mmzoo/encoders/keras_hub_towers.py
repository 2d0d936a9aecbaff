"""The towers of keras-hub's contrastive backbones (CLIP, SigLIP) as mmzoo encoders.

Each builder wraps the backbone's own encoder layer (its weights are the
backbone's, not copies) in a functional model with mmzoo's tower interface:
images in [0, 1] (scaled to what the preset's image converter gives inside
the graph) or `token_ids` and `padding_mask`, and outputs `pooled_output`
(and `sequence_output` where the backbone has one). The pooling is the
backbone's: CLIP's class token and end token, SigLIP's own heads.
"""

import keras
import keras_hub

from mmzoo.layers import TokenPooling
from mmzoo.layers.validation import check_positive_int

# Backbone class name -> the class name of its preset's preprocessor.
CONTRASTIVE_BACKBONES = {
    "CLIPBackbone": "CLIPPreprocessor",
    "SigLIPBackbone": "SigLIPPreprocessor",
}


def keras_hub_presets():
    """`{preset name: backbone class name}` of the keras-hub presets whose
    backbones these towers take (the presets keras-hub registers; loading
    one downloads it)."""
    return {
        name: class_name
        for class_name in CONTRASTIVE_BACKBONES
        for name in getattr(keras_hub.models, class_name).presets
    }


def check_contrastive_backbone(backbone, argument="backbone"):
    """`backbone` must be a keras-hub CLIP or SigLIP backbone."""
    name = type(backbone).__name__
    if not isinstance(backbone, keras_hub.models.Backbone) or name not in CONTRASTIVE_BACKBONES:
        raise ValueError(
            f"`{argument}` must be a keras-hub backbone of one of the classes "
            f"{sorted(CONTRASTIVE_BACKBONES)}. Received: {argument} of type {name}"
        )
    return name


def converter_rescaling(converter, dtype=None, name="backbone_preprocessing"):
    """A `Rescaling` layer from mmzoo's [0, 1] images to what a keras-hub
    `ImageConverter` gives from [0, 255] pixels (`pixels * scale + offset`,
    per channel or global). None when `converter` is None.

    Resizing stays the data pipeline's (and `mmzoo.data.ImageConverter`'s)
    job: the images must already have the backbone's size.
    """
    if converter is None:
        return None
    scale = 1.0 if converter.scale is None else converter.scale
    if isinstance(scale, (list, tuple)):
        scale = [255.0 * float(s) for s in scale]
    else:
        scale = 255.0 * float(scale)
    offset = 0.0 if converter.offset is None else converter.offset
    offset = [float(o) for o in offset] if isinstance(offset, (list, tuple)) else float(offset)
    return keras.layers.Rescaling(scale, offset=offset, dtype=dtype, name=name)


def build_keras_hub_image_tower(backbone, image_converter=None, name="image_encoder"):
    """The vision tower of a keras-hub CLIP or SigLIP backbone as an mmzoo image encoder.

    Args:
        backbone: a `keras_hub.models.CLIPBackbone` or `SigLIPBackbone`
            (e.g. from `from_preset`). The tower holds its vision encoder
            layer, so it shares (and trains) the backbone's weights.
        image_converter: the preset's `keras_hub.layers.ImageConverter`, or
            None. Its scale and offset are applied in the graph to the [0, 1]
            images mmzoo feeds; its image size must be the encoder's.
        name: str.

    Returns:
        A functional `keras.Model` with input `images` `(batch, height, width,
        3)` in [0, 1] and outputs `pooled_output` `(batch, dim)` (CLIP: the
        class token of the last layer norm; SigLIP: its attention-pooling
        head) and, for CLIP, `sequence_output` `(batch, 1 + patches, dim)`
        for cross-attention.

    Example:

    ```python
    clip = keras_hub.models.CLIPBackbone.from_preset("clip_vit_base_patch16")
    converter = keras_hub.layers.ImageConverter.from_preset("clip_vit_base_patch16")
    tower = mmzoo.encoders.build_keras_hub_image_tower(clip, converter)
    ```
    """
    kind = check_contrastive_backbone(backbone)
    encoder = backbone.vision_encoder
    image_shape = tuple(encoder.image_shape)
    if image_converter is not None:
        size = getattr(image_converter, "image_size", None)
        if size is not None and tuple(size) != image_shape[:2]:
            raise ValueError(
                "The image converter must resize to the vision encoder's image size. "
                f"Received: converter image_size {tuple(size)}, encoder image_shape "
                f"{image_shape}"
            )
    dtype = backbone.dtype_policy
    images = keras.Input(shape=image_shape, name="images")
    x = images
    rescaling = converter_rescaling(image_converter, dtype=dtype)
    if rescaling is not None:
        x = rescaling(x)
    features = encoder({"images": x})
    if isinstance(features, dict):  # built with `intermediate_output_index`
        features = features["sequence_output"]
    if kind == "SigLIPBackbone":  # pooled by the encoder's own head
        outputs = {"pooled_output": features}
    else:
        pooled = TokenPooling("first", dtype=dtype, name="class_token")(features)
        outputs = {"sequence_output": features, "pooled_output": pooled}
    return keras.Model(images, outputs, name=name)


def build_keras_hub_text_tower(backbone, sequence_length, name="text_encoder"):
    """The text tower of a keras-hub CLIP or SigLIP backbone as an mmzoo text encoder.

    Args:
        backbone: a `keras_hub.models.CLIPBackbone` or `SigLIPBackbone`. The
            tower holds its text encoder layer (shared weights).
        sequence_length: int. The length texts are packed to: the preset
            preprocessor's (CLIP 77, SigLIP 64). SigLIP pools the last
            position, so its texts are always padded to this length.
        name: str.

    Returns:
        A functional `keras.Model` with inputs `token_ids` and
        `padding_mask` `(batch, sequence_length)` and outputs
        `pooled_output` `(batch, dim)` (CLIP: the end token, the largest id
        of its vocabulary; SigLIP: its head on the last position) and, for
        CLIP, `sequence_output`. The padding mask is not used: CLIP's
        attention is causal and reads the end token, SigLIP's reads padding
        as it was trained to.
    """
    kind = check_contrastive_backbone(backbone)
    sequence_length = check_positive_int("sequence_length", sequence_length)
    encoder = backbone.text_encoder
    longest = encoder.max_sequence_length
    if kind == "SigLIPBackbone" and sequence_length != longest:
        raise ValueError(
            "A SigLIP text tower adds all its position embeddings and pools the last "
            f"position, so texts have its length ({longest}). Received: "
            f"sequence_length={sequence_length}"
        )
    if sequence_length > longest:
        raise ValueError(
            "`sequence_length` must not exceed the text encoder's position "
            f"embeddings ({longest}). Received: sequence_length={sequence_length}"
        )
    dtype = backbone.dtype_policy
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(sequence_length,), dtype="bool", name="padding_mask")
    features = encoder({"token_ids": token_ids})
    if isinstance(features, dict):
        features = features["sequence_output"]
    if kind == "SigLIPBackbone":
        outputs = {"pooled_output": features}
    else:
        pooled = TokenPooling("max_token_id", dtype=dtype, name="end_token")(features, token_ids)
        outputs = {"sequence_output": features, "pooled_output": pooled}
    return keras.Model(
        {"token_ids": token_ids, "padding_mask": padding_mask}, outputs, name=name
    )
