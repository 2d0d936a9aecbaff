import keras
import numpy as np
from keras import ops

from mmzoo.encoders.common import transformer_block
from mmzoo.encoders.video_encoder import FoldFrames
from mmzoo.layers import AttentionPooling
from mmzoo.layers import CrossModalFusionBlock
from mmzoo.layers.validation import check_choice
from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rate
from mmzoo.data.inputs import as_strings
from mmzoo.data.inputs import check_batch_size
from mmzoo.data.inputs import check_padding_mask
from mmzoo.data.inputs import check_token_ids
from mmzoo.data.inputs import describe
from mmzoo.data.inputs import pixel_array
from mmzoo.data.inputs import run_in_batches
from mmzoo.data.inputs import token_vocabulary_size
from mmzoo.data.inputs import unit_float_pixels
from mmzoo.data.preprocessing import VideoConverter
from mmzoo.data.tokenizer import END_TOKEN
from mmzoo.data.tokenizer import PAD_TOKEN
from mmzoo.data.tokenizer import RESERVED_TOKENS
from mmzoo.data.tokenizer import START_TOKEN
from mmzoo.models._generation import CachedTextGeneration
from mmzoo.models.preprocessing import attach_preprocessor
from mmzoo.models.video_qa.video_qa_layers import ModalityConcat
from mmzoo.models.video_qa.video_qa_preprocessor import ANSWER_MODES
from mmzoo.models.video_qa.video_qa_preprocessor import VideoQAPreprocessor
from mmzoo.models.video_qa.video_qa_preprocessor import make_answer_tokenizer

FUSIONS = ("cross_attention", "concat")


