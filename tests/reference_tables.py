"""Rows of the reference tables (copied from ../shared/reference), keyed for the tests."""
import csv
import os

from regnet.registry import normalize_name

HERE = os.path.join(os.path.dirname(__file__), "reference")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
# The zoo table spells names as the papers do; these are the ones aliases do not cover.
ZOO_NAMES = {"ResNeXt-50": "resnext50_32x4d", "ResNeXt-101": "resnext101_32x4d",
             "ResNeXt-152": "resnext152_32x4d"}


def read(name: str) -> list[dict]:
    with open(os.path.join(HERE, name), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def self_regulated_rows():
    return [(r["name"], NUM_CLASSES[r["dataset"]], int(r["params"]), int(r["flops"]),
             int(r["acts"])) for r in read("self_regulated.tsv")]


def zoo_rows():
    out = []
    for r in read("regnet_model_zoo.tsv"):
        name = ZOO_NAMES.get(r["name"], r["name"])
        out.append((name, 1000, int(r["params"]), int(r["flops"]), int(r["acts"]), r))
    return out


def iresnet_rows():
    # gmacs_224_or_32 is plain multiply-adds (no bias adds) in units of 1e9, 4 decimals.
    return [(r["name"], NUM_CLASSES[r["dataset"]], int(r["params_exact"]),
             float(r["gmacs_224_or_32"])) for r in read("iresnet.tsv")]


__all__ = ["read", "self_regulated_rows", "zoo_rows", "iresnet_rows", "normalize_name"]
