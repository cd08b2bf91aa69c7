#!/usr/bin/env bash
# The admin listener: /healthz, /ready, /certs, /config, /metrics and
# POST /drain on a wisp pair, with curl and raw bytes; bad requests; an
# expired SVID; --admin off; an admin address that is taken.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
make_pki
p=$WORK/pki

# distinct_port: a free port not handed out before in this test.
USED_PORTS=" "
distinct_port() {
  local port i
  for i in $(seq 1 50); do
    port=$(free_port) || return 1
    case "$USED_PORTS" in *" $port "*) continue ;; esac
    USED_PORTS="$USED_PORTS$port "
    echo "$port"
    return 0
  done
  return 1
}

# The pair of harness.sh's start_pair, but each proxy with its own admin port.
APP_PORT=$(distinct_port) IN_PORT=$(distinct_port) OUT_PORT=$(distinct_port)
ADM_S=$(distinct_port) ADM_C=$(distinct_port)
start_app app "$APP_PORT" || { not_ok "app starts"; finish; }
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_S"
start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" --admin "127.0.0.1:$ADM_C"
for port in $IN_PORT $OUT_PORT $ADM_S $ADM_C; do wait_port "$port" || { not_ok "pair starts"; finish; }; done
OUT=http://127.0.0.1:$OUT_PORT
S=http://127.0.0.1:$ADM_S
C=http://127.0.0.1:$ADM_C

adm() { curl -s --max-time 5 "$@"; }
code_of() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }
# jget FIELD: a top-level field of the JSON object on stdin ("null" for null,
# objects and arrays as JSON).
jget() {
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    let v; try { v = JSON.parse(s)[process.argv[1]]; } catch (e) { console.log("BAD JSON: " + e.message); return; }
    console.log(v === null ? "null" : typeof v === "object" ? JSON.stringify(v) : String(v)); });' "$1"
}
# raw PORT BYTES [eof]: sends BYTES (\r \n \xNN escapes) on a new connection,
# half-closes if "eof", and prints what comes back until the server closes
# (at most 8 s).
raw() {
  node -e 'const [port, text, mode] = process.argv.slice(1);
    const bytes = Buffer.from(text.replace(/\\(r|n|x[0-9a-fA-F]{2})/g, (m, e) =>
      e === "r" ? "\r" : e === "n" ? "\n" : String.fromCharCode(parseInt(e.slice(1), 16))), "latin1");
    let out = "";
    const done = () => { process.stdout.write(out); process.exit(0); };
    const s = require("net").connect(+port, "127.0.0.1", () => { s.write(bytes); if (mode === "eof") s.end(); });
    s.on("data", (d) => (out += d.toString("latin1"))).on("close", done).on("error", done);
    setTimeout(done, 8000);' "$1" "$2" "${3:-}"
}
# metric TEXT NAME{LABELS}: the sum of NAME's samples that carry at least
# LABELS (wisp_requests_total has more labels than direction and code).
metric() { prom_sum "$@"; }

# --- /healthz ---
expect_eq "/healthz answers 200 ok (server)" "ok 200" "$(adm -w ' %{http_code}' "$S/healthz" | tr -d '\n')"
expect_eq "/healthz answers 200 ok (client)" "ok 200" "$(adm -w ' %{http_code}' "$C/healthz" | tr -d '\n')"
hdrs=$(adm -I "$S/healthz" | tr -d '\r')
expect_match "HEAD /healthz: 200 with the length of the GET body" '^HTTP/1.1 200 OK' "$hdrs"
expect_match "... and Connection: close" 'Connection: close' "$hdrs"
expect_match "... and Content-Length: 3" 'Content-Length: 3' "$hdrs"

# --- /ready ---
expect_eq "/ready is 200 with a valid SVID (server)" 200 "$(code_of "$S/ready")"
expect_eq "/ready is 200 with a valid SVID (client)" 200 "$(code_of "$C/ready")"

