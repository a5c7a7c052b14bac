"""Scripts/benchmark_report.py: the pieces of the results report that are computed in the script itself.

Spearman's rank correlation against scipy, and each item's CPU cost from its records (cost.json, history.csv) against
hand-computed values, including items resumed before cost.json summed the attempts.
"""
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("benchmark_report", os.path.join(ROOT, "Scripts", "benchmark_report.py"))
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def item(tmp_path, name, cost=None, epochs=None):
    folder = tmp_path / "items" / name
    folder.mkdir(parents=True)
    if cost is not None:
        (folder / "cost.json").write_text(json.dumps(cost))
    if epochs is not None:
        rows = ["epoch,train_loss,validation_dice,learning_rate,seconds"]
        rows += [f"{i + 1},0.1,nan,0.001,{s}" for i, s in enumerate(epochs)]
        (folder / "history.csv").write_text("\n".join(rows) + "\n")
    return f"items/{name}"


def test_item_cost_from_its_records(tmp_path):
    # Summed over three attempts whose epochs (450 s) fit in the recorded wall time: measured.
    f = item(tmp_path, "summed", {"cpu_seconds": 300.0, "wall_seconds": 600.0, "threads": 1, "attempts": 3}, [15] * 30)
    assert report.item_cost(tmp_path, f) == (300.0, "measured")
    # An attempt started by an earlier version's worker and finished by this one: 900 s of epochs in 600 s recorded.
    f = item(tmp_path, "half-counted", {"cpu_seconds": 300.0, "wall_seconds": 600.0, "threads": 1, "attempts": 1}, [30] * 30)
    assert report.item_cost(tmp_path, f) == (pytest.approx(450.0), "estimated")
    # Computed in one go by an earlier version: the epochs fit in the attempt's wall time, measured.
    f = item(tmp_path, "one-go", {"cpu_seconds": 90.0, "wall_seconds": 200.0, "threads": 1}, [6] * 30)
    assert report.item_cost(tmp_path, f) == (90.0, "measured")
    # Resumed under an earlier version: the epochs took 3000 s, the last attempt 1000 s wall for 540 s CPU, so the
    # item's CPU time is estimated as 540 x 3000 / 1000 = 1620 s.
    f = item(tmp_path, "resumed", {"cpu_seconds": 540.0, "wall_seconds": 1000.0, "threads": 1}, [50] * 60)
    value, how = report.item_cost(tmp_path, f)
    assert how == "estimated" and value == pytest.approx(1620.0)
    # No cost record: the epochs' wall time; neither: unknown.
    f = item(tmp_path, "old", None, [10, 12.5])
    assert report.item_cost(tmp_path, f) == (22.5, "estimated")
    f = item(tmp_path, "selection")
    assert report.item_cost(tmp_path, f) == (None, "unknown")


def test_spearman_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    x, y = [0.1, 0.4, 0.4, 0.9, 0.3, 0.7], [3, 1, 2, 2, 5, 0]
    assert report.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert report.spearman([1, 2], [2, 1]) is None


def protocol(tmp_path, name, rows):
    run = tmp_path / name
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"pool_cases": 40, "held_out_cases": 10}))
    lines = ["strategy,budget,seed,round,site,labeled,cases,dice,hd95,assd,selection"]
    lines += [f"{s},{b},{seed},0,{site},{n},5,{d},3.0,1.0," for s, b, seed, site, n, d in rows]
    (run / "results.csv").write_text("\n".join(lines) + "\n")
    return str(run)


def test_percent_of_full_own_reference_or_the_xssr_protocols(tmp_path):
    # Dice is the mean over sites per seed, then over seeds: random (0.6 + 0.8) / 2 = 0.7 and (0.8 + 1.0) / 2 = 0.9,
    # mean 0.8; full 0.9 and 0.95, mean 0.925.
    xssr = protocol(tmp_path, "xssr", [("random", "5%", 0, "A", 2, 0.6), ("random", "5%", 0, "B", 2, 0.8),
                                       ("random", "5%", 1, "A", 2, 0.8), ("random", "5%", 1, "B", 2, 1.0),
                                       ("full", "100%", 0, "A", 40, 0.9), ("full", "100%", 0, "B", 40, 0.9),
                                       ("full", "100%", 1, "A", 40, 0.95), ("full", "100%", 1, "B", 40, 0.95)])
    _, _, strategies, _ = report.load_protocol(xssr, reference=0.5)   # its own reference wins
    assert strategies["random"]["dice_mean"] == pytest.approx(0.8)
    assert strategies["random"]["percent_of_full"] == pytest.approx(100 * 0.8 / 0.925)
    # A protocol without a full-data run: a share of the reference given, or none without one.
    hssl = protocol(tmp_path, "hssl", [("random", "5%", 0, "A", 2, 0.5), ("random", "5%", 0, "B", 2, 0.7)])
    _, _, strategies, _ = report.load_protocol(hssl, reference=0.925)
    assert strategies["random"]["percent_of_full"] == pytest.approx(100 * 0.6 / 0.925)
    _, _, strategies, _ = report.load_protocol(hssl)
    assert strategies["random"]["percent_of_full"] is None
