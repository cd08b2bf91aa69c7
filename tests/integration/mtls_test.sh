#!/usr/bin/env bash
# The mTLS cases every deployment must pass, with openssl s_client and curl
# against the inbound listener; bad input; certificate reload.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
make_pki
p=$WORK/pki
bash "$PKI" svid - "$p/self" "$TD/ns/shop/sa/frontend" --self-signed >/dev/null
bash "$PKI" ca "$p/other-ca" >/dev/null
bash "$PKI" svid "$p/other-ca" "$p/rogue" "$TD/ns/shop/sa/frontend" >/dev/null
bash "$PKI" svid "$p/ca" "$p/expired" "$TD/ns/shop/sa/frontend" --expired >/dev/null
bash "$PKI" svid "$p/ca" "$p/stranger" "spiffe://elsewhere.local/ns/x/sa/y" >/dev/null
# Leaves from the trust bundle's CA that break the X.509-SVID rules (spec
# 4.1, 4.3), made with openssl as a hand-rolled PKI would make them.
bad_leaf() { # bad_leaf NAME EXTENSIONS: $p/NAME.{crt,key} for frontend's ID
  local n=$p/$1
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$n.key" -subj "/CN=$1" \
    -out "$n.csr" 2>/dev/null
  printf '%s\nsubjectAltName = URI:%s\n' "$2" "$TD/ns/shop/sa/frontend" >"$n.ext"
  openssl x509 -req -in "$n.csr" -CA "$p/ca/ca.crt" -CAkey "$p/ca/ca.key" -set_serial "$((RANDOM * 32768 + RANDOM))" \
    -days 1 -extfile "$n.ext" -out "$n.crt" 2>/dev/null
}
bad_leaf noku $'basicConstraints = critical, CA:false\nextendedKeyUsage = serverAuth, clientAuth'
bad_leaf certsign $'basicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature, keyCertSign'
bad_leaf kunoncrit $'basicConstraints = critical, CA:false\nkeyUsage = digitalSignature'
start_pair --handshake-timeout 2 || { not_ok "pair starts"; finish; }

