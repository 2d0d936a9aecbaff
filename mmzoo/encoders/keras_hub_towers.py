"""keras-hub backbones as mmzoo towers: image backbones (ViT, DINOv2, ResNet,
EfficientNet, ...) and the towers of the contrastive ones (CLIP, SigLIP).

Each builder wraps the backbone (or its own encoder layer: the weights are
the backbone's, not copies) in a functional model with mmzoo's tower
interface: images in [0, 1] (scaled to what the preset's image converter
gives inside the graph) or `token_ids` and `padding_mask`, and outputs
`pooled_output` (and `sequence_output` where the backbone has one). The
pooling is the backbone's where it has one: the class token of ViT and
DINOv2, CLIP's class token and end token, SigLIP's own heads.
"""

import json
import os

import keras
import keras_hub

from mmzoo.encoders.common import check_image_shape
from mmzoo.layers import TokenPooling
from mmzoo.layers.validation import check_bool
from mmzoo.layers.validation import check_positive_int

# Backbone class name -> the class name of its preset's preprocessor.
CONTRASTIVE_BACKBONES = {
    "CLIPBackbone": "CLIPPreprocessor",
    "SigLIPBackbone": "SigLIPPreprocessor",
    # keras-hub names MetaCLIP 2's image and text preprocessor so.
    "MetaCLIP2Backbone": "MetaCLIP2CausalLMPreprocessor",
}


# Image backbones whose token sequence starts with a class token, pooled as
# the backbone was trained; other sequences and feature maps are averaged.
# Class name -> whether a built backbone has one.
CLASS_TOKEN_BACKBONES = {
    "ViTBackbone": lambda backbone: backbone.use_class_token,
    "DINOV2Backbone": lambda backbone: True,
    "DINOV3Backbone": lambda backbone: True,
}

# The image backbone classes whose presets `mmzoo presets --keras-hub`
# lists as image towers (any backbone with one image input is taken).
IMAGE_BACKBONES = (
    "ViTBackbone", "DINOV2Backbone", "ResNetBackbone", "EfficientNetBackbone",
    "CLIPBackbone", "SigLIPBackbone", "MetaCLIP2Backbone",
)


# The text backbone classes whose presets `mmzoo presets --keras-hub` lists
# as text towers (any backbone taking `token_ids` is taken).
TEXT_BACKBONES = ("BertBackbone", "DistilBertBackbone", "RobertaBackbone")


def _registered_presets(class_names):
    return {
        name: class_name
        for class_name in class_names
        for name in getattr(keras_hub.models, class_name).presets
    }


def keras_hub_image_presets():
    """`{preset name: backbone class name}` of the keras-hub presets
    `build_keras_hub_image_tower` is known to take (loading one downloads it)."""
    return _registered_presets(IMAGE_BACKBONES)


def keras_hub_video_presets():
    """`{preset name: backbone class name}` of the keras-hub VideoPrism presets
    `build_keras_hub_video_tower` takes."""
    return _registered_presets(("VideoPrismBackbone",))


def keras_hub_text_presets():
    """`{preset name: backbone class name}` of the keras-hub BERT, DistilBERT
    and RoBERTa presets `build_keras_hub_text_tower` takes (CLIP's and
    SigLIP's too: `keras_hub_presets`)."""
    return _registered_presets(TEXT_BACKBONES)


