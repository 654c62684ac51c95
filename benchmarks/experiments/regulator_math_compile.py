"""A/B of the ConvLSTM gate arithmetic: eager (chunk), one sigmoid over all gates, torch.compile.
End-to-end fast-path training images/s of regnet20_lstm (batch 128, 10 steps after 3 warm-up).
Usage: python benchmarks/experiments/regulator_math_compile.py eager|full|compile"""
import os, sys, time, torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import fast_config, fast_train_throughput, load_data
from regnet.models import cells
mode = sys.argv[1]
def lstm_math(gates, c):
    i, f, o, g = gates.chunk(4, 1)
    c = torch.addcmul(torch.sigmoid(f) * c, torch.sigmoid(i), torch.tanh(g))
    return torch.sigmoid(o) * torch.tanh(c), c
def lstm_math_full(gates, c):  # one sigmoid over the whole (contiguous) tensor
    s = torch.sigmoid(gates)
    i, f, o, _ = s.chunk(4, 1)
    g = torch.tanh(gates[:, 3 * (gates.shape[1] // 4):])
    c = torch.addcmul(f * c, i, g)
    return o * torch.tanh(c), c
fn = {"eager": lstm_math, "full": lstm_math_full, "compile": torch.compile(lstm_math)}[mode]
def forward(self, x, state=None):
    h, c = state if state is not None else self.zero_state(x)
    return fn(self._gates(self.gates, x, h), c)
cells.ConvLSTM.forward = forward
ds, mean, std, _ = load_data(None, 2048, 32)
cfg = fast_config("regnet20_lstm", 128)
t0 = time.time()
r = fast_train_throughput(cfg, ds, mean, std, steps=10, warmup=3)
print(mode, f"{r['images_per_s']:.0f} img/s", f"warm {r['warmup_seconds']:.0f}s", f"total {time.time()-t0:.0f}s")
