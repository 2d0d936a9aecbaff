"""Small keras-hub presets (CLIP, SigLIP, ViT, DINOv2, ResNet, EfficientNet,
BERT, DistilBERT, RoBERTa, VideoPrism) with random weights, saved locally.

They go through the same loading path as a downloaded preset
(`from_preset` on a directory), so code that starts from keras-hub presets
can be tested and demonstrated without a network.
"""

import keras_hub

from mmzoo.testing import tokenizers

# CLIP's image normalisation (OpenAI's mean and standard deviation), as
# keras-hub's CLIP presets apply it to [0, 255] pixels.
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def save_contrastive_preset(
    directory,
    kind="clip",
    texts=("a red circle", "a blue square"),
    image_size=32,
    patch_size=8,
    hidden_dim=32,
    num_layers=2,
    num_heads=2,
    intermediate_dim=64,
    projection_dim=24,
    sequence_length=16,
):
    """Saves a small keras-hub CLIP, SigLIP or MetaCLIP 2 preset with random weights.

    The backbone, its preprocessor (a tokenizer made from the words of
    `texts`, or for SigLIP and MetaCLIP 2 a SentencePiece model trained on
    them, which needs the `sentencepiece` package; the sequence length and
    an image converter with CLIP's normalisation, or SigLIP's scaling to
    [-1, 1]) are written with `save_to_preset`.

    Args:
        directory: str. Where to save (created if missing).
        kind: `"clip"`, `"siglip"` or `"metaclip2"`.
        texts: strings whose words make the vocabulary.
        image_size, patch_size, hidden_dim, num_layers, num_heads,
            intermediate_dim: the towers' sizes.
        projection_dim: CLIP's and MetaCLIP 2's projection size (SigLIP
            has none).
        sequence_length: the preprocessor's text length.

    Returns:
        `directory`.

    Example:

    ```python
    path = mmzoo.testing.keras_hub_presets.save_contrastive_preset(tmp_dir, "clip")
    model = mmzoo.models.DualEncoder.from_keras_hub(path)
    ```
    """
    texts = list(texts)
    towers = dict(
        hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads,
        intermediate_dim=intermediate_dim,
    )
    if kind == "clip":
        tokenizer = tokenizers.clip_tokenizer(texts)
        backbone = keras_hub.models.CLIPBackbone(
            keras_hub.models.CLIPVisionEncoder(
                patch_size=patch_size, image_shape=(image_size, image_size, 3), **towers
            ),
            keras_hub.models.CLIPTextEncoder(
                vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=hidden_dim,
                max_sequence_length=sequence_length, **towers,
            ),
            projection_dim=projection_dim,
        )
        converter = keras_hub.layers.CLIPImageConverter(
            image_size=(image_size, image_size),
            scale=[1.0 / (255.0 * s) for s in _CLIP_STD],
            offset=[-m / s for m, s in zip(_CLIP_MEAN, _CLIP_STD)],
            interpolation="bicubic",
        )
        preprocessor = keras_hub.models.CLIPPreprocessor(
            tokenizer, converter, sequence_length=sequence_length
        )
    elif kind == "siglip":
        tokenizer = tokenizers.siglip_tokenizer(texts)
        backbone = keras_hub.models.SigLIPBackbone(
            keras_hub.models.SigLIPVisionEncoder(
                patch_size=patch_size, image_shape=(image_size, image_size, 3), **towers
            ),
            keras_hub.models.SigLIPTextEncoder(
                vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=hidden_dim,
                max_sequence_length=sequence_length, **towers,
            ),
        )
        converter = keras_hub.layers.SigLIPImageConverter(
            image_size=(image_size, image_size), scale=1.0 / 127.5, offset=-1.0,
            interpolation="bicubic",
        )
        preprocessor = keras_hub.models.SigLIPPreprocessor(
            tokenizer, converter, sequence_length=sequence_length
        )
    elif kind == "metaclip2":
        # XLM-V's SentencePiece layout: <unk>, <s>, </s> first (keras-hub
        # moves them and adds <pad>).
        tokenizer = keras_hub.models.MetaCLIP2Tokenizer(
            proto=tokenizers.sentencepiece_proto(
                texts, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            )
        )
        backbone = keras_hub.models.MetaCLIP2Backbone(
            keras_hub.models.MetaCLIP2VisionEncoder(
                patch_size=patch_size, image_shape=(image_size, image_size, 3), **towers
            ),
            keras_hub.models.MetaCLIP2TextEncoder(
                vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=hidden_dim,
                max_sequence_length=sequence_length, **towers,
            ),
            projection_dim=projection_dim,
        )
        converter = keras_hub.layers.MetaCLIP2ImageConverter(
            image_size=(image_size, image_size),
            scale=[1.0 / (255.0 * s) for s in _CLIP_STD],
            offset=[-m / s for m, s in zip(_CLIP_MEAN, _CLIP_STD)],
            interpolation="bicubic",
        )
        preprocessor = keras_hub.models.MetaCLIP2CausalLMPreprocessor(
            tokenizer, converter, sequence_length=sequence_length
        )
    else:
        raise ValueError(
            f"`kind` must be 'clip', 'siglip' or 'metaclip2'. Received: kind={kind!r}"
        )
    backbone.save_to_preset(directory)
    preprocessor.save_to_preset(directory)
    return directory


