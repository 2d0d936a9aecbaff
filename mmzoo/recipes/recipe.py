"""The one train / evaluate / export recipe, and the `Recipe` that says what a family changes.

Every family runs the same steps; its `Recipe` (in `mmzoo/recipes/<family>.py`)
holds only what differs: how its examples are read, how its model is built
around the run's tokenizer, its training pipeline and loss, how it is scored
and how it is exported.

* `train`: checks the preset, builds the tower that decides the input shape
  (an image or video tower; it takes no vocabulary), reads the examples at
  that shape, trains the run's tokenizer (or reads it back on resume: the
  vocabulary must not change), builds the model around both (the tower
  passed in, built once) with its preprocessor, and trains it with
  `mmzoo.training.Trainer`. The pipeline, the loss and every length come
  from the model.
* `evaluate`: reads the run's `model.keras` (nothing else: the model
  carries its preprocessor), reads the examples at the shape of the model's
  image or video converter, scores them and writes `eval_<split>.json`.
  Every family returns the same type: the scores dict written to that file.
* `export`: writes the serving SavedModel of the run's `model.keras`.

The options and their defaults are held here (`OPTIONS`) and in each
family's `Recipe.options`; `train_<family>` / `evaluate_<family>` /
`export_<family>` and the `mmzoo` command read them from there.

Example:

```python
from mmzoo import recipes

recipes.train("video_qa", steps=500, model_dir="runs/vqa")
recipes.evaluate("video_qa", "runs/vqa")["vqa_accuracy"]
scores, outputs = recipes.evaluate_with_outputs("video_qa", "runs/vqa")
outputs["predictions"][:3]
recipes.RECIPES["video_qa"].defaults("train")["batch_size"]  # 32
```
"""

import dataclasses
import inspect
import os
import sys
from typing import Callable
from typing import Optional

from mmzoo.recipes import _common

ACTIONS = ("train", "evaluate", "export")
REQUIRED = inspect.Parameter.empty
# The options every family's recipe takes: `(positional, keyword_only)`, in
# the order of the positional parameters. A family's `Recipe.options`
# changes some defaults and adds its own options (keyword-only). The train
# defaults `preset` and `model_dir` are the family's (`<family>_tiny`,
# `runs/<family>`).
OPTIONS = {
    "train": (
        {
            "preset": None,
            "data_spec": "synthetic",
            "steps": 2000,
            "model_dir": None,
            "strategy": "auto",
            "batch_size": 64,
            "learning_rate": 1e-3,
            "vocabulary_size": 128,
            "num_examples": 20000,
            "seed": 0,
            "checkpoint_every": 500,
            "verbose": 1,
            "deterministic": True,
            "strict": False,
        },
        {"init_from": None, "lora_rank": None},
    ),
    "evaluate": (
        {"model_dir": REQUIRED, "data_spec": "synthetic", "split": "test", "num_examples": 500},
        {"batch_size": 64, "strict": False},
    ),
    "export": (
        {"model_dir": REQUIRED, "output": None},
        {"overwrite": False, "max_image_pixels": None, "quantize": None},
    ),
}


