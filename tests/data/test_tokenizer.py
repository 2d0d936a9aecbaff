import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf

import mmzoo.data
from mmzoo.data import TextTokenizer
from mmzoo.testing import TestCase

VOCABULARY = [
    "[PAD]", "[UNK]", "[START]", "[END]",  # 0-3
    "a", "red", "circle", "blue", "square", ",", "!", "to", "the", "left",  # 4-13
    "of", "##s",  # 14-15
]
PAD, UNK, START, END = 0, 1, 2, 3
A, RED, CIRCLE, BLUE, SQUARE, COMMA, BANG = 4, 5, 6, 7, 8, 9, 10


class TrainWordPieceVocabularyTest(TestCase):
    def setUp(self):
        super().setUp()
        self.texts = [
            "a small red circle to the left of a large blue square",
            "A Red, CIRCLE!",
            "two shapes: a green triangle",
        ] * 5

    def test_reserved_tokens_first(self):
        vocabulary = mmzoo.data.train_word_piece_vocabulary(self.texts, vocabulary_size=80)
        self.assertEqual(vocabulary[:4], list(mmzoo.data.RESERVED_TOKENS))
        self.assertLessEqual(len(vocabulary), 80)
        self.assertIn("circle", vocabulary)
        self.assertNotIn("Red", vocabulary)  # lower-cased

    def test_dataset_of_caption_vectors(self):
        examples = mmzoo.data.load_synthetic("shapes_captions", num_examples=16, image_size=24)
        vocabulary = mmzoo.data.train_word_piece_vocabulary(
            examples.map(lambda x: x["captions"]), vocabulary_size=200
        )
        for word in ("small", "large", "left", "corner"):
            self.assertIn(word, vocabulary)

    def test_trained_vocabulary_tokenizes_without_unknowns(self):
        vocabulary = mmzoo.data.train_word_piece_vocabulary(self.texts, vocabulary_size=200)
        tokenizer = TextTokenizer(vocabulary, sequence_length=16)
        ids = tokenizer(self.texts[:3])["token_ids"].numpy()
        self.assertNotIn(UNK, ids)

    def test_vocabulary_size_too_small(self):
        with self.assertRaisesRegex(ValueError, "Received: vocabulary_size=4"):
            mmzoo.data.train_word_piece_vocabulary(self.texts, vocabulary_size=4)

    def test_single_string_rejected(self):
        with self.assertRaisesRegex(ValueError, "Received: data='a red circle'"):
            mmzoo.data.train_word_piece_vocabulary("a red circle", vocabulary_size=10)


