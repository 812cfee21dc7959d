#!/bin/sh
# registry-stack maintenance job: tag retention and garbage collection (issue #9).
#
#   maintenance.sh schedule        wait for the daily time, run, repeat (the container's command);
#                                  meanwhile refresh the metrics file the proxy serves
#   maintenance.sh run [--dry-run] run now (npm run gc), print the report
#
# POSIX sh with tools that busybox (the official Alpine registry image) and Debian both have:
# find, stat -c, grep -E/-F/-o, sort, awk. Settings come from the file rendered by
# renderers/maintenance-settings.ts. On one host it works on the registry's filesystem storage directly:
#   <v2>/repositories/<name>/_manifests/tags/<tag>/current/link   tag -> manifest digest
#   <v2>/repositories/<name>/_manifests/revisions/sha256/<hex>/link
#   <v2>/blobs/sha256/<2 hex>/<hex>/data
# In cluster mode (STORAGE_ACCESS=registry-api) the storage is S3: the job starts its own registry
# on loopback (REGISTRY_SERVE_CONFIG) and plans and deletes through its API, and a second one
# (HOLD_STATE_CONFIG) whose /debug/health, on the overlay, is 503 while the hold file exists:
# every node's proxy polls it.
set -u

SETTINGS_FILE=${MAINTENANCE_SETTINGS:-/etc/registry-stack/maintenance.env}
# shellcheck disable=SC1090
. "$SETTINGS_FILE"

V2="$DATA_DIR/docker/registry/v2"
HOLD_FILE="$STATE_DIR/write-hold"
RUN_LOCK="$STATE_DIR/run.lock"
REPORTS="$STATE_DIR/reports"
METRICS_FILE="$STATE_DIR/metrics.prom"
LAST_RUN_METRICS="$STATE_DIR/last-run.prom"

