#!/usr/bin/env bash
# Run a command with the local broker up; stop the broker afterwards only if this script
# started it (a broker the developer already had running is left alone).
set -uo pipefail
KAFKA="$(dirname "${BASH_SOURCE[0]}")/kafka.sh"
started=0
if ! "$KAFKA" status >/dev/null 2>&1; then
    "$KAFKA" up || exit 1
    started=1
fi
# Ctrl-C reaches the command, which shuts down cleanly; this script then stops the broker
# (a no-op trap, not an ignored signal, so the command keeps the default handling).
trap 'true' INT TERM
"$@"
rc=$?
if [ "$started" = 1 ]; then
    "$KAFKA" down
fi
exit $rc
