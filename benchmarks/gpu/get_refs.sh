#!/usr/bin/env bash
# Copy the reference LoRS and RepBlend code (Python sources and their shell scripts only) from local mirrors into
# .gpu-ref/ (git-ignored; never committed), for `run` with carry [".gpu-ref"]. See benchmarks/gpu/README.md.
#   bash benchmarks/gpu/get_refs.sh [LORS_GIT_DIR] [REPBLEND_GIT_DIR]
# Defaults: the session's `fetch` mirrors /work/.mirror/silicx+LoRS_Distill/repo, /work/.mirror/zhangxin-xd+RepBlend/repo.
set -euo pipefail
cd "$(dirname "$0")/../.."
LORS=${1:-/work/.mirror/silicx+LoRS_Distill/repo}
REPB=${2:-/work/.mirror/zhangxin-xd+RepBlend/repo}
export_one() {  # git dir, target
  local src=$1 dst=$2
  [ -d "$src" ] || { echo "missing $src: fetch the repository first (README.md)" >&2; exit 2; }
  rm -rf "$dst"; mkdir -p "$dst"
  git --git-dir="$src" ls-tree -r --name-only HEAD | grep -E '\.(py|sh|txt)$' | while read -r f; do
    mkdir -p "$dst/$(dirname "$f")"
    git --git-dir="$src" show "HEAD:$f" > "$dst/$f"
  done
  echo "$dst: $(git --git-dir="$src" rev-parse HEAD) ($(du -sh "$dst" | cut -f1))"
}
export_one "$LORS" .gpu-ref/lors
export_one "$REPB" .gpu-ref/repblend
git check-ignore -q .gpu-ref || { echo ".gpu-ref is not git-ignored: do not commit it" >&2; exit 3; }
