"""Renders a template for testbed/up: each @@NAME@@ is replaced by the environment variable NAME.

A placeholder whose variable is unset is an error, and the result must be valid JSON.
(Keycloak's own ${...} message placeholders in realm files are left alone.)
Usage: python3 render.py TEMPLATE >OUTPUT
"""
import json
import os
import re
import sys

src = open(sys.argv[1], encoding="utf-8").read()
missing = sorted({m for m in re.findall(r"@@([A-Z0-9_]+)@@", src) if m not in os.environ})
if missing:
    sys.exit(f"render.py: {sys.argv[1]}: unset variable(s): {', '.join(missing)}")
out = re.sub(r"@@([A-Z0-9_]+)@@", lambda m: os.environ[m.group(1)], src)
json.loads(out)  # a template that does not render to JSON fails here, not inside Keycloak
sys.stdout.write(out)
