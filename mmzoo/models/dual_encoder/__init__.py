"""Contrastive encoders: image/video-text (CLIP, SigLIP, LiT) and two views (SimCLR)."""

from mmzoo import lazy_attributes

# Public names and the modules that define them (relative to this package).
_EXPORTS = {
    "DualEncoder": ".dual_encoder_model",
    "DualEncoderHead": ".dual_encoder_base",
    "DualEncoderPreprocessor": ".dual_encoder_preprocessor",
    "FeatureQueue": ".momentum",
    "TwoViewEncoder": ".two_view_encoder_model",
    "build_dual_encoder": ".dual_encoder_model",
    "build_two_view_encoder": ".two_view_encoder_model",
}
__all__ = sorted(_EXPORTS)

# Loaded on first use, so that reading the presets (`mmzoo presets`) imports
# no model code and no TensorFlow.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
