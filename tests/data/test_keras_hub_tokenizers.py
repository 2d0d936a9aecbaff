"""Any KerasHub tokenizer works end to end: pipelines, training, generation,
encoding, export and reload.

Three kinds: WordPiece with a BERT vocabulary (and a KerasHub `BertBackbone`
text tower, which takes `segment_ids`), CLIP's byte-pair encoding (`</w>`
word ends) and SentencePiece (Gemma's special tokens; SigLIP's, which have
no start token, for packing). `EndToEndTest` trains a tiny captioner and a
tiny dual encoder per kind once (`setUpClass`, two steps each) and shares
them across its checks. The vocabularies, merges and SentencePiece models
are made here from the synthetic captions: nothing is downloaded. mmzoo's
own WordPiece `TextTokenizer` has the same checks in each family's
acceptance test. `VocabularyAssetTest` tampers with the vocabulary assets of
saved files: a missing or resized vocabulary fails at load.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from PIL import Image

import mmzoo
from mmzoo.data.inputs import token_vocabulary_size
from mmzoo.data.preprocessing import special_token_ids
from mmzoo.models import ImageCaptioningPreprocessor
from mmzoo.models.dual_encoder import DualEncoderPreprocessor
from mmzoo.testing import TestCase
from mmzoo.testing import rewrite_archive
from mmzoo.testing import tokenizers

TEXTS = ["a small red circle", "a large blue square", ""]
SEQUENCE_LENGTH = 16


def _examples():
    return mmzoo.data.load_synthetic("shapes_captions", "train", num_examples=32, image_size=32)


def _caption_texts():
    return [
        text.decode("utf-8")
        for example in _examples().as_numpy_iterator()
        for text in np.ravel(example["captions"])
    ]


# ------------------------------------------------------------- tokenizers
# Vocabularies of the given texts and of TEXTS.
def bert_tokenizer(texts):
    return tokenizers.bert_tokenizer(texts + TEXTS)


def clip_tokenizer(texts, **kwargs):
    return tokenizers.clip_tokenizer(texts + TEXTS, **kwargs)


def gemma_tokenizer(texts):
    return tokenizers.gemma_tokenizer(texts + TEXTS)


def siglip_tokenizer(texts):
    return tokenizers.siglip_tokenizer(texts + TEXTS)


# ----------------------------------------------------------------- models
def _size(tokenizer):
    return int(tokenizer.vocabulary_size())


def image_tower():
    return mmzoo.encoders.build_vit_image_encoder(
        image_shape=(32, 32, 3), patch_size=16, num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32,
    )


def text_tower(tokenizer):
    return mmzoo.encoders.build_text_encoder(
        vocabulary_size=_size(tokenizer), sequence_length=SEQUENCE_LENGTH, num_layers=1,
        num_heads=2, hidden_dim=16, intermediate_dim=32,
    )


def bert_tower(tokenizer):
    return keras_hub.models.BertBackbone(
        vocabulary_size=_size(tokenizer), num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=SEQUENCE_LENGTH, name="bert",
    )


def captioner(tokenizer, sequence_length=SEQUENCE_LENGTH):
    return mmzoo.models.build_image_captioning_model(
        image_tower(), vocabulary_size=_size(tokenizer), sequence_length=sequence_length,
        num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        preprocessor=ImageCaptioningPreprocessor(tokenizer, (32, 32)),
    )


def dual_encoder(tokenizer, make_text_tower):
    return mmzoo.models.build_dual_encoder(
        image_tower(), make_text_tower(tokenizer), projection_dim=8,
        preprocessor=DualEncoderPreprocessor(tokenizer, sequence_length=SEQUENCE_LENGTH),
    )


# Trained eagerly (`run_eagerly=True`): the tokenizers run in the tf.data
# pipelines either way, and tracing a training step (three times the time
# of the two eager steps here) tests nothing about them.
def train_captioner(tokenizer):
    model = captioner(tokenizer)
    train = mmzoo.data.captioning_pipeline(_examples(), model, batch_size=8, seed=0)
    model.compile(
        optimizer="adam",
        loss=mmzoo.losses.MaskedSequenceCrossEntropy(pad_token_id=model.pad_token_id),
        run_eagerly=True,
    )
    model.fit(train.map(mmzoo.models.teacher_forcing_split), steps_per_epoch=2, verbose=0)
    return model


def train_dual_encoder(tokenizer, make_text_tower):
    model = dual_encoder(tokenizer, make_text_tower)
    train = mmzoo.data.contrastive_pipeline(_examples(), model, batch_size=8, seed=0)
    model.compile(optimizer="adam", loss=mmzoo.losses.CLIPLoss(), run_eagerly=True)
    model.fit(train, steps_per_epoch=2, verbose=0)
    return model


def _png(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


# kind -> (tokenizer maker, dual encoder text tower maker)
KINDS = {
    "bert": (bert_tokenizer, bert_tower),
    "clip": (clip_tokenizer, text_tower),
    "sentencepiece": (gemma_tokenizer, text_tower),
}

# Every kind's two SavedModels in one process with only tensorflow and
# tensorflow_text imported (one process for all: most of its time is
# importing TensorFlow).
_SERVE = """
import sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tf-text ops

