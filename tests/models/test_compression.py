import os
import warnings

import h5py
import keras
import numpy as np
import tensorflow as tf

from mmzoo import presets
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.losses import MaskedSequenceCrossEntropy
from mmzoo.models import build_image_captioning_model
from mmzoo.models import teacher_forcing_split
from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import get_strategy

FAMILIES = ("image_captioning_tiny", "dual_encoder_tiny", "video_qa_tiny", "fusion_classifier_tiny")


def build(preset="image_captioning_tiny", seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return presets.build_from_preset(preset, **kwargs)


def small_captioner(seed=0):
    """A captioner smaller than the tiny preset, for the tests that compile steps."""
    keras.utils.set_random_seed(seed)
    encoder = build_vit_image_encoder(
        image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32,
    )
    return build_image_captioning_model(
        encoder, vocabulary_size=12, sequence_length=6, num_layers=1, num_heads=2,
        hidden_dim=8, intermediate_dim=16, dropout_rate=0.0,
    )


def example_inputs(model, batch=2, seed=0):
    """Random inputs for every model input: pixels in [0, 1], token ids, true masks."""
    rng = np.random.RandomState(seed)
    inputs = {}
    for name, tensor in model.input.items():
        shape = (batch,) + tuple(tensor.shape[1:])
        if tensor.dtype == "bool":
            inputs[name] = np.ones(shape, bool)
        elif "int" in tensor.dtype:
            inputs[name] = rng.randint(4, 10, shape).astype(tensor.dtype)
        else:
            inputs[name] = rng.rand(*shape).astype(tensor.dtype)
    return inputs


def perturb_adapters(model, seed=1):
    """Non-zero B factors, so that the adapters change the outputs."""
    rng = np.random.RandomState(seed)
    for layer in model.lora_layers():
        layer.lora_kernel_b.assign(rng.normal(0, 0.1, layer.lora_kernel_b.shape).astype("float32"))


def caption_dataset(model, batch=4, seed=0):
    """Captions one token longer than the model's, for `teacher_forcing_split`."""
    rng = np.random.RandomState(seed)
    length = model.sequence_length + 1
    data = {
        "images": rng.rand(8, *model.image_shape).astype("float32"),
        "token_ids": rng.randint(4, 10, (8, length)).astype("int32"),
        "padding_mask": np.ones((8, length), bool),
    }
    return (
        tf.data.Dataset.from_tensor_slices(data).repeat().batch(batch, drop_remainder=True)
        .map(teacher_forcing_split)
    )


def base_weights(model):
    adapters = {id(v) for layer in model.lora_layers() for v in (layer.lora_kernel_a, layer.lora_kernel_b)}
    return [v.numpy() for v in model.weights if id(v) not in adapters]


def outputs(model, inputs):
    return keras.tree.map_structure(np.asarray, model(inputs, training=False))


class LoRATest(TestCase):
    def test_parts_of_every_family(self):
        self.assertEqual(build().lora_parts, ("image_encoder", "image_projection", "text_decoder"))
        self.assertEqual(
            build("dual_encoder_tiny").lora_parts,
            ("image_encoder", "text_encoder", "image_projection", "text_projection", "head"),
        )
        self.assertEqual(build("video_qa_tiny").lora_parts[:3],
                         ("video_encoder", "question_encoder", "video_question_fusion"))
        self.assertEqual(build("fusion_classifier_tiny").lora_parts[:4],
                         ("image_encoder", "text_encoder", "image_projection", "text_projection"))

    def test_enable_lora_keeps_outputs_and_trains_only_adapters(self):
        model = build()
        inputs = example_inputs(model)
        before = outputs(model, inputs)
        report = model.enable_lora(4, parts=["text_decoder"])
        self.assertAllClose(before, outputs(model, inputs), atol=0, rtol=0)  # B starts at zero
        # Only the decoder's projections: 2 blocks x (4 self + 4 cross attention + 2 MLP) + logits.
        self.assertEqual(report["layers"], 21)
        self.assertEqual(len(model.trainable_weights), 2 * 21)
        self.assertTrue(all("lora_kernel" in v.path for v in model.trainable_weights))
        self.assertEqual(report["trainable_parameters"],
                         sum(int(np.prod(v.shape)) for v in model.trainable_weights))
        self.assertLess(report["trainable_fraction"], 0.25)
        self.assertEqual(model.lora_rank, 4)

        frozen = base_weights(model)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=MaskedSequenceCrossEntropy(),
                      jit_compile=True)
        history = model.fit(caption_dataset(model), steps_per_epoch=8, epochs=2, verbose=0,
                            shuffle=False)
        self.assertLess(history.history["loss"][-1], history.history["loss"][0])
        for old, new in zip(frozen, base_weights(model)):
            self.assertAllEqual(old, new)  # bit-identical base
        self.assertGreater(
            max(np.abs(layer.lora_kernel_b.numpy()).max() for layer in model.lora_layers()), 0
        )

    def test_trainer_under_mirrored_strategy_with_xla_resumes_exactly(self):
        def model_fn():
            model = small_captioner()
            model.enable_lora(4)
            return model

        def trainer(model_dir):
            return Trainer(
                model_fn=model_fn, loss=MaskedSequenceCrossEntropy(),
                optimizer=keras.optimizers.AdamW(1e-2), strategy=get_strategy("mirrored"),
                model_dir=model_dir, jit_compile=True,
            )

        root = self.get_temp_dir()
        uninterrupted = trainer(os.path.join(root, "a"))
        uninterrupted.fit(caption_dataset(uninterrupted.model), steps=6, verbose=0)
        first = trainer(os.path.join(root, "b"))
        first.fit(caption_dataset(first.model), steps=3, checkpoint_every=3, verbose=0)
        resumed = trainer(os.path.join(root, "b"))
        resumed.fit(caption_dataset(resumed.model), steps=6, verbose=0)
        self.assertEqual(resumed.step, 6)
        self.assertAllCloseNested([v.numpy() for v in uninterrupted.model.weights],
                                  [v.numpy() for v in resumed.model.weights], atol=0, rtol=0)
        for old, new in zip(base_weights(small_captioner()), base_weights(resumed.model)):
            self.assertAllEqual(old, new)

    def test_merged_model_equals_the_lora_model_for_every_family(self):
        for preset in FAMILIES:
            with self.subTest(preset):
                model = build(preset)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a 2-class output stays frozen
                    model.enable_lora(2)
                perturb_adapters(model)
                inputs = example_inputs(model)
                expected = outputs(model, inputs)
                merged = model.merge_lora()
                self.assertIsInstance(merged, type(model))
                self.assertIsNone(merged.lora_rank)
                self.assertFalse(any("lora" in v.path for v in merged.weights))
                self.assertAllCloseNested(expected, outputs(merged, inputs), atol=1e-5, rtol=1e-5)
                self.assertEqual(model.lora_rank, 2)  # the LoRA model is unchanged
                self.assertAllCloseNested(expected, outputs(model, inputs), atol=0, rtol=0)

    def test_merged_model_keeps_what_was_frozen_before(self):
        model = small_captioner()
        model.image_encoder.trainable = False  # a frozen tower, as LiT
        trainable_before = len(model.trainable_weights)
        model.enable_lora(2, parts="text_decoder")
        merged = model.merge_lora()
        self.assertEqual(len(merged.trainable_weights), trainable_before)
        self.assertFalse(merged.image_encoder.trainable)
        self.assertTrue(merged.text_decoder.trainable)

    def test_adapter_file_loads_onto_its_base_model(self):
        directory = self.get_temp_dir()
        base_path = os.path.join(directory, "base.keras")
        build("dual_encoder_tiny").save(base_path)
        tuned = keras.saving.load_model(base_path)
        tuned.enable_lora(4, parts=["text_encoder", "text_projection"])
        perturb_adapters(tuned)
        path = tuned.save_lora_weights(os.path.join(directory, "style.lora.h5"))
        # Adapters only: a small fraction of the model's weights.
        self.assertLess(os.path.getsize(path), os.path.getsize(base_path) / 2)

        base = keras.saving.load_model(base_path)
        base.load_lora_weights(path)
        self.assertEqual(base.lora_rank, 4)
        inputs = example_inputs(base)
        self.assertAllCloseNested(outputs(tuned, inputs), outputs(base, inputs), atol=0, rtol=0)
        # Onto a model that already has the same LoRA: values are replaced.
        again = keras.saving.load_model(base_path)
        again.enable_lora(4, parts=["text_encoder", "text_projection"])
        again.load_lora_weights(path)
        self.assertAllCloseNested(outputs(tuned, inputs), outputs(again, inputs), atol=0, rtol=0)

        # Another base (other weights, or the merged model) is refused.
        other = build("dual_encoder_tiny", seed=1)
        with self.assertRaisesRegex(ValueError, "another base model.*style.lora.h5"):
            other.load_lora_weights(path)
        with self.assertRaisesRegex(ValueError, "another base model"):
            tuned.merge_lora().load_lora_weights(path)
        self.assertIsNone(other.lora_rank)
        with self.assertRaisesRegex(ValueError, "written for a DualEncoder, not a ImageCaptioningModel"):
            build().load_lora_weights(path)
        different = keras.saving.load_model(base_path)
        different.enable_lora(2, parts=["text_encoder", "text_projection"])
        with self.assertRaisesRegex(ValueError, r"differ from the file's \(4, 4.0"):
            different.load_lora_weights(path)

    def test_functions_traced_before_see_the_adapters(self):
        model = build("dual_encoder_tiny")
        texts = example_inputs(model)  # token ids and padding masks
        before = model.encode_text(texts)  # traced on the plain layers
        model.enable_lora(4)
        perturb_adapters(model)
        self.assertNotAllClose(before, model.encode_text(texts))
        self.assertAllClose(model.merge_lora().encode_text(texts), model.encode_text(texts),
                            atol=1e-5)

    def test_adapter_file_writes(self):
        directory = self.get_temp_dir()
        model = build("dual_encoder_tiny")
        with self.assertRaisesRegex(ValueError, "no LoRA adapters to save"):
            model.save_lora_weights(os.path.join(directory, "a.lora.h5"))
        with self.assertRaisesRegex(ValueError, "no LoRA adapters to merge"):
            model.merge_lora()
        model.enable_lora(2, parts="text_encoder")
        with self.assertRaisesRegex(ValueError, r"must end in `.lora.h5`.*'a.h5'"):
            model.save_lora_weights("a.h5")
        other = os.path.join(directory, "notes.lora.h5")
        with open(other, "w") as f:
            f.write("my notes")
        with self.assertRaisesRegex(ValueError, "not an mmzoo LoRA file; choose another path"):
            model.save_lora_weights(other)
        with self.assertRaisesRegex(ValueError, "is not an mmzoo LoRA file"):
            model.load_lora_weights(other)
        path = os.path.join(directory, "a.lora.h5")
        model.save_lora_weights(path)
        model.save_lora_weights(path)  # an earlier LoRA file is replaced
        self.assertEqual(sorted(os.listdir(directory)), ["a.lora.h5", "notes.lora.h5"])
        with h5py.File(path, "r") as f:
            self.assertEqual(len(f.keys()), len(model.lora_layers()))

    def test_bad_arguments(self):
        model = build()
        for rank in (0, -1, 2.0, "8", True, None):
            with self.assertRaisesRegex(ValueError, f"rank` must be an int >= 1. Received: rank={rank!r}"):
                model.enable_lora(rank)
        for alpha in (0, -1.0, "big"):
            with self.assertRaisesRegex(ValueError, "alpha"):
                model.enable_lora(2, alpha=alpha)
        with self.assertRaisesRegex(ValueError, r"image_encoder, image_projection, text_decoder. "
                                                r"Received: parts=\['decoder'\]"):
            model.enable_lora(2, parts=["decoder"])
        with self.assertRaisesRegex(ValueError, "allows rank 32. Received: rank=33"):
            model.enable_lora(33, parts="image_projection")
        self.assertIsNone(model.lora_rank)  # refused calls change nothing
        self.assertEqual(len(model.trainable_weights), len(build().trainable_weights))
        model.enable_lora(2)
        with self.assertRaisesRegex(ValueError, "already enabled.*rank 2"):
            model.enable_lora(2)
        fusion = build("fusion_classifier_tiny")
        with self.assertRaisesRegex(ValueError, "No Dense or EinsumDense layer.*'image_encoder'"):
            fusion.enable_lora(2, parts="image_encoder")  # a convolutional tower
        with self.assertWarnsRegex(UserWarning, r"stay frozen without LoRA: fused_head.*\(32, 2\)"):
            fusion.enable_lora(4)
        self.assertNotIn("classifier_head/output_dense", [x.path for x in fusion.lora_layers()])
        self.assertIn("classifier_head/hidden_dense", [x.path for x in fusion.lora_layers()])
        # Its adapters load onto its base, which leaves the same layer out.
        path = fusion.save_lora_weights(os.path.join(self.get_temp_dir(), "f.lora.h5"))
        base = build("fusion_classifier_tiny")
        with self.assertWarnsRegex(UserWarning, "stay frozen without LoRA"):
            base.load_lora_weights(path)
        self.assertEqual(len(base.lora_layers()), len(fusion.lora_layers()))
        momentum = build("dual_encoder_tiny", momentum=0.99)
        with self.assertRaisesRegex(ValueError, "momentum encoder"):
            momentum.enable_lora(2)


