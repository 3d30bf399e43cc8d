"""The one lookahead (engine/lookahead.py): the optimizers' own step, its derivative, Auto-Lambda's
validation gradient, the validation draws that leave the training RNG alone, and a trained step."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mtvision.engine.lookahead import CyclingBatches, ValidationLookahead, lookahead, plain_step
from mtvision.structures import Batch

torch.set_num_threads(1)


class Regression(nn.Module):
    """Tasks ``a``, ``b``: ``mean (x·w − y_t)²`` on one shared linear layer; a head that only holds a gain."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.shared = nn.Linear(len(weight), 1, bias=False)
        with torch.no_grad():
            self.shared.weight.copy_(weight[None])
        self.tasks = nn.ModuleDict({name: nn.Linear(1, 1, bias=False) for name in "ab"})
        for head in self.tasks.values():
            nn.init.ones_(head.weight)

    def forward(self, images: Tensor, batch: Batch) -> tuple[dict, dict]:
        h = self.shared(images)
        return {}, {name: {"loss": (head(h).squeeze(-1) - batch.targets[name]).pow(2).mean()}
                    for name, head in self.tasks.items()}


def _batch(x: Tensor, ya: Tensor, yb: Tensor) -> Batch:
    present = torch.ones(len(x), dtype=torch.bool)
    return Batch(x, {"a": ya, "b": yb}, {"a": present, "b": present}, [{}] * len(x))


@pytest.mark.parametrize("make", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5, dampening=0.1),
    lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01),
    lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    lambda p: torch.optim.AdamW(p, lr=0.01, amsgrad=True),
    lambda p: torch.optim.AdamW(p, lr=0.01, fused=True),
])
def test_the_lookahead_is_the_step_the_optimizer_takes_and_writes_nothing_back(make) -> None:
    gen = torch.Generator().manual_seed(1)
    param = nn.Parameter(torch.randn(5, generator=gen))
    optimizer = make([param])
    for step in range(4):  # the first lookahead meets an empty state, the later ones real moments
        grad = torch.randn(5, generator=gen)
        state = {k: v.clone() if isinstance(v, Tensor) else v for k, v in optimizer.state[param].items()}
        predicted = lookahead(optimizer, [param], [grad])[0]
        assert all(torch.equal(v, optimizer.state[param][k]) for k, v in state.items() if isinstance(v, Tensor))
        param.grad = grad
        optimizer.step()
        assert torch.allclose(predicted, param.detach(), atol=1e-6), step


def test_plain_step_ignores_the_state() -> None:
    param = nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = torch.optim.AdamW([param], lr=0.5, weight_decay=0.3)
    assert plain_step(optimizer, [param], [torch.tensor([1.0, -2.0])])[0].tolist() == [0.5, 3.0]


def _validation(make, lr: float) -> tuple[Regression, ValidationLookahead, Batch, Tensor]:
    gen = torch.Generator().manual_seed(0)
    model = Regression(torch.randn(3, generator=gen)).double()  # float64: checked against central differences
    optimizer = make([model.shared.weight], lr)  # the heads stay gains of 1
    val = _batch(*(torch.randn(*shape, generator=gen, dtype=torch.float64) for shape in ((6, 3), (6,), (6,))))
    for _ in range(2):  # moments that are not zero
        model.zero_grad()
        sum(loss["loss"] for loss in model(val.images, val)[1].values()).backward()
        optimizer.step()
    oracle = ValidationLookahead(model, [model.shared.weight], optimizer, CyclingBatches([val], torch.device("cpu")))
    return model, oracle, val, torch.randn(3, generator=gen, dtype=torch.float64)


def test_the_validation_gradient_under_sgd_is_minus_lr_times_the_gradient_one_step_ahead() -> None:
    model, oracle, val, d = _validation(lambda p, lr: torch.optim.SGD(p, lr=lr), lr=0.1)
    w, x = model.shared.weight.detach()[0], val.images
    ahead = w - 0.1 * d
    expected = sum(2 / len(x) * x.T @ (x @ ahead - val.targets[t]) for t in "ab")  # heads are gains of 1
    torch.testing.assert_close(oracle(d), -0.1 * expected, rtol=1e-5, atol=1e-7)