# The train options that put a keras-hub preset in a new model, and the
# `mmzoo.encoders` builder of each (the text tower's is called by the
# family's `build_model`, at the length of the tower it replaces).
KERAS_HUB_TOWERS = {
    "image_encoder": "build_keras_hub_image_tower",
    "video_encoder": "build_keras_hub_video_tower",
    "text_encoder": "build_keras_hub_text_tower",
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What one family's recipe does differently; the steps are `train` / `evaluate` / `export`.

    Args:
        family: str. The family name (`mmzoo train FAMILY`).
        model_class: str. The class name of the family's model, or of their
            base class (recognises runs made before `run.json` existed).
        tower: `(preset, config) -> encoder`: the preset value of the tower
            that decides the examples' shape (an image or video tower, built
            first); raises a clear error for a preset this recipe cannot
            train.
        texts: str. The example key of the texts the run's vocabulary is
            trained on (`"captions"`).
        load_examples: `(data_spec, split, input_shape, num_examples, seed,
            strict) -> (examples, report)`: unbatched examples of a `--data`
            value, read at `input_shape` (`(height, width, 3)` or `(frames,
            height, width, 3)`), and the manifest's `LoadReport` or None.
            A recipe that reads `tfrecord:` or `tfds:` data also takes
            `input_context=` (one input pipeline's share) and, for
            `tfrecord:`, `shuffle_buffer=` (records shuffled before decoding).
        build_model: `(preset, tower, tokenizer, **model_options) -> model`:
            the preset with the built tower passed in, the run's vocabulary
            and a preprocessor holding `tokenizer` (called in the strategy
            scope); with a `text_encoder` train option (a keras-hub text
            preset), `text_encoder=` too, and `tokenizer` is the preset's.
        pipeline: `(examples, model, batch_size, seed, deterministic, report,
            **train_options, **pipeline_options) -> dataset` of the Trainer's
            `(x, y)` batches; `pipeline_options` go to the `mmzoo.data`
            pipeline (`shuffle_buffer=None` for examples shuffled already).
        loss: `(model) -> loss` for `mmzoo.training.Trainer`.
        score: `(model, examples, batch_size, **evaluate_options) ->
            (scores, outputs)`: `examples` is a non-empty list of NumPy
            example dicts; `scores` a JSON-serialisable dict, `outputs` the
            per-example inputs and predictions (see the family's
            `evaluate_<family>`).
        export: `(model, output, overwrite, **export_options)` writing the
            serving SavedModel, or None for a family without one.
        options: dict, action -> `{name: default}`: the family's defaults
            of shared options (`{"train": {"batch_size": 32}}`) and its own
            options (keyword-only), e.g. `{"train": {"fold_answer_case":
            False}}`.
        cross_replica_loss: bool. The loss gathers across replicas (an
            all-gather, which XLA on CPU cannot compile): with several
            replicas the step runs without XLA.
        from_pretrained: `(preset, **model_options) -> model` or None: the
            family's model from a preset mmzoo does not register (a
            keras-hub preset name or directory), with the preset's weights
            and preprocessor (called in the strategy scope); None for a
            family without one.
        model_options: names of the family's train options that
            `from_pretrained` takes (e.g. `freeze_image_encoder`); they
            apply to such presets only (`freeze_image_encoder` also to an
            `image_encoder` tower).
        shuffle_buffer: int. The training pipeline's shuffle buffer, in
            examples; `tfrecord:` data is shuffled this many records at a
            time before decoding instead.
    """

    family: str
    model_class: str
    tower: Callable
    texts: str
    load_examples: Callable
    build_model: Callable
    pipeline: Callable
    loss: Callable
    score: Callable
    export: Optional[Callable] = None
    options: dict = dataclasses.field(default_factory=dict)
    cross_replica_loss: bool = False
    from_pretrained: Optional[Callable] = None
    shuffle_buffer: int = 1024
    model_options: tuple = ()

    def defaults(self, action):
        """`{option: default}` of `action` (`"train"`, `"evaluate"`, `"export"`).

        Required options (`model_dir` of `evaluate` and `export`) are left out.
        """
        return {
            name: parameter.default
            for name, parameter in self.signature(action).parameters.items()
            if parameter.default is not REQUIRED
        }

    def signature(self, action):
        """The `inspect.Signature` of `action`'s options: what `<action>_<family>` takes."""
        if action not in ACTIONS:
            raise ValueError(f"`action` must be one of {ACTIONS}. Received: action={action!r}")
        positional, keyword_only = (dict(group) for group in OPTIONS[action])
        if action == "train":
            positional.update(
                preset=f"{self.family}_tiny", model_dir=os.path.join("runs", self.family)
            )
        for name, value in self.options.get(action, {}).items():
            group = positional if name in positional else keyword_only
            group[name] = value
        kinds = (
            (positional, inspect.Parameter.POSITIONAL_OR_KEYWORD),
            (keyword_only, inspect.Parameter.KEYWORD_ONLY),
        )
        return inspect.Signature([
            inspect.Parameter(name, kind, default=default)
            for group, kind in kinds
            for name, default in group.items()
        ])

    def bind(self, action, args, kwargs):
        """Every option of `action`: `args` and `kwargs` with the defaults filled in.

        Raises `TypeError` for an unknown option, as a Python function does.
        """
        try:
            bound = self.signature(action).bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{action}_{self.family}(): {e}") from None
        bound.apply_defaults()
        return dict(bound.arguments)