# --- /certs ---
certs=$(adm "$S/certs")
expect_eq "/certs shows the SPIFFE ID" "$TD/ns/shop/sa/orders" "$(jget spiffe_id <<<"$certs")"
want_serial=$(openssl x509 -noout -serial -in "$p/orders.crt" | cut -d= -f2)
got_serial=$(jget serial <<<"$certs")
expect_eq "/certs shows the serial openssl x509 -serial prints" "${want_serial^^}" "${got_serial^^}"
want_end=$(date -d "$(openssl x509 -noout -enddate -in "$p/orders.crt" | cut -d= -f2)" +%s)
got_end=$(jget not_after_unix <<<"$certs")
if [ -n "$got_end" ] && [ "$got_end" -ge $((want_end - 2)) ] 2>/dev/null && [ "$got_end" -le $((want_end + 2)) ]; then
  ok "/certs not_after_unix is the certificate's notAfter"
else
  not_ok "/certs not_after_unix is the certificate's notAfter" "want $want_end got $got_end"
fi
expect_match "/certs not_after is readable" 'GMT$' "$(jget not_after <<<"$certs")"
expect_eq "/certs bundle_roots" 1 "$(jget bundle_roots <<<"$certs")"
expect_match "/certs bundle_not_after" 'GMT$' "$(jget bundle_not_after <<<"$certs")"
expect_eq "/certs generation starts at 1" 1 "$(jget generation <<<"$certs")"
expect_match "/certs is application/json" 'Content-Type: application/json' "$(adm -I "$S/certs")"
client_certs=$(adm "$C/certs")
expect_eq "/certs of the client shows its own ID" "$TD/ns/shop/sa/frontend" "$(jget spiffe_id <<<"$client_certs")"

# --- /config ---
cfg=$(adm "$C/config")
expect_eq "/config lists the route" \
  "[{\"listen\":\"127.0.0.1:$OUT_PORT\",\"peer\":\"127.0.0.1:$IN_PORT\",\"expect_id\":\"$TD/ns/shop/sa/orders\"}]" \
  "$(jget routes <<<"$cfg")"
expect_eq "/config policy is null without a policy" null "$(jget policy <<<"$cfg")"
expect_eq "/config timeouts" '{"connect":5,"handshake":10,"idle":300,"drain":30}' "$(jget timeouts <<<"$cfg")"
expect_eq "/config of a route-only proxy has no inbound" null "$(jget inbound <<<"$cfg")"
scfg=$(adm "$S/config")
expect_eq "/config of the server: inbound" "127.0.0.1:$IN_PORT" "$(jget inbound <<<"$scfg")"
expect_eq "/config of the server: app" "127.0.0.1:$APP_PORT" "$(jget app <<<"$scfg")"
expect_eq "/config of the server: no routes" "[]" "$(jget routes <<<"$scfg")"

# --- /metrics ---
m=$(adm "$C/metrics")
expect_match "/metrics is Prometheus text 0.0.4" 'Content-Type: text/plain; version=0.0.4' "$(adm -I "$C/metrics")"
bad=$(printf '%s\n' "$m" | grep -v '^#' | grep -vE '^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$' | head -3)
expect_eq "every /metrics sample line parses" "" "$bad"
untyped=""
for name in $(printf '%s\n' "$m" | grep -v '^#' | sed -E 's/[{ ].*//' | sort -u); do
  family=$name
  case $name in *_bucket | *_sum | *_count) family=${name%_*} ;; esac
  printf '%s\n' "$m" | grep -q "^# TYPE $name \(counter\|gauge\)$" ||
    printf '%s\n' "$m" | grep -q "^# TYPE $family histogram$" || untyped="$untyped $name"
  printf '%s\n' "$m" | grep -q "^# HELP $family " || untyped="$untyped $name(help)"
