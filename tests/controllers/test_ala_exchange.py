"""Multi-network experience exchange: two gloo processes all-gather their transitions."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fairseq_dynloss.controllers import ControllerError, Transition, gather_transitions


def transition_of(rank: int, rows: int = 3, per_element: bool = False) -> Transition:
    state = torch.arange(rows * 2, dtype=torch.float32).reshape(rows, 2) + 0.1 + 10 * rank
    action = torch.tensor([-1, 0, 1])[:rows] * (1 if rank == 0 else -1)
    reward = -1.0 if rank else 1.0
    if per_element:  # per-class credit: one reward per element
        reward = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)[:rows] * (rank + 1)
    return Transition(state, action, reward=reward, next_state=state * 2, child=rank, step=5 + rank)


def _worker(rank: int, init_file: str, out_dir: str, mismatch: bool, per_element: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        mine = transition_of(rank, rows=2 if (mismatch and rank == 1) else 3, per_element=per_element)
        try:
            result = gather_transitions(mine)
        except ControllerError as err:
            result = str(err)
        torch.save(result if isinstance(result, str) else [vars(t) for t in result],
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_two(tmp_path, mismatch=False, per_element=False):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path), mismatch, per_element), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("per_element", [False, True])
def test_every_rank_receives_all_transitions_in_rank_order(tmp_path, per_element):
    for received in run_two(tmp_path, per_element=per_element):
        assert len(received) == 2
        for rank, got in enumerate(received):
            expected = transition_of(rank, per_element=per_element)
            assert torch.equal(got["state"], expected.state) and got["state"].dtype == torch.float32
            assert torch.equal(got["next_state"], expected.next_state)
            assert torch.equal(got["action"], expected.action) and got["action"].dtype == torch.long
            assert (got["child"], got["step"]) == (rank, 5 + rank)
            if per_element:
                assert torch.equal(got["reward"], expected.reward)
            else:
                assert got["reward"] == expected.reward and isinstance(got["reward"], float)


@pytest.mark.slow
def test_children_with_different_state_shapes_are_refused_on_every_rank(tmp_path):
    for message in run_two(tmp_path, mismatch=True):
        assert isinstance(message, str) and "state shapes per rank are [(3, 2, 3, 2), (2, 2, 2, 2)]" in message


def test_without_a_process_group_it_is_the_identity():
    t = transition_of(0)
    assert gather_transitions(t) == [t]
    with pytest.raises(ControllerError, match="needs its next_state"):
        gather_transitions(Transition(t.state, t.action, 1.0))