def load_keras_hub_backbone(preset, load_weights=True, dtype=None):
    """A keras-hub backbone and its image converter, from a preset.

    Args:
        preset: a keras-hub preset name, a local preset directory (what
            `save_to_preset` writes) or a `kaggle://` / `hf://` handle.
        load_weights: bool. False builds the architecture with random weights.
        dtype: dtype or policy name, or None.

    Returns:
        `(backbone, image_converter)`; the converter is None when the preset
        has none.
    """
    if not isinstance(preset, (str, os.PathLike)):
        raise ValueError(
            "`preset` must be a keras-hub preset name or a preset directory. "
            f"Received: preset={preset!r:.100}"
        )
    preset = os.fspath(preset)
    if os.path.isdir(preset):
        if not os.path.isfile(os.path.join(preset, "config.json")):
            raise ValueError(
                "`preset` is a directory without `config.json`, so not a keras-hub "
                f"preset (`save_to_preset` writes one). Received: preset={preset!r}"
            )
        with open(os.path.join(preset, "config.json"), encoding="utf-8") as f:
            class_name = json.load(f).get("class_name")
        backbone_cls = getattr(keras_hub.models, str(class_name), None)
        if not (isinstance(backbone_cls, type)
                and issubclass(backbone_cls, keras_hub.models.Backbone)):
            raise ValueError(
                "`preset` must hold a keras-hub backbone. Received: preset "
                f"{preset!r} of class {class_name}"
            )
    backbone = keras_hub.models.Backbone.from_preset(
        preset, load_weights=load_weights, dtype=dtype
    )
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except FileNotFoundError:  # the preset ships no converter
        converter = None
    except ValueError:  # no converter class for this backbone (not an image model)
        converter = None
    return backbone, converter


def _backbone_and_converter(backbone, image_converter, load_weights, trainable, dtype):
    """The tower builders' arguments checked: a backbone (a preset loaded)
    and the image converter given, else the preset's."""
    check_bool("trainable", trainable)
    check_bool("load_weights", load_weights)
    if isinstance(backbone, (str, os.PathLike)):
        backbone, preset_converter = load_keras_hub_backbone(backbone, load_weights, dtype)
        if image_converter is None:
            image_converter = preset_converter
    if not isinstance(backbone, keras_hub.models.Backbone):
        raise ValueError(
            "`backbone` must be a keras-hub backbone or preset. Received: "
            f"backbone of type {type(backbone).__name__}"
        )
    return backbone, image_converter


def keras_hub_presets():
    """`{preset name: backbone class name}` of the keras-hub presets whose
    backbones these towers take (the presets keras-hub registers; loading
    one downloads it)."""
    return _registered_presets(CONTRASTIVE_BACKBONES)


def check_contrastive_backbone(backbone, argument="backbone"):
    """`backbone` must be a keras-hub CLIP, SigLIP or MetaCLIP 2 backbone."""
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


