"""keras-hub backbones as mmzoo towers: ViT, DINOv2, ResNet and EfficientNet
presets (saved here with random weights) and CLIP / SigLIP towers."""

import os

import keras
import keras_hub
import numpy as np

import mmzoo
from mmzoo.testing import TestCase
from mmzoo.testing import keras_hub_presets
from mmzoo.testing.keras_hub_presets import IMAGE_PRESET_KINDS
from mmzoo.testing.keras_hub_presets import save_contrastive_preset
from mmzoo.testing.keras_hub_presets import save_image_preset

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]", "a", "red", "circle"]


class KerasHubTowersTest(TestCase):
    def test_clip_vision_tower_under_a_captioner(self):
        preset = save_contrastive_preset(os.path.join(self.get_temp_dir(), "clip"), "clip")
        backbone = keras_hub.models.Backbone.from_preset(preset)
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
        tower = mmzoo.encoders.build_keras_hub_image_tower(backbone, converter)
        pixels = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
        outputs = tower(pixels)
        # The class token and the 16 patch tokens, after CLIP's last layer norm.
        self.assertEqual(tuple(outputs["sequence_output"].shape), (2, 17, 32))
        self.assertAllClose(outputs["pooled_output"], outputs["sequence_output"][:, 0])
        # The preset's normalisation is in the graph: the tower on [0, 1]
        # images equals the encoder on the converter's output.
        expected = backbone.vision_encoder({"images": converter(pixels * 255.0)})
        self.assertAllClose(outputs["sequence_output"], expected, atol=1e-5)

        model = mmzoo.models.build_image_captioning_model(
            tower, vocabulary_size=len(VOCABULARY), sequence_length=8, num_layers=1,
            num_heads=2, hidden_dim=16, intermediate_dim=32,
            preprocessor=mmzoo.models.ImageCaptioningPreprocessor(
                mmzoo.data.TextTokenizer(VOCABULARY), image_converter=(32, 32)
            ),
        )
        captions = model.generate(pixels)
        path = os.path.join(self.get_temp_dir(), "captioner.keras")
        model.save(path)
        self.assertEqual(keras.saving.load_model(path, safe_mode=True).generate(pixels), captions)

    def test_siglip_towers_pool_with_their_own_heads(self):
        preset = save_contrastive_preset(os.path.join(self.get_temp_dir(), "siglip"), "siglip")
        backbone = keras_hub.models.Backbone.from_preset(preset)
        image_tower = mmzoo.encoders.build_keras_hub_image_tower(backbone)
        text_tower = mmzoo.encoders.build_keras_hub_text_tower(backbone, 16)
        self.assertEqual(sorted(image_tower.output), ["pooled_output"])
        self.assertEqual(sorted(text_tower.output), ["pooled_output"])
        token_ids = np.ones((2, 16), "int32")
        self.assertAllClose(
            text_tower({"token_ids": token_ids, "padding_mask": token_ids > 0})["pooled_output"],
            backbone.text_encoder({"token_ids": token_ids}),
        )

    def test_bad_backbones(self):
        with self.assertRaisesRegex(ValueError, "Received: backbone of type Dense"):
            mmzoo.encoders.build_keras_hub_image_tower(keras.layers.Dense(2))
        with self.assertRaisesRegex(ValueError, "sequence_length"):
            mmzoo.encoders.build_keras_hub_text_tower(
                keras_hub.models.Backbone.from_preset(
                    save_contrastive_preset(os.path.join(self.get_temp_dir(), "c"), "clip")
                ), 17,
            )


def _pixels(size=32, seed=0):
    return np.random.default_rng(seed).uniform(size=(2, size, size, 3)).astype("float32")


