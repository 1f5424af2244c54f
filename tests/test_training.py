"""The generic trainer: loss curve, checkpoints and resuming, interruption, determinism, several processes."""

from __future__ import annotations

import os
import signal
import socket

import pytest
import torch

from nstutil import NSTError
from nstutil.training import Step, load_checkpoint, train
from nstutil.transformer_net import TransformerNet


def _net(seed=0, norm="instance"):
    torch.manual_seed(seed)
    return TransformerNet(channels=(4, 8, 8), blocks=1, norm=norm)


def _batches(step, size=4):
    """A batch that depends only on the step, as PhotoCrops gives."""
    g = torch.Generator().manual_seed(100 + step)
    return torch.rand(size, 3, 16, 16, generator=g)


def _loss(model, batch):
    # Learn to turn each photo upside down: a target that needs the network, cheap to compute.
    return torch.nn.functional.mse_loss(model(batch), batch.flip(-2))


def _run(steps, **kw):
    return train(_net(), _loss, _batches, steps=steps, lr=1e-2, progress=False, **kw)


def test_training_lowers_the_loss_and_records_a_curve():
    result = _run(30)
    assert result.stop_reason == "completed" and result.steps == 30
    assert len(result.losses) == len(result.times) == 30
    assert all(b >= a for a, b in zip(result.times, result.times[1:]))
    assert sum(result.losses[-5:]) < 0.7 * sum(result.losses[:5])


def test_the_reported_loss_is_the_loss_of_the_batch_before_the_step():
    net = _net()
    expected = _loss(net, _batches(0)).item()
    result = train(net, _loss, _batches, steps=1, lr=1e-2, progress=False)
    assert result.losses[0] == pytest.approx(expected, rel=1e-6)


def test_training_is_deterministic_on_the_cpu():
    a, b = _run(5).model.state_dict(), _run(5).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    whole = _run(6)
    ckpt = tmp_path / "run.ckpt"
    first = _run(3, checkpoint=ckpt, meta={"what": "test"})
    assert first.checkpoint == ckpt and load_checkpoint(ckpt)["step"] == 3
    resumed = _run(6, checkpoint=ckpt, resume=True, meta={"what": "test"})  # a fresh network, then the checkpoint
    assert resumed.steps == 6 and resumed.losses[:3] == first.losses
    assert resumed.losses == pytest.approx(whole.losses, rel=0, abs=0)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_are_written_every_n_steps(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    seen = []
    _run(5, checkpoint=ckpt, checkpoint_every=2,
         callback=lambda s: seen.append(load_checkpoint(ckpt)["step"] if ckpt.exists() else None))
    assert seen == [None, 2, 2, 4, 4]
    assert load_checkpoint(ckpt)["step"] == 5


def test_resuming_another_runs_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    _run(1, checkpoint=ckpt, meta={"size": 16})
    with pytest.raises(NSTError, match="another run.*size"):
        _run(2, checkpoint=ckpt, resume=True, meta={"size": 32})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_step_and_writes_a_checkpoint(tmp_path, signum):
    ckpt = tmp_path / "run.ckpt"

    def stop_at_three(step: Step):
        if step.step == 3:
            os.kill(os.getpid(), signum)

    result = _run(10, checkpoint=ckpt, callback=stop_at_three)
    assert result.stop_reason == "interrupted" and result.steps == 3
    assert load_checkpoint(ckpt)["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is not None  # handlers restored: a later SIGTERM is not swallowed
    saved = load_checkpoint(ckpt)["model"]
    assert all(torch.equal(saved[k], v) for k, v in result.model.state_dict().items())


def test_a_nonfinite_loss_stops_before_the_update():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = train(net, lambda m, b: _loss(m, b) * float("nan"), _batches, steps=3, progress=False)
    assert result.stop_reason == "nonfinite" and result.steps == 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("content", [b"", b"not torch", None])
def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path, content):
    path = tmp_path / "x.ckpt"
    if content is None:
        torch.save({"features.0.weight": torch.zeros(1)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(NSTError) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


# Without normalisation: a convolution's bias just before an instance normalisation has a gradient of exactly 0
# in exact arithmetic, so its computed gradient is rounding noise, which Adam's first steps scale up to ±lr.
NORM = "none"


def _distributed_worker(rank, world_size, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    result = train(_net(seed=rank, norm=NORM), _loss, _batches, steps=3, lr=1e-2, progress=False)  # rank 0's wins
    if rank == 0:
        torch.save({"state": result.model.state_dict(), "losses": result.losses}, out)
    torch.distributed.destroy_process_group()


def test_two_processes_train_as_one_process_with_the_whole_batch(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp.pth"
    torch.multiprocessing.spawn(_distributed_worker, args=(2, port, str(out)), nprocs=2, join=True)
    together = torch.load(out, weights_only=True)
    alone = train(_net(norm=NORM), _loss, _batches, steps=3, lr=1e-2, progress=False)
    assert together["losses"] == pytest.approx(alone.losses, rel=1e-5)
    for key, value in alone.model.state_dict().items():
        # Float rounding only: the two sides sum the gradients in another order (a gradient left out or counted
        # twice would differ by about the learning rate, 1e-2).
        assert torch.allclose(together["state"][key], value, rtol=1e-4, atol=1e-5), key
