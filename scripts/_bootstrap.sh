# Sourced by scripts/dev, scripts/test and scripts/chat: installs what the project needs,
# once, and again only when pyproject.toml or emulators/package-lock.json change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export XDG_RUNTIME_DIR="$ROOT/.local/run"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.12 to choose one)." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv" >&2
  "$PY" -m venv .venv
fi
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat .venv/.installed 2>/dev/null)" != "$want" ]; then
  echo "==> installing Python dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -e ".[dev]" >&2
  echo "$want" > .venv/.installed
fi

if command -v npm >/dev/null 2>&1; then
  want_npm="$(sha256sum emulators/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat emulators/node_modules/.installed 2>/dev/null)" != "$want_npm" ]; then
    echo "==> installing the Firebase Auth emulator (npm firebase-tools) into emulators/node_modules" >&2
    (cd emulators && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want_npm" > emulators/node_modules/.installed
  fi
else
  echo "warning: npm not found; the Firebase Auth emulator needs Node.js 20+ and npm (apt-get install nodejs npm)" >&2
fi
export PATH="$ROOT/.venv/bin:$PATH"
