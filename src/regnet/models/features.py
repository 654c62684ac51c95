"""`FeatureInfo`: what a network's feature maps are, in timm's interface, so detection and
segmentation code written against timm backbones reads our networks unchanged.

Index 0 is the stem's output; index i >= 1 is stage s<i>'s. `out_indices` are the indices a
`features_only` backbone returns (a classifier's: all). As in timm, `len()`, indexing and
iteration cover every feature map; `channels()`, `reduction()` and `module_name()` without an
index answer for the `out_indices` only.
"""
from __future__ import annotations

from typing import Iterator, Sequence

__all__ = ["FeatureInfo", "resolve_out_indices"]


def resolve_out_indices(indices, n: int) -> list[int]:
    """Sorted non-negative indices into `n` feature maps: None -> all, an int k -> the last k,
    a sequence -> those (negative ones count from the end)."""
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"indices={indices} must be in 1..{n}")
        return list(range(n - indices, n))
    take = [i % n if -n <= i < n else None for i in indices]
    if None in take or not take:
        raise ValueError(f"out_indices {list(indices)} out of range for {n} feature maps "
                         f"(0 = the stem, 1..{n - 1} = the stages)")
    return sorted(set(take))


class FeatureInfo(Sequence):
    """A list of `{"num_chs", "reduction", "module", "index"}` dicts plus timm's accessors."""

    def __init__(self, info: Sequence[dict], out_indices: Sequence[int] | None = None):
        self.info = [dict(d, index=i) for i, d in enumerate(info)]
        self.out_indices = tuple(resolve_out_indices(out_indices, len(self.info)))

    def from_other(self, out_indices) -> "FeatureInfo":
        return FeatureInfo(self.info, out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None):
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: Sequence[str] | None = None, idx=None):
        """The dicts (or their `keys`) of the selected features, as `get` selects them."""
        def one(i):
            d = self.info[i]
            return dict(d) if keys is None else {k: d[k] for k in keys}
        if idx is None:
            return [one(i) for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [one(i) for i in idx]
        return one(idx)

    def channels(self, idx=None):
        return self.get("num_chs", idx)

    def reduction(self, idx=None):
        return self.get("reduction", idx)

    def module_name(self, idx=None):
        return self.get("module", idx)

    def __getitem__(self, item):
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.info)

    def __repr__(self) -> str:
        rows = ", ".join(f"{d['module']}({d['num_chs']}, /{d['reduction']})" for d in self.info)
        return f"FeatureInfo([{rows}], out_indices={self.out_indices})"
