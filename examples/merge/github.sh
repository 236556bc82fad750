#!/bin/sh
# ORCH_MERGE_CMD for GitHub, through the `gh` CLI (authenticated with GH_TOKEN in orch's
# environment; the merge command keeps orch's environment, unlike the gates):
#
#   ORCH_MERGE_CMD=/path/to/orch/examples/merge/github.sh
#
# It merges the pull request of ORCH_BRANCH only if its head is still exactly ORCH_MERGE_HEAD
# (`--match-head-commit`), the commit orch re-tested. That the result is a tested tree relies on
# the target's branch protection setting "Require branches to be up to date before merging": with
# it, GitHub refuses a pull request whose head does not contain the target's current tip, so a
# head orch rebased onto ORCH_MERGE_BASE merges only while the target still is ORCH_MERGE_BASE.
# orch proves the result itself afterwards (the target's first-parent chain holds
# ORCH_MERGE_BASE and then the head's tree); a refused merge while the target moved makes orch
# rebase and re-test, not retry.
#
# GH_MERGE_METHOD (this script's own knob, not an orch key): squash (default), merge or rebase.
set -eu

die() {
    echo "github.sh: $1" >&2
    exit "${2:-1}"
}

for name in ORCH_REPO_URL ORCH_BRANCH ORCH_MERGE_HEAD; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || die "$name is not set (orch sets it for ORCH_MERGE_CMD)" 2
done

# OWNER/NAME from the registered URL, which must be exactly https://github.com/OWNER/NAME,
# git@github.com:OWNER/NAME or ssh://git@github.com/OWNER/NAME (each with or without .git):
# anything else — another host, a path, more segments — would have gh merge somewhere else.
not_github() {
    shown=$(printf '%s' "$ORCH_REPO_URL" | tr -c '[:print:]' '?')
    die "ORCH_REPO_URL '$shown' is not a github.com repository URL (https://github.com/OWNER/NAME, git@github.com:OWNER/NAME or ssh://git@github.com/OWNER/NAME)" 2
}
case $ORCH_REPO_URL in
https://github.com/*) slug=${ORCH_REPO_URL#https://github.com/} ;;
git@github.com:*) slug=${ORCH_REPO_URL#git@github.com:} ;;
ssh://git@github.com/*) slug=${ORCH_REPO_URL#ssh://git@github.com/} ;;
*) not_github ;;
esac
slug=${slug%.git}
case $slug in
*/*) ;;
*) not_github ;;
esac
owner=${slug%%/*}
name=${slug#*/}
# GitHub's own rules: an owner is letters, digits and inner dashes; a name letters, digits,
# `.`, `_` and `-`, never `.` or `..`.
case $owner in
'' | -* | *[!A-Za-z0-9-]*) not_github ;;
esac
case $name in
'' | . | .. | *[!A-Za-z0-9._-]*) not_github ;;
esac

case ${GH_MERGE_METHOD:-squash} in
squash | merge | rebase) ;;
*) die "GH_MERGE_METHOD must be squash, merge or rebase, got '$GH_MERGE_METHOD'" 2 ;;
esac

exec gh pr merge "--${GH_MERGE_METHOD:-squash}" --match-head-commit "$ORCH_MERGE_HEAD" \
    -R "$slug" -- "$ORCH_BRANCH"
