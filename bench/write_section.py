"""Writes a table into BENCHMARKS.md between `<!-- bench:NAME (written by SCRIPT) -->` and
`<!-- /bench:NAME -->`, adding a `## TITLE` section with the markers at the end the first
time.

usage: write_section.py NAME SCRIPT TITLE TABLE
"""
import re
import sys

name, script, title, table = sys.argv[1:5]
path = "BENCHMARKS.md"
text = open(path).read()
start, end = f"<!-- bench:{name} (written by {script}) -->", f"<!-- /bench:{name} -->"
block = f"{start}\n{table}\n{end}"
if start in text:
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + f"\n\n## {title}\n\n" + block + "\n"
open(path, "w").write(text)