done
expect_eq "every metric has # HELP and # TYPE" "" "$untyped"
expect_eq "wisp_ready is 1" 1 "$(metric "$m" wisp_ready)"
expect_eq "wisp_cert_generation is 1" 1 "$(metric "$m" wisp_cert_generation)"
expect_eq "wisp_svid_expiry_timestamp_seconds is the client cert's notAfter" \
  "$(jget not_after_unix <<<"$client_certs")" "$(metric "$m" wisp_svid_expiry_timestamp_seconds)"

OUT2XX='wisp_requests_total{direction="outbound",code="2xx"}'
OUT4XX='wisp_requests_total{direction="outbound",code="4xx"}'
IN2XX='wisp_requests_total{direction="inbound",code="2xx"}'
IN4XX='wisp_requests_total{direction="inbound",code="4xx"}'
c2=$(metric "$m" "$OUT2XX")
sm=$(adm "$S/metrics")
s2=$(metric "$sm" "$IN2XX")
for i in 1 2 3 4 5; do h2get -o /dev/null "$OUT/m$i"; done
h2get -o /dev/null "$OUT/status/404"
h2get -o /dev/null "$OUT/status/404"
counters_moved() {
  m=$(adm "$C/metrics")
  sm=$(adm "$S/metrics")
  [ "$(metric "$m" "$OUT2XX")" = $((c2 + 5)) ] && [ "$(metric "$m" "$OUT4XX")" = 2 ] &&
    [ "$(metric "$sm" "$IN2XX")" = $((s2 + 5)) ] && [ "$(metric "$sm" "$IN4XX")" = 2 ]
}
if wait_for 5 counters_moved; then
  ok "request counters move after traffic (outbound and inbound, 2xx and 4xx)"
else
  not_ok "request counters move after traffic" "client: $(printf '%s' "$m" | grep 'wisp_requests_total' | tr '\n' ' ') server: $(printf '%s' "$sm" | grep 'wisp_requests_total' | tr '\n' ' ')"
fi
expect_eq "wisp_requests_started_total counts every request" 7 "$(metric "$m" wisp_requests_started_total)"
expect_eq "no streams left open" 0 "$(metric "$m" wisp_streams_open)"
expect_eq "the client accepted 7 downstream connections" 7 "$(metric "$m" wisp_connections_accepted_total)"
expect_eq "one pooled upstream connection stays open" 1 "$(metric "$m" 'wisp_connections_open{side="upstream"}')"
expect_eq "the server accepted one mTLS connection" 1 "$(metric "$sm" wisp_connections_accepted_total)"
expect_eq "no error responses" 0 "$(metric "$m" wisp_error_responses_total)"
refused=$(metric "$sm" wisp_connections_refused_total)
exec 7<>"/dev/tcp/127.0.0.1/$IN_PORT"
exec 7>&-
probe_counted() {
  sm=$(adm "$S/metrics")
  [ "$(metric "$sm" wisp_connections_closed_early_total)" = 1 ]
}
check "a TCP probe to the mTLS port counts in wisp_connections_closed_early_total" wait_for 3 probe_counted
expect_eq "... and not as a refusal" "$refused" "$(metric "$sm" wisp_connections_refused_total)"