class KerasHubImagePresetTowerTest(TestCase):
    """Every image backbone kind, loaded from a local preset as a download would be."""

    def _preset(self, kind):
        return save_image_preset(os.path.join(self.get_temp_dir(), kind), kind)

    def test_towers_equal_keras_hub_converter_and_backbone(self):
        # (tokens, width, pooled is the class token)
        expected = {
            "vit": (17, 32, True), "dinov2": (17, 32, True),
            "resnet": (16, 64, False), "efficientnet": (64, 1280, False),
        }
        self.assertEqual(sorted(expected), sorted(IMAGE_PRESET_KINDS))
        pixels = _pixels()
        for kind, (tokens, width, class_token) in expected.items():
            with self.subTest(kind=kind):
                preset = self._preset(kind)
                tower = mmzoo.encoders.build_keras_hub_image_tower(preset)
                # The preset's image size, read from the backbone or its converter.
                self.assertEqual(tuple(tower.input_shape), (None, 32, 32, 3))
                outputs = tower(pixels)
                self.assertEqual(tuple(outputs["sequence_output"].shape), (2, tokens, width))
                # The preset's normalisation is in the graph: the tower on
                # [0, 1] images equals keras-hub's converter then backbone on
                # [0, 255] pixels.
                backbone, converter = mmzoo.encoders.load_keras_hub_backbone(preset)
                features = keras.ops.convert_to_numpy(
                    backbone(keras.tree.pack_sequence_as(backbone.input, [converter(pixels * 255.0)]))
                )
                features = features.reshape(2, -1, features.shape[-1])
                self.assertAllClose(outputs["sequence_output"], features, atol=1e-5)
                pooled = features[:, 0] if class_token else features.mean(axis=1)
                self.assertAllClose(outputs["pooled_output"], pooled, atol=1e-5)

                path = os.path.join(self.get_temp_dir(), f"{kind}.keras")
                tower.save(path)
                self.assertAllClose(
                    keras.saving.load_model(path, safe_mode=True)(pixels)["pooled_output"],
                    outputs["pooled_output"],
                )

    def test_load_weights_false_gives_other_weights(self):
        preset = self._preset("vit")
        loaded = mmzoo.encoders.build_keras_hub_image_tower(preset)
        fresh = mmzoo.encoders.build_keras_hub_image_tower(preset, load_weights=False)
        self.assertNotAllClose(loaded(_pixels())["pooled_output"], fresh(_pixels())["pooled_output"])

    def test_frozen_tower(self):
        tower = mmzoo.encoders.build_keras_hub_image_tower(self._preset("resnet"), trainable=False)
        self.assertEqual(tower.trainable_weights, [])
        self.assertGreater(len(tower.non_trainable_weights), 0)

    def test_a_cnn_takes_another_size_a_vit_does_not(self):
        tower = mmzoo.encoders.build_keras_hub_image_tower(
            self._preset("resnet"), image_shape=(48, 40, 3)
        )
        self.assertEqual(tuple(tower(np.zeros((1, 48, 40, 3)))["sequence_output"].shape),
                         (1, 12 * 10 // 4, 64))
        with self.assertRaisesRegex(
            ValueError, r"ViTBackbone is built for images of shape \(32, 32, 3\).*"
            r"image_shape=\(64, 64, 3\)"
        ):
            mmzoo.encoders.build_keras_hub_image_tower(self._preset("vit"), image_shape=(64, 64, 3))

    def test_a_converter_of_another_size_is_refused(self):
        backbone, _ = mmzoo.encoders.load_keras_hub_backbone(self._preset("vit"))
        converter = keras_hub.layers.ViTImageConverter(image_size=(64, 64))
        with self.assertRaisesRegex(ValueError, r"image_size \(64, 64\).*\(32, 32, 3\)"):
            mmzoo.encoders.build_keras_hub_image_tower(backbone, converter)

    def test_a_cnn_without_a_size_needs_image_shape(self):
        backbone, _ = mmzoo.encoders.load_keras_hub_backbone(self._preset("resnet"))
        with self.assertRaisesRegex(ValueError, "ResNetBackbone.*pass `image_shape`"):
            mmzoo.encoders.build_keras_hub_image_tower(backbone)

    def test_presets_a_family_cannot_use(self):
        gemma = os.path.join(self.get_temp_dir(), "gemma")
        keras_hub.models.GemmaBackbone(
            vocabulary_size=50, num_layers=1, num_query_heads=2, num_key_value_heads=1,
            hidden_dim=16, intermediate_dim=32, head_dim=8,
        ).save_to_preset(gemma)
        with self.assertRaisesRegex(ValueError, "must take images.*GemmaBackbone"):
            mmzoo.encoders.build_keras_hub_image_tower(gemma)
        with self.assertRaisesRegex(ValueError, "without `config.json`"):
            mmzoo.encoders.build_keras_hub_image_tower(self.get_temp_dir())
        with self.assertRaisesRegex(ValueError, "preset name or a preset directory"):
            mmzoo.encoders.load_keras_hub_backbone(3)

    def test_image_vqa_on_a_resnet_preset(self):
        # Image VQA: a video QA model whose video tower is an image tower.
        preset = self._preset("resnet")
        question = ["is there a circle", "is there a red square"]
        model = mmzoo.models.build_video_qa_model(
            mmzoo.encoders.build_keras_hub_image_tower(preset),
            mmzoo.presets.build_from_preset("text_encoder_tiny", vocabulary_size=len(VOCABULARY)),
            answer_vocabulary=["yes", "no"], num_fusion_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
            preprocessor=mmzoo.models.VideoQAPreprocessor(mmzoo.data.TextTokenizer(VOCABULARY)),
        )
        answers = model.answer(_pixels(), question)
        self.assertEqual(len(answers), 2)
        path = os.path.join(self.get_temp_dir(), "image_vqa.keras")
        model.save(path)
        self.assertEqual(keras.saving.load_model(path, safe_mode=True).answer(_pixels(), question),
                         answers)

    def test_per_frame_video_tower(self):
        tower = mmzoo.encoders.build_keras_hub_image_tower(self._preset("dinov2"))
        video = mmzoo.encoders.build_frame_video_encoder(
            tower, num_frames=3, num_layers=1, num_heads=2, intermediate_dim=32
        )
        clips = np.random.default_rng(0).uniform(size=(2, 3, 32, 32, 3)).astype("float32")
        outputs = video(clips)
        self.assertEqual(tuple(outputs["pooled_output"].shape), (2, 32))
        # Each frame went through the preset's tower (class token, normalised).
        self.assertEqual(tuple(outputs["sequence_output"].shape), (2, 3, 32))


TEXTS = ["a red circle", "a blue square above a green circle", "is there a circle"]


def save_text_preset(directory, kind):
    return keras_hub_presets.save_text_preset(directory, kind, texts=TEXTS)


class KerasHubTextPresetTowerTest(TestCase):
    """BERT, DistilBERT and RoBERTa presets, with their own tokenizers, as mmzoo towers."""

    def test_towers_equal_the_backbones(self):
        for kind in keras_hub_presets.TEXT_PRESET_KINDS:
            with self.subTest(kind=kind):
                preset = save_text_preset(os.path.join(self.get_temp_dir(), kind), kind)
                tower = mmzoo.encoders.build_keras_hub_text_tower(preset, sequence_length=12)
                backbone, _ = mmzoo.encoders.load_keras_hub_backbone(preset)
                tokenizer = keras_hub.models.Tokenizer.from_preset(preset)
                # The family preprocessor packs with the tokenizer's own
                # special tokens: [CLS] ... [SEP] or <s> ... </s>, then padding.
                preprocessor = mmzoo.models.FusionClassifierPreprocessor(
                    tokenizer, image_converter=(32, 32), sequence_length=12,
                    class_names=["no", "yes"],
                )
                x = dict(preprocessor({"texts": TEXTS[:2]}))
                # A model whose tower takes them makes its preprocessor give
                # `segment_ids` (zeros); alone, it does not.
                x["segment_ids"] = keras.ops.zeros_like(x["token_ids"])
                self.assertEqual(int(x["token_ids"][0, 0]), tokenizer.start_token_id
                                 if kind == "roberta" else tokenizer.cls_token_id)
                self.assertEqual(sorted(tower.input), sorted(
                    ["token_ids", "padding_mask"] + (["segment_ids"] if kind == "bert" else [])
                ))
                inputs = {key: x[key] for key in tower.input}
                outputs = tower(inputs)
                expected = backbone({key: x[key] for key in backbone.input})
                if kind == "bert":
                    self.assertAllClose(outputs["pooled_output"], expected["pooled_output"])
                    expected = expected["sequence_output"]
                else:  # the first token, <s> / [CLS]
                    self.assertAllClose(outputs["pooled_output"], expected[:, 0])
                self.assertAllClose(outputs["sequence_output"], expected)

    def test_fusion_classifier_with_a_bert_preset_saves_and_loads(self):
        preset = save_text_preset(os.path.join(self.get_temp_dir(), "bert"), "bert")
        model = mmzoo.models.build_fusion_classifier(
            {
                "image": mmzoo.encoders.build_keras_hub_image_tower(
                    save_image_preset(os.path.join(self.get_temp_dir(), "vit"), "vit")
                ),
                "text": mmzoo.encoders.build_keras_hub_text_tower(preset, 12),
            },
            num_classes=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
            preprocessor=mmzoo.models.FusionClassifierPreprocessor(
                keras_hub.models.Tokenizer.from_preset(preset), image_converter=(32, 32),
                class_names=["no", "yes"],
            ),
        )
        examples = {"images": _pixels(), "texts": np.array(TEXTS[:2])}
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True),
                      run_eagerly=True)
        model.fit(model.preprocessor(examples), np.array([0, 1]), epochs=1, verbose=0)
        predictions = model.predict_classes(examples["images"], TEXTS[:2])
        path = os.path.join(self.get_temp_dir(), "fusion.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        self.assertEqual(loaded.predict_classes(examples["images"], TEXTS[:2]), predictions)

    def test_video_qa_question_tower_from_a_roberta_preset(self):
        preset = save_text_preset(os.path.join(self.get_temp_dir(), "roberta"), "roberta")
        frames = mmzoo.encoders.build_frame_video_encoder(
            mmzoo.encoders.build_keras_hub_image_tower(
                save_image_preset(os.path.join(self.get_temp_dir(), "dinov2"), "dinov2")
            ),
            num_frames=2, num_layers=1, num_heads=2, intermediate_dim=32,
        )
        model = mmzoo.models.build_video_qa_model(
            frames, mmzoo.encoders.build_keras_hub_text_tower(preset, 12),
            answer_vocabulary=["yes", "no"], num_fusion_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
            preprocessor=mmzoo.models.VideoQAPreprocessor(
                keras_hub.models.Tokenizer.from_preset(preset)
            ),
        )
        videos = np.random.default_rng(0).uniform(size=(2, 2, 32, 32, 3)).astype("float32")
        answers = model.answer(videos, ["is there a circle", "is there a red square"])
        path = os.path.join(self.get_temp_dir(), "video_qa.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        self.assertEqual(loaded.answer(videos, ["is there a circle", "is there a red square"]),
                         answers)
        self.assertEqual(loaded.preprocessor.question_length, 12)

    def test_bad_text_backbones(self):
        vit = save_image_preset(os.path.join(self.get_temp_dir(), "vit"), "vit")
        with self.assertRaisesRegex(ValueError, "taking `token_ids`.*a ViTBackbone"):
            mmzoo.encoders.build_keras_hub_text_tower(vit, 12)
        bert = save_text_preset(os.path.join(self.get_temp_dir(), "bert"), "bert")
        with self.assertRaisesRegex(ValueError, r"position embeddings \(24\).*=25"):
            mmzoo.encoders.build_keras_hub_text_tower(bert, 25)
        tower = mmzoo.encoders.build_keras_hub_text_tower(bert, 12, trainable=False)
        self.assertEqual(tower.trainable_weights, [])


def _clips(seed=0):
    return np.random.default_rng(seed).uniform(size=(2, 2, 16, 16, 3)).astype("float32")


def _converted(converter, clips):
    """keras-hub's converter (images only) on every frame of [0, 1] clips."""
    frames = converter(clips.reshape((-1,) + clips.shape[2:]) * 255.0)
    return keras.ops.reshape(frames, clips.shape)


class KerasHubVideoPrismTowerTest(TestCase):
    """VideoPrism presets (video-only and video-text) as video and text towers."""

    def test_video_only_tower_equals_the_backbone(self):
        preset = keras_hub_presets.save_video_preset(os.path.join(self.get_temp_dir(), "v"))
        tower = mmzoo.encoders.build_keras_hub_video_tower(preset)
        self.assertEqual(tuple(tower.input_shape), (None, 2, 16, 16, 3))
        outputs = tower(_clips())
        backbone, converter = mmzoo.encoders.load_keras_hub_backbone(preset)
        features = keras.ops.convert_to_numpy(backbone(_converted(converter, _clips())))
        self.assertEqual(features.shape, (2, 2, 4, 16))  # (batch, frames, patches, dim)
        self.assertAllClose(outputs["sequence_output"], features.reshape(2, 8, 16), atol=1e-5)
        self.assertAllClose(outputs["pooled_output"], features.reshape(2, 8, 16).mean(1),
                            atol=1e-5)
        with self.assertRaisesRegex(ValueError, "no text encoder"):
            mmzoo.encoders.build_keras_hub_text_tower(backbone, 8)

    def test_video_text_towers_equal_the_backbone(self):
        texts = ["a red circle moves left", "a blue square moves up"]
        preset = keras_hub_presets.save_video_preset(
            os.path.join(self.get_temp_dir(), "lvt"), with_text=True, texts=texts
        )
        video_tower = mmzoo.encoders.build_keras_hub_video_tower(preset)
        text_tower = mmzoo.encoders.build_keras_hub_text_tower(preset, 32)
        tokenizer = keras_hub.models.Tokenizer.from_preset(preset)
        # VideoPrism's tokenizer declares no end or padding token (its texts
        # are padded with 0 and end in the model's class token), so mmzoo's
        # preprocessors cannot pack it: token ids are given here.
        with self.assertRaisesRegex(ValueError, "VideoPrismTokenizer with start=None"):
            mmzoo.models.DualEncoderPreprocessor(tokenizer)
        pieces = [list(map(int, ids)) for ids in tokenizer(texts)]
        self.assertLess(max(map(len, pieces)), 32)
        token_ids = np.array([ids + [0] * (32 - len(ids)) for ids in pieces], "int32")
        padding_mask = np.array([[i < len(ids) for i in range(32)] for ids in pieces])
        backbone, converter = mmzoo.encoders.load_keras_hub_backbone(preset)
        expected = backbone({
            "pixel_values": _converted(converter, _clips()),
            "token_ids": keras.ops.convert_to_tensor(token_ids),
            "padding_mask": keras.ops.convert_to_tensor(padding_mask.astype("int32")),
        })
        self.assertAllClose(video_tower(_clips())["pooled_output"],
                            expected["vision_embeddings"], atol=1e-5)
        texts_out = text_tower({"token_ids": token_ids, "padding_mask": padding_mask})
        self.assertAllClose(texts_out["pooled_output"], expected["text_embeddings"], atol=1e-5)
        path = os.path.join(self.get_temp_dir(), "text_tower.keras")
        text_tower.save(path)
        self.assertAllClose(
            keras.saving.load_model(path, safe_mode=True)(
                {"token_ids": token_ids, "padding_mask": padding_mask})["pooled_output"],
            texts_out["pooled_output"],
        )

    def test_video_text_dual_encoder_on_a_video_prism_tower(self):
        preset = keras_hub_presets.save_video_preset(os.path.join(self.get_temp_dir(), "v"))
        model = mmzoo.models.build_dual_encoder(
            mmzoo.encoders.build_keras_hub_video_tower(preset),
            mmzoo.presets.build_from_preset("text_encoder_tiny", vocabulary_size=len(VOCABULARY)),
            projection_dim=8,
            preprocessor=mmzoo.models.DualEncoderPreprocessor(mmzoo.data.TextTokenizer(VOCABULARY)),
        )
        self.assertEqual(tuple(model.preprocessor.video_converter.image_shape), (16, 16, 3))
        videos = model.encode_images(_clips())
        texts = model.encode_text(["a red circle", "a circle"])
        self.assertEqual(tuple(model.pair_logits(videos, texts).shape), (2, 2))
        path = os.path.join(self.get_temp_dir(), "video_text.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        self.assertAllClose(loaded.encode_images(_clips()), videos)

    def test_video_qa_on_a_video_prism_tower(self):
        preset = keras_hub_presets.save_video_preset(os.path.join(self.get_temp_dir(), "v"))
        question = save_text_preset(os.path.join(self.get_temp_dir(), "bert"), "bert")
        model = mmzoo.models.build_video_qa_model(
            mmzoo.encoders.build_keras_hub_video_tower(preset),
            mmzoo.encoders.build_keras_hub_text_tower(question, 12),
            answer_vocabulary=["yes", "no"], num_fusion_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
            preprocessor=mmzoo.models.VideoQAPreprocessor(
                keras_hub.models.Tokenizer.from_preset(question)
            ),
        )
        answers = model.answer(_clips(), ["is there a circle", "is there a red square"])
        path = os.path.join(self.get_temp_dir(), "video_qa.keras")
        model.save(path)
        self.assertEqual(
            keras.saving.load_model(path, safe_mode=True).answer(
                _clips(), ["is there a circle", "is there a red square"]),
            answers,
        )

    def test_bad_video_backbones(self):
        with self.assertRaisesRegex(ValueError, "VideoPrismBackbone or preset.*ViTBackbone"):
            mmzoo.encoders.build_keras_hub_video_tower(
                save_image_preset(os.path.join(self.get_temp_dir(), "vit"), "vit")
            )
        backbone, _ = mmzoo.encoders.load_keras_hub_backbone(
            keras_hub_presets.save_video_preset(os.path.join(self.get_temp_dir(), "v"))
        )
        with self.assertRaisesRegex(ValueError, r"image_size \(32, 32\).*\(16, 16, 3\)"):
            mmzoo.encoders.build_keras_hub_video_tower(
                backbone, keras_hub.layers.VideoPrismImageConverter(image_size=(32, 32))
            )
        frozen = mmzoo.encoders.build_keras_hub_video_tower(backbone, trainable=False)
        self.assertEqual(frozen.trainable_weights, [])