def build_keras_hub_image_tower(
    backbone,
    image_converter=None,
    image_shape=None,
    load_weights=True,
    trainable=True,
    dtype=None,
    name="image_encoder",
):
    """A keras-hub image backbone, or CLIP's / SigLIP's vision tower, as an mmzoo image encoder.

    Any keras-hub backbone with one image input works: ViT, DINOv2, ResNet,
    EfficientNet, and others of the kind. A CLIP, SigLIP or MetaCLIP 2
    backbone gives its vision tower. Images enter in mmzoo's convention, floats in [0, 1], and
    are scaled as the preset's image converter does inside the graph, so a
    model built on the tower (and its SavedModel) takes raw images. Resizing
    is the family preprocessor's job: it reads the tower's input size.

    Args:
        backbone: a `keras_hub.models.Backbone`, or a keras-hub preset name or
            local preset directory (loaded with `load_keras_hub_backbone`,
            its image converter with it). The tower holds the backbone's
            layers, so it shares (and trains) the backbone's weights.
        image_converter: a `keras_hub.layers.ImageConverter` (the preset's),
            or None: with a backbone, no rescaling (the tower receives [0, 1]
            images); with a preset, the preset's converter.
        image_shape: `(height, width, channels)` or None for the backbone's
            own size (its input, or its converter's size when the input has
            none, as for CNNs). A backbone built for one size (ViT, DINOv2,
            CLIP, SigLIP) refuses another; a CNN takes any.
        load_weights: bool. With a preset, False builds it with random
            weights.
        trainable: bool. False freezes the backbone (LiT-style locked tower;
            batch norms then run in inference mode).
        dtype: dtype or policy name for a preset's layers, or None.
        name: str.

    Returns:
        A functional `keras.Model` with input `images` `(batch, height, width,
        channels)` in [0, 1] and outputs `sequence_output` `(batch, tokens,
        dim)` (patch tokens, or a CNN's feature map positions, for
        cross-attention; not for SigLIP) and `pooled_output` `(batch, dim)`:
        the class token (ViT, DINOv2, CLIP), SigLIP's attention-pooling head,
        or the mean of the tokens.

    Example:

    ```python
    tower = mmzoo.encoders.build_keras_hub_image_tower("vit_base_patch16_224_imagenet")
    captioner = mmzoo.models.build_image_captioning_model(
        tower, vocabulary_size=tokenizer.vocabulary_size(), sequence_length=32,
        preprocessor=mmzoo.models.ImageCaptioningPreprocessor(
            tokenizer, image_converter=tower.input_shape[1:]))
    # CLIP's vision tower, from a backbone and its converter:
    clip = keras_hub.models.CLIPBackbone.from_preset("clip_vit_base_patch16")
    converter = keras_hub.layers.ImageConverter.from_preset("clip_vit_base_patch16")
    tower = mmzoo.encoders.build_keras_hub_image_tower(clip, converter)
    ```
    """
    backbone, image_converter = _backbone_and_converter(
        backbone, image_converter, load_weights, trainable, dtype
    )
    kind = type(backbone).__name__
    if kind in CONTRASTIVE_BACKBONES:
        encoder = backbone.vision_encoder
        own_shape = tuple(encoder.image_shape)
    else:
        inputs = keras.tree.flatten(backbone.input)
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(
                "`backbone` must take images: one input (batch, height, width, "
                f"channels). Received: a {kind} with inputs "
                f"{[tuple(i.shape) for i in inputs]}"
            )
        encoder = backbone
        own_shape = tuple(inputs[0].shape[1:])
    image_shape = _tower_image_shape(kind, own_shape, image_converter, image_shape)
    encoder.trainable = trainable

    dtype = backbone.dtype_policy
    images = keras.Input(shape=image_shape, name="images")
    x = images
    rescaling = converter_rescaling(image_converter, dtype=dtype)
    if rescaling is not None:
        x = rescaling(x)
    if kind in CONTRASTIVE_BACKBONES:
        features = encoder({"images": x})
    else:
        features = encoder(keras.tree.pack_sequence_as(backbone.input, [x]))
    if isinstance(features, dict):  # built with `intermediate_output_index`
        if "sequence_output" not in features:
            raise ValueError(
                "A backbone returning a dict must have `sequence_output`. "
                f"Received: a {kind} with output keys {sorted(features)}"
            )
        features = features["sequence_output"]
    if kind == "SigLIPBackbone":  # pooled by the encoder's own head
        return keras.Model(images, {"pooled_output": features}, name=name)
    if kind == "MetaCLIP2Backbone":  # the class token, then its own layer norm
        pooled = backbone.vision_post_layer_norm(backbone.vision_pooler(features))
        return keras.Model(
            images, {"sequence_output": features, "pooled_output": pooled}, name=name
        )
    if len(features.shape) == 4:  # a CNN's feature map: its positions are the tokens
        _, height, width, channels = features.shape
        features = keras.layers.Reshape(
            (height * width, channels), dtype=dtype, name="flatten_positions"
        )(features)
    elif len(features.shape) != 3:
        raise ValueError(
            "The backbone must return a feature map (batch, h, w, channels) or a "
            f"sequence (batch, length, channels). Received: a {kind} with output shape "
            f"{features.shape}"
        )
    has_class_token = kind == "CLIPBackbone" or CLASS_TOKEN_BACKBONES.get(
        kind, lambda b: False
    )(backbone)
    if has_class_token:
        pooled = TokenPooling("first", dtype=dtype, name="class_token")(features)
    else:
        pooled = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="pooling")(features)
    return keras.Model(
        images, {"sequence_output": features, "pooled_output": pooled}, name=name
    )