class TextTokenizerTest(TestCase):
    def setUp(self):
        super().setUp()
        self.tokenizer = TextTokenizer(VOCABULARY, sequence_length=8)

    def ids(self, text, tokenizer=None):
        return (tokenizer or self.tokenizer)(text)["token_ids"].numpy().tolist()

    def test_packs_start_end_and_pad(self):
        outputs = self.tokenizer("a red circle")
        self.assertAllEqual(outputs["token_ids"], [START, A, RED, CIRCLE, END, PAD, PAD, PAD])
        self.assertAllEqual(outputs["padding_mask"], [1, 1, 1, 1, 1, 0, 0, 0])
        self.assertEqual(outputs["token_ids"].dtype, tf.int32)
        self.assertEqual(outputs["padding_mask"].dtype, tf.bool)

    def test_lowercase_and_punctuation_kept_as_tokens(self):
        self.assertEqual(
            self.ids("A Red, CIRCLE!"), [START, A, RED, COMMA, CIRCLE, BANG, END, PAD]
        )

    def test_strip_punctuation(self):
        tokenizer = TextTokenizer(VOCABULARY, sequence_length=8, strip_punctuation=True)
        self.assertEqual(
            self.ids("A Red, CIRCLE!", tokenizer), [START, A, RED, CIRCLE, END, PAD, PAD, PAD]
        )

    def test_empty_string_is_start_end(self):
        outputs = self.tokenizer("")
        self.assertAllEqual(outputs["token_ids"], [START, END, PAD, PAD, PAD, PAD, PAD, PAD])
        self.assertAllEqual(outputs["padding_mask"], [1, 1, 0, 0, 0, 0, 0, 0])

    def test_long_text_truncated_keeping_end(self):
        outputs = self.tokenizer("a red circle to the left of a blue square")
        self.assertAllEqual(outputs["token_ids"], [START, A, RED, CIRCLE, 11, 12, 13, END])
        self.assertAllEqual(outputs["padding_mask"], [1] * 8)

    def test_invalid_utf8_becomes_unknown(self):
        # Invalid bytes are replaced by U+FFFD; the word holding it is [UNK].
        self.assertEqual(
            self.ids(tf.constant(b"red \xff circle")), [START, RED, UNK, CIRCLE, END, 0, 0, 0]
        )
        self.assertEqual(self.ids(tf.constant(b"red\xe9 a")), [START, UNK, A, END, 0, 0, 0, 0])

    def test_unknown_word(self):
        self.assertEqual(self.ids("a green circle"), [START, A, UNK, CIRCLE, END, 0, 0, 0])

    def test_any_input_shape(self):
        self.assertShapesEqual(self.tokenizer("a")["token_ids"], (8,))
        self.assertShapesEqual(self.tokenizer(["a", "b", "c"])["token_ids"], (3, 8))
        outputs = self.tokenizer(tf.constant([["a", "red"], ["", "blue"]]))
        self.assertShapesEqual(outputs, {"token_ids": (2, 2, 8), "padding_mask": (2, 2, 8)})
        self.assertAllEqual(outputs["token_ids"][1, 1, :3], [START, BLUE, END])

    def test_detokenize_stops_at_end_and_drops_specials(self):
        ids = tf.constant([
            [START, A, RED, CIRCLE, 15, END, RED, PAD],  # "##s" joins its word
            [START, END, PAD, PAD, PAD, PAD, PAD, PAD],
            [START, BLUE, SQUARE, SQUARE, SQUARE, SQUARE, SQUARE, SQUARE],  # no end
        ])
        self.assertAllEqual(
            self.tokenizer.detokenize(ids),
            [b"a red circles", b"", b"blue square square square square square square"],
        )

    def test_detokenize_round_trip(self):
        texts = ["A Red, CIRCLE!", "", "a blue square"]
        outputs = self.tokenizer(texts)
        self.assertAllEqual(
            self.tokenizer.detokenize(outputs["token_ids"]),
            [b"a red , circle !", b"", b"a blue square"],
        )
        self.assertShapesEqual(self.tokenizer.detokenize(tf.zeros((2, 3, 8), "int32")), (2, 3))

    def test_special_token_ids(self):
        self.assertEqual(self.tokenizer.vocabulary_size, len(VOCABULARY))
        self.assertEqual(self.tokenizer.pad_token_id, 0)
        self.assertEqual(self.tokenizer.unk_token_id, 1)
        self.assertEqual(self.tokenizer.start_token_id, 2)
        self.assertEqual(self.tokenizer.end_token_id, 3)
        self.assertEqual(self.tokenizer.get_vocabulary(), VOCABULARY)

    def test_same_result_eagerly_and_in_tf_data(self):
        texts = np.array(["A Red, CIRCLE!", "", "a red circle to the left of a blue square"])
        self.run_dataset_op_test(
            mmzoo.data.ops.tokenize(self.tokenizer, key="captions"), {"captions": texts}
        )

    def test_config_round_trip(self):
        config = self.tokenizer.get_config()
        json.dumps(config)
        # The vocabulary is an asset, not config: a config alone gives a
        # tokenizer that knows its size and refuses to run until it is set.
        self.assertIsNone(config["vocabulary"])
        restored = TextTokenizer.from_config(config)
        self.assertEqual(restored.get_config(), config)
        self.assertEqual(restored.vocabulary_size, len(VOCABULARY))
        with self.assertRaisesRegex(ValueError, "no vocabulary yet"):
            restored(["a red circle"])
        restored.set_vocabulary(VOCABULARY)
        self.assertAllEqual(restored(["a red circle"])["token_ids"],
                            self.tokenizer(["a red circle"])["token_ids"])

    def test_vocabulary_asset_round_trip_and_checks(self):
        directory = self.get_temp_dir()
        self.tokenizer.save_assets(directory)
        restored = TextTokenizer.from_config(self.tokenizer.get_config())
        restored.load_assets(directory)
        self.assertEqual(restored.get_vocabulary(), VOCABULARY)

        config = dict(self.tokenizer.get_config(), vocabulary_size=len(VOCABULARY) + 3)
        with self.assertRaisesRegex(
            ValueError, f"holds {len(VOCABULARY)} tokens.*vocabulary_size={len(VOCABULARY) + 3}"
        ):
            TextTokenizer.from_config(config).load_assets(directory)
        empty = os.path.join(directory, "empty")
        os.makedirs(empty)
        with self.assertRaisesRegex(ValueError, "no vocabulary asset.*vocabulary_size="):
            TextTokenizer.from_config(self.tokenizer.get_config()).load_assets(empty)

    def test_tokenize_is_unpacked(self):
        pieces = self.tokenizer.tokenize(["a red circle", ""])
        self.assertEqual(pieces.to_list(), [[4, 5, 6], []])

    def test_call_without_sequence_length_is_refused(self):
        tokenizer = TextTokenizer(VOCABULARY)
        with self.assertRaisesRegex(ValueError, "sequence_length=None"):
            tokenizer(["a red circle"])

    def test_save_and_load(self):
        path = self.get_temp_dir()
        tokenizer = TextTokenizer(VOCABULARY, sequence_length=6, strip_punctuation=True)
        tokenizer.save(path)
        with open(os.path.join(path, "vocabulary.txt"), encoding="utf-8") as f:
            self.assertEqual(f.read().splitlines(), VOCABULARY)
        restored = TextTokenizer.load(path)
        self.assertEqual(restored.get_config(), tokenizer.get_config())
        self.assertAllEqual(restored("A red, circle!")["token_ids"],
                            tokenizer("A red, circle!")["token_ids"])

    def test_a_keras_file_without_the_inner_copy_of_the_vocabulary_loads(self):
        # The inner WordPiece layer's copy of the vocabulary is written but
        # not read: the tokenizer's own asset is the vocabulary.
        tokenizer = TextTokenizer(VOCABULARY, sequence_length=6)
        path = os.path.join(self.get_temp_dir(), "tokenizer.keras")
        keras.saving.save_model(tokenizer, path)
        copy = "assets/word_piece/vocabulary.txt"
        without = os.path.join(self.get_temp_dir(), "without_copy.keras")
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(without, "w") as target:
            self.assertIn(copy, source.namelist())
            for item in source.infolist():
                if item.filename != copy:
                    target.writestr(item, source.read(item.filename))
        restored = keras.saving.load_model(without, safe_mode=True)
        self.assertEqual(restored.get_vocabulary(), VOCABULARY)
        self.assertAllEqual(restored(["a red circle"])["token_ids"],
                            tokenizer(["a red circle"])["token_ids"])

    def test_vocabulary_file(self):
        path = os.path.join(self.get_temp_dir(), "vocab.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(VOCABULARY) + "\n")
        self.assertEqual(TextTokenizer(path, sequence_length=4).get_vocabulary(), VOCABULARY)

    def test_pad_must_be_first(self):
        with self.assertRaisesRegex(ValueError, r"Received: vocabulary\[:4\]=\['a'"):
            TextTokenizer(["a", "[PAD]", "[UNK]", "[START]", "[END]"], sequence_length=4)

    def test_reserved_tokens_required(self):
        with self.assertRaisesRegex(ValueError, r"\['\[END\]'\] missing"):
            TextTokenizer(["[PAD]", "[UNK]", "[START]", "a"], sequence_length=4)

    def test_repeated_token(self):
        with self.assertRaisesRegex(ValueError, "must not repeat"):
            TextTokenizer(VOCABULARY + ["red"], sequence_length=4)

    def test_sequence_length_too_short(self):
        with self.assertRaisesRegex(ValueError, "Received: sequence_length=1"):
            TextTokenizer(VOCABULARY, sequence_length=1)


class TokenizerModule(tf.Module):
    """What an exported model does: strings in, strings out."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(self, texts):
        return self.tokenizer(texts)

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.int32)])
    def detokenize(self, token_ids):
        return {"texts": self.tokenizer.detokenize(token_ids)}

    # `run_export_test` brings outputs back through `np.load(allow_pickle=False)`,
    # which cannot read string arrays; this endpoint calls `detokenize` and
    # returns the text as Unicode code points (-1 padded) instead.
    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.int32)])
    def detokenize_codepoints(self, token_ids):
        texts = self.detokenize(token_ids)["texts"]
        return {"codepoints": tf.strings.unicode_decode(texts, "UTF-8").to_tensor(-1)}


class TokenizerSavedModelTest(TestCase):
    """The tokenizer runs in a SavedModel served without mmzoo or keras-hub."""

    def setUp(self):
        super().setUp()
        self.tokenizer = TextTokenizer(VOCABULARY, sequence_length=8)
        module = TokenizerModule(self.tokenizer)
        self.export_fn = lambda path: tf.saved_model.save(
            module,
            path,
            signatures={
                "encode": module.encode,
                "detokenize": module.detokenize,
                "detokenize_codepoints": module.detokenize_codepoints,
            },
        )

    def test_encode_in_saved_model(self):
        texts = np.array([b"A Red, CIRCLE!", b"", b"red \xff circle"], dtype=object)
        expected = self.tokenizer(tf.constant(texts))
        self.run_export_test(
            input_data={"texts": texts.astype(bytes)},
            export_fn=self.export_fn,
            endpoint="encode",
            expected_output={k: v.numpy() for k, v in expected.items()},
        )

    def test_detokenize_in_saved_model(self):
        token_ids = np.array(
            [[START, A, RED, CIRCLE, 15, END, RED, PAD], [START, END] + [PAD] * 6], "int32"
        )
        expected = [[ord(c) for c in "a red circles"], [-1] * len("a red circles")]
        self.run_export_test(
            input_data={"token_ids": token_ids},
            export_fn=self.export_fn,
            endpoint="detokenize_codepoints",
            expected_output={"codepoints": np.array(expected, "int32")},
        )
