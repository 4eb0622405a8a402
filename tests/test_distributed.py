"""`ssnc.distributed.parallelize` under `torchrun --nproc_per_node=2` (gloo, CPU; one launch
for the file): FSDP2 per fractal, alone, with checkpointing, and with regional compilation
(the eager backend), each trained 3 SGD steps with drop-path on, equals one process that runs
every rank's batch with the same draws and averages the gradients; so do FSDP2 per `unit`
instance (a column a draw drops is never called: its parameters get no gradient and the
optimizer leaves them, as in one process), a Hyper-WRN (its shared generator keeps every
group with the root) and an HM-RNN (its loop a unit). Errors a
user can make are diagnostics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ssnc
from tests.conftest import ROOT, SPECS

torch = pytest.importorskip("torch")


def _launch(worker: str, out: Path) -> Any:
    """``tests/<worker>`` under `torchrun --nproc_per_node=2`; what rank 0 wrote."""
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(ROOT / "tests" / worker), str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _launch("fsdp_worker.py", tmp_path_factory.mktemp("fsdp") / "out.json")  # type: ignore[no-any-return]


@pytest.mark.parametrize(("case", "units"), [
    ("shard", ["fractal1", "fractal2"]),
    ("shard+checkpoint", ["fractal1", "fractal2"]),
    ("shard+checkpoint+compile", ["fractal1", "fractal2"]),
    ("columns", ["fractal1.col3.unit1", "fractal1.col3.unit2", "fractal1.col2.unit1",
                 "fractal1.col3.unit3", "fractal1.col3.unit4", "fractal1.col2.unit2",
                 "fractal1.col1.unit1", "fractal2.col2.unit1", "fractal2.col2.unit2",
                 "fractal2.col1.unit1"]),  # a dropped column's units are not called at all
    ("hyper_wrn", []),  # every group reads the shared generator: all stay with the root
    ("hmrnn", ["hmrnn.scan"]),  # a loop as a unit
])
def test_fsdp2_by_region_equals_one_process(launched: dict[str, Any], case: str,
                                            units: list[str]) -> None:
    for rank in launched["ranks"]:
        result = rank[case]
        assert result["max_difference"] <= 1e-6, result
        assert result["moved"] > 0.9, result  # trained
        assert result["dropped"] > 0 or case in ("hyper_wrn", "hmrnn"), result  # drop-path
        assert 0.3 < result["local_share"] < 0.7, result  # about half on each rank
        assert result["units"] == units, result


def test_the_plan_says_what_each_region_got_and_why(launched: dict[str, Any]) -> None:
    plan = launched["plan"]
    assert plan.startswith("ssnc.distributed plan (2 ranks):")
    assert "fractal1  fractal      depth 1         3,064 params  checkpointed, sharded: " \
        "a rule call in the model's body" in plan
    assert "sharded (kept unsharded after forward: the last unit)" in plan


def test_parallelize_refuses_what_it_cannot_plan() -> None:
    from ssnc.distributed import parallelize

    with pytest.raises(ssnc.SsnError, match="a module that ssnc generated"):
        parallelize(torch.nn.Linear(2, 2))
    net = ssnc.loads("model m : tensor[3, 8, 8] = conv(4) >> gap\n").model().to_torch()
    with pytest.raises(ssnc.SsnError, match="needs a process group or a mesh"):
        parallelize(net)  # no process group here
    alone = parallelize(net, shard=False, checkpoint=True)  # one process: checkpointing only
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(alone(x), net(x))
    half = parallelize(net.to(torch.bfloat16).eval(), shard=False)  # its dtype and mode kept
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16} and not half.training
    torch.testing.assert_close(half(x.bfloat16()), net(x.bfloat16()))


def test_regions_by_the_activations_backward_keeps() -> None:
    """`Regions(min_activations=...)` picks the regions whose kept activations (the memory
    estimate's, per sample) reach the threshold: what checkpointing them saves. FractalNet's
    stages keep less the deeper they are (the images shrink)."""
    from ssnc.compiler.memory import kept_per_node
    from ssnc.distributed import Regions, parallelize

    model = ssnc.load(SPECS / "fractalnet.ssn").model(C=2, classes=10, widths=[4, 8, 8, 8, 8],
                                                      drops=[0.0] * 5)
    kept = kept_per_node(model.ir)
    per_stage = [sum(v for k, v in kept.items() if k.startswith(f"stage{i}.")) for i in
                 range(1, 6)]
    assert per_stage == sorted(per_stage, reverse=True) and per_stage[0] > per_stage[1]
    threshold = (per_stage[1] + per_stage[2]) // 2  # stages 1 and 2 are above it
    net = model.to_torch(0, drop_mode="off")
    chosen = parallelize(net, shard=False, checkpoint=True,
                         regions=Regions(min_activations=threshold))
    plan = chosen.ssnc_plan
    assert [c.path for c in plan.choices] == ["stage1", "stage2"]
    assert f"at least {threshold:,} bytes a sample kept for backward" in str(plan)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(chosen.eval()(x), net.eval()(x))


def test_ddp_with_sample_drop_path_needs_no_unused_parameter_search(
        launched: dict[str, Any]) -> None:
    """In "sample" mode every column is computed and masked, so every parameter is used and
    DDP runs without find_unused_parameters; it equals one process with the same masks."""
    for rank in launched["ranks"]:
        result = rank["ddp_sample"]
        assert result["max_difference"] <= 1e-6 and result["masked"] > 0, result


def test_the_example_trains_digits_on_two_ranks_with_units_checkpointed() -> None:
    """examples/train_distributed.py under torchrun: FSDP2 on every `unit` instance, each
    checkpointed, reaches the single-process example's accuracy on the digits."""
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "train_distributed.py", "--epochs", "10",
                           "--rule", "unit", "--checkpoint", "--json"], capture_output=True,
                          text=True, timeout=600, cwd=ROOT / "examples")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print("distributed digits:", result)
    assert result["ranks"] == 2 and result["test_accuracy"] >= 0.9
    assert len(result["units"]) == 14 and all(".unit" in u for u in result["units"])