def _tower_image_shape(kind, own_shape, image_converter, image_shape):
    """The image shape of a tower: given, the backbone's, or its converter's."""
    size = getattr(image_converter, "image_size", None)
    size = None if size is None else tuple(int(s) for s in size)
    fixed = None not in own_shape
    if fixed and size is not None and size != own_shape[:2]:
        raise ValueError(
            "The image converter must resize to the backbone's image size. "
            f"Received: converter image_size {size}, a {kind} built for {own_shape}"
        )
    if image_shape is None:
        if fixed:
            return own_shape
        if size is None:
            raise ValueError(
                f"A {kind} takes images of any size and has no image converter to "
                "give one: pass `image_shape`. Received: image_shape=None"
            )
        return size + own_shape[2:]
    image_shape = check_image_shape(image_shape)
    if any(own is not None and own != given for own, given in zip(own_shape, image_shape)):
        raise ValueError(
            f"A {kind} is built for images of shape {own_shape}. Received: "
            f"image_shape={image_shape}"
        )
    return image_shape


def build_keras_hub_text_tower(
    backbone,
    sequence_length,
    load_weights=True,
    trainable=True,
    dtype=None,
    name="text_encoder",
):
    """A keras-hub text backbone (BERT, DistilBERT, RoBERTa, ...) or CLIP's /
    SigLIP's text tower as an mmzoo text encoder.

    Any keras-hub backbone that takes `token_ids` (and `padding_mask`, and
    BERT's `segment_ids`) works. Pair it with the preset's tokenizer
    (`keras_hub.models.Tokenizer.from_preset(preset)`) in the family's
    preprocessor: its special tokens (`[CLS]` / `[SEP]`, `<s>` / `</s>`) and
    padding id are read from the tokenizer.

    Args:
        backbone: a `keras_hub.models.Backbone`, or a keras-hub preset name or
            local preset directory (loaded with `load_keras_hub_backbone`).
            The tower holds the backbone's layers (shared weights).
        sequence_length: int. The length texts are packed to; at most the
            backbone's position embeddings. For CLIP and SigLIP, the preset
            preprocessor's (CLIP 77, SigLIP 64); SigLIP pools the last
            position, so its texts are always padded to that length.
        load_weights: bool. With a preset, False builds it with random
            weights.
        trainable: bool. False locks the backbone.
        dtype: dtype or policy name for a preset's layers, or None.
        name: str.

    Returns:
        A functional `keras.Model` with inputs `token_ids` and
        `padding_mask` `(batch, sequence_length)` (and `segment_ids` when
        the backbone takes them, as BERT does; mmzoo's pipelines then give
        zeros) and outputs `sequence_output` and `pooled_output`: BERT's
        pooler, the first token (`[CLS]`, `<s>`) for other encoders, CLIP's
        end token, SigLIP's head (SigLIP has no `sequence_output`). CLIP
        and SigLIP do not read the padding mask (CLIP's attention is causal
        and reads the end token, SigLIP's reads padding as it was trained
        to).

    Example:

    ```python
    tower = mmzoo.encoders.build_keras_hub_text_tower("bert_tiny_en_uncased", 32)
    tokenizer = keras_hub.models.Tokenizer.from_preset("bert_tiny_en_uncased")
    model = mmzoo.models.build_fusion_classifier(
        {"image": image_tower, "text": tower}, num_classes=2,
        preprocessor=mmzoo.models.FusionClassifierPreprocessor(
            tokenizer, image_converter=(64, 64), class_names=["no", "yes"]))
    ```
    """
    backbone, _ = _backbone_and_converter(backbone, None, load_weights, trainable, dtype)
    sequence_length = check_positive_int("sequence_length", sequence_length)
    kind = type(backbone).__name__
    if kind in CONTRASTIVE_BACKBONES:
        tower = _contrastive_text_tower(backbone, kind, sequence_length, name)
    elif kind == "VideoPrismBackbone":
        tower = _video_prism_text_tower(backbone, sequence_length, name)
    else:
        tower = _text_backbone_tower(backbone, kind, sequence_length, name)
    tower.trainable = trainable
    return tower


def _check_length(sequence_length, longest):
    if longest is not None and sequence_length > longest:
        raise ValueError(
            "`sequence_length` must not exceed the text encoder's position "
            f"embeddings ({longest}). Received: sequence_length={sequence_length}"
        )