def save_trained_preset(model, backbone, preprocessor, directory):
    """Saves a `DualEncoder` made by `from_keras_hub(backbone)` as a keras-hub preset.

    The model's towers are the backbone's own encoder layers (trained in
    place); CLIP's projections, the logit scale and SigLIP's bias are copied
    back into `backbone`, which is then saved with `preprocessor` (the
    keras-hub `CLIPPreprocessor` / `SigLIPPreprocessor` the model was made
    with). Loading the directory with `DualEncoder.from_keras_hub` gives the
    trained model back: a stand-in, offline, for a downloaded pretrained
    preset.

    Returns:
        `directory`.
    """
    if model.image_encoder.get_layer(backbone.vision_encoder.name) is not backbone.vision_encoder:
        raise ValueError(
            "`model` must be made by `DualEncoder.from_keras_hub(backbone)` with this "
            "`backbone` (its towers hold the backbone's encoder layers)."
        )
    if isinstance(backbone, (keras_hub.models.CLIPBackbone, keras_hub.models.MetaCLIP2Backbone)):
        backbone.vision_projection.kernel.assign(model.image_projection.output_dense.kernel)
        backbone.text_projection.kernel.assign(model.text_projection.output_dense.kernel)
        head = getattr(backbone, "clip_head", None) or backbone.metaclip_2_head
        head.logit_scale.assign(model.head.log_logit_scale)
    else:
        backbone.siglip_head.logit_scale.assign(model.head.log_logit_scale)
        backbone.siglip_head.logit_bias.assign(model.head.logit_bias)
    backbone.save_to_preset(directory)
    preprocessor.save_to_preset(directory)
    return directory


# ImageNet's mean and standard deviation, as keras-hub's ImageNet presets
# normalise [0, 255] pixels.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

IMAGE_PRESET_KINDS = ("vit", "dinov2", "resnet", "efficientnet")


def save_image_preset(directory, kind="vit", image_size=32, hidden_dim=32):
    """Saves a small keras-hub image backbone preset with random weights.

    The backbone and an image converter of its class (ImageNet
    normalisation, `image_size` square) are written with `save_to_preset`,
    as a downloaded ViT, DINOv2, ResNet or EfficientNet preset holds them.

    Args:
        directory: str. Where to save (created if missing).
        kind: one of `IMAGE_PRESET_KINDS`: `"vit"` (patch 8, class token),
            `"dinov2"` (patch 8), `"resnet"` (two basic blocks) or
            `"efficientnet"` (two MBConv stacks).
        image_size: int. The converter's size (and the ViT / DINOv2 input).
        hidden_dim: int. The token size of ViT and DINOv2 (the ResNet has
            64 output features; the EfficientNet 1280, keras-hub's default,
            the one its saved config gives back).

    Returns:
        `directory`.

    Example:

    ```python
    path = mmzoo.testing.keras_hub_presets.save_image_preset(tmp_dir, "vit")
    tower = mmzoo.encoders.build_keras_hub_image_tower(path)
    ```
    """
    image_shape = (image_size, image_size, 3)
    transformer = dict(num_layers=2, num_heads=2, hidden_dim=hidden_dim)
    if kind == "vit":
        backbone = keras_hub.models.ViTBackbone(
            image_shape=image_shape, patch_size=8, mlp_dim=2 * hidden_dim, **transformer
        )
        converter_cls = keras_hub.layers.ViTImageConverter
    elif kind == "dinov2":
        backbone = keras_hub.models.DINOV2Backbone(
            image_shape=image_shape, position_embedding_shape=image_shape, patch_size=8,
            intermediate_dim=2 * hidden_dim, **transformer,
        )
        converter_cls = keras_hub.layers.DINOV2ImageConverter
    elif kind == "resnet":
        backbone = keras_hub.models.ResNetBackbone(
            # keras-hub's ResNet starts at 64 filters.
            input_conv_filters=[64], input_conv_kernel_sizes=[3],
            stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
            stackwise_num_strides=[1, 2], block_type="basic_block",
            image_shape=(None, None, 3),
        )
        converter_cls = keras_hub.layers.ResNetImageConverter
    elif kind == "efficientnet":
        two = [1.0, 1.0]
        backbone = keras_hub.models.EfficientNetBackbone(
            stackwise_width_coefficients=two, stackwise_depth_coefficients=two,
            stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1],
            stackwise_input_filters=[8, 8], stackwise_output_filters=[8, 16],
            stackwise_expansion_ratios=[1, 4], stackwise_squeeze_and_excite_ratios=[0.25, 0.25],
            stackwise_strides=[1, 2], stackwise_block_types=["v1", "v1"],
            stackwise_force_input_filters=[0, 0], stackwise_nores_option=[False, False],
            input_shape=(None, None, 3),
        )
        converter_cls = keras_hub.layers.EfficientNetImageConverter
    else:
        raise ValueError(
            f"`kind` must be one of {IMAGE_PRESET_KINDS}. Received: kind={kind!r}"
        )
    converter = converter_cls(
        image_size=(image_size, image_size),
        scale=[1.0 / (255.0 * s) for s in _IMAGENET_STD],
        offset=[-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD)],
    )
    backbone.save_to_preset(directory)
    converter.save_to_preset(directory)
    return directory


