"""Every ```python block of README.md runs as written, with small step counts.

Each block runs on its own, in a fresh namespace and in a temporary working
directory (files such as `captioner.keras` land there), so a block that uses
a name it does not define fails here instead of leaving the reader to guess.
Tracebacks point at README.md lines.

The only change made to a block before it runs: training lengths written as
integer literals, `steps_per_epoch=<N>` and `steps=<N>`, become
`SMALL_STEPS` (a regular expression on the text). Every `.fit(...)` call of
a block must then pass `steps_per_epoch=SMALL_STEPS` or `steps=SMALL_STEPS`
(checked on the rewritten code's syntax tree), so a new block cannot escape
the rewrite and train for its full length here. Nothing else is patched:
the synthetic datasets are generated lazily, so a block reads only the
batches it trains on, plus one pass over the default 5,000 training examples
to build its vocabulary (about 3 s).

The ```bash blocks are not run (they install packages or train for minutes);
the `mmzoo` commands in them are parsed with the CLI's own parser, so a
renamed flag or family fails here.
"""

import ast
import os
import re
import shlex

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
SMALL_STEPS = 2
STEPS = re.compile(r"\b(steps_per_epoch|steps)=(\d+)")
# Blocks that cannot run on a CPU test machine, by section title, with the
# reason. Keep it minimal: every entry must name a block of the README.
SKIPPED = {}


def readme_blocks(language):
    """`(section, first_line, code)` of each ```language block of README.md.

    `section` is the title of the nearest heading above the block, with
    `#2`, `#3`... appended for later blocks under the same heading;
    `first_line` is the 1-based README line of the block's first code line.
    """
    with open(README, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, section, counts, index = [], "", {}, 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        if line.strip() == f"```{language}":
            end = lines.index("```", index + 1)
            counts[section] = counts.get(section, 0) + 1
            name = section if counts[section] == 1 else f"{section} #{counts[section]}"
            blocks.append((name, index + 2, "\n".join(lines[index + 1:end])))
            index = end
        index += 1
    return blocks


def fit_calls(code):
    """The `... .fit(...)` calls of `code`, as `ast.Call` nodes."""
    return [
        node for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == "fit"
    ]


def shorten_training(code):
    """`code` with `steps_per_epoch=<N>` / `steps=<N>` set to `SMALL_STEPS`.

    Raises AssertionError when a `.fit(...)` call is left without a
    shortened `steps_per_epoch` or `steps`.
    """
    shortened = STEPS.sub(rf"\1={SMALL_STEPS}", code)
    for call in fit_calls(shortened):
        lengths = {
            k.arg: k.value.value for k in call.keywords
            if k.arg in ("steps_per_epoch", "steps") and isinstance(k.value, ast.Constant)
        }
        assert SMALL_STEPS in lengths.values(), (
            f"`{ast.unparse(call)}` (line {call.lineno} of the block) has no "
            "`steps_per_epoch=<int>` or `steps=<int>`: write the training length as "
            "an integer literal so that this test can shorten it"
        )
    return shortened


PYTHON_BLOCKS = readme_blocks("python")


def test_readme_has_the_blocks_this_test_expects():
    sections = [name for name, _, _ in PYTHON_BLOCKS]
    assert len(sections) == len(set(sections)), sections
    for name in SKIPPED:
        assert name in sections, f"SKIPPED names {name!r}, which is no README block"


def test_shorten_training_rewrites_literals_and_refuses_other_lengths():
    code = "model.fit(train, steps_per_epoch=2000)\ntrainer.fit(d, steps=5000)\nx(total_steps=9)"
    assert shorten_training(code) == (
        f"model.fit(train, steps_per_epoch={SMALL_STEPS})\n"
        f"trainer.fit(d, steps={SMALL_STEPS})\nx(total_steps=9)"
    )
    for escaping in ("model.fit(train, steps_per_epoch=num_steps)", "model.fit(train, epochs=3)"):
        with pytest.raises(AssertionError, match="integer literal"):
            shorten_training(escaping)


@pytest.mark.parametrize(
    "section,first_line,code",
    [
        # A block that trains compiles a model (20-50 s on 2 cores): slow.
        pytest.param(*block, id=block[0], marks=[pytest.mark.slow] if fit_calls(block[2]) else [])
        for block in PYTHON_BLOCKS
    ],
)
def test_python_block_runs(section, first_line, code, tmp_path, monkeypatch):
    if section in SKIPPED:
        pytest.skip(SKIPPED[section])
    monkeypatch.chdir(tmp_path)
    # Leading newlines make tracebacks give the README's own line numbers.
    source = "\n" * (first_line - 1) + shorten_training(code)
    exec(compile(source, os.path.abspath(README), "exec"), {"__name__": "__readme__"})


def mmzoo_commands():
    """Each `mmzoo ...` command of the ```bash blocks, as an argv list."""
    commands = []
    for _, _, code in readme_blocks("bash"):
        for command in re.split(r"&&|\n", code.replace("\\\n", " ")):
            words = shlex.split(command, comments=True)
            if words and words[0] == "mmzoo":
                commands.append(words[1:])
    return commands


def test_bash_block_mmzoo_commands_parse():
    from mmzoo.cli import build_parser

    commands = mmzoo_commands()
    assert commands, "no `mmzoo` command found in the ```bash blocks"
    for argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit as error:  # argparse's answer to an unknown flag or family
            raise AssertionError(f"README command does not parse: mmzoo {shlex.join(argv)}") from error
