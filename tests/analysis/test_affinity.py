"""TAG affinity against a closed form (each lookahead variant), partial labels, and a measured run
on the synthetic scenes where a random-label task stands apart. The lookahead itself against the
optimizers' own step: tests/engine/test_lookahead.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mtvision.analysis.affinity import AffinityProbe, measure_affinity
from mtvision.analysis.grouping import group_tasks
from mtvision.structures import Batch

torch.set_num_threads(1)


class Gain(nn.Module):
    """A task's head: ``a · h`` with ``a = 1``; the lookahead steps the shared layer only."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.ones(()))


class LinearTasks(nn.Module):
    """Regression tasks on one shared linear layer ``h = x·w``; task ``t``'s loss is
    ``mean_n (a_t h_n − y_tn)²`` over its labelled rows, ``a_t = 1`` its head."""

    def __init__(self, names: list[str], weight: list[float]) -> None:
        super().__init__()
        self.shared = nn.Linear(len(weight), 1, bias=False)
        with torch.no_grad():
            self.shared.weight.copy_(torch.tensor([weight]))
        self.tasks = nn.ModuleDict({name: Gain() for name in names})

    def forward(self, images: Tensor, batch: Batch) -> tuple[dict, dict]:
        h = self.shared(images).squeeze(-1)
        losses = {name: {"loss": (head.a * h[batch.present[name]] - batch.targets[name]).pow(2).mean()}
                  for name, head in self.tasks.items() if bool(batch.present[name].any())}
        return {}, losses


def _batch(x: Tensor, targets: dict[str, Tensor], present: dict[str, Tensor] | None = None) -> Batch:
    present = present or {name: torch.ones(len(x), dtype=torch.bool) for name in targets}
    return Batch(x, {name: y[present[name]] for name, y in targets.items()}, present, [{}] * len(x))


def _hand_z(x: np.ndarray, w: np.ndarray, y_i: np.ndarray, y_j: np.ndarray, lr: float) -> float:
    """Z_{i→j} written out for plain SGD: w' = w − lr · (2/N) Xᵀ(Xw − y_i)."""
    w_after = w - lr * 2 / len(x) * x.T @ (x @ w - y_i)
    return 1 - np.mean((x @ w_after - y_j) ** 2) / np.mean((x @ w - y_j) ** 2)


def test_affinity_is_the_closed_form_with_plain_sgd_and_negative_for_a_conflicting_pair() -> None:
    # Scalar case by hand: h = w = 0, targets a: +1, b: +1 (aligned), c: -1 (conflicting), lr 0.25.
    # A step on a: g = 2(w − 1) = −2, w' = 0.5; L_b: 1 -> 0.25, Z_{a→b} = 0.75; L_c: 1 -> 2.25, Z_{a→c} = −1.25.
    model = LinearTasks(["a", "b", "c"], [0.0])
    probe = AffinityProbe(model, torch.optim.SGD(model.parameters(), lr=0.25))
    ones = torch.ones(4)
    probe.measure(_batch(torch.ones(4, 1), {"a": ones, "b": ones, "c": -ones}))
    result = probe.result()
    assert result.affinity[0, 1] == pytest.approx(0.75)
    assert result.affinity[0, 2] == pytest.approx(-1.25)
    assert result.affinity[2, 0] == pytest.approx(-1.25)  # symmetric here: w' = -0.5 is as far from +1
    assert result.affinity[0, 0] == pytest.approx(0.75)  # a's own step: L_a 1 -> 0.25
    # The cosines come from the balancing diagnostics: aligned +1, conflicting -1.
    assert result.cosine[0, 1] == pytest.approx(1.0) and result.cosine[0, 2] == pytest.approx(-1.0)
    # The model and the optimizer are untouched by the measurement.
    assert model.shared.weight.item() == 0.0 and model.shared.weight.grad is None


def test_affinity_matches_the_formula_on_a_random_regression() -> None:
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(8, 3, generator=gen), torch.randn(3, generator=gen)
    ys = {"a": torch.randn(8, generator=gen), "b": torch.randn(8, generator=gen)}
    model = LinearTasks(["a", "b"], w.tolist())
    probe = AffinityProbe(model, torch.optim.SGD(model.parameters(), lr=0.05))
    probe.measure(_batch(x, ys))
    z = probe.result().affinity
    for i, a in enumerate(ys):
        for j, b in enumerate(ys):
            expected = _hand_z(x.double().numpy(), w.double().numpy(), ys[a].double().numpy(),
                               ys[b].double().numpy(), 0.05)
            assert z[i, j] == pytest.approx(expected, rel=1e-4, abs=1e-6), (a, b)


