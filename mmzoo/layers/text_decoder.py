import keras
import keras_hub
from keras import ops

from mmzoo.layers.transformer import transformer_block
from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rank
from mmzoo.layers.validation import check_rate


@keras.saving.register_keras_serializable(package="mmzoo")
class TextDecoder(keras.layers.Layer):
    """A Transformer text decoder that cross-attends to a memory sequence.

    Token and position embedding (keras-hub `TokenAndPositionEmbedding`),
    dropout, `num_layers` pre-norm keras-hub `TransformerDecoder` blocks
    (causal self-attention, cross-attention to the memory, GELU MLP), a final
    layer norm and the vocabulary logits, in float32 whatever the compute
    dtype (softmax statistics). The memory is what the text is about: image
    tokens for captioning, fused video-and-question tokens for video QA.

    Called on a whole sequence it is the teacher-forced decoder of training.
    For decoding, `build_cache` computes the cross-attention keys and values
    of the memory once, and `call_with_cache` runs one position at a time
    against a fixed-length self-attention key/value cache, both through
    `TransformerDecoder`'s public cache arguments (as keras-hub's BART does),
    so that a decoding loop over a fixed-length buffer compiles once.

    Args:
        vocabulary_size: int. Size of the token vocabulary.
        sequence_length: int. Longest sequence (position embeddings).
        num_layers: int. Decoder blocks.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        hidden_dim: int. Width of the decoder; the memory must have it too.
        intermediate_dim: int. Hidden size of the MLPs.
        dropout_rate: float. Dropout after the embedding and in the blocks.
        layer_norm_epsilon: float.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        token_ids: int `(batch_size, length)`, `length <= sequence_length`.
        memory: `(batch_size, memory_length, hidden_dim)`.
        padding_mask: optional bool `(batch_size, length)`.
        memory_padding_mask: optional bool `(batch_size, memory_length)`.

    Returns:
        float32 logits `(batch_size, length, vocabulary_size)`.

    Example:

    >>> decoder = mmzoo.layers.TextDecoder(
    ...     vocabulary_size=50, sequence_length=8, num_layers=1, num_heads=2,
    ...     hidden_dim=16, intermediate_dim=32)
    >>> decoder(np.zeros((2, 8), "int32"), np.zeros((2, 5, 16))).shape
    (2, 8, 50)
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Plain Python numbers (NumPy scalars are accepted), for a JSON-clean config.
        self.vocabulary_size = check_positive_int("vocabulary_size", vocabulary_size)
        self.sequence_length = check_positive_int("sequence_length", sequence_length)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.intermediate_dim = check_positive_int("intermediate_dim", intermediate_dim)
        check_divisible("hidden_dim", hidden_dim, "num_heads", num_heads)
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.layer_norm_epsilon = layer_norm_epsilon

        self.token_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=self.vocabulary_size,
            sequence_length=self.sequence_length,
            embedding_dim=self.hidden_dim,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=self.dtype_policy, name="embedding_dropout"
        )
        self.decoder_blocks = [
            transformer_block(
                i, self.num_heads, self.intermediate_dim, self.dropout_rate,
                layer_norm_epsilon, self.dtype_policy, prefix="decoder", decoder=True,
            )
            for i in range(self.num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="final_norm"
        )
        self.logits_dense = keras.layers.Dense(
            self.vocabulary_size, dtype=self.dtype_policy, name="logits"
        )

    def build(self, token_ids_shape, memory_shape, padding_mask_shape=None,
              memory_padding_mask_shape=None):
        check_rank("token_ids", token_ids_shape, 2, "(batch_size, length)")
        check_rank("memory", memory_shape, 3, "(batch_size, memory_length, hidden_dim)")
        if memory_shape[-1] is not None and memory_shape[-1] != self.hidden_dim:
            raise ValueError(
                f"`memory` must have the decoder's hidden_dim={self.hidden_dim} features "
                f"(project it first). Received: memory shape {tuple(memory_shape)}"
            )
        self.token_embedding.build(token_ids_shape)
        sequence_shape = tuple(token_ids_shape) + (self.hidden_dim,)
        for block in self.decoder_blocks:
            block.build(sequence_shape, tuple(memory_shape))
        self.final_norm.build(sequence_shape)
        self.logits_dense.build(sequence_shape)

    def call(self, token_ids, memory, padding_mask=None, memory_padding_mask=None,
             training=None):
        padding_mask = _bool_mask(padding_mask)
        memory_padding_mask = _bool_mask(memory_padding_mask)
        x = self.embedding_dropout(self.token_embedding(token_ids), training=training)
        for block in self.decoder_blocks:
            x = block(
                x, memory,
                decoder_padding_mask=padding_mask,
                encoder_padding_mask=memory_padding_mask,
                training=training,
            )
        return ops.cast(self.logits_dense(self.final_norm(x)), "float32")

    def compute_output_shape(self, token_ids_shape, memory_shape=None,
                             padding_mask_shape=None, memory_padding_mask_shape=None):
        return tuple(token_ids_shape) + (self.vocabulary_size,)

    def compute_output_spec(self, token_ids, memory, padding_mask=None,
                            memory_padding_mask=None, training=None):
        return keras.KerasTensor(self.compute_output_shape(token_ids.shape), dtype="float32")

    # ------------------------------------------------------------ decoding
    def _build_for(self, memory):
        """Builds the layer when a decoding method is its first use."""
        if not self.built:
            self.build((None, None), tuple(memory.shape))

    def build_cache(self, memory, max_length, memory_padding_mask=None):
        """The caches a decoding loop starts from.

        Args:
            memory: `(batch_size, memory_length, hidden_dim)`.
            max_length: int. Positions of the decoding buffer (at most
                `sequence_length`).
            memory_padding_mask: optional bool `(batch_size, memory_length)`.

        Returns:
            `(self_attention_cache, cross_attention_cache)`: zeros
            `(batch_size, num_layers, 2, max_length, num_heads, head_dim)`,
            and the cross-attention keys and values of `memory`, `(batch_size,
            num_layers, 2, memory_length, num_heads, head_dim)`, computed once
            here by each block's own cross-attention (a zero cache updated
            at index 0).
        """
        self._build_for(memory)
        batch_size, memory_length = ops.shape(memory)[0], ops.shape(memory)[1]
        head_dim = self.hidden_dim // self.num_heads
        dtype = self.compute_dtype
        self_cache = ops.zeros(
            (batch_size, self.num_layers, 2, max_length, self.num_heads, head_dim), dtype=dtype
        )
        empty_cross_cache = ops.zeros(
            (batch_size, 2, memory_length, self.num_heads, head_dim), dtype=dtype
        )
        memory_padding_mask = _bool_mask(memory_padding_mask)
        # One position through every block: the self-attention state it
        # leaves is dropped (decoding writes position 0 again), the
        # cross-attention keys and values of the memory are kept.
        x = self.token_embedding(ops.zeros((batch_size, 1), "int32"))
        cross_caches = []
        for i, block in enumerate(self.decoder_blocks):
            x, _, cross_cache = block(
                decoder_sequence=x,
                encoder_sequence=memory,
                encoder_padding_mask=memory_padding_mask,
                self_attention_cache=self_cache[:, i, ...],
                self_attention_cache_update_index=0,
                cross_attention_cache=empty_cross_cache,
                cross_attention_cache_update_index=0,
            )
            cross_caches.append(cross_cache)
        return self_cache, ops.stack(cross_caches, axis=1)

    def call_with_cache(self, token_ids, index, self_attention_cache, cross_attention_cache,
                        memory, memory_padding_mask=None):
        """One decoding step: the token at `index` -> logits for `index + 1`.

        Args:
            token_ids: int `(batch_size, 1)`, the token at position `index`.
            index: int tensor, the position of `token_ids`.
            self_attention_cache: from `build_cache` or the previous step.
            cross_attention_cache: from `build_cache` (not updated).
            memory: `(batch_size, memory_length, hidden_dim)`.
            memory_padding_mask: optional int or bool `(batch_size,
                memory_length)`.

        Returns:
            `(logits (batch_size, vocabulary_size) float32, hidden
            (batch_size, hidden_dim), self_attention_cache)`.
        """
        memory_padding_mask = _bool_mask(memory_padding_mask)
        x = self.token_embedding(token_ids, start_index=index)
        next_caches = []
        for i, block in enumerate(self.decoder_blocks):
            x, next_cache, _ = block(
                decoder_sequence=x,
                encoder_sequence=memory,
                encoder_padding_mask=memory_padding_mask,
                self_attention_cache=self_attention_cache[:, i, ...],
                self_attention_cache_update_index=index,
                cross_attention_cache=cross_attention_cache[:, i, ...],
                cross_attention_cache_update_index=None,
            )
            next_caches.append(next_cache)
        hidden = self.final_norm(x)
        logits = ops.cast(self.logits_dense(hidden), "float32")
        return logits[:, 0, :], hidden[:, 0, :], ops.stack(next_caches, axis=1)

    # ------------------------------------------------------- inspection
    def cross_attention_scores(self, token_ids, memory, padding_mask=None,
                               memory_padding_mask=None, block_index=-1):
        """Cross-attention weights of one block, `(batch, num_heads, length,
        memory_length)`, float32; each row sums to 1.

        keras-hub's `TransformerDecoder` returns no attention weights, so the
        query is computed here as its pre-norm block does (`x +
        SelfAttention(LN(x))`, then the cross-attention layer norm), from the
        block's sublayers. A keras-hub upgrade that renames them fails the
        tests that compare these weights with the block's own output.

        Args:
            token_ids: int `(batch_size, length)`.
            memory: `(batch_size, memory_length, hidden_dim)`.
            padding_mask: optional bool `(batch_size, length)`.
            memory_padding_mask: optional bool `(batch_size, memory_length)`.
            block_index: int in `[-num_layers, num_layers)`.
        """
        self._build_for(memory)
        padding_mask = _bool_mask(padding_mask)
        memory_padding_mask = _bool_mask(memory_padding_mask)
        target = self.decoder_blocks[block_index]
        x = self.token_embedding(token_ids)
        for block in self.decoder_blocks:
            if block is not target:
                x = block(x, memory, decoder_padding_mask=padding_mask,
                          encoder_padding_mask=memory_padding_mask)
                continue
            mask = block._compute_self_attention_mask(x, padding_mask, None, True, None, None)
            h = block._self_attention_layer_norm(x)
            x = x + block._self_attention_layer(query=h, value=h, attention_mask=mask)
            attention = block._cross_attention_layer
            query = attention._query_dense(block._cross_attention_layer_norm(x))
            key = attention._key_dense(memory)
            value = attention._value_dense(memory)
            cross_mask = None
            if memory_padding_mask is not None:
                cross_mask = ops.broadcast_to(
                    memory_padding_mask[:, None, :],
                    (ops.shape(x)[0], ops.shape(x)[1], ops.shape(memory)[1]),
                )
            _, scores = attention._compute_attention(
                query, key, value, attention_mask=cross_mask, return_attention_scores=True
            )
            return ops.cast(scores, "float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout_rate": self.dropout_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


def _bool_mask(mask):
    return None if mask is None else ops.cast(mask, "bool")
