"""WordPiece tokenization for captions, questions and class texts.

`TextTokenizer` is a thin layer over `keras_hub.tokenizers.WordPieceTokenizer`
(which wraps `tensorflow_text.FastWordpieceTokenizer`) and
`keras_hub.layers.StartEndPacker`. It runs eagerly, inside `tf.data`, and
inside an exported SavedModel graph, where only `tensorflow` and
`tensorflow_text` ops remain.

Text normalisation, in order (the same at training and at serving):

1. Invalid UTF-8 byte sequences are replaced by U+FFFD (the replacement
   character), so a bad byte never fails a pipeline. A word containing
   U+FFFD is not in a trained vocabulary and becomes `[UNK]`:
   `b"caf\\xe9 red"` -> `[UNK] red`.
2. With `strip_punctuation=True`, punctuation is replaced by spaces.
3. Unicode case folding (`lowercase=True`) and accent stripping
   (`strip_accents=True`, NFD then dropping combining marks).
4. Splitting on whitespace; each punctuation mark is kept as its own token
   (unless stripped in step 2).

So `"A Red, CIRCLE!"` becomes the words `a red , circle !` by default, and
`a red circle` with `strip_punctuation=True`. Detokenizing joins words with
single spaces, so it returns `"a red , circle !"` (normalisation is not
inverted).
"""

import json
import os

import keras
import keras_hub
import numpy as np

from mmzoo import lazy_module
from mmzoo.data._checks import check_int

# TensorFlow is imported on first use: the models import this module and
# also run on the JAX backend, where TensorFlow may not be installed.
tf = lazy_module("tensorflow")

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
START_TOKEN = "[START]"
END_TOKEN = "[END]"
# `[PAD]` must be id 0: padding masks and `mask_zero` embeddings rely on it.
RESERVED_TOKENS = (PAD_TOKEN, UNK_TOKEN, START_TOKEN, END_TOKEN)
VOCABULARY_FILENAME = "vocabulary.txt"

# ASCII non-alphanumerics and the Unicode punctuation class, as KerasHub's
# WordPiece pre-tokenizer defines punctuation (RE2 syntax).
_PUNCTUATION_REGEX = r"[!-/:-@\[-`{-~]|\p{P}"


def _normalize_text(texts, strip_punctuation):
    """Steps 1 and 2 of the module docstring, on a string tensor."""
    texts = tf.strings.unicode_transcode(
        texts,
        input_encoding="UTF-8",
        output_encoding="UTF-8",
        errors="replace",
        replacement_char=0xFFFD,
    )
    if strip_punctuation:
        texts = tf.strings.regex_replace(texts, _PUNCTUATION_REGEX, " ")
    return texts


def _as_text_dataset(data):
    if isinstance(data, tf.data.Dataset):
        if not isinstance(data.element_spec, tf.TensorSpec) or (
            data.element_spec.dtype != tf.string
        ):
            raise ValueError(
                "`data` must be a dataset of string tensors (map a dataset of "
                "dicts to its text key first). "
                f"Received: data.element_spec={data.element_spec}"
            )
        return data
    if isinstance(data, str):
        raise ValueError(
            "`data` must be a list of strings or a `tf.data.Dataset` of strings, "
            f"not a single string. Received: data={data!r}"
        )
    texts = np.asarray(list(data), dtype=object)
    if texts.size == 0:
        raise ValueError(f"`data` must hold at least one text. Received: data={data}")
    return tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string))


# Texts per element the word counter sees.
_COUNTING_BATCH = 4096


