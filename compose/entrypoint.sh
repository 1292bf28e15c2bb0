#!/bin/sh
# Entry point of the zpipe image: with CURVE configured, waits (up to
# ZPIPE_KEYS_WAIT_S, default 60 s) for this component's key to appear, since
# the compose file's `keys` service writes the keys while the others start;
# then runs the command. A key that never comes is still refused by the
# binary itself, with the reason.
set -e
if [ -n "${ZPIPE_CURVE_SECRET:-}" ] && [ ! -e "$ZPIPE_CURVE_SECRET" ]; then
    echo "zpipe-entrypoint: waiting for $ZPIPE_CURVE_SECRET" >&2
    i=0
    while [ ! -e "$ZPIPE_CURVE_SECRET" ] && [ "$i" -lt "$((${ZPIPE_KEYS_WAIT_S:-60} * 5))" ]; do
        sleep 0.2
        i=$((i + 1))
    done
fi
exec "$@"