# s_client CERTNAME [extra args]: sends an HTTP/2 preface after the
# handshake and prints what openssl saw (TLS 1.3 client-cert refusals arrive
# as an alert after the client's Finished).
# s_client_alpn ALPN|none CERTNAME [extra args]: the same, offering ALPN
# (or, with none, no ALPN extension at all).
s_client_alpn() {
  local alpn=$1 name=$2 certargs=() alpnargs=()
  shift 2
  [ "$name" != none ] && certargs=(-cert "$p/$name.crt" -key "$p/$name.key")
  [ "$alpn" != none ] && alpnargs=(-alpn "$alpn")
  (printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0'; sleep 1) |
    timeout 10 openssl s_client -connect "127.0.0.1:$IN_PORT" "${alpnargs[@]}" -CAfile "$p/ca/ca.crt" \
      "${certargs[@]}" "$@" 2>&1 | tr -d '\0'
}
s_client() { s_client_alpn h2 "$@"; }
# curl_in CERTNAME: an HTTPS request straight to the inbound listener.
# (-k: the sidecar's SVID has no DNS name to check; its chain is what the
# s_client cases verify.)
curl_in() {
  local certargs=()
  [ "$1" != none ] && certargs=(--cert "$WORK/pki/$1.crt" --key "$WORK/pki/$1.key")
  curl -sk --max-time 10 --http2 "${certargs[@]}" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$IN_PORT/mtls-$1"
}
refusal_logged() { # refusal_logged REGEX: the server logged a refused connection for it
  wait_for 5 grep -Eq "\"event\":\"refused\".*\"reason\":\"[^\"]*$1" "$WORK/server.out"
}

out=$(s_client frontend)
if printf '%s' "$out" | grep -q 'Verify return code: 0 (ok)' && ! printf '%s' "$out" | grep -qi 'alert'; then
  ok "s_client with a valid SVID from the trust domain is served"
else
  not_ok "s_client with a valid SVID is served" "$(printf '%s' "$out" | grep -ai -m2 'alert\|error')"
fi
expect_match "s_client negotiates ALPN h2 and TLS 1.3" 'ALPN protocol: h2' "$out"
expect_eq "curl with a valid SVID gets 200" 200 "$(curl_in frontend)"

# ALPN says h2 or wisp-l4 (a byte stream); a client that offers none is
# refused in the handshake, before certificates, with the reason logged.
out=$(s_client_alpn none frontend)
expect_match "s_client offering no ALPN is refused with a TLS alert" 'alert handshake failure' "$out"
expect_match "... before any certificate is exchanged" 'no peer certificate available' "$out"
check "... and the refusal says so" refusal_logged "peer offered no ALPN protocol: this mTLS port speaks h2 or wisp-l4 only"
out=$(s_client_alpn http/1.1 frontend)
expect_match "s_client offering only http/1.1 is refused with a TLS alert" 'alert' "$out"
check "... and the refusal says so" refusal_logged "peer offered ALPN without h2 or wisp-l4"
out=$(s_client_alpn h2 frontend)
if printf '%s' "$out" | grep -q 'ALPN protocol: h2' && ! printf '%s' "$out" | grep -qi 'alert'; then
  ok "s_client offering -alpn h2 is served"
else
  not_ok "s_client offering -alpn h2 is served" "$(printf '%s' "$out" | grep -ai -m2 'alert\|error\|ALPN')"
fi

for case in "self|self-signed certificate|a self-signed client certificate" \
  "rogue|not in the trust bundle|a certificate from an unknown CA" \
  "none|presented no client certificate|no client certificate" \
  "expired|expired at|an expired certificate" \
  "stranger|outside our trust domain|an SVID from another trust domain" \
  "noku|not a valid X.509-SVID leaf: it has no keyUsage extension|a leaf SVID without keyUsage" \
  "certsign|not a valid X.509-SVID leaf: its keyUsage has keyCertSign or cRLSign|a leaf SVID with keyCertSign" \
  "kunoncrit|not a valid X.509-SVID leaf: its keyUsage extension is not marked critical|a leaf SVID with a non-critical keyUsage"; do
  IFS='|' read -r name why what <<<"$case"
  out=$(s_client "$name")
  expect_match "s_client with $what is refused with a TLS alert" 'alert' "$out"
  check "$what: the refusal is logged with the reason ($why)" refusal_logged "$why"
  code=$(curl_in "$name")
  expect_eq "curl with $what gets no response" 000 "$code"
done
if grep -q '/mtls-self\|/mtls-rogue\|/mtls-none\|/mtls-expired\|/mtls-stranger\|/mtls-noku\|/mtls-certsign\|/mtls-kunoncrit' \
  "$WORK/app.out" "$WORK/server.out"; then
  not_ok "no refused caller's request reached the app"
else
  ok "no refused caller's request reached the app"
fi

# The other way: a server sidecar whose SVID has no keyUsage; our client refuses it.
BAD_IN=$(free_port) BAD_OUT=$(free_port)
start_proxy badsrv --cert "$p/noku.crt" --key "$p/noku.key" --bundle "$p/ca/ca.crt" --admin off \
  --inbound "127.0.0.1:$BAD_IN" --app "127.0.0.1:$APP_PORT"
start_proxy badcli --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --admin off \
  --route "127.0.0.1:$BAD_OUT=127.0.0.1:$BAD_IN,id=$TD/ns/shop/sa/frontend"
wait_port "$BAD_IN" && wait_port "$BAD_OUT"
expect_eq "a server SVID without keyUsage: the caller gets 502" 502 \
  "$(curl -s --max-time 10 --http2-prior-knowledge -o "$WORK/body" -w '%{http_code}' "http://127.0.0.1:$BAD_OUT/mtls-badsrv")"
expect_match "... saying why" 'not a valid X.509-SVID leaf: it has no keyUsage extension' "$(cat "$WORK/body")"
check "... and the mtls-badsrv request never reached the app" sh -c "! grep -q /mtls-badsrv '$WORK/app.out'"
stop_proxy badsrv
stop_proxy badcli

out=$(s_client frontend -tls1_2)
expect_match "a TLS 1.2-only client is refused by default" 'alert protocol version' "$out"
check "TLS 1.2 refusal is logged" refusal_logged "does not support TLS 1.3"
T12=$(free_port)
start_proxy tls12 --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$T12" --app "127.0.0.1:$APP_PORT" --allow-tls12
wait_port "$T12"
code=$(curl -sk --max-time 10 --http2 --tls-max 1.2 --cert "$p/frontend.crt" --key "$p/frontend.key" \
  -o /dev/null -w '%{http_code}' "https://127.0.0.1:$T12/")
expect_eq "--allow-tls12 serves a TLS 1.2 client" 200 "$code"
stop_proxy tls12

# --- bad input, while other clients carry on ---
h2load -D 8 -c 2 -m 2 "http://127.0.0.1:$OUT_PORT/" >"$WORK/bg.h2load" 2>&1 &
BG=$!
PIDS+=("$BG")
head -c 4096 /dev/urandom >"$WORK/random.bin"
# random bytes at both listeners
(exec 3<>"/dev/tcp/127.0.0.1/$IN_PORT" && cat "$WORK/random.bin" >&3 && timeout 5 cat <&3 >/dev/null) 2>/dev/null
check "random bytes on the mTLS port: refused and logged" refusal_logged "TLS|did not speak TLS"
(exec 3<>"/dev/tcp/127.0.0.1/$OUT_PORT" && cat "$WORK/random.bin" >&3 && timeout 5 cat <&3 >/dev/null)
check "random bytes on the h2c port: refused and logged" \
  wait_for 5 grep -q '"event":"refused".*bad connection preface' "$WORK/client.out"
# a plaintext HTTP/2 client on the mTLS port
code=$(curl -s --max-time 5 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:$IN_PORT/")
expect_eq "a plaintext client on the mTLS port gets no response" 000 "$code"
check "plaintext on the mTLS port is logged as such" refusal_logged "did not speak TLS"
# a TCP probe: connect, close at once (a health check, a port scan)
exec 7<>"/dev/tcp/127.0.0.1/$IN_PORT"
exec 7>&-
check "a TCP probe that connects and closes is logged as such" wait_for 10 \
  grep -q '"event":"closed",.*"reason":"closed before the TLS handshake (the peer sent nothing)"' "$WORK/server.out"
if grep -q 'TLS handshake not finished' "$WORK/server.out"; then
  not_ok "... and not as a handshake timeout" "$(grep -m1 'TLS handshake not finished' "$WORK/server.out")"
else
  ok "... and not as a handshake timeout"
fi
# half a preface, then silence; and a TCP connection that never says hello
exec 4<>"/dev/tcp/127.0.0.1/$OUT_PORT"
printf 'PRI * HTTP/2.0\r\n' >&4
exec 5<>"/dev/tcp/127.0.0.1/$IN_PORT"
exec 6<>"/dev/tcp/127.0.0.1/$IN_PORT"
printf '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' >&6 # the start of a ClientHello
if timeout 6 cat <&4 >/dev/null; then ok "a half-sent preface is closed after the timeout"; else not_ok "half-sent preface closed"; fi
if timeout 6 cat <&5 >/dev/null; then ok "a silent TLS client is closed after the handshake timeout"; else not_ok "silent TLS client closed"; fi
if timeout 6 cat <&6 >/dev/null; then ok "a client stalled mid-ClientHello is closed"; else not_ok "stalled ClientHello closed"; fi
exec 4>&- 5>&- 6>&-
check "the preface timeout is logged" wait_for 5 grep -q '"reason":"no HTTP/2 preface within 2s"' "$WORK/client.out"
check "the handshake timeout is logged" refusal_logged "TLS handshake not finished within 2s"
wait "$BG"
out=$(cat "$WORK/bg.h2load")
expect_match "other clients' traffic went on unharmed meanwhile" ' 0 failed, 0 errored, 0 timeout' "$out"
expect_eq "both proxies are still running" "ok" "$(kill -0 "$PID_client" && kill -0 "$PID_server" && echo ok)"

# --- certificate reload: new handshakes get the new SVID, open ones live on ---
serial_of() { openssl x509 -noout -serial -in "$1" | cut -d= -f2; }
served_serial() {
  echo | timeout 10 openssl s_client -connect "127.0.0.1:$IN_PORT" -alpn h2 -cert "$p/frontend.crt" -key "$p/frontend.key" \
    -CAfile "$p/ca/ca.crt" 2>/dev/null | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
old=$(serial_of "$p/orders.crt")
expect_eq "the served certificate is the one on disk" "$old" "$(served_serial)"
h2get -o "$WORK/long.out" -w '%{http_code}' "http://127.0.0.1:$OUT_PORT/slow?ms=3000" >"$WORK/long.code" &
LONG=$!
wait_for 10 grep -q '"path":"/slow?ms=3000"' "$WORK/app.out" # in flight: the app has it
bash "$PKI" svid "$p/ca" "$p/orders" "$TD/ns/shop/sa/orders" >/dev/null
new=$(serial_of "$p/orders.crt")
for _ in $(seq 1 40); do
  served=$(served_serial)
  [ "$served" = "$new" ] && break
  sleep 0.25
done
expect_eq "served serial after rotation is the new one" "$new" "$served"
wait "$LONG"
expect_eq "a request in flight during rotation completes" 200 "$(cat "$WORK/long.code")"
code=$(h2get -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OUT_PORT/after-rotation")
expect_eq "requests after rotation succeed" 200 "$code"
printf 'not a certificate\n' >"$p/orders.crt"
check "the broken reload is reported" wait_for 15 grep -q 'certificate reload failed' "$WORK/server.err"
expect_eq "a broken certificate file keeps the last good one in force" "$new" "$(served_serial)"

stop_proxy client
stop_proxy server
finish