def with_options(recipe, action):
    """Gives a `<action>_<family>` wrapper the signature of the recipe's options.

    `help()` and `inspect.signature` then show every option with its
    default, read from `OPTIONS` and `recipe.options` (held nowhere else).
    """

    def decorate(function):
        function.__signature__ = recipe.signature(action)
        return function

    return decorate


def get_recipe(recipe):
    """The `Recipe` of a family name (a `Recipe` is returned as is)."""
    if isinstance(recipe, Recipe):
        return recipe
    from mmzoo.recipes import RECIPES

    if recipe not in RECIPES:
        raise ValueError(
            f"Unknown family. Available: {sorted(RECIPES)}. Received: family={recipe!r}"
        )
    return RECIPES[recipe]


# ------------------------------------------------------------------ train
def train(recipe, /, *args, **options):
    """Trains a preset of the family with `mmzoo.training.Trainer`; returns the `fit` history.

    Args:
        recipe: `Recipe` or family name.
        preset: str. A preset of the family (default `<family>_tiny`), or
            for families that take one (dual encoders) a keras-hub preset
            name or directory: the run starts from its weights, tokenizer
            and image normalisation.
        data_spec: str. `synthetic`, `tfds:NAME`, `tfrecord:DIR` (shards of
            `mmzoo.data.pack_records`) or a manifest path (what the family
            reads; see its recipe).
        steps: int. Train to this step (a run resumes from its checkpoints).
        model_dir: str. The run directory (default `runs/<family>`).
        strategy: str. A `mmzoo.training.get_strategy` name.
        batch_size: int. Global batch size.
        learning_rate: float. Peak of the warm-up + cosine schedule (AdamW,
            weight decay 0.01, global norm clipped to 1).
        vocabulary_size: int. Most tokens of the run's WordPiece vocabulary.
        num_examples: int. Training examples read.
        seed: int.
        checkpoint_every: int. Steps between checkpoints.
        verbose: int. 0 silent, 1 progress.
        deterministic: bool. Two runs with the same seed and data give
            bit-identical weights (TensorFlow's op determinism; see
            `mmzoo.training.Trainer`).
        strict: bool. Stop at the first bad record of a manifest instead of
            skipping it.
        init_from: str or None. A run directory whose `model.keras` (and its
            preprocessor) the run starts from, instead of a new model of
            `preset`: fine-tuning.
        lora_rank: int or None. With `init_from`: train LoRA adapters of this
            rank on every part of the model (`model.enable_lora`), the rest
            frozen; the run's `model.keras` holds the merged weights and
            `adapters.lora.h5` the adapters alone.
        **family_options: the family's own options: `fold_answer_case` for
            video QA; `image_encoder` (a keras-hub image preset name or
            directory: ViT, DINOv2, ResNet, EfficientNet, CLIP / SigLIP
            vision) for captioning, fusion and dual encoders, the image
            tower of the new model, with its weights and normalisation
            (`mmzoo.encoders.build_keras_hub_image_tower`); the examples are
            read at its image size; `text_encoder` (a keras-hub text preset:
            BERT, DistilBERT, RoBERTa, ...) for fusion, video QA and dual
            encoders, the text (question) tower with its tokenizer, at the
            length of the preset's tower it replaces; `video_encoder` (a
            keras-hub VideoPrism preset) for video QA, the video tower.

    Returns:
        The `Trainer.fit` history (list of logged rows).
    """
    recipe = get_recipe(recipe)
    return _train(recipe, **recipe.bind("train", args, options))


