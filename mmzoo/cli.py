"""The `mmzoo` command line.

    mmzoo demo                        train, evaluate, export and use a tiny captioner
    mmzoo train FAMILY                train a preset (any tf.distribute strategy)
    mmzoo evaluate FAMILY             score a trained run
    mmzoo export FAMILY               write a serving SavedModel
    mmzoo presets [--family F]        list the registered presets

FAMILY is one of:

    image_captioning   data: synthetic | tfds:NAME | image-caption manifest;
                       evaluate: BLEU / CIDEr-D / ROUGE-L; export: `caption`
    video_qa           data: synthetic | video QA manifest (classify presets);
                       evaluate: exact match / VQA accuracy by question type;
                       export: `answer`
    dual_encoder       data: as image_captioning (image-text presets);
                       evaluate: retrieval recall@1/5/10 both ways;
                       export: `encode_images`, `encode_text`
    fusion_classifier  data: synthetic (shapes_classification);
                       evaluate: precision / recall / F1 per class; no export

Data (`--data`): `synthetic` (mmzoo's built-in dataset for the family,
nothing to download), `tfds:NAME` (a prepared TFDS image-text dataset, e.g.
`tfds:coco_captions`) or the path of a JSONL/CSV manifest (`image_path,
caption` rows; `video_path, question, answer` rows for video_qa). Options
can also come from `--config file.json|yaml` (keys are the option names with
`_`, e.g. `batch_size`); flags given on the command line win over the file.
`--preset` defaults to `<family>_tiny` and `--model-dir` to `runs/<family>`.

A run directory (`--model-dir`) holds the checkpoints (training resumes from
them), `run.json` (family and preset), `tokenizer/`, `metrics.jsonl`,
`tensorboard/`, `model.keras` and `eval_<split>.json`.

`mmzoo train` is reproducible by default (`--no-deterministic` trades that
for speed), skips and counts bad manifest records (`--strict` stops at the
first), saves a checkpoint on SIGTERM and exits with code 42. `mmzoo export`
replaces only an earlier export (`--overwrite` for any other directory;
never a run directory). Exit codes: 0 done, 2 a usage or input error (one
line on stderr; `--verbose` shows the traceback), 42 stopped by SIGTERM after
a checkpoint.
"""

import argparse
import json
import os
import sys
import time

# Importing the recipes imports no TensorFlow (they import it when they
# run), and the `mmzoo` command skips mmzoo's eager model imports
# (mmzoo/__init__.py): `mmzoo --help` and `mmzoo presets` answer at once.
from mmzoo.recipes._common import DATA_HELP
from mmzoo.recipes._common import load_caption_examples  # noqa: F401
from mmzoo.recipes.image_captioning import evaluate_image_captioning
from mmzoo.recipes.image_captioning import export_image_captioning
from mmzoo.recipes.image_captioning import train_image_captioning

FAMILIES = ("image_captioning", "video_qa", "dual_encoder", "fusion_classifier")
EXPORT_FAMILIES = ("image_captioning", "video_qa", "dual_encoder")
# `mmzoo.training.STRATEGIES` (tested equal), written here so that parsing
# the command line imports no TensorFlow.
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
# Attention fusion learns only at a Transformer's rate: at 1e-3 it stays at
# chance on the shape questions of shapes_classification (benchmarks/README.md).
DEFAULT_LEARNING_RATES = {"image_captioning": 2e-3, "fusion_classifier": 3e-4}
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
    train_image_captioning(model_dir=run_dir, steps=steps, verbose=1)
    print(f"[2/4] captioning {num_test} unseen test images", file=out)
    scores, captions, images, references = evaluate_image_captioning(run_dir, num_examples=num_test)
    print("[3/4] exporting the SavedModel", file=out)
    saved_model = export_image_captioning(run_dir, os.path.join(output_dir, "saved_model"))
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
    from mmzoo.recipes._common import write_json

    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, DEMO_MARKER), {"written_by": "mmzoo demo"})


