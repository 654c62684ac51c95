"""Tiny training settings shared by the training tests: seconds, not minutes, on 2 cores."""
import os
import sys

TINY = dict(model="resnet20", dataset="digits", val_split=50, train_subset=64, image_size=16,
            epochs=1, batch_size=16, lr=0.05, tensorboard=False, progress="none", threads=1)

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def load_script(name):
    """benchmarks/<name>.py as a module (the scripts are not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                  os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_cfg(out, **changes):
    from regnet.train import TrainConfig
    return TrainConfig.from_dict({**TINY, "out": str(out), **changes})


def tiny_flags(**changes):
    """The same settings as `regnet train` flags (without the model)."""
    d = {**TINY, **changes}
    d.pop("model")
    flags = []
    for key, value in d.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


def subprocess_env():
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


PYTHON = sys.executable