def train_word_piece_vocabulary(
    data,
    vocabulary_size,
    lowercase=True,
    strip_accents=True,
    strip_punctuation=False,
):
    """Trains a WordPiece vocabulary with mmzoo's reserved tokens.

    Wraps `keras_hub.tokenizers.compute_word_piece_vocabulary` (the
    tensorflow-text BERT vocabulary learner) and applies the same text
    normalisation as `TextTokenizer`, so pass the same `lowercase`,
    `strip_accents` and `strip_punctuation` to both.

    Args:
        data: list of str, or a `tf.data.Dataset` of string tensors (scalars or
            vectors, e.g. `dataset.map(lambda x: x["captions"])`).
        vocabulary_size: int. Maximum number of tokens, reserved tokens
            included. The learner may return fewer when the text is small.
        lowercase: bool. Case-fold the text.
        strip_accents: bool. Remove accent marks.
        strip_punctuation: bool. Drop punctuation instead of keeping each mark
            as a token.

    Returns:
        list of str: `["[PAD]", "[UNK]", "[START]", "[END]", ...]`, `[PAD]` at
        id 0.

    Example:

    ```python
    vocabulary = mmzoo.data.train_word_piece_vocabulary(
        ["a small red circle", "a large blue square"], vocabulary_size=64
    )
    tokenizer = mmzoo.data.TextTokenizer(vocabulary, sequence_length=12)
    ```
    """
    # More than the reserved tokens.
    vocabulary_size = check_int("vocabulary_size", vocabulary_size, len(RESERVED_TOKENS) + 1)
    dataset = (
        _as_text_dataset(data)
        .map(lambda x: _normalize_text(x, strip_punctuation), num_parallel_calls=tf.data.AUTOTUNE)
        # The learner counts words element by element in Python: batches of
        # texts count the same words in far fewer steps (about 4x faster on
        # 5,000 examples of five captions).
        .map(lambda x: tf.reshape(x, [-1]))
        .unbatch()
        .batch(_COUNTING_BATCH)
    )
    try:
        return keras_hub.tokenizers.compute_word_piece_vocabulary(
            dataset,
            vocabulary_size,
            lowercase=lowercase,
            strip_accents=strip_accents,
            reserved_tokens=list(RESERVED_TOKENS),
        )
    except StopIteration:
        # tensorflow-text's learner takes the first word counted with
        # `next(...)`, so no words at all surfaces as a bare StopIteration.
        raise ValueError(
            "There are no texts to train the vocabulary on: the dataset is empty or "
            "its texts hold no words (a file loader whose records were all skipped "
            "gives an empty dataset; see `LoadReport.require_examples`). "
            f"Received: data={data!r}"
        ) from None


class _WordPiece(keras_hub.tokenizers.WordPieceTokenizer):
    """`TextTokenizer`'s inner tokenizer, whose vocabulary the outer one sets.

    Its own copy of the vocabulary is still written to a `.keras` file (as
    files have held it, and as earlier versions read it back), but never
    read: the outer layer's asset is the vocabulary, checked against the
    saved size. A file without the copy loads.
    """

    def load_assets(self, dir_path):
        del dir_path  # set by the outer `TextTokenizer.load_assets`


def _read_vocabulary_file(path):
    with open(path, "r", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.rstrip("\n")]