TEXT_PRESET_KINDS = ("bert", "distil_bert", "roberta")


def save_text_preset(
    directory, kind="bert", texts=("a red circle", "a blue square"), hidden_dim=16,
    max_sequence_length=24,
):
    """Saves a small keras-hub BERT, DistilBERT or RoBERTa preset with random weights.

    The backbone (one layer) and its tokenizer, a vocabulary made from the
    words of `texts` (BERT's WordPiece with `[CLS]` / `[SEP]` for BERT and
    DistilBERT, byte-level BPE with `<s>` / `</s>` for RoBERTa), are
    written with `save_to_preset`.

    Args:
        directory: str. Where to save (created if missing).
        kind: one of `TEXT_PRESET_KINDS`.
        texts: strings whose words make the vocabulary.
        hidden_dim: int.
        max_sequence_length: int. The backbone's position embeddings.

    Returns:
        `directory`.

    Example:

    ```python
    path = mmzoo.testing.keras_hub_presets.save_text_preset(tmp_dir, "bert")
    tower = mmzoo.encoders.build_keras_hub_text_tower(path, sequence_length=16)
    tokenizer = keras_hub.models.Tokenizer.from_preset(path)
    ```
    """
    kinds = {
        "bert": (keras_hub.models.BertBackbone, tokenizers.bert_tokenizer),
        "distil_bert": (keras_hub.models.DistilBertBackbone, tokenizers.bert_tokenizer),
        "roberta": (keras_hub.models.RobertaBackbone, tokenizers.roberta_tokenizer),
    }
    if kind not in kinds:
        raise ValueError(f"`kind` must be one of {TEXT_PRESET_KINDS}. Received: kind={kind!r}")
    backbone_cls, make_tokenizer = kinds[kind]
    tokenizer = make_tokenizer(list(texts))
    if kind == "distil_bert":  # its own tokenizer class, the same WordPiece
        tokenizer = keras_hub.models.DistilBertTokenizer(vocabulary=tokenizer.vocabulary)
    backbone_cls(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2,
        hidden_dim=hidden_dim, intermediate_dim=2 * hidden_dim,
        max_sequence_length=max_sequence_length,
    ).save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return directory


def save_video_preset(
    directory, with_text=False, texts=("a red circle", "a blue square"), num_frames=2,
    image_size=16, hidden_dim=16,
):
    """Saves a small keras-hub VideoPrism preset with random weights.

    A video-only backbone, or with `with_text=True` a video-text one (an
    auxiliary layer, attention pooling and a text encoder, as the
    `videoprism_lvt_*` presets) with its SentencePiece tokenizer made from
    `texts` (needs the `sentencepiece` package); a `VideoPrismImageConverter`
    scaling to [0, 1] as VideoPrism's does.

    Args:
        directory: str. Where to save (created if missing).
        with_text: bool.
        texts: strings the tokenizer is trained on.
        num_frames, image_size, hidden_dim: the backbone's sizes (patch 8,
            one spatial and one temporal layer).

    Returns:
        `directory`.

    Example:

    ```python
    path = mmzoo.testing.keras_hub_presets.save_video_preset(tmp_dir)
    tower = mmzoo.encoders.build_keras_hub_video_tower(path)
    ```
    """
    tokenizer = None
    if with_text:
        tokenizer = keras_hub.models.VideoPrismTokenizer(
            proto=tokenizers.sentencepiece_proto(list(texts), pad_id=0, unk_id=1, bos_id=-1,
                                                 eos_id=-1)
        )
    keras_hub.models.VideoPrismBackbone(
        num_frames=num_frames, patch_size=8, hidden_dim=hidden_dim,
        intermediate_dim=2 * hidden_dim, num_heads=2, num_spatial_layers=1,
        num_temporal_layers=1, num_auxiliary_layers=1 if with_text else 0,
        vocabulary_size=tokenizer.vocabulary_size() if with_text else 0,
        num_text_layers=1 if with_text else 0, image_shape=(image_size, image_size, 3),
    ).save_to_preset(directory)
    keras_hub.layers.VideoPrismImageConverter(
        image_size=(image_size, image_size), scale=1.0 / 255.0
    ).save_to_preset(directory)
    if tokenizer is not None:
        tokenizer.save_to_preset(directory)
    return directory
