"""The layers, encoders and models are written in keras.ops, so they also run on JAX.

The backend is fixed per process, so the checks run in one subprocess with
`KERAS_BACKEND=jax`; skipped when jax is not installed.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mmzoo.testing import TestCase

SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import mmzoo
    from mmzoo import layers, presets

    rng = np.random.RandomState(0)
    shapes = {}
    x3 = rng.randn(2, 5, 8).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1] * 5], bool)
    calls = {
        "PatchEmbedding": (layers.PatchEmbedding(4, 8), (rng.rand(2, 8, 8, 3),), {}),
        "TubeletEmbedding": (layers.TubeletEmbedding((2, 4, 4), 8), (rng.rand(2, 4, 8, 8, 3),), {}),
        "AttentionPooling": (layers.AttentionPooling(2), (x3,), {"padding_mask": mask}),
        "ProjectionHead": (layers.ProjectionHead(4, intermediate_dim=16), (x3[:, 0],), {}),
        "ContrastiveHead": (layers.ContrastiveHead(use_bias=True), (x3[:, 0], x3[:, 1]), {}),
        "CrossModalFusionBlock": (
            layers.CrossModalFusionBlock(2, 16), (x3, rng.randn(2, 3, 6)),
            {"padding_mask": mask, "context_padding_mask": np.ones((2, 3), bool)},
        ),
        "FactorisedAttentionBlock": (layers.FactorisedAttentionBlock(2, 16), (rng.randn(2, 2, 4, 8),), {}),
    }
    for name, (layer, args, kwargs) in calls.items():
        args = tuple(np.asarray(a, "float32") for a in args)
        out = layer(*args, **kwargs)
        assert np.all(np.isfinite(np.asarray(out))), name
        shapes[name] = list(out.shape)
    inputs = {
        "vit_image_encoder_tiny": rng.rand(2, 32, 32, 3),
        "cnn_image_encoder_tiny": rng.rand(2, 32, 32, 3),
        "video_encoder_tiny": rng.rand(2, 8, 32, 32, 3),
        "frame_video_encoder_tiny": rng.rand(2, 8, 32, 32, 3),
    }
    for name, x in inputs.items():
        out = presets.build_from_preset(name)(x.astype("float32"))
        shapes[name] = list(out["sequence_output"].shape)
    out = presets.build_from_preset("text_encoder_tiny")(
        {"token_ids": rng.randint(0, 512, (2, 16)).astype("int32"),
         "padding_mask": np.ones((2, 16), bool)})
    shapes["text_encoder_tiny"] = list(out["sequence_output"].shape)
    print("SHAPES=" + json.dumps(shapes))
    """
)


