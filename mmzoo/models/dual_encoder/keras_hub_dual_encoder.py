"""A keras-hub CLIP, SigLIP or MetaCLIP 2 backbone (a preset name, a preset
directory or the model itself) as an mmzoo `DualEncoder`, with the same logits."""

import json
import math
import os

import keras_hub
from keras import ops

from mmzoo.data.preprocessing import ImageConverter
from mmzoo.encoders.keras_hub_towers import CONTRASTIVE_BACKBONES
from mmzoo.encoders.keras_hub_towers import build_keras_hub_image_tower
from mmzoo.encoders.keras_hub_towers import build_keras_hub_text_tower
from mmzoo.encoders.keras_hub_towers import check_contrastive_backbone
from mmzoo.encoders.keras_hub_towers import keras_hub_presets
from mmzoo.models.dual_encoder.dual_encoder_preprocessor import DualEncoderPreprocessor


def dual_encoder_from_keras_hub(
    preset,
    preprocessor=None,
    load_weights=True,
    freeze_image_encoder=False,
    freeze_text_encoder=False,
    max_logit_scale=None,
    dtype=None,
    name="dual_encoder",
    **kwargs,
):
    """A `DualEncoder` from a keras-hub CLIP, SigLIP or MetaCLIP 2 preset or backbone.

    Both towers, the projections (CLIP's), the learned temperature (and
    SigLIP's bias) and the preset's tokenizer, sequence length and image
    normalisation become an mmzoo `DualEncoder` with a
    `DualEncoderPreprocessor`: for the same images and token ids its
    `pair_logits` are keras-hub's `vision_logits`. It trains with
    `mmzoo.losses.CLIPLoss` / `SigLIPLoss` (negatives from every replica),
    fine-tunes locked (`freeze_image_encoder=True`, LiT) or in full, with
    LoRA, evaluates (retrieval, zero-shot) and exports like any mmzoo dual
    encoder.

    What differs from keras-hub: images are resized by mmzoo's one rule
    (area averaging when shrinking, antialiased bilinear when enlarging)
    where keras-hub's CLIP converter uses bicubic; the logit scale is
    clamped at `max_logit_scale` (keras-hub does not clamp).

    Args:
        preset: a keras-hub preset name (`"clip_vit_base_patch16"`,
            `"siglip_base_patch16_224"`, ...; downloaded by keras-hub), a
            local preset directory (`save_to_preset`), or a
            `keras_hub.models.CLIPBackbone` / `SigLIPBackbone` (its layers
            are used, not copied).
        preprocessor: with a backbone, its keras-hub `CLIPPreprocessor` /
            `SigLIPPreprocessor` (tokenizer, sequence length, image
            converter), or None for a model without a tokenizer whose
            [0, 1] images reach the vision encoder unscaled. With a preset,
            None: the preset's own preprocessor is loaded.
        load_weights: bool. Load the preset's weights (False: its
            architecture with random weights).
        freeze_image_encoder: bool. Lock the image tower (LiT).
        freeze_text_encoder: bool. Lock the text tower.
        max_logit_scale: float or None. Upper clamp of the logit scale;
            None for max(100, the preset's scale), so that the preset's
            scale is kept (SigLIP's is about 117).
        dtype: dtype or policy name for a preset's layers, or None.
        name: str.
        **kwargs: other `DualEncoder` arguments (`momentum`, `queue_size`,
            `trainable_temperature`).

    Returns:
        A `DualEncoder`.

    Example:

    ```python
    model = mmzoo.models.DualEncoder.from_keras_hub("clip_vit_base_patch16")
    texts = model.encode_text(["a photo of a cat", "a photo of a dog"])
    images = model.encode_images(["cat.jpg"])
    model.pair_logits(images, texts)  # as keras_hub's CLIPBackbone gives
    lit = mmzoo.models.DualEncoder.from_keras_hub(
        "siglip_base_patch16_224", freeze_image_encoder=True)
    lit.compile(optimizer="adam", loss=mmzoo.losses.SigLIPLoss())
    ```
    """
    if isinstance(preset, keras_hub.models.Backbone):
        backbone = preset
        kind = check_contrastive_backbone(backbone, "preset")
        if preprocessor is not None:
            expected = CONTRASTIVE_BACKBONES[kind]
            if type(preprocessor).__name__ != expected:
                raise ValueError(
                    f"A {kind} takes a keras-hub `{expected}` as `preprocessor`. "
                    f"Received: preprocessor of type {type(preprocessor).__name__}"
                )
    else:
        if preprocessor is not None:
            raise ValueError(
                "With a preset, the preset's own preprocessor is used; pass "
                "`preprocessor` only with a backbone. Received: "
                f"preprocessor of type {type(preprocessor).__name__}"
            )
        backbone_cls = _preset_backbone_class(preset)
        backbone = backbone_cls.from_preset(preset, load_weights=load_weights, dtype=dtype)
        kind = backbone_cls.__name__
        preprocessor = getattr(keras_hub.models, CONTRASTIVE_BACKBONES[kind]).from_preset(preset)

    if preprocessor is not None and not getattr(preprocessor, "to_lower", True):
        # mmzoo's preprocessor lower-cases every CLIP and MetaCLIP 2 text.
        raise ValueError(
            "mmzoo lower-cases CLIP and MetaCLIP 2 texts as keras-hub's preprocessors "
            "do by default; a preprocessor without it is not supported. Received: "
            "preprocessor with to_lower=False"
        )
    if preprocessor is not None and not getattr(preprocessor, "canonicalize_text", True):
        # mmzoo's preprocessor canonicalises every SigLIP tokenizer's texts.
        raise ValueError(
            "mmzoo canonicalises SigLIP texts (lower case, no punctuation) as "
            "keras-hub's SigLIPPreprocessor does by default; a preprocessor without "
            "it is not supported. Received: preprocessor with canonicalize_text=False"
        )
    image_converter = None if preprocessor is None else preprocessor.image_converter
    image_tower = build_keras_hub_image_tower(backbone, image_converter, name="image_encoder")
    sequence_length = (
        preprocessor.sequence_length if preprocessor is not None
        else _default_sequence_length(backbone)
    )
    text_tower = build_keras_hub_text_tower(backbone, sequence_length, name="text_encoder")

    if kind in ("CLIPBackbone", "MetaCLIP2Backbone"):
        head = backbone.clip_head if kind == "CLIPBackbone" else backbone.metaclip_2_head
        projections = {
            "image_projection": backbone.vision_projection,
            "text_projection": backbone.text_projection,
        }
        projection = {"projection_dim": backbone.projection_dim, "projection_use_bias": False}
    else:  # SigLIP's towers end in their own heads
        head, projections = backbone.siglip_head, {}
        projection = {"projection_dim": None}
    log_scale = float(ops.convert_to_numpy(head.logit_scale))
    if max_logit_scale is None:
        max_logit_scale = max(100.0, math.exp(log_scale))
    mmzoo_preprocessor = None
    if preprocessor is not None:
        mmzoo_preprocessor = DualEncoderPreprocessor(
            preprocessor.tokenizer,
            image_converter=ImageConverter(image_tower.inputs[0].shape[1:3]),
        )
    from mmzoo.models.dual_encoder.dual_encoder_model import DualEncoder

    model = DualEncoder(
        image_tower,
        text_tower,
        **projection,
        # Replaced by the preset's scale below; any start the clamp allows.
        initial_temperature=max(0.07, 1.0 / max_logit_scale),
        max_logit_scale=max_logit_scale,
        use_bias=kind == "SigLIPBackbone",
        freeze_image_encoder=freeze_image_encoder,
        freeze_text_encoder=freeze_text_encoder,
        preprocessor=mmzoo_preprocessor,
        dtype=dtype if dtype is not None else backbone.dtype_policy,
        name=name,
        **kwargs,
    )
    for attribute, source in projections.items():
        getattr(model, attribute).output_dense.kernel.assign(source.kernel)
    model.head.log_logit_scale.assign(head.logit_scale)
    if kind == "SigLIPBackbone":
        model.head.logit_bias.assign(head.logit_bias)
    return model


