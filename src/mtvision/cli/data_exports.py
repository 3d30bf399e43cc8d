"""``mtvision data merge | check | stats | convert``: working with real annotation exports.

Every command reads any supported format (detected, or named with ``--format``); a
malformed input ends with its :class:`~mtvision.data.errors.FormatError` message (file,
entry, problem) and exit status 1, never a traceback.

Example (shell)::

    mtvision data merge cvat/annotations.xml scene.csv --out data/combined.json
    mtvision data merge boxes.json depth/ --out data/combined.json --by id --format-of depth/=folders
    mtvision data merge coco/ann.json voc/ --out data/all.json --rename voc/:objects=voc_boxes --copy-images
    mtvision data check data/combined.json                # exit status 1 when any error is found
    mtvision data check configs/my_run.yaml --no-images   # the config's data.source (and data.val)
    mtvision data check export/annotations.xml --fix --out clean/
    mtvision data check VOC2012/ --option semseg=false    # a reader's option (see its read() docstring)
    mtvision data stats data/combined.json --out stats.png
    mtvision data stats data/combined.json --json > stats.json
    mtvision data convert coco/annotations.json --to yolo --out yolo/
    mtvision data convert cvat/annotations.xml --to coco --out coco/annotations.json --copy-images

Paths written always resolve from the output: files under the output's folder keep a
relative path, the others are symlinked in (``--link-images``, the default) or copied
(``--copy-images``), so ``data check`` on the output finds every image.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
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
from mtvision.data.convert import Placement, files_outside, materialise, output_path, write_as
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
CopyImages = Annotated[bool, typer.Option("--copy-images", help="Copy the images (and maps) that lie outside the "
                                                                 "output's folder into it.")]
LinkImages = Annotated[bool, typer.Option("--link-images", help="Symlink them instead (the default).")]
Options = Annotated[Optional[list[str]], typer.Option(
    "--option", help="KEY=VALUE passed to the format's reader, e.g. semseg=false (YAML values; repeatable).")]


@data_app.command("merge")
def merge(
    sources: Annotated[list[Path], typer.Argument(help="Exports of the same images, in priority order.")],
    out: Annotated[Path, typer.Option("--out", help="Combined JSON to write, in a folder holding every image.")],
    by: Annotated[MatchBy, typer.Option("--by", help="Match images by file name or by image id.")] = MatchBy.name,
    format_of: Annotated[Optional[list[str]], typer.Option(
        "--format-of", help="SRC=FORMAT for a source whose format is not detected (repeatable).")] = None,
    rename: Annotated[Optional[list[str]], typer.Option(
        "--rename", help="[SRC:]TASK=NEW renames a source's task, e.g. voc/:objects=boxes (SRC may be left out "
                         "with one source; repeatable).")] = None,
    option: Annotated[Optional[list[str]], typer.Option(
        "--option", help="[SRC:]KEY=VALUE passed to a source's reader, e.g. voc/:semseg=false (repeatable).")] = None,
    copy_images: CopyImages = False,
    link_images: LinkImages = False,
    show: Show = 10,
) -> None:
    """Merge exports labelling different tasks of the same images into one combined dataset.

    The first source to label a task for an image wins; disagreements are listed as conflicts.
    Every reader names its instance task "objects": --rename keeps two sources' objects apart.
    """
    with _user_errors():
        how = _placement(copy_images, link_images)
        result = load_sources(_specs(sources, format_of or [], rename or [], option or []), by=by.value)
        _note_placed(result.record, "combined", out, how)
        write_as(result.record, "combined", out, images=how)
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
    option: Options = None,
    show: Show = 10,
) -> None:
    """Find what would silently hurt training; exit status 1 when any error is found (even with --fix)."""
    failed = False
    with _user_errors():
        if fix != (out is not None):
            raise ValueError("--fix and --out go together: --fix --out DIR")
        datasets = _datasets_to_check(_existing(target), format and format.value, _options(option or []))
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
    out: Annotated[Optional[Path], typer.Option(
        "--out", "--plot", help="Bar-chart PNG to write (a folder gets stats.png); none unless given.")] = None,
    option: Options = None,
) -> None:
    """Per-task counts and class histograms (and a bar chart with --out)."""
    with _user_errors():
        result = dataset_stats(load_source(_existing(path), format and format.value, **_options(option or [])))
        if out is not None:
            out = out / "stats.png" if out.is_dir() or not out.suffix else out
            out.parent.mkdir(parents=True, exist_ok=True)
            plot_stats(result, out)
    if as_json:
        typer.echo(json.dumps(result))
        return
    _print_stats(result)
    console.print(f"[green]wrote[/green] {escape(str(out))}" if out is not None
                  else "[dim]--out stats.png to save these as a bar chart[/dim]")


@data_app.command("convert")
def convert(
    src: Annotated[Path, typer.Argument(help="A dataset in any supported format.")],
    to: Annotated[WriterName, typer.Option("--to", help="Format to write.")],
    out: Annotated[Path, typer.Option("--out", help="JSON file (combined, coco) or folder (yolo, voc).")],
    format: FormatOption = None,
    copy_images: CopyImages = False,
    link_images: LinkImages = False,
    option: Options = None,
) -> None:
    """Rewrite a dataset in another format, warning about every task or field the target cannot hold."""
    written = output_path(to.value, out)
    with _user_errors():
        how = _placement(copy_images, link_images)
        record = load_source(_existing(src), format and format.value, **_options(option or []))
        _refuse_source_folder(written, src, record)
        _note_placed(record, to.value, out, how)
        warnings = write_as(record, to.value, out, images=how)
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


def _specs(sources: list[Path], format_of: Sequence[str], rename: Sequence[str] = (),
           option: Sequence[str] = ()) -> list[SourceSpec]:
    """One spec per source; ``--format-of SRC=FORMAT`` must name a source and a known format,
    ``--rename`` / ``--option`` ``[SRC:]KEY=VALUE`` a source (or there is only one)."""
    formats: dict[str, str] = {}
    for item in format_of:
        src, sep, name = item.rpartition("=")
        if not sep or not src:
            raise ValueError(f"--format-of {item!r}: expected SRC=FORMAT")
        get_format(name)
        formats[os.path.abspath(src)] = name
    if unknown := sorted(set(formats) - {os.path.abspath(s) for s in sources}):
        raise ValueError(f"--format-of names {unknown}, which are not among the sources")
    renames = _per_source("--rename", rename, sources, "TASK=NEW", parse=False)
    options = _per_source("--option", option, sources, "KEY=VALUE", parse=True)
    return [SourceSpec(_existing(s), formats.get(os.path.abspath(s)), options.get(os.path.abspath(s), {}),
                       renames.get(os.path.abspath(s), {})) for s in sources]


_KEYED = re.compile(r"^(?:(?P<src>.+):)?(?P<key>[A-Za-z_][\w.-]*)=(?P<value>.*)$")


def _per_source(flag: str, items: Sequence[str], sources: list[Path], form: str,
                parse: bool) -> dict[str, dict[str, Any]]:
    """``[SRC:]KEY=VALUE`` items -> {absolute source: {key: value}}; SRC may be left out with one source.

    Values are YAML (``false`` -> False, ``2`` -> 2) when ``parse``, kept as text otherwise.
    """
    known = {os.path.abspath(s): s for s in sources}
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        match = _KEYED.match(item)
        if match is None:
            raise ValueError(f"{flag} {item!r}: expected [SRC:]{form}")
        src = match["src"]
        if src is None and len(sources) != 1:
            raise ValueError(f"{flag} {item!r}: name the source, as SRC:{form} (there are {len(sources)} sources)")
        path = os.path.abspath(src) if src is not None else next(iter(known))
        if path not in known:
            raise ValueError(f"{flag} {item!r}: {src} is not among the sources {[str(s) for s in sources]}")
        out.setdefault(path, {})[match["key"]] = _value(match["value"]) if parse else match["value"]
    return out


def _options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items of a one-source command -> reader keyword arguments (YAML values)."""
    return _per_source("--option", items, [Path(".")], "KEY=VALUE", parse=True).get(os.path.abspath("."), {})


