"""Does the tiny video QA model learn? Trains on `shapes_video_qa`, reports accuracy by question type.

Trains a `video_qa_*` preset with `model.fit` (XLA) on the built-in synthetic
clips within a wall-clock budget per answer mode, then answers the test split
and scores it with `mmzoo.evaluation.vqa_metrics` (exact match and VQA
accuracy, by question type), against the majority-answer baseline of each
question type computed from the training split.

    python benchmarks/video_qa_quality.py --max-minutes 10

Clips are generated once, before the clock starts, and kept in memory as
uint8 (8-bit, as decoded video frames are); the training budget covers
`fit` only. Prints a table and appends it, with the command, to
benchmarks/README.md.
"""

import argparse
import collections
import json
import os
import time

from _common import TimeBudget
from _common import add_budget_arguments
from _common import record

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--preset", default="video_qa_tiny")
PARSER.add_argument("--modes", default="classify,generate", help="answer modes to train, in order")
PARSER.add_argument("--fusion", default=None, help="override the preset's fusion")
PARSER.add_argument(
    "--overrides", default=None,
    help='JSON of preset overrides, e.g. \'{"video_encoder": {"tubelet_size": [2, 4, 4]}}\'',
)
PARSER.add_argument("--train-examples", type=int, default=16000)
PARSER.add_argument("--test-examples", type=int, default=1000)
PARSER.add_argument("--validation-examples", type=int, default=500)
PARSER.add_argument("--eval-every", type=int, default=0, help="print validation accuracy every N steps")
PARSER.add_argument("--warmup-steps", type=int, default=200)
PARSER.add_argument("--batch-size", type=int, default=64)
PARSER.add_argument("--learning-rate", type=float, default=2e-3)
PARSER.add_argument("--weight-decay", type=float, default=0.01)
# About the steps `video_qa_tiny` makes in 10 CPU minutes, so the cosine schedule ends.
PARSER.add_argument("--max-steps", type=int, default=4500, help="length of the cosine schedule")
add_budget_arguments(PARSER, 10.0, "training budget per answer mode")
PARSER.add_argument("--seed", type=int, default=0)
PARSER.add_argument("--no-record", action="store_true", help="do not append to README.md")


def load_split(split, num_examples, seed):
    """All clips of a split in memory: videos as uint8, texts as str."""
    import numpy as np
    from mmzoo import data

    chunks = collections.defaultdict(list)
    examples = data.load_synthetic("shapes_video_qa", split, num_examples=num_examples, seed=seed)
    for batch in examples.batch(256).as_numpy_iterator():
        chunks["videos"].append(np.round(batch["videos"] * 255).astype("uint8"))
        for key in ("questions", "answers", "question_types"):
            chunks[key].extend(s.decode() for s in batch[key])
        chunks["answer_ids"].append(batch["answer_ids"])
    return {
        "videos": np.concatenate(chunks["videos"]),
        "answer_ids": np.concatenate(chunks["answer_ids"]),
        **{k: np.array(chunks[k], dtype=object) for k in ("questions", "answers", "question_types")},
    }


def majority_baseline(train):
    """The most common training answer of each question type."""
    answers = collections.defaultdict(collections.Counter)
    for question_type, answer in zip(train["question_types"], train["answers"]):
        answers[question_type][answer] += 1
    return {t: c.most_common(1)[0][0] for t, c in answers.items()}


def train_pipeline(train, model, batch_size, seed, answer_tokens=None):
    """In-memory clips -> `mmzoo.data.video_qa_pipeline` -> (x, y) batches."""
    import tensorflow as tf
    import mmzoo
    from mmzoo import data

    examples = tf.data.Dataset.from_tensor_slices(
        {k: train[k].astype(str) if train[k].dtype == object else train[k]
         for k in ("videos", "questions", "answer_ids")}
    ).map(lambda x: {**x, "videos": tf.cast(x["videos"], tf.float32) / 255.0})
    batches = data.video_qa_pipeline(examples, model, batch_size=batch_size, seed=seed)
    if answer_tokens is not None:
        # Generate mode: each answer id -> its packed answer tokens.
        token_ids = tf.constant(answer_tokens["token_ids"])
        padding_mask = tf.constant(answer_tokens["padding_mask"])
        batches = batches.map(
            lambda x: {
                **x,
                "answer_token_ids": tf.gather(token_ids, x["answer_ids"]),
                "answer_padding_mask": tf.gather(padding_mask, x["answer_ids"]),
            }
        )
    return batches.map(mmzoo.models.video_qa_training_split)