FAMILIES_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import mmzoo
    from mmzoo import presets

    rng = np.random.RandomState(0)

    def tokens(length):
        return {"token_ids": rng.randint(4, 512, (4, length)).astype("int32"),
                "padding_mask": np.ones((4, length), bool)}

    text = tokens(16)
    images = rng.rand(4, 32, 32, 3).astype("float32")
    videos = rng.rand(4, 8, 32, 32, 3).astype("float32")
    results = {}

    # Each family's tiny preset trains one step with its loss on JAX; the
    # dual encoder two, with a momentum encoder and a queue (state updated
    # inside the forward pass).
    dual = presets.build_from_preset("dual_encoder_tiny", momentum=0.9, queue_size=4)
    dual.compile(optimizer="adam", loss=mmzoo.losses.CLIPLoss())
    dual_text = tokens(dual.text_encoder.input["token_ids"].shape[1])  # 32 tokens
    copy_before = np.array(dual.momentum_projections[0].weights[0].numpy())
    history = dual.fit({"images": np.concatenate([images, images[::-1]]),
                        **{k: np.concatenate([v, v]) for k, v in dual_text.items()}},
                       epochs=1, batch_size=4, verbose=0, shuffle=False)
    results["dual_encoder_loss"] = float(history.history["loss"][-1])
    results["dual_encoder_queue"] = [int(dual.feature_queue.filled.numpy()),
                                     int(dual.feature_queue.position.numpy())]
    results["dual_encoder_copy_moved"] = bool(np.any(
        dual.momentum_projections[0].weights[0].numpy() != copy_before))
    results["dual_encoder_embeddings"] = list(dual.encode_images(images).shape)

    fusion = presets.build_from_preset("fusion_classifier_tiny")
    fusion.compile(optimizer="adam",
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    fusion_images = rng.rand(4, 64, 64, 3).astype("float32")  # its CNN tower's size
    history = fusion.fit({"images": fusion_images, **text}, np.array([0, 1, 0, 1]), verbose=0)
    results["fusion_classifier_loss"] = float(history.history["loss"][-1])

    video_qa = presets.build_from_preset("video_qa_tiny")
    video_qa.compile(optimizer="adam", loss=mmzoo.losses.SoftTargetCrossEntropy())
    x = {"videos": videos, "question_token_ids": text["token_ids"],
         "question_padding_mask": text["padding_mask"]}
    history = video_qa.fit(x, np.array([0, 1, 2, 3]), verbose=0)
    results["video_qa_loss"] = float(history.history["loss"][-1])
    results["video_qa_logits"] = list(video_qa.predict(x, verbose=0).shape)
    results["video_qa_answers"] = len(video_qa.answer(videos, x))
    # Answers written token by token, by concat fusion and beam search.
    answer_tokens = ["[PAD]", "[UNK]", "[START]", "[END]", "red", "left"]
    generator = presets.build_from_preset(
        "video_qa_tiny", fusion="concat", answer_mode="generate",
        answer_vocabulary=answer_tokens, answer_sequence_length=3)
    results["video_qa_generate"] = list(
        np.asarray(generator.generate(videos[:2], {k: v[:2] for k, v in x.items()},
                                      method="beam", num_beams=2)).shape
    )

    captioner = presets.build_from_preset("image_captioning_tiny", vocabulary_size=64)
    tokens = rng.randint(4, 64, (4, 24)).astype("int32")
    logits = captioner({"images": images, "token_ids": tokens,
                        "padding_mask": np.ones((4, 24), bool)})
    results["image_captioning_logits"] = list(logits.shape)
    results["image_captioning_generate"] = list(
        np.asarray(captioner.generate(images[:2], max_length=6, method="beam", num_beams=2)).shape
    )
    print("RESULTS=" + json.dumps(results))
    """
)


def run_on_jax(*scripts):
    """Runs `scripts` one after the other in one process on the JAX backend.

    Returns the JSON values the scripts print as `NAME=<json>` lines.
    """
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", "\n".join(scripts)], env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    values = {}
    for line in proc.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.isupper():
            values[name] = json.loads(value)
    return values


# The models on a machine with JAX and no TensorFlow: any import of
# tensorflow, tensorflow_text or tensorflow_datasets fails, as it would there.
WITHOUT_TENSORFLOW_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    class NoTensorFlow:
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("tensorflow", "tensorflow_text", "tensorflow_datasets"):
                raise ImportError(f"No module named {name!r}")

    sys.meta_path.insert(0, NoTensorFlow())
    import numpy as np
    import mmzoo

    rng = np.random.RandomState(0)
    dual = mmzoo.presets.build_from_preset("dual_encoder_tiny")
    dual.compile(optimizer="adamw", loss=mmzoo.losses.CLIPLoss(), jit_compile=True)
    x = {"images": rng.rand(4, 32, 32, 3).astype("float32"),
         "token_ids": rng.randint(4, 100, (4, 32)).astype("int32"),
         "padding_mask": np.ones((4, 32), "int32")}
    loss = float(dual.train_on_batch(x, np.zeros(4)))
    captioner = mmzoo.presets.build_from_preset("image_captioning_tiny")
    tokens = captioner.generate(rng.rand(2, 32, 32, 3).astype("float32"), max_length=4,
                                method="beam", num_beams=2)
    print("RESULTS=" + json.dumps({
        "loss": loss, "generate": list(tokens.shape),
        "tensorflow_imported": any(m.split(".")[0] == "tensorflow" for m in sys.modules),
    }))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
class JaxBackendTest(TestCase):
    def test_models_build_train_and_generate_without_tensorflow(self):
        results = run_on_jax(WITHOUT_TENSORFLOW_SCRIPT)["RESULTS"]
        self.assertFalse(results["tensorflow_imported"])
        self.assertTrue(np.isfinite(results["loss"]) and results["loss"] > 0, results)
        self.assertEqual(results["generate"], [2, 4])

    # One process for both checks: starting one on JAX takes several seconds.
    def test_layers_encoders_and_model_families_run_on_jax(self):
        values = run_on_jax(SCRIPT, FAMILIES_SCRIPT)
        self.assertEqual(
            values["SHAPES"],
            {
                "PatchEmbedding": [2, 4, 8],
                "TubeletEmbedding": [2, 2, 4, 8],
                "AttentionPooling": [2, 8],
                "ProjectionHead": [2, 4],
                "ContrastiveHead": [2, 2],
                "CrossModalFusionBlock": [2, 5, 8],
                "FactorisedAttentionBlock": [2, 2, 4, 8],
                "vit_image_encoder_tiny": [2, 16, 32],
                "cnn_image_encoder_tiny": [2, 16, 64],
                "video_encoder_tiny": [2, 64, 32],
                "frame_video_encoder_tiny": [2, 8, 32],
                "text_encoder_tiny": [2, 16, 32],
            },
        )
        results = values["RESULTS"]
        for key in ("dual_encoder_loss", "fusion_classifier_loss", "video_qa_loss"):
            self.assertTrue(np.isfinite(results[key]) and results[key] > 0, (key, results[key]))
        self.assertEqual(results["dual_encoder_embeddings"], [4, 32])
        self.assertEqual(results["dual_encoder_queue"], [4, 0])  # written twice, wrapped
        self.assertTrue(results["dual_encoder_copy_moved"])
        self.assertEqual(results["video_qa_logits"], [4, 17])
        self.assertEqual(results["video_qa_answers"], 4)
        self.assertEqual(results["video_qa_generate"], [2, 3])
        self.assertEqual(results["image_captioning_logits"], [4, 24, 64])
        self.assertEqual(results["image_captioning_generate"], [2, 6])
