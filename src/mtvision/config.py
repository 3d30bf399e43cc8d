"""The run configuration: typed pydantic models, loaded from YAML plus ``key=value`` overrides.

Every field has a default and a comment saying why it has that value; the defaults *are*
the demo (``configs/demo.yaml`` is this file's defaults written out, but for the best metric
and validating every second epoch), so ``mtvision train`` with no arguments needs no file at
all. Unknown keys are errors (``extra="forbid"``), and
every error names the dotted field path and, for a typo, the closest valid key.

The CLI turns a :class:`Config` into objects; nothing below the CLI ever sees it.

Example:
    >>> cfg = load_config(None, ["train.epochs=3", "model.backbone=resnet18"])
    >>> cfg.train.epochs, cfg.model.backbone
    (3, 'resnet18')
    >>> load_config(None, ["train.epoch=3"])
    Traceback (most recent call last):
    ...
    mtvision.config.ConfigError: unknown key 'train.epoch' — did you mean 'train.epochs'?
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunConfig(_Section):
    name: str = "demo"  # run folder runs/<name>; auto-incremented (demo2, demo3...) if it exists
    seed: int = 0  # seeds model init, shuffling and augmentation: same seed, same run
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")  # auto = CUDA when present, else CPU
    output: str = "runs"  # parent folder of every run
    threads: Union[int, None] = Field(None, ge=1)  # CPU threads for torch; None = torch's default (all cores)


class SyntheticConfig(_Section):
    num_train: int = Field(1200, ge=1)  # enough scenes for the demo to learn every task in its 5-minute CPU budget
    num_val: int = Field(200, ge=1)  # validation scenes; rendered from a different seed than training
    size: int = Field(64, ge=16)  # rendered side in pixels; 64 keeps the demo CPU-friendly
    max_objects: int = Field(4, ge=0)  # objects per scene; more = harder segmentation and depth
    num_test: int = Field(200, ge=1)  # `mtvision compare`'s test scenes, rendered after the validation ones
    seed: int = 0  # scene seed; the cache folder is keyed on all of these settings


class DataConfig(_Section):
    # "synthetic", a dataset in any supported format (path; the format is detected), or a
    # list of sources merged by image file name: paths or {path, format, options, rename}.
    source: Union[str, list[Union[str, dict[str, Any]]]] = "synthetic"
    val: Union[str, list[Union[str, dict[str, Any]]], None] = None  # validation split, same forms; None = hold out val_fraction
    val_fraction: float = Field(0.1, gt=0, lt=1)  # share of `source` held out when `val` is not given
    # `mtvision compare`'s test split, same forms: every model is scored on it once, after
    # selection on `val`; None = hold out test_fraction of `source` first (synthetic: num_test scenes).
    test: Union[str, list[Union[str, dict[str, Any]]], None] = None
    test_fraction: float = Field(0.1, gt=0, lt=1)  # share of `source` held out as the test split when `test` is not given
    # {task: fraction}: keep that task's labels on a seeded `fraction` of the training images
    # (the others keep theirs), e.g. {depth: 0.05} asks whether a scarce-label task gains from the others.
    label_fraction: dict[str, float] = {}
    synthetic: SyntheticConfig = SyntheticConfig()  # used only when source is "synthetic"
    cache: str = ".cache/synthetic"  # generated scenes are cached here, keyed on their settings
    image_size: Union[int, tuple[int, int]] = 64  # network input (H, W) or one side; every image is resized to it
    augment: Literal["none", "light", "default", "strong"] = "light"  # joint augmentation preset for training
    batch_size: int = Field(32, ge=1)  # per process; under torchrun the global batch is N times this
    workers: int = Field(0, ge=0)  # data-loader processes; 0 loads in the main process (best on 2 cores)
    skip_corrupt: bool = False  # skip unreadable images instead of failing (logged); off = fail loudly
    # How images of a list of sources are matched: by file "name" (one image labelled in several tools),
    # by "id", or "none": each source brings its own images (one dataset per task, docs/transfer.md).
    merge: Literal["name", "id", "none"] = "name"
    # What a batch holds when sources have their own images: every source ("batch": partial labels in
    # each batch) or one source at a time ("source": only its heads run). Per-source `weight` sets the shares.
    mix: Literal["batch", "source"] = "batch"


    @field_validator("label_fraction")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        wrong = {task: f for task, f in value.items() if not 0 < f <= 1}
        if wrong:
            raise ValueError(f"label fractions must be in (0, 1]: {wrong}")
        return value


class TaskConfig(_Section):
    type: str  # task type from the registry: classification, semantic_segmentation, depth, normals, edges
    options: dict[str, Any] = {}  # keyword arguments of that task type (e.g. loss options)


def _default_tasks() -> dict[str, TaskConfig]:
    # Every image-level and dense task of the synthetic scenes: they share geometry (depth,
    # normals, edges) and semantics (semseg, classes), which is what multi-task learning exploits.
    kinds = {"classes": "classification", "lighting": "classification", "semseg": "semantic_segmentation",
             "depth": "depth", "normals": "normals", "edges": "edges"}
    tasks = {name: TaskConfig(type=kind) for name, kind in kinds.items()}
    # Boxes, instance masks and keypoints from one detector on the same features; a small
    # RoI budget (few objects per 64-px scene) keeps it inside the demo's CPU minutes.
    tasks["objects"] = TaskConfig(type="detection", options=dict(DEMO_DETECTION))
    return tasks


DEMO_DETECTION = {"masks": True, "keypoints": True, "proposals": 100, "rois_per_image": 32, "sampling_ratio": 1}


class ModelConfig(_Section):
    # Any timm model with features_only; this 0.4M-parameter ResNet learned the demo best per CPU second.
    backbone: str = "test_resnet.r160_in1k"
    pretrained: Union[bool, str] = False  # True = timm weights, a path = local weights; the demo trains from scratch
    neck_channels: int = Field(64, ge=1)  # FPN width shared by every head; small keeps heads light
    # How tasks share (docs/architectures.md): hard = one trunk and neck for all, the cheapest and the baseline.
    architecture: str = "hard"
    branches: Union[list[list[str]], None] = None  # branched: the task groups, each with its own late stages and neck
    branch_at: Union[int, None] = Field(None, ge=1)  # branched: how many trunk stages every task shares
    architecture_options: dict[str, Any] = {}  # the architecture's own options, e.g. {experts: 4} for mmoe
    # A trained mtvision checkpoint to start from (`train --from`): every tensor whose name and shape
    # match is loaded, new tasks get fresh heads (docs/transfer.md). A new run, unlike --resume.
    init: Union[str, None] = None
    # Parts that do not train, e.g. [backbone] or [backbone.layer1, neck, heads.depth]: backbone = the timm
    # trunk under any architecture, backbone.<stage> one of its timm modules, neck = the FPN(s),
    # heads.<task> = that task's head. Frozen BatchNorm keeps its statistics (eval mode).
    freeze: list[str] = []

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        # Imported here: the model registry pulls in torch, which a config file alone never needs.
        from mtvision.models.architectures import available_architectures
        from mtvision.structures.registry import closest_hint

        names = available_architectures()
        if value not in names:
            raise ValueError(f"unknown architecture {value!r}; {closest_hint(value, names)}"
                             f"available: {', '.join(names)}")
        return value

    @model_validator(mode="after")
    def _branches_only_when_branched(self) -> ModelConfig:
        given = [key for key in ("branches", "branch_at") if getattr(self, key) is not None]
        if given and self.architecture != "branched":
            raise ValueError(f"model.{given[0]} is for model.architecture=branched (got {self.architecture!r})")
        return self

    def architecture_kwargs(self) -> dict[str, Any]:
        """The options the architecture is built with (``branches`` / ``branch_at`` included)."""
        tree = {key: getattr(self, key) for key in ("branches", "branch_at") if getattr(self, key) is not None}
        return {**self.architecture_options, **tree}


class BalancingConfig(_Section):
    method: str = "ew"  # any of mtvision.balancing.available(); equal weights is the baseline every method must beat
    options: dict[str, Any] = {}  # the method's keyword options, e.g. {temperature: 2.0} for dwa
    weights: dict[str, float] = {}  # per-task weights for "fixed" ({task: w}); a task not listed weighs 1
    # Per-task gradients of the shared "parameters" or the shared "representation" (cheaper,
    # MGDA-UB style); auto = the method's own choice. Loss methods compute none either way.
    # "parameters" holds G[T, D] while it fits in memory, else streams G Gᵀ (one extra backward);
    # "parameters_streamed" / "parameters_stored" force one (docs/balancing_cost.md).
    gradients: Literal["auto", "parameters", "parameters_streamed", "parameters_stored", "representation"] = "auto"
    every: int = Field(1, ge=1)  # gradient methods: recompute weights every K steps, reuse them in between (K× cheaper)
    # Log task weights (and for gradient methods gradient norms and cosines); draw balance.png, and
    # conflicts.png for gradient methods (loss methods such as ew compute no per-task gradient to compare).
    diagnostics: bool = True

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        # Imported here: the balancing registry pulls in torch, which a config file alone never needs.
        from mtvision.balancing import available
        from mtvision.structures.registry import closest_hint

        key = value.lower().replace("-", "_")
        if key not in available():
            raise ValueError(f"unknown balancing method {value!r}; {closest_hint(key, available())}"
                             f"available: {', '.join(available())}")
        return key

    @model_validator(mode="after")
    def _known_options(self) -> BalancingConfig:
        from mtvision.balancing import METHODS

        valid = METHODS[self.method].options()
        unknown = sorted(set(self.options) - set(valid))
        if unknown:
            raise ValueError(f"balancing method {self.method!r} has no option {unknown[0]!r}; "
                             f"its options: {', '.join(valid) or 'none'}")
        if self.weights and self.method != "fixed":
            raise ValueError(f"balancing.weights is for method 'fixed' (got {self.method!r}); set balancing.method=fixed")
        return self


class DistillConfig(_Section):
    # `from` in YAML (a Python keyword, hence the field name `checkpoint`)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True, serialize_by_alias=True)

    checkpoint: str = Field(alias="from")  # the old model: a trained mtvision checkpoint, frozen while it teaches
    tasks: list[str] = []  # old tasks whose outputs it keeps; [] = every task both the old model and the config have
    weight: float = Field(1.0, ge=0)  # λ: the distillation loss is added to each task's own, times this


class TrainConfig(_Section):
    epochs: int = Field(8, ge=1)  # passes over the training split
    lr: float = Field(2e-3, gt=0)  # AdamW peak learning rate (after warmup)
    weight_decay: float = Field(1e-4, ge=0)  # AdamW decoupled weight decay
    warmup_epochs: float = Field(1.0, ge=0)  # linear warmup length; keeps early steps of a fresh model stable
    schedule: Literal["cosine", "constant"] = "cosine"  # learning rate after warmup
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"  # auto = bf16 (or fp16) on CUDA, off on CPU
    grad_clip: Union[float, None] = Field(10.0, gt=0)  # max global gradient norm; None = no clipping
    patience: Union[int, None] = Field(None, ge=1)  # early stop after this many evaluations without a new best
    # Metric selecting best.pt, "val/<task>/<metric>". None = the first configured task's primary
    # metric: a default cannot know which task matters most to you, so name it (the demo does).
    best_metric: Union[str, None] = None
    best_mode: Literal["auto", "max", "min"] = "auto"  # auto = the metric's own direction
    max_nonfinite: int = Field(5, ge=1)  # stop after this many consecutive steps with a NaN/inf loss
    # Validate every N epochs (and always after the last); validation draws nothing from the training RNG,
    # so N changes only which epochs can be selected as best.pt, never the weights (the demo uses 2).
    eval_every: int = Field(1, ge=1)
    predict_images: int = Field(4, ge=0)  # validation samples drawn with every task's prediction
    predict_every_epoch: bool = False  # draw predictions after every evaluation, not only at the end
    # {part: factor} on lr, parts as in model.freeze, e.g. {backbone: 0.1}: a trained trunk moves slowly
    # while new heads learn at full speed. Each part is a parameter group, logged as lr/<part>.
    lr_mult: dict[str, float] = {}
    # Learning without Forgetting from an old model: {from: PATH, tasks: [...], weight: 1.0} (docs/transfer.md)
    distill: Union[DistillConfig, None] = None

    @field_validator("lr_mult")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        if wrong := {part: f for part, f in value.items() if f < 0}:
            raise ValueError(f"learning-rate multipliers must be >= 0: {wrong}")
        return value

    @field_validator("amp", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as False; accept it as the string it looks like.
        return "off" if value is False else value


class LoggingConfig(_Section):
    tensorboard: bool = False  # also write TensorBoard events (needs the tensorboard package)


class Config(_Section):
    """The whole run: one section per concern."""

    run: RunConfig = Field(default_factory=RunConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    # {name: {type, options}} of the tasks to train, or "auto": every task of data.source, each
    # with the type its annotations imply (cli/auto_tasks.py). No `tasks` key = the synthetic
    # demo's seven tasks for source "synthetic", else "auto": a dataset path alone is a complete config.
    tasks: Union[Literal["auto"], dict[str, TaskConfig]] = Field(default_factory=_default_tasks)
    model: ModelConfig = Field(default_factory=ModelConfig)
    balancing: BalancingConfig = Field(default_factory=BalancingConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="before")
    @classmethod
    def _tasks_of_the_source(cls, data: Any) -> Any:
        """No ``tasks`` key with a dataset source means that dataset's tasks ("auto")."""
        if isinstance(data, dict) and "tasks" not in data and _dataset_source(data):
            return {**data, "tasks": "auto"}
        return data

    @model_validator(mode="after")
    def _branches_cover_the_tasks(self) -> Config:
        """Each configured task in exactly one branch, checked before any data is read."""
        if self.model.branches is None or self.tasks == "auto":
            return self
        from mtvision.models.architectures.branched import branch_problems  # torch: only when branched

        problems = branch_problems(self.model.branches, list(self.tasks))
        if problems:
            raise ValueError(f"model.branches {self.model.branches}: {'; '.join(problems)} "
                             f"(tasks: {', '.join(self.tasks)})")
        return self


