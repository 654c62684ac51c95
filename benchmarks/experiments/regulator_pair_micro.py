"""Micro-benchmark: the light gate conv (4 gates) as evaluated (dense block-sparse 1x1 + depthwise
3x3) vs an algebraically equal form without the 1x1 (two depthwise convs with channel multiplier 4
plus a border-exact bias map); forward + backward under bf16 autocast, stage-1 and stage-3 shapes."""
import time, torch, torch.nn.functional as F
from regnet.models.cells import LightGateConv
torch.manual_seed(0)
def alt(conv, x, h):
    n, g = conv.chs, conv.gates
    a = conv.pw.weight.view(n, g, 2)            # [k, j, (x,h)]
    b = conv.pw.bias.view(n, g)
    dw = conv.dw.weight.view(n, g, 3, 3)         # group-major storage [k, j]
    d = conv.dw.bias.view(n, g)
    wx = (dw * a[..., 0, None, None]).reshape(n * g, 1, 3, 3)
    wh = (dw * a[..., 1, None, None]).reshape(n * g, 1, 3, 3)
    y = F.conv2d(x, wx, None, padding=1, groups=n) + F.conv2d(h, wh, None, padding=1, groups=n)
    ones = torch.ones(1, n * g, *x.shape[-2:], dtype=x.dtype, device=x.device)
    bmap = F.conv2d(ones, dw.reshape(n * g, 1, 3, 3) * b.reshape(-1, 1, 1, 1), d.reshape(-1), padding=1, groups=n * g)
    y = y + bmap
    # group-major (k*g + j) -> gate-major (j*n + k)
    return y.unflatten(1, (n, g)).transpose(1, 2).flatten(1, 2).contiguous(memory_format=torch.channels_last)
for n, s in ((16, 32), (64, 8)):
    conv = LightGateConv(n, 4).to(memory_format=torch.channels_last)
    x = torch.randn(128, n, s, s).contiguous(memory_format=torch.channels_last).requires_grad_()
    h = torch.randn(128, n, s, s).contiguous(memory_format=torch.channels_last).requires_grad_()
    with torch.no_grad():
        torch.testing.assert_close(alt(conv, x, h), conv(x, h), rtol=1e-4, atol=1e-4)
    for name, fn in (("dense1x1", lambda: conv(x, h)), ("dwmult", lambda: alt(conv, x, h))):
        with torch.autocast("cpu", torch.bfloat16):
            for _ in range(2): fn().float().sum().backward()
            t = time.perf_counter()
            for _ in range(10): fn().float().sum().backward()
        print(n, s, name, f"{(time.perf_counter()-t)/10*1000:.1f} ms")
