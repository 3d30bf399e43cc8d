"""Checks of a config that need no data: run before anything is read, rendered or built.

A typo in a task type, a task option, a metric name or a path otherwise surfaces after
the dataset loaded (minutes on a real dataset) as a traceback from deep inside. Each check
raises :class:`~mtvision.config.ConfigError` naming the key, the problem and the closest
valid value.

Example:
    >>> from mtvision.config import load_config
    >>> try:
    ...     validate(load_config(None, ["tasks.semseg.type=semantic_segmentatoin"]))
    ... except ConfigError as error:
    ...     print(str(error).split(" (available")[0])
    tasks.semseg.type: unknown task type 'semantic_segmentatoin' — did you mean 'semantic_segmentation'?
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

import torch

from mtvision.config import Config, ConfigError
from mtvision.tasks import Task, available_tasks, task_type

#: Constructor arguments of every task that the model builder fills in, not the config.
_BUILT_IN_ARGS = {"self", "name", "info", "channels", "strides"}


def validate(cfg: Config) -> None:
    """Every check below, all problems reported together."""
    problems = [*_task_problems(cfg), *_metric_problems(cfg), *_path_problems(cfg), *_device_problems(cfg)]
    if problems:
        raise ConfigError("\n".join(problems))


def _closest(value: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
    return f" — did you mean {close[0]!r}?" if close else ""


def _task_problems(cfg: Config) -> list[str]:
    problems = []
    for name, task in cfg.tasks.items():
        try:
            cls = task_type(task.type)
        except ValueError as error:
            if ":" in task.type:
                problems.append(f"tasks.{name}.type: {error}")
            else:
                names = available_tasks()
                problems.append(f"tasks.{name}.type: unknown task type {task.type!r}{_closest(task.type, names)} "
                                f"(available: {', '.join(names)}, or an import path 'package.module:Class')")
            continue
        problems += _option_problems(name, cls, task.options)
    return problems


def _option_problems(name: str, cls: type[Task], options: dict[str, Any]) -> list[str]:
    """Options the task type's constructor does not take (it takes ``**kwargs``: anything goes)."""
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return []
    valid = [p for p in parameters if p not in _BUILT_IN_ARGS]
    return [f"tasks.{name}.options.{key}: task type {cls.__name__} has no option {key!r}{_closest(key, valid)} "
            f"(its options: {', '.join(valid) or 'none'})" for key in options if key not in valid]


def _metric_problems(cfg: Config) -> list[str]:
    """``train.best_metric`` is ``val/<task>/<metric>`` with a configured task and one of its metrics."""
    name = cfg.train.best_metric
    if name is None:
        return []
    split, _, rest = name.partition("/")
    task, _, metric = rest.partition("/")
    if split != "val" or task not in cfg.tasks:
        return [f"train.best_metric: {name!r} must be val/<task>/<metric> with a task among "
                f"{', '.join(cfg.tasks)}{_closest(task, list(cfg.tasks))} (selection never uses the test split)"]
    try:
        known = list(task_type(cfg.tasks[task].type).metrics_higher_is_better)
    except ValueError:
        return []  # the task type itself is reported
    if known and metric not in [*known, "loss"]:  # empty: the metrics depend on options (detection)
        return [f"train.best_metric: task {task!r} has no metric {metric!r}{_closest(metric, known)} "
                f"(its metrics: {', '.join([*known, 'loss'])})"]
    return []


def _path_problems(cfg: Config) -> list[str]:
    """Dataset sources and local weight files that do not exist."""
    problems = []
    for key in ("source", "val", "test"):
        for path in _paths(getattr(cfg.data, key)):
            if path != "synthetic" and not Path(path).exists():
                problems.append(f"data.{key}: {path} does not exist (relative paths start at {Path.cwd()})")
    pretrained = cfg.model.pretrained
    if isinstance(pretrained, str) and not Path(pretrained).is_file():
        problems.append(f"model.pretrained: weight file {pretrained} does not exist")
    return problems


def _paths(value: Any) -> list[str]:
    """The paths of a ``data.source``-like value: a path, or a list of paths and ``{path: ...}`` entries."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, str) else str(item.get("path", "")) for item in items
            if isinstance(item, str) or isinstance(item, dict) and item.get("path")]


def _device_problems(cfg: Config) -> list[str]:
    if cfg.run.device.startswith("cuda") and not torch.cuda.is_available():
        return [f"run.device: {cfg.run.device!r} but CUDA is not available here; use run.device=cpu or auto"]
    return []
