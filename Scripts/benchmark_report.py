#!/usr/bin/env python3
"""Docs/results.md and Docs/results.json from the runs Scripts/benchmark made (standard library only).

Every number comes from a run folder: results.json (summary over seeds, paired comparisons computed by medselect:
mean difference, bootstrap interval, Wilcoxon p, the minimum detectable difference at 80 % power), results.csv (per
seed and site: Dice, HD95, the selection files with XSSR's alpha), the site analysis' summary and the time files.
"""
import argparse, csv, json, os, statistics

SOURCES = {"cxr": "MCU", "fundus": "BinRushed", "prostate": "RUNMC"}
NAMES = {"cxr": "chest X-ray (lungs)", "fundus": "fundus (optic disc and cup)", "prostate": "prostate MRI (gland, axial slices)"}
TITLES = {"xssr": "XSSR protocol: random, CoreSet, XSSR and its ablations",
          "coldstart-al": "Cold start, then active learning (entropy + diversity against random)",
          "hssl": "HSSL protocol: from scratch, single-domain and multi-domain HSSL pretraining, on the same random picks"}


def mean(v):
    v = [x for x in v if x is not None and x == x]
    return statistics.mean(v) if v else None


def fmt(v, d=3, signed=False):
    if v is None:
        return "–"
    return f"{v:+.{d}f}" if signed else f"{v:.{d}f}"


def spearman(x, y):
    """Spearman's rank correlation (average ranks for ties); None below 3 pairs or for a constant side."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and a == a and b == b]
    if len(pairs) < 3:
        return None
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return r
    rx, ry = ranks([a for a, _ in pairs]), ranks([b for _, b in pairs])
    mx, my = statistics.mean(rx), statistics.mean(ry)
    sx = sum((a - mx) ** 2 for a in rx) ** 0.5
    sy = sum((b - my) ** 2 for b in ry) ** 0.5
    if sx == 0 or sy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry)) / (sx * sy)


def phantom_facts(data):
    """Case id -> sub-population (mode) and site -> known distance to the source, from the phantom's tables."""
    modes, distance = {}, {}
    path = os.path.join(data, "phantom_cases.csv")
    if os.path.exists(path):
        for r in csv.DictReader(open(path)):
            modes[r["case"]] = r["mode"]
            modes[r["site"] + "_" + r["case"]] = r["mode"]
            distance[r["site"]] = float(r["site_distance"])
    return modes, distance


def measured_shift(bdir):
    """Site -> MMD to the source from the benchmark's site analysis (sites.csv), when it ran."""
    path = os.path.join(bdir, "sites", "report", "sites.csv")
    if not os.path.exists(path):
        return {}
    return {r["site"]: float(r["mmd"]) for r in csv.DictReader(open(path)) if r.get("mmd")}


def by_mode(run, modes, several):
    """Per strategy key and sub-population: the mean over seeds of the mean Dice of that population's held-out cases."""
    path = os.path.join(run, "cases.csv")
    if not modes or not os.path.exists(path):
        return {}, {}
    acc, count = {}, {}
    for r in csv.DictReader(open(path)):
        mode = modes.get(r["case"])
        if mode is None:
            continue
        k = strategy_key(r, several)
        acc.setdefault(k, {}).setdefault(mode, {}).setdefault(r["seed"], []).append(float(r["dice"]))
        if k == "none":
            count[mode] = count.get(mode, 0) + 1
    return {k: {m: mean([mean(v) for v in seeds.values()]) for m, seeds in per.items()} for k, per in acc.items()}, count


def strategy_key(row, several_budgets):
    key = row["strategy"]
    if several_budgets and key not in ("none",) and not key.startswith("full"):
        key += f" {row['budget']}"
    if row["round"] not in ("0", "1", 0, 1):
        key += f" r{row['round']}"
    return key


