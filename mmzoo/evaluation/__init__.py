"""Evaluation metrics: caption metrics, token accuracy (and retrieval, VQA...)."""

from mmzoo.evaluation.token_accuracy import MaskedTokenAccuracy

__all__ = ["MaskedTokenAccuracy"]
from mmzoo.evaluation.caption_metrics import caption_metrics  # noqa: E402
from mmzoo.evaluation.caption_metrics import cider_d  # noqa: E402
from mmzoo.evaluation.caption_metrics import corpus_bleu  # noqa: E402
from mmzoo.evaluation.caption_metrics import normalize_caption  # noqa: E402
from mmzoo.evaluation.caption_metrics import rouge_l  # noqa: E402

__all__ += ["caption_metrics", "cider_d", "corpus_bleu", "normalize_caption", "rouge_l"]
