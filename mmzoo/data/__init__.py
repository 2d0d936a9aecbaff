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
tokenizer = mmzoo.data.TextTokenizer(vocabulary, sequence_length=24)
train = mmzoo.data.captioning_pipeline(examples, tokenizer, batch_size=32)
```
"""

from mmzoo.data import ops
from mmzoo.data.files import LoadReport
from mmzoo.data.files import load_image_caption_files
from mmzoo.data.files import load_video_qa_files
from mmzoo.data.pipeline import caption_safe_augmentation
from mmzoo.data.pipeline import captioning_pipeline
from mmzoo.data.pipeline import contrastive_pipeline
from mmzoo.data.pipeline import fusion_pipeline
from mmzoo.data.pipeline import video_qa_pipeline
from mmzoo.data.synthetic import CLASSIFICATION_CLASS_NAMES
from mmzoo.data.synthetic import COLORS
from mmzoo.data.synthetic import HELD_OUT_COMBINATIONS
from mmzoo.data.synthetic import SHAPES
from mmzoo.data.synthetic import SIZES
from mmzoo.data.synthetic import SPLITS
from mmzoo.data.synthetic import SYNTHETIC_DATASETS
from mmzoo.data.synthetic import VIDEO_QA_ANSWERS
from mmzoo.data.synthetic import VIDEO_QA_QUESTION_TYPES
from mmzoo.data.synthetic import generate_shapes_captions
from mmzoo.data.synthetic import generate_shapes_classification
from mmzoo.data.synthetic import generate_shapes_video_qa
from mmzoo.data.synthetic import load_synthetic
from mmzoo.data.synthetic import synthetic_info
from mmzoo.data.tfds_loader import KNOWN_TFDS_DATASETS
from mmzoo.data.tfds_loader import load_tfds
from mmzoo.data.tokenizer import RESERVED_TOKENS
from mmzoo.data.tokenizer import TextTokenizer
from mmzoo.data.tokenizer import train_word_piece_vocabulary
