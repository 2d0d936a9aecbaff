"""Image captioning: an image encoder and a Transformer decoder."""

from mmzoo import lazy_attributes

# Public names and the modules that define them (relative to this package).
_EXPORTS = {
    "ImageCaptioningModel": ".image_captioning_model",
    "ImageCaptioningPreprocessor": ".image_captioning_preprocessor",
    "build_image_captioning_model": ".image_captioning_model",
    "teacher_forcing_split": ".image_captioning_model",
}
__all__ = sorted(_EXPORTS)

# Loaded on first use, so that reading the presets (`mmzoo presets`) imports
# no model code and no TensorFlow.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
