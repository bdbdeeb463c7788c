"""Every table row, number and figure of an earlier README stands in README.md or docs/.

    python scripts/docs_numbers.py [REV]     # default: 1ffab3b, the README of 776 lines

Compares the README of git revision REV with README.md and docs/*.md of the work tree:
each table row of the old README must stand there verbatim (with the benchmark scripts'
new paths), and each number at least as often as before. Exit status 1 lists what is
missing. Run it after moving text out of the README.
"""
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

root = Path(__file__).resolve().parents[1]
rev = sys.argv[1] if len(sys.argv) > 1 else "1ffab3b"
old = subprocess.run(["git", "show", f"{rev}:README.md"], cwd=root, check=True,
                     capture_output=True, text=True).stdout
# the scripts moved into benchmarks/<purpose>/: compare with the new paths
MOVES = {"precision": "speed", "augment": "speed", "trainer": "speed", "predict": "speed",
         "memory": "speed", "bigimage": "scale", "lazy_training": "scale", "outofcore": "scale",
         "folder": "scale", "crossval": "quality", "screen": "quality", "seeds": "quality",
         "object_size": "quality", "membrane_errors": "quality", "strokes": "quality",
         "instances": "quality", "corrections": "quality", "dsb_cli": "quality",
         "responsiveness": "gui"}
for n, d in MOVES.items():
    old = old.replace(f"benchmarks/{n}.py", f"benchmarks/{d}/{n}.py")
old = old.replace("benchmarks/quality.py", "benchmarks/quality/curve.py")
new = "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])

rows = [line for line in old.split("\n") if line.startswith("|")]
missing_rows = [r for r in rows if r not in new]
NUM = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?(?:\s?±\s?\d[\d,]*(?:\.\d+)?)?")
old_nums = NUM.findall(old)
new_nums = NUM.findall(new)
co, cn = Counter(old_nums), Counter(new_nums)
missing_nums = {n: c - cn[n] for n, c in co.items() if cn[n] < c}
figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", old)
print(f"README of {rev}: {len(rows)} table rows, {len(old_nums)} numbers ({len(co)} distinct), figures {figures}")
print(f"table rows missing from README+docs: {len(missing_rows)}")
for r in missing_rows:
    print("  ROW", r[:120])
print(f"numbers with fewer occurrences in README+docs than in the old README: {len(missing_nums)}")
for n, c in sorted(missing_nums.items()):
    print(f"  NUM {n!r} x{c}")
fig_new = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", new)
print("figures now:", fig_new)
sys.exit(1 if missing_rows or missing_nums else 0)