def load_protocol(run, reference=None):
    """The protocol's results per strategy; percent_of_full against its own full-data reference, else `reference` (the
    XSSR protocol's on the same data and held-out cases, for protocols that train none)."""
    results = json.load(open(os.path.join(run, "results.json")))
    rows = list(csv.DictReader(open(os.path.join(run, "results.csv"))))
    budgets = {r["budget"] for r in rows if r["strategy"] not in ("none",) and not r["strategy"].startswith("full")}
    several = len(budgets) > 1
    per = {}
    for r in rows:
        k = strategy_key(r, several)
        e = per.setdefault(k, {"seeds": {}, "labeled": int(r["labeled"]), "budget": r["budget"], "selections": {}})
        s = e["seeds"].setdefault(r["seed"], {"dice": [], "hd95": []})
        s["dice"].append(float(r["dice"]))
        s["hd95"].append(float(r["hd95"]))
        if r["selection"]:
            e["selections"][r["seed"]] = r["selection"]
    strategies = {}
    for k, e in per.items():
        dice = [mean(s["dice"]) for s in e["seeds"].values()]
        hd = [mean([h for h in s["hd95"] if h == h and h != float("inf")]) for s in e["seeds"].values()]
        picks, alphas = {}, []
        for seed, path in sorted(e["selections"].items()):
            sel = json.load(open(os.path.join(run, path)))
            picks[seed] = tuple(sel.get("selected", []))
            if "alpha" in sel:
                alphas.append(sel["alpha"])
        strategies[k] = {"dice_mean": mean(dice), "dice_sd": statistics.stdev(dice) if len([d for d in dice if d is not None]) > 1 else None,
                         "hd95_mean": mean(hd), "labeled": e["labeled"], "budget": e["budget"], "alpha": alphas, "_picks": picks,
                         "_per_site": {}}
    for r in rows:
        strategies[strategy_key(r, several)]["_per_site"].setdefault(r["site"], []).append(float(r["dice"]))
    full = strategies.get("full", {}).get("dice_mean") or reference
    for v in strategies.values():
        v["percent_of_full"] = 100 * v["dice_mean"] / full if full and v["dice_mean"] is not None else None
    return results, rows, strategies, several


def item_cost(run, folder):
    """(CPU seconds, how known) of one item: its cost.json (measured, summed over every attempt), else the wall seconds
    of its training epochs in history.csv (one-thread workers, an estimate), else None (an item computed before costs
    were recorded and without epochs: selections, embeddings, scores, the site analysis; minutes, not hours).

    The training epochs (history.csv, every attempt's) of an item fit in its recorded wall time unless an attempt went
    uncounted: one of an earlier version's workers (whose cost.json covered only the attempt that finished the item), or
    the last minute of a killed attempt. Then its CPU time is estimated as the record's CPU share of its wall time over
    all the epochs' wall time."""
    path = os.path.join(run, folder)
    cost = os.path.join(path, "cost.json")
    history = os.path.join(path, "history.csv")
    epochs = (sum(float(r["seconds"]) for r in csv.DictReader(open(history)) if r.get("seconds"))
              if os.path.exists(history) else None)
    if os.path.exists(cost):
        record = json.load(open(cost))
        wall = record.get("wall_seconds") or 0
        if epochs and wall > 0 and epochs > wall:
            return record["cpu_seconds"] * epochs / wall, "estimated"
        return record["cpu_seconds"], "measured"
    if epochs is not None:
        return epochs, "estimated"
    return None, "unknown"


UNRECORDED = "not recorded"  # item_machine's answer for items of earlier versions; results.json's computed_on key


def item_machine(run, folder):
    """The processor an item was computed on (cost.json's machine; absent in items of earlier versions)."""
    cost = os.path.join(run, folder, "cost.json")
    return (json.load(open(cost)).get("machine") if os.path.exists(cost) else None) or UNRECORDED


