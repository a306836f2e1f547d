#!/usr/bin/env bash
# Fuzzes every parser of outside input for a bounded time; exits non-zero if any target crashes.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]                         (default 60)
#   FUZZ_TARGETS="event_parse api_input" scripts/fuzz.sh 30      (a subset)
#
# The targets live in fuzz/fuzz_targets/, a crate of its own outside the workspace, built into
# fuzz/target. Each run starts from the few seed inputs written below plus whatever earlier local
# runs found (fuzz/corpus/<target>/, not committed). A crash leaves its input in
# fuzz/artifacts/<target>/; minimise it with
#   cargo fuzz tmin --sanitizer none --debug-assertions <target> <artifact>
# then add it as a regression test beside the parser, fix the parser, and run this again.
#
# Built without AddressSanitizer (`--sanitizer none`), which keeps it on the stable toolchain: ASan
# needs an unstable compiler flag, and it only finds memory errors, which the workspace's safe Rust
# (`unsafe_code = "forbid"`) cannot have; everything else cargo fuzz passes is stable. Panics,
# failed assertions, arithmetic overflow (debug assertions are on), hangs over 10 s and runaway
# memory (over 2 GiB) are all reported as crashes.
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
read -r -a targets <<<"${FUZZ_TARGETS:-event_parse api_input handoff_carried handoff_claim_ids handoff_signature handoff_roundtrip duration destination}"
flags=(--sanitizer none --debug-assertions)

cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Seed inputs: a well-formed example per target and a few near misses for the fuzzer to mutate.
seed() { # seed TARGET NAME FORMAT [ARG]: the file's bytes are printf FORMAT ARG
    mkdir -p "fuzz/corpus/$1"
    # shellcheck disable=SC2059 # the format carries the binary bytes
    printf "$3" "${4-}" >"fuzz/corpus/$1/seed-$2"
}

# event_parse: one header byte (0 = no message_id, else 1 + its length), then the body.
seed event_parse contract '\000%s' '{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1650540069,"project_code":"DEMO","team_member_id":40,"payload":{"id":1,"title":"Test run 2022/04/21","cases_count":14}}'
seed event_parse message-id '\006msg-1%s' '{"event_name":"case.created","timestamp":1,"project_code":"P","team_member_id":null,"payload":{ "a" : [1, -2.5e3, "\u00e9\ud83d\ude00\n", null, true, {}] }}'
seed event_parse rejected '\000%s' '{"id":"NOPE","event_name":"run.exploded","timestamp":"x","project_code":"","payload":[1]}'

seed api_input create '%s' '{"title":" CI ","url":"https://example.com/hooks?x=1#f","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","events":["run.started","case.created"],"enabled":true,"created_by":40}'
seed api_input patch '%s' '{"url":"http://[::ffff:169.254.169.254]:8080/a/../b","secret":null,"created_by":null}'
seed api_input refused '%s' '{"url":"http://0x7f.1/","title":"t","events":[],"colour":1}'

