#!/bin/sh
# Runs /usr/bin/promtool (Debian package `prometheus`) with the given arguments, or reports the
# test as skipped (exit 77) when it is not installed.
if [ ! -x /usr/bin/promtool ]; then
  echo "promtool is not installed (Debian package prometheus); skipping" >&2
  exit 77
fi
exec /usr/bin/promtool "$@"
