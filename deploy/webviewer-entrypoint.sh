#!/usr/bin/env bash
# Start the one CT API every session loads from (127.0.0.1:8081, samples generated on first start),
# then Kitware's entrypoint (Apache + the launcher).
set -euo pipefail
gosu trame-user /deploy/server/venv/bin/webviewer-api --host 127.0.0.1 --port 8081 \
    --samples "${WEBVIEWER_SAMPLES:-tiny,medium,seed}" ${WEBVIEWER_DATA_DIR:+--data-dir "$WEBVIEWER_DATA_DIR"} &
exec /opt/trame/entrypoint.sh "$@"
