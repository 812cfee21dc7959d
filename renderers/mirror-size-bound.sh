#!/bin/sh
# registry-stack mirror size bound: keeps a pull-through cache's data volume under a size by
# deleting the least recently used blobs (layers, configs, manifests), while the mirror serves.
#
#   mirror-size-bound.sh loop   check every INTERVAL_SECONDS (the container's command)
#   mirror-size-bound.sh once   check and trim now, print what was done
#
# Settings from the environment: DATA_DIR (the mirror's storage root), MAX_BYTES (the bound),
# INTERVAL_SECONDS. Over the bound, it deletes blobs until the volume is at 90% of it, so that
# it does not trim on every check.
#
# Why deleting a blob under a running mirror is safe (distribution v3, proxy mode, without the
# blob-descriptor cache): a GET finds no blob data, so the mirror fetches it from the upstream
# again and stores it, as after its own TTL expiry (which deletes the same folder); a download
# already reading the file keeps its open file. Repository links stay: they resolve to "unknown
# blob" until the blob is fetched again.
#
# "Recently used" is the later of the data file's mtime (when the mirror stored it) and atime
# (reads; with the usual relatime mount, the first read after a store and then at most daily).
# POSIX sh and tools that busybox (the official registry image) and Debian both have.
set -u

V2="$DATA_DIR/docker/registry/v2"
LOW_BYTES=$((MAX_BYTES / 10 * 9))

log() { printf '%s mirror-size-bound: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

used_bytes() { du -sk "$DATA_DIR" | awk '{ printf "%.0f\n", $1 * 1024 }'; }

# "<last use> <bytes> <blob folder>" of every blob, least recently used first.
blobs_by_last_use() {
  [ -d "$V2/blobs/sha256" ] || return 0
  # Paths are hex digests: no blanks, so plain xargs is safe.
  find "$V2/blobs/sha256" -mindepth 3 -maxdepth 3 -type f -name data | xargs -r stat -c '%X %Y %s %n' |
    awk '{ t = ($1 > $2) ? $1 : $2; sub(/\/data$/, "", $4); print t, $3, $4 }' | sort -k1,1n -k3,3
}

# trim: one check; prints "<used before> <blobs deleted> <bytes released> <used after>" (du bytes).
trim() {
  before=$(used_bytes)
  evicted=0 freed=0
  if [ "$before" -gt "$MAX_BYTES" ]; then
    # du counts blocks, the sizes bytes: evict by sizes, then measure again (at most 3 rounds).
    round=0 used=$before
    while [ "$used" -gt "$LOW_BYTES" ] && [ "$round" -lt 3 ]; do
      n=$(blobs_by_last_use | awk -v over=$((used - LOW_BYTES)) 'freed >= over { exit } { print $3; freed += $2 }' | {
        n=0
        while read -r folder; do rm -rf "$folder" && n=$((n + 1)); done
        echo "$n"
      })
      [ "$n" -gt 0 ] || break
      evicted=$((evicted + n))
      used=$(used_bytes)
      round=$((round + 1))
    done
    freed=$((before - used))
  fi
  echo "$before $evicted $freed $(used_bytes)"
}

report() {
  set -- $1
  if [ "$2" -gt 0 ]; then
    log "volume used $1 bytes, over the bound of $MAX_BYTES: deleted the $2 least recently used blobs; now $4 bytes (90% of the bound is the target)"
  elif [ "$1" -gt "$MAX_BYTES" ]; then
    log "volume used $1 bytes, over the bound of $MAX_BYTES, but no blob to delete (uploads or links fill it)"
  fi
}

case "${1:-}" in
  once)
    result=$(trim)
    report "$result"
    echo "$result"
    ;;
  loop)
    trap 'exit 0' INT TERM
    log "bound $MAX_BYTES bytes for $DATA_DIR, checked every $INTERVAL_SECONDS s"
    while :; do
      report "$(trim)"
      sleep "$INTERVAL_SECONDS" &
      wait $!
    done
    ;;
  *) log "usage: mirror-size-bound.sh loop | once"; exit 2 ;;
esac