@keras.saving.register_keras_serializable(package="mmzoo")
class VideoQAModel(CachedTextGeneration, keras.Model):
    """Answers questions about short videos (or images, as one-frame videos).

    A functional graph: `videos` -> `video_encoder` (its `sequence_output`,
    e.g. ViViT tubelet tokens or per-frame features) -> linear projection to
    `hidden_dim`; `question_token_ids` / `question_padding_mask` ->
    `question_encoder` -> projection; then fusion, then an answer head.

    Fusion (`fusion=`):

    - `"cross_attention"` (default): `num_fusion_layers`
      `mmzoo.layers.CrossModalFusionBlock`s, in which the question tokens
      attend to each other and, by cross-modal attention, to every video
      token. The fused sequence is the question tokens.
    - `"concat"`: early fusion for comparison; video and question tokens, each
      with a learned type embedding, are concatenated and mixed by
      `num_fusion_layers` Transformer encoder blocks.

    Answer head (`answer_mode=`):

    - `"classify"`: attention pooling of the fused tokens -> MLP -> logits
      over `answer_vocabulary` (the closed set of answers, index -> string).
      Train with `mmzoo.losses.SoftTargetCrossEntropy`, which takes one answer
      id per example or several reference answers (soft VQA targets,
      `min(count / 3, 1)`).
    - `"generate"`: a Transformer decoder cross-attending to the fused tokens
      writes the answer token by token; `answer_vocabulary` is then the
      answer tokenizer's token list (mmzoo's reserved tokens `[PAD]` at id
      0, `[UNK]`, `[START]`, `[END]` included), and answers are tokenized
      and detokenized by the `mmzoo.data.TextTokenizer` of that list
      (`mmzoo.models.video_qa.make_answer_tokenizer`). Trained by teacher
      forcing; `generate` decodes with the cached, XLA-compiled loop of the
      captioning model (greedy, beam, sampling).

    Either way `answer_vocabulary` is part of the config, so a reloaded
    model, `answer` and the exported SavedModel return answer strings. With
    a `preprocessor` (the question tokenizer and the video converter, saved
    in the `.keras` file), `answer` and `generate` take raw clips (arrays of
    any frame size, lists of frame files or encoded frames) and question
    strings.

    Args:
        video_encoder: `keras.Model` taking `videos` `(batch, num_frames,
            height, width, channels)` and returning a dict with
            `sequence_output` (every mmzoo video encoder does); or an image
            encoder taking `(batch, height, width, channels)`, which makes an
            image VQA model whose `videos` have one frame.
        question_encoder: `keras.Model` taking `{"token_ids",
            "padding_mask"}` and returning a dict with `sequence_output`
            (`mmzoo.encoders.build_text_encoder`).
        answer_vocabulary: list of str. Answers (classify) or answer tokens
            (generate).
        answer_mode: `"classify"` or `"generate"`.
        fusion: `"cross_attention"` or `"concat"`.
        num_fusion_layers: int.
        num_heads: int. Must divide `hidden_dim`.
        hidden_dim: int. Width of fusion and answer head.
        intermediate_dim: int.
        num_decoder_layers: int. Decoder blocks (generate mode).
        answer_sequence_length: int. Decoder input length (generate mode);
            answers are packed to `answer_sequence_length + 1` tokens.
        dropout_rate: float.
        layer_norm_epsilon: float.
        preprocessor: `VideoQAPreprocessor` or None. Kept by the model and
            saved in its `.keras` file; its tokenizer's vocabulary size must
            be the question encoder's. Its `question_length`, answer
            settings and video converter are set to the model's when None.
        **kwargs: `name`, `dtype` (e.g. `"mixed_bfloat16"`), ...

    Call inputs:
        `{"videos": (batch, num_frames, height, width, channels) float in
        [0, 1], "question_token_ids": (batch, question_length) int32,
        "question_padding_mask": (batch, question_length) bool}`, plus in
        generate mode `"answer_token_ids"` and `"answer_padding_mask"`
        `(batch, answer_sequence_length)`.

    Returns:
        Classify: logits `(batch, len(answer_vocabulary))`. Generate: logits
        `(batch, answer_sequence_length, len(answer_vocabulary))`. Float32,
        also under mixed precision.

    Example:

    ```python
    video_encoder = mmzoo.presets.build_from_preset("video_encoder_tiny")
    question_encoder = mmzoo.presets.build_from_preset(
        "text_encoder_tiny", vocabulary_size=tokenizer.vocabulary_size)
    model = mmzoo.models.build_video_qa_model(
        video_encoder, question_encoder,
        answer_vocabulary=list(mmzoo.data.VIDEO_QA_ANSWERS),
        preprocessor=mmzoo.models.VideoQAPreprocessor(tokenizer))
    model.compile(optimizer="adam", loss=mmzoo.losses.SoftTargetCrossEntropy())
    train = mmzoo.data.video_qa_pipeline(examples, model, batch_size=16)
    model.fit(train.map(mmzoo.models.video_qa_training_split))
    model.answer(videos, ["what color is the circle at the end?"])  # ["red"]
    ```
    """

    def __init__(
        self,
        video_encoder,
        question_encoder,
        answer_vocabulary,
        answer_mode="classify",
        fusion="cross_attention",
        num_fusion_layers=2,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=1024,
        num_decoder_layers=1,
        answer_sequence_length=4,
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        preprocessor=None,
        dtype=None,
        **kwargs,
    ):
        # Plain Python numbers (NumPy scalars are accepted), for a JSON-clean config.
        (
            answer_vocabulary, num_fusion_layers, num_heads, hidden_dim, intermediate_dim,
            num_decoder_layers, answer_sequence_length, dropout_rate,
        ) = _check_arguments(
            video_encoder, question_encoder, answer_vocabulary, answer_mode, fusion,
            num_fusion_layers, num_heads, hidden_dim, intermediate_dim,
            num_decoder_layers, answer_sequence_length, dropout_rate,
        )
        video_input_shape = tuple(video_encoder.inputs[0].shape[1:])
        is_image_encoder = len(video_input_shape) == 3
        video_shape = (1,) + video_input_shape if is_image_encoder else video_input_shape
        question_length = question_encoder.input["token_ids"].shape[1]

        # === Layers ===
        self.video_encoder = video_encoder
        self.question_encoder = question_encoder
        self.fold_frames = (
            FoldFrames(dtype=dtype, name="fold_frames") if is_image_encoder else None
        )
        self.video_projection = keras.layers.Dense(
            hidden_dim, dtype=dtype, name="video_projection"
        )
        self.question_projection = keras.layers.Dense(
            hidden_dim, dtype=dtype, name="question_projection"
        )
        if fusion == "cross_attention":
            self.modality_concat = None
            self.fusion_blocks = [
                CrossModalFusionBlock(
                    num_heads=num_heads,
                    intermediate_dim=intermediate_dim,
                    dropout_rate=dropout_rate,
                    layer_norm_epsilon=layer_norm_epsilon,
                    dtype=dtype,
                    name=f"fusion_block_{i}",
                )
                for i in range(num_fusion_layers)
            ]
        else:
            self.modality_concat = ModalityConcat(dtype=dtype, name="modality_concat")
            self.fusion_blocks = [
                transformer_block(
                    i, num_heads, intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
                    prefix="fusion",
                )
                for i in range(num_fusion_layers)
            ]
        self.fusion_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="fusion_norm"
        )
        vocabulary_size = len(answer_vocabulary)
        # Softmax statistics in float32 whatever the compute dtype.
        self.logits_cast = keras.layers.Activation(
            "linear", dtype="float32", name="logits_float32"
        )
        self.decoder_blocks = []
        if answer_mode == "classify":
            self.answer_pooling = AttentionPooling(
                num_heads=num_heads, dtype=dtype, name="answer_pooling"
            )
            self.answer_hidden = keras.layers.Dense(
                hidden_dim, activation="gelu", dtype=dtype, name="answer_hidden"
            )
            self.answer_dropout = keras.layers.Dropout(
                dropout_rate, dtype=dtype, name="answer_dropout"
            )
            self.logits_dense = keras.layers.Dense(
                vocabulary_size, dtype=dtype, name="answer_logits"
            )
        else:
            self._build_text_decoder(
                vocabulary_size, answer_sequence_length, num_decoder_layers, num_heads,
                hidden_dim, intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
            )

        # === Functional Model ===
        inputs = {
            "videos": keras.Input(shape=video_shape, name="videos"),
            "question_token_ids": keras.Input(
                shape=(question_length,), dtype="int32", name="question_token_ids"
            ),
            "question_padding_mask": keras.Input(
                shape=(question_length,), dtype="bool", name="question_padding_mask"
            ),
        }
        fused, fused_mask = self._fuse(
            inputs["videos"], inputs["question_token_ids"], inputs["question_padding_mask"]
        )
        if answer_mode == "classify":
            pooled = self.answer_pooling(fused, padding_mask=fused_mask)
            x = self.answer_dropout(self.answer_hidden(pooled))
            logits = self.logits_cast(self.logits_dense(x))
        else:
            inputs["answer_token_ids"] = keras.Input(
                shape=(answer_sequence_length,), dtype="int32", name="answer_token_ids"
            )
            inputs["answer_padding_mask"] = keras.Input(
                shape=(answer_sequence_length,), dtype="bool", name="answer_padding_mask"
            )
            x = self.embedding_dropout(self.token_embedding(inputs["answer_token_ids"]))
            for block in self.decoder_blocks:
                x = block(
                    x, fused,
                    decoder_padding_mask=inputs["answer_padding_mask"],
                    encoder_padding_mask=fused_mask,
                )
            logits = self.logits_cast(self.logits_dense(self.final_norm(x)))
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)

        # === Config ===
        self.answer_vocabulary = answer_vocabulary
        self.answer_mode = answer_mode
        self.fusion = fusion
        self.num_fusion_layers = num_fusion_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_decoder_layers = num_decoder_layers
        self.answer_sequence_length = answer_sequence_length
        self.dropout_rate = dropout_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.video_shape = video_shape
        self.num_frames = video_shape[0]
        self.question_length = question_length
        self.vocabulary_size = vocabulary_size
        ids = {token: i for i, token in enumerate(answer_vocabulary)}
        self.pad_token_id = ids.get(PAD_TOKEN)
        self.start_token_id = ids.get(START_TOKEN)
        self.end_token_id = ids.get(END_TOKEN)
        answer_settings = {"answer_mode": answer_mode, "answer_vocabulary": answer_vocabulary}
        if answer_mode == "generate":
            answer_settings["answer_sequence_length"] = answer_sequence_length
        self.preprocessor = attach_preprocessor(
            preprocessor, VideoQAPreprocessor, token_vocabulary_size(question_encoder),
            question_length=question_length, num_frames=video_shape[0],
            image_shape=video_shape[1:], **answer_settings,
        )
        if self.preprocessor is not None and self.preprocessor.video_converter is None:
            self.preprocessor.video_converter = VideoConverter(
                video_shape[0], video_shape[1:3], name="video_converter"
            )
        self._generate_functions = {}
        self._classify_functions = {}
        self.generate_trace_count = 0

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "video_encoder": keras.saving.serialize_keras_object(self.video_encoder),
            "question_encoder": keras.saving.serialize_keras_object(self.question_encoder),
            "answer_vocabulary": list(self.answer_vocabulary),
            "answer_mode": self.answer_mode,
            "fusion": self.fusion,
            "num_fusion_layers": self.num_fusion_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "num_decoder_layers": self.num_decoder_layers,
            "answer_sequence_length": self.answer_sequence_length,
            "dropout_rate": self.dropout_rate,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "preprocessor": (
                None if self.preprocessor is None
                else keras.saving.serialize_keras_object(self.preprocessor)
            ),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("video_encoder", "question_encoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        if isinstance(config.get("preprocessor"), dict):
            config["preprocessor"] = keras.saving.deserialize_keras_object(config["preprocessor"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    # ---------------------------------------------------------- encoding
    def _fuse(self, videos, question_token_ids, question_padding_mask, training=None):
        """The fused sequence and its padding mask; used by the functional
        graph (on symbolic tensors) and by decoding (on real ones)."""
        if self.fold_frames is not None:
            videos = self.fold_frames(videos)
        video_tokens = self.video_projection(
            self.video_encoder(videos, training=training)["sequence_output"]
        )
        question_padding_mask = ops.cast(question_padding_mask, "bool")
        question = self.question_encoder(
            {"token_ids": question_token_ids, "padding_mask": question_padding_mask},
            training=training,
        )
        question_tokens = self.question_projection(question["sequence_output"])
        if self.modality_concat is None:
            x, mask = question_tokens, question_padding_mask
            for block in self.fusion_blocks:
                x = block(x, video_tokens, padding_mask=mask, training=training)
        else:
            x, mask = self.modality_concat(video_tokens, question_tokens, question_padding_mask)
            for block in self.fusion_blocks:
                x = block(x, padding_mask=mask, training=training)
        return self.fusion_norm(x), mask

    def encode(self, videos, question_token_ids, question_padding_mask):
        """Fused video-and-question tokens, as the answer head sees them.

        Returns:
            `(tokens (batch, length, hidden_dim), padding_mask (batch, length)
            bool)`: the question tokens for `fusion="cross_attention"`; video
            then question tokens for `fusion="concat"`.
        """
        return self._fuse(
            ops.convert_to_tensor(videos, "float32"),
            ops.convert_to_tensor(question_token_ids, "int32"),
            ops.convert_to_tensor(question_padding_mask),
            training=False,
        )

    def _generation_memory(self, videos, question_token_ids, question_padding_mask):
        # Backend tensors, not NumPy arrays: on JAX decoding runs eagerly.
        return self.encode(videos, question_token_ids, question_padding_mask)

    def _generation_sequence_length(self):
        return "answer_sequence_length", self.answer_sequence_length

    # ----------------------------------------------------- input checks
    def answers_to_ids(self, answers):
        """Maps answer strings to their index in `answer_vocabulary`.

        For classify-mode training labels; an answer outside the vocabulary is
        an error (filter such examples first, as `mmzoo.data.video_qa_pipeline`
        does).

        Args:
            answers: list of str, or a nested list (several reference answers
                per example; rows may have different lengths and are padded
                with -1, which `SoftTargetCrossEntropy` ignores).

        Returns:
            int32 array `(batch,)` or `(batch, max_references)`.
        """
        self._require_mode("classify", "answers_to_ids")
        ids = {a: i for i, a in enumerate(self.answer_vocabulary)}

        def lookup(answer):
            answer = answer.decode("utf-8") if isinstance(answer, bytes) else answer
            if answer not in ids:
                shown = list(self.answer_vocabulary[:10])
                more = "..." if len(self.answer_vocabulary) > 10 else ""
                raise ValueError(
                    f"Unknown answer {answer!r}: not in the model's `answer_vocabulary` "
                    f"({len(ids)} answers: {shown}{more}). Drop or remap such examples. "
                    f"Received: answer={answer!r}"
                )
            return ids[answer]

        answers = list(answers)
        if answers and isinstance(answers[0], (list, tuple, np.ndarray)):
            width = max(len(row) for row in answers)
            return np.array(
                [[lookup(a) for a in row] + [-1] * (width - len(row)) for row in answers],
                "int32",
            )
        return np.array([lookup(a) for a in answers], "int32")

    def _require_mode(self, mode, method):
        if self.answer_mode != mode:
            raise ValueError(
                f"`{method}` needs answer_mode={mode!r}. "
                f"Received: a model with answer_mode={self.answer_mode!r}"
            )

    def prepare_videos(self, videos):
        """Checks a batch of clips and returns float32 in [0, 1].

        With a preprocessor, its video converter takes what a user holds:
        arrays `(batch, num_frames, h, w, channels)` of any frame size and 1
        to 4 channels, or lists of clips whose frames are arrays, file paths
        or encoded bytes (`VideoQAPreprocessor.preprocess_videos`), resized
        as in training. Without one, only arrays of the model's shape.

        Either way: floats in [0, 1] or uint8 in [0, 255] (scaled by 1/255);
        a one-frame model also takes images `(batch, height, width,
        channels)`. A wrong frame count is an error, and so are NaN, inf and
        floats outside [0, 1] (by more than 1/255, e.g. pixels in 0..255 not
        divided by 255). An empty list is a batch of no clips.

        Returns:
            float32 `(batch, num_frames, height, width, channels)`.
        """
        if self.preprocessor is not None:
            return self.preprocessor.preprocess_videos(videos)
        videos = pixel_array("videos", videos, self.video_shape)
        if self.num_frames == 1 and videos.ndim == 4:
            videos = videos[:, None]
        expected = ", ".join(map(str, self.video_shape))
        if videos.ndim != 5:
            raise ValueError(
                f"`videos` must have shape (batch, {expected}) (batch, num_frames, height, "
                f"width, channels). Received: videos with shape {videos.shape}"
            )
        if videos.shape[1] != self.num_frames:
            raise ValueError(
                f"`videos` must have num_frames={self.num_frames} frames per clip (shape "
                f"(batch, {expected})); sample or pad the clips first. "
                f"Received: videos with shape {videos.shape}"
            )
        if tuple(videos.shape[2:]) != self.video_shape[1:]:
            raise ValueError(
                f"`videos` frames must be {self.video_shape[1:]} (height, width, channels); "
                f"resize them first. Received: videos with shape {videos.shape}"
            )
        return unit_float_pixels("videos", videos)

    def prepare_questions(self, questions):
        """Question strings (or already tokenized questions) -> token ids and mask.

        Args:
            questions: list (or 1-D array) of str or bytes (invalid UTF-8
                is replaced, never an error), packed by the model's
                preprocessor to `question_length` tokens (a longer question
                is truncated, keeping the end token); or a dict with
                `question_token_ids` int `(batch, question_length)` and
                `question_padding_mask` bool of the same shape (extra keys,
                such as `videos`, are ignored). Token ids must be in the
                question encoder's vocabulary. An empty list is a batch of
                no questions (no preprocessor needed).

        Returns:
            `(token_ids int32 (batch, question_length), padding_mask bool)`.
        """
        expected = (
            "a list of strings, one per clip, or a dict with `question_token_ids` and "
            "`question_padding_mask`"
        )
        if isinstance(questions, dict):
            keys = ("question_token_ids", "question_padding_mask")
            missing = [key for key in keys if key not in questions]
            if missing:
                raise ValueError(
                    "Tokenized `questions` must be a dict with `question_token_ids` and "
                    f"`question_padding_mask` (batch, {self.question_length}); {missing} "
                    "missing (a tokenizer's `token_ids` / `padding_mask` need the "
                    "`question_` prefix). "
                    f"Received: questions with keys {sorted(map(str, questions))}"
                )
            token_ids = questions["question_token_ids"]
            padding_mask = questions["question_padding_mask"]
        else:
            texts = as_strings("questions", questions, expected)
            if texts is None:
                raise ValueError(
                    f"`questions` must be {expected}. Received: questions of "
                    f"{describe(questions)}"
                )
            if not texts:
                empty = np.zeros((0, self.question_length), "int32")
                return empty, empty.astype(bool)
            if self.preprocessor is None or self.preprocessor.tokenizer is None:
                raise ValueError(
                    "Question strings need the model's preprocessor: build the model with "
                    "`preprocessor=mmzoo.models.VideoQAPreprocessor(tokenizer)` (the "
                    "tokenizer used in training), or pass tokenized questions. "
                    f"Received: preprocessor={self.preprocessor!r}"
                )
            token_ids, padding_mask = self.preprocessor.tokenize_strings(texts)
        token_ids = np.asarray(token_ids)
        if token_ids.ndim != 2 or token_ids.shape[1] != self.question_length:
            raise ValueError(
                f"Question token ids must have shape (batch, {self.question_length}) "
                "(the question encoder's sequence_length, to which the model's "
                f"preprocessor packs question strings). Received: shape {token_ids.shape}"
            )
        token_ids = check_token_ids(
            "question_token_ids", token_ids, self.question_length,
            token_vocabulary_size(self.question_encoder),
        )
        padding_mask = check_padding_mask(
            "question_padding_mask", padding_mask, token_ids.shape
        )
        return token_ids, padding_mask

    # ----------------------------------------------------------- answering
    def make_classify_function(self, jit_compile=True):
        """The compiled `(videos, token_ids, padding_mask) -> answer ids` function.

        XLA-compiled by default; `jit_compile=False` gives a `tf.function`
        without XLA (for comparison). Cached per setting.
        """
        self._require_mode("classify", "make_classify_function")
        key = "xla" if jit_compile else "graph"
        if key not in self._classify_functions:

            def classify(videos, question_token_ids, question_padding_mask):
                logits = self(
                    {
                        "videos": videos,
                        "question_token_ids": question_token_ids,
                        "question_padding_mask": question_padding_mask,
                    },
                    training=False,
                )
                return ops.cast(ops.argmax(logits, axis=-1), "int32")

            if keras.config.backend() == "tensorflow":
                import tensorflow as tf  # compilation is backend-specific

                compiled = tf.function(classify, jit_compile=jit_compile)

                # A plain Python function, so that TensorFlow's object
                # tracking (SavedModel export) does not try to save it.
                def classify(*inputs):
                    return compiled(*inputs)

            self._classify_functions[key] = classify
        return self._classify_functions[key]

    def generate(
        self,
        videos,
        questions,
        max_length=None,
        method="greedy",
        num_beams=4,
        k=10,
        p=0.9,
        temperature=1.0,
        seed=None,
        batch_size=None,
    ):
        """Writes answers token by token (generate mode).

        Every argument is checked in NumPy before anything is compiled.

        Args:
            videos: clips; see `prepare_videos` (with a preprocessor: arrays
                of any frame size, lists of frame files or encoded frames).
            questions: one per clip; see `prepare_questions`.
            max_length: int in `[1, answer_sequence_length]`. Tokens to
                generate at most (end token included); defaults to
                `answer_sequence_length`.
            method: `"greedy"`, `"beam"`, `"top_k"` or `"top_p"`.
            num_beams, k, p, temperature, seed: sampler settings, as in
                `ImageCaptioningModel.generate` (`temperature` a positive
                number, `p` in (0, 1], `k` at most the vocabulary size).
            batch_size: positive int, or None for all clips at once. Split
                large inputs into batches of this size (the last one padded,
                so one compiled function serves all).

        Returns:
            With a preprocessor, list of str (the answers, as `answer`
            returns them). Without, int32 array `(batch, max_length)` of
            token ids after the start token, padded with the pad id after
            the end token (`detokenize` makes them strings). No clips give
            `[]` or an empty `(0, max_length)` array without running the
            model.
        """
        tokens = self._generate_tokens(
            videos, questions, max_length=max_length, method=method, num_beams=num_beams,
            k=k, p=p, temperature=temperature, seed=seed, batch_size=batch_size,
        )
        if self.preprocessor is not None:
            return self.detokenize(tokens)
        return tokens

    def _generate_tokens(self, videos, questions, batch_size=None, **settings):
        self._require_mode("generate", "generate")
        videos = self.prepare_videos(videos)
        token_ids, padding_mask = self.prepare_questions(questions)
        _check_same_batch(videos, token_ids)
        return self._generate_batched((videos, token_ids, padding_mask), batch_size, **settings)

    def detokenize(self, token_ids):
        """Generated answer token ids `(batch, length)` -> list of str.

        By the answer tokenizer (`make_answer_tokenizer`), so answers equal
        those of training targets and of the exported SavedModel: stop at
        `[END]`, drop `[PAD]` and `[START]`, join WordPiece `##` suffixes to
        their word, words by spaces.
        """
        self._require_mode("generate", "detokenize")
        token_ids = np.asarray(token_ids)
        if not len(token_ids):
            return []
        tokenizer = make_answer_tokenizer(self.answer_vocabulary, self.answer_sequence_length)
        texts = tokenizer.detokenize(token_ids.astype("int32")).numpy()
        return [t.decode("utf-8", "replace") for t in texts]

    def answer(self, videos, questions, batch_size=32, **generate_kwargs):
        """Answers questions about clips, as strings.

        Args:
            videos: clips; see `prepare_videos`. With a preprocessor: arrays
                `(batch, num_frames, h, w, channels)` of any frame size
                (uint8, or floats in [0, 1]) or a list of clips, each a list
                of `num_frames` frame file paths, encoded frames or arrays.
            questions: list of str, one per clip (needs the preprocessor),
                or tokenized questions (see `prepare_questions`).
            batch_size: positive int, or None for all clips at once. Clips
                per compiled call (the last batch is padded).
            **generate_kwargs: decoding settings for generate mode (`method`,
                `num_beams`, `max_length`...).

        Returns:
            list of str, one answer per clip (`[]` for no clips, without
            running the model).

        Example:

        ```python
        model = keras.saving.load_model("runs/video_qa/model.keras")
        model.answer([[f"clip/{i}.png" for i in range(8)], uint8_clip],
                     ["which way does the red circle move?",
                      "how many shapes are there at the end?"])
        # ["left", "two"]
        ```
        """
        if self.answer_mode == "generate":
            tokens = self._generate_tokens(
                videos, questions, batch_size=batch_size, **generate_kwargs
            )
            return self.detokenize(tokens)
        if generate_kwargs:
            raise ValueError(
                "Decoding settings apply to answer_mode='generate' only. "
                f"Received: {sorted(generate_kwargs)}"
            )
        batch_size = check_batch_size(batch_size)
        videos = self.prepare_videos(videos)
        token_ids, padding_mask = self.prepare_questions(questions)
        _check_same_batch(videos, token_ids)
        ids = run_in_batches(
            self.make_classify_function(), (videos, token_ids, padding_mask), batch_size,
            empty=np.zeros((0,), "int32"),
        )
        return [self.answer_vocabulary[i] for i in ids]


def _check_same_batch(videos, token_ids):
    if len(videos) != len(token_ids):
        raise ValueError(
            "`videos` and `questions` must hold the same number of examples. "
            f"Received: {len(videos)} clips and {len(token_ids)} questions"
        )


def _check_arguments(
    video_encoder, question_encoder, answer_vocabulary, answer_mode, fusion,
    num_fusion_layers, num_heads, hidden_dim, intermediate_dim, num_decoder_layers,
    answer_sequence_length, dropout_rate,
):
    for name, encoder in (("video_encoder", video_encoder), ("question_encoder", question_encoder)):
        if not isinstance(encoder, keras.Model):
            raise ValueError(f"`{name}` must be a keras.Model. Received: {name}={encoder!r}")
        output = encoder.output
        if not isinstance(output, dict) or "sequence_output" not in output:
            keys = sorted(output) if isinstance(output, dict) else type(output).__name__
            raise ValueError(
                f"`{name}` must return a dict with `sequence_output` (every mmzoo "
                f"encoder does). Received: outputs {keys}"
            )
    rank = len(video_encoder.inputs[0].shape)
    if rank not in (4, 5):
        raise ValueError(
            "`video_encoder` must take videos (batch, num_frames, height, width, channels) "
            "or images (batch, height, width, channels). "
            f"Received: input shape {video_encoder.inputs[0].shape}"
        )
    question_input = question_encoder.input
    if not isinstance(question_input, dict) or set(question_input) != {"token_ids", "padding_mask"}:
        keys = sorted(question_input) if isinstance(question_input, dict) else question_input
        raise ValueError(
            "`question_encoder` must take {'token_ids', 'padding_mask'} "
            f"(mmzoo.encoders.build_text_encoder). Received: inputs {keys}"
        )
    check_choice("answer_mode", answer_mode, ANSWER_MODES)
    check_choice("fusion", fusion, FUSIONS)
    if isinstance(answer_vocabulary, str) or not hasattr(answer_vocabulary, "__iter__"):
        raise ValueError(
            "`answer_vocabulary` must be a list of str. "
            f"Received: answer_vocabulary={answer_vocabulary!r}"
        )
    answer_vocabulary = [
        a.decode("utf-8") if isinstance(a, bytes) else str(a) for a in answer_vocabulary
    ]
    if len(answer_vocabulary) < 2 or len(set(answer_vocabulary)) != len(answer_vocabulary):
        raise ValueError(
            "`answer_vocabulary` must hold at least two distinct answers, none repeated. "
            f"Received: answer_vocabulary={answer_vocabulary[:10]} "
            f"({len(answer_vocabulary)} entries, {len(set(answer_vocabulary))} distinct)"
        )
    if answer_mode == "generate":
        # The answers are then tokenized by `TextTokenizer(answer_vocabulary)`.
        missing = [t for t in RESERVED_TOKENS if t not in answer_vocabulary]
        if missing or answer_vocabulary[0] != PAD_TOKEN:
            raise ValueError(
                "In generate mode `answer_vocabulary` is the answer tokenizer's token list: "
                f"[PAD] at id 0, with [UNK], [START] and [END]; {missing} missing. "
                f"Received: answer_vocabulary[:6]={answer_vocabulary[:6]}"
            )
    sizes = [
        check_positive_int(name, value)
        for name, value in (
            ("num_fusion_layers", num_fusion_layers),
            ("num_heads", num_heads),
            ("hidden_dim", hidden_dim),
            ("intermediate_dim", intermediate_dim),
            ("num_decoder_layers", num_decoder_layers),
            ("answer_sequence_length", answer_sequence_length),
        )
    ]
    check_divisible("hidden_dim", hidden_dim, "num_heads", num_heads)
    return (answer_vocabulary, *sizes, check_rate("dropout_rate", dropout_rate))


def build_video_qa_model(
    video_encoder,
    question_encoder,
    answer_vocabulary,
    answer_mode="classify",
    fusion="cross_attention",
    num_fusion_layers=2,
    num_heads=4,
    hidden_dim=256,
    intermediate_dim=1024,
    num_decoder_layers=1,
    answer_sequence_length=4,
    dropout_rate=0.1,
    preprocessor=None,
    name="video_qa",
    dtype=None,
):
    """Builds a `VideoQAModel` (see its docstring for every argument).

    Args:
        video_encoder: any mmzoo video encoder (`build_video_encoder`,
            `build_frame_video_encoder`), or an image encoder for image VQA.
        question_encoder: a text encoder (`build_text_encoder`).
        answer_vocabulary: list of str. The answers (classify mode) or answer
            tokens (generate mode), index -> string; stored in the config.
        answer_mode: `"classify"` or `"generate"`.
        fusion: `"cross_attention"` or `"concat"`.
        num_fusion_layers, num_heads, hidden_dim, intermediate_dim: ints.
        num_decoder_layers, answer_sequence_length: ints (generate mode).
        dropout_rate: float.
        preprocessor: `VideoQAPreprocessor` or None (the question tokenizer
            and video converter the model keeps and saves).
        name: str.
        dtype: dtype or policy name (e.g. `"mixed_bfloat16"`).

    Returns:
        A `VideoQAModel`.

    Example:

    ```python
    model = mmzoo.models.build_video_qa_model(
        mmzoo.presets.build_from_preset("video_encoder_tiny"),
        mmzoo.presets.build_from_preset("text_encoder_tiny"),
        answer_vocabulary=list(mmzoo.data.VIDEO_QA_ANSWERS),
        num_fusion_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128,
        preprocessor=mmzoo.models.VideoQAPreprocessor(tokenizer))
    ```
    """
    return VideoQAModel(
        video_encoder,
        question_encoder,
        answer_vocabulary,
        answer_mode=answer_mode,
        fusion=fusion,
        num_fusion_layers=num_fusion_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        num_decoder_layers=num_decoder_layers,
        answer_sequence_length=answer_sequence_length,
        dropout_rate=dropout_rate,
        preprocessor=preprocessor,
        name=name,
        dtype=dtype,
    )


def video_qa_training_split(features):
    """Pipeline batches -> `(x, y)` for `fit` / `Trainer`, or `(x, y,
    sample_weight)` for evaluation batches.

    A pure `dict -> tuple` function for `tf.data.Dataset.map`:

    - classify mode (no `answer_token_ids` in `features`): `x` holds
      `videos`, `question_token_ids`, `question_padding_mask`; `y` is
      `answer_ids` (one id, or several reference ids padded with -1).
    - generate mode (`answer_token_ids` and `answer_padding_mask` of
      `answer_sequence_length + 1` tokens present): teacher forcing; `x` also
      holds the answer without its last token, `y` is the answer without its
      first token.

    Padding masks are passed on as int32 (the model casts them back to bool):
    under `tf.distribute.MirroredStrategy`, Keras's `model.fit` averages the
    first batch across replicas, which fails on bool tensors.

    Evaluation batches (`video_qa_pipeline(repeat=False)`) carry
    `example_mask`, 0.0 for the rows that pad the last batch; it is returned
    as the sample weight so that losses and metrics skip those rows: float32
    `(batch,)` in classify mode, `(batch, 1)` in generate mode (Keras
    broadcasts it over the answer tokens for token metrics, and lines it up
    with a per-sequence loss such as `MaskedSequenceCrossEntropy`; a
    `(batch, answer_sequence_length)` weight would be broadcast against that
    loss's `(batch,)` values along the wrong axis).

    Args:
        features: dict of batched tensors, as above, optionally with
            `example_mask` float `(batch,)`.

    Returns:
        `(x, y)`, or `(x, y, sample_weight)` when `features` has
        `example_mask`.
    """
    x = {
        "videos": features["videos"],
        "question_token_ids": features["question_token_ids"],
        "question_padding_mask": ops.cast(features["question_padding_mask"], "int32"),
    }
    mask = features.get("example_mask")
    if "answer_token_ids" not in features:
        y = features["answer_ids"]
        if mask is None:
            return x, y
        return x, y, ops.cast(mask, "float32")
    x["answer_token_ids"] = features["answer_token_ids"][..., :-1]
    x["answer_padding_mask"] = ops.cast(features["answer_padding_mask"][..., :-1], "int32")
    y = features["answer_token_ids"][..., 1:]
    if mask is None:
        return x, y
    return x, y, ops.cast(mask, "float32")[:, None]