class ConfigError(ValueError):
    """A config that does not validate; the message lists every problem with its field path."""


def load_config(path: str | Path | None, overrides: list[str] | None = None, base: dict[str, Any] | None = None,
                auto_tasks: AutoTasks | None = None) -> Config:
    """Read ``path`` (or start from ``base``, or the defaults), apply ``key=value`` overrides, validate.

    Override values are parsed as YAML scalars (``3`` is an int, ``[64, 64]`` a list,
    ``null`` None); a task set to ``null`` is removed (``tasks.edges=null``). ``tasks: auto``
    (or no ``tasks`` key with a dataset source) stays ``"auto"`` unless ``auto_tasks`` is
    given: the CLI passes the function that reads the dataset's own tasks, so that the
    resolved config names them and ``tasks.X`` overrides edit them.
    """
    data = dict(base or {})
    if path is not None:
        data = _read_yaml(Path(path))
    task_items = [item for item in overrides or [] if item.startswith("tasks.")]
    for item in overrides or []:
        if item not in task_items:
            _apply_override(data, item)
    if task_items or (auto_tasks is not None and _is_auto(data)):
        data["tasks"] = _task_base(data, path, auto_tasks)
    for item in task_items:
        _apply_override(data, item)
    if isinstance(data.get("tasks"), dict):
        data["tasks"] = {k: v for k, v in data["tasks"].items() if v is not None}
    return _validate(data, path)


