"""``mtvision eval-coco``: COCO AP of any results file, not only mtvision's own.

People compare detections from other tools too, so this takes plain COCO files.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mtvision.cli import app
from mtvision.tasks.coco_eval import coco_metrics


def _load(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise typer.BadParameter(f"cannot read {what} {path}: {error}") from error


@app.command("eval-coco")
def eval_coco(
    gt: Path = typer.Argument(..., help="COCO ground-truth JSON (images, annotations, categories)."),
    results: Path = typer.Argument(..., help="COCO results JSON: a list of detections."),
    iou: str = typer.Option("bbox", "--iou", help="bbox | segm | keypoints"),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
) -> None:
    """Evaluate a COCO results file against COCO ground truth (AP, AP50, AP75, by size)."""
    if iou not in ("bbox", "segm", "keypoints"):
        raise typer.BadParameter(f"--iou must be bbox, segm or keypoints, not {iou!r}")
    detections = _load(results, "results")
    if not isinstance(detections, list):
        raise typer.BadParameter(f"{results}: a COCO results file is a JSON list of detections")
    metrics = coco_metrics(_load(gt, "ground truth"), detections, iou)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    table = Table(title=f"COCO {iou} metrics")
    for name in metrics:
        table.add_column(name, justify="right")
    table.add_row(*(f"{v:.4f}" for v in metrics.values()))
    Console().print(table)
