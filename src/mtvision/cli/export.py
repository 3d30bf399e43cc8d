"""``mtvision export``: a checkpoint to one ``.onnx`` (every task), checked against PyTorch before it is kept.

Also the ``.onnx`` side of ``mtvision predict`` (:func:`predict_onnx`), which writes what
``predict`` on a ``.pt`` writes. See ``docs/export.md``.

Example (shell)::

    mtvision export runs/demo/weights/best.pt                       # -> runs/demo/weights/best.onnx, any batch
    mtvision export runs/demo/weights/best.pt --batch 1 --out model.onnx --opset 17
    mtvision export runs/demo/weights/best.pt --half --source photos/
    mtvision predict runs/demo/weights/best.onnx --source photos/ --out predictions/
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer

from mtvision.cli import app, build
from mtvision.cli.build import console
from mtvision.config import Config
from mtvision.data.dataset import collate
from mtvision.data.loading import load_image
from mtvision.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms
from mtvision.engine.distributed import DistInfo
from mtvision.engine.export import DEFAULT_OPSET, ExportSettings, ParityError, check_opset, export_onnx
from mtvision.engine.onnx_runtime import OnnxModel
from mtvision.engine.predict import find_images, predict_files
from mtvision.models import MultiTaskModel, TaskSpec
from mtvision.structures import Sample


@app.command()
def export(
    weights: Path = typer.Argument(..., help="a checkpoint (best.pt / last.pt)"),
    format: str = typer.Option("onnx", "--format", help="onnx (the only format so far)"),
    out: Optional[Path] = typer.Option(None, "--out", help="output file (default: WEIGHTS with .onnx)"),
    batch: Optional[int] = typer.Option(None, "--batch", help="fixed batch size (default: any, --dynamic-batch)"),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="any batch size (the default)"),
    opset: int = typer.Option(DEFAULT_OPSET, "--opset", help="ONNX opset, 11 to 20"),
    half: bool = typer.Option(False, "--half", help="float16 weights (half the file; compute stays float32)"),
    source: Optional[Path] = typer.Option(None, "--source", help="images for the parity check (default: the "
                                                                 "run's validation images)"),
    images: int = typer.Option(8, "--images", help="how many images the parity check runs"),
) -> None:
    """Export every task to one ONNX file with its metadata; fails, writing nothing, if it disagrees with PyTorch."""
    settings = _settings(format, batch, dynamic_batch, opset, half)
    target = out or weights.with_suffix(".onnx")
    cfg, model, infos = _restore(weights)
    examples = _parity_images(cfg, infos, source, images)
    specs = {name: TaskSpec(task.type, infos[name], task.options) for name, task in cfg.tasks.items()}
    info = {"backbone": cfg.model.backbone, "architecture": cfg.model.architecture,
            "neck_channels": cfg.model.neck_channels, "train_batch_size": cfg.data.batch_size,
            "checkpoint": weights.name}
    try:
        result = export_onnx(model, specs, target, examples, settings, info)
    except (ParityError, FileNotFoundError, ValueError) as err:
        console.print(f"[red]export failed[/red]: {err}", markup=True, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print("\n".join(str(check) for check in result.checks), markup=False)
    console.print(f"{result.path} ({result.size_mb:.1f} MB, opset {settings.opset}, "
                  f"batch {settings.batch or 'any'}{', float16 weights' if half else ''}): onnxruntime agrees with "
                  f"PyTorch on {len(examples)} image(s)", markup=False, soft_wrap=True)


def _settings(format: str, batch: Optional[int], dynamic_batch: bool, opset: int, half: bool) -> ExportSettings:
    if format != "onnx":
        raise typer.BadParameter(f"--format {format}: only onnx is supported")
    if batch is not None and dynamic_batch:
        raise typer.BadParameter("give --batch N or --dynamic-batch, not both")
    if batch is not None and batch < 1:
        raise typer.BadParameter(f"--batch {batch}: must be at least 1")
    try:
        check_opset(opset)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    return ExportSettings(batch=batch, opset=opset, half=half, threads=torch.get_num_threads())


def _restore(weights: Path) -> tuple[Config, MultiTaskModel, dict]:
    """The checkpoint's model, or an error that says the file is not one."""
    if not weights.is_file():
        raise typer.BadParameter(f"no checkpoint at {weights}; pass a run's weights/best.pt or last.pt")
    try:
        return build.restore(weights)
    except (typer.Exit, typer.Abort):
        raise
    except Exception as err:  # torch.load raises many kinds on a file that is not a checkpoint
        raise typer.BadParameter(f"{weights} is not an mtvision checkpoint ({type(err).__name__}: {err}); "
                                 "pass a run's weights/best.pt or last.pt") from None


def _parity_images(cfg: Config, infos: dict, source: Optional[Path], count: int) -> torch.Tensor:
    """Normalised, letterboxed images: the first ``count`` of ``source`` or of the run's validation split."""
    size = build.image_size(cfg)
    if source is not None:
        transform = build_transforms("none", size, train=False)
        paths = find_images(source)[:count]
        return torch.stack([transform(Sample(load_image(p))).image.as_subclass(torch.Tensor) for p in paths])
    try:
        record = build.splits(cfg, DistInfo()).val
    except (OSError, ValueError) as err:  # the run's data moved or is gone
        raise typer.BadParameter(f"cannot read the run's validation images for the parity check ({err}); "
                                 "pass --source DIR with a few images like the training ones") from None
    dataset = build.dataset(cfg, record, infos, train=False)
    return collate([dataset[i] for i in range(min(count, len(dataset)))]).images


def predict_onnx(weights: Path, source: Path, out: Path) -> None:
    """``mtvision predict model.onnx``: onnxruntime instead of PyTorch, the same files written."""
    runtime = OnnxModel(weights, threads=torch.get_num_threads())
    if (tuple(runtime.meta.mean), tuple(runtime.meta.std)) != (tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)):
        raise typer.BadParameter(f"{weights} expects mean {runtime.meta.mean} / std {runtime.meta.std}; this "
                                 "mtvision normalises with ImageNet's: export it again with this version")
    transform = build_transforms("none", runtime.image_size, train=False)
    paths = find_images(source)
    json_path = predict_files(runtime, paths, out, transform, torch.device("cpu"), run=runtime.predict)
    console.print(f"predictions for {len(paths)} image(s) in [bold]{out}[/bold] ({json_path.name}, onnxruntime)")