inputs = np.load("inputs.npz")
outputs = {}
for kind in sys.argv[1:]:
    captioner = tf.saved_model.load(kind + "_captioner")
    dual_encoder = tf.saved_model.load(kind + "_dual_encoder")
    caption = captioner.signatures["caption"](images=tf.constant(inputs["files"]))
    texts = dual_encoder.signatures["encode_text"](texts=tf.constant(inputs["texts"]))
    outputs[kind + "_captions"] = caption["captions"].numpy().astype(bytes)
    outputs[kind + "_texts"] = texts["embeddings"].numpy()
bad = [m for m in ("mmzoo", "keras_hub") if m in sys.modules]
assert not bad, f"imported in the serving process: {bad}"
np.savez("served.npz", **outputs)
"""


class EndToEndTest(TestCase, parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(0)
        texts = _caption_texts()
        cls.captioners, cls.dual_encoders = {}, {}
        for kind, (make_tokenizer, make_text_tower) in KINDS.items():
            cls.captioners[kind] = train_captioner(make_tokenizer(texts))
            cls.dual_encoders[kind] = train_dual_encoder(make_tokenizer(texts), make_text_tower)
        cls.directory = tempfile.mkdtemp()
        rng = np.random.RandomState(0)
        cls.images = rng.randint(0, 256, (2, 40, 48, 3), dtype=np.uint8)
        cls.files = [_png(image) for image in cls.images]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.directory, ignore_errors=True)
        super().tearDownClass()

    def path(self, name):
        return os.path.join(self.directory, name)

    @parameterized.named_parameters((kind, kind) for kind in KINDS)
    def test_special_ids_are_the_tokenizer_s(self, kind):
        model = self.captioners[kind]
        start, end, pad = special_token_ids(model.preprocessor.tokenizer)
        self.assertEqual((model.start_token_id, model.end_token_id, model.pad_token_id),
                         (start, end, pad))
        token_ids, padding_mask = model.preprocessor.tokenize_strings(["a red circle"])
        length = int(padding_mask.sum())
        self.assertEqual(token_ids[0, 0], start)
        self.assertEqual(token_ids[0, length - 1], end)
        self.assertAllEqual(token_ids[0, length:], [pad] * (token_ids.shape[1] - length))

    @parameterized.named_parameters((kind, kind) for kind in KINDS)
    def test_texts_round_trip(self, kind):
        # Packing then detokenizing gives the text back, eagerly and in a graph.
        preprocessor = self.dual_encoders[kind].preprocessor
        packed = preprocessor.preprocess_texts(tf.constant(TEXTS))
        self.assertEqual(preprocessor.detokenize_to_strings(packed["token_ids"]), TEXTS)
        graph = tf.function(preprocessor.detokenize)(packed["token_ids"])
        self.assertEqual([t.decode() for t in graph.numpy()], TEXTS)
        # The pipelines (tf.data) tokenize as eager calls do.
        dataset = tf.data.Dataset.from_tensor_slices(TEXTS).batch(3)
        (traced,) = list(dataset.map(preprocessor.preprocess_texts))
        self.assertAllEqual(traced["token_ids"], packed["token_ids"])
        self.assertAllEqual(traced["padding_mask"], packed["padding_mask"])

    @parameterized.named_parameters((kind, kind) for kind in KINDS)
    def test_generate_save_and_load(self, kind):
        model = self.captioners[kind]
        expected = model.generate(self.images)
        self.assertLen(expected, 2)
        self.assertTrue(all(isinstance(caption, str) for caption in expected))
        self.assertEqual(model.generate(self.files), expected)
        model.save(self.path(f"{kind}_captioner.keras"))
        restored = keras.saving.load_model(self.path(f"{kind}_captioner.keras"), safe_mode=True)
        self.assertEqual(restored.generate(self.files), expected)

    @parameterized.named_parameters((kind, kind) for kind in KINDS)
    def test_encode_save_and_load(self, kind):
        model = self.dual_encoders[kind]
        expected = model.encode_text(TEXTS)
        self.assertEqual(expected.shape, (3, 8))
        self.assertAllClose(np.linalg.norm(expected, axis=-1), [1.0] * 3, atol=1e-5)
        images = model.encode_images(self.files)
        model.save(self.path(f"{kind}_dual_encoder.keras"))
        restored = keras.saving.load_model(self.path(f"{kind}_dual_encoder.keras"), safe_mode=True)
        self.assertAllClose(restored.encode_text(TEXTS), expected, atol=1e-6)
        self.assertAllClose(restored.encode_images(self.files), images, atol=1e-6)

    @pytest.mark.slow  # six exports and a TensorFlow process: about half of this file's time
    def test_exports_run_with_only_tensorflow_and_tensorflow_text(self):
        directory = tempfile.mkdtemp(dir=self.directory)
        for kind in KINDS:
            mmzoo.export.export_image_captioning_model(
                self.captioners[kind], os.path.join(directory, f"{kind}_captioner")
            )
            mmzoo.export.export_dual_encoder(
                self.dual_encoders[kind], os.path.join(directory, f"{kind}_dual_encoder")
            )
        np.savez(
            os.path.join(directory, "inputs.npz"),
            files=np.array(self.files, object).astype(bytes), texts=np.array(TEXTS),
        )
        subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_SERVE), *KINDS], cwd=directory, check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600,
        )
        served = np.load(os.path.join(directory, "served.npz"))
        for kind in KINDS:
            self.assertEqual(
                [c.decode("utf-8") for c in served[f"{kind}_captions"]],
                self.captioners[kind].generate(self.files), msg=kind,
            )
            self.assertAllClose(
                served[f"{kind}_texts"], self.dual_encoders[kind].encode_text(TEXTS),
                atol=1e-5, msg=kind,
            )


class BertTokenizerTest(TestCase):
    def setUp(self):
        super().setUp()
        self.tokenizer = bert_tokenizer(TEXTS)

    def test_pipeline_gives_a_bert_tower_segment_ids(self):
        model = dual_encoder(self.tokenizer, bert_tower)
        self.assertTrue(model.preprocessor.return_segment_ids)
        batch = next(iter(mmzoo.data.contrastive_pipeline(
            _examples(), model, batch_size=4, shuffle_buffer=None, repeat=False,
        )))
        self.assertEqual(
            sorted(batch), ["example_mask", "images", "padding_mask", "segment_ids", "token_ids"]
        )
        self.assertAllEqual(batch["segment_ids"], np.zeros((4, SEQUENCE_LENGTH), "int32"))
        # A tower without segment ids gets none.
        model = dual_encoder(self.tokenizer, text_tower)
        self.assertFalse(model.preprocessor.return_segment_ids)

    def test_fusion_classifier_trains_a_bert_tower_through_its_pipeline(self):
        examples = mmzoo.data.load_synthetic(
            "shapes_classification", "train", num_examples=16, image_size=32
        )
        tokenizer = bert_tokenizer(
            [t.decode("utf-8") for t in examples.map(lambda e: e["texts"]).as_numpy_iterator()]
        )
        model = mmzoo.models.build_fusion_classifier(
            {"image": image_tower(), "text": bert_tower(tokenizer)}, num_classes=2,
            hidden_dim=16, num_heads=2, intermediate_dim=32,
            preprocessor=mmzoo.models.FusionClassifierPreprocessor(
                tokenizer, sequence_length=SEQUENCE_LENGTH, class_names=["no", "yes"]
            ),
        )
        self.assertTrue(model.preprocessor.return_segment_ids)
        # A tower of any length needs the preprocessor's length.
        with self.assertRaisesRegex(ValueError, "must give one.*sequence_length=None"):
            mmzoo.models.build_fusion_classifier(
                {"image": image_tower(), "text": bert_tower(tokenizer)}, num_classes=2,
                hidden_dim=16, num_heads=2, intermediate_dim=32,
                preprocessor=mmzoo.models.FusionClassifierPreprocessor(tokenizer),
            )
        train = mmzoo.data.fusion_pipeline(examples, model, batch_size=8, seed=0)
        batch = next(iter(train))
        self.assertEqual(
            sorted(batch), ["images", "labels", "padding_mask", "segment_ids", "token_ids"]
        )
        self.assertAllEqual(batch["segment_ids"], np.zeros((8, SEQUENCE_LENGTH), "int32"))
        model.compile(
            optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            run_eagerly=True,
        )
        history = model.fit(
            train.map(mmzoo.models.classification_split), steps_per_epoch=2, verbose=0
        )
        self.assertTrue(np.isfinite(history.history["loss"]).all())
        images = np.stack([e["images"] for e in examples.take(2).as_numpy_iterator()])
        classes = model.predict_classes(images=images, texts=["a red circle", "a square"])
        self.assertEqual(len(classes), 2)
        self.assertTrue(set(classes) <= {"no", "yes"})
        # The texts of a model without a BERT tower get no segment ids.
        model = mmzoo.models.build_fusion_classifier(
            {"image": image_tower(), "text": text_tower(tokenizer)}, num_classes=2,
            hidden_dim=16, num_heads=2, intermediate_dim=32,
            preprocessor=mmzoo.models.FusionClassifierPreprocessor(tokenizer),
        )
        self.assertFalse(model.preprocessor.return_segment_ids)
        self.assertNotIn("segment_ids", next(iter(
            mmzoo.data.fusion_pipeline(examples, model, batch_size=8, seed=0)
        )))

    def test_vocabulary_size_is_the_token_embedding_s(self):
        # Not the segment embedding's (2), which a BertBackbone also holds.
        self.assertEqual(token_vocabulary_size(bert_tower(self.tokenizer)), _size(self.tokenizer))
        bigger = bert_tokenizer(TEXTS + ["zebra"])
        with self.assertRaisesRegex(
            ValueError,
            f"tokenizer has {_size(bigger)} tokens, the model vocabulary_size={_size(self.tokenizer)}",
        ):
            mmzoo.models.build_dual_encoder(
                image_tower(), bert_tower(self.tokenizer), projection_dim=8,
                preprocessor=DualEncoderPreprocessor(bigger, sequence_length=8),
            )
        with self.assertRaisesRegex(ValueError, f"tokenizer has {_size(bigger)} tokens"):
            mmzoo.models.build_image_captioning_model(
                image_tower(), vocabulary_size=_size(self.tokenizer), sequence_length=8,
                preprocessor=ImageCaptioningPreprocessor(bigger, (32, 32)),
            )


class CLIPTokenizerTest(TestCase):
    def setUp(self):
        super().setUp()
        self.tokenizer = clip_tokenizer(TEXTS)

    def test_words_are_single_tokens_and_spaces_come_back(self):
        preprocessor = DualEncoderPreprocessor(self.tokenizer, (32, 32), sequence_length=8)
        packed = preprocessor.preprocess_texts(tf.constant(["a small red circle"]))
        vocabulary = self.tokenizer.vocabulary
        ids = [vocabulary[t] for t in ("a</w>", "small</w>", "red</w>", "circle</w>")]
        start, end = self.tokenizer.start_token_id, self.tokenizer.end_token_id
        self.assertAllEqual(packed["token_ids"][0], [start, *ids, end, 0, 0])
        self.assertEqual(
            preprocessor.detokenize_to_strings(packed["token_ids"]), ["a small red circle"]
        )

    def test_lower_cased_as_clip_preprocessor_does(self):
        preprocessor = DualEncoderPreprocessor(self.tokenizer, (32, 32), sequence_length=8)
        upper = preprocessor.preprocess_texts(tf.constant(["A Small RED circle"]))
        lower = preprocessor.preprocess_texts(tf.constant(["a small red circle"]))
        self.assertAllEqual(upper["token_ids"], lower["token_ids"])

    def test_invalid_utf8_is_replaced(self):
        preprocessor = DualEncoderPreprocessor(self.tokenizer, (32, 32), sequence_length=8)
        packed = preprocessor.preprocess_texts(tf.constant([b"red \xff circle"]))
        self.assertEqual(
            preprocessor.detokenize_to_strings(packed["token_ids"]), ["red \ufffd circle"]
        )

    def test_padding_with_the_end_token(self):
        # The end token pads too: the mask still marks the text, and
        # detokenizing stops at the first end token.
        tokenizer = clip_tokenizer(TEXTS, pad_with_end_token=True)
        self.assertEqual(tokenizer.pad_token_id, tokenizer.end_token_id)
        preprocessor = DualEncoderPreprocessor(tokenizer, (32, 32), sequence_length=8)
        packed = preprocessor.preprocess_texts(tf.constant(["a red circle", ""]))
        self.assertAllEqual(
            packed["padding_mask"], [[True] * 5 + [False] * 3, [True] * 2 + [False] * 6]
        )
        self.assertEqual(
            preprocessor.detokenize_to_strings(packed["token_ids"]), ["a red circle", ""]
        )
        # A captioner could not learn to end its captions: refused.
        with self.assertRaisesRegex(ValueError, "distinct end and padding tokens"):
            captioner(tokenizer, sequence_length=8)


class SentencePieceTokenizerTest(TestCase):
    def test_siglip_tokenizer_packs_without_a_start_token(self):
        tokenizer = siglip_tokenizer(_caption_texts())
        self.assertEqual(special_token_ids(tokenizer), (None, 0, 0))
        preprocessor = DualEncoderPreprocessor(tokenizer, (32, 32), sequence_length=8)
        packed = preprocessor.preprocess_texts(tf.constant(["a red circle"]))
        length = int(packed["padding_mask"][0].numpy().sum())
        self.assertEqual(packed["token_ids"][0, length - 1], tokenizer.end_token_id)
        self.assertNotIn(tokenizer.token_to_id("<unk>"), packed["token_ids"][0, :length].numpy())
        self.assertEqual(preprocessor.detokenize_to_strings(packed["token_ids"]), ["a red circle"])
        with self.assertRaisesRegex(ValueError, "needs a start token"):
            captioner(tokenizer, sequence_length=8)

    def test_works_after_the_random_seed_is_set_again(self):
        # `keras.utils.set_random_seed` drops tensorflow-text's SentencePiece
        # op (tensorflow/text#570); the preprocessor makes it again.
        preprocessor = DualEncoderPreprocessor(
            gemma_tokenizer(_caption_texts()), (32, 32), sequence_length=SEQUENCE_LENGTH
        )
        before = preprocessor.preprocess_texts(tf.constant(TEXTS[:1]))["token_ids"]
        keras.utils.set_random_seed(1)
        after = preprocessor.preprocess_texts(tf.constant(TEXTS[:1]))["token_ids"]
        self.assertAllEqual(after, before)
        self.assertEqual(preprocessor.detokenize_to_strings(after), TEXTS[:1])


# ------------------------------------------------------- vocabulary assets
def _drop_assets(name, data):
    return None if name.startswith("assets/") else data


def _other_size_assets(kind):
    """`edit` for `rewrite_archive`: the kind's vocabulary asset, valid but of
    another size, and that size."""
    if kind == "bert":  # two words fewer
        lines = [line + "\n" for line in bert_tokenizer(TEXTS).vocabulary[:-2]]
        return lambda n, d: "".join(lines).encode() if n.endswith("vocabulary.txt") else d, 10
    if kind == "clip":  # one token more (a merge-free one: the merges stay valid)
        def edit(name, data):
            if not name.endswith("vocabulary.json"):
                return data
            vocabulary = json.loads(data)
            return json.dumps({**vocabulary, "zebra</w>": len(vocabulary)}).encode()
        return edit, _size(clip_tokenizer(TEXTS)) + 1
    if kind == "sentencepiece":  # a model trained on more text: more pieces
        other = gemma_tokenizer(TEXTS + ["seven zebras jump over quick brown foxes"])
        return lambda n, d: other.proto if n.endswith("vocabulary.spm") else d, _size(other)
    vocabulary = mmzoo.data.train_word_piece_vocabulary(TEXTS, vocabulary_size=64)
    return (lambda n, d: "".join(t + "\n" for t in vocabulary[:-1]).encode()
            if n.endswith("vocabulary.txt") else d), len(vocabulary) - 1


# kind -> tokenizer maker; "mmzoo" is mmzoo's own WordPiece `TextTokenizer`.
ASSET_KINDS = {
    "bert": bert_tokenizer,
    "clip": clip_tokenizer,
    "sentencepiece": gemma_tokenizer,
    "mmzoo": lambda texts: mmzoo.data.TextTokenizer(
        mmzoo.data.train_word_piece_vocabulary(texts, vocabulary_size=64)
    ),
}


class VocabularyAssetTest(TestCase, parameterized.TestCase):
    """A `.keras` file whose tokenizer vocabulary is missing, or not of the
    size the file records, fails at load (not at first use), naming both
    sizes. A preprocessor is saved alone (a `.keras` file of one layer), and
    the smallest captioner once, through the model."""

    def save(self, layer, name="saved.keras"):
        path = os.path.join(self.get_temp_dir(), name)
        keras.saving.save_model(layer, path)
        return path

    def tampered(self, path, edit, name="tampered.keras"):
        return rewrite_archive(path, os.path.join(self.get_temp_dir(), name), edit)

    @parameterized.named_parameters((kind, kind) for kind in ASSET_KINDS)
    def test_a_vocabulary_of_another_size_fails_at_load(self, kind):
        tokenizer = ASSET_KINDS[kind](TEXTS)
        size = int(DualEncoderPreprocessor(tokenizer).vocabulary_size)
        path = self.save(DualEncoderPreprocessor(tokenizer, sequence_length=8))
        restored = keras.saving.load_model(path, safe_mode=True)
        self.assertEqual(restored.vocabulary_size, size)
        self.assertAllEqual(
            restored.preprocess_texts(tf.constant(TEXTS))["token_ids"],
            DualEncoderPreprocessor(tokenizer, sequence_length=8).preprocess_texts(
                tf.constant(TEXTS))["token_ids"],
        )
        edit, other_size = _other_size_assets(kind)
        self.assertNotEqual(other_size, size)
        with self.assertRaisesRegex(
            ValueError,
            f"holds {other_size} tokens but the model was saved with vocabulary_size={size}",
        ):
            keras.saving.load_model(self.tampered(path, edit), safe_mode=True)

    @parameterized.named_parameters((kind, kind) for kind in ASSET_KINDS)
    def test_a_file_without_its_vocabulary_fails_at_load(self, kind):
        # The archive keeps only config, metadata and weights: Keras then
        # reads no assets at all, and calls no asset hook.
        preprocessor = DualEncoderPreprocessor(ASSET_KINDS[kind](TEXTS), sequence_length=8)
        missing = self.tampered(self.save(preprocessor), _drop_assets)
        with zipfile.ZipFile(missing) as archive:
            self.assertLen(archive.namelist(), 3)
        with self.assertRaisesRegex(
            ValueError,
            "no vocabulary asset for the tokenizer .* the model was saved with "
            f"vocabulary_size={preprocessor.vocabulary_size}",
        ):
            keras.saving.load_model(missing, safe_mode=True)

    def test_a_file_missing_one_of_its_vocabulary_files_fails_at_load(self):
        # CLIP's byte-pair vocabulary is two files; the other is still there.
        preprocessor = DualEncoderPreprocessor(clip_tokenizer(TEXTS), sequence_length=8)
        path = self.save(preprocessor)
        without_merges = self.tampered(
            path, lambda n, d: None if n.endswith("merges.txt") else d
        )
        with self.assertRaisesRegex(
            ValueError,
            r"tokenizer 'clip_tokenizer\w*' in the saved file cannot be read .*merges.txt.* "
            f"saved with vocabulary_size={preprocessor.vocabulary_size}",
        ):
            keras.saving.load_model(without_merges, safe_mode=True)

    def test_the_model_s_file_fails_at_load(self):
        model = captioner(bert_tokenizer(TEXTS), sequence_length=8)
        path = self.save(model, "captioner.keras")
        edit, other_size = _other_size_assets("bert")
        with self.assertRaisesRegex(
            ValueError, f"holds {other_size} tokens but the model was saved with "
            f"vocabulary_size={model.vocabulary_size}",
        ):
            keras.saving.load_model(self.tampered(path, edit), safe_mode=True)
        with self.assertRaisesRegex(ValueError, "no vocabulary asset for the tokenizer"):
            keras.saving.load_model(self.tampered(path, _drop_assets), safe_mode=True)
        # A loaded model still takes weights-only files, which hold no assets.
        restored = keras.saving.load_model(path, safe_mode=True)
        weights = os.path.join(self.get_temp_dir(), "captioner.weights.h5")
        model.save_weights(weights)
        restored.load_weights(weights)

    def test_vocabulary_size_must_be_the_tokenizer_s(self):
        tokenizer = bert_tokenizer(TEXTS)
        self.assertEqual(
            DualEncoderPreprocessor(tokenizer, vocabulary_size=_size(tokenizer)).get_config()[
                "vocabulary_size"], _size(tokenizer),
        )
        with self.assertRaisesRegex(
            ValueError, f"it has {_size(tokenizer)} tokens. Received: vocabulary_size=5"
        ):
            DualEncoderPreprocessor(tokenizer, vocabulary_size=5)
        with self.assertRaisesRegex(ValueError, "no tokenizer. Received: vocabulary_size=5"):
            DualEncoderPreprocessor(vocabulary_size=5)
        with self.assertRaisesRegex(ValueError, "Received: vocabulary_size=True"):
            DualEncoderPreprocessor(tokenizer, vocabulary_size=True)