@keras.saving.register_keras_serializable(package="mmzoo")
class TextTokenizer(keras.layers.Layer):
    """WordPiece tokenizer that packs text to a fixed `sequence_length`.

    Calling the layer on a string tensor of any shape `S` returns
    `{"token_ids": int32 S + (sequence_length,), "padding_mask": bool of the
    same shape}`. Each text becomes `[START] tokens... [END] [PAD]...`; an
    empty text is `[START] [END]`; text longer than `sequence_length - 2`
    tokens is cut, keeping `[END]` as the last token. See the module docstring
    for the normalisation (lower-casing, punctuation, invalid UTF-8).

    The same TensorFlow code path runs eagerly, in `tf.data` and in a
    SavedModel, so the three agree exactly (KerasHub's pure-Python eager path
    is switched off for this reason).

    Args:
        vocabulary: list of str, or the path of a text file with one token per
            line. Must contain `[PAD]` at id 0, `[UNK]`, `[START]` and `[END]`
            (`train_word_piece_vocabulary` produces such a list).
        sequence_length: int, at least 2, or None. Length of every packed
            sequence when the layer is called; None for a tokenizer used
            through a model's preprocessor, which packs to the model's
            length (`tokenize` and `detokenize` need no length).
        lowercase: bool. Case-fold the text.
        strip_accents: bool. Remove accent marks.
        strip_punctuation: bool. Drop punctuation instead of keeping each mark
            as a token.
        vocabulary_size: int or None. Only for configs read from a `.keras`
            file, whose vocabulary is an asset: the size the asset must have.
        **kwargs: `keras.layers.Layer` arguments (e.g. `name`).

    Example:

    ```python
    tokenizer = mmzoo.data.TextTokenizer(
        ["[PAD]", "[UNK]", "[START]", "[END]", "a", "red", "circle"],
        sequence_length=6,
    )
    outputs = tokenizer(["A red circle", ""])
    # outputs["token_ids"]: [[2, 4, 5, 6, 3, 0], [2, 3, 0, 0, 0, 0]]
    tokenizer.detokenize(outputs["token_ids"])  # [b"a red circle", b""]
    ```
    """

    def __init__(
        self,
        vocabulary=None,
        sequence_length=None,
        lowercase=True,
        strip_accents=True,
        strip_punctuation=False,
        vocabulary_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Strings are not converted to backend tensors (as in KerasHub's
        # preprocessing layers), and raw Python strings are accepted.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

        if sequence_length is not None:
            check_int("sequence_length", sequence_length, 2)  # room for [START] and [END]
            sequence_length = int(sequence_length)
        self.sequence_length = sequence_length
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.strip_punctuation = strip_punctuation
        # The size a `.keras` file declares, checked against its vocabulary
        # asset when the asset is read (`load_assets`).
        self._declared_vocabulary_size = vocabulary_size
        self.vocabulary = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        elif vocabulary_size is None:
            raise ValueError(
                "`vocabulary` must be a list of tokens or a vocabulary file. "
                "Received: vocabulary=None"
            )
        self.built = True

    def set_vocabulary(self, vocabulary):
        """Sets the vocabulary (a list of str or a file path) and builds the layers."""
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = _read_vocabulary_file(vocabulary)
        vocabulary = [str(token) for token in vocabulary]
        if not vocabulary or vocabulary[0] != PAD_TOKEN:
            raise ValueError(
                f"`vocabulary` must start with {PAD_TOKEN!r} (id 0). "
                f"Received: vocabulary[:4]={vocabulary[:4]}"
            )
        missing = [t for t in RESERVED_TOKENS if t not in vocabulary]
        if missing:
            raise ValueError(
                f"`vocabulary` must contain the reserved tokens {list(RESERVED_TOKENS)}; "
                f"{missing} missing. Received: vocabulary[:8]={vocabulary[:8]}"
            )
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError(
                "`vocabulary` must not repeat a token. "
                f"Received: vocabulary of {len(vocabulary)} tokens, "
                f"{len(set(vocabulary))} distinct"
            )
        self.vocabulary = vocabulary
        ids = {token: i for i, token in enumerate(vocabulary)}
        self.pad_token_id = ids[PAD_TOKEN]
        self.unk_token_id = ids[UNK_TOKEN]
        self.start_token_id = ids[START_TOKEN]
        self.end_token_id = ids[END_TOKEN]

        # === Layers ===
        # `_allow_python_workflow=False` keeps eager calls on the TensorFlow
        # path (KerasHub otherwise runs a pure-Python tokenizer eagerly),
        # so eager, tf.data and SavedModel results are identical. The
        # vocabulary is this layer's asset, not the inner layer's.
        self.word_piece = _WordPiece(
            vocabulary=vocabulary,
            lowercase=self.lowercase,
            strip_accents=self.strip_accents,
            oov_token=UNK_TOKEN,
            dtype="int32",
            name="word_piece",
            _allow_python_workflow=False,
        )
        self.packer = None
        if self.sequence_length is not None:
            self.packer = keras_hub.layers.StartEndPacker(
                sequence_length=self.sequence_length,
                start_value=self.start_token_id,
                end_value=self.end_token_id,
                pad_value=self.pad_token_id,
                return_padding_mask=True,
                name="packer",
                _allow_python_workflow=False,
            )

    def _missing_asset(self):
        return ValueError(
            f"The saved file has no vocabulary asset (`{VOCABULARY_FILENAME}` of "
            f"layer {self.name!r} is missing); the model was saved with "
            f"vocabulary_size={self._declared_vocabulary_size}."
        )

    def _require_vocabulary(self):
        if self.vocabulary is None:
            raise ValueError(
                "This TextTokenizer has no vocabulary yet (it was made from a config "
                "whose vocabulary is a file asset; load the whole `.keras` file). "
                f"Received: vocabulary=None, vocabulary_size={self._declared_vocabulary_size}"
            )

    # Keras calls these when a `.keras` file is written and read: the
    # vocabulary is a text file inside the archive, one token per line.
    def save_assets(self, dir_path):
        self._require_vocabulary()
        with open(os.path.join(dir_path, VOCABULARY_FILENAME), "w", encoding="utf-8") as f:
            f.writelines(token + "\n" for token in self.vocabulary)

    def load_assets(self, dir_path):
        # Keras visits a layer once per path that reaches it, and passes None
        # where that path holds no assets; a failed first visit is retried,
        # so the first error is kept and raised again.
        if dir_path is None:
            if self.vocabulary is not None:
                return
            raise getattr(self, "_asset_error", None) or self._missing_asset()
        path = os.path.join(dir_path, VOCABULARY_FILENAME)
        if not os.path.exists(path):
            self._asset_error = self._missing_asset()
            raise self._asset_error
        vocabulary = _read_vocabulary_file(path)
        declared = self._declared_vocabulary_size
        if declared is not None and len(vocabulary) != declared:
            self._asset_error = ValueError(
                f"The vocabulary asset of layer {self.name!r} holds {len(vocabulary)} "
                f"tokens but the model was saved with vocabulary_size={declared}. "
                f"Received: {len(vocabulary)} tokens in {VOCABULARY_FILENAME}"
            )
            raise self._asset_error
        self.set_vocabulary(vocabulary)

    @property
    def vocabulary_size(self):
        """int. Number of tokens in the vocabulary, reserved tokens included."""
        if self.vocabulary is None:
            return self._declared_vocabulary_size
        return len(self.vocabulary)

    def get_vocabulary(self):
        """Returns the vocabulary as a list of str (index = token id)."""
        self._require_vocabulary()
        return list(self.vocabulary)

    def tokenize(self, texts):
        """Normalised WordPiece ids of `texts`, unpacked.

        Args:
            texts: str, list of str, or string tensor `(batch,)`.

        Returns:
            int32 `tf.RaggedTensor` `(batch, None)` (a dense vector for a
            scalar string), without start, end or padding tokens.
        """
        self._require_vocabulary()
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        pieces = self.word_piece(_normalize_text(texts, self.strip_punctuation))
        if isinstance(pieces, list):  # KerasHub returns lists for eager ragged
            pieces = tf.ragged.constant(pieces, dtype=tf.int32, ragged_rank=1)
        return pieces

    def call(self, texts):
        """Tokenizes and packs `texts`.

        Args:
            texts: str, list of str, or string tensor of any shape `S`.

        Returns:
            dict with `token_ids` int32 `S + (sequence_length,)` and
            `padding_mask` bool of the same shape.
        """
        self._require_vocabulary()
        if self.packer is None:
            raise ValueError(
                "This TextTokenizer has no `sequence_length`, so it cannot pack texts; "
                "pass `sequence_length=` or use a model's preprocessor, which packs to "
                "the model's length. Received: sequence_length=None"
            )
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        outer_shape = tf.shape(texts)
        pieces = self.tokenize(tf.reshape(texts, [-1]))
        token_ids, padding_mask = self.packer(pieces)
        shape = tf.concat([outer_shape, [self.sequence_length]], axis=0)
        static_shape = texts.shape.concatenate([self.sequence_length])
        token_ids = tf.ensure_shape(
            tf.reshape(tf.cast(token_ids, tf.int32), shape), static_shape
        )
        padding_mask = tf.ensure_shape(
            tf.reshape(tf.cast(padding_mask, tf.bool), shape), static_shape
        )
        return {"token_ids": token_ids, "padding_mask": padding_mask}

    def detokenize(self, token_ids):
        """Turns packed ids back into text.

        Tokens after the first `[END]` are ignored, `[PAD]` and `[START]` are
        dropped, WordPiece suffixes are joined to their word and words are
        joined by single spaces.

        Args:
            token_ids: int tensor of shape `S + (length,)`, any length; or a
                ragged `(batch, None)` tensor of the text's ids only, joined
                as they are.

        Returns:
            string tensor of shape `S`.
        """
        self._require_vocabulary()
        if isinstance(token_ids, tf.RaggedTensor):
            # Already cut to the text (a preprocessor's `detokenize`).
            return self.word_piece.detokenize(tf.cast(token_ids, tf.int32))
        token_ids = tf.convert_to_tensor(token_ids)
        if token_ids.shape.rank == 0:
            raise ValueError(
                "`token_ids` must have at least one dimension. "
                f"Received: token_ids.shape={token_ids.shape}"
            )
        token_ids = tf.cast(token_ids, tf.int32)
        outer_shape = tf.shape(token_ids)[:-1]
        flat = tf.reshape(token_ids, [-1, tf.shape(token_ids)[-1]])
        after_end = tf.cumsum(tf.cast(flat == self.end_token_id, tf.int32), axis=-1) > 0
        keep = (
            ~after_end
            & (flat != self.pad_token_id)
            & (flat != self.start_token_id)
            & (flat >= 0)
            & (flat < self.vocabulary_size)
        )
        pieces = tf.ragged.boolean_mask(flat, keep)
        texts = self.word_piece.detokenize(pieces)
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        return tf.ensure_shape(tf.reshape(texts, outer_shape), token_ids.shape[:-1])

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape) + (self.sequence_length,)
        return {"token_ids": shape, "padding_mask": shape}

    def compute_output_spec(self, texts):
        shape = tuple(texts.shape) + (self.sequence_length,)
        return {
            "token_ids": keras.KerasTensor(shape, dtype="int32"),
            "padding_mask": keras.KerasTensor(shape, dtype="bool"),
        }

    def save(self, dir_path):
        """Writes `vocabulary.txt` and `config.json` to `dir_path`.

        `vocabulary.txt` has one token per line (readable by any WordPiece
        tool); `TextTokenizer.load(dir_path)` restores the tokenizer.

        Args:
            dir_path: str. Directory, created if missing.
        """
        os.makedirs(dir_path, exist_ok=True)
        with open(os.path.join(dir_path, VOCABULARY_FILENAME), "w", encoding="utf-8") as f:
            f.writelines(token + "\n" for token in self.vocabulary)
        config = self.get_config()
        config.pop("vocabulary")
        config.pop("vocabulary_size")
        with open(os.path.join(dir_path, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)

    @classmethod
    def load(cls, dir_path):
        """Restores a tokenizer written by `save(dir_path)`.

        Args:
            dir_path: str. Directory holding `vocabulary.txt` and `config.json`.

        Returns:
            `TextTokenizer`.
        """
        with open(os.path.join(dir_path, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        config.pop("vocabulary_size", None)
        vocabulary = _read_vocabulary_file(os.path.join(dir_path, VOCABULARY_FILENAME))
        return cls(vocabulary=vocabulary, **config)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                # Inside a `.keras` file the vocabulary is an asset
                # (`save_assets`); the config keeps only its size, checked
                # against the asset at load. As in KerasHub's tokenizers.
                "vocabulary": None,
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "lowercase": self.lowercase,
                "strip_accents": self.strip_accents,
                "strip_punctuation": self.strip_punctuation,
            }
        )
        return config