def test_a_pair_is_averaged_only_over_steps_where_both_tasks_are_labelled() -> None:
    model = LinearTasks(["a", "b", "c"], [0.0])
    probe = AffinityProbe(model, torch.optim.SGD(model.parameters(), lr=0.25))
    x, ones = torch.ones(4, 1), torch.ones(4)
    probe.measure(_batch(x, {"a": ones, "b": ones, "c": -ones}))  # Z_{a→b} = 0.75, Z_{a→c} = -1.25
    # Second step: c unlabelled; b's targets 3: L_b = 9, w' = 0.5 -> 6.25, Z_{a→b} = 1 - 6.25/9.
    absent = torch.zeros(4, dtype=torch.bool)
    probe.measure(_batch(x, {"a": ones, "b": 3 * ones, "c": -ones},
                         {"a": ~absent, "b": ~absent, "c": absent}))
    result = probe.result()
    assert result.counts[0, 1] == 2 and result.counts[0, 2] == 1 and result.counts[2, 0] == 1
    assert result.affinity[0, 1] == pytest.approx((0.75 + 1 - 6.25 / 9) / 2)
    assert result.affinity[0, 2] == pytest.approx(-1.25)  # the first step only, not diluted by the second
    assert result.cosine[0, 2] == pytest.approx(-1.0)


def test_the_isolated_variant_divides_by_the_momentum_only_step_by_hand() -> None:
    # h = w = 0, targets a: +1, b: +1, c: -1; SGD lr 0.25, momentum 0.5 with a buffer of 0.4 from earlier steps.
    # A step on g: w' = -0.25 (0.5·0.4 + g). Zero gradient (momentum only): w0 = -0.05, L_b = 1.05² = 1.1025,
    # L_c = 0.95² = 0.9025. Task a: g = 2(0 - 1) = -2, w' = 0.45: L_b = 0.3025, L_c = 2.1025.
    # Task c: g = 2(0 + 1) = 2, w' = -0.55: L_b = 2.4025.
    expected = {"isolated": (1 - 0.3025 / 1.1025, 1 - 2.1025 / 0.9025, 1 - 2.4025 / 1.1025),
                "tag": (1 - 0.3025, 1 - 2.1025, 1 - 2.4025),  # divided by the losses at w = 0 (all 1)
                "sgd": (1 - 0.25, 1 - 2.25, 1 - 2.25)}  # w' = -0.25 g, no momentum: 0.5 and -0.5
    for variant, (a_to_b, a_to_c, c_to_b) in expected.items():
        model = LinearTasks(["a", "b", "c"], [0.0])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.25, momentum=0.5)
        optimizer.state[model.shared.weight]["momentum_buffer"] = torch.full((1, 1), 0.4)
        probe = AffinityProbe(model, optimizer, variant=variant)
        ones = torch.ones(4)
        probe.measure(_batch(torch.ones(4, 1), {"a": ones, "b": ones, "c": -ones}))
        z = probe.result().affinity
        assert (z[0, 1], z[0, 2], z[2, 1]) == pytest.approx((a_to_b, a_to_c, c_to_b)), variant
        assert optimizer.state[model.shared.weight]["momentum_buffer"].item() == pytest.approx(0.4)  # not written
    with pytest.raises(ValueError, match="isolated, tag, sgd"):
        AffinityProbe(model, optimizer, variant="momentum")


def test_a_random_label_task_stands_apart_and_depth_joins_normals(synthetic_run) -> None:
    result = synthetic_run
    names = result.tasks
    assert result.probes == result.steps > 0 and 1.0 < result.cost_ratio < math.inf
    noise = names.index("noise")
    geometric = [names.index(t) for t in ("depth", "normals")]
    # The random labels help no geometric task, and receive less from them than they give each other.
    assert all(result.affinity[noise, g] < result.affinity[geometric[1 - k], g] for k, g in enumerate(geometric))
    grouping = group_tasks(result.affinity, names, 2)
    together = [g for g in grouping.groups if "depth" in g][0]
    assert "normals" in together and "noise" not in together, grouping.groups


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory):
    """Depth, normals and an image-level task with random labels, jointly trained for a few
    steps on small synthetic scenes, probed at every step."""
    from mtvision.cli import build
    from mtvision.config import load_config
    from mtvision.engine.distributed import DistInfo
    from mtvision.structures import TaskInfo

    cache = tmp_path_factory.mktemp("cache")
    cfg = load_config(None, [*SCENES, f"data.cache={cache}", "tasks.noise.type=classification",
                             *(f"tasks.{t}=null" for t in ("classes", "lighting", "semseg", "edges", "objects"))])
    train, val, _ = build.splits(cfg, DistInfo())
    rng = np.random.default_rng(0)
    for record in (train, val):
        record.tasks["noise"] = TaskInfo(kind="label", classes=["x", "y", "z"])
        for image in record.images:
            image.targets["noise"] = int(rng.integers(3))
    trainer, _ = build.trainer(cfg, DistInfo(), torch.device("cpu"), None, run_dir=cache / "run",
                               data=build.Splits(train, val))
    return measure_affinity(trainer.model, trainer.train_loader, trainer.parts, cfg.train.epochs, 1,
                            sampler=trainer.sampler)


SCENES = ["data.synthetic.num_train=64", "data.synthetic.num_val=8", "data.synthetic.size=32", "data.image_size=32",
          "data.batch_size=16", "model.neck_channels=16", "train.epochs=2", "train.warmup_epochs=0",
          "train.predict_images=0", "balancing.diagnostics=false"]