log() { printf '%s maintenance: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }
STORAGE_ACCESS=${STORAGE_ACCESS:-filesystem}
# Manifest types the registry may hold; an Accept header with all of them gets each as it was pushed.
MANIFEST_TYPES='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'
# Debian's busybox package installs no applet links; the official (Alpine) images have nc.
if command -v nc > /dev/null 2>&1; then NC=nc; else NC="busybox nc"; fi

# Milliseconds of a monotonic clock (10 ms resolution); busybox date has no %N everywhere.
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
blob_path() { h=${1#sha256:}; printf '%s/blobs/sha256/%s/%s/data\n' "$V2" "${h%"${h#??}"}" "$h"; }

# closure EDGES SEEDS: every digest reachable from SEEDS through "parent child" EDGES lines.
closure() {
  awk 'FILENAME == ARGV[1] { kids[$1] = kids[$1] " " $2; next }
       { stack[++n] = $1 }
       END {
         while (n > 0) {
           d = stack[n--]
           if (d in seen) continue
           seen[d] = 1; print d
           k = split(kids[d], c, " ")
           for (i = 1; i <= k; i++) if (!(c[i] in seen)) stack[++n] = c[i]
         }
       }' "$1" "$2" | sort -u
}
# refs_of FILE: "<parent> <digest>" for every digest named in the manifest blob of each parent
# (first field of FILE): the children of an index, the config and layers of an image.
refs_of() {
  while read -r d _; do blob_path "$d"; done < "$1" |
    xargs -r grep -o -H 'sha256:[0-9a-f]\{64\}' 2>/dev/null |
    awk -F: '{ n = split($1, p, "/"); print "sha256:" p[n - 1], $2 ":" $3 }'
}
# minus A B: lines of B (first field) not in A.
minus() { awk 'FILENAME == ARGV[1] { s[$1] = 1; next } !($1 in s)' "$1" "$2"; }

# rule_for REPO: index of the first rule whose pattern matches, or nothing.
rule_for() {
  i=1
  while [ "$i" -le "$RULE_COUNT" ]; do
    eval "pat=\$RULE_${i}_REPOSITORIES"
    if printf '%s\n' "$1" | grep -Eq -- "$pat"; then echo "$i"; return; fi
    i=$((i + 1))
  done
}

# links DIR DEPTH WORKDIR: "<mtime> <path> <digest>" for each link file DEPTH levels below DIR,
# sorted by path. Batched through xargs: a fork per link is what made large stores slow to plan.
links() {
  if [ ! -d "$1" ]; then return; fi
  find "$1" -mindepth "$2" -maxdepth "$2" -type f -name link | sort > "$3/links"
  xargs -r stat -c '%Y %n' < "$3/links" > "$3/link_times"
  # Paths hold no ':' (repository names and tags cannot), so the first one ends the path.
  xargs -r grep -H '' < "$3/links" |
    awk 'FILENAME == ARGV[1] { t[$2] = $1; next }
         { i = index($0, ":"); p = substr($0, 1, i - 1); print t[p], p, substr($0, i + 1) }' "$3/link_times" -
}

# plan_repo REPO WORKDIR: appends to WORKDIR/{delete_tags,delete_manifests,survivors}.
plan_repo() {
  repo=$1 w=$2
  m="$V2/repositories/$repo/_manifests"
  : > "$w/edges"
  links "$m/revisions/sha256" 2 "$w" | awk '{ print $3, $1 }' > "$w/revisions"
  # .../tags/<tag>/current/link
  links "$m/tags" 3 "$w" | awk '{ n = split($2, p, "/") } p[n - 1] == "current" { print $1, p[n - 2], $3 }' > "$w/tags"
  rule=$(rule_for "$repo")
  if [ -z "$rule" ]; then
    awk -v r="$repo" '{ print r, $1 }' "$w/revisions" >> "$w/survivors"
    return
  fi
  eval "keep_newest=\$RULE_${rule}_KEEP_NEWEST untagged_days=\$RULE_${rule}_UNTAGGED_DAYS keep_tags=\$RULE_${rule}_KEEP_TAGS"

  # Tags kept: the newest keep_newest by push time (ties by name), and every keepTags match.
  : > "$w/kept_tags"
  if [ -z "$keep_newest" ] && [ -z "$keep_tags" ]; then
    cp "$w/tags" "$w/kept_tags"
  else
    if [ -n "$keep_newest" ]; then sort -k1,1nr -k2,2 "$w/tags" | head -n "$keep_newest" >> "$w/kept_tags"; fi
    if [ -n "$keep_tags" ]; then
      printf '%s\n' "$keep_tags" > "$w/patterns"
      awk '{ print $2 }' "$w/tags" | grep -E -f "$w/patterns" > "$w/matching" || true
      awk 'FILENAME == ARGV[1] { s[$1] = 1; next } ($2 in s)' "$w/matching" "$w/tags" >> "$w/kept_tags"
    fi
  fi
  sort -u -o "$w/kept_tags" "$w/kept_tags"
  awk 'FILENAME == ARGV[1] { s[$2] = 1; next } !($2 in s)' "$w/kept_tags" "$w/tags" |
    awk -v r="$repo" '{ print r, $2, $3 }' >> "$w/delete_tags"

  # Manifests an image index (or any manifest) of this repository refers to.
  refs_of "$w/revisions" > "$w/all_edges"
  awk 'FILENAME == ARGV[1] { s[$1] = 1; next } ($2 in s)' "$w/revisions" "$w/all_edges" > "$w/edges"

  awk '{ print $3 }' "$w/tags" > "$w/tag_digests"
  closure "$w/edges" "$w/tag_digests" > "$w/tagged"
  # Untagged before this run, young enough (or no age limit): kept, with what they refer to.
  now=$(date -u +%s)
  minus "$w/tagged" "$w/revisions" | awk -v now="$now" -v days="$untagged_days" \
    'days == "" || now - $2 < days * 86400 { print $1 }' > "$w/seeds"
  awk '{ print $3 }' "$w/kept_tags" >> "$w/seeds"
  closure "$w/edges" "$w/seeds" > "$w/kept"
  awk -v r="$repo" '{ print r, $1 }' "$w/kept" >> "$w/survivors"
  minus "$w/kept" "$w/revisions" | awk -v r="$repo" '{ print r, $1 }' >> "$w/delete_manifests"
}

# plan WORKDIR: what retention deletes, and the blobs the collector will then remove.
plan() {
  w=$1
  : > "$w/delete_tags"; : > "$w/delete_manifests"; : > "$w/survivors"
  if [ -d "$V2/repositories" ]; then
    find "$V2/repositories" -type d \( -name _layers -o -name _uploads \) -prune -o -type d -name _manifests -prune -print |
      sed "s|^$V2/repositories/||; s|/_manifests\$||" | sort > "$w/repositories"
  else
    : > "$w/repositories"
  fi
  while read -r repo; do plan_repo "$repo" "$w"; done < "$w/repositories"
  sort -o "$w/delete_tags" "$w/delete_tags"
  sort -o "$w/delete_manifests" "$w/delete_manifests"
  # What the collector marks: every surviving manifest and every digest it names.
  awk '{ print $2 }' "$w/survivors" | sort -u > "$w/marked"
  refs_of "$w/marked" | awk '{ print $2 }' > "$w/referenced"
  sort -u "$w/marked" "$w/referenced" > "$w/marked_all"
  list_blobs > "$w/blobs_before"
  minus "$w/marked_all" "$w/blobs_before" > "$w/sweep"
}

# list_blobs: "<digest> <bytes>" of every blob in the store.
list_blobs() {
  [ -d "$V2/blobs/sha256" ] || return 0
  # Paths are hex digests: no blanks, so plain xargs is safe.
  find "$V2/blobs/sha256" -type f -name data | xargs -r stat -c '%s %n' |
    awk '{ n = split($2, p, "/"); print "sha256:" p[n - 1], $1 }' | sort
}

# api METHOD PATH: one HTTP/1.0 request to the job's own registry (REGISTRY_API, loopback);
# prints the status line, the headers and the body (CRs removed). The request side stays open
# until the registry closes the connection: nc half-closes at the end of its input, and Go's
# server cancels a request whose client closed (a slow S3 listing then fails "context canceled").
api() {
  api_dir=$(mktemp -d)
  mkfifo "$api_dir/in"
  timeout 60 $NC "${REGISTRY_API%:*}" "${REGISTRY_API##*:}" < "$api_dir/in" > "$api_dir/out" &
  api_nc=$!
  {
    printf '%s %s HTTP/1.0\r\nHost: %s\r\nAccept: %s\r\n\r\n' "$1" "$2" "$REGISTRY_API" "$MANIFEST_TYPES"
    while kill -0 "$api_nc" 2>/dev/null; do sleep 0.1; done
  } > "$api_dir/in"
  wait "$api_nc"
  api_rc=$?
  tr -d '\r' < "$api_dir/out"
  rm -rf "$api_dir"
  return "$api_rc"
}
api_status() { head -n 1 | awk '{ print $2 }'; }
api_body() { awk 'body { print } /^$/ { body = 1 }'; }
# json_list KEY: the strings of the JSON array KEY (repository names and tags hold no quote or comma).
json_list() { tr -d '\n' | sed -n "s/.*\"$1\":\[\([^]]*\)\].*/\1/p" | tr ',' '\n' | tr -d '" ' | sed '/^$/d'; }

# paged PATH KEY: every entry of a paginated list (catalog, tags), 1000 at a time.
paged() {
  last=""
  while :; do
    page=$(api GET "$1?n=1000${last:+&last=$last}") || fail "the job's registry did not answer $1"
    [ "$(printf '%s\n' "$page" | api_status)" = 200 ] || fail "GET $1: $(printf '%s\n' "$page" | head -n 1): $(printf '%s\n' "$page" | api_body | head -c 500)"
    entries=$(printf '%s\n' "$page" | api_body | json_list "$2")
    [ -n "$entries" ] || return 0
    printf '%s\n' "$entries"
    [ "$(printf '%s\n' "$entries" | wc -l)" -ge 1000 ] || return 0
    last=$(printf '%s\n' "$entries" | tail -n 1)
  done
}

# manifest REPO REF WORKDIR: the manifest's digest; its body is left in WORKDIR/body.
manifest() {
  api GET "/v2/$1/manifests/$2" > "$3/response" || return 1
  [ "$(api_status < "$3/response")" = 200 ] || return 1
  api_body < "$3/response" > "$3/body"
  awk -F': ' 'tolower($1) == "docker-content-digest" { print $2; exit } /^$/ { exit }' "$3/response"
}

# plan_repo_api REPO WORKDIR: the tags a rule deletes and the manifests only they reach. The API
# lists tags but neither push times nor untagged manifests: keepNewest and untaggedDays are refused
# in cluster mode (config/schema.ts), and manifests no tag reaches are left alone.
plan_repo_api() {
  repo=$1 w=$2
  rule=$(rule_for "$repo")
  [ -n "$rule" ] || return 0
  eval "keep_tags=\$RULE_${rule}_KEEP_TAGS"
  [ -n "$keep_tags" ] || return 0
  : > "$w/tags"; : > "$w/edges"
  paged "/v2/$repo/tags/list" tags > "$w/tag_names" || return 1
  while read -r tag; do
    d=$(manifest "$repo" "$tag" "$w") || fail "GET /v2/$repo/manifests/$tag failed"
    echo "$tag $d" >> "$w/tags"
    # An image index: its children are manifests of this repository too.
    if grep -q '"manifests"' "$w/body"; then grep -o 'sha256:[0-9a-f]\{64\}' "$w/body" | awk -v p="$d" '{ print p, $1 }' >> "$w/edges"; fi
  done < "$w/tag_names"
  printf '%s\n' "$keep_tags" > "$w/patterns"
  awk '{ print $1 }' "$w/tags" | grep -E -f "$w/patterns" > "$w/matching" || true
  awk 'FILENAME == ARGV[1] { s[$1] = 1; next } ($1 in s) { print $2 }' "$w/matching" "$w/tags" > "$w/kept_digests"
  awk 'FILENAME == ARGV[1] { s[$1] = 1; next } !($1 in s)' "$w/matching" "$w/tags" > "$w/deleted"
  awk -v r="$repo" '{ print r, $1, $2 }' "$w/deleted" >> "$w/delete_tags"
  awk '{ print $2 }' "$w/deleted" > "$w/deleted_digests"
  closure "$w/edges" "$w/kept_digests" > "$w/kept"
  closure "$w/edges" "$w/deleted_digests" > "$w/reached"
  minus "$w/kept" "$w/reached" | awk -v r="$repo" '{ print r, $1 }' >> "$w/delete_manifests"
}

plan_api() {
  w=$1
  : > "$w/delete_tags"; : > "$w/delete_manifests"; : > "$w/sweep"; : > "$w/blobs_before"
  paged /v2/_catalog repositories > "$w/repositories" || fail "could not list the repositories"
  while read -r repo; do plan_repo_api "$repo" "$w"; done < "$w/repositories"
  sort -o "$w/delete_tags" "$w/delete_tags"
  sort -u -o "$w/delete_manifests" "$w/delete_manifests"
}

# delete PATH: DELETE through the job's registry; a 404 (already gone) is fine.
api_delete() {
  code=$(api DELETE "$1" | api_status)
  case "$code" in 202|404) ;; *) fail "DELETE $1 answered ${code:-nothing}" ;; esac
}

apply_deletions_api() {
  w=$1
  while read -r repo tag _; do api_delete "/v2/$repo/manifests/$tag"; done < "$w/delete_tags"
  while read -r repo d; do api_delete "/v2/$repo/manifests/$d"; done < "$w/delete_manifests"
}

# resp ARG...: one Redis command (a RESP array).
resp() {
  printf '*%d\r\n' "$#"
  for a in "$@"; do printf '$%d\r\n%s\r\n' "$(printf '%s' "$a" | wc -c)" "$a"; done
}

# flush_cache: empty the registry's blob-descriptor cache (its database only) on every Redis
# address, so no replica answers for a blob the collector removed (distribution#4569). The
# password is read from a secret file and sent from a shell builtin: never in an argument list.
flush_cache() {
  [ -n "${REDIS_ADDRESSES:-}" ] || return 0
  for address in $REDIS_ADDRESSES; do
    reply=$({
      if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then resp AUTH "$(cat "$REDIS_PASSWORD_FILE")"; fi
      resp SELECT "$REDIS_DB"; resp FLUSHDB; resp QUIT
    } | timeout 10 $NC "${address%:*}" "${address##*:}" | tr -d '\r')
    expected=$([ -n "${REDIS_PASSWORD_FILE:-}" ] && echo 4 || echo 3)
    if [ "$(printf '%s\n' "$reply" | grep -c '^+OK$')" != "$expected" ]; then
      log "flushing the Redis cache at $address failed: $(printf '%s\n' "$reply" | grep '^-' | head -n 1)"
      return 1
    fi
  done
  log "Redis blob-descriptor cache flushed (database $REDIS_DB)"
}

apply_deletions() {
  w=$1
  while read -r repo tag _; do
    rm -rf "$V2/repositories/$repo/_manifests/tags/$tag"
  done < "$w/delete_tags"
  while read -r repo d; do
    h=${d#sha256:}
    rm -rf "$V2/repositories/$repo/_manifests/revisions/sha256/$h"
    for index in "$V2/repositories/$repo/_manifests/tags"/*/index/sha256/"$h"; do
      [ -d "$index" ] && rm -rf "$index"
    done
  done < "$w/delete_manifests"
}

# report WORKDIR ID TRIGGER DRY RETENTION_MS WINDOW_MS COLLECTOR_MS COLLECTOR_EXIT
report() {
  w=$1
  awk -v id="$2" -v trigger="$3" -v dry="$4" -v retention="$5" -v window="$6" -v collector="$7" -v status="$8" \
      -v started="$STARTED_AT" -v finished="$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
    FILENAME ~ /delete_tags$/ { tags[++nt] = sprintf("{\"repository\":\"%s\",\"tag\":\"%s\",\"digest\":\"%s\"}", $1, $2, $3); next }
    FILENAME ~ /delete_manifests$/ { mans[++nm] = sprintf("{\"repository\":\"%s\",\"digest\":\"%s\"}", $1, $2); next }
    FILENAME ~ /deleted_blobs$/ { blobs[++nb] = sprintf("{\"digest\":\"%s\",\"bytes\":%d}", $1, $2); bytes += $2; next }
    function list(a, n,   s, i) { s = ""; for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") "\n      " a[i]; return "[" s (n > 0 ? "\n    " : "") "]" }
    END {
      printf "{\n  \"id\": \"%s\",\n  \"trigger\": \"%s\",\n  \"dryRun\": %s,\n", id, trigger, dry
      printf "  \"startedAt\": \"%s\",\n  \"finishedAt\": \"%s\",\n", started, finished
      printf "  \"deleted\": {\n    \"tags\": %s,\n    \"manifests\": %s,\n    \"blobs\": %s\n  },\n", list(tags, nt), list(mans, nm), list(blobs, nb)
      printf "  \"bytesReclaimed\": %d,\n", bytes
      printf "  \"durationsMs\": { \"retention\": %d, \"writeWindow\": %d, \"collector\": %d },\n", retention, window, collector
      printf "  \"collectorExitCode\": %s\n}\n", status
    }' "$w/delete_tags" "$w/delete_manifests" "$w/deleted_blobs"
}

gauge() { printf '# HELP %s %s\n# TYPE %s gauge\n%s %s\n' "$1" "$2" "$1" "$1" "$3"; }

# last_run_metrics REPORT_WORKDIR STATUS RETENTION_MS WINDOW_MS COLLECTOR_MS: what the last real run did.
last_run_metrics() {
  w=$1
  {
    gauge registry_stack_gc_last_run_timestamp_seconds "End of the last retention and garbage-collection run (not dry runs), Unix time." "$(date -u +%s)"
    gauge registry_stack_gc_last_run_success "1 if the collector of the last run exited 0." "$([ "$2" = 0 ] && echo 1 || echo 0)"
    gauge registry_stack_gc_last_reclaimed_bytes "Bytes of the blobs the last run deleted." "$(awk '{ s += $2 } END { printf "%.0f", s }' "$w/deleted_blobs")"
    gauge registry_stack_gc_last_deleted_tags "Tags the last run deleted." "$(wc -l < "$w/delete_tags" | tr -d ' ')"
    gauge registry_stack_gc_last_deleted_manifests "Manifests the last run deleted." "$(wc -l < "$w/delete_manifests" | tr -d ' ')"
    gauge registry_stack_gc_last_retention_seconds "Duration of the last run's retention step." "$(awk -v ms="$3" 'BEGIN { printf "%.3f", ms / 1000 }')"
    gauge registry_stack_gc_last_write_window_seconds "How long the last run held writes." "$(awk -v ms="$4" 'BEGIN { printf "%.3f", ms / 1000 }')"
    gauge registry_stack_gc_last_collector_seconds "Duration of the last run's registry garbage-collect." "$(awk -v ms="$5" 'BEGIN { printf "%.3f", ms / 1000 }')"
  } > "$LAST_RUN_METRICS.tmp" && mv "$LAST_RUN_METRICS.tmp" "$LAST_RUN_METRICS"
}

# write_metrics: storage usage, the last run and the registry's own Prometheus metrics, in one
# file that the proxy serves (with authentication) at /metrics. Fails when the registry did not answer.
write_metrics() {
  tmp="$METRICS_FILE.$$"
  up=0
  # timeout, not wget -T: Debian's busybox 1.35 wget crashes with -T.
  if timeout 10 wget -q -O "$tmp.registry" "$REGISTRY_METRICS_URL" 2>/dev/null; then up=1; fi
  {
    df -P -k "$DATA_DIR" | awk 'NR == 2 { printf "%.0f %.0f\n", $2 * 1024, $4 * 1024 }' | {
      read -r size available
      gauge registry_stack_storage_filesystem_size_bytes "Size of the filesystem holding the registry data." "$size"
      gauge registry_stack_storage_filesystem_available_bytes "Bytes still available on the filesystem holding the registry data." "$available"
    }
    gauge registry_stack_storage_used_bytes "Bytes the registry data uses (du)." "$(du -sk "$DATA_DIR" | awk '{ printf "%.0f", $1 * 1024 }')"
    [ -f "$LAST_RUN_METRICS" ] && cat "$LAST_RUN_METRICS"
    gauge registry_stack_registry_metrics_up "1 if the registry's debug server answered the last scrape." "$up"
    [ "$up" = 1 ] && cat "$tmp.registry"
  } > "$tmp"
  rm -f "$tmp.registry"
  mv "$tmp" "$METRICS_FILE"
  [ "$up" = 1 ]
}

metrics_loop() {
  failures=0
  while :; do
    if write_metrics; then failures=0; else failures=$((failures + 1)); fi
    # This container shares the registry's network namespace (network_mode container:<registry>);
    # after a registry restart it holds the old one and the scrape fails until it restarts too.
    if [ "$failures" -ge 3 ] && [ ! -d "$RUN_LOCK" ]; then
      log "the registry's metrics did not answer 3 times; restarting to rejoin its network namespace"
      kill -USR1 1
    fi
    sleep "$METRICS_INTERVAL_SECONDS"
  done
}

release() {
  # A run that failed after deleting through the API: the shared cache may answer for what is gone.
  if [ -n "${DELETED_THROUGH_API:-}" ] && [ -z "${KEEP_HOLD:-}" ] && ! flush_cache_retrying; then
    KEEP_HOLD=1
    log "ERROR: the Redis cache could not be flushed: writes stay held until a run (npm run gc) or a restart of the collector flushes it"
  fi
  [ -n "${KEEP_HOLD:-}" ] || rm -f "$HOLD_FILE"
  [ -n "${WORK:-}" ] && rm -rf "$WORK"
  rmdir "$RUN_LOCK" 2>/dev/null
  return 0
}

# run_job TRIGGER DRY(true|false): one run; prints the report path last.
run_job() {
  trigger=$1 dry=$2
  mkdir -p "$REPORTS"
  mkdir "$RUN_LOCK" 2>/dev/null || fail "another run is in progress ($RUN_LOCK exists); wait for it to finish"
  WORK=$(mktemp -d)
  trap 'release' EXIT
  trap 'release; exit 143' INT TERM
  STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  id=$(date -u +%Y%m%dT%H%M%SZ)-$trigger$([ "$dry" = true ] && echo -dry-run)
  window_ms=0 collector_ms=0 status=0
  : > "$WORK/deleted_blobs"
  if [ "$dry" = true ]; then
    t0=$(now_ms)
    if [ "$STORAGE_ACCESS" = registry-api ]; then plan_api "$WORK"; else plan "$WORK"; fi
    retention_ms=$(( $(now_ms) - t0 ))
    cp "$WORK/sweep" "$WORK/deleted_blobs"
  else
    # Writes are held from here: the plan and the deletions see no concurrent push, and the
    # collector cannot sweep a layer whose manifest arrives while it marks (distribution#1609).
    w0=$(now_ms)
    : > "$HOLD_FILE" || fail "cannot create $HOLD_FILE"
    log "writes held; waiting ${SETTLE_SECONDS}s for writes already past the proxy"
    sleep "$SETTLE_SECONDS"
    t0=$(now_ms)
    if [ "$STORAGE_ACCESS" = registry-api ]; then plan_api "$WORK"; DELETED_THROUGH_API=1; apply_deletions_api "$WORK"; else plan "$WORK"; apply_deletions "$WORK"; fi
    retention_ms=$(( $(now_ms) - t0 ))
    g0=$(now_ms)
    if [ "$STORAGE_ACCESS" = registry-api ]; then
      # Without --quiet it names every blob it deletes: the only list of them S3 storage gives here
      # (no sizes: the report's bytes stay 0 in cluster mode).
      registry garbage-collect "$COLLECTOR_CONFIG" > "$WORK/collector.log" 2>&1 || status=$?
      sed -n 's/^blob eligible for deletion: \(sha256:[0-9a-f]\{64\}\).*/\1 0/p' "$WORK/collector.log" | sort -u > "$WORK/deleted_blobs"
    else
      registry garbage-collect --quiet "$COLLECTOR_CONFIG" > "$WORK/collector.log" 2>&1 || status=$?
      list_blobs > "$WORK/blobs_after"
      minus "$WORK/blobs_after" "$WORK/blobs_before" > "$WORK/deleted_blobs"
    fi
    collector_ms=$(( $(now_ms) - g0 ))
    if [ "$status" != 0 ]; then log "registry garbage-collect exited $status:"; tail -n 20 "$WORK/collector.log" >&2; fi
    # A replica that still found a removed blob in the shared cache would accept a push that skips it.
    if ! flush_cache_retrying; then
      KEEP_HOLD=1
      log "ERROR: the Redis cache could not be flushed: writes stay held until a run (npm run gc) or a restart of the collector flushes it"
      status=1
    fi
    DELETED_THROUGH_API=""
    [ -n "${KEEP_HOLD:-}" ] || rm -f "$HOLD_FILE"
    window_ms=$(( $(now_ms) - w0 ))
    [ -n "${KEEP_HOLD:-}" ] || log "writes released after ${window_ms} ms"
  fi
  report "$WORK" "$id" "$trigger" "$dry" "$retention_ms" "$window_ms" "$collector_ms" "$status" > "$REPORTS/$id.json.tmp"
  mv "$REPORTS/$id.json.tmp" "$REPORTS/$id.json"
  cp "$REPORTS/$id.json" "$REPORTS/latest.json.tmp" && mv "$REPORTS/latest.json.tmp" "$REPORTS/latest.json"
  if [ "$dry" != true ]; then
    last_run_metrics "$WORK" "$status" "$retention_ms" "$window_ms" "$collector_ms"
    [ "$STORAGE_ACCESS" = registry-api ] || write_metrics || log "the registry's metrics did not answer (storage and run metrics written)"
  fi
  log "$([ "$dry" = true ] && echo "dry run: would delete" || echo deleted) $(wc -l < "$WORK/delete_tags") tags, $(wc -l < "$WORK/delete_manifests") manifests, $(wc -l < "$WORK/deleted_blobs") blobs ($(awk '{ s += $2 } END { printf "%d", s }' "$WORK/deleted_blobs") bytes); report $REPORTS/$id.json"
  echo "$REPORTS/$id.json"
  release
  trap - EXIT INT TERM
  [ "$status" = 0 ]
}

flush_cache_retrying() {
  for _ in 1 2 3 4 5; do flush_cache && return 0; sleep 2; done
  return 1
}

# serve_registry: the job's two registries (cluster mode), in the background: one on S3 whose API
# the job uses, one whose health is the hold state the proxies poll. A run killed with the task may
# have left the shared cache stale, so writes stay held until the cache is flushed.
serve_registry() {
  mkdir -p "$STATE_DIR"
  : > "$HOLD_FILE"
  registry serve "$REGISTRY_SERVE_CONFIG" &
  api_pid=$!
  registry serve "$HOLD_STATE_CONFIG" &
  hold_pid=$!
  until flush_cache; do
    kill -0 "$api_pid" 2>/dev/null && kill -0 "$hold_pid" 2>/dev/null || fail "the job's registry exited"
    log "retrying the Redis flush in 5 s; writes stay held"
    sleep 5
  done
  rm -f "$HOLD_FILE"
  # Without them no run works, or every proxy holds writes: let Swarm restart the task.
  ( while kill -0 "$api_pid" 2>/dev/null && kill -0 "$hold_pid" 2>/dev/null; do sleep 5; done; log "the job's registry exited"; kill -USR1 $$ ) &
}

schedule_loop() {
  # A run killed with its container leaves its hold and lock behind: nothing else runs now.
  rmdir "$RUN_LOCK" 2>/dev/null
  trap 'exit 0' INT TERM
  trap 'exit 1' USR1
  if [ "$STORAGE_ACCESS" = registry-api ]; then serve_registry; else rm -f "$HOLD_FILE"; metrics_loop & fi
  h=${SCHEDULE%:*} mi=${SCHEDULE#*:}
  h=${h#0} mi=${mi#0}
  while :; do
    now=$(date -u +%s)
    at=$(( now - now % 86400 + h * 3600 + mi * 60 ))
    [ "$at" -gt "$now" ] || at=$(( at + 86400 ))
    log "next run at $SCHEDULE UTC, in $(( at - now )) s$([ "$DRY_RUN" = true ] && echo ' (dry run)')"
    sleep $(( at - now )) &
    wait $!
    ( run_job schedule "$DRY_RUN" ) || log "scheduled run failed"
  done
}

case "${1:-}" in
  schedule) schedule_loop ;;
  run)
    case "${2:-}" in
      --dry-run) dry=true ;;
      "") dry=$DRY_RUN ;;
      *) fail "unknown option $2 (use: run [--dry-run])" ;;
    esac
    path=$(run_job manual "$dry") || { [ -n "${path:-}" ] && cat "$path"; exit 1; }
    cat "$path"
    ;;
  *) fail "usage: maintenance.sh schedule | run [--dry-run]" ;;
esac
