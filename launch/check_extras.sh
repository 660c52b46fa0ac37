#!/usr/bin/env bash
# Checks on the package index that setup.py's accelerator extras resolve with its pins. For each extra (cuda and tpu
# by default), `pip install --dry-run --ignore-installed --report FILE '.[EXTRA]'` resolves the whole install as a
# user's `pip install -e '.[EXTRA]'` would, installing nothing (pip fetches metadata only, or a wheel where the
# index has no metadata file). Then it prints the resolved jax, jaxlib and plugin versions, and fails (exit 1) when
# jax, jaxlib or a jax plugin differs from setup.py's jax pin, or when the extra does not resolve (with pip's reason).
# Usage: bash launch/check_extras.sh [cuda] [tpu]   On Linux x86_64 (the GPU and TPU wheels' platform), with .venv's
# pip (or $PYTHON's) and its configuration: `pip config list` shows a mirror; PIP_CONFIG_FILE=/dev/null skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] ||
  { echo "error: run this on Linux x86_64, where the cuda and tpu wheels are (not $(uname -sm))" >&2; exit 2; }
PY=${PYTHON:-}
[ -n "$PY" ] || { [ -x .venv/bin/python ] && PY=.venv/bin/python || PY=python3; }
extras=("$@")
[ ${#extras[@]} -gt 0 ] || extras=(cuda tpu)

status=0
for extra in "${extras[@]}"; do
  report=$(mktemp)
  err=$(mktemp)
  if ! "$PY" -m pip install --dry-run --ignore-installed --progress-bar off --report "$report" ".[$extra]" \
      >"$err" 2>&1; then
    echo "[$extra] does not resolve; pip says:"
    progress='^ *(Collecting|Downloading|Obtaining|Processing|Using cached|Preparing|Installing|Getting|Building)'
    { grep -Ev "^\s*\$|$progress|^ *(Looking in|Requirement already)|^WARNING: Location" "$err" || true; } |
      tail -n 20 | sed 's/^/  /'
    status=1
  elif ! "$PY" - "$extra" "$report" <<'EOF'; then
import ast, json, re, sys

extra, report = sys.argv[1], sys.argv[2]
tree = ast.parse(open("setup.py").read())
install = next(ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
               and any(getattr(t, "id", "") == "INSTALL_REQUIRES" for t in n.targets))
extras = next(ast.literal_eval(k.value) for n in ast.walk(tree) if isinstance(n, ast.Call)
              for k in n.keywords if k.arg == "extras_require")
pins = {m.group(1).lower(): m.group(2) for r in install + extras[extra]
        if (m := re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^;\s]+).*", r))}
resolved = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
            for item in json.load(open(report))["install"]}
jax_pin = pins["jax"]
shown = [n for n in sorted(resolved) if n in ("jax", "jaxlib", "libtpu") or n.startswith(("jax-cuda", "jax-tpu"))
         or (n.startswith("nvidia-") and extra == "cuda")]
wrong = []
for name in shown:
    want = pins.get(name, jax_pin if name.startswith("jax") else None)  # jax's plugins go with jax's version
    ok = want is None or resolved[name] == want
    wrong += [] if ok else [f"{name} {resolved[name]} (setup.py pins {want})"]
    print(f"[{extra}] {name}=={resolved[name]}" + ("" if want is None else "  ok" if ok else f"  != {want}"))
if wrong:
    print(f"[{extra}] differs from setup.py: {', '.join(wrong)}")
    sys.exit(1)
print(f"[{extra}] resolves with setup.py's pins ({len(resolved)} packages).")
EOF
    status=1
  fi
  rm -f "$report" "$err"
done
exit $status