# --- what the admin listener refuses ---
expect_eq "unknown path: 404" 404 "$(code_of "$S/nope")"
expect_eq "trailing slash: 404" 404 "$(code_of "$S/healthz/")"
expect_eq "POST /healthz: 405" 405 "$(code_of -X POST "$S/healthz")"
expect_match "... with Allow: GET, HEAD" 'Allow: GET, HEAD' "$(adm -i -X POST "$S/healthz")"
expect_eq "GET /drain: 405 (drain is POST only)" 405 "$(code_of "$S/drain")"
expect_eq "a query string is ignored" 200 "$(code_of "$S/metrics?name=wisp_ready")"
out=$(raw "$ADM_S" 'garbage\r\n\r\n')
expect_match "a garbage request gets 400" '^HTTP/1.1 400 Bad Request' "$out"
out=$(raw "$ADM_S" '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03')
expect_match "a TLS ClientHello gets 400" '^HTTP/1.1 400 Bad Request' "$out"
out=$(raw "$ADM_S" 'GET /healthz HTTP/1.1\r\n\r' eof)
expect_match "a request cut short (EOF before CRLFCRLF) gets 400" '^HTTP/1.1 400 .*' "$out"
out=$(raw "$ADM_S" 'GET /healthz HTTP/1.0\r\n\r\n')
expect_match "a raw HTTP/1.0 request is answered" '^HTTP/1.1 200 OK' "$out"
pad=$(head -c 9000 /dev/zero | tr '\0' a)
expect_eq "a request over 8 KiB gets 413" 413 "$(code_of -H "X-Pad: $pad" "$S/healthz")"
expect_eq "after all that the admin listener still serves" 200 "$(code_of "$S/healthz")"
expect_eq "... and so does the data plane" 200 "$(h2get -o /dev/null -w '%{http_code}' "$OUT/after-garbage")"

# A client that sends half a request and stalls holds up nobody.
(raw "$ADM_S" 'GET /heal' >"$WORK/stalled.out") &
STALLED=$!
# Wait for the stalled connection to be held, then ask: on a single-threaded
# loop, a blocked listener would answer only after the stalled request's 5 s
# read timeout, so the answer must come while that request still waits.
stalled_held() { [ "$(ss -Htn state established "( dport = :$ADM_S )" | wc -l)" -ge 1 ]; }
wait_for 10 stalled_held
code=$(code_of "$S/healthz")
if [ "$code" = 200 ] && kill -0 "$STALLED" 2>/dev/null && [ ! -s "$WORK/stalled.out" ]; then
  ok "a stalled admin client does not block other admin requests"
else
  not_ok "a stalled admin client does not block other admin requests" \
    "code $code; stalled request already answered: $(head -c 80 "$WORK/stalled.out")"
fi
expect_eq "... nor the data plane" 200 "$(h2get -o /dev/null -w '%{http_code}' "$OUT/while-stalled")"
wait "$STALLED"
expect_match "the stalled request gets 408 after the read timeout" '^HTTP/1.1 408' "$(cat "$WORK/stalled.out")"

# --- /certs follows a certificate reload ---
old_serial=$got_serial
bash "$PKI" svid "$p/ca" "$p/orders" "$TD/ns/shop/sa/orders" >/dev/null
reloaded() { [ "$(adm "$S/certs" | jget generation)" = 2 ]; }
if wait_for 10 reloaded; then ok "/certs generation bumps on reload"; else not_ok "/certs generation bumps on reload"; fi
new_serial=$(adm "$S/certs" | jget serial)
want_serial=$(openssl x509 -noout -serial -in "$p/orders.crt" | cut -d= -f2)
expect_eq "/certs shows the new serial" "${want_serial^^}" "${new_serial^^}"
if [ "$new_serial" != "$old_serial" ]; then ok "... which differs from the old one"; else not_ok "... which differs from the old one"; fi

# --- an expired SVID: the proxy starts, /ready says why not ---
bash "$PKI" svid "$p/ca" "$p/old" "$TD/ns/shop/sa/orders" --expired >/dev/null
EXP_IN=$(distinct_port) ADM_E=$(distinct_port)
start_proxy expired --cert "$p/old.crt" --key "$p/old.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$EXP_IN" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_E"
wait_port "$ADM_E"
body=$(adm "http://127.0.0.1:$ADM_E/ready")
expect_eq "/ready is 503 with an expired SVID" 503 "$(code_of "http://127.0.0.1:$ADM_E/ready")"
want_end=$(openssl x509 -noout -enddate -in "$p/old.crt" | cut -d= -f2)
expect_match "... and says when it expired" "^SVID expired at ${want_end}\$" "$body"
expect_eq "... wisp_ready is 0" 0 "$(metric "$(adm "http://127.0.0.1:$ADM_E/metrics")" wisp_ready)"
expect_eq "... /healthz is still 200" 200 "$(code_of "http://127.0.0.1:$ADM_E/healthz")"
stop_proxy expired

