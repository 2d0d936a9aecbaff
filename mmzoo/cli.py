"""The `mmzoo` command line.

    mmzoo demo                       train, evaluate, export and use a tiny captioner
    mmzoo train image_captioning     train a captioning preset (any tf.distribute strategy)
    mmzoo evaluate image_captioning  BLEU / CIDEr-D / ROUGE-L of a trained captioner
    mmzoo export image_captioning    SavedModel: image bytes in, captions out
    mmzoo presets [--family F]       list the registered presets

Data (`--data`): `synthetic` (mmzoo's built-in `shapes_captions`, nothing to
download), `tfds:NAME` (a prepared TFDS image-text dataset, e.g.
`tfds:coco_captions`) or the path of a JSONL/CSV manifest of `image_path,
caption` rows. Options can also come from `--config file.json|yaml` (keys are
the option names with `_`, e.g. `batch_size`); flags given on the command line
win over the file.

A run directory (`--model-dir`) holds the checkpoints (training resumes from
them), `tokenizer/`, `metrics.jsonl`, `tensorboard/` and `model.keras`.
"""

import argparse
import json
import os
import sys
import time

FAMILIES = ("image_captioning",)
DATA_HELP = "synthetic | tfds:NAME | path/to/manifest.jsonl|csv"


# ---------------------------------------------------------------- helpers
def _image_shape(preset):
    from mmzoo import presets

    config = presets.get_preset_config(preset)
    encoder = config["image_encoder"]
    if isinstance(encoder, str):
        return tuple(presets.get_preset_config(encoder)["image_shape"])
    return tuple(encoder.inputs[0].shape[1:])


def load_caption_examples(data_spec, split, image_shape, num_examples=None, seed=0):
    """Unbatched `images` + `captions` examples from a `--data` value."""
    from mmzoo import data

    if data_spec == "synthetic" or data_spec.startswith("synthetic:"):
        name = data_spec.partition(":")[2] or "shapes_captions"
        if name != "shapes_captions":
            raise ValueError(
                "Captioning trains on the synthetic dataset 'shapes_captions'. "
                f"Received: --data {data_spec!r}"
            )
        if image_shape[0] != image_shape[1]:
            raise ValueError(f"Synthetic images are square. Received: image_shape={image_shape}")
        return data.load_synthetic(
            name, split, num_examples=num_examples, seed=seed, image_size=image_shape[0]
        )
    if data_spec.startswith("tfds:"):
        examples = data.load_tfds(
            data_spec[len("tfds:"):], split=split, image_shape=image_shape[:2], download=False
        )
    elif os.path.isfile(data_spec):
        examples, report = data.load_image_caption_files(data_spec, image_shape=image_shape[:2])
        print(f"{data_spec}: {report.num_records} records", file=sys.stderr)
    else:
        raise ValueError(f"`--data` must be {DATA_HELP}. Received: --data {data_spec!r}")
    return examples.take(num_examples) if num_examples else examples


def _tokenizer_for(run_dir, examples, sequence_length, vocabulary_size):
    """The run's tokenizer: loaded when the run has one (resume), else trained."""
    from mmzoo import data

    path = os.path.join(run_dir, "tokenizer")
    if os.path.exists(os.path.join(path, "vocabulary.txt")):
        return data.TextTokenizer.load(path)
    vocabulary = data.train_word_piece_vocabulary(
        examples.map(lambda x: x["captions"]), vocabulary_size=vocabulary_size
    )
    tokenizer = data.TextTokenizer(vocabulary, sequence_length=sequence_length + 1)
    staging = path + ".tmp"
    tokenizer.save(staging)
    os.replace(staging, path)
    return tokenizer


def _load_run(run_dir):
    import keras

    from mmzoo import data

    model_path = os.path.join(run_dir, "model.keras")
    if not os.path.exists(model_path):
        raise ValueError(
            f"No trained model in the run directory (expected {model_path}; run "
            f"`mmzoo train` first). Received: --model-dir {run_dir!r}"
        )
    model = keras.saving.load_model(model_path, safe_mode=True)
    model.tokenizer = data.TextTokenizer.load(os.path.join(run_dir, "tokenizer"))
    return model