# Hand-offs, as the sender's consumer receives them. The ids and the lease of a carried one:
d1=0190f5a2-0000-7000-8000-000000000001 d2=0190f5a2-0000-7000-8000-000000000002
w1=0190f5a2-0000-7000-8000-0000000000aa w2=0190f5a2-0000-7000-8000-0000000000bb
first='{"name":"run.started","body":{"event_name":"run.started","timestamp":1,"payload":{"a": [1, -2.5e3, "\u00e9"]},"team_member_id":null,"project_code":"DEMO"},"deliveries":["'$d1'"],"webhooks":["'$w1'"]}'
second='{"name":"case.created","deliveries":["'$d1'","'$d2'"],"webhooks":["'$w1'","'$w2'"]}'
unpaired='{"name":"case.created","deliveries":["'$d1'","'$d2'"],"webhooks":["'$w2'"]}'
carried() { # carried EVENTS: a carried hand-off of these events, leased 30 s past the fuzzer's now
    printf '{"type":"deliver.v2","recorded_at":"2026-12-05T09:59:58Z","leased_until":"2026-12-05T10:00:30.123456Z","events":[%s]}' "$1"
}
# handoff_carried: a flags byte (1 = redelivered), the attempt room in seconds (2 bytes), the body.
seed handoff_carried first-hand '\000\000\024%s' "$(carried "$first,$second")"
seed handoff_carried redelivered '\001\000\024%s' "$(carried "$first,$second")"
seed handoff_carried short-lease '\000\000\100%s' "$(carried "$first,$second")"
seed handoff_carried unpaired '\000\000\024%s' "$(carried "$first,$unpaired")"
# handoff_claim_ids: a flags byte (1 = redelivered; 2, 4, 6 = the type property: deliver.v1,
# empty, or the next byte's count of characters), then the body.
seed handoff_claim_ids claim '\000%s' '{"type":"deliver.v1","deliveries":["'$d1'","'$d2'"],"webhooks":["'$w1'","'$w2'"]}'
seed handoff_claim_ids without-webhooks '\003%s' '{"type":"deliver.v1","deliveries":["'$d1'"]}'
seed handoff_claim_ids unknown '\000%s' '{"deliveries":[],"type":"deliver.v2"}'
seed handoff_claim_ids other-type '\006\012deliver.v3%s' '{"type":"deliver.v1","deliveries":[],"webhooks":["'$w1'"]}'
# handoff_signature and handoff_roundtrip read their input as a sequence of choices: any bytes do;
# these give them a message's worth of text to start from.
seed handoff_signature carried '\001%s' "$(carried "$first")"
seed handoff_signature untyped '\000webhooks.deliveries\000%s\001\000\377' '{"type":"deliver.v1","deliveries":["'$d1'"]}'
seed handoff_roundtrip small '\002\001\003%s\001\000\002\004\377\020' '{"a": [1, 2.5e3, "\u00e9"]}'
seed handoff_roundtrip many '\004\377\377\377\037%s\377\377\001\001' '{"title":"Test run","cases_count":14}'

for text in 500ms 15s 10m 6h 2d 30 '1h 30m' 18446744073709551615s; do
    seed duration "${text// /_}" '%s' "$text"
done

# destination: 16 bytes of an IPv6 address, then ALLOWED_TARGETS text.
seed destination mapped-metadata '\0\0\0\0\0\0\0\0\0\0\377\377\251\376\251\376%s' '127.0.0.0/8,::1'
seed destination ec2-metadata-v6 '\375\0\016\302\0\0\0\0\0\0\0\0\0\0\002\124'
seed destination nat64 '\0\144\377\233\0\0\0\0\0\0\0\0\012\0\0\001%s' '10.0.0.0/8, 192.168.1.1'
seed destination public '\046\006\107\0\0\0\0\0\0\0\0\0\0\0\021\021%s' 'fc00::/7,nonsense'

echo "== building fuzz targets"
cargo fuzz build "${flags[@]}"

mkdir -p fuzz/artifacts
failed=()
summary=()
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s"
    log="fuzz/artifacts/$target.log"
    set +e
    # -timeout: an input taking over 10 s is a hang; -rss_limit_mb: over 2 GiB is runaway memory.
    cargo fuzz run "${flags[@]}" "$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    set -e
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done |panicked|^==[0-9]+== ERROR|^SUMMARY|^artifact_prefix|Test unit written' "$log" || true
    if [[ $status -ne 0 ]]; then
        failed+=("$target")
        summary+=("$target: FAILED (exit $status): see $log and fuzz/artifacts/$target/")
        continue
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\) .*/\1/p' "$log")
    summary+=("$target: ok, ${runs:-?} runs in ${seconds}s (${rate:-?}/s), ${cov:-?} coverage points")
done

echo "== fuzz summary"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzzing found a problem in: ${failed[*]}" >&2
    exit 1
fi
