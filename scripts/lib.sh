# Shared by the scripts in scripts/: repository paths, the stack's addresses, small helpers.
# shellcheck shell=bash

SYNCLINE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SYNCLINE_ROOT

# Loads KEY=VALUE lines; a variable already in the environment wins over the file.
load_env_file() {
  local file="$1" line key value
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    key="${line%%=*}"
    value="${line#*=}"
    if [[ -z "${!key+x}" ]]; then
      export "$key=$value"
    fi
  done <"$file"
}

load_env_file "$SYNCLINE_ROOT/stack/versions.env"
load_env_file "$SYNCLINE_ROOT/scripts/stack.env"
case "$SYNCLINE_STACK_DIR" in
  /*) ;;
  *) SYNCLINE_STACK_DIR="$SYNCLINE_ROOT/$SYNCLINE_STACK_DIR" ;;
esac
export SYNCLINE_STACK_DIR
SYNCLINE_DEPS_DIR="$SYNCLINE_ROOT/.deps"
export SYNCLINE_DEPS_DIR

if [[ -t 1 ]]; then
  _c_bold=$'\e[1m' _c_red=$'\e[31m' _c_green=$'\e[32m' _c_yellow=$'\e[33m' _c_off=$'\e[0m'
else
  _c_bold='' _c_red='' _c_green='' _c_yellow='' _c_off=''
fi

say() { printf '%s==>%s %s\n' "$_c_bold" "$_c_off" "$*"; }
warn() { printf '%swarning:%s %s\n' "$_c_yellow" "$_c_off" "$*" >&2; }
die() {
  printf '%serror:%s %s\n' "$_c_red" "$_c_off" "$*" >&2
  exit 1
}

# True when something accepts TCP connections on host:port.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Polls "$@" every 0.2 s until it succeeds or `timeout` seconds pass.
wait_until() {
  local timeout="$1"
  shift
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS >= deadline)) && return 1
    sleep 0.2
  done
}
