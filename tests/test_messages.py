"""Library messages speak the library's words (edgedit/contract/errors.py): an argument is named by
its keyword in backticks (`workspace_mb`), and the CLI prints its option (cli/common.cli_words).
Nothing below edgedit/cli/ spells a command-line option in what it raises, says or logs."""

import ast
import re
from pathlib import Path

import pytest

import edgedit

PACKAGE = Path(edgedit.__file__).parent
# `--flag` (or `--{}`, one made from a field) or a short `-n`, not inside a word (`re-export`),
# after a backtick (`--x` is code) or in `---`.
OPTION = re.compile(r"(?<![\w`-])(--(?:[a-z][a-z0-9-]+|\{\})|-[a-z](?=[\s,;:)]|$))")
COMMAND = re.compile(r"`edgedit [^`]*`")  # a whole command to run may carry its options
# Calls whose text reaches a person: exceptions (raised, or built to raise later), say(), logging.
EXCEPTIONS = re.compile(r"(Error|Failed|Exception|MissingDependency|Busy|Damaged)$")
SPEAKERS = {"say", "warning", "info", "error", "warn", "exception"}
# (module, option): why that option may stay. Other tools' own flags, not edgedit's.
ALLOWED: dict[tuple[str, str], str] = {
    ("runtime/backends.py", "-e"): "pip's own flag: `pip install -e .` registers the backends' entry points",
}


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _text(node: ast.expr) -> str | None:
    """A string literal as written: an f-string's fields as {}."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _strings(call: ast.Call):
    """Each outermost string literal among a call's arguments (inside conditionals, joins, ...)."""
    stack = [*call.args, *(k.value for k in call.keywords)]
    while stack:
        node = stack.pop()
        text = _text(node)
        if text is not None:
            yield node.lineno, text
        else:
            stack += ast.iter_child_nodes(node)


def options_in(source: str, module: str = "<test>") -> list[tuple[int, str, str]]:
    """(line, option, message) for each option spelled in a message of `source`."""
    found = []
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Call) and (EXCEPTIONS.search(_name(node.func)) or _name(node.func) in SPEAKERS):
            for line, text in _strings(node):
                for option in OPTION.findall(COMMAND.sub("", text)):
                    if (module, option) not in ALLOWED:
                        found.append((line, option, text))
    return sorted(found)


def test_library_messages_name_fields_not_options():
    """Name the keyword in backticks instead (`steps`, not --steps); an option named otherwise than
    its field gets an entry in cli/common.FIELD_OPTIONS."""
    found = [
        f"edgedit/{module}:{line}: {option} in {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not (module := path.relative_to(PACKAGE).as_posix()).startswith("cli/")
        for line, option, text in options_in(path.read_text(), module)
    ]
    assert not found, "\n".join(found)


def test_the_check_sees_an_option():
    """The check can fail: an option in a raised message, an f-string's, a log line's."""
    source = (
        'raise EdgeditError(f"--steps must be 1..{n}")\n'
        'log.warning("lower -n")\n'
        'err = CheckFailed(f"--{role} {spec}: not one")\n'
        'say("starting over: --force")\n'
        'raise EdgeditError("`steps` must be 1..10 (see `edgedit sample --steps 4`); re-export it")\n'
        'command = ["trtexec", "--fp16"]\n'
    )
    assert [(line, option) for line, option, _ in options_in(source)] == [
        (1, "--steps"),
        (2, "-n"),
        (3, "--{}"),
        (4, "--force"),
    ]


@pytest.mark.parametrize(
    "command, message, expected",
    [
        (["design", "sweep"], "lower `batch`, `hidden_size` or `depth`", "lower --batch, --widths or --depths"),
        (["distill"], "lower `batch`, `hidden_size` or `depth`", "lower --batch, --width or --depth"),
        (["design", "retime"], "`latency_seconds` over all `rounds`", "--seconds over all --rounds"),
        (["build-engine"], "lower `min_psnr`, pass `force`", "lower --min-psnr, pass --force"),
        (["quantize"], "lower `min_psnr`, pass `force`", "lower --min-psnr, pass --force"),
        (["bench", "run"], "`duration_s` and `batches`", "--duration and --batch"),
        (["sample"], "`no_such_field`", "`no_such_field`"),  # no option for it: the field's name stays
    ],
)
def test_a_field_reaches_the_command_line_as_that_commands_option(command, message, expected):
    """The messages that name a field of a library call, printed by each command that makes the call."""
    import typer

    from edgedit.cli import app
    from edgedit.cli.common import _CLICK, cli_words

    click = __import__(_CLICK)
    group = typer.main.get_command(app)
    with click.Context(group) as ctx:
        target = group
        for name in command:
            target = target.get_command(ctx, name)
    with click.Context(target):
        assert cli_words(message) == expected