def _train(
    recipe, preset, data_spec, steps, model_dir, strategy, batch_size, learning_rate,
    vocabulary_size, num_examples, seed, checkpoint_every, verbose, deterministic, strict,
    init_from=None, lora_rank=None, **family_options,
):
    import keras

    from mmzoo import presets
    from mmzoo import training

    model_options = {name: family_options.pop(name) for name in recipe.model_options}
    # keras-hub presets as towers: `{option: preset}` of those given (a
    # family takes an image or a video tower, not both, and a text tower).
    hub_towers = {
        option: value for option in KERAS_HUB_TOWERS
        if (value := family_options.pop(option, None)) is not None
    }
    text_encoder = hub_towers.get("text_encoder")
    pretrained = recipe.from_pretrained is not None and preset not in presets.list_presets()
    if pretrained and init_from is not None:
        raise ValueError(
            "Start from a keras-hub preset (--preset) or from a run (--init-from), not "
            f"both. Received: --preset {preset!r} --init-from {init_from!r}"
        )
    for option, value in hub_towers.items():
        if pretrained or init_from is not None:
            flag = "--" + option.replace("_", "-")
            raise ValueError(
                f"{flag} puts a keras-hub preset in a new model of an mmzoo --preset; a "
                "keras-hub --preset or --init-from brings its own towers. Received: "
                f"--preset {preset!r} --init-from {init_from!r} {flag} {value!r}"
            )
    if not pretrained:
        config = _common.check_family(preset, recipe.family).config
        given = {name: value for name, value in model_options.items()
                 if value != recipe.defaults("train")[name]}
        if given and not set(hub_towers) - {"text_encoder"}:
            raise ValueError(
                f"{sorted(given)} apply to keras-hub presets only (--preset NAME_OR_DIR "
                f"or --image-encoder NAME_OR_DIR). Received: --preset {preset!r}"
            )
    if lora_rank is not None and init_from is None:
        raise ValueError(
            "LoRA adapts a trained model: pass --init-from RUN_DIR (the run to start from) "
            f"with --lora-rank. Received: --lora-rank {lora_rank}"
        )
    _common.check_fine_tuning(model_dir, init_from, lora_rank)
    if init_from is None and not pretrained:
        tower_spec = recipe.tower(preset, config)  # refuses presets the recipe cannot train
    strategy = training.get_strategy(strategy)
    keras.utils.set_random_seed(seed)
    settings = {"batch_size": batch_size, "seed": seed}
    if init_from is not None:
        settings.update(init_from=os.path.abspath(init_from), lora_rank=lora_rank)
    settings.update(
        {option: _common.preset_reference(value) for option, value in hub_towers.items()}
    )
    chief = training.is_chief(strategy)
    with _common.run_directory(model_dir, recipe.family, preset, chief=chief, **settings):
        if pretrained:
            # The preset's weights, tokenizer and image normalisation.
            with strategy.scope():
                model = recipe.from_pretrained(preset, **model_options)
            shape = _common.example_shape(model)
            examples, report = recipe.load_examples(
                data_spec, "train", shape, num_examples, seed, strict
            )
        elif init_from is not None:
            with strategy.scope():
                model = _common.load_run(init_from, recipe.family)
                if lora_rank is not None:
                    report = model.enable_lora(lora_rank)
                    if verbose:
                        print(
                            f"LoRA rank {lora_rank} on {report['layers']} layers: "
                            f"{report['trainable_parameters']:,} of "
                            f"{report['total_parameters']:,} parameters trainable "
                            f"({report['trainable_fraction']:.1%})",
                            file=sys.stderr,
                        )
            shape = _common.example_shape(model)
            examples, report = recipe.load_examples(
                data_spec, "train", shape, num_examples, seed, strict
            )
        else:
            # The tower takes no vocabulary, so it is built first: its input
            # shape says how to read the examples, whose texts train the
            # vocabulary that the rest of the model is built with.
            with strategy.scope():
                option = next((o for o in hub_towers if o != "text_encoder"), None)
                if option is not None:  # a keras-hub preset and its normalisation
                    from mmzoo import encoders

                    build = getattr(encoders, KERAS_HUB_TOWERS[option])
                    tower = build(hub_towers[option], dtype=config.get("dtype"))
                else:
                    tower = _common.build_encoder(tower_spec, dtype=config.get("dtype"))
            shape = _common.input_shape(tower)
            examples, report = recipe.load_examples(
                data_spec, "train", shape, num_examples, seed, strict
            )
            if text_encoder is not None:  # the preset's own tokenizer
                import keras_hub

                tokenizer = keras_hub.models.Tokenizer.from_preset(text_encoder)
                model_options["text_encoder"] = text_encoder
            else:
                tokenizer = _common.run_tokenizer(
                    model_dir, examples.map(lambda x: x[recipe.texts]), vocabulary_size,
                    save=chief,
                )
            with strategy.scope():
                model = recipe.build_model(preset, tower, tokenizer, **model_options)
        schedule = training.warmup_cosine_decay(
            learning_rate, total_steps=steps, warmup_steps=min(200, steps // 10)
        )
        trainer = training.Trainer(
            model=model,
            loss=recipe.loss(model),
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01, global_clipnorm=1.0),
            strategy=strategy,
            model_dir=model_dir,
            jit_compile=not recipe.cross_replica_loss or strategy.num_replicas_in_sync == 1,
            deterministic=deterministic,
        )
        if data_spec.startswith(("tfrecord:", "tfds:")):
            # Each worker reads and decodes only its share.
            dataset, report = _per_worker_input(
                recipe, data_spec, shape, num_examples, model, batch_size, seed, deterministic,
                strict, family_options,
            )
        else:
            dataset = recipe.pipeline(
                examples, model, batch_size=batch_size, seed=seed, deterministic=deterministic,
                report=report, **family_options,
            )
        history = _common.fit(trainer, dataset, steps, checkpoint_every, verbose, model_dir, report)
        if lora_rank is not None and training.is_chief(trainer.strategy):
            model.save_lora_weights(os.path.join(model_dir, _common.ADAPTERS_FILE))
        return history