def train_and_answer(args, mode, train, test, tokenizer, validation):
    import keras
    import mmzoo
    from mmzoo import data

    keras.utils.set_random_seed(args.seed)
    overrides = {
        "question_encoder": {"vocabulary_size": tokenizer.vocabulary_size},
        "answer_mode": mode,
        # Packs questions to the question tower's length (and, in generate
        # mode, answers to the model's answer length).
        "preprocessor": mmzoo.models.VideoQAPreprocessor(tokenizer),
    }
    if args.fusion:
        overrides["fusion"] = args.fusion
    if args.overrides:
        overrides.update(json.loads(args.overrides))
    if mode == "classify":
        overrides["answer_vocabulary"] = list(data.VIDEO_QA_ANSWERS)
        loss = mmzoo.losses.SoftTargetCrossEntropy()
    else:
        # One word per answer: the answer tokenizer's vocabulary is the
        # reserved tokens and the answer words.
        overrides["answer_vocabulary"] = list(data.RESERVED_TOKENS) + list(data.VIDEO_QA_ANSWERS)
        loss = mmzoo.losses.MaskedSequenceCrossEntropy()
    model = mmzoo.presets.build_from_preset(args.preset, **overrides)
    answer_tokens = None
    if mode == "generate":
        # Each answer's packed tokens, by the model's own answer rule.
        packed = model.preprocessor.preprocess_answers(list(data.VIDEO_QA_ANSWERS))
        answer_tokens = {
            "token_ids": packed["answer_token_ids"].numpy(),
            "padding_mask": packed["answer_padding_mask"].numpy(),
        }
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, args.max_steps, warmup_target=args.learning_rate, warmup_steps=args.warmup_steps,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay),
        loss=loss, jit_compile=True,
    )
    batches = train_pipeline(train, model, args.batch_size, args.seed, answer_tokens)

    def evaluate():
        # Validation clips, never the test split.
        n = len(validation["answers"])
        predictions = model.answer(validation["videos"], list(validation["questions"]), batch_size=100)
        metrics = mmzoo.evaluation.vqa_metrics(
            predictions, list(validation["answers"]), question_types=list(validation["question_types"])
        )
        by_type = " ".join(f"{t} {m['exact_match']:.2f}" for t, m in metrics["by_question_type"].items())
        return f"validation exact match {metrics['exact_match']:.3f} on {n} ({by_type})"

    budget = TimeBudget(args.max_minutes, args.clock, args.eval_every, evaluate)
    # Epochs of 200 steps, only to print the loss as training goes.
    history = model.fit(
        batches, steps_per_epoch=min(200, args.max_steps),
        epochs=max(1, args.max_steps // 200), verbose=2, callbacks=[budget.callback],
    )
    train_minutes = budget.train_seconds / 60
    cpu_minutes = budget.cpu_seconds / 60
    start = time.perf_counter()
    predictions = model.answer(test["videos"], list(test["questions"]), batch_size=100)
    answer_seconds = time.perf_counter() - start
    return {
        "model": model,
        "predictions": predictions,
        "steps": int(model.optimizer.iterations.numpy()),
        "train_minutes": train_minutes,
        "cpu_minutes": cpu_minutes,
        "compile_seconds": budget.compile_seconds,
        "final_loss": history.history["loss"][-1],
        "answer_seconds": answer_seconds,
    }


def main(args):
    import mmzoo
    from mmzoo import data

    start = time.perf_counter()
    train = load_split("train", args.train_examples, args.seed)
    test = load_split("test", args.test_examples, args.seed)
    validation = load_split("validation", args.validation_examples, args.seed)
    print(f"generated {len(train['answers'])} + {len(test['answers'])} clips "
          f"in {time.perf_counter() - start:.0f} s; clips {train['videos'].shape[1:]}")
    vocabulary = data.train_word_piece_vocabulary(list(train["questions"]), vocabulary_size=128)
    tokenizer = data.TextTokenizer(vocabulary)

    majority = majority_baseline(train)
    baseline = mmzoo.evaluation.vqa_metrics(
        [majority[t] for t in test["question_types"]], list(test["answers"]),
        question_types=list(test["question_types"]),
    )
    results = {}
    for mode in args.modes.split(","):
        run = train_and_answer(args, mode, train, test, tokenizer, validation)
        run["metrics"] = mmzoo.evaluation.vqa_metrics(
            run["predictions"], list(test["answers"]), question_types=list(test["question_types"])
        )
        results[mode] = run
        print(f"{mode}: exact match {run['metrics']['exact_match']:.3f} after {run['steps']} steps")

    modes = list(results)
    types = sorted(baseline["by_question_type"])
    header = "| question type | test clips | majority answer (train) | majority baseline | " + " | ".join(
        f"{m} accuracy" for m in modes
    ) + " |"
    lines = [header, "|" + " --- |" * (4 + len(modes))]
    for t in types:
        row = [t, str(baseline["by_question_type"][t]["count"]), majority[t],
               f"{baseline['by_question_type'][t]['exact_match']:.3f}"]
        row += [f"{results[m]['metrics']['by_question_type'][t]['exact_match']:.3f}" for m in modes]
        lines.append("| " + " | ".join(row) + " |")
    row = ["all", str(baseline["count"]), "", f"{baseline['exact_match']:.3f}"]
    row += [f"{results[m]['metrics']['exact_match']:.3f}" for m in modes]
    lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)

    run_lines = ["| answer mode | parameters | steps x batch | XLA compile (s, wall) | training min (wall) | "
                 "training CPU min | final loss | VQA accuracy | answering (ms/clip) |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in modes:
        r = results[m]
        run_lines.append(
            f"| {m} | {r['model'].count_params():,} | {r['steps']} x {args.batch_size} | "
            f"{r['compile_seconds']:.0f} | {r['train_minutes']:.1f} | {r['cpu_minutes']:.1f} | {r['final_loss']:.3f} | "
            f"{r['metrics']['vqa_accuracy']:.3f} | {r['answer_seconds'] * 1000 / len(test['answers']):.1f} |"
        )
    runs = "\n".join(run_lines)

    checks = []
    if "classify" in results:
        c = results["classify"]["metrics"]
        margins = {t: c["by_question_type"][t]["exact_match"] - baseline["by_question_type"][t]["exact_match"]
                   for t in types}
        checks.append(f"classify accuracy {c['exact_match']:.3f} >= 0.8: "
                      f"{'yes' if c['exact_match'] >= 0.8 else 'NO'}")
        worst = min(margins, key=margins.get)
        checks.append(f"smallest margin over the majority baseline: {margins[worst]:+.3f} ({worst}); "
                      f">= 0.3 on every type: {'yes' if margins[worst] >= 0.3 else 'NO'}")
        if "generate" in results:
            gap = c["exact_match"] - results["generate"]["metrics"]["exact_match"]
            checks.append(f"generate - classify: {-gap:+.3f}; within 0.1: {'yes' if abs(gap) <= 0.1 else 'NO'}")
    load = os.getloadavg()[0]
    body = (
        f"`{args.preset}`{' fusion=' + args.fusion if args.fusion else ''}"
        f"{' overrides ' + args.overrides if args.overrides else ''}, "
        f"{len(train['answers'])} training clips of {train['videos'].shape[1]} frames "
        f"{train['videos'].shape[2]}x{train['videos'].shape[3]}, AdamW lr {args.learning_rate} "
        f"(cosine over {args.max_steps} steps), at most {args.max_minutes:g} {'CPU' if args.clock == 'cpu' else 'wall-clock'} minutes of "
        f"`fit` per answer mode after the first step (the XLA compilation, timed apart); exact-match accuracy on {len(test['answers'])} test clips "
        "(one reference answer each, so VQA accuracy equals exact match); the majority "
        "baseline answers each question type's most common training answer.\n\n"
        f"{table}\n\n{runs}\n\n" + "\n".join(f"- {c}" for c in checks)
        + f"\n\n1-minute load average at the end: {load:.1f} ({os.cpu_count()} cores)."
    )
    print("\n" + body)
    for m in modes:
        wrong = [(q, p, a) for q, p, a in zip(test["questions"], results[m]["predictions"], test["answers"]) if p != a]
        print(f"\n{m}: some mistakes (question, predicted, true):")
        for item in wrong[:5]:
            print("  ", item)
    if not args.no_record:
        record("Video QA quality", body)
    return results


if __name__ == "__main__":
    main(PARSER.parse_args())