def _write_json(path, value):
    staging = path + ".tmp"
    with open(staging, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
    os.replace(staging, path)


# --------------------------------------------------------------- commands
def train_image_captioning(
    preset="image_captioning_tiny",
    data_spec="synthetic",
    steps=2000,
    model_dir="runs/image_captioning",
    strategy="auto",
    batch_size=64,
    learning_rate=2e-3,
    vocabulary_size=128,
    num_examples=20000,
    seed=0,
    checkpoint_every=500,
    verbose=1,
):
    """Trains a captioning preset with `mmzoo.training.Trainer`; returns the history."""
    import keras

    import mmzoo
    from mmzoo import data
    from mmzoo import presets
    from mmzoo import training

    strategy = training.get_strategy(strategy)
    config = presets.get_preset(preset)
    if config.family != "image_captioning":
        raise ValueError(
            f"`--preset` must be an image_captioning preset "
            f"({presets.list_presets('image_captioning')}). Received: --preset {preset!r}"
        )
    keras.utils.set_random_seed(seed)
    image_shape = _image_shape(preset)
    os.makedirs(model_dir, exist_ok=True)
    examples = load_caption_examples(data_spec, "train", image_shape, num_examples, seed)
    tokenizer = _tokenizer_for(
        model_dir, examples, config.config["sequence_length"], vocabulary_size
    )
    dataset = data.captioning_pipeline(examples, tokenizer, batch_size=batch_size, seed=seed)
    dataset = dataset.map(mmzoo.models.teacher_forcing_split)
    schedule = training.warmup_cosine_decay(
        learning_rate, total_steps=steps, warmup_steps=min(200, steps // 10)
    )
    trainer = training.Trainer(
        model_fn=lambda: presets.build_from_preset(
            preset, vocabulary_size=tokenizer.vocabulary_size
        ),
        loss=mmzoo.losses.MaskedSequenceCrossEntropy(pad_token_id=tokenizer.pad_token_id),
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01, global_clipnorm=1.0),
        strategy=strategy,
        model_dir=model_dir,
    )
    history = trainer.fit(
        dataset, steps=steps, checkpoint_every=checkpoint_every,
        log_every=max(1, min(100, steps // 10)), verbose=verbose,
    )
    if training.is_chief(trainer.strategy):
        training.save_model(trainer.model, os.path.join(model_dir, "model.keras"))
    return history


def evaluate_image_captioning(
    model_dir, data_spec="synthetic", split="test", num_examples=500,
    method="greedy", num_beams=4, batch_size=100,
):
    """Captions `split` and scores it; writes `eval_<split>.json` in the run."""
    import numpy as np

    from mmzoo import evaluation

    model = _load_run(model_dir)
    examples = load_caption_examples(data_spec, split, model.image_shape, num_examples)
    images, references = [], []
    for example in examples.as_numpy_iterator():
        images.append(example["images"])
        references.append([c.decode("utf-8", "replace") for c in np.atleast_1d(example["captions"])])
    if not images:
        raise ValueError(f"No examples to evaluate. Received: --data {data_spec!r} --split {split!r}")
    captions = model.generate(np.stack(images), method=method, num_beams=num_beams, batch_size=batch_size)
    scores = evaluation.caption_metrics(captions, references)
    scores["num_examples"] = len(images)
    _write_json(os.path.join(model_dir, f"eval_{split}.json"), scores)
    return scores, captions, np.stack(images), references


def export_image_captioning(model_dir, output=None, method="greedy", num_beams=4):
    from mmzoo import export

    model = _load_run(model_dir)
    output = output or os.path.join(model_dir, "saved_model")
    export.export_image_captioning_model(model, model.tokenizer, output, method=method, num_beams=num_beams)
    return output


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
    from mmzoo.training.strategies import STRATEGIES

    parser = argparse.ArgumentParser(
        prog="mmzoo", description="Multimodal models for Keras 3 / TensorFlow.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train, evaluate, export and use a tiny captioner")
    p.add_argument("--output-dir", default="mmzoo_demo")
    p.add_argument("--steps", type=_positive_int, default=1500)
    p.add_argument("--num-test", type=_positive_int, default=200)

    p = sub.add_parser("train", help="train a model family from a preset")
    p.add_argument("family", choices=FAMILIES)
    p.add_argument("--preset", default="image_captioning_tiny")
    p.add_argument("--data", dest="data_spec", default="synthetic", help=DATA_HELP)
    p.add_argument("--steps", type=_positive_int, default=2000)
    p.add_argument("--model-dir", default="runs/image_captioning")
    p.add_argument("--strategy", default="auto", choices=STRATEGIES)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--learning-rate", type=_positive_float, default=2e-3)
    p.add_argument("--vocabulary-size", type=_positive_int, default=128)
    p.add_argument("--num-examples", type=_positive_int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=_positive_int, default=500)
    p.add_argument("--config", help="JSON or YAML file of option values")

    p = sub.add_parser("evaluate", help="score a trained model")
    p.add_argument("family", choices=FAMILIES)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--data", dest="data_spec", default="synthetic", help=DATA_HELP)
    p.add_argument("--split", default="test")
    p.add_argument("--num-examples", type=_positive_int, default=500)
    p.add_argument("--method", default="greedy", choices=("greedy", "beam", "top_k", "top_p"))
    p.add_argument("--num-beams", type=_positive_int, default=4)

    p = sub.add_parser("export", help="write a serving SavedModel")
    p.add_argument("family", choices=FAMILIES)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--output", default=None, help="default: <model-dir>/saved_model")
    p.add_argument("--method", default="greedy", choices=("greedy", "beam"))
    p.add_argument("--num-beams", type=_positive_int, default=4)

    p = sub.add_parser("presets", help="list the registered presets")
    p.add_argument("--family", default=None)
    return parser


def _apply_config(parser, argv, args):
    """Re-parses with the config file's values as defaults (flags still win)."""
    if not getattr(args, "config", None):
        return args
    path = args.config
    if not os.path.isfile(path):
        parser.error(f"--config: no such file: {path!r}")
    with open(path, encoding="utf-8") as f:
        if path.endswith((".yaml", ".yml")):
            import yaml

            values = yaml.safe_load(f) or {}
        else:
            values = json.load(f)
    if not isinstance(values, dict):
        parser.error(f"--config: expected a mapping of option names to values, in {path!r}")
    subparser = parser._subparsers._group_actions[0].choices[args.command]
    dests = {a.dest: a for a in subparser._actions if a.dest not in ("help", "config", "family")}
    aliases = {"data": "data_spec"}
    checked = {}
    for key, value in values.items():
        dest = aliases.get(key, key.replace("-", "_"))
        if dest not in dests:
            parser.error(
                f"--config: unknown option {key!r} in {path!r}; valid options: "
                f"{sorted(k if k != 'data_spec' else 'data' for k in dests)}"
            )
        action = dests[dest]
        if action.type is not None and not isinstance(value, bool):
            try:
                value = action.type(str(value))
            except argparse.ArgumentTypeError as e:
                parser.error(f"--config: {key}: {e}")
        if action.choices is not None and value not in action.choices:
            parser.error(
                f"--config: {key} must be one of {list(action.choices)}; received {value!r}"
            )
        checked[dest] = value
    subparser.set_defaults(**checked)
    return parser.parse_args(argv)


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
            train_image_captioning(
                preset=args.preset, data_spec=args.data_spec, steps=args.steps,
                model_dir=args.model_dir, strategy=args.strategy, batch_size=args.batch_size,
                learning_rate=args.learning_rate, vocabulary_size=args.vocabulary_size,
                num_examples=args.num_examples, seed=args.seed,
                checkpoint_every=args.checkpoint_every,
            )
        elif args.command == "evaluate":
            scores, *_ = evaluate_image_captioning(
                args.model_dir, args.data_spec, args.split, args.num_examples,
                args.method, args.num_beams,
            )
            print(json.dumps(scores, indent=2))
        elif args.command == "export":
            print(export_image_captioning(args.model_dir, args.output, args.method, args.num_beams))
    except ValueError as e:
        print(f"mmzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
