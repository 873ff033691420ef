"""Validates Cost Insights answers against tests/data/cost-insights/schema.json.

Usage: python validate.py SCHEMA DIR, where DIR holds one JSON answer per file, named
<Type>.<anything>.json (the schema's $defs name, e.g. Cost.group.json). Prints one line per
file that does not validate and exits 1 then.
"""
import json
import pathlib
import sys

import jsonschema

schema = json.loads(pathlib.Path(sys.argv[1]).read_text())
failed = 0
checked = 0
for path in sorted(pathlib.Path(sys.argv[2]).glob("*.json")):
    kind = path.name.split(".")[0]
    definition = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"}
    validator = jsonschema.Draft202012Validator(definition)
    for error in validator.iter_errors(json.loads(path.read_text())):
        failed += 1
        print(f"{path.name}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
    checked += 1
print(f"checked {checked} answers, {failed} errors")
sys.exit(1 if failed or not checked else 0)
