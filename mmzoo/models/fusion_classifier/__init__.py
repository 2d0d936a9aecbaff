"""Multimodal fusion classifiers: early, late, attention, gated."""

from mmzoo import lazy_attributes

# Public names and the modules that define them (relative to this package).
_EXPORTS = {
    "GatedModalityUnit": ".fusion_classifier_layers",
    "SequenceMask": ".fusion_classifier_layers",
    "WeightedLogitAverage": ".fusion_classifier_layers",
    "FUSION_TYPES": ".fusion_classifier_model",
    "FusionClassifier": ".fusion_classifier_model",
    "FusionClassifierPreprocessor": ".fusion_classifier_preprocessor",
    "build_fusion_classifier": ".fusion_classifier_model",
    "classification_split": ".fusion_classifier_model",
}
__all__ = sorted(_EXPORTS)

# Loaded on first use, so that reading the presets (`mmzoo presets`) imports
# no model code and no TensorFlow.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
