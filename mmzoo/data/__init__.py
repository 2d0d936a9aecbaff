"""`mmzoo.data`: tokenization, built-in synthetic datasets, loaders, pipelines.

Example dicts use the mmzoo keys: `images` float32 (height, width, 3) and
`videos` float32 (num_frames, height, width, 3) in [0, 1]; `captions`,
`questions`, `answers`, `question_types`, `texts` strings; `token_ids` int32
and `padding_mask` bool (sequence_length,), prefixed `question_` for
questions; `answer_ids` and `labels` int32.

Typical use:

```python
import mmzoo

examples = mmzoo.data.load_synthetic("shapes_captions", split="train")
vocabulary = mmzoo.data.train_word_piece_vocabulary(
    examples.map(lambda x: x["captions"]), vocabulary_size=200
)
preprocessor = mmzoo.models.ImageCaptioningPreprocessor(
    mmzoo.data.TextTokenizer(vocabulary), image_converter=(32, 32))
model = mmzoo.presets.build_from_preset(
    "image_captioning_tiny", vocabulary_size=len(vocabulary), preprocessor=preprocessor)
train = mmzoo.data.captioning_pipeline(examples, model, batch_size=32)
```
"""

from mmzoo import lazy_attributes

# Public names and the modules that define them (relative to this package).
_EXPORTS = {
    "CLASSIFICATION_CLASS_NAMES": ".synthetic",
    "COLORS": ".synthetic",
    "HELD_OUT_COMBINATIONS": ".synthetic",
    "ImageConverter": ".preprocessing",
    "KNOWN_TFDS_DATASETS": ".tfds_loader",
    "LoadReport": ".files",
    "Preprocessor": ".preprocessing",
    "RandomResizedCrop": ".pipeline",
    "RESERVED_TOKENS": ".tokenizer",
    "SHAPES": ".synthetic",
    "SIZES": ".synthetic",
    "SPLITS": ".synthetic",
    "SYNTHETIC_DATASETS": ".synthetic",
    "TextTokenizer": ".tokenizer",
    "VIDEO_QA_ANSWERS": ".synthetic",
    "VIDEO_QA_QUESTION_TYPES": ".synthetic",
    "VideoConverter": ".preprocessing",
    "caption_safe_augmentation": ".pipeline",
    "captioning_pipeline": ".pipeline",
    "contrastive_pipeline": ".pipeline",
    "fusion_pipeline": ".pipeline",
    "generate_shapes_captions": ".synthetic",
    "generate_shapes_classification": ".synthetic",
    "generate_shapes_video_qa": ".synthetic",
    "load_image_caption_files": ".files",
    "load_synthetic": ".synthetic",
    "load_tfds": ".tfds_loader",
    "load_tfrecords": ".records",
    "load_video_qa_files": ".files",
    "ops": ".ops",
    "pack_records": ".records",
    "synthetic_info": ".synthetic",
    "simclr_augmentation": ".pipeline",
    "train_word_piece_vocabulary": ".tokenizer",
    "two_view_pipeline": ".pipeline",
    "video_qa_pipeline": ".pipeline",
}
__all__ = sorted(_EXPORTS)

# Loaded on first use: `mmzoo.data.inputs` (NumPy checks the models use)
# imports no TensorFlow, so the models still import on a JAX-only machine.
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