def _text_backbone_tower(backbone, kind, sequence_length, name):
    takes = backbone.input if isinstance(backbone.input, dict) else {}
    if "token_ids" not in takes or set(takes) - {"token_ids", "padding_mask", "segment_ids"}:
        received = sorted(takes) if takes else [tuple(i.shape) for i in backbone.inputs]
        raise ValueError(
            "`backbone` must be a text encoder taking `token_ids` (and `padding_mask`, "
            f"`segment_ids`). Received: a {kind} with inputs {received}"
        )
    _check_length(sequence_length, getattr(backbone, "max_sequence_length", None))
    dtype = backbone.dtype_policy
    inputs = {
        "token_ids": keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids"),
        "padding_mask": keras.Input(shape=(sequence_length,), dtype="bool", name="padding_mask"),
    }
    if "segment_ids" in takes:
        inputs["segment_ids"] = keras.Input(
            shape=(sequence_length,), dtype="int32", name="segment_ids"
        )
    features = backbone({key: inputs[key] for key in takes})
    if isinstance(features, dict):  # BERT: its own pooler
        if "sequence_output" not in features:
            raise ValueError(
                "A backbone returning a dict must have `sequence_output`. "
                f"Received: a {kind} with output keys {sorted(features)}"
            )
        sequence = features["sequence_output"]
        pooled = features.get("pooled_output")
    else:
        sequence, pooled = features, None
    if len(sequence.shape) != 3:
        raise ValueError(
            "`backbone` must return a token sequence (batch, length, dim). Received: "
            f"a {kind} with output shape {sequence.shape}"
        )
    if pooled is None:  # `[CLS]` / `<s>`, as these encoders are fine-tuned
        pooled = TokenPooling("first", dtype=dtype, name="first_token")(sequence)
    return keras.Model(
        inputs, {"sequence_output": sequence, "pooled_output": pooled}, name=name
    )


def _contrastive_text_tower(backbone, kind, sequence_length, name):
    encoder = backbone.text_encoder
    longest = encoder.max_sequence_length
    if kind == "SigLIPBackbone" and sequence_length != longest:
        raise ValueError(
            "A SigLIP text tower adds all its position embeddings and pools the last "
            f"position, so texts have its length ({longest}). Received: "
            f"sequence_length={sequence_length}"
        )
    _check_length(sequence_length, longest)
    dtype = backbone.dtype_policy
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(sequence_length,), dtype="bool", name="padding_mask")
    features = encoder({"token_ids": token_ids})
    if isinstance(features, dict):
        features = features["sequence_output"]
    if kind == "SigLIPBackbone":
        outputs = {"pooled_output": features}
    elif kind == "MetaCLIP2Backbone":  # its own pooler: the first end token
        outputs = {
            "sequence_output": features,
            "pooled_output": backbone.text_pooler(features, token_ids),
        }
    else:
        pooled = TokenPooling("max_token_id", dtype=dtype, name="end_token")(features, token_ids)
        outputs = {"sequence_output": features, "pooled_output": pooled}
    return keras.Model(
        {"token_ids": token_ids, "padding_mask": padding_mask}, outputs, name=name
    )