def _preset_backbone_class(preset):
    """The backbone class of a preset, found without building it."""
    if not isinstance(preset, (str, os.PathLike)):
        raise ValueError(
            "`preset` must be a keras-hub preset name or directory, or a CLIP / SigLIP / "
            "MetaCLIP 2 "
            f"backbone. Received: preset={preset!r:.100}"
        )
    preset = os.fspath(preset)
    known = keras_hub_presets()
    if preset in known:
        return getattr(keras_hub.models, known[preset])
    if os.path.isdir(preset):
        config_path = os.path.join(preset, "config.json")
        if not os.path.isfile(config_path):
            raise ValueError(
                "`preset` is a directory without `config.json`, so not a keras-hub "
                f"preset (`save_to_preset` writes one). Received: preset={preset!r}"
            )
        with open(config_path, encoding="utf-8") as f:
            class_name = json.load(f).get("class_name")
        if class_name not in CONTRASTIVE_BACKBONES:
            raise ValueError(
                f"A dual encoder is made from a preset of one of the classes "
                f"{sorted(CONTRASTIVE_BACKBONES)}. Received: preset {preset!r} of class "
                f"{class_name}"
            )
        return getattr(keras_hub.models, class_name)
    if "://" in preset:  # a Kaggle or Hugging Face handle: keras-hub checks the class
        backbone = keras_hub.models.Backbone.from_preset(preset, load_weights=False)
        check_contrastive_backbone(backbone, "preset")
        return type(backbone)
    raise ValueError(
        "`preset` must be a keras-hub CLIP, SigLIP or MetaCLIP 2 preset name, a preset "
        "directory "
        f"or a kaggle:// / hf:// handle. Known names: {sorted(known)}. Received: "
        f"preset={preset!r}"
    )


def _default_sequence_length(backbone):
    """The text length of a backbone given without a preprocessor."""
    return backbone.text_encoder.max_sequence_length
