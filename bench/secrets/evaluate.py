#!/usr/bin/env python3
"""Score each scanner's report against the corpus's ground truth.

A planted secret counts as found when the tool reports a finding in its file on its line (or
within the next 9 lines: a private key spans several). A finding that matches no planted
secret is a false positive (the corpus holds no other secrets by construction).
"""
import json, os, sys
from collections import defaultdict

out = sys.argv[1]
truth = json.load(open(os.path.join(out, "truth.json")))
tree = os.path.join(out, "tree")
times = dict(line.split() for line in open(os.path.join(out, "times.txt")))
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tree) for f in fs)

def rel(p):
    p = os.path.normpath(p)
    return os.path.relpath(p, tree) if os.path.isabs(p) else os.path.relpath(os.path.join(os.getcwd(), p), tree) if not p.startswith("src") else p

def load(name):
    path = os.path.join(out, name + ".json")
    data = json.load(open(path)) if os.path.getsize(path) else []
    if name.startswith("cordon"):
        return [(rel(f["path"]), f["line"]) for f in data]
    if name == "gitleaks":
        return [(rel(f["File"]), f["StartLine"]) for f in data]
    if name == "kingfisher":
        return [(rel(f["finding"]["path"]), f["finding"]["line"]) for f in data["findings"]]
    raise ValueError(name)

planted = defaultdict(list)
for i, t in enumerate(truth):
    planted[t["file"]].append((t["line"], i))

kinds = sorted({t["wrap"] for t in truth})
print(f"corpus: {size / 1e6:.1f} MB, {len(truth)} planted secrets "
      + ", ".join(f"{k} {sum(t['wrap'] == k for t in truth)}" for k in kinds))
header = f"{'tool':<15} {'MB/s':>7} " + " ".join(f"{k:>12}" for k in kinds) + f" {'recall':>7} {'false pos.':>10}"
print(header)
for name in ["cordon", "cordon-decode", "gitleaks", "kingfisher"]:
    findings = load(name)
    hit = set()
    fps = 0
    for f, line in findings:
        matched = [i for (l, i) in planted.get(f, []) if l <= line <= l + 9]
        if matched:
            hit.update(matched)
        else:
            fps += 1
    per = " ".join(
        f"{sum(1 for i in hit if truth[i]['wrap'] == k):>5}/{sum(t['wrap'] == k for t in truth):<6}" for k in kinds
    )
    mbps = size / 1e6 / float(times[name])
    print(f"{name:<15} {mbps:>7.1f} {per} {len(hit) / len(truth):>7.1%} {fps:>10}")
