"""Writes the exact matrices of Scripts/reference/select_baselines.py (sklearn make_blobs, random_state=0) as .npy so
`medselect bench select` runs on the same data: E (20000 x 256, 20 centres, std 4) and P (5000 x 2, 5 centres)."""
import sys
import numpy as np
from sklearn.datasets import make_blobs

out = sys.argv[1]
E, _ = make_blobs(n_samples=20000, n_features=256, centers=20, cluster_std=4.0, center_box=(-10, 10), random_state=0)
np.save(f"{out}/E.npy", np.ascontiguousarray(E, dtype=np.float32))
P, _ = make_blobs(n_samples=5000, n_features=2, centers=5, cluster_std=1.0, random_state=0)
np.save(f"{out}/P.npy", P.astype(np.float32))