#: Reads the tasks of a config's dataset (``tasks: auto``): the CLI's ``auto_tasks.tasks_of``.
AutoTasks = typing.Callable[["Config"], dict[str, TaskConfig]]


def _dataset_source(data: dict[str, Any]) -> bool:
    """Whether the raw config trains on a dataset rather than the synthetic scenes."""
    section = data.get("data")
    source = section.get("source", "synthetic") if isinstance(section, dict) else "synthetic"
    return source not in ("synthetic", None)


def _is_auto(data: dict[str, Any]) -> bool:
    return data.get("tasks") == "auto" or ("tasks" not in data and _dataset_source(data))


def _task_base(data: dict[str, Any], path: str | Path | None, auto_tasks: AutoTasks | None) -> Any:
    """The task set that ``tasks.X`` overrides edit: the config's own, the dataset's, or the demo's."""
    if not _is_auto(data):
        tasks = data.get("tasks")
        return tasks if isinstance(tasks, dict) else {n: t.model_dump() for n, t in _default_tasks().items()}
    if not _dataset_source(data):  # auto on the synthetic scenes: their tasks are the demo's
        return {name: task.model_dump() for name, task in _default_tasks().items()}
    if auto_tasks is None:
        raise ConfigError("tasks.<name> overrides edit the dataset's own tasks (tasks: auto), which only the "
                          "CLI reads; name the tasks in the config instead")
    found = auto_tasks(_validate({**data, "tasks": "auto"}, path))
    return {name: task.model_dump() for name, task in found.items()}


