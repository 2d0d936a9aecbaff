"""Video question answering: classify or generate answers about clips."""

from mmzoo import lazy_attributes

# Public names and the modules that define them (relative to this package).
_EXPORTS = {
    "ModalityConcat": ".video_qa_layers",
    "VideoQAClassifier": ".video_qa_model",
    "VideoQAGenerator": ".video_qa_model",
    "VideoQAModel": ".video_qa_model",
    "VideoQuestionFusion": ".video_qa_layers",
    "VideoQAPreprocessor": ".video_qa_preprocessor",
    "build_video_qa_model": ".video_qa_model",
    "make_answer_tokenizer": ".video_qa_preprocessor",
    "video_qa_training_split": ".video_qa_model",
}
__all__ = sorted(_EXPORTS)

# Loaded on first use, so that reading the presets (`mmzoo presets`) imports
# no model code and no TensorFlow.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
