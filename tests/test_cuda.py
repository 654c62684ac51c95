"""The GPU path on a GPU. Skipped (with the reason) where CUDA is not available; run by
benchmarks/gpu_check.sh on a machine with one. What a CPU can check of the same code is in
tests/test_device_path.py."""
import pytest
import torch
import torch.nn.functional as F

from regnet import create_model
from regnet.data import ArrayDataset, InMemoryLoader
from train_helpers import tiny_cfg

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device here (these run in gpu_check.sh)")


def _step_grads(model, x, y):
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return [p.grad.detach().cpu() for p in model.parameters()]


@pytest.mark.parametrize("name", ["resnet20", "regnet20_lstm", "regnetx_200mf", "iresnet18"])
def test_a_training_step_on_the_gpu_equals_the_cpus(name):
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    cpu = create_model(name, num_classes=10)
    gpu = create_model(name, num_classes=10)
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    for a, b in zip(_step_grads(cpu, x, y), _step_grads(gpu, x.cuda(), y.cuda())):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)


def test_the_in_memory_loader_keeps_uint8_images_on_the_device_and_augments_there():
    images = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8)
    ds = ArrayDataset(images, torch.randint(0, 10, (64,)), tuple(str(i) for i in range(10)))
    loader = InMemoryLoader(ds, 16, train=True, augment="cifar", image_size=32,
                            mean=[0.5] * 3, std=[0.25] * 3, device="cuda")
    assert loader.images.device.type == "cuda" and loader.images.dtype == torch.uint8
    x, y = next(iter(loader))
    assert x.is_cuda and y.is_cuda and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_a_short_run_trains_on_the_gpu_under_autocast(tmp_path, amp):
    import math

    from regnet.train import train
    summary = train(tiny_cfg(tmp_path / amp, device="cuda", amp=amp, epochs=2))
    assert summary["device"].startswith("cuda") and summary["amp"] == amp
    assert math.isfinite(summary["final_train_loss"])


def test_the_gpus_loss_curve_follows_the_cpus(tmp_path):
    """fp32, the same seed and data: the per-epoch train losses agree within noise."""
    import json

    from regnet.train import train
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    curves = {}
    for device in ("cpu", "cuda"):
        train(tiny_cfg(tmp_path / device, device=device, amp="off", epochs=3, train_subset=256))
        lines = (tmp_path / device / "metrics.jsonl").read_text().splitlines()
        curves[device] = [json.loads(line)["train_loss"] for line in lines]
    for a, b in zip(curves["cpu"], curves["cuda"]):
        assert abs(a - b) <= 0.02 * abs(a), curves
