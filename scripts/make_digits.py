#!/usr/bin/env python
"""Write src/regnet/data/digits.npz, the handwritten digits the library ships (so that the demo
and the tests need no download and no scikit-learn).

Source: the UCI "Optical Recognition of Handwritten Digits" test set (E. Alpaydin, C. Kaynak,
1998; 1,797 8x8 images, integer pixels 0..16, 10 classes), as bundled with scikit-learn
(`sklearn.datasets.load_digits`), which this script reads; run it once where scikit-learn is
installed:

    python scripts/make_digits.py
"""
import os

import numpy as np
from sklearn.datasets import load_digits

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "src", "regnet", "data", "digits.npz")

bunch = load_digits()
assert bunch.images.max() <= 16 and bunch.images.shape == (1797, 8, 8)
np.savez_compressed(OUT, images=bunch.images.astype(np.uint8),
                    labels=bunch.target.astype(np.uint8))
print(f"wrote {OUT}: {bunch.images.shape[0]} images")