class QuantizationTest(TestCase):
    def test_quantized_models_save_and_load_for_every_family(self):
        # int4 goes through the same Dense / EinsumDense / Embedding code in
        # every family; the captioner has all three.
        cases = [(preset, "int8") for preset in FAMILIES] + [("image_captioning_tiny", "int4")]
        for preset, mode in cases:
            with self.subTest(preset=preset, mode=mode):
                model = build(preset)
                inputs = example_inputs(model)
                full = outputs(model, inputs)
                model.quantize(mode)
                self.assertEqual(model.weight_quantization, mode)
                # The weights are rounded, so the outputs move.
                quantized = outputs(model, inputs)
                self.assertFalse(all(np.array_equal(a, b) for a, b in zip(
                    keras.tree.flatten(full), keras.tree.flatten(quantized))))
                self.assertNotEmpty([v for v in model.weights if v.dtype == "int8"])
                restored = self.run_model_saving_test(model, inputs, atol=0, rtol=0)
                self.assertEqual(restored.weight_quantization, mode)
                saved = restored.get_config()["quantization"]
                self.assertEqual((saved["mode"], saved["layers"]),
                                 (mode, model.get_config()["quantization"]["layers"]))

    def test_quantized_captioner_generates_like_before_saving(self):
        model = small_captioner()
        model.quantize("int8")
        images = example_inputs(model)["images"]
        path = os.path.join(self.get_temp_dir(), "int8.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
        for method in ("greedy", "beam"):
            self.assertAllEqual(model.generate(images, method=method, num_beams=2),
                                restored.generate(images, method=method, num_beams=2))

    def test_functions_traced_before_see_the_quantized_weights(self):
        used = build("dual_encoder_tiny")
        texts = example_inputs(used)
        used.encode_text(texts)  # traced on the float kernels
        used.quantize("int8")
        fresh = build("dual_encoder_tiny")
        fresh.quantize("int8")
        self.assertAllClose(fresh.encode_text(texts), used.encode_text(texts), atol=0, rtol=0)
        captioner = small_captioner()
        images = example_inputs(captioner)["images"]
        captioner.generate(images)  # traced on the float kernels
        captioner.quantize("int4")
        restored = self.run_model_saving_test(captioner, example_inputs(captioner))
        self.assertAllEqual(restored.generate(images), captioner.generate(images))
        self.assertEqual(captioner.generate_trace_count, 2)  # traced again after quantize

    def test_filters_choose_layers(self):
        model = build()
        model.quantize("int8", filters=["query", "value"])
        self.assertEqual(len(model._quantization["layers"]), 4 + 8)  # encoder 2x2, decoder 2x2x2
        restored = self.run_model_saving_test(model, example_inputs(model), atol=0, rtol=0)
        self.assertEqual(sum(v.dtype == "int8" for v in restored.weights),
                         sum(v.dtype == "int8" for v in model.weights))

    def test_bad_arguments(self):
        model = build()
        for mode in ("float8",):
            with self.assertRaisesRegex(ValueError, f"`mode` must be one of .*Received: mode={mode!r}"):
                model.quantize(mode)
        with self.assertRaisesRegex(ValueError, "Received: mode=int2"):  # Keras' own check
            model.quantize("int2")
        with self.assertRaisesRegex(ValueError, "GPTQConfig"):  # ditto
            model.quantize("gptq")
        with self.assertRaisesRegex(ValueError, "selects none.*'no_such_layer'"):
            model.quantize("int8", filters="no_such_layer")
        self.assertIsNone(model.weight_quantization)
        model.quantize("int8")
        with self.assertRaisesRegex(ValueError, r"already quantized \(int8\).*mode='int4'"):
            model.quantize("int4")
        lora = build()
        lora.enable_lora(2)
        with self.assertRaisesRegex(ValueError, "merge them first"):
            lora.quantize("int8")
