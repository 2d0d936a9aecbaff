"""Tower builders: image (ViT, CNN / keras-hub backbones), text and video.

Every builder returns a functional `keras.Model` whose outputs are
`{"sequence_output": (batch, length, dim), "pooled_output": (batch, dim)}`.
"""

from mmzoo import lazy_attributes

# Public names and the modules that define them (relative to this package).
_EXPORTS = {
    "KERAS_APPLICATIONS": ".cnn_image_encoder",
    "build_cnn_image_encoder": ".cnn_image_encoder",
    "build_keras_hub_image_tower": ".keras_hub_towers",
    "build_keras_hub_text_tower": ".keras_hub_towers",
    "build_keras_hub_video_tower": ".keras_hub_towers",
    "keras_hub_image_presets": ".keras_hub_towers",
    "keras_hub_text_presets": ".keras_hub_towers",
    "keras_hub_video_presets": ".keras_hub_towers",
    "load_keras_hub_backbone": ".keras_hub_towers",
    "build_conv_image_encoder": ".cnn_image_encoder",
    "build_text_encoder": ".text_encoder",
    "FoldFrames": ".video_encoder",
    "FrameDifferences": ".video_encoder",
    "UnfoldFrames": ".video_encoder",
    "build_frame_video_encoder": ".video_encoder",
    "build_video_encoder": ".video_encoder",
    "build_vit_image_encoder": ".vit_image_encoder",
}
__all__ = sorted(_EXPORTS)

# Loaded on first use, so that reading the presets (`mmzoo presets`) imports
# no model code and no TensorFlow.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