def _per_worker_input(recipe, data_spec, shape, num_examples, model, batch_size, seed,
                      deterministic, strict, family_options):
    """A dataset function over `tfrecord:` or `tfds:` data, and one returning its report.

    `Trainer.fit` calls the function with this worker's input context: the
    shards (or records) of its share are read and decoded, and the pipeline
    batches them per replica. Each of P input pipelines reads at most
    `ceil(num_examples / P)` examples of its share.
    """
    reports = []  # the report of this worker's share, once `fit` has called dataset_fn
    # Shards are shuffled as records, before decoding: the buffer (and the
    # iterator state in every checkpoint) then holds encoded records, not
    # decoded pixels.
    records = {"shuffle_buffer": recipe.shuffle_buffer} if data_spec.startswith("tfrecord:") else {}

    def dataset_fn(context):
        share = num_examples and -(-num_examples // context.num_input_pipelines)
        examples, report = recipe.load_examples(
            data_spec, "train", shape, share, seed, strict, input_context=context, **records
        )
        if report is not None and context.num_input_pipelines > 1:
            report.manifest_path = (
                f"{report.manifest_path} (input pipeline {context.input_pipeline_id} "
                f"of {context.num_input_pipelines})"
            )
        reports.append(report)
        # Already this worker's share: the pipeline only batches it per replica.
        return recipe.pipeline(
            examples, model, batch_size=context.get_per_replica_batch_size(batch_size),
            seed=seed, deterministic=deterministic, report=report,
            **({"shuffle_buffer": None} if records else {}), **family_options,
        )

    return dataset_fn, lambda: reports[-1] if reports else None


# --------------------------------------------------------------- evaluate
def evaluate(recipe, /, *args, **options):
    """Scores the run's `model.keras` on a split; writes and returns `eval_<split>.json`.

    Only `model.keras` is read: the model carries its tokenizer and image or
    video converter.

    Args:
        recipe: `Recipe` or family name.
        model_dir: str. The run directory.
        data_spec: str. As in `train`.
        split: str. The split of built-in or TFDS data (a manifest is one split).
        num_examples: int. Examples scored.
        batch_size: int. Examples per model call.
        strict: bool. As in `train`.
        **family_options: the family's own options (`method`, `num_beams`
            for captioning).

    Returns:
        dict: the scores, JSON-serialisable, as written to
        `<model_dir>/eval_<split>.json`; the same type for every family.
    """
    return evaluate_with_outputs(recipe, *args, **options)[0]


def evaluate_with_outputs(recipe, /, *args, **options):
    """`evaluate`, also returning what was scored: `(scores, outputs)`.

    `scores` is what `evaluate` returns; `outputs` is a dict of the scored
    inputs and the model's predictions, one entry per example (the keys are
    listed in each family's `evaluate_<family>`), e.g. for captioning
    `{"images", "references", "captions"}`.
    """
    recipe = get_recipe(recipe)
    return _evaluate(recipe, **recipe.bind("evaluate", args, options))


def _evaluate(recipe, model_dir, data_spec, split, num_examples, batch_size, strict,
              **family_options):
    model = _common.load_run(model_dir, recipe.family)
    examples, _ = recipe.load_examples(
        data_spec, split, _common.example_shape(model), num_examples, 0, strict
    )
    examples = list(examples.as_numpy_iterator())
    if not examples:
        raise ValueError(
            f"No examples to evaluate. Received: --data {data_spec!r} --split {split!r}"
        )
    scores, outputs = recipe.score(model, examples, batch_size=batch_size, **family_options)
    _common.write_json(os.path.join(model_dir, f"eval_{split}.json"), scores)
    return scores, outputs


# ----------------------------------------------------------------- export
def export(recipe, /, *args, **options):
    """Writes the run's serving SavedModel; returns its path.

    Args:
        recipe: `Recipe` or family name.
        model_dir: str. The run directory (only its `model.keras` is read).
        output: str or None. Default `<model_dir>/saved_model`.
        overwrite: bool. Replace a directory mmzoo did not write (never a
            run directory); see `mmzoo.training.writes`.
        max_image_pixels: int or None. Serving refuses larger encoded images
            before decoding them (None: the exporter's default).
        quantize: None, `"int8"` or `"int4"`: quantize the weights
            (`model.quantize`) before exporting; the run's `model.keras` is
            not changed.
        **family_options: the family's own options (`method`, `num_beams`
            for captioning).
    """
    recipe = get_recipe(recipe)
    if recipe.export is None:
        raise ValueError(f"The {recipe.family} family has no serving export. "
                         f"Received: family {recipe.family!r}")
    return _export(recipe, **recipe.bind("export", args, options))


def _export(recipe, model_dir, output, overwrite, max_image_pixels, quantize=None,
            **family_options):
    model = _common.load_run(model_dir, recipe.family)
    if quantize is not None:
        model.quantize(quantize)
    output = output or os.path.join(model_dir, "saved_model")
    pixels = {} if max_image_pixels is None else {"max_image_pixels": max_image_pixels}
    recipe.export(model, output, overwrite=overwrite, **pixels, **family_options)
    return output


__all__ = [
    "ACTIONS", "OPTIONS", "Recipe", "evaluate", "evaluate_with_outputs", "export",
    "get_recipe", "train", "with_options",
]
