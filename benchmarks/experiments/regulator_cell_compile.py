"""A/B: regnet20_lstm fast-path step with the cells eager vs torch.compile'd (cells only)."""
import os, sys, time, torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import fast_config, fast_train_throughput, load_data
from regnet.models.regulated import regulated_stages
import regnet.train.trainer as reg

mode = sys.argv[1]  # eager | compile
orig = reg.create_model
def create(name, **kw):
    net = orig(name, **kw)
    if mode == "compile":
        for st in regulated_stages(net):
            st.cell = torch.compile(st.cell, dynamic=False)
    return net
reg.create_model = create
ds, mean, std, _ = load_data(None, 2048, 32)
cfg = fast_config(sys.argv[2] if len(sys.argv) > 2 else "regnet20_lstm", 128)
t0 = time.time()
r = fast_train_throughput(cfg, ds, mean, std, steps=10, warmup=3)
print(mode, cfg.model, f"{r['images_per_s']:.0f} img/s", f"warm {r['warmup_seconds']:.0f}s", f"total {time.time()-t0:.0f}s")
