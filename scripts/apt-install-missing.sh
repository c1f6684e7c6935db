#!/usr/bin/env bash
# Installs the Debian packages named that this machine lacks, and never changes what it already
# has: a need met by an installed package of that name, by one that Provides it (Docker's
# containerd.io provides containerd and runc), or by its command installed outside dpkg is left
# alone, and an apt plan that would remove or replace any installed package is refused. Not
# root: nothing is written. Never calls sudo. No daemon of the packages starts at install.
#
# Usage: scripts/apt-install-missing.sh [--label TEXT] [--plan [--root DIR]] PACKAGE...
#   --plan      print what it would do ("plan: install ...", "plan: remove ...") and change
#               nothing (no root needed; uses the apt lists as they are)
#   --root DIR  judge the packages installed in DIR (dpkg --root DIR) instead of this system's
# Exit: 0 done (or planned), 3 skipped (the reason on stderr: "LABEL: skipped: REASON"),
#       2 usage.
set -euo pipefail
label="apt" plan=false root=""
usage() { echo "usage: $0 [--label TEXT] [--plan [--root DIR]] PACKAGE..." >&2; exit 2; }
while (($#)); do
  case "$1" in
    --label) label="${2:?}"; shift ;;
    --plan) plan=true ;;
    --root) root="${2:?--root needs a directory}"; shift ;;
    --*) usage ;;
    *) break ;;
  esac
  shift
done
(($#)) || usage
packages=("$@")
log() { printf '%s: %s\n' "$label" "$*" >&2; }
skip() { log "skipped: $*"; exit 3; }

command -v dpkg-query >/dev/null && command -v apt-get >/dev/null \
  || skip "needs Debian's dpkg and apt-get to install ${packages[*]} (this is $(uname -s))"
admindir="$root/var/lib/dpkg"

# Installed packages: their names and what they Provide (a need either meets).
declare -A present=() # need -> the installed package meeting it
while IFS=$'\t' read -r name status provides; do
  [[ "$status" == "install ok installed" ]] || continue
  present["$name"]="$name"
  IFS=',' read -ra provided <<<"$provides"
  for p in "${provided[@]}"; do
    p="${p%%(*}"; p="${p// /}"
    [[ -n "$p" && -z "${present[$p]:-}" ]] && present["$p"]="$name"
  done
done < <(dpkg-query --admindir="$admindir" -W -f='${Package}\t${Status}\t${Provides}\n')

# A need met outside dpkg (a containerd built or unpacked by hand, say): its command is there.
declare -A command_of=([uidmap]=newuidmap [iproute2]=ip [containernetworking-plugins]=)
found_command() {
  local cmd="${command_of[$1]-$1}" dir
  [[ -n "$cmd" ]] || return 1
  if [[ -z "$root" ]]; then
    command -v "$cmd"
  else
    for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
      [[ -x "$root$dir/$cmd" ]] && { echo "$root$dir/$cmd"; return 0; }
    done
    return 1
  fi
}

missing=()
for p in "${packages[@]}"; do
  if [[ -n "${present[$p]:-}" ]]; then
    [[ "${present[$p]}" == "$p" ]] || log "uses the installed ${present[$p]} for $p (it provides $p)"
  elif found="$(found_command "$p")"; then
    log "uses $found for $p (installed outside Debian's packages)"
  else
    missing+=("$p")
  fi
done
if ! ((${#missing[@]})); then
  log "all present: ${packages[*]}"
  if $plan; then echo "plan: install (none)"; echo "plan: remove (none)"; fi
  exit 0
fi
log "missing: ${missing[*]}"
if ! $plan; then
  ((EUID == 0)) || skip "needs root to install ${missing[*]} (run it as root, or install them yourself)"
  [[ -z "$root" ]] || { echo "$0: --root is for --plan only" >&2; exit 2; }
fi

export DEBIAN_FRONTEND=noninteractive
$plan || apt-get update -qq >&2
# What apt would do, simulated (no root needed, nothing written): refuse any plan that removes
# or replaces an installed package, e.g. containerd.io for a containerd that conflicts with it.
if ! simulation="$(apt-get -s -o "Dir::State::status=$admindir/status" \
  install --no-install-recommends "${missing[@]}" 2>&1)"; then
  printf '%s\n' "$simulation" >&2
  $plan && echo "plan: refused (apt cannot install ${missing[*]})"
  skip "apt cannot install ${missing[*]} (its output above)"
fi
words() { awk -v kind="$1" '$1 == kind { print $2 }' <<<"$simulation" | sort | paste -sd' ' -; }
installs="$(words Inst)" removes="$(words Remv)"
if $plan; then
  echo "plan: install ${installs:-(none)}"
  echo "plan: remove ${removes:-(none)}"
  [[ -z "$removes" ]] || echo "plan: refused (it would remove $removes)"
fi
[[ -z "$removes" ]] || skip "installing ${missing[*]} would remove $removes, which this machine has; install what it lacks yourself"
$plan && exit 0

log "installing ${missing[*]}"
# No daemon of these packages (containerd) may start at install. policy-rc.d says so to
# Debian's maintainer scripts; ours goes again afterwards.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
# The plan checked above; apt must not change it into one that removes anything.
apt-get install -y -qq --no-remove --no-install-recommends "${missing[@]}" >&2