# --- --admin off, and an admin address that is taken ---
OFF_IN=$(distinct_port) OFF_ADM=$(distinct_port)
WISP_ADMIN="127.0.0.1:$OFF_ADM" start_proxy off --cert "$p/orders.crt" --key "$p/orders.key" \
  --bundle "$p/ca/ca.crt" --inbound "127.0.0.1:$OFF_IN" --app "127.0.0.1:$APP_PORT" --admin off
wait_port "$OFF_IN"
if ss -Htln "sport = :$OFF_ADM" | grep -q .; then
  not_ok "--admin off wins over WISP_ADMIN: no admin listener"
else
  ok "--admin off wins over WISP_ADMIN: no admin listener"
fi
stop_proxy off
out=$("$WISP_PROXY" --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound 127.0.0.1:0 --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_S" 2>&1)
expect_eq "an --admin address that is taken: exit 1" 1 "$?"
expect_match "... saying so" "--admin: cannot listen on 127.0.0.1:$ADM_S: Address already in use" "$out"
# The default address may be taken (several proxies on one host): the proxy
# runs without an admin listener and says so.
if ! ss -Htln "sport = :15000" | grep -q .; then
  start_bg "$WORK/holder" node -e 'require("net").createServer().listen(15000, "127.0.0.1")'
  wait_port 15000 5
fi
DEF_IN=$(distinct_port)
start_proxy default --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$DEF_IN" --app "127.0.0.1:$APP_PORT"
wait_port "$DEF_IN"
wait_for 5 grep -q 'no admin listener' "$WORK/default.err"
expect_match "a taken default admin address is a warning, not an exit" 'no admin listener: cannot listen on 127.0.0.1:15000' \
  "$(cat "$WORK/default.err")"
stop_proxy default

# --- POST /drain: 202, not ready, in-flight finishes, exit 0 ---
h2get -o /dev/null -w '%{http_code}' "$OUT/slow?ms=1500" >"$WORK/inflight.code" &
INFLIGHT=$!
wait_for 10 grep -q '"path":"/slow?ms=1500"' "$WORK/app.out" # in flight: the app has it
expect_eq "POST /drain answers 202" "draining 202" "$(adm -X POST -w ' %{http_code}' "$C/drain" | tr -d '\n')"
expect_eq "/ready is 503 while draining" "draining 503" "$(adm -w ' %{http_code}' "$C/ready" | tr -d '\n')"
expect_eq "a second POST /drain is harmless" "already draining 202" \
  "$(adm -X POST -w ' %{http_code}' "$C/drain" | tr -d '\n')"
expect_eq "/healthz is still 200 while draining" 200 "$(code_of "$C/healthz")"
expect_eq "after POST /drain new connections are refused" 000 \
  "$(curl -s --max-time 3 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "$OUT/late")"
wait "$INFLIGHT"
expect_eq "a request in flight at POST /drain completes" 200 "$(cat "$WORK/inflight.code")"
client_exited() { ! kill -0 "$PID_client" 2>/dev/null; }
if wait_for 10 client_exited; then
  wait "$PID_client"
  rc=$?
  PID_client=
  if [ "$rc" -eq 0 ] && ! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/client.err"; then
    ok "after POST /drain the proxy exits 0 on its own, sanitizer clean"
  else
    not_ok "after POST /drain the proxy exits 0 on its own, sanitizer clean" "exit $rc"
    sed 's/^/# /' "$WORK/client.err" | tail -40
  fi
else
  not_ok "after POST /drain the proxy exits 0 on its own" "still running after 10s"
fi
expect_match "the drain is logged with who asked" 'drain requested on the admin listener by 127.0.0.1:' \
  "$(cat "$WORK/client.err")"

stop_proxy server
finish
