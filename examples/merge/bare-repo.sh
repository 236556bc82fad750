#!/bin/sh
# ORCH_MERGE_CMD for a bare repository orch's operator controls (a forge that is a directory, as
# in orch's own tests and `orch demo`):
#
#   ORCH_MERGE_CMD=/path/to/orch/examples/merge/bare-repo.sh
#
# It moves the target branch from exactly ORCH_MERGE_BASE (the tip orch re-tested on) to a
# commit whose tree is ORCH_MERGE_HEAD's, with `git update-ref NEW OLD` — the compare-and-swap a
# forge's merge button does. If the target moved meanwhile, nothing changes and the script fails;
# orch then rebases and re-tests instead of retrying. orch runs it in an empty directory of its
# own with ORCH_REPO_URL (the registered remote: a path or a file:// URL), ORCH_TARGET,
# ORCH_MERGE_HEAD, ORCH_MERGE_BASE, ORCH_BRANCH and ORCH_TASK_ID set, and proves the result
# itself afterwards.
#
# MERGE_STYLE (this script's own knob, not an orch key) picks what lands:
#   ff      (default) the target becomes ORCH_MERGE_HEAD: a fast-forward
#   merge   a merge commit of ORCH_MERGE_BASE and ORCH_MERGE_HEAD, with the head's tree
#   squash  one commit on ORCH_MERGE_BASE with the head's tree
set -eu

die() {
    echo "bare-repo.sh: $1" >&2
    exit "${2:-1}"
}

for name in ORCH_REPO_URL ORCH_TARGET ORCH_MERGE_HEAD ORCH_MERGE_BASE; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || die "$name is not set (orch sets it for ORCH_MERGE_CMD)" 2
done

repo=${ORCH_REPO_URL#file://}
case $repo in
/*) ;;
*) die "ORCH_REPO_URL must be a local path or a file:// URL to a bare repository, got '$ORCH_REPO_URL'" 2 ;;
esac

g() {
    git --git-dir="$repo" -c core.hooksPath=/dev/null "$@"
}

ref=refs/heads/$ORCH_TARGET
g check-ref-format "$ref" || die "'$ORCH_TARGET' is not a branch name" 2

# Only a head based on exactly the base is merged (a forge's "require branches to be up to date").
g merge-base --is-ancestor "$ORCH_MERGE_BASE" "$ORCH_MERGE_HEAD" ||
    die "$ORCH_MERGE_HEAD is not based on $ORCH_MERGE_BASE"

message="Merge ${ORCH_BRANCH:-$ORCH_MERGE_HEAD}${ORCH_TASK_ID:+ (orch task $ORCH_TASK_ID)}"
# A merge or squash commit needs an author: the forge's, unless the caller names one.
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-orch forge}"
export GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-forge@orch.invalid}"
export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-orch forge}"
export GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-forge@orch.invalid}"

case ${MERGE_STYLE:-ff} in
ff) new=$ORCH_MERGE_HEAD ;;
merge) new=$(g commit-tree -p "$ORCH_MERGE_BASE" -p "$ORCH_MERGE_HEAD" -m "$message" "$ORCH_MERGE_HEAD^{tree}") ;;
squash) new=$(g commit-tree -p "$ORCH_MERGE_BASE" -m "$message" "$ORCH_MERGE_HEAD^{tree}") ;;
*) die "MERGE_STYLE must be ff, merge or squash, got '$MERGE_STYLE'" 2 ;;
esac

# The compare-and-swap: the target moves only if it still is ORCH_MERGE_BASE.
g update-ref -m "orch merge ${ORCH_TASK_ID:-}" "$ref" "$new" "$ORCH_MERGE_BASE" ||
    die "$ORCH_TARGET is no longer $ORCH_MERGE_BASE; nothing merged"
echo "merged $ORCH_MERGE_HEAD into $ORCH_TARGET as $new (${MERGE_STYLE:-ff})"
