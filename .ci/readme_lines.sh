#!/usr/bin/env bash
# Runs the README's own quick-start lines as a newcomer would: in a new virtual environment made with nothing but
# Python, without an X display (DISPLAY unset, no Xvfb or xvfb-run on PATH) and without UNET_ZOO_DATA_DIR.
# The lines are the README's first ```bash block, read from README.md at run time, so a change of the README
# changes what runs here. A line naming a --data-dir that is not on this machine is skipped, saying so.
# Each line is timed; the script fails when any line exits non-zero.
#   .ci/readme_lines.sh            run the lines
#   .ci/readme_lines.sh --print    only print the lines and the PATH they would run with
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

# the first ```bash block of README.md, one command per line (a trailing "# ..." is a comment for bash too)
mapfile -t LINES < <(awk '/^```bash[[:space:]]*$/ && !done {inside = 1; next} inside && /^```/ {inside = 0; done = 1} inside && NF' README.md)
if [ "${#LINES[@]}" -eq 0 ]; then
  echo "readme_lines: README.md has no \`\`\`bash block" >&2
  exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/unet_zoo-readme.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A PATH without Xvfb: Xvfb usually sits in /usr/bin beside everything else, so instead of dropping directories
# the commands of PATH are linked into one folder, less the X servers. First command of a name wins, as in PATH.
mkdir "$WORK/bin"
declare -A SEEN=([Xvfb]=1 [xvfb-run]=1 [Xorg]=1 [X]=1)
IFS=: read -r -a PATH_DIRS <<<"$PATH"
for dir in "${PATH_DIRS[@]}"; do
  [ -d "$dir" ] || continue
  tools=()
  for tool in "$dir"/*; do
    name="${tool##*/}"
    if [ -x "$tool" ] && [ ! -d "$tool" ] && [ -z "${SEEN[$name]:-}" ]; then
      SEEN[$name]=1
      tools+=("$tool")
    fi
  done
  [ "${#tools[@]}" -eq 0 ] || ln -s -t "$WORK/bin" -- "${tools[@]}"
done
VENV="$WORK/venv"
NEWCOMER_PATH="$VENV/bin:$WORK/bin"

if [ "${1:-}" = "--print" ]; then
  printf 'line: %s\n' "${LINES[@]}"
  echo "PATH=$NEWCOMER_PATH"
  PATH="$NEWCOMER_PATH" bash -c 'command -v Xvfb xvfb-run >/dev/null && echo "Xvfb found" || echo "no Xvfb on PATH"'
  exit 0
fi

python3 -m venv "$VENV"
failed=0
for line in "${LINES[@]}"; do
  # a --data-dir that is not here (a checkout without ../shared): skip the line, saying why
  data_dir="$(sed -nE 's/.*--data-dir[= ]+([^ ]+).*/\1/p' <<<"$line")"
  if [ -n "$data_dir" ] && [ ! -d "$data_dir" ]; then
    echo "readme_lines: skipped (the data folder $data_dir is not on this machine): $line"
    continue
  fi
  echo "readme_lines: running: $line"
  start=$(date +%s)
  status=0
  env -u DISPLAY -u WAYLAND_DISPLAY -u UNET_ZOO_DATA_DIR -u PYTHONPATH -u QT_QPA_PLATFORM \
    PATH="$NEWCOMER_PATH" VIRTUAL_ENV="$VENV" bash -c "$line" || status=$?
  echo "readme_lines: exit $status after $(($(date +%s) - start)) s: $line"
  [ "$status" -eq 0 ] || failed=1
done
exit "$failed"