def _validate(data: dict[str, Any], path: str | Path | None) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        where = f"{path}: " if path is not None else ""
        raise ConfigError("\n".join(where + _describe(e) for e in _one_branch(error.errors()))) from None


def _one_branch(errors: list[Any]) -> list[Any]:
    """Errors of ``tasks`` as a mapping only (not also as "auto"), with pydantic's union branch names
    dropped from the field path: ``tasks.depth.optons``, not ``tasks.dict[str,TaskConfig].depth.optons``."""
    kept = []
    for error in errors:
        loc = tuple(error["loc"])
        if loc[:2] == ("tasks", "literal['auto']") and len(errors) > 1:
            continue
        kept.append({**error, "loc": tuple(part for part in loc if not str(part).startswith(("dict[", "literal[")))})
    return kept


def dump_config(config: Config) -> str:
    """The resolved config as YAML (what ``runs/<name>/config.yaml`` holds)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The YAML mapping of ``path``; unreadable or invalid YAML names ``file:line:column``."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" if not path.exists() else f"{path}: not a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(_yaml_problem(str(path), error)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not key=value (e.g. train.epochs=3)")
    *parents, leaf = key.split(".")
    node = data
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: '{'.'.join(parents[:depth + 1])}' is a value, not a section")
    try:
        node[leaf] = yaml.safe_load(text) if text else None
    except yaml.YAMLError as error:
        raise ConfigError(_yaml_problem(f"override {item!r}", error).replace(":1:", ", column ", 1)) from None


def _yaml_problem(where: str, error: yaml.YAMLError) -> str:
    """``file:line:column: YAML syntax error: problem`` (PyYAML's own text names no file)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    position = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    return f"{where}{position}: YAML syntax error: {problem}" + (f" ({context})" if context else "")


def _describe(error: Any) -> str:
    loc = tuple(str(part) for part in error["loc"])
    dotted = ".".join(loc)
    if error["type"] == "extra_forbidden":
        valid = _keys_at(Config, loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        prefix = ".".join(loc[:-1] + (close[0],)) if close else ""
        hint = f"did you mean '{prefix}'?" if close else f"valid keys: {', '.join(valid)}"
        return f"unknown key '{dotted}' — {hint}"
    # A section-level check (a whole mapping as input) has said what is wrong in its message.
    got = "" if isinstance(error.get("input"), dict) else f" (got {error.get('input')!r})"
    return f"{dotted or 'config'}: {error['msg'].removeprefix('Value error, ')}{got}"


def _keys_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """The valid field names of the section at ``loc`` (dict-of-section keys are skipped)."""
    parts = list(loc)
    while parts:
        annotation = model.model_fields[parts.pop(0)].annotation
        if typing.get_origin(annotation) is Union:  # an optional section (train.distill), tasks: auto | {...}
            annotation = next((a for a in typing.get_args(annotation) if typing.get_origin(a) is dict or
                               isinstance(a, type) and issubclass(a, BaseModel)), None)
        if typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
            parts = parts[1:]
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [field.alias or name for name, field in model.model_fields.items()]
