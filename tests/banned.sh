#!/bin/sh
# Fails when engine code uses a call we ban (as curl does): unbounded copies
# and formatting (strcpy, strcat, strncpy, sprintf, vsprintf, gets),
# non-reentrant or error-blind calls (strtok, gmtime, localtime, atoi, atol,
# atof). Use snprintf, memcpy with a known length, strtok_r, gmtime_r,
# localtime_r and strtol instead. strncpy is banned as well: it does not
# terminate a truncated copy.
root=${1:-$(dirname "$0")/..}
if grep -nE '\b(strcpy|strcat|strncpy|sprintf|vsprintf|gets|strtok|gmtime|localtime|atoi|atol|atof)[[:space:]]*\(' \
     "$root"/engine/*.c "$root"/include/*.h; then
  echo "banned calls found (see tests/banned.sh)"
  exit 1
fi
echo "no banned calls"
