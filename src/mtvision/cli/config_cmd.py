"""``mtvision config`` and ``mtvision data init``: every config key, its value, default and why.

The comments are the ``# ...`` of each field in ``src/mtvision/config.py`` (the block above a
field and the one after it), read from the source with :mod:`ast` and :mod:`tokenize`: one
place documents a key, and what the tool prints cannot drift from it. The output is YAML
that loads back as the same config, so ``mtvision config > mine.yaml`` is a starting point.

Example (shell)::

    mtvision config                                  # the defaults (the demo), every key commented
    mtvision config configs/demo.yaml train.epochs=3 # resolved; "(default: 8)" where a value differs
    mtvision config data.source=export.json         # the tasks that dataset would train
    mtvision data init export.json                   # writes <dataset>.yaml to edit and train
"""

from __future__ import annotations

import ast
import functools
import inspect
import io
import tokenize
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
import yaml

from mtvision.cli import app, data_app

if TYPE_CHECKING:
    from pydantic import BaseModel

    from mtvision.config import Config

COMMENT_COLUMN = 34  # where inline comments start; longer `key: value` lines push theirs right


@app.command("config")
def config_command(
    args: Optional[list[str]] = typer.Argument(None, help="[CONFIG.yaml] then key=value overrides, as for train"),
) -> None:
    """Print the resolved config: every key with its value, default and comment."""
    from mtvision.cli import build

    path, overrides = build.split_args(args or [])
    typer.echo(render(build.load(path, overrides)), nl=False)


@data_app.command("init")
def init(
    export: Path = typer.Argument(..., help="a dataset in any supported format (file or folder)"),
    out: Optional[Path] = typer.Option(None, "--out", help="config to write (default: <dataset name>.yaml here)"),
    force: bool = typer.Option(False, "--force", help="overwrite --out if it exists"),
) -> None:
    """Write a starter config for a dataset: its own tasks, every key commented."""
    from mtvision.cli import build
    from mtvision.cli.validate import validate

    name = _dataset_name(export)
    cfg = build.load(None, [f"data.source={export}", f"run.name={name}"])
    validate(cfg)
    target = out or Path(f"{name}.yaml")
    if target.exists() and not force:
        raise typer.BadParameter(f"{target} exists; choose another --out or add --force")
    header = (f"Starter config for {export}, written by `mtvision data init`: its {len(cfg.tasks)} task(s) with "
              f"the types their annotations imply; edit freely, then: mtvision train {target}")
    target.write_text(render(cfg, header))
    typer.echo(f"wrote {target}: tasks {', '.join(f'{n} ({t.type})' for n, t in cfg.tasks.items())}; "
               f"train with: mtvision train {target}")


def render(cfg: Config, header: str = "") -> str:
    """``cfg`` as commented YAML: sections in order, each key with its comment and differing default."""
    from mtvision.config import Config as ConfigModel

    lines = [f"# {header}"] if header else []
    lines.append("# Every key with its value; (default: ...) where it differs. Keys: src/mtvision/config.py")
    for name in ConfigModel.model_fields:
        value = getattr(cfg, name)
        lines += [f"# {text}" for text in field_comments().get(("Config", name), []) if text]
        if name == "tasks":
            lines += _tasks(value)
        else:
            lines.append(f"{name}:")
            lines += _section(value, 1)
    return "\n".join(lines) + "\n"


def _section(model: BaseModel, depth: int) -> list[str]:
    from pydantic import BaseModel

    pad, lines = "  " * depth, []
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        value = getattr(model, name)
        comments = field_comments().get((type(model).__name__, name), [])
        *above, inline = comments or [""]
        lines += [f"{pad}# {text}" for text in above]
        if isinstance(value, BaseModel):
            lines.append(_with_comment(f"{pad}{key}:", inline))
            lines += _section(value, depth + 1)
            continue
        default = field.get_default(call_default_factory=True)
        differs = _plain(value) != _plain(default)
        note = f"(default: {_flow(_plain(default))}) " if differs else ""
        lines.append(_with_comment(f"{pad}{key}: {_flow(_plain(value))}", note + inline))
    return lines


def _tasks(tasks: Any) -> list[str]:
    if isinstance(tasks, str):
        return [f"tasks: {tasks}"]
    return ["tasks:"] + [f"  {name}: {_flow(task.model_dump(mode='json'))}" for name, task in tasks.items()]


def _plain(value: Any) -> Any:
    """JSON-like value (sections and tuples as YAML writes them)."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, tuple):
        return list(value)
    return value


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True,
                          sort_keys=False).strip().removesuffix(
        "\n...").strip()


def _with_comment(line: str, comment: str) -> str:
    comment = comment.strip()
    return f"{line.ljust(COMMENT_COLUMN)}  # {comment}" if comment else line


@functools.lru_cache(maxsize=1)
def field_comments() -> dict[tuple[str, str], list[str]]:
    """``(class name, field name) -> comment lines`` of ``mtvision/config.py``: the block of comment
    lines right above the field, then its trailing comment (empty string when it has none)."""
    import mtvision.config

    source = inspect.getsource(mtvision.config)
    text_lines = source.splitlines()
    comments = {token.start[0]: token.string.lstrip("#").strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.COMMENT}
    found: dict[tuple[str, str], list[str]] = {}
    for cls in (node for node in ast.parse(source).body if isinstance(node, ast.ClassDef)):
        for node in cls.body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            above, line = [], node.lineno - 1
            while line in comments and text_lines[line - 1].lstrip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            inline = " ".join(comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments)
            found[(cls.name, node.target.id)] = [*above, inline]
    return found


def _dataset_name(export: Path) -> str:
    """A run / file name for a dataset: its folder's name for an annotation file, else its own."""
    path = export.resolve()
    return (path.parent.name if path.is_file() else path.name) or "mine"
