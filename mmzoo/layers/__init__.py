"""Small serializable layers shared by mmzoo's encoders and model families.

Only what Keras and keras-hub do not already have: for Transformer stacks and
position embeddings use `keras_hub.layers` directly (`TextDecoder` puts them
together with a decoding cache for the families that write text).
"""

from mmzoo.layers.attention_pooling import AttentionPooling
from mmzoo.layers.contrastive_head import ContrastiveHead
from mmzoo.layers.cross_modal_fusion_block import CrossModalFusionBlock
from mmzoo.layers.factorised_attention_block import FactorisedAttentionBlock
from mmzoo.layers.patch_embedding import PatchEmbedding
from mmzoo.layers.projection_head import ProjectionHead
from mmzoo.layers.text_decoder import TextDecoder
from mmzoo.layers.token_pooling import TokenPooling
from mmzoo.layers.tubelet_embedding import TubeletEmbedding

__all__ = [
    "AttentionPooling",
    "ContrastiveHead",
    "CrossModalFusionBlock",
    "FactorisedAttentionBlock",
    "PatchEmbedding",
    "ProjectionHead",
    "TextDecoder",
    "TokenPooling",
    "TubeletEmbedding",
]
