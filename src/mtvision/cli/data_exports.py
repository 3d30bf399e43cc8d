"""``mtvision data merge | check | stats | convert``: working with real annotation exports.

Every command reads any supported format (detected, or named with ``--format``); a
malformed input ends with its :class:`~mtvision.data.errors.FormatError` message (file,
entry, problem) and exit status 1, never a traceback.

Example (shell)::

    mtvision data merge cvat/annotations.xml scene.csv --out data/combined.json
    mtvision data merge boxes.json depth/ --out data/combined.json --by id --format-of depth/=folders
    mtvision data check data/combined.json                # exit status 1 when any error is found
    mtvision data check configs/my_run.yaml --no-images   # the config's data.source (and data.val)
    mtvision data check export/annotations.xml --fix --out clean/
    mtvision data stats data/combined.json --plot stats.png
    mtvision data stats data/combined.json --json > stats.json
    mtvision data convert coco/annotations.json --to yolo --out yolo/
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mtvision.cli import data_app
from mtvision.config import Config, load_config
from mtvision.data.check import Finding, check_record, fixed
from mtvision.data.convert import materialise, output_path, write_as
from mtvision.data.formats import FORMATS, WRITERS, combined, get_format
from mtvision.data.record import Annotation, DatasetRecord
from mtvision.data.sources import COMBINED_NAME, SourceSpec, load_source, load_sources, read_record
from mtvision.data.stats import dataset_stats, plot_stats

console = Console()
errors = Console(stderr=True)  # warnings and errors: keeps stdout clean for --json; never wrapped

# Choices come from the registries, so a new format shows up in --help and is validated by click.
FormatName = Enum("FormatName", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]
WriterName = Enum("WriterName", {name: name for name in WRITERS}, type=str)  # type: ignore[misc]
MatchBy = Enum("MatchBy", {"name": "name", "id": "id"}, type=str)  # type: ignore[misc]

FormatOption = Annotated[Optional[FormatName], typer.Option("--format", help="Input format (default: detected).")]
Show = Annotated[int, typer.Option("--show", min=0, help="How many conflict / finding lines to print.")]
CopyImages = Annotated[bool, typer.Option("--copy-images", help="Copy images into the output instead of symlinking.")]


@data_app.command("merge")
def merge(
    sources: Annotated[list[Path], typer.Argument(help="Exports of the same images, in priority order.")],
    out: Annotated[Path, typer.Option("--out", help="Combined JSON to write, in a folder holding every image.")],
    by: Annotated[MatchBy, typer.Option("--by", help="Match images by file name or by image id.")] = MatchBy.name,
    format_of: Annotated[Optional[list[str]], typer.Option(
        "--format-of", help="SRC=FORMAT for a source whose format is not detected (repeatable).")] = None,
    show: Show = 10,
) -> None:
    """Merge exports labelling different tasks of the same images into one combined dataset.

    The first source to label a task for an image wins; disagreements are listed as conflicts.
    """
    with _user_errors():
        result = load_sources(_specs(sources, format_of or []), by=by.value)
        write_as(result.record, "combined", out)
    console.print(_coverage_table(result.record))
    n = len(result.conflicts)
    _print_lines(f"{n} conflict(s) (the later source's label was not used)" if n else "no conflicts",
                 [str(c) for c in result.conflicts], show)
    console.print(f"[green]wrote[/green] {escape(str(output_path('combined', out)))}")


@data_app.command("check")
def check(
    target: Annotated[Path, typer.Argument(help="A dataset in any supported format, or an mtvision YAML config.")],
    format: FormatOption = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="Do not decode the images (faster; misses "
                                                                 "unreadable files and size mismatches).")] = False,
    fix: Annotated[bool, typer.Option("--fix", help="Write a copy without the erroneous images and "
                                                    "annotations to --out.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for --fix: dataset.json and links to "
                                                              "the images; never the source's folder.")] = None,
    copy_images: CopyImages = False,
    show: Show = 10,
) -> None:
    """Find what would silently hurt training; exit status 1 when any error is found (even with --fix)."""
    failed = False
    with _user_errors():
        if fix != (out is not None):
            raise ValueError("--fix and --out go together: --fix --out DIR")
        datasets = _datasets_to_check(target, format and format.value)
        if out is not None and len(datasets) != 1:
            raise ValueError("--fix cleans one dataset and the config names several: pass the dataset's path")
        if out is not None:
            _refuse_source_folder(out, *datasets[0])
        for path, record in datasets:
            findings = check_record(record, read_images=not no_images)
            _print_findings(str(path), findings, show)
            failed |= any(f.severity == "error" for f in findings)
            if out is not None:
                _write_fixed(record, findings, out, copy_images)
    raise typer.Exit(1 if failed else 0)


@data_app.command("stats")
def stats(
    path: Annotated[Path, typer.Argument(help="A dataset in any supported format.")],
    format: FormatOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")] = False,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Bar-chart PNG to write (default: stats.png here; with --json only if given).")] = None,
) -> None:
    """Per-task counts and class histograms."""
    with _user_errors():
        result = dataset_stats(load_source(path, format and format.value))
        if plot is not None or not as_json:
            plot = plot or Path("stats.png")
            plot.parent.mkdir(parents=True, exist_ok=True)
            plot_stats(result, plot)
    if as_json:
        typer.echo(json.dumps(result))
        return
    _print_stats(result)
    console.print(f"[green]wrote[/green] {escape(str(plot))}")


@data_app.command("convert")
def convert(
    src: Annotated[Path, typer.Argument(help="A dataset in any supported format.")],
    to: Annotated[WriterName, typer.Option("--to", help="Format to write.")],
    out: Annotated[Path, typer.Option("--out", help="JSON file (combined, coco) or folder (yolo, voc).")],
    format: FormatOption = None,
    copy_images: CopyImages = False,
) -> None:
    """Rewrite a dataset in another format, warning about every task or field the target cannot hold."""
    written = output_path(to.value, out)
    with _user_errors():
        record = load_source(src, format and format.value)
        _refuse_source_folder(written, src, record)
        warnings = write_as(record, to.value, out, images="copy" if copy_images else "link")
    for warning in warnings:
        errors.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    console.print(f"[green]wrote[/green] {len(record.images)} images as {to.value} -> {escape(str(written))}")


@contextmanager
def _user_errors() -> Iterator[None]:
    """A malformed input or a refused request ends with its message and exit status 1, no traceback."""
    try:
        yield
    except (ValueError, OSError) as error:  # FormatError and ConfigError are ValueErrors
        errors.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None


def _specs(sources: list[Path], format_of: list[str]) -> list[SourceSpec]:
    """One spec per source; ``--format-of SRC=FORMAT`` must name a source and a known format."""
    formats: dict[str, str] = {}
    for item in format_of:
        src, sep, name = item.rpartition("=")
        if not sep or not src:
            raise ValueError(f"--format-of {item!r}: expected SRC=FORMAT")
        get_format(name)
        formats[os.path.abspath(src)] = name
    if unknown := sorted(set(formats) - {os.path.abspath(s) for s in sources}):
        raise ValueError(f"--format-of names {unknown}, which are not among the sources")
    return [SourceSpec(s, formats.get(os.path.abspath(s))) for s in sources]


def _datasets_to_check(target: Path, format: str | None) -> list[tuple[Path, DatasetRecord]]:
    """The dataset at ``target``, or those a config trains and validates on (data.source, data.val)."""
    if format is not None or not _is_config(target):
        return [(target, load_source(target, format))]
    data = load_config(target).data
    if data.source == "synthetic":
        raise ValueError(f"{target}: data.source is 'synthetic' (scenes generated on the fly, nothing on disk to "
                         "check); check a dataset path instead")
    splits = [split for split in (data.source, data.val) if split is not None]
    return [(target if isinstance(split, list) else Path(split), read_record(split)) for split in splits]


def _is_config(path: Path) -> bool:
    """A YAML mapping whose keys are all config sections (a YOLO data.yaml has ``names``, ``path``...)."""
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and bool(data) and set(data) <= set(Config.model_fields)


def _write_fixed(record: DatasetRecord, findings: list[Finding], out: Path, copy: bool) -> None:
    """The cleaned record as ``out/dataset.json`` with the images linked in; reports what was dropped."""
    cleaned = fixed(record, findings)
    combined.write(materialise(cleaned, out, "copy" if copy else "link"), out / COMBINED_NAME)
    before, after = _label_counts(record), _label_counts(cleaned)
    dropped = ", ".join(f"{before[k] - after[k]} {k}" for k in before)
    console.print(f"[green]wrote[/green] {escape(str(out / COMBINED_NAME))}; dropped {dropped}")


def _label_counts(record: DatasetRecord) -> dict[str, int]:
    targets = [t for im in record.images for t in im.targets.values()]
    anns = [a for t in targets if isinstance(t, list) for a in t if isinstance(a, Annotation)]
    return {"images": len(record.images), "annotations": len(anns), "task labels": len(targets)}


def _refuse_source_folder(written: Path, source: Path, record: DatasetRecord) -> None:
    """Outputs never go over a source: not its file, its folder, or its image root."""
    protected = {os.path.abspath(p) for p in (source, source if source.is_dir() else source.parent, record.root)}
    if os.path.abspath(written) in protected:
        raise ValueError(f"{written} is the source's own file or folder; write the output elsewhere")


def _coverage_table(record: DatasetRecord) -> Table:
    total = len(record.images)
    table = Table(title=f"coverage ({total} images in total)")
    for column in ("task", "kind", "images labelled", "share"):
        table.add_column(column, justify="right" if column in ("images labelled", "share") else "left")
    for name, count in record.coverage().items():
        table.add_row(escape(name), record.tasks[name].kind, str(count), f"{count / max(total, 1):.0%}")
    return table


def _print_findings(label: str, findings: list[Finding], show: int) -> None:
    if not findings:
        console.print(f"[green]no problems found[/green] in {escape(label)}")
        return
    counts = Counter((f.severity, f.code) for f in findings)
    console.print(f"[bold]{escape(label)}[/bold]: {len(findings)} finding(s)")
    table = Table()
    for column in ("severity", "code", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for (severity, code), n in sorted(counts.items(), key=lambda item: (item[0][0] != "error", -item[1])):
        table.add_row(f"[{'red' if severity == 'error' else 'yellow'}]{severity}[/]", code, str(n))
    console.print(table)
    _print_lines("findings", [str(f) for f in findings], show)


def _print_stats(result: dict[str, Any]) -> None:
    overview = Table(title=f"{result['images']} images")
    for column in ("task", "kind", "images", "instances", "maps"):
        overview.add_column(column, justify="left" if column in ("task", "kind") else "right")
    for name, task in result["tasks"].items():
        overview.add_row(escape(name), task["kind"], str(task["images"]), str(task.get("instances", "")),
                         str(task.get("maps", "")))
    console.print(overview)
    for name, task in result["tasks"].items():
        if task.get("per_class"):
            histogram = Table(title=f"{escape(name)}: per class")
            histogram.add_column("class")
            histogram.add_column("count", justify="right")
            for cls, n in task["per_class"].items():
                histogram.add_row(escape(cls), str(n))
            console.print(histogram)


def _print_lines(title: str, lines: list[str], show: int) -> None:
    console.print(f"[bold]{escape(title)}[/bold]")
    for line in lines[:show]:
        console.print(f"  {escape(line)}", soft_wrap=True)
    if len(lines) > show:
        console.print(f"  ... and {len(lines) - show} more (--show to see them)")
