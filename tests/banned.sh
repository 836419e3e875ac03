#!/bin/sh
# Fails when engine code uses a call we ban (as curl does): unbounded copies
# and formatting (strcpy, strcat, sprintf, vsprintf, gets), non-reentrant or
# error-blind parsing (strtok, atoi, atol, atof). Use snprintf, memcpy with a
# known length, strtok_r and strtol instead.
root=${1:-$(dirname "$0")/..}
if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atof)[[:space:]]*\(' \
     "$root"/engine/*.c "$root"/include/*.h; then
  echo "banned calls found (see tests/banned.sh)"
  exit 1
fi
echo "no banned calls"
