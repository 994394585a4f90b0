"""Device selection of dynloss-train with ``torch.cuda`` mocked: every CUDA choice hands
``torch.cuda.set_device`` a device with an index (torch refuses one without), as the real call
checks it."""

import pytest
import torch
from torch.cuda._utils import _get_device_index

from fairseq_dynloss.trainer import distributed


@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine with CUDA: ``set_device`` records the index the real function would select
    (and raises as it does for a device without an index); no process group is started."""
    selected = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: selected.append(_get_device_index(device)))
    groups = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: bool(groups))
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: groups.append(backend))
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    return selected, groups


def test_the_fake_set_device_refuses_a_device_without_index_as_torch_does(fake_cuda):
    with pytest.raises(ValueError, match="specified index"):
        torch.cuda.set_device(torch.device("cuda"))


@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:0"])
def test_a_single_process_on_cuda_selects_device_0(fake_cuda, device):
    selected, groups = fake_cuda
    context = distributed.setup(device)
    assert context.device == torch.device("cuda", 0)
    assert selected == [0]
    assert (context.rank, context.world_size, groups) == (0, 1, [])


def test_an_explicit_index_is_kept(fake_cuda):
    selected, _ = fake_cuda
    assert distributed.setup("cuda:3").device == torch.device("cuda", 3)
    assert selected == [3]


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_each_torchrun_rank_selects_its_local_device_and_nccl(fake_cuda, monkeypatch, device):
    selected, groups = fake_cuda
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    context = distributed.setup(device)
    assert context.device == torch.device("cuda", 1)
    assert selected == [1]
    assert (context.rank, context.world_size, groups) == (3, 4, ["nccl"])


def test_cpu_never_touches_cuda(fake_cuda):
    selected, groups = fake_cuda
    assert distributed.setup("cpu").device == torch.device("cpu")
    assert selected == [] and groups == []


@pytest.mark.parametrize("bad", ["gpu", "cuda0", "tpu:0"])
def test_an_unknown_device_is_refused(fake_cuda, bad):
    with pytest.raises(ValueError, match=f"device={bad!r}"):
        distributed.setup(bad)
