#!/bin/sh
# Stand-in for a real flashing script: flash.sh BOARD MEMBERS_FILE IMAGE.
# It reads the board's serial port from the members file lockd wrote, and prints what it would do.
set -eu
board=$1 file=$2 image=$3
serial=$(node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const b = Object.values(m).flat().find((x) => x.name === process.argv[2]); process.stdout.write((b && b.properties.serial) || "?")' "$file" "$board")
echo "flash $image on $board via $serial"
