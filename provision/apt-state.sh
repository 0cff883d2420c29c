#!/usr/bin/env bash
# The Debian archive's state as apt read it (sourced by 45-debian-updates.sh, and by tests/unit/test_apt_state.py).

# apt_state LISTS CODENAME: the state apt read into LISTS (its lists folder), computed as
# visa_build/archive_state.state_key computes the state the build read: the lines "<suite> <sha256 of its
# InRelease>" of the release CODENAME, its -updates and its -security, hashed. Empty when LISTS holds no
# InRelease of a suite, or more than one: then it cannot be said.
apt_state() {
  local lists=$1 codename=$2 suite lines="" files
  for suite in "$codename" "$codename-updates" "$codename-security"; do
    files=("$lists"/*_dists_"${suite}"_InRelease)
    [[ ${#files[@]} == 1 && -f ${files[0]} ]] || return 0
    lines+="$suite $(sha256sum "${files[0]}" | cut -d' ' -f1)"$'\n'
  done
  printf '%s' "$lines" | sha256sum | cut -c1-16
}

# apt_inreleases LISTS: each InRelease file apt read into LISTS, with its Date
apt_inreleases() {
  local file
  for file in "$1"/*_InRelease; do
    [[ -f $file ]] && printf '  %s (%s)\n' "${file##*/}" "$(grep -m1 '^Date:' "$file" || echo 'no Date')"
  done
}