def verdict(c):
    words = {"better than": "better", "worse than": "worse"}.get(c.get("verdict", ""), "not distinguishable")
    text = (f"{words} (mean Dice difference {fmt(c['diff'], 4, True)}, 95 % bootstrap interval [{fmt(c['ci'][0], 4, True)}, "
            f"{fmt(c['ci'][1], 4, True)}], Wilcoxon p {fmt(c['p'], 3)} over {c['pairs']} seed x site pairs")
    if words == "not distinguishable" and c.get("mdd80") is not None:
        text += f"; a difference of {c['mdd80']:.4f} would have been detected with 80 % power"
    return text + ")"


def main():
    ap = argparse.ArgumentParser()
    for name in ["out", "benchmarks", "preset", "count", "prostate-count", "prostate-pretrain-epochs", "size", "seeds", "epochs", "version", "markdown", "json"]:
        ap.add_argument("--" + name, required=True)
    a = ap.parse_args()
    benchmarks = a.benchmarks.split()
    doc = {"generated_by": f"Scripts/benchmark OUT {a.count} {a.size} {a.seeds} {a.epochs} (PRESET={a.preset}, PROSTATE_COUNT={a.prostate_count}, PROSTATE_PRETRAIN_EPOCHS={a.prostate_pretrain_epochs})",
           "medselect_version": a.version, "phantoms": True, "benchmarks": {}}
    md = []
    p = md.append
    p("# Results on phantoms with known shift (Scripts/benchmark)")
    p("")
    p(f"Generated by `Scripts/benchmark OUT {a.count} {a.size} {a.seeds} {a.epochs}` (preset `{a.preset}`, prostate "
      f"{a.prostate_count} volumes per site, its HSSL pretraining {a.prostate_pretrain_epochs} epochs) with medselect {a.version}; Docs/results.json holds the same numbers for programs.")
    p("The data are phantoms, not the public benchmarks (which are not on these machines): they reproduce the mechanisms the")
    p("papers study (scanner shift, rare sub-populations, site differences), not the public benchmarks' numbers (Docs/datasets.md).")
    p("")
    cost = []
    machines = {}
    for b in benchmarks:
        bdir = os.path.join(a.out, b)
        entry = {"protocols": {}}
        doc["benchmarks"][b] = entry
        counted = set()
        reference = None   # the XSSR protocol's full-data Dice: what the protocols without their own are a share of
        p(f"## {NAMES.get(b, b)}: source {SOURCES.get(b, '?')}")
        p("")
        for proto in ["xssr", "coldstart-al", "hssl"]:
            run = os.path.join(bdir, proto)
            if not os.path.exists(os.path.join(run, "results.json")):
                continue
            results, rows, strategies, several = load_protocol(run, reference)
            own_full = "full" in strategies
            if proto == "xssr" and own_full:
                reference = strategies["full"]["dice_mean"]
            modes, distance = phantom_facts(os.path.join(bdir, "data"))
            mode_dice, mode_count = by_mode(run, modes, several)
            shift = measured_shift(bdir)
            sites_here = sorted({r["site"] for r in rows})
            correlation = {k: {"known_distance": spearman([distance.get(x) for x in sites_here], [mean(v["_per_site"].get(x, [])) for x in sites_here]),
                               "measured_mmd": spearman([shift.get(x) for x in sites_here], [mean(v["_per_site"].get(x, [])) for x in sites_here])}
                           for k, v in strategies.items()}
            # What the protocol's items cost, each item counted in the first protocol of the benchmark that lists it.
            tally = {"measured": 0.0, "estimated": 0.0, "unknown": 0, "items": 0}
            for folder in results.get("item_folders") or []:
                if folder in counted:
                    continue
                counted.add(folder)
                value, how = item_cost(run, folder)
                machine = item_machine(run, folder)
                machines[machine] = machines.get(machine, 0) + 1
                tally["items"] += 1
                if value is None:
                    tally["unknown"] += 1
                else:
                    tally[how] += value
            seconds = tally["measured"] + tally["estimated"] if tally["items"] else None
            if seconds is not None:
                cost.append((b, proto, tally))
            first = next((v for k, v in strategies.items() if k not in ("none",) and not k.startswith("full")), None)
            entry["protocols"][proto] = {
                "seeds": sorted({int(r["seed"]) for r in rows}), "pool": results["pool_cases"], "held_out": results["held_out_cases"],
                "budget_labels": first["labeled"] if first else None,
                "full_reference": "this protocol" if own_full else ("xssr protocol" if reference else None),
                "strategies": {k: dict({x: v[x] for x in ["dice_mean", "dice_sd", "hd95_mean", "percent_of_full", "labeled", "alpha"]},
                                       dice_by_mode=mode_dice.get(k, {}), spearman_site_dice=correlation[k]) for k, v in strategies.items()},
                "held_out_cases_by_mode": mode_count,
                "comparisons": [{x: c[x] for x in ["a", "b", "budget", "pairs", "diff", "ci", "p", "mdd80", "verdict"]} for c in results.get("comparisons", [])]}
            p(f"### {TITLES[proto]}")
            p("")
            p(f"Target pool {results['pool_cases']} cases, {results['held_out_cases']} held-out target cases scoring every run; "
              f"seeds {a.seeds}.")
            p("")
            p("| strategy | labeled | Dice (mean over seeds) | sd | HD95 mm | % of full-data Dice | XSSR alpha per seed |")
            p("|---|---|---|---|---|---|---|")
            for k, v in strategies.items():
                alpha = ", ".join(f"{x:g}" for x in v["alpha"]) if v["alpha"] else ""
                p(f"| {k} | {v['labeled']} | {fmt(v['dice_mean'])} | {fmt(v['dice_sd'])} | {fmt(v['hd95_mean'], 1)} | {fmt(v['percent_of_full'], 1)} | {alpha} |")
            p("")
            if not own_full and reference:
                p(f"% of full-data Dice: of the XSSR protocol's full-data reference above ({fmt(reference)}: fine-tuned from the "
                  "source model on the whole pool, scored on the same held-out cases); this protocol trains none of its own.")
                p("")
            sites = sorted({r["site"] for r in rows})
            p("Dice per target site (mean over seeds):")
            p("")
            p("| strategy | " + " | ".join(sites) + " |")
            p("|---|" + "---|" * len(sites))
            for k, v in strategies.items():
                p(f"| {k} | " + " | ".join(fmt(mean(v["_per_site"].get(s, []))) for s in sites) + " |")
            p("")
            if mode_dice:
                ms = sorted(mode_count, key=lambda m: (-mode_count[m], m))
                p("Dice per sub-population of the held-out target cases (mean over seeds; cases per population in the header):")
                p("")
                p("| strategy | " + " | ".join(f"{m} ({mode_count[m]})" for m in ms) + " |")
                p("|---|" + "---|" * len(ms))
                for k in strategies:
                    p(f"| {k} | " + " | ".join(fmt(mode_dice.get(k, {}).get(m)) for m in ms) + " |")
                p("")
            if len(sites_here) >= 3:
                p("Spearman correlation over the target sites of each strategy's per-site Dice with the site's known distance to the source"
                  + (" and with its measured shift (MMD of the site analysis)" if shift else "") + ":")
                p("")
                p("| strategy | ρ with known distance |" + (" ρ with measured MMD |" if shift else ""))
                p("|---|---|" + ("---|" if shift else ""))
                for k, c in correlation.items():
                    p(f"| {k} | {fmt(c['known_distance'], 2, True)} |" + (f" {fmt(c['measured_mmd'], 2, True)} |" if shift else ""))
                p("")
            for c in results.get("comparisons", []):
                # Each strategy against random and CoreSet once, only the ablations against the full XSSR, and only
                # the multi-domain pretraining against the single-domain one.
                if c["a"] == c["b"] or (c["b"] == "coreset" and c["a"] == "random") or (c["b"] == "xssr" and not c["a"].startswith("xssr:")) \
                        or (c["b"].endswith("@single-domain") and not c["a"].endswith("@pretrained")):
                    continue
                p(f"- {c['a']} against {c['b']} at {c['budget']}: {verdict(c)}.")
            same = [(x, y) for x in strategies for y in strategies if x < y and strategies[x]["_picks"]
                    and strategies[x]["_picks"] == strategies[y]["_picks"]]
            for x, y in same:
                if "@" in x + y:
                    p(f"- {x} and {y} train on the same picks for every seed, by design (one selection, two starting points).")
                else:
                    p(f"- {x} and {y} picked exactly the same cases for every seed (the same experiment twice, hence the same Dice).")
            fixed = [k for k, v in strategies.items() if len(v["_picks"]) > 1 and len(set(v["_picks"].values())) == 1]
            if fixed:
                p(f"- Deterministic given the embeddings, {', '.join(fixed)} picked the same cases for every seed: their seeds vary only "
                  "the fine-tuning, so their spread over seeds is smaller by construction.")
            p("")
            if proto == "xssr":
                none, rnd, full = (strategies.get(k, {}).get("dice_mean") for k in ("none", "random", "full"))
                if none and rnd and full:
                    met = none / full <= 0.90 and rnd / full <= 0.97
                    entry["room_to_choose"] = {"none_percent_of_full": 100 * none / full, "random_percent_of_full": 100 * rnd / full, "met": met}
                    p(f"Room to choose: the unadapted model reaches {100 * none / full:.1f} % and random picks {100 * rnd / full:.1f} % of the "
                      f"full-data Dice (the condition: at most 90 % and 97 %): {'met' if met else 'not met'}.")
                    p("")
        summary = os.path.join(bdir, "sites", "summary.txt")
        if os.path.exists(summary):
            text = open(summary).read().strip().replace(a.out.rstrip("/") + "/", "OUT/")
            entry["site_analysis"] = text.splitlines()
            p("Shift against performance (`medselect sites --results` with the xssr run's source model on every site):")
            p("")
            p("```")
            p(text)
            p("```")
            p("")
    # The papers' reported effects beside ours.
    def comp(b, proto, x, y, budget=None):
        for c in doc["benchmarks"].get(b, {}).get("protocols", {}).get(proto, {}).get("comparisons", []):
            if c["a"] == x and c["b"] == y and (budget is None or c["budget"] == budget):
                return c
        return None
    def points(c):
        return "not run" if c is None else f"{100 * c['diff']:+.1f} points (p {fmt(c['p'], 3)}, detectable {fmt(None if c['mdd80'] is None else 100 * c['mdd80'], 1)})"
    p("## The papers' effects beside ours")
    p("")
    p("Dice in points (x 100). The phantoms reproduce mechanisms, not the public benchmarks' numbers: read the direction and whether")
    p("a difference of the papers' size would have been detectable here, not the exact values.")
    p("")
    p("| effect | paper | ours |")
    p("|---|---|---|")
    x = doc["benchmarks"].get("cxr", {}).get("protocols", {}).get("xssr", {}).get("strategies", {}).get("xssr", {})
    p(f"| XSSR on chest X-ray, % of full data | 99.3 % with 22 labels | {fmt(x.get('percent_of_full'), 1)} % with {x.get('labeled', '–')} labels |")
    for b in benchmarks:
        p(f"| XSSR against random, {b} | +2.5 (prostate MRI) | {points(comp(b, 'xssr', 'xssr', 'random'))} |")
        p(f"| XSSR against CoreSet, {b} | +0.4 to +1.2 | {points(comp(b, 'xssr', 'xssr', 'coreset'))} |")
        # A term's influence: how much the full XSSR loses without it (ablation minus full, negated).
        drops = [(t, comp(b, "xssr", abl, "xssr")) for t, abl in [("density", "xssr:novelty/diversity"), ("novelty", "xssr:density/diversity"),
                                                                 ("diversity", "xssr:density/novelty")]]
        drops = [(t, -c["diff"]) for t, c in drops if c and c["diff"] is not None]
        top = max(drops, key=lambda d: d[1])[0] if drops and len({round(v, 6) for _, v in drops}) > 1 else "none stands out"
        most = (top + " (" + ", ".join(f"{t} {100 * v:+.1f}" for t, v in drops) + " points lost without it)") if drops else "not run"
        p(f"| the most influential XSSR term, {b} | diversity | {most} |")
        p(f"| HSSL-pretrained against scratch at 5 %, {b} | +0.7 to +18.6 | {points(comp(b, 'hssl', 'random@pretrained', 'random', '5%'))} |")
        p(f"| multi-domain against single-domain HSSL at 5 %, {b} | multi-domain ahead (the paper's single domain: one dataset; ours: the same images as one domain) "
          f"| {points(comp(b, 'hssl', 'random@pretrained', 'random@single-domain', '5%'))} |")
    cs = comp("cxr", "coldstart-al", "coldstart", "random")
    p(f"| cold start against random, chest X-ray | 91.8 -> 92.9 (HD95 32.4 -> 27.7 mm) | {points(cs)} |")
    p("| performance against scanner similarity | correlated | see the site analyses above (Spearman per benchmark) |")
    p("")
    if cost:
        p("## Cost")
        p("")
        p("| benchmark | protocol | items | CPU hours | of which measured | items without a record |")
        p("|---|---|---|---|---|---|")
        for b, proto, t in cost:
            total = t["measured"] + t["estimated"]
            p(f"| {b} | {proto} | {t['items']} | {total / 3600:.1f} | {t['measured'] / 3600:.1f} | {t['unknown']} |")
            doc["benchmarks"][b]["protocols"][proto]["cpu_hours"] = {"total": total / 3600, "measured": t["measured"] / 3600,
                                                                      "estimated": t["estimated"] / 3600, "items": t["items"],
                                                                      "items_without_record": t["unknown"]}
        p("")
        p("Measured: the CPU time each item recorded when it was computed (cost.json: user + system time of its one-thread")
        p("worker, summed over the attempts of an item that was stopped and resumed). Items computed before costs were")
        p("recorded count the wall time of their training epochs (history.csv), an upper bound, since three one-thread workers")
        p("shared two cores; items whose epochs outlast their record (resumed under a version that counted the last attempt")
        p("only) count the record's CPU share of its wall time over all their epochs (estimated); items with neither (selections, embeddings, scores)")
        p("take minutes. Items shared between the protocols of one benchmark (source model, site analysis) count once, in the")
        p("first protocol listed.")
        p("")
        p("Computed on: " + "; ".join(f"{n} items whose processor was not recorded (computed before cost.json named it)"
                                       if m == UNRECORDED else f"{n} items on {m}"
                                       for m, n in sorted(machines.items(), key=lambda x: -x[1])) + ". The run")
        p("went on over several sessions, each on the machine it got; items carried between machines travel as their records")
        p("(Scripts/benchmark-records), and weights that later items needed were computed again on the machine that needed them.")
        p("")
        doc["computed_on"] = machines
    advisor = os.path.join(a.out, "advisor", "advisor-results.md")
    if os.path.exists(advisor):
        p("## Budget advice")
        p("")
        p("`Scripts/advisor-validation` (run by this script): an experiment over five budgets, the advisor's prediction, and the")
        p("predicted budget run and scored:")
        p("")
        p(open(advisor).read().strip())
        p("")
    with open(a.markdown + ".part", "w") as f:
        f.write("\n".join(md).rstrip() + "\n")
    os.replace(a.markdown + ".part", a.markdown)
    with open(a.json + ".part", "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True, allow_nan=False, default=lambda o: None)
        f.write("\n")
    os.replace(a.json + ".part", a.json)


if __name__ == "__main__":
    main()
