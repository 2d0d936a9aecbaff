"""Losses: masked sequence cross-entropy (and the contrastive losses)."""

from mmzoo.losses.masked_sequence_cross_entropy import MaskedSequenceCrossEntropy

__all__ = ["MaskedSequenceCrossEntropy"]

from mmzoo.losses.contrastive import CLIPLoss  # noqa: E402
from mmzoo.losses.contrastive import ContrastiveLoss  # noqa: E402
from mmzoo.losses.contrastive import NTXentLoss  # noqa: E402
from mmzoo.losses.contrastive import SigLIPLoss  # noqa: E402
from mmzoo.losses.contrastive import gather_from_replicas  # noqa: E402

__all__ += ["CLIPLoss", "ContrastiveLoss", "NTXentLoss", "SigLIPLoss", "gather_from_replicas"]

from mmzoo.losses.soft_target_cross_entropy import SoftTargetCrossEntropy  # noqa: E402
from mmzoo.losses.soft_target_cross_entropy import vqa_target_scores  # noqa: E402

__all__ += ["SoftTargetCrossEntropy", "vqa_target_scores"]
