#!/usr/bin/env bash
# Redoes `tollgate verify` with standard tools only (bash, sha256sum, jq,
# comm, find), as docs/storage.md explains. Run it in the storage root:
#   cd tollgate-data && bash /path/to/verify-chain.sh
# Prints "audit OK" and exits 0, or names each problem and exits 1.
set -u
status=0
# 0. Temporary files of writes a kill interrupted (`name#N`) are not part of
#    the log (`tollgate run` deletes them at start); named, then skipped.
find . -type f -name '*#[0-9]*' | sed 's/^/note: temporary file of an interrupted write (not part of the log): /'
# 1. Every file a record lists has the SHA-256 the record states.
jq -r '.files[] | "\(.sha256)  \(.path)"' commits/*/*/*.json | sha256sum --check --quiet || status=1
# 2. Each record links to the SHA-256 of the record before it (64 zeros for the first).
for dir in commits/*/*/; do
  prev=0000000000000000000000000000000000000000000000000000000000000000
  expected=1
  for r in $(ls "$dir" | grep '\.json$' | sort); do
    r="$dir$r"
    [ "$(jq -r .seq "$r")" = "$expected" ] || { echo "SEQUENCE GAP at $r"; status=1; }
    [ "$(jq -r .prev_sha256 "$r")" = "$prev" ] || { echo "BROKEN LINK at $r"; status=1; }
    prev=$(sha256sum "$r" | cut -d' ' -f1)
    expected=$((expected + 1))
  done
done
# 3. Offsets are contiguous from the partition's log start (stated by the
#    first record; 0 for chains of earlier versions), and
#    records = stored + dead_lettered + duplicates.
for dir in commits/*/*/; do
  jq -s -r '.[0] | select(.seq == 1 and .first_offset != (.log_start // 0)) | "OFFSET GAP at the start of \(.topic)/\(.partition): the chain begins at \(.first_offset), the log at \(.log_start // 0)"' "$dir"*.json
  jq -s -r 'range(1; length) as $i | select(.[$i].first_offset != .[$i-1].last_offset + 1) | "OFFSET GAP before seq \(.[$i].seq)"' "$dir"*.json
  jq -r 'select(.records != .stored + .dead_lettered + (.duplicates // 0)) | "BAD COUNTS in seq \(.seq)"' "$dir"*.json
done | grep . && status=1
# 4. No file in the tables that no record lists (orphans), none listed and missing.
comm -3 <(jq -r '.files[].path' commits/*/*/*.json | sort) <(find tables -type f ! -name '*#[0-9]*' | sort) | grep . && status=1
# 5. The rollups: manifests numbered from 1 without a gap, each naming the
#    SHA-256 of the one before it, and every file of the newest one with the
#    SHA-256 it lists.
if [ -d ledger/rollups/manifests ]; then
  prev=null
  expected=1
  newest=
  for m in $(ls ledger/rollups/manifests | sort); do
    m=ledger/rollups/manifests/$m
    [ "$(jq -r .version "$m")" = "$expected" ] || { echo "MANIFEST GAP at $m"; status=1; }
    [ "$(jq -r '.previous // "null"' "$m")" = "$prev" ] || { echo "BROKEN MANIFEST LINK at $m"; status=1; }
    prev=$(sha256sum "$m" | cut -d' ' -f1)
    expected=$((expected + 1))
    newest=$m
  done
  if [ -n "$newest" ]; then
    jq -r '.files[] | "\(.sha256)  \(.path)"' "$newest" | sha256sum --check --quiet || status=1
  fi
fi
# 6. Closed statements: numbered from 1 without a gap, each naming the
#    SHA-256 of the one before it, and each one's content (sequence,
#    previous, closed_at, statement as compact JSON) with the SHA-256 it
#    records, so that an edit of the newest one shows too.
if [ -d ledger/statements ]; then
  prev=null
  expected=1
  for s in $(ls ledger/statements | sort); do
    s=ledger/statements/$s
    [ "$(jq -r .sequence "$s")" = "$expected" ] || { echo "STATEMENT GAP at $s"; status=1; }
    [ "$(jq -r '.previous // "null"' "$s")" = "$prev" ] || { echo "BROKEN STATEMENT LINK at $s"; status=1; }
    content=$(jq -c '[.sequence, .previous, .closed_at, .statement]' "$s" | tr -d '\n' | sha256sum | cut -d' ' -f1)
    [ "$content" = "$(jq -r .content_sha256 "$s")" ] || { echo "EDITED STATEMENT $s"; status=1; }
    prev=$(sha256sum "$s" | cut -d' ' -f1)
    expected=$((expected + 1))
  done
fi
# 7. The audit tables (query_log, alerts): each chain's records numbered
#    from 1 without a gap, each naming the SHA-256 of the one before it; the
#    files a chain leaves in its table (added and not removed since) with
#    the SHA-256 it lists; no file under audit/ that no record names.
if [ -d audit/_commits ]; then
  for chain in audit/_commits/*/; do
    prev=0000000000000000000000000000000000000000000000000000000000000000
    expected=1
    for r in $(ls "$chain" | grep '\.json$' | sort); do
      r="$chain$r"
      [ "$(jq -r .seq "$r")" = "$expected" ] || { echo "AUDIT SEQUENCE GAP at $r"; status=1; }
      [ "$(jq -r .prev_sha256 "$r")" = "$prev" ] || { echo "BROKEN AUDIT LINK at $r"; status=1; }
      prev=$(sha256sum "$r" | cut -d' ' -f1)
      expected=$((expected + 1))
    done
    jq -s -r '(reduce (.[] | .removed[].path) as $p ({}; .[$p] = true)) as $gone
      | .[] | .added[] | select($gone[.path] | not) | "\(.sha256)  \(.path)"' "$chain"*.json \
      | sha256sum --check --quiet || status=1
  done
fi
if [ -d audit ]; then
  comm -13 <(cat audit/_commits/*/*.json 2>/dev/null | jq -r '(.added[], .removed[]) | .path' | sort -u) \
    <(find audit -path audit/_commits -prune -o -type f ! -name '*#[0-9]*' -print | sort) \
    | sed 's/^/AUDIT FILE NO RECORD NAMES: /' | grep . && status=1
fi
[ $status = 0 ] && echo "audit OK"
exit $status
