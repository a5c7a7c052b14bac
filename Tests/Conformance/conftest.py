"""Shared fixtures: the medselect binary under test and helpers to run it."""
import json
import os
import subprocess

import pytest


@pytest.fixture(scope="session")
def medselect():
    path = os.environ.get("MEDSELECT_BIN")
    if not path or not os.path.exists(path):
        pytest.fail("set MEDSELECT_BIN to the built medselect binary (Scripts/test does)")

    class Runner:
        def run(self, *args, check=True):
            p = subprocess.run([path, *map(str, args)], capture_output=True, text=True, encoding="utf-8")
            if check and p.returncode != 0:
                raise AssertionError(f"medselect {' '.join(map(str, args))} failed: {p.stderr}")
            return p

        def inspect(self, f):
            return json.loads(self.run("inspect", f, "--json").stdout)

        def to_npy(self, f, out):
            self.run("convert", f, out)
            import numpy as np
            return np.load(out)

    return Runner()