def test_the_validation_gradient_under_adamw_is_the_derivative_through_its_step() -> None:
    """Adam's preconditioning is differentiated through: checked by central differences."""
    model, oracle, val, d = _validation(lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.1), lr=0.05)
    direction = torch.tensor([0.3, -1.0, 0.5], dtype=torch.float64)

    def loss(step: Tensor) -> float:
        ahead = lookahead(oracle.optimizer, [model.shared.weight], [step.view(1, 3)])[0]
        h = val.images @ ahead[0]
        return float(sum((h - val.targets[t]).pow(2).mean() for t in "ab"))

    eps = 1e-6
    numeric = (loss(d + eps * direction) - loss(d - eps * direction)) / (2 * eps)
    assert float(oracle(d) @ direction) == pytest.approx(numeric, rel=1e-5)


def test_validation_draws_cycle_and_leave_the_training_rng_alone() -> None:
    loader = DataLoader(list(range(5)), batch_size=2,
                        collate_fn=lambda xs: Batch(torch.tensor(xs, dtype=torch.float32)[:, None], {}, {}, [{}] * len(xs)))
    draws = CyclingBatches(loader, torch.device("cpu"))
    state = torch.get_rng_state()
    firsts = [float(draws().images[0, 0]) for _ in range(4)]
    assert firsts == [0.0, 2.0, 4.0, 0.0] and torch.equal(torch.get_rng_state(), state)
    resumed = CyclingBatches(loader, torch.device("cpu"))
    resumed.resume_at(draws.drawn)  # 4 draws of 3 batches a pass: the next is the pass's second batch
    assert [float(resumed().images[0, 0]) for _ in range(3)] == [2.0, 4.0, 0.0] and resumed.drawn == 7
    iter(loader)  # what the draws were guarded against: a new pass draws its base seed
    assert not torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ValueError, match="validation split is empty"):
        CyclingBatches([], torch.device("cpu"))()


def test_auto_lambda_trains_through_the_trainer_without_moving_its_rng(tmp_path) -> None:
    from mtvision.cli import build
    from mtvision.config import load_config
    from mtvision.engine.distributed import DistInfo
    from mtvision.engine.step import train_step

    def first_step(method: str) -> tuple[dict, Tensor, object]:
        cfg = load_config(None, [*SCENES, f"data.cache={tmp_path}", f"balancing.method={method}",
                                 "balancing.options={lr: 0.05}" if method == "auto_lambda" else "balancing.options={}"])
        trainer, _ = build.trainer(cfg, DistInfo(), torch.device("cpu"), None, run_dir=tmp_path / method)
        batch = next(iter(trainer.train_loader))
        torch.manual_seed(0)
        values = [train_step(trainer.model, batch, trainer.parts) for _ in range(2)][-1]
        return values, torch.get_rng_state(), trainer.method

    values, rng, method = first_step("auto_lambda")
    _, ew_rng, _ = first_step("ew")
    assert torch.equal(rng, ew_rng)  # the validation draws and forwards ran under a forked RNG
    assert method.lookahead_gradient is None and torch.isfinite(torch.tensor(values["loss"]))
    assert not torch.allclose(method.weights, torch.ones(len(method.weights)))  # two meta steps of 0.05 moved λ
    logged = [values[f"{name}/weight"] for name in ("depth", "normals")]
    assert logged == pytest.approx(method.weights.tolist())  # the step used the weights after its meta step


SCENES = ["data.synthetic.num_train=8", "data.synthetic.num_val=4", "data.synthetic.size=32", "data.image_size=32",
          "data.batch_size=4", "model.neck_channels=16", "train.epochs=1", "train.warmup_epochs=0",
          "train.predict_images=0", "balancing.diagnostics=false",
          *(f"tasks.{t}=null" for t in ("classes", "lighting", "semseg", "edges", "objects"))]