def _list_presets(family, out=sys.stdout):
    from mmzoo import presets

    for name in presets.list_presets(family=family):
        preset = presets.get_preset(name)
        print(f"{name:<40}{preset.family:<18}{preset.description}", file=out)


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

    p = add("train", "train a model family from a preset")
    p.add_argument("family", choices=FAMILIES)
    p.add_argument("--preset", default=None, help="default: <family>_tiny")
    p.add_argument("--data", dest="data_spec", default="synthetic", help=DATA_HELP)
    p.add_argument("--steps", type=_positive_int, default=2000)
    p.add_argument("--model-dir", default=None, help="default: runs/<family>")
    p.add_argument("--strategy", default="auto", choices=STRATEGIES)
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="default: 32 for video_qa, else 64")
    p.add_argument("--learning-rate", type=_positive_float, default=None,
                   help="default: 2e-3 for image_captioning, 3e-4 for fusion_classifier, "
                   "else 1e-3")
    p.add_argument("--vocabulary-size", type=_positive_int, default=128)
    p.add_argument("--num-examples", type=_positive_int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=_positive_int, default=500)
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="bit-identical runs for the same seed (default; slower)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad manifest record instead of skipping it")
    p.add_argument("--fold-answer-case", action="store_true",
                   help="video_qa: match answers to the answer vocabulary ignoring case")
    p.add_argument("--config", help="JSON or YAML file of option values")

    p = add("evaluate", "score a trained model")
    p.add_argument("family", choices=FAMILIES)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--data", dest="data_spec", default="synthetic", help=DATA_HELP)
    p.add_argument("--split", default="test")
    p.add_argument("--num-examples", type=_positive_int, default=500)
    p.add_argument("--method", default="greedy", choices=("greedy", "beam", "top_k", "top_p"),
                   help="decoding (image_captioning)")
    p.add_argument("--num-beams", type=_positive_int, default=4)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad manifest record instead of skipping it")

    p = add("export", "write a serving SavedModel")
    p.add_argument("family", choices=EXPORT_FAMILIES)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--output", default=None, help="default: <model-dir>/saved_model")
    p.add_argument("--method", default="greedy", choices=("greedy", "beam"),
                   help="decoding (image_captioning)")
    p.add_argument("--num-beams", type=_positive_int, default=4)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --output that mmzoo did not write (never a run "
                   "directory)")
    p.add_argument("--max-image-pixels", type=_positive_int, default=None,
                   help="serving refuses larger images before decoding them (default: "
                   "50000000)")

    p = add("presets", "list the registered presets")
    p.add_argument("--family", default=None)
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


def _train(args, out=None):
    from mmzoo import recipes

    out = out or sys.stdout  # read at call time (tests replace sys.stdout)
    family = args.family
    model_dir = args.model_dir or os.path.join("runs", family)
    start = time.perf_counter()
    options = {"fold_answer_case": True} if args.fold_answer_case else {}
    if options and family != "video_qa":
        raise ValueError(
            f"`--fold-answer-case` applies to video_qa only. Received: family {family!r}"
        )
    rows = recipes.TRAIN[family](
        **options,
        preset=args.preset or f"{family}_tiny", data_spec=args.data_spec, steps=args.steps,
        model_dir=model_dir, strategy=args.strategy,
        batch_size=args.batch_size or (32 if family == "video_qa" else 64),
        learning_rate=args.learning_rate or DEFAULT_LEARNING_RATES.get(family, 1e-3),
        vocabulary_size=args.vocabulary_size, num_examples=args.num_examples,
        seed=args.seed, checkpoint_every=args.checkpoint_every,
        deterministic=args.deterministic, strict=args.strict,
    )
    _print_train_summary(family, model_dir, args.steps, rows, time.perf_counter() - start, out)
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
    from mmzoo import recipes

    if args.family == "image_captioning":
        scores, *_ = evaluate_image_captioning(
            args.model_dir, args.data_spec, args.split, args.num_examples,
            args.method, args.num_beams, strict=args.strict,
        )
        return scores
    result = recipes.EVALUATE[args.family](
        args.model_dir, args.data_spec, args.split, args.num_examples, strict=args.strict
    )
    return result[0] if isinstance(result, tuple) else result


def _export(args, out=None):
    from mmzoo import recipes

    out = out or sys.stdout
    options = {"overwrite": args.overwrite, "max_image_pixels": args.max_image_pixels}
    if args.family == "image_captioning":
        path = export_image_captioning(
            args.model_dir, args.output, args.method, args.num_beams, **options
        )
    else:
        path = recipes.EXPORT[args.family](args.model_dir, args.output, **options)
    print(f"Wrote a SavedModel to {path}", file=out)
    print(f"Signatures: {SIGNATURES[args.family]}.", file=out)
    print(f"Serve it from any TensorFlow process: tf.saved_model.load({path!r}) "
          "(only tensorflow and tensorflow_text needed).", file=out)
    return path


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


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else argv
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
            _list_presets(args.family)
        elif args.command == "demo":
            run_demo(args.output_dir, steps=args.steps, num_test=args.num_test)
        elif args.command == "train":
            _train(args)
        elif args.command == "evaluate":
            print(json.dumps(_evaluate(args), indent=2))
        elif args.command == "export":
            _export(args)
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
