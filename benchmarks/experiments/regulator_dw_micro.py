"""Micro-benchmark: the light gate conv's two steps (pw: block-sparse dense 1x1, dw: depthwise 3x3)
alone and together, channels_last vs NCHW, bf16 autocast vs fp32, stage-1 shapes."""
import time, torch, torch.nn.functional as F
from regnet.models.cells import LightGateConv
torch.manual_seed(0)
n, s = 16, 32
conv = LightGateConv(n, 4)
for fmt in (torch.channels_last, torch.contiguous_format):
    conv = conv.to(memory_format=fmt)
    x = torch.randn(128, n, s, s).contiguous(memory_format=fmt).requires_grad_()
    h = torch.randn(128, n, s, s).contiguous(memory_format=fmt).requires_grad_()
    y = torch.randn(128, 4*n, s, s).contiguous(memory_format=fmt).requires_grad_()
    for name, fn in (("pw", lambda: conv.pw(x, h)), ("dw", lambda: conv.dw(y)), ("both", lambda: conv(x, h))):
        for amp in (True, False):
            with torch.autocast("cpu", torch.bfloat16, enabled=amp):
                for _ in range(2): fn().sum().backward()
                t = time.perf_counter()
                for _ in range(10): fn().sum().backward()
            print(fmt, name, "bf16" if amp else "fp32", f"{(time.perf_counter()-t)/10*1000:.1f} ms")
