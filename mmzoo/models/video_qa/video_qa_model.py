import keras
import numpy as np
from keras import ops

from mmzoo.encoders.video_encoder import FoldFrames
from mmzoo.layers import AttentionPooling
from mmzoo.layers import TextDecoder
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
from mmzoo.models.compression import CompressionMixin
from mmzoo.models.saving import model_config
from mmzoo.models.saving import model_from_config
from mmzoo.models.video_qa.video_qa_layers import FUSIONS
from mmzoo.models.video_qa.video_qa_layers import VideoQuestionFusion
from mmzoo.models.video_qa.video_qa_preprocessor import ANSWER_MODES
from mmzoo.models.video_qa.video_qa_preprocessor import VideoQAPreprocessor
from mmzoo.models.video_qa.video_qa_preprocessor import make_answer_tokenizer

# Arguments only the generator takes.
_GENERATOR_ARGUMENTS = ("num_decoder_layers", "answer_sequence_length")


@keras.saving.register_keras_serializable(package="mmzoo")
class VideoQAModel(CompressionMixin, keras.Model):
    """Base of the video QA models: answers questions about short videos.

    Two classes, one graph each, share this trunk: `videos` ->
    `video_encoder` (its `sequence_output`, e.g. ViViT tubelet tokens or
    per-frame features); `question_token_ids` / `question_padding_mask` ->
    `question_encoder`; both -> `video_question_fusion`, a
    `VideoQuestionFusion` layer (projection to `hidden_dim`, then
    `num_fusion_layers` cross-attention blocks for
    `fusion="cross_attention"`, or type embeddings, concatenation and
    Transformer blocks for `fusion="concat"`). Then an answer head:

    - `VideoQAClassifier`: attention pooling -> MLP -> logits over a closed
      set of answers.
    - `VideoQAGenerator`: a `mmzoo.layers.TextDecoder` cross-attending to
      the fused tokens writes the answer token by token.

    Build either with `build_video_qa_model(..., answer_mode="classify" |
    "generate")`, or its class. `answer(videos, questions)` returns answer
    strings for both; `model.answer_mode` says which head a model has. This
    class is not built directly; `keras.saving.load_model` of a config that
    names it with an `answer_mode` gives the matching subclass.

    Shared config: `video_encoder`, `question_encoder`, `answer_vocabulary`,
    `fusion`, `num_fusion_layers`, `num_heads`, `hidden_dim`,
    `intermediate_dim`, `dropout_rate`, `layer_norm_epsilon`,
    `preprocessor` (see `VideoQAClassifier`).
    """

    answer_mode = None

    def __init__(self, *args, **kwargs):
        if type(self) is VideoQAModel:
            raise TypeError(
                "`VideoQAModel` is the base of the video QA models: build a "
                "`VideoQAClassifier` or a `VideoQAGenerator`, or call "
                "`build_video_qa_model(..., answer_mode='classify' | 'generate')`."
            )
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------ building
    def _build_trunk(
        self, video_encoder, question_encoder, answer_vocabulary, fusion,
        num_fusion_layers, num_heads, hidden_dim, intermediate_dim, dropout_rate,
        layer_norm_epsilon, dtype, num_decoder_layers=1, answer_sequence_length=1,
    ):
        """Checks every argument, creates the shared layers and returns the
        checked answer vocabulary and the functional graph's `(inputs,
        fused, fused_mask)`."""
        (
            answer_vocabulary, num_fusion_layers, num_heads, hidden_dim, intermediate_dim,
            _, _, dropout_rate,
        ) = _check_arguments(
            video_encoder, question_encoder, answer_vocabulary, self.answer_mode, fusion,
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
        self.video_question_fusion = VideoQuestionFusion(
            fusion=fusion,
            num_layers=num_fusion_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout_rate=dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
            name="video_question_fusion",
        )

        # === Functional inputs and fused tokens ===
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
        self.video_shape = video_shape
        self.num_frames = video_shape[0]
        self.question_length = question_length
        return answer_vocabulary, inputs, fused, fused_mask

    def _finish_init(self, preprocessor, answer_vocabulary, **answer_settings):
        """Config attributes and the preprocessor, after the functional init."""
        fusion = self.video_question_fusion
        self.answer_vocabulary = answer_vocabulary
        self.fusion = fusion.fusion
        self.num_fusion_layers = fusion.num_layers
        self.num_heads = fusion.num_heads
        self.hidden_dim = fusion.hidden_dim
        self.intermediate_dim = fusion.intermediate_dim
        self.dropout_rate = fusion.dropout_rate
        self.layer_norm_epsilon = fusion.layer_norm_epsilon
        self.vocabulary_size = len(answer_vocabulary)
        self.preprocessor = attach_preprocessor(
            preprocessor, VideoQAPreprocessor, token_vocabulary_size(self.question_encoder),
            question_length=self.question_length, num_frames=self.num_frames,
            image_shape=self.video_shape[1:], answer_mode=self.answer_mode,
            answer_vocabulary=answer_vocabulary, **answer_settings,
        )
        if self.preprocessor is not None and self.preprocessor.video_converter is None:
            self.preprocessor.video_converter = VideoConverter(
                self.num_frames, self.video_shape[1:3], name="video_converter"
            )

    def get_config(self):
        return model_config(
            self,
            video_encoder=self.video_encoder,
            question_encoder=self.question_encoder,
            answer_vocabulary=list(self.answer_vocabulary),
            answer_mode=self.answer_mode,
            fusion=self.fusion,
            num_fusion_layers=self.num_fusion_layers,
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            dropout_rate=self.dropout_rate,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # `answer_mode` names the class: a config of the base (as every video
        # QA config names it) gives the matching subclass.
        mode = config.pop("answer_mode", None)
        if cls is VideoQAModel:
            if mode is None:
                raise ValueError(
                    "A `VideoQAModel` config must name its `answer_mode` ('classify' or "
                    f"'generate'). Received: config keys {sorted(config)}"
                )
            cls = _model_class(mode)
        elif mode is not None and mode != cls.answer_mode:
            raise ValueError(
                f"A {cls.__name__} has answer_mode={cls.answer_mode!r}. "
                f"Received: a config with answer_mode={mode!r}"
            )
        if cls is VideoQAClassifier:
            for key in _GENERATOR_ARGUMENTS:
                config.pop(key, None)
        return model_from_config(cls, config)

    # ---------------------------------------------------------- encoding
    def _fuse(self, videos, question_token_ids, question_padding_mask, training=None):
        """The fused sequence and its padding mask; used by the functional
        graph (on symbolic tensors) and by decoding (on real ones)."""
        if self.fold_frames is not None:
            videos = self.fold_frames(videos)
        video_tokens = self.video_encoder(videos, training=training)["sequence_output"]
        question_padding_mask = ops.cast(question_padding_mask, "bool")
        inputs = {"token_ids": question_token_ids, "padding_mask": question_padding_mask}
        if "segment_ids" in self.question_encoder.input:  # a BERT-style tower: one segment
            inputs["segment_ids"] = ops.zeros_like(question_token_ids)
        question = self.question_encoder(inputs, training=training)
        return self.video_question_fusion(
            video_tokens, question["sequence_output"], question_padding_mask,
            training=training,
        )

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


    # ----------------------------------------------------- input checks
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


    def _prepare(self, videos, questions):
        videos = self.prepare_videos(videos)
        token_ids, padding_mask = self.prepare_questions(questions)
        _check_same_batch(videos, token_ids)
        return videos, token_ids, padding_mask


@keras.saving.register_keras_serializable(package="mmzoo")
class VideoQAClassifier(VideoQAModel):
    """Answers questions about short videos by choosing from a closed answer set.

    A functional graph: `videos` -> `video_encoder` (its `sequence_output`,
    e.g. ViViT tubelet tokens or per-frame features); `question_token_ids` /
    `question_padding_mask` -> `question_encoder`; both ->
    `video_question_fusion` (`VideoQuestionFusion`: projection to
    `hidden_dim`, then fusion) -> attention pooling of the fused tokens ->
    MLP -> float32 logits over `answer_vocabulary` (index -> answer string).
    Train with `mmzoo.losses.SoftTargetCrossEntropy`, which takes one answer
    id per example or several reference answers (soft VQA targets,
    `min(count / 3, 1)`).

    Fusion (`fusion=`):

    - `"cross_attention"` (default): `num_fusion_layers`
      `mmzoo.layers.CrossModalFusionBlock`s, in which the question tokens
      attend to each other and, by cross-modal attention, to every video
      token. The fused sequence is the question tokens.
    - `"concat"`: early fusion for comparison; video and question tokens, each
      with a learned type embedding, are concatenated and mixed by
      `num_fusion_layers` Transformer encoder blocks.

    `answer_vocabulary` is part of the config, so a reloaded model, `answer`
    and the exported SavedModel return answer strings. With a `preprocessor`
    (the question tokenizer and the video converter, saved in the `.keras`
    file), `answer` takes raw clips (arrays of any frame size, lists of frame
    files or encoded frames) and question strings.

    Args:
        video_encoder: `keras.Model` taking `videos` `(batch, num_frames,
            height, width, channels)` and returning a dict with
            `sequence_output` (every mmzoo video encoder does); or an image
            encoder taking `(batch, height, width, channels)`, which makes an
            image VQA model whose `videos` have one frame.
        question_encoder: `keras.Model` taking `{"token_ids",
            "padding_mask"}` and returning a dict with `sequence_output`
            (`mmzoo.encoders.build_text_encoder`).
        answer_vocabulary: list of str. The answers.
        fusion: `"cross_attention"` or `"concat"`.
        num_fusion_layers: int.
        num_heads: int. Must divide `hidden_dim`.
        hidden_dim: int. Width of fusion and answer head.
        intermediate_dim: int.
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
        "question_padding_mask": (batch, question_length) bool}`.

    Returns:
        Logits `(batch, len(answer_vocabulary))`, float32 also under mixed
        precision.

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

    answer_mode = "classify"

    def __init__(
        self,
        video_encoder,
        question_encoder,
        answer_vocabulary,
        fusion="cross_attention",
        num_fusion_layers=2,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=1024,
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        preprocessor=None,
        dtype=None,
        **kwargs,
    ):
        answer_vocabulary, inputs, fused, fused_mask = self._build_trunk(
            video_encoder, question_encoder, answer_vocabulary, fusion, num_fusion_layers,
            num_heads, hidden_dim, intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
        )
        fusion_layer = self.video_question_fusion
        self.answer_pooling = AttentionPooling(
            num_heads=fusion_layer.num_heads, dtype=dtype, name="answer_pooling"
        )
        self.answer_hidden = keras.layers.Dense(
            fusion_layer.hidden_dim, activation="gelu", dtype=dtype, name="answer_hidden"
        )
        self.answer_dropout = keras.layers.Dropout(
            fusion_layer.dropout_rate, dtype=dtype, name="answer_dropout"
        )
        self.logits_dense = keras.layers.Dense(
            len(answer_vocabulary), dtype=dtype, name="answer_logits"
        )
        # Softmax statistics in float32 whatever the compute dtype.
        self.logits_cast = keras.layers.Activation(
            "linear", dtype="float32", name="logits_float32"
        )
        pooled = self.answer_pooling(fused, padding_mask=fused_mask)
        x = self.answer_dropout(self.answer_hidden(pooled))
        logits = self.logits_cast(self.logits_dense(x))
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        self._finish_init(preprocessor, answer_vocabulary)
        self._classify_functions = {}

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

    # ----------------------------------------------------------- answering
    def make_classify_function(self, jit_compile=True):
        """The compiled `(videos, token_ids, padding_mask) -> answer ids` function.

        XLA-compiled by default; `jit_compile=False` gives a `tf.function`
        without XLA (for comparison). Cached per setting.
        """
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

                compiled = tf.function(classify, jit_compile=jit_compile, autograph=False)

                # A plain Python function, so that TensorFlow's object
                # tracking (SavedModel export) does not try to save it.
                def classify(*inputs):
                    return compiled(*inputs)

            self._classify_functions[key] = classify
        return self._classify_functions[key]

    def answer(self, videos, questions, batch_size=32):
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
        batch_size = check_batch_size(batch_size)
        inputs = self._prepare(videos, questions)
        ids = run_in_batches(
            self.make_classify_function(), inputs, batch_size,
            empty=np.zeros((0,), "int32"),
        )
        return [self.answer_vocabulary[i] for i in ids]


@keras.saving.register_keras_serializable(package="mmzoo")
class VideoQAGenerator(CachedTextGeneration, VideoQAModel):
    """Answers questions about short videos by writing the answer token by token.

    The trunk of `VideoQAClassifier` (video and question towers, then
    `video_question_fusion`), then `text_decoder`, a
    `mmzoo.layers.TextDecoder` (the decoder of the captioning model)
    cross-attending to the fused tokens. `answer_vocabulary` is the answer
    tokenizer's token list (mmzoo's reserved tokens `[PAD]` at id 0,
    `[UNK]`, `[START]`, `[END]` included), and answers are tokenized and
    detokenized by the `mmzoo.data.TextTokenizer` of that list
    (`mmzoo.models.video_qa.make_answer_tokenizer`). Trained by teacher
    forcing; `generate` and `answer` decode with the cached, XLA-compiled
    loop of the captioning model (greedy, beam, sampling).

    Args:
        video_encoder, question_encoder, fusion, num_fusion_layers,
            num_heads, hidden_dim, intermediate_dim, dropout_rate,
            layer_norm_epsilon, preprocessor: as for `VideoQAClassifier`.
        answer_vocabulary: list of str. The answer tokens.
        num_decoder_layers: int. Decoder blocks.
        answer_sequence_length: int. Decoder input length; answers are
            packed to `answer_sequence_length + 1` tokens.
        **kwargs: `name`, `dtype` (e.g. `"mixed_bfloat16"`), ...

    Call inputs:
        Those of `VideoQAClassifier`, plus `"answer_token_ids"` int32 and
        `"answer_padding_mask"` bool `(batch, answer_sequence_length)`.

    Returns:
        Logits `(batch, answer_sequence_length, len(answer_vocabulary))`,
        float32 also under mixed precision.

    Example:

    ```python
    model = mmzoo.models.build_video_qa_model(
        video_encoder, question_encoder,
        answer_vocabulary=["[PAD]", "[UNK]", "[START]", "[END]", "red", "green"],
        answer_mode="generate", answer_sequence_length=3,
        preprocessor=mmzoo.models.VideoQAPreprocessor(tokenizer))
    model.answer(videos, questions, method="beam")  # ["red", ...]
    ```
    """

    answer_mode = "generate"

    def __init__(
        self,
        video_encoder,
        question_encoder,
        answer_vocabulary,
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
        answer_vocabulary, inputs, fused, fused_mask = self._build_trunk(
            video_encoder, question_encoder, answer_vocabulary, fusion, num_fusion_layers,
            num_heads, hidden_dim, intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
            num_decoder_layers=num_decoder_layers,
            answer_sequence_length=answer_sequence_length,
        )
        fusion_layer = self.video_question_fusion
        self.text_decoder = TextDecoder(
            vocabulary_size=len(answer_vocabulary),
            sequence_length=answer_sequence_length,
            num_layers=num_decoder_layers,
            num_heads=fusion_layer.num_heads,
            hidden_dim=fusion_layer.hidden_dim,
            intermediate_dim=fusion_layer.intermediate_dim,
            dropout_rate=fusion_layer.dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
            name="text_decoder",
        )
        answer_sequence_length = self.text_decoder.sequence_length
        inputs["answer_token_ids"] = keras.Input(
            shape=(answer_sequence_length,), dtype="int32", name="answer_token_ids"
        )
        inputs["answer_padding_mask"] = keras.Input(
            shape=(answer_sequence_length,), dtype="bool", name="answer_padding_mask"
        )
        logits = self.text_decoder(
            inputs["answer_token_ids"], fused,
            padding_mask=inputs["answer_padding_mask"], memory_padding_mask=fused_mask,
        )
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        self.num_decoder_layers = self.text_decoder.num_layers
        self.answer_sequence_length = answer_sequence_length
        self._finish_init(
            preprocessor, answer_vocabulary, answer_sequence_length=answer_sequence_length
        )
        ids = {token: i for i, token in enumerate(answer_vocabulary)}
        self.pad_token_id = ids[PAD_TOKEN]
        self.start_token_id = ids[START_TOKEN]
        self.end_token_id = ids[END_TOKEN]
        self._generate_functions = {}
        self.generate_trace_count = 0

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_decoder_layers": self.num_decoder_layers,
                "answer_sequence_length": self.answer_sequence_length,
            }
        )
        return config

    def _generation_memory(self, videos, question_token_ids, question_padding_mask):
        # Backend tensors, not NumPy arrays: on JAX decoding runs eagerly.
        return self.encode(videos, question_token_ids, question_padding_mask)

    def _generation_sequence_length(self):
        return "answer_sequence_length", self.answer_sequence_length

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
        """Writes answers token by token.

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
        return self._generate_batched(self._prepare(videos, questions), batch_size, **settings)

    def detokenize(self, token_ids):
        """Generated answer token ids `(batch, length)` -> list of str.

        By the answer tokenizer (`make_answer_tokenizer`), so answers equal
        those of training targets and of the exported SavedModel: stop at
        `[END]`, drop `[PAD]` and `[START]`, join WordPiece `##` suffixes to
        their word, words by spaces.
        """
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
            **generate_kwargs: decoding settings of `generate` (`method`,
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
        tokens = self._generate_tokens(videos, questions, batch_size=batch_size, **generate_kwargs)
        return self.detokenize(tokens)


def _model_class(answer_mode):
    check_choice("answer_mode", answer_mode, ANSWER_MODES)
    return VideoQAGenerator if answer_mode == "generate" else VideoQAClassifier


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
    if not isinstance(question_input, dict) or set(question_input) not in (
        {"token_ids", "padding_mask"}, {"token_ids", "padding_mask", "segment_ids"}
    ):
        keys = sorted(question_input) if isinstance(question_input, dict) else question_input
        raise ValueError(
            "`question_encoder` must take {'token_ids', 'padding_mask'} (and BERT's "
            "'segment_ids', given zeros) (mmzoo.encoders.build_text_encoder, "
            f"build_keras_hub_text_tower). Received: inputs {keys}"
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
    num_decoder_layers=None,
    answer_sequence_length=None,
    dropout_rate=0.1,
    preprocessor=None,
    name="video_qa",
    dtype=None,
):
    """Builds a `VideoQAClassifier` or a `VideoQAGenerator`.

    See their docstrings for every argument.

    Args:
        video_encoder: any mmzoo video encoder (`build_video_encoder`,
            `build_frame_video_encoder`), or an image encoder for image VQA.
        question_encoder: a text encoder (`build_text_encoder`).
        answer_vocabulary: list of str. The answers (classify) or answer
            tokens (generate), index -> string; stored in the config.
        answer_mode: `"classify"` (a `VideoQAClassifier`) or `"generate"`
            (a `VideoQAGenerator`).
        fusion: `"cross_attention"` or `"concat"`.
        num_fusion_layers, num_heads, hidden_dim, intermediate_dim: ints.
        num_decoder_layers, answer_sequence_length: ints, generate mode only
            (default 1 and 4); an error with `answer_mode="classify"`.
        dropout_rate: float.
        preprocessor: `VideoQAPreprocessor` or None (the question tokenizer
            and video converter the model keeps and saves).
        name: str.
        dtype: dtype or policy name (e.g. `"mixed_bfloat16"`).

    Returns:
        A `VideoQAClassifier` or a `VideoQAGenerator` (both `VideoQAModel`s).

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
    cls = _model_class(answer_mode)
    decoder_settings = {
        key: value
        for key, value in (
            ("num_decoder_layers", num_decoder_layers),
            ("answer_sequence_length", answer_sequence_length),
        )
        if value is not None
    }
    if cls is VideoQAClassifier and decoder_settings:
        raise ValueError(
            f"{sorted(decoder_settings)} set the answer decoder of answer_mode='generate'; "
            "a classify-mode model has none. "
            f"Received: answer_mode='classify' with {decoder_settings}"
        )
    return cls(
        video_encoder,
        question_encoder,
        answer_vocabulary,
        fusion=fusion,
        num_fusion_layers=num_fusion_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout_rate=dropout_rate,
        preprocessor=preprocessor,
        name=name,
        dtype=dtype,
        **decoder_settings,
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