@pytest.fixture(scope="module")
def piped(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    found = _launch("pipeline_worker.py", tmp_path_factory.mktemp("pipe") / "out.json")
    return found["ranks"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", ["fractalnet/1f1b", "fractalnet/gpipe", "vit/1f1b",
                                  "vit/gpipe"])
def test_two_pipeline_stages_give_one_process_losses_and_gradients(
        piped: list[dict[str, Any]], case: str) -> None:
    first, last = piped[0][case], piped[1][case]  # the stages' ranks
    assert first["grad_difference"] <= 1e-6 and last["grad_difference"] <= 1e-6, (first, last)
    assert last["losses"] == 4 and last["loss_difference"] <= 1e-6, last
    assert first["stage_params"] > 0 and last["stage_params"] > 0  # both stages hold weights
    assert "2 stages balanced by macs" in first["plan"] and "  stage 1: " in first["plan"]


def test_a_pipeline_asks_for_one_rank_per_stage(piped: list[dict[str, Any]]) -> None:
    assert piped[0]["wrong_size"] == "a pipeline of 3 stages needs 3 ranks, not 2"


def test_a_pipeline_refuses_drop_path_and_more_stages_than_cuts() -> None:
    from ssnc.distributed import pipeline

    model = ssnc.loads("model m : tensor[3, 8, 8] = conv(4) >> relu >> gap >> linear(2)\n"
                       ).model()
    with pytest.raises(ssnc.SsnError, match="cannot be cut into 9 stages: its top level has 3"):
        pipeline(model.to_torch(drop_mode="off"), 9)
    fractal = ssnc.loads("def u(w) = conv(w, 3) >> relu\nmodel m : tensor[3, 8, 8] = "
                         "fractal(2, u(4), drop_path = 0.2) >> gap >> linear(2)\n").model()
    with pytest.raises(ssnc.SsnError, match="drop-path is not supported in a pipeline"):
        pipeline(fractal.to_torch(), 2)


def test_parallelize_shards_over_a_one_dimensional_mesh(launched: dict[str, Any]) -> None:
    assert launched["ranks"][0]["two_d_mesh"] == (
        "parallelize() shards over a 1-D mesh, not a 2-D one")
