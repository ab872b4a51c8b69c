#!/usr/bin/env bash
# The rust-version of Cargo.toml must be at least the rust-version of every package in the
# dependency graph Cargo.lock resolves (normal, build and dev dependencies, every platform):
# otherwise Cargo.toml promises a Rust that cannot build mcpscript. CI has one toolchain and
# cannot download an older one, so this reads the promise from `cargo metadata` instead of
# building with that Rust. The README's "Rust X or newer" must say the same version.
# Exit 0 when both hold, 1 with the offending packages listed otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

metadata="$(mktemp)"
trap 'rm -f "$metadata"' EXIT
cargo metadata --format-version 1 >"$metadata"

python3 - "$metadata" README.md <<'EOF'
import json, re, sys
from collections import deque

meta = json.load(open(sys.argv[1]))
packages = {p["id"]: p for p in meta["packages"]}
deps = {n["id"]: [d["pkg"] for d in n["deps"]] for n in meta["resolve"]["nodes"]}

def version(v):
    """'1.91' -> (1, 91, 0): rust-version may leave out the minor and patch numbers."""
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

failed = False
for member in meta["workspace_members"]:
    root = packages[member]
    declared = root.get("rust_version")
    if not declared:
        print(f"msrv: {root['name']} declares no rust-version in Cargo.toml", file=sys.stderr)
        failed = True
        continue
    # Every package reachable from the member, with the package that first pulls it in.
    parent = {}
    queue = deque([member])
    seen = {member}
    while queue:
        cur = queue.popleft()
        for d in deps.get(cur, []):
            if d not in seen:
                seen.add(d)
                parent[d] = cur
                queue.append(d)
    newer = []
    highest = None
    for pid in seen - {member}:
        p = packages[pid]
        need = p.get("rust_version")
        if not need:
            continue
        if highest is None or version(need) > version(highest[0]):
            highest = (need, p)
        if version(need) > version(declared):
            chain, cur = [], parent.get(pid)
            while cur is not None and cur != member:
                chain.append(packages[cur]["name"])
                cur = parent.get(cur)
            how = f" (through {' <- '.join(chain)})" if chain else ""
            newer.append((version(need), need, f"  {p['name']} {p['version']} needs Rust {need}{how}"))
    if newer:
        newer.sort(reverse=True)
        print(
            f"msrv: Cargo.toml says rust-version = \"{declared}\" for {root['name']}, but "
            f"{len(newer)} package(s) in Cargo.lock need a newer Rust:",
            file=sys.stderr,
        )
        for _, _, line in newer:
            print(line, file=sys.stderr)
        print(
            f"raise rust-version to \"{newer[0][1]}\" (and the README's prerequisite), "
            "or pin versions of those packages that still build with the declared Rust",
            file=sys.stderr,
        )
        failed = True
    else:
        shown = f"; the highest is {highest[1]['name']} {highest[1]['version']} with {highest[0]}" if highest else ""
        print(f"msrv: rust-version {declared} of {root['name']} covers its {len(seen) - 1} dependencies{shown}")

# The README's prerequisite names the same Rust as the package.
declared = packages[meta["workspace_members"][0]].get("rust_version")
said = re.search(r"Rust (\d+\.\d+(?:\.\d+)?) or newer", open(sys.argv[2]).read())
if declared and said and version(said.group(1)) != version(declared):
    print(f"msrv: README.md says \"Rust {said.group(1)} or newer\", Cargo.toml's rust-version is {declared}", file=sys.stderr)
    failed = True

sys.exit(1 if failed else 0)
EOF
