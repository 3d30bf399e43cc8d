"""Run a trained model on images and show what every task predicts.

One forward pass answers every task; each task then post-processes its own output
(probabilities, metres, unit normals...), draws it (``Task.draw``) and writes it to JSON
(``Task.to_json``). The model sees each image letterboxed to the training size; for image
files (:func:`predict_files`) every output is mapped back onto the file's own pixels
(``Task.to_image_frame``), so boxes, keypoints, masks and maps in ``predictions.json`` and
the drawings line up with the image the user passed in. :func:`save_prediction_grid` draws
dataset samples, which are already in the model's frame, as they are.

Example:
    >>> import torch
    >>> denormalize(torch.zeros(1, 3, 2, 2))[0][0, 0].tolist()  # the ImageNet mean colour
    [124, 116, 104]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtvision.data.dataset import collate
from mtvision.data.loading import load_image
from mtvision.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mtvision.draw import Panel, compose, fit_longest, save_png
from mtvision.engine.step import autocast
from mtvision.models import MultiTaskModel
from mtvision.structures import ImageFrame, Sample, letterbox_frame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
Outputs = dict[str, list[Any]]  # task -> one post-processed output per image
PANEL_SIDE = 256  # px: the longer side of each panel of a composite (4 across fit a laptop screen)


def denormalize(images: Tensor) -> list[np.ndarray]:
    """Normalised ``[B, 3, H, W]`` images back to RGB ``uint8`` ``[H, W, 3]`` arrays."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixels = ((images.detach().float().cpu() * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
    return [image.permute(1, 2, 0).numpy() for image in pixels]


@torch.no_grad()
def predict(model: MultiTaskModel, images: Tensor, device: torch.device,
            amp_dtype: torch.dtype | None = None) -> Outputs:
    """Every task's post-processed outputs for a batch of normalised images."""
    model.eval()
    images = images.to(device)
    with autocast(device, amp_dtype):
        predictions = model(images)
    return {name: model.tasks[name].postprocess(prediction) for name, prediction in predictions.items()}


def draw_image(model: MultiTaskModel, image: np.ndarray, outputs: Outputs, index: int,
               cell: int = PANEL_SIDE) -> np.ndarray:
    """The input and one panel per task in a grid: each titled above, with the key to its
    colours below (a task's optional ``legend(output)``: class swatches, a colour bar, the
    normals' ball).

    The image is scaled to ``cell`` pixels on its longer side *before* the tasks draw on it,
    so box labels and captions are drawn at the size they are seen: a 64-pixel scene is
    enlarged, a photograph shrunk, and the composite stays under ~1,400 pixels wide.
    """
    shown = fit_longest(image, cell)
    panels = [Panel(shown, "input")]
    for name, outs in outputs.items():
        task = model.tasks[name]
        legend = getattr(task, "legend", None)  # optional: a task type outside the package may not draw one
        panels.append(Panel(task.draw(shown, outs[index]), name, legend(outs[index]) if legend else None))
    return compose(panels)


def save_prediction_grid(model: MultiTaskModel, dataset: Any, indices: Iterable[int], folder: Path,
                         device: torch.device, amp_dtype: torch.dtype | None = None) -> list[Path]:
    """Draw the predictions for ``dataset[i]`` of every index into ``folder/<i>.png``."""
    batch = collate([dataset[i] for i in indices])
    outputs = predict(model, batch.images, device, amp_dtype)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row, (index, image) in enumerate(zip(indices, denormalize(batch.images))):
        paths.append(folder / f"{index:04d}.png")
        save_png(draw_image(model, image, outputs, row), str(paths[-1]))
    return paths


def find_images(source: Path) -> list[Path]:
    """``source`` itself if it is an image file, else the images directly inside the folder."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"no image or folder at {source}")
    found = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    return found


def predict_files(model: MultiTaskModel | Any, paths: Sequence[Path], out: Path, transform: Callable[[Sample], Sample],
                  device: torch.device, amp_dtype: torch.dtype | None = None, batch_size: int = 8,
                  run: Callable[[Tensor], Outputs] | None = None) -> Path:
    """Predict every image file: ``out/<task>/<stem>.png`` overlays, ``out/<task>/<stem>.npy``
    for dense tasks (the map itself: labels, metres, unit normals, edge probabilities, which
    the JSON only summarises), ``out/<stem>.png`` all tasks side by side, and
    ``out/predictions.json`` with every task's ``to_json``.

    ``transform`` is the evaluation pipeline, which letterboxes to the model's input size
    (``build_transforms("none", size, train=False)``); outputs are mapped back through that
    letterbox, so every coordinate and map refers to the pixels of its file.

    ``run`` replaces the PyTorch forward (an exported model's ``OnnxModel.predict``); ``model``
    then only needs ``tasks``, whose post-processing, drawing and JSON are the same either way.
    """
    run = run or (lambda images: predict(model, images, device, amp_dtype))
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        originals = [load_image(path) for path in chunk]
        outputs = _predict_originals(model, originals, transform, run)
        for row, (path, original) in enumerate(zip(chunk, originals)):
            image = original.permute(1, 2, 0).numpy()
            records[path.name] = {name: model.tasks[name].to_json(outs[row]) for name, outs in outputs.items()}
            for name, outs in outputs.items():
                (out / name).mkdir(exist_ok=True)
                save_png(model.tasks[name].draw(image, outs[row]), str(out / name / f"{path.stem}.png"))
                if isinstance(outs[row], np.ndarray):
                    np.save(out / name / f"{path.stem}.npy", outs[row])
            save_png(draw_image(model, image, outputs, row), str(out / f"{path.stem}.png"))
    json_path = out / "predictions.json"
    json_path.write_text(json.dumps(records, indent=1))
    return json_path


def _predict_originals(model: MultiTaskModel | Any, originals: Sequence[Tensor], transform: Callable[[Sample], Sample],
                       run: Callable[[Tensor], Outputs]) -> Outputs:
    """Outputs for ``uint8 [3, H, W]`` images of any sizes, each in its own image's frame."""
    images = torch.stack([transform(Sample(image)).image.as_subclass(Tensor) for image in originals])
    frames = [letterbox_frame(tuple(image.shape[-2:]), tuple(images.shape[-2:])) for image in originals]
    return in_image_frames(model, run(images), frames)


def in_image_frames(model: MultiTaskModel, outputs: Outputs, frames: Sequence[ImageFrame]) -> Outputs:
    """Every task's outputs moved from the model's input onto each image, ``frames[i]`` for image ``i``."""
    return {name: [model.tasks[name].to_image_frame(output, frame) for output, frame in zip(outs, frames)]
            for name, outs in outputs.items()}
