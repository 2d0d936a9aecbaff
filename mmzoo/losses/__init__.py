"""Losses: sequence and soft-target cross-entropy, contrastive losses."""

from mmzoo.losses.contrastive import CLIPLoss
from mmzoo.losses.contrastive import ContrastiveLoss
from mmzoo.losses.contrastive import NTXentLoss
from mmzoo.losses.contrastive import SigLIPLoss
from mmzoo.losses.contrastive import gather_from_replicas
from mmzoo.losses.masked_sequence_cross_entropy import MaskedSequenceCrossEntropy
from mmzoo.losses.soft_target_cross_entropy import SoftTargetCrossEntropy
from mmzoo.losses.soft_target_cross_entropy import vqa_target_scores

__all__ = [
    "CLIPLoss",
    "ContrastiveLoss",
    "MaskedSequenceCrossEntropy",
    "NTXentLoss",
    "SigLIPLoss",
    "SoftTargetCrossEntropy",
    "gather_from_replicas",
    "vqa_target_scores",
]
