"""The `mmzoo` command line.

    mmzoo presets [--family encoders]   list the registered presets
    mmzoo demo [--batch-size 8]         run every tiny encoder preset on a batch

`mmzoo demo` is the smoke test a new user runs after installing: it builds each
`*_tiny` encoder, runs one XLA-compiled forward pass on a batch, and prints a
table of output shapes, parameter counts and time per batch.
"""

import argparse
import os
import sys
import time


def _demo_inputs(name, model, batch_size, rng):
    import numpy as np

    inputs = model.input
    if isinstance(inputs, dict):  # text towers
        vocabulary_size = model.get_layer("token_and_position_embedding").vocabulary_size
        length = inputs["token_ids"].shape[1]
        lengths = rng.randint(2, length + 1, size=batch_size)
        mask = np.arange(length)[None, :] < lengths[:, None]
        ids = rng.randint(1, vocabulary_size, size=(batch_size, length)) * mask
        return {"token_ids": ids.astype("int32"), "padding_mask": mask}
    return rng.rand(batch_size, *inputs.shape[1:]).astype("float32")


def run_demo(batch_size=8, repeats=3, out=sys.stdout):
    """Builds every tiny encoder preset and times a compiled forward pass.

    Returns:
        list of dicts, one per preset: `preset`, `parameters`,
        `sequence_output`, `pooled_output` (shapes) and `ms_per_batch`.
    """
    import keras
    import numpy as np

    from mmzoo import presets

    rng = np.random.RandomState(0)
    rows = []
    for name in presets.list_presets(family="encoders"):
        if not name.endswith("_tiny"):
            continue
        model = presets.build_from_preset(name)
        x = _demo_inputs(name, model, batch_size, rng)
        model.compile(jit_compile=True)
        model.predict_on_batch(x)  # compile once
        start = time.perf_counter()
        for _ in range(repeats):
            y = model.predict_on_batch(x)
        ms = 1000 * (time.perf_counter() - start) / repeats
        if not all(np.all(np.isfinite(v)) for v in y.values()):
            raise RuntimeError(f"Preset {name} produced non-finite outputs.")
        rows.append(
            {
                "preset": name,
                "parameters": model.count_params(),
                "sequence_output": tuple(y["sequence_output"].shape),
                "pooled_output": tuple(y["pooled_output"].shape),
                "ms_per_batch": ms,
            }
        )
        keras.backend.clear_session()
    header = f"{'preset':<28}{'parameters':>12}  {'sequence_output':<18}{'pooled_output':<15}{'ms/batch':>9}"
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        print(
            f"{r['preset']:<28}{r['parameters']:>12,}  {str(r['sequence_output']):<18}"
            f"{str(r['pooled_output']):<15}{r['ms_per_batch']:>9.1f}",
            file=out,
        )
    return rows


def _list_presets(family, out=sys.stdout):
    from mmzoo import presets

    for name in presets.list_presets(family=family):
        preset = presets.get_preset(name)
        print(f"{name:<40}{preset.family:<12}{preset.description}", file=out)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mmzoo", description="Multimodal models for Keras 3 / TensorFlow."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("presets", help="list the registered presets")
    p.add_argument("--family", default=None, help="only this family (e.g. encoders)")
    p = sub.add_parser("demo", help="run every tiny encoder preset on a batch")
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument("--repeats", type=_positive_int, default=3)
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def main(argv=None):
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
    try:
        if args.command == "presets":
            _list_presets(args.family)
        elif args.command == "demo":
            run_demo(batch_size=args.batch_size, repeats=args.repeats)
    except ValueError as e:
        print(f"mmzoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
