"""Micro-benchmark: the ConvLSTM gate arithmetic alone (stage-1 shapes, batch 128, bf16 gates),
forward + backward, channels_last vs NCHW, 5-D unflatten/unbind vs 4-D chunk vs torch.compile,
plus variants (one sigmoid over a 3N slice, NCHW copy first, fp32)."""
import time, torch
torch.manual_seed(0)
B,N,H=128,16,32
def mk(layout):
    y = torch.randn(B,4*N,H,H)
    if layout=="cl": y = y.contiguous(memory_format=torch.channels_last)
    y = y.bfloat16().requires_grad_()
    c = torch.randn(B,N,H,H).contiguous(memory_format=torch.channels_last if layout=="cl" else torch.contiguous_format).requires_grad_()
    return y,c
def math(y, c):
    ifo, g = y.unflatten(1,(4,N)).split((3,1),dim=1)
    i,f,o = torch.sigmoid(ifo).unbind(1)
    c = torch.addcmul(f*c, i, torch.tanh(g.squeeze(1)))
    return o*torch.tanh(c), c
def math2(y, c):  # slice channels directly, no 5-d view
    i,f,o,g = y.chunk(4, dim=1)
    c = torch.addcmul(torch.sigmoid(f)*c, torch.sigmoid(i), torch.tanh(g))
    return torch.sigmoid(o)*torch.tanh(c), c
cm = torch.compile(math2, dynamic=False)
def bench(fn, layout, n=10):
    y,c = mk(layout)
    for _ in range(2):
        h,c2 = fn(y,c); (h.float().sum()+c2.float().sum()).backward()
    t=time.perf_counter()
    for _ in range(n):
        h,c2 = fn(y,c); (h.float().sum()+c2.float().sum()).backward()
    return (time.perf_counter()-t)/n*1000
for name,fn in (("eager-5d",math),("eager-chunk",math2),("compiled",cm)):
    for layout in ("cl","nchw"):
        print(name, layout, f"{bench(fn,layout):.1f} ms fwd+bwd")
def math3(y, c):
    s = torch.sigmoid(y[:, :3*N]); i,f,o = s.chunk(3,1); g = torch.tanh(y[:, 3*N:])
    c = torch.addcmul(f*c, i, g)
    return o*torch.tanh(c), c
def math4(y, c):  # NCHW copy first
    return math2(y.contiguous(), c)
def math5(y, c):  # everything fp32
    return math2(y.float(), c)
print("----")
for name,fn in (("slice3",math3),("contig-first",math4),("fp32",math5)):
    for layout in ("cl",):
        print(name, layout, f"{bench(fn,layout):.1f} ms fwd+bwd")
