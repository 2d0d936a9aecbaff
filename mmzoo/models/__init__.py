"""Model families; each is a functional graph built from any mmzoo encoder."""

from mmzoo import lazy_attributes

# Public names and the modules that define them (relative to this package).
_EXPORTS = {
    "DualEncoder": ".dual_encoder",
    "DualEncoderPreprocessor": ".dual_encoder",
    "build_dual_encoder": ".dual_encoder",
    "TwoViewEncoder": ".dual_encoder",
    "build_two_view_encoder": ".dual_encoder",
    "FUSION_TYPES": ".fusion_classifier",
    "FusionClassifier": ".fusion_classifier",
    "FusionClassifierPreprocessor": ".fusion_classifier",
    "build_fusion_classifier": ".fusion_classifier",
    "classification_split": ".fusion_classifier",
    "ImageCaptioningModel": ".image_captioning",
    "ImageCaptioningPreprocessor": ".image_captioning",
    "build_image_captioning_model": ".image_captioning",
    "teacher_forcing_split": ".image_captioning",
    "VideoQAClassifier": ".video_qa",
    "VideoQAGenerator": ".video_qa",
    "VideoQAModel": ".video_qa",
    "VideoQAPreprocessor": ".video_qa",
    "build_video_qa_model": ".video_qa",
    "video_qa_training_split": ".video_qa",
}
__all__ = sorted(_EXPORTS)

# Loaded on first use, so that reading the presets (`mmzoo presets`) imports
# no model code and no TensorFlow.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