def build_keras_hub_video_tower(
    backbone,
    image_converter=None,
    load_weights=True,
    trainable=True,
    dtype=None,
    name="video_encoder",
):
    """keras-hub's VideoPrism as an mmzoo video encoder.

    Both kinds of VideoPrism preset work: the video-only ones
    (`"videoprism_public_v1_base"`) and the video-text ones
    (`"videoprism_lvt_public_v1_base"`), whose video half (and its
    auxiliary encoder and attention pooling) becomes the tower; their text
    half is `build_keras_hub_text_tower`'s. Clips enter in mmzoo's
    convention, `(batch, frames, height, width, 3)` floats in [0, 1],
    scaled as the preset's image converter does inside the graph.

    Args:
        backbone: a `keras_hub.models.VideoPrismBackbone`, or a keras-hub
            preset name or local preset directory. The tower holds the
            backbone's layers (shared weights).
        image_converter: the preset's `keras_hub.layers.ImageConverter`, or
            None: with a backbone, no rescaling; with a preset, its own.
        load_weights: bool. With a preset, False builds it with random
            weights.
        trainable: bool. False locks the backbone.
        dtype: dtype or policy name for a preset's layers, or None.
        name: str.

    Returns:
        A functional `keras.Model` with input `videos` `(batch, num_frames,
        height, width, 3)` (the backbone's frames and size) and outputs
        `sequence_output` `(batch, num_frames * patches, dim)` (the
        factorised encoder's tokens; for video-text presets after the
        auxiliary encoder) and `pooled_output` `(batch, dim)`: the mean of
        the tokens, or a video-text preset's attention pooling.

    Example:

    ```python
    tower = mmzoo.encoders.build_keras_hub_video_tower("videoprism_public_v1_base")
    model = mmzoo.models.build_video_qa_model(
        tower, question_tower, answer_vocabulary=answers,
        preprocessor=mmzoo.models.VideoQAPreprocessor(tokenizer))
    ```
    """
    backbone, image_converter = _backbone_and_converter(
        backbone, image_converter, load_weights, trainable, dtype
    )
    kind = type(backbone).__name__
    if not isinstance(backbone, keras_hub.models.VideoPrismBackbone):
        raise ValueError(
            "`backbone` must be a keras-hub VideoPrismBackbone or preset. Received: "
            f"backbone of type {kind}"
        )
    image_shape = tuple(backbone.image_shape)
    size = getattr(image_converter, "image_size", None)
    if size is not None and tuple(int(s) for s in size) != image_shape[:2]:
        raise ValueError(
            "The image converter must resize to the backbone's frame size. Received: "
            f"converter image_size {tuple(size)}, a {kind} built for {image_shape}"
        )
    dtype = backbone.dtype_policy
    videos = keras.Input(shape=(backbone.num_frames,) + image_shape, name="videos")
    x = videos
    rescaling = converter_rescaling(image_converter, dtype=dtype)
    if rescaling is not None:
        x = rescaling(x)
    # The backbone's own layers, in `get_vision_embeddings`' order.
    x = backbone.spatial_reshape(x)
    x = backbone.spatial_embedding(x)
    x = backbone.spatial_encoder(x)
    x = backbone.temporal_embedding(x)
    x = backbone.temporal_encoder(x)
    x = backbone.factorized_decoding(x)  # (batch, frames, patches, dim)
    _, frames, patches, dim = x.shape
    sequence = keras.layers.Reshape((frames * patches, dim), dtype=dtype, name="tokens")(x)
    if hasattr(backbone, "video_pooler"):  # a video-text preset
        if hasattr(backbone, "auxiliary_encoder"):
            sequence = backbone.auxiliary_encoder(sequence)
        pooled = keras.layers.Reshape((dim,), dtype=dtype, name="pooled")(
            backbone.video_pooler(sequence)
        )
    else:
        pooled = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="pooling")(sequence)
    tower = keras.Model(
        videos, {"sequence_output": sequence, "pooled_output": pooled}, name=name
    )
    tower.trainable = trainable
    return tower


def _video_prism_text_tower(backbone, sequence_length, name):
    """The text half of a video-text VideoPrism backbone (its last, class token pooled)."""
    if not hasattr(backbone, "text_encoder"):
        raise ValueError(
            "A video-only VideoPrism backbone has no text encoder; use a video-text "
            "preset (`videoprism_lvt_*`). Received: a VideoPrismBackbone with "
            "num_text_layers=0"
        )
    dtype = backbone.dtype_policy
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(sequence_length,), dtype="bool", name="padding_mask")
    features, attention_mask = backbone.text_embedding(token_ids, padding_mask)
    features = backbone.text_encoder(features, attention_mask=attention_mask)
    features = backbone.text_layer_normalization(features)
    pooled = TokenPooling("last", dtype=dtype, name="class_token")(features)
    return keras.Model(
        {"token_ids": token_ids, "padding_mask": padding_mask},
        {"sequence_output": features, "pooled_output": pooled}, name=name,
    )
