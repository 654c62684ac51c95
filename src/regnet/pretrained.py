"""Known weights files by tag (`pretrained.yaml`), downloaded into a cache and checked.

`list_pretrained(pattern)` names them (`resnet50.tv_in1k`); `resolve_pretrained(model, spec)`
turns `create_model(..., pretrained=spec)` into a local file: True (the model's first tag), a
tag (`tv_in1k` or `resnet50.tv_in1k`), or a path. A download goes to a temporary file in the
cache folder (`$REGNET_WEIGHTS`, default ~/.cache/regnet/weights), is checked against its
sha256, then renamed into place, so the cache never holds half a file or a file that failed its
check. Offline, the error says where to put the file by hand.

A `repo:PATH` url is a file of this repository (the trained CIFAR zoo of
benchmarks/results/<campaign>/<run>/best.safetensors with its JSON sidecar): it is read in
place from the source checkout the package runs from, after the same sha256 check.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources

import yaml

__all__ = ["PretrainedTag", "list_pretrained", "get_pretrained", "resolve_pretrained",
           "weights_dir", "fetch"]


class PretrainedError(ValueError):
    """An unknown tag, a failed download or a file that fails its checksum."""


@dataclass(frozen=True)
class PretrainedTag:
    name: str                       # "<model>.<tag>"
    model: str
    url: str
    sha256: str                     # the digest, or its leading hex digits
    source: str                     # a regnet.models.convert source
    dataset: str
    top1: float | None
    evidence: str                   # the command or publication the accuracy comes from
    input_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    license: str
    top5: float | None = None
    split: str | None = None        # the evaluation split, where it is not the dataset's own
    recipe: str | None = None       # how it was trained, where this repository trained it

    @property
    def filename(self) -> str:
        return os.path.basename(self.url.split("?")[0])


def _table() -> dict[str, PretrainedTag]:
    raw = yaml.safe_load((resources.files("regnet") / "pretrained.yaml").read_text()) or {}
    return {name: PretrainedTag(name=name, **{k: tuple(v) if isinstance(v, list) else v
                                              for k, v in entry.items()})
            for name, entry in raw.items()}


def list_pretrained(pattern: str | None = None) -> list[str]:
    """Known tags, sorted; `pattern` is a glob ('resnet*') or a substring."""
    names = sorted(_table())
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, glob)]
    return names


def get_pretrained(model: str, tag: str | bool = True) -> PretrainedTag:
    table = _table()
    mine = [t for t in table.values() if t.model == model]
    if tag is True:
        if not mine:
            raise PretrainedError(f"no pretrained weights are registered for {model}; pass the "
                                  "path of a weights file (`regnet weights` lists the tags)")
        return mine[0]
    name = tag if "." in tag else f"{model}.{tag}"
    if name not in table or table[name].model != model:
        have = ", ".join(t.name for t in mine) or "none"
        raise PretrainedError(f"unknown weights tag {tag!r} for {model}; its tags: {have}")
    return table[name]


def weights_dir() -> str:
    return os.environ.get("REGNET_WEIGHTS") or os.path.join(
        os.path.expanduser("~"), ".cache", "regnet", "weights")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def repo_root() -> str | None:
    """The source checkout this package runs from (an editable install), or None."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return root if os.path.exists(os.path.join(root, "pyproject.toml")) else None


def _repo_file(tag: PretrainedTag) -> str:
    rel = tag.url[len("repo:"):]
    root = repo_root()
    if root is None:
        raise PretrainedError(f"{tag.name} is the repository file {rel}, and this install is "
                              "not a source checkout: clone the repository (or download that "
                              "file) and pass its path as pretrained=")
    path = os.path.join(root, rel)
    if not os.path.exists(path):
        raise PretrainedError(f"{tag.name}: {path} is missing from this checkout (git checkout "
                              f"-- {rel} restores it)")
    if not _sha256(path).startswith(tag.sha256):
        raise PretrainedError(f"{path} does not match the sha256 of {tag.name} "
                              f"({tag.sha256[:16]}...); restore it with git checkout -- {rel}")
    return path


def fetch(tag: PretrainedTag, cache: str | None = None, timeout: float = 60.0) -> str:
    """The local path of `tag`'s file, downloaded and checked if the cache lacks it."""
    if tag.url.startswith("repo:"):
        return _repo_file(tag)
    cache = cache or weights_dir()
    path = os.path.join(cache, tag.filename)
    if os.path.exists(path):
        if not _sha256(path).startswith(tag.sha256):
            raise PretrainedError(f"{path} does not match the sha256 of {tag.name} "
                                  f"({tag.sha256}...); delete it and download again")
        return path
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{tag.filename}.", dir=cache)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(tag.url, timeout=timeout) as r:
            for block in iter(lambda: r.read(1 << 20), b""):
                out.write(block)
        got = _sha256(tmp)
        if not got.startswith(tag.sha256):
            raise PretrainedError(f"the download of {tag.name} from {tag.url} has sha256 "
                                  f"{got[:16]}..., not {tag.sha256}...; nothing was kept")
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise PretrainedError(f"cannot download {tag.name} from {tag.url} ({reason}); put "
                              f"the file there by hand as {path}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def resolve_pretrained(model: str, spec: bool | str) -> tuple[str, str | None]:
    """(local file, its source or None) for `create_model(model, pretrained=spec)`."""
    if isinstance(spec, str) and (os.path.exists(spec) or os.sep in spec
                                  or spec.endswith((".pt", ".pth", ".pyth", ".safetensors"))):
        return spec, None
    tag = get_pretrained(model, spec)
    return fetch(tag), tag.source
