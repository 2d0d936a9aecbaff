"""The `mmzoo` command line.

    mmzoo demo                        train, evaluate, export and use a tiny captioner
    mmzoo train FAMILY                train a preset (any tf.distribute strategy)
    mmzoo evaluate FAMILY             score a trained run
    mmzoo export FAMILY               write a serving SavedModel
    mmzoo presets [--family F] [--keras-hub]
                                      list the registered (and keras-hub) presets
    mmzoo data pack MANIFEST DIR      pack a manifest into TFRecord shards

FAMILY is one of:

    image_captioning   data: synthetic | tfds:NAME | tfrecord:DIR |
                       image-caption manifest;
                       evaluate: BLEU / CIDEr-D / ROUGE-L; export: `caption`
    video_qa           data: synthetic | tfrecord:DIR | video QA manifest
                       (classify presets);
                       evaluate: exact match / VQA accuracy by question type;
                       export: `answer`
    dual_encoder       data: as image_captioning (image-text presets, or a
                       keras-hub CLIP / SigLIP / MetaCLIP 2 preset: --preset
                       NAME_OR_DIR);
                       evaluate: retrieval recall@1/5/10 both ways;
                       export: `encode_images`, `encode_text`
    fusion_classifier  data: synthetic (shapes_classification);
                       evaluate: precision / recall / F1 per class; no export

Data (`--data`): `synthetic` (mmzoo's built-in dataset for the family,
nothing to download), `tfds:NAME` (a prepared TFDS image-text dataset, e.g.
`tfds:coco_captions`), `tfrecord:DIR` (the shards `mmzoo data pack MANIFEST
DIR --num-shards N` wrote from an image-caption or video QA manifest: images
and frames kept encoded, read and decoded in parallel; an interrupted pack
run again keeps its finished shards) or the path of a JSONL/CSV manifest (`image_path,
caption` rows; `video_path, question, answer` rows for video_qa). Under
`--strategy multi_worker` each worker reads and decodes only its share of
`tfrecord:` and `tfds:` data; every worker reads a manifest whole. Options
can also come from `--config file.json|yaml` (keys are the option names with
`_`, e.g. `batch_size`); flags given on the command line win over the file.
An option given neither way takes the family recipe's default
(`mmzoo.recipes.RECIPES`; `mmzoo train --help` lists them): `--preset`
defaults to `<family>_tiny` and `--model-dir` to `runs/<family>`.

A run directory (`--model-dir`) holds the checkpoints (training resumes from
them), `run.json` (family and preset), `tokenizer/` (the run's vocabulary,
read back on resume), `metrics.jsonl`, `tensorboard/`, `model.keras` (the
model with its preprocessor: all that `mmzoo evaluate` and `mmzoo export`
read) and `eval_<split>.json`.

`mmzoo train` is reproducible by default (`--no-deterministic` trades that
for speed), skips and counts bad manifest records (`--strict` stops at the
first), saves a checkpoint on SIGTERM and exits with code 42. `mmzoo export`
replaces only an earlier export (`--overwrite` for any other directory;
never a run directory). Exit codes: 0 done, 2 a usage or input error (one
line on stderr; `--verbose` shows the traceback), 42 stopped by SIGTERM after
a checkpoint.
"""

import argparse
import collections
import json
import logging
import os
import sys
import time

# Importing the recipes imports no TensorFlow (they import it when they
# run), and the `mmzoo` command skips mmzoo's eager model imports
# (mmzoo/__init__.py): `mmzoo --help` and `mmzoo presets` answer at once.
from mmzoo import recipes

