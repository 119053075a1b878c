"""Run every benchmark module (``bench/bench_*.py``), or the ones named: ``python -m bench localcognito``.

Benchmarks report ratios measured side by side in one run; they never assert on time.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")]
    found = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {found}", file=sys.stderr)
        return 2
    results = {}
    for name in names or found:
        print(f"== bench {name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        results[name] = module.main([a for a in argv if a.startswith("-")])
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}   # keep the other benchmarks' last run
    path.write_text(json.dumps({**earlier, **results}, indent=2, default=str))
    print(f"results written to {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
