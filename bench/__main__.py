"""Run every benchmark module (``bench/bench_*.py``), or the ones named: ``python -m bench localcognito``.

Benchmarks report ratios measured side by side in one run; they never assert on time.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def _usage(found: list[str]) -> str:
    lines = ["usage: make bench [ARGS=\"[name ...] [option ...]\"]", "", "benchmarks and their options:"]
    for name in found:
        module = importlib.import_module(f"bench.bench_{name}")
        options = ", ".join(module.OPTIONS) or "none"
        summary = " ".join((module.__doc__ or "").split()).split(". ")[0].rstrip(".")
        lines.append(f"  {name:<13} {summary}")
        lines.append(f"  {'':<13} options: {options}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")]
    found = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))
    if "-h" in argv or "--help" in argv:
        print(_usage(found))
        return 0
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {found}", file=sys.stderr)
        return 2
    options = [a for a in argv if a.startswith("-")]
    chosen = names or found
    takes = {name: {o.split("=", 1)[0] for o in importlib.import_module(f"bench.bench_{name}").OPTIONS}
             for name in chosen}
    for option in options:
        key = option.split("=", 1)[0]
        refusing = [name for name in chosen if key not in takes[name]]
        if (names and refusing) or len(refusing) == len(chosen):
            print(f"bench {', '.join(refusing)} does not take {option} "
                  f"(make bench ARGS=--help lists each benchmark's options)", file=sys.stderr)
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