FAMILIES = recipes.FAMILIES
EXPORT_FAMILIES = tuple(recipes.EXPORT)
# `mmzoo.training.STRATEGIES` (tested equal), written here so that parsing
# the command line imports no TensorFlow.
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
DEMO_MARKER = "mmzoo_demo.json"
# What each export writes, for the message after `mmzoo export`.
SIGNATURES = {
    "image_captioning": "`caption`: encoded image bytes -> captions",
    "video_qa": "`answer`: uint8 frames + questions -> answers; `answer_encoded`: "
    "encoded frames + questions -> answers",
    "dual_encoder": "`encode_images`: encoded image bytes -> embeddings; `encode_text`: "
    "strings -> embeddings; `logit_scale`",
}


def write_caption_grid(path, images, captions, columns=4, scale=4):
    """A PNG grid of images with their captions underneath (Pillow only)."""
    import textwrap

    import numpy as np
    from PIL import Image
    from PIL import ImageDraw

    height, width = images.shape[1] * scale, images.shape[2] * scale
    text_height = 64
    rows = -(-len(images) // columns)
    cell_width = max(width, 200)
    grid = Image.new("RGB", (columns * cell_width, rows * (height + text_height)), "white")
    draw = ImageDraw.Draw(grid)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x = (i % columns) * cell_width
        y = (i // columns) * (height + text_height)
        pixels = Image.fromarray(np.round(image * 255).astype("uint8"))
        grid.paste(pixels.resize((width, height), Image.NEAREST), (x + (cell_width - width) // 2, y))
        lines = textwrap.wrap(caption or "(empty)", width=cell_width // 6)[:4]
        draw.multiline_text((x + 4, y + height + 2), "\n".join(lines), fill="black")
    staging = path + ".tmp.png"
    grid.save(staging)
    os.replace(staging, path)
    return path


def run_demo(output_dir="mmzoo_demo", steps=1500, num_test=200, out=sys.stdout):
    """The main job on built-in data: train, evaluate, export, caption, draw.

    Returns:
        dict with `metrics`, `grid` (PNG path), `saved_model`, `captions`.
    """
    import numpy as np
    import tensorflow as tf

    start = time.perf_counter()
    _claim_demo_directory(output_dir)
    run_dir = os.path.join(output_dir, "run")
    print(f"[1/4] training image_captioning_tiny on shapes_captions ({steps} steps)", file=out)
    recipes.train_image_captioning(model_dir=run_dir, steps=steps, verbose=1)
    print(f"[2/4] captioning {num_test} unseen test images", file=out)
    scores, outputs = recipes.evaluate_with_outputs(
        "image_captioning", run_dir, num_examples=num_test
    )
    images, references = outputs["images"], outputs["references"]
    print("[3/4] exporting the SavedModel", file=out)
    saved_model = recipes.export_image_captioning(run_dir, os.path.join(output_dir, "saved_model"))
    print("[4/4] captioning PNG files through the SavedModel", file=out)
    serving = tf.saved_model.load(saved_model).signatures["caption"]
    files = [tf.io.encode_png(np.round(im * 255).astype("uint8")).numpy() for im in images[:8]]
    served = [c.decode() for c in serving(images=tf.constant(files))["captions"].numpy()]
    grid = write_caption_grid(os.path.join(output_dir, "captions.png"), images[:8], served)
    print("\n| metric | value |\n| --- | --- |", file=out)
    for name in ("bleu_1", "bleu_4", "cider_d", "rouge_l"):
        print(f"| {name} | {scores[name]:.3f} |", file=out)
    print("\nexamples (SavedModel caption / a reference):", file=out)
    for caption, refs in list(zip(served, references))[:4]:
        print(f"  {caption!r}\n    {refs[0]!r}", file=out)
    print(
        f"\nwrote {grid}, {saved_model}, {run_dir}/model.keras "
        f"in {(time.perf_counter() - start) / 60:.1f} min",
        file=out,
    )
    return {"metrics": scores, "grid": grid, "saved_model": saved_model, "captions": served}


def _claim_demo_directory(output_dir):
    """The demo writes only into a new or empty directory, or its own earlier one."""
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not os.path.isfile(os.path.join(output_dir, DEMO_MARKER)):
            raise ValueError(
                "`--output-dir` holds files the demo did not write; choose a new or empty "
                f"directory. Received: --output-dir {output_dir!r}"
            )
        return
    os.makedirs(output_dir, exist_ok=True)
    recipes.write_json(os.path.join(output_dir, DEMO_MARKER), {"written_by": "mmzoo demo"})


def _families_taking(option):
    return tuple(
        family for family, recipe in recipes.RECIPES.items()
        if option in recipe.signature("train").parameters
    )


# The families whose `train` takes `--image-encoder` / `--video-encoder` /
# `--text-encoder` (a keras-hub preset as that tower).
IMAGE_ENCODER_FAMILIES = _families_taking("image_encoder")
VIDEO_ENCODER_FAMILIES = _families_taking("video_encoder")
TEXT_ENCODER_FAMILIES = _families_taking("text_encoder")


def _list_presets(family, keras_hub=False, out=sys.stdout):
    from mmzoo import presets

    for name in presets.list_presets(family=family):
        preset = presets.get_preset(name)
        print(f"{name:<40}{preset.family:<18}{preset.description}", file=out)
    if not keras_hub:
        return
    # Imports keras-hub (and TensorFlow): only when asked.
    from mmzoo.encoders import keras_hub_towers as towers

    listings = (  # (presets, column, how a run takes one, families)
        (towers.keras_hub_presets, "dual_encoder",
         "--preset NAME: its weights and tokenizer", ("dual_encoder",)),
        (towers.keras_hub_image_presets, "image tower", "--image-encoder NAME",
         IMAGE_ENCODER_FAMILIES),
        (towers.keras_hub_video_presets, "video tower", "--video-encoder NAME",
         VIDEO_ENCODER_FAMILIES),
        (towers.keras_hub_text_presets, "text tower", "--text-encoder NAME",
         TEXT_ENCODER_FAMILIES),
    )
    for listed, column, usage, families in listings:
        if family is not None and family not in families:
            continue
        if column.endswith("tower"):
            usage = f"{usage}: {', '.join(families)}"
        for name, class_name in listed().items():
            print(f"{name:<40}{column:<18}keras-hub {class_name} ({usage}; needs a download)",
                  file=out)


# ----------------------------------------------------------------- parser
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text!r}")
    return value


def _default(action, name):
    """`default: 64 (32 for video_qa)`: a recipe option's defaults, for `--help`."""
    values = {
        family: recipe.defaults(action)[name]
        for family, recipe in recipes.RECIPES.items()
        if name in recipe.defaults(action)
    }
    common = collections.Counter(values.values()).most_common(1)[0][0]
    others = [f"{value} for {family}" for family, value in values.items() if value != common]
    return f"default: {common}" + (f" ({', '.join(others)})" if others else "")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mmzoo", description="Multimodal models for Keras 3 / TensorFlow.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="show the traceback of an error, not only its message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help):
        return sub.add_parser(name, help=help, parents=[common])

    p = add("demo", "train, evaluate, export and use a tiny captioner")
    p.add_argument("--output-dir", default="mmzoo_demo")
    p.add_argument("--steps", type=_positive_int, default=1500)
    p.add_argument("--num-test", type=_positive_int, default=200)

    # The recipe options default to None: a value not given (by flag or
    # --config) is the recipe's default, read from `mmzoo.recipes.RECIPES`.
    p = add("train", "train a model family from a preset")
    p.add_argument("family", choices=FAMILIES)
    p.add_argument("--preset", help="default: <family>_tiny; dual_encoder also takes a "
                   "keras-hub CLIP / SigLIP / MetaCLIP 2 preset name or directory (its "
                   "weights and tokenizer)")
    p.add_argument("--data", dest="data_spec", help=f"{recipes.DATA_HELP}; "
                   + _default("train", "data_spec"))
    p.add_argument("--steps", type=_positive_int, help=_default("train", "steps"))
    p.add_argument("--model-dir", help="default: runs/<family>")
    p.add_argument("--strategy", choices=STRATEGIES, help=_default("train", "strategy"))
    p.add_argument("--batch-size", type=_positive_int, help=_default("train", "batch_size"))
    p.add_argument("--learning-rate", type=_positive_float,
                   help=_default("train", "learning_rate"))
    p.add_argument("--vocabulary-size", type=_positive_int,
                   help=_default("train", "vocabulary_size"))
    p.add_argument("--num-examples", type=_positive_int, help=_default("train", "num_examples"))
    p.add_argument("--seed", type=int, help=_default("train", "seed"))
    p.add_argument("--checkpoint-every", type=_positive_int,
                   help=_default("train", "checkpoint_every"))
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction,
                   help="bit-identical runs for the same seed (slower); "
                   + _default("train", "deterministic"))
    p.add_argument("--strict", action="store_true", default=None,
                   help="stop at the first bad manifest record instead of skipping it")
    p.add_argument("--fold-answer-case", action="store_true", default=None,
                   help="video_qa: match answers to the answer vocabulary ignoring case")
    p.add_argument("--image-encoder", metavar="KERAS_HUB_PRESET",
                   help="image_captioning, fusion_classifier, dual_encoder: a keras-hub image "
                   "preset name or directory (ViT, DINOv2, ResNet, EfficientNet, CLIP / "
                   "SigLIP) as the image tower, with its weights and normalisation")
    p.add_argument("--video-encoder", metavar="KERAS_HUB_PRESET",
                   help="video_qa: a keras-hub VideoPrism preset name or directory as the "
                   "video tower, with its weights and normalisation")
    p.add_argument("--text-encoder", metavar="KERAS_HUB_PRESET",
                   help="fusion_classifier, video_qa, dual_encoder: a keras-hub text preset "
                   "name or directory (BERT, DistilBERT, RoBERTa) as the text / question "
                   "tower, with its weights and tokenizer")
    p.add_argument("--freeze-image-encoder", action="store_true", default=None,
                   help="dual_encoder with a keras-hub --preset or --image-encoder: lock its "
                   "image tower (LiT)")
    p.add_argument("--init-from", metavar="RUN_DIR",
                   help="start from this run's model.keras (fine-tuning) instead of a new model")
    p.add_argument("--lora-rank", type=_positive_int,
                   help="with --init-from: train LoRA adapters of this rank, the rest frozen")
    p.add_argument("--config", help="JSON or YAML file of option values")

    p = add("evaluate", "score a trained model")
    p.add_argument("family", choices=FAMILIES)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--data", dest="data_spec", help=f"{recipes.DATA_HELP}; "
                   + _default("evaluate", "data_spec"))
    p.add_argument("--split", help=_default("evaluate", "split"))
    p.add_argument("--num-examples", type=_positive_int,
                   help=_default("evaluate", "num_examples"))
    p.add_argument("--method", choices=("greedy", "beam", "top_k", "top_p"),
                   help="decoding (image_captioning); " + _default("evaluate", "method"))
    p.add_argument("--num-beams", type=_positive_int,
                   help="image_captioning; " + _default("evaluate", "num_beams"))
    p.add_argument("--strict", action="store_true", default=None,
                   help="stop at the first bad manifest record instead of skipping it")

    p = add("export", "write a serving SavedModel")
    p.add_argument("family", choices=EXPORT_FAMILIES)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--output", help="default: <model-dir>/saved_model")
    p.add_argument("--method", choices=("greedy", "beam"),
                   help="decoding (image_captioning); " + _default("export", "method"))
    p.add_argument("--num-beams", type=_positive_int,
                   help="image_captioning; " + _default("export", "num_beams"))
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace an existing --output that mmzoo did not write (never a run "
                   "directory)")
    p.add_argument("--max-image-pixels", type=_positive_int,
                   help="serving refuses larger images before decoding them (default: "
                   "50000000)")
    p.add_argument("--quantize", choices=("int8", "int4"),
                   help="quantize the weights before exporting (model.keras is not changed)")

    p = add("data", "pack a manifest into TFRecord shards (read with --data tfrecord:DIR)")
    p.add_argument("action", choices=("pack",))
    p.add_argument("manifest", help="JSONL/CSV manifest of `image_path, caption` rows, or "
                   "of `video_path, question, answer[, question_type]` rows")
    p.add_argument("output_dir", help="a new or empty directory (or an earlier pack: an "
                   "interrupted one is finished, keeping its finished shards)")
    p.add_argument("--num-shards", type=_positive_int, default=8,
                   help="default: 8; at least the number of workers that will read them")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier pack in output_dir (never other files)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad record or image instead of skipping it")

    p = add("presets", "list the registered presets")
    p.add_argument("--family", default=None)
    p.add_argument("--keras-hub", action="store_true",
                   help="also list the keras-hub presets a family starts from")
    return parser


_CONFIG_FORMATS = {".json": "JSON", ".yaml": "YAML", ".yml": "YAML"}


def _read_config(parser, path):
    """The mapping in a JSON / YAML config file, or a usage error naming what is wrong."""
    kind = _CONFIG_FORMATS.get(os.path.splitext(path)[1].lower())
    if kind is None:
        parser.error(f"--config must be a .json, .yaml or .yml file. Received: {path!r}")
    if not os.path.isfile(path):
        parser.error(f"--config: no such file: {path!r}")
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        parser.error(f"--config: {path!r} is not UTF-8 text ({e.reason} at byte {e.start})")
    except OSError as e:
        parser.error(f"--config: cannot read {path!r} ({e.strerror})")
    if kind == "JSON":
        try:
            values = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as e:
            parser.error(f"--config: {path!r} is not valid JSON ({e.msg} at line {e.lineno}, "
                         f"column {e.colno})")
    else:
        import yaml

        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            parser.error(f"--config: {path!r} is not valid YAML "
                         f"({getattr(e, 'problem', None) or e}{at})")
    if not isinstance(values, dict):
        parser.error(
            f"--config: expected a mapping of option names to values, in {path!r}. "
            f"Received: a {type(values).__name__}"
        )
    return values


def _config_value(parser, key, value, action):
    """`value` checked and converted as the flag `action` would do it."""
    flag = action.option_strings[0] if action.option_strings else key
    if isinstance(action, argparse.BooleanOptionalAction) or action.nargs == 0:
        if not isinstance(value, bool):
            parser.error(f"--config: {key} must be true or false. Received: {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        expected = "a string" if action.type is None else "a number"
        received = "null" if value is None else f"a {type(value).__name__} {value!r}"
        parser.error(f"--config: {key} ({flag}) must be {expected}. Received: {received}")
    if action.type is None:
        if not isinstance(value, str):
            parser.error(f"--config: {key} ({flag}) must be a string. Received: {value!r}")
    else:
        try:
            value = action.type(str(value))
        except argparse.ArgumentTypeError as e:
            parser.error(f"--config: {key}: {e}")
    if action.choices is not None and value not in action.choices:
        parser.error(
            f"--config: {key} must be one of {list(action.choices)}; received {value!r}"
        )
    return value


def _apply_config(parser, argv, args):
    """Re-parses with the config file's values as defaults (flags still win)."""
    if not getattr(args, "config", None):
        return args
    path = args.config
    values = _read_config(parser, path)
    subparser = parser._subparsers._group_actions[0].choices[args.command]
    dests = {a.dest: a for a in subparser._actions if a.dest not in ("help", "config", "family")}
    aliases = {"data": "data_spec"}
    checked = {}
    for key, value in values.items():
        dest = aliases.get(str(key), str(key).replace("-", "_"))
        if dest not in dests:
            parser.error(
                f"--config: unknown option {key!r} in {path!r}; valid options: "
                f"{sorted(k if k != 'data_spec' else 'data' for k in dests)}"
            )
        checked[dest] = _config_value(parser, key, value, dests[dest])
    subparser.set_defaults(**checked)
    return parser.parse_args(argv)


def _recipe_options(args, action):
    """The options of `args.family`'s recipe: those given (flags, --config), defaults for the rest.

    An option this family's recipe does not take (`--method` for video_qa)
    is a usage error naming the families that take it.
    """
    recipe = recipes.RECIPES[args.family]
    known = set().union(*(r.signature(action).parameters for r in recipes.RECIPES.values()))
    # `--verbose` shows tracebacks; the recipes' `verbose` (progress) keeps its default.
    given = {
        name: value for name, value in vars(args).items()
        if name in known and name != "verbose" and value is not None
    }
    takes = recipe.signature(action).parameters
    for name in given:
        if name not in takes:
            flag = "--data" if name == "data_spec" else "--" + name.replace("_", "-")
            families = [
                f for f, r in recipes.RECIPES.items() if name in r.signature(action).parameters
            ]
            raise ValueError(
                f"`{flag}` applies to {', '.join(families)} only. Received: family "
                f"{args.family!r}"
            )
    return {**recipe.defaults(action), **given}


def _train(args, out=None):
    out = out or sys.stdout  # read at call time (tests replace sys.stdout)
    options = _recipe_options(args, "train")
    start = time.perf_counter()
    rows = recipes.TRAIN[args.family](**options)
    _print_train_summary(args.family, options["model_dir"], options["steps"], rows,
                         time.perf_counter() - start, out)
    return rows


def _print_train_summary(family, model_dir, steps, rows, seconds, out):
    if rows:
        print(
            f"\nTrained {family} to step {rows[-1]['step']} of {steps} in {seconds / 60:.1f} min; "
            f"loss {rows[-1]['loss']:.4f} (mean of the last logged steps).",
            file=out,
        )
    else:
        print(f"\nThe run is already at step {steps} or beyond: nothing to train "
              "(raise --steps to train on).", file=out)
    print(f"Run directory: {model_dir} (checkpoints, metrics.jsonl, tensorboard/, "
          "model.keras)", file=out)
    print(f"Next: mmzoo evaluate {family} --model-dir {model_dir}", file=out)
    if family in EXPORT_FAMILIES:
        print(f"      mmzoo export {family} --model-dir {model_dir}", file=out)


def _evaluate(args):
    return recipes.EVALUATE[args.family](**_recipe_options(args, "evaluate"))


def _export(args, out=None):
    out = out or sys.stdout
    path = recipes.EXPORT[args.family](**_recipe_options(args, "export"))
    print(f"Wrote a SavedModel to {path}", file=out)
    print(f"Signatures: {SIGNATURES[args.family]}.", file=out)
    print(f"Serve it from any TensorFlow process: tf.saved_model.load({path!r}) "
          "(only tensorflow and tensorflow_text needed).", file=out)
    return path


def _pack(args, out=None):
    from mmzoo.data import records

    out = out or sys.stdout
    report = records.pack_records(
        args.manifest, args.output_dir, num_shards=args.num_shards, overwrite=args.overwrite,
        strict=args.strict,
    )
    print(report.summary(), file=sys.stderr)
    schema = records.read_schema(args.output_dir)
    print(f"Packed {schema['num_examples']} examples into {len(schema['shards'])} shards "
          f"in {args.output_dir}", file=out)
    family = "video_qa" if schema["kind"] == "video_qa" else "image_captioning"
    print(f"Train on them: mmzoo train {family} --data tfrecord:{args.output_dir}", file=out)
    return report


def _expected_errors():
    """What a user's input can raise: a message, not a traceback."""
    errors = (ValueError, OSError, FloatingPointError)
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        # e.g. `--strict` naming an undecodable file, a missing file.
        errors += (tf.errors.OpError,)
    yaml = sys.modules.get("yaml")
    if yaml is not None:
        errors += (yaml.YAMLError,)
    return errors


def _message(error):
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError):
        # The op's message without TensorFlow's graph trace.
        return error.message.strip().splitlines()[0]
    return str(error)


# TensorFlow's C++ start-up lines on a machine without a GPU. They are
# written to file descriptor 2 before absl's logging is initialised, so
# TF_CPP_MIN_LOG_LEVEL (even 3) and GLOG_minloglevel do not reach them
# (checked with TF 2.21); the command filters them out of its stderr.
_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "failed call to cuInit",
    "oneDNN supports DT_INT64 only",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "TF-TRT Warning",
)
# Lines TensorFlow's C++ runtime writes later that concern no user. Under op
# determinism (on for reproducible runs), tf.data rewrites a parallel map
# that precedes a stateful op (a lookup table: video_qa's answer vocabulary,
# byte-pair tokenizers) into a serial one, copying an attribute the serial
# op lacks, and logs it at ERROR level; TensorFlow ignores the attribute
# (TF 2.21).
_RUNTIME_NOISE = (
    "NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition",
)
# Python log records of TensorFlow's that concern no user of the command:
# it runs only mmzoo's functions, and one that AutoGraph cannot convert
# runs as written (any error it then raises is still shown).
_HIDDEN_LOG_MESSAGES = ("AutoGraph could not transform",)


class _HiddenLogMessages(logging.Filter):
    """Drops log records whose message starts with one of `_HIDDEN_LOG_MESSAGES`."""

    def filter(self, record):
        return not str(record.msg).startswith(_HIDDEN_LOG_MESSAGES)


class _FilteredStderr:
    """Forwards file descriptor 2 through a pipe, dropping `_STARTUP_NOISE` and
    `_RUNTIME_NOISE` lines, and hides TensorFlow's `_HIDDEN_LOG_MESSAGES`.

    Everything else (errors, warnings, progress bars) passes through
    unchanged, in order. Used only when this process is the `mmzoo`
    command and `--verbose` is not given.
    """

    def __enter__(self):
        import threading

        # The logger TensorFlow logs to (`tf.get_logger()`), made here
        # without importing TensorFlow.
        self._log_filter = _HiddenLogMessages()
        logging.getLogger("tensorflow").addFilter(self._log_filter)
        sys.stderr.flush()
        self._saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)

        def forward():
            with os.fdopen(read, "rb") as pipe, os.fdopen(os.dup(self._saved), "wb", 0) as out:
                for line in pipe:
                    text = line.decode("utf-8", "replace")
                    if not any(noise in text for noise in _STARTUP_NOISE + _RUNTIME_NOISE):
                        out.write(line)

        self._thread = threading.Thread(target=forward, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last writer: the thread ends
        self._thread.join(timeout=5)
        os.close(self._saved)
        logging.getLogger("tensorflow").removeFilter(self._log_filter)
        return False


def main(argv=None):
    if argv is None and _is_the_command() and "--verbose" not in sys.argv[1:]:
        with _FilteredStderr():
            return _main(sys.argv[1:])
    return _main(sys.argv[1:] if argv is None else argv)


def _is_the_command():
    import mmzoo

    return mmzoo._started_as_the_command()


def _main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import mmzoo

        print(mmzoo.__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    args = _apply_config(parser, argv, args)
    try:
        if args.command == "presets":
            _list_presets(args.family, keras_hub=args.keras_hub)
        elif args.command == "demo":
            run_demo(args.output_dir, steps=args.steps, num_test=args.num_test)
        elif args.command == "train":
            _train(args)
        elif args.command == "evaluate":
            print(json.dumps(_evaluate(args), indent=2))
        elif args.command == "export":
            _export(args)
        elif args.command == "data":
            _pack(args)
    except KeyboardInterrupt:
        if args.verbose:
            raise
        print(f"mmzoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except _expected_errors() as e:
        if args.verbose:
            raise
        print(f"mmzoo {args.command}: error: {_message(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
