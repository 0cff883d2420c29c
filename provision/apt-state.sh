#!/usr/bin/env bash
# The Debian archive's state as apt read it (sourced by 45-debian-updates.sh, and by tests/unit/test_apt_state.py).

# apt_states LISTS CODENAME: each state apt's lists folder LISTS can stand for, computed as
# visa_build/archive_state.state_key computes the state the build read: the lines "<suite> <sha256 of its
# InRelease>" of the release CODENAME, its -updates and its -security, hashed. One state per choice of an
# InRelease of each suite (a site's own source of a suite adds one); none when a suite has no InRelease.
apt_states() {
  local lists=$1 codename=$2 suite file sha combo
  local -a combos=("") next
  for suite in "$codename" "$codename-updates" "$codename-security"; do
    next=()
    for file in "$lists"/*_dists_"${suite}"_InRelease; do
      [[ -f $file ]] || continue
      sha=$(sha256sum <"$file" | cut -d' ' -f1)
      for combo in "${combos[@]}"; do next+=("$combo$suite $sha"$'\n'); done
    done
    combos=("${next[@]}")
  done
  for combo in "${combos[@]}"; do printf '%s' "$combo" | sha256sum | cut -c1-16; done
}

# apt_inreleases LISTS: each InRelease file apt read into LISTS, with its Date
apt_inreleases() {
  local file
  for file in "$1"/*_InRelease; do
    [[ -f $file ]] && printf '  %s (%s)\n' "${file##*/}" "$(grep -m1 '^Date:' "$file" || echo 'no Date')"
  done
}