def _value(text: str) -> Any:
    """A YAML scalar or list (``false``, ``2``, ``[a, b]``), else the text itself."""
    try:
        return yaml.safe_load(text) if text else text
    except yaml.YAMLError:
        return text


def _existing(path: Path) -> Path:
    """``path``, or an error that says plainly it does not exist (not that its format is unknown)."""
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}" + (" (it is a broken symlink)" if path.is_symlink() else ""))
    return path


def _placement(copy: bool, link: bool) -> Placement:
    if copy and link:
        raise ValueError("--copy-images and --link-images exclude each other: choose one")
    return "copy" if copy else "link"


def _note_placed(record: DatasetRecord, format: str, out: Path, how: Placement) -> None:
    """Say when files outside the output's folder are linked or copied in (the user sees it on disk)."""
    if n := files_outside(record, format, out):
        folder = output_path(format, out).parent
        verb = "copying" if how == "copy" else "linking (--copy-images to copy)"
        console.print(f"{n} image/map file(s) lie outside {escape(str(folder))}: {verb} them in")


def _datasets_to_check(target: Path, format: str | None,
                       options: dict[str, Any] | None = None) -> list[tuple[Path, DatasetRecord]]:
    """The dataset at ``target``, or those a config trains and validates on (data.source, data.val)."""
    if format is not None or options or not _is_config(target):
        return [(target, load_source(target, format, **(options or {})))]
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
