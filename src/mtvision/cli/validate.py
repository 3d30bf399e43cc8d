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
import importlib.util
import inspect
import os
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import torch

from mtvision.config import Config, ConfigError
from mtvision.tasks import Task, available_tasks, task_type

#: Constructor arguments of every task that the model builder fills in, not the config.
_BUILT_IN_ARGS = {"self", "name", "info", "channels", "strides"}


def validate(cfg: Config) -> None:
    """Every check below, all problems reported together."""
    problems = [*_task_problems(cfg), *_metric_problems(cfg), *_path_problems(cfg), *_device_problems(cfg),
                *_logging_problems(cfg), *_pretrained_problems(cfg)]
    if problems:
        raise ConfigError("\n".join(problems))


def _closest(value: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
    return f" — did you mean {close[0]!r}?" if close else ""


def _task_problems(cfg: Config) -> list[str]:
    if not cfg.tasks or cfg.tasks == "auto":  # auto: the CLI resolves it; unresolved = unreadable source
        missing = any(not Path(path).exists() for path in _paths(cfg.data.source))
        return [] if missing else [f"tasks: no task to train; data.source {cfg.data.source} has no annotations "
                                   "mtvision reads as a task (mtvision data check SOURCE says what it finds), "
                                   "or name the tasks in the config (mtvision config lists the keys)"]
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


def _logging_problems(cfg: Config) -> list[str]:
    """TensorBoard is optional: say so before training, not after the first epoch."""
    if cfg.logging.tensorboard and importlib.util.find_spec("tensorboard") is None:
        return ["logging.tensorboard: true needs the tensorboard package, which is not installed here; "
                "pip install tensorboard, or set logging.tensorboard=false (results.csv is always written)"]
    return []


def _pretrained_problems(cfg: Config) -> list[str]:
    """``pretrained: true`` on a machine that cannot download the weights: one line now, not a minute
    of hub retries and a traceback later. Weights already in the hub cache need no network."""
    if cfg.model.pretrained is not True:
        return []
    repo = _hub_repo(cfg.model.backbone)
    if repo is None or _in_hub_cache(repo):
        return []  # an unknown backbone is timm's to report; cached weights load offline
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not offline and reachable(endpoint):
        return []
    why = "HF_HUB_OFFLINE is set" if offline else f"{endpoint} cannot be reached from here"
    return [f"model.pretrained: true downloads the ImageNet weights of {cfg.model.backbone} ({repo}), but {why}; "
            "set model.pretrained=false (train from scratch), model.pretrained=PATH (a local weight file), "
            "or run once online to cache them"]


def _hub_repo(backbone: str) -> str | None:
    """The Hugging Face repository timm downloads ``backbone``'s weights from (None: unknown or not on the hub)."""
    from timm.models import get_pretrained_cfg

    try:
        pretrained_cfg = get_pretrained_cfg(backbone)
    except (RuntimeError, ValueError):
        return None
    return getattr(pretrained_cfg, "hf_hub_id", None) or None


def _in_hub_cache(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo, name), str)
               for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds (name lookup included)."""
    parsed = urllib.parse.urlparse(url)
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)  # a hanging DNS lookup ignores socket timeouts
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
