"""``mtvision data synth`` and ``mtvision data preview``: make a dataset, look at a dataset.

Example (shell)::

    mtvision data synth --out data/synth --num 200 --size 128 --seed 0
    mtvision data preview data/synth/dataset.json --out previews --num 8
    mtvision data preview synthetic --out previews --augment strong
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Callable, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from mtvision.cli import data_app
from mtvision.data.dataset import MultiTaskDataset
from mtvision.data.errors import FormatError
from mtvision.data.preview import preview
from mtvision.data.sources import load_source
from mtvision.data.synthetic import SyntheticDataset, synthetic_tasks
from mtvision.data.synthetic.combined_writer import export_synthetic
from mtvision.data.transforms import build_transforms
from mtvision.structures import Sample, TaskInfo

console = Console()

Out = Annotated[Path, typer.Option("--out", help="Output folder (created if missing).")]
Num = Annotated[int, typer.Option("--num", min=1, help="Number of images.")]
Size = Annotated[int, typer.Option("--size", min=8, help="Side of the rendered images, in pixels.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the first scene; scene i uses seed + i.")]


@data_app.command("synth")
def synth(out: Out, num: Num = 200, size: Size = 128, seed: Seed = 0,
          max_objects: Annotated[int, typer.Option("--max-objects", min=1, help="Objects per scene, at most.")] = 4,
          ) -> None:
    """Render synthetic scenes with every task's ground truth and write them in the combined format."""
    start = time.perf_counter()
    with console.status(f"rendering {num} scenes of {size}x{size}..."):
        path = export_synthetic(out, num, size, seed, max_objects)
    console.print(f"[green]wrote[/green] {num} scenes in {time.perf_counter() - start:.1f}s -> [bold]{path}[/bold]")


@data_app.command("preview")
def preview_command(
    source: Annotated[str, typer.Argument(help="A dataset in any supported format, or 'synthetic' for freshly "
                                               "rendered scenes.")],
    out: Out,
    num: Num = 8,
    size: Size = 128,
    seed: Seed = 0,
    augment: Annotated[str, typer.Option("--augment", help="Apply a training augmentation preset first "
                                                          "(none, light, default, strong) to check it.")] = "",
) -> None:
    """Draw images with all their annotations (boxes, masks, keypoints, dense maps, labels), one PNG each."""
    samples, infos = _open(source, num, size, seed)
    try:
        transform = _augmentation(augment, samples[0], infos) if augment else None
        paths = preview((samples[i] for i in range(min(num, len(samples)))), infos, out, transform=transform)
    except FormatError as err:
        _fail(str(err))
    console.print(f"[green]wrote[/green] {len(paths)} previews -> [bold]{out}[/bold]")


def _open(source: str, num: int, size: int, seed: int) -> tuple[MultiTaskDataset | SyntheticDataset, dict[str, TaskInfo]]:
    """The samples and label spaces named by ``source``: any export the readers detect.

    A missing path says so first; "not a dataset of any known format" would send the user
    hunting for a format problem in a file that is not there.
    """
    if source == "synthetic":
        return SyntheticDataset(num, size=size, seed=seed), synthetic_tasks()
    if not Path(source).exists():
        _fail(f"file not found: {source} (a dataset path, or 'synthetic')")
    try:
        dataset = MultiTaskDataset(load_source(source))
    except ValueError as err:  # FormatError, or a record the dataset cannot decode
        _fail(str(err))
    return dataset, dataset.tasks


def _augmentation(preset: str, first: Sample, infos: dict[str, TaskInfo]) -> Callable[[Sample], Sample]:
    """The training pipeline of ``preset`` at the first image's size (keypoint flips from the tasks)."""
    flip_idx = {name: info.flip_idx for name, info in infos.items() if info.flip_idx}
    try:
        void = {name: info.ignore_index for name, info in infos.items()}
        return build_transforms(preset, first.size, flip_idx=flip_idx, train=True,  # type: ignore[arg-type]
                                ignore_index=void)
    except ValueError as err:
        _fail(str(err))


def _fail(message: str) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code=1)

