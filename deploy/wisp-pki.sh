#!/usr/bin/env bash
# wisp-pki.sh - a tiny file-based PKI for wisp tests, the demo, and VM users
# who run wisp-proxy with --cert/--key/--bundle and no wisp-agent.
#
# Uses only the openssl(1) CLI (OpenSSL 3.x). See `wisp-pki.sh --help`.
set -euo pipefail

PROG=${0##*/}

usage() {
	cat <<EOF
Usage:
  $PROG ca OUTDIR [--cn NAME] [--days N] [--force]
      Create an ECDSA P-256 self-signed root CA: OUTDIR/ca.crt, OUTDIR/ca.key (0600).
      Extensions: basicConstraints critical CA:true; keyUsage critical
      keyCertSign,cRLSign; subjectKeyIdentifier.
      --cn NAME     subject CN (default "wisp test root CA")
      --days N      validity in days (default 3650)
      --force       overwrite an existing OUTDIR/ca.key

  $PROG svid CA_DIR OUTPREFIX SPIFFE_ID [options]
      Issue an X.509-SVID: OUTPREFIX.crt and OUTPREFIX.key (0600). ECDSA P-256
      key; exactly one URI SAN = SPIFFE_ID; basicConstraints critical CA:false;
      keyUsage critical digitalSignature; extKeyUsage serverAuth,clientAuth;
      subjectKeyIdentifier, authorityKeyIdentifier; random serial (openssl ca -rand_serial).
      notBefore is backdated 60 s to tolerate clock skew. Files are replaced
      atomically (key first, then cert), so a proxy watching them for reload
      never reads a half-written file.
      --days N          validity in days (default 1)
      --seconds N       validity in seconds (overrides --days; short-lived SVIDs)
      --expired         notBefore = now-3d, notAfter = now-1d
      --not-yet-valid   notBefore = now+1d, notAfter = now+2d
      --self-signed     sign with its own key (CA_DIR is ignored; may be "-")
      --no-validate     skip the SPIFFE ID syntax check (negative tests only)
      --extra-uri URI   add another URI SAN, repeatable (negative tests only:
                        breaks the one-URI-SAN rule on purpose)

  $PROG bundle OUT CA_DIR|CERT_FILE...
      Concatenate CA_DIR/ca.crt (or every certificate in a given PEM file) of
      each argument into OUT, a trust bundle holding several roots (CA rotation).

  $PROG --help

SPIFFE IDs must look like spiffe://TRUST-DOMAIN/path (trust domain:
[a-z0-9._-]; path segments: [A-Za-z0-9._-], not "." or "..", no trailing "/").

Examples:
  $PROG ca /tmp/pki/ca
  $PROG svid /tmp/pki/ca /tmp/pki/frontend spiffe://shop.local/ns/shop/sa/frontend
  $PROG svid /tmp/pki/ca /tmp/pki/old spiffe://shop.local/ns/shop/sa/old --expired
  $PROG bundle /tmp/pki/bundle.pem /tmp/pki/ca /tmp/pki/ca2
EOF
}

die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

need_arg() { # need_arg OPTION "$#"
	[[ $2 -ge 2 ]] || die "option $1 needs a value"
}

is_posint() { [[ $1 =~ ^[0-9]{1,9}$ ]] && ((10#$1 >= 1)); }

command -v openssl >/dev/null 2>&1 || die "openssl not found in PATH"

TMPDIR_PKI=
cleanup() { [[ -n $TMPDIR_PKI ]] && rm -rf -- "$TMPDIR_PKI"; }
trap cleanup EXIT

mk_tmp() { # mk_tmp [DIR]: private temp dir (in DIR if given, for atomic renames)
	if [[ $# -ge 1 ]]; then
		TMPDIR_PKI=$(mktemp -d "$1/.wisp-pki.XXXXXX")
	else
		TMPDIR_PKI=$(mktemp -d "${TMPDIR:-/tmp}/wisp-pki.XXXXXX")
	fi
	chmod 700 "$TMPDIR_PKI"
}

# Run openssl quietly; on failure show its output and die.
ossl() {
	local out
	if ! out=$(openssl "$@" 2>&1); then
		echo "$out" >&2
		die "openssl $1 failed"
	fi
}

gen_key() { # gen_key FILE : ECDSA P-256 key, PKCS#8 PEM, mode 0600
	(umask 077 && ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-pkeyopt ec_param_enc:named_curve -out "$1")
	chmod 600 "$1"
}

# openssl ca wants YYMMDDHHMMSSZ (UTCTime, fine until 2049).
asn1_time() { # asn1_time EPOCH_SECONDS
	date -u -d "@$1" +%y%m%d%H%M%SZ
}

validate_spiffe_id() {
	local id=$1 rest td path seg
	[[ ${#id} -le 2048 ]] || die "SPIFFE ID longer than 2048 bytes"
	[[ $id == spiffe://* ]] || die "invalid SPIFFE ID '$id': must start with spiffe:// (want spiffe://TRUST-DOMAIN/path)"
	rest=${id#spiffe://}
	td=${rest%%/*}
	[[ -n $td ]] || die "invalid SPIFFE ID '$id': empty trust domain"
	[[ $td =~ ^[a-z0-9._-]+$ ]] || die "invalid SPIFFE ID '$id': trust domain '$td' may only hold lowercase letters, digits, '.', '-', '_' (no port, user info or upper case)"
	[[ $rest == */* ]] || die "invalid SPIFFE ID '$id': no path (want spiffe://$td/path)"
	path=${rest#*/}
	[[ -n $path ]] || die "invalid SPIFFE ID '$id': empty path"
	[[ $path != */ ]] || die "invalid SPIFFE ID '$id': trailing '/'"
	local IFS=/
	for seg in $path; do
		[[ -n $seg ]] || die "invalid SPIFFE ID '$id': empty path segment"
		[[ $seg != . && $seg != .. ]] || die "invalid SPIFFE ID '$id': '.' and '..' path segments are not allowed"
		[[ $seg =~ ^[A-Za-z0-9._-]+$ ]] || die "invalid SPIFFE ID '$id': path segment '$seg' may only hold letters, digits, '.', '-', '_' (no query, fragment or percent-encoding)"
	done
}

cmd_ca() {
	[[ $# -ge 1 && $1 != -* ]] || die "usage: $PROG ca OUTDIR [--cn NAME] [--days N] [--force]"
	local outdir=$1 cn="wisp test root CA" days=3650 force=0
	shift
	while [[ $# -gt 0 ]]; do
		case $1 in
		--cn) need_arg "$1" $#; cn=$2; shift 2 ;;
		--days) need_arg "$1" $#; days=$2; shift 2 ;;
		--force) force=1; shift ;;
		-h | --help) usage; exit 0 ;;
		*) die "ca: unknown argument '$1'" ;;
		esac
	done
	is_posint "$days" || die "--days must be a positive integer, got '$days'"
	days=$((10#$days))
	[[ -n $cn ]] || die "--cn must not be empty"
	[[ ${#cn} -le 64 ]] || die "--cn longer than 64 characters"
	mkdir -p -- "$outdir"
	if [[ -e $outdir/ca.key && $force -ne 1 ]]; then
		die "$outdir/ca.key already exists (use --force to overwrite)"
	fi
	mk_tmp "$outdir"
	local t=$TMPDIR_PKI
	cat >"$t/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
	gen_key "$t/ca.key"
	# Escape '/' and '=' in the CN for -subj.
	local subj_cn=${cn//\\/\\\\}
	subj_cn=${subj_cn//\//\\/}
	subj_cn=${subj_cn//=/\\=}
	ossl req -new -x509 -config "$t/ca.cnf" -extensions v3_ca -key "$t/ca.key" \
		-sha256 -days "$days" -set_serial "0x$(openssl rand -hex 16 | sed 's/^./7/')" \
		-subj "/O=wisp/CN=$subj_cn" -out "$t/ca.crt"
	mv -f -- "$t/ca.key" "$outdir/ca.key"
	mv -f -- "$t/ca.crt" "$outdir/ca.crt"
	echo "wrote $outdir/ca.crt $outdir/ca.key"
}

cmd_svid() {
	[[ $# -ge 3 ]] || die "usage: $PROG svid CA_DIR OUTPREFIX SPIFFE_ID [--days N] [--seconds N] [--expired] [--not-yet-valid] [--self-signed]"
	local cadir=$1 prefix=$2 id=$3
	shift 3
	local days=1 seconds='' expired=0 future=0 selfsigned=0 validate=1
	local -a extra_uris=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		--days) need_arg "$1" $#; days=$2; shift 2 ;;
		--seconds) need_arg "$1" $#; seconds=$2; shift 2 ;;
		--expired) expired=1; shift ;;
		--not-yet-valid) future=1; shift ;;
		--self-signed) selfsigned=1; shift ;;
		--no-validate) validate=0; shift ;;
		--extra-uri) need_arg "$1" $#; extra_uris+=("$2"); shift 2 ;;
		-h | --help) usage; exit 0 ;;
		*) die "svid: unknown argument '$1'" ;;
		esac
	done
	[[ -n $prefix ]] || die "OUTPREFIX must not be empty"
	if [[ $validate -eq 1 ]]; then validate_spiffe_id "$id"; fi
	[[ $id != *,* ]] || die "SPIFFE ID must not contain ','"
	local u
	for u in "${extra_uris[@]}"; do [[ $u != *,* ]] || die "--extra-uri must not contain ','"; done
	is_posint "$days" || die "--days must be a positive integer, got '$days'"
	days=$((10#$days))
	if [[ -n $seconds ]]; then
		is_posint "$seconds" || die "--seconds must be a positive integer, got '$seconds'"
	fi
	[[ $((expired + future)) -le 1 ]] || die "--expired and --not-yet-valid are mutually exclusive"
	if [[ $selfsigned -eq 0 ]]; then
		[[ -f $cadir/ca.crt ]] || die "CA certificate $cadir/ca.crt not found (create one with: $PROG ca $cadir)"
		[[ -f $cadir/ca.key ]] || die "CA key $cadir/ca.key not found"
	fi

	local now nb na
	now=$(date -u +%s)
	if [[ $expired -eq 1 ]]; then
		nb=$((now - 3 * 86400)); na=$((now - 86400))
	elif [[ $future -eq 1 ]]; then
		nb=$((now + 86400)); na=$((now + 2 * 86400))
	elif [[ -n $seconds ]]; then
		nb=$((now - 60)); na=$((now + 10#$seconds))
	else
		nb=$((now - 60)); na=$((now + 10#$days * 86400))
	fi

	local outdir
	outdir=$(dirname -- "$prefix")
	mkdir -p -- "$outdir"
	mk_tmp "$outdir"
	local t=$TMPDIR_PKI

	# Subject: X.509-SVID identity lives in the URI SAN only; the CN is cosmetic.
	local cn=${id##*/}
	cn=${cn:0:64}
	[[ -n $cn ]] || cn=svid
	local san="URI:$id"
	for u in "${extra_uris[@]}"; do san+=",URI:$u"; done

	touch "$t/index.txt"
	# Values come in through the environment so that IDs are never subject to
	# shell or config-file expansion.
	export WISP_PKI_DIR=$t WISP_PKI_SAN=$san
	cat >"$t/ca.cnf" <<'EOF'
[ca]
default_ca = wisp_ca
[wisp_ca]
dir = ${ENV::WISP_PKI_DIR}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[policy_any]
organizationName = optional
commonName = optional
[req]
distinguished_name = dn
prompt = no
[dn]
[svid]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = ${ENV::WISP_PKI_SAN}
EOF

	gen_key "$t/svid.key"
	ossl req -new -config "$t/ca.cnf" -key "$t/svid.key" -subj "/O=wisp/CN=${cn}" -out "$t/svid.csr"

	local -a signargs
	if [[ $selfsigned -eq 1 ]]; then
		signargs=(-selfsign -keyfile "$t/svid.key")
	else
		signargs=(-cert "$cadir/ca.crt" -keyfile "$cadir/ca.key")
	fi
	ossl ca -batch -config "$t/ca.cnf" -extensions svid -notext -rand_serial \
		-startdate "$(asn1_time "$nb")" -enddate "$(asn1_time "$na")" \
		"${signargs[@]}" -in "$t/svid.csr" -out "$t/svid.crt"

	if [[ $selfsigned -eq 0 && $expired -eq 0 && $future -eq 0 ]]; then
		# Sanity check; catches e.g. a CA key that does not match ca.crt.
		ossl verify -CAfile "$cadir/ca.crt" -purpose sslclient "$t/svid.crt"
	fi
	mv -f -- "$t/svid.key" "$prefix.key"
	mv -f -- "$t/svid.crt" "$prefix.crt"
	echo "wrote $prefix.crt $prefix.key ($id)"
}

cmd_bundle() {
	[[ $# -ge 2 ]] || die "usage: $PROG bundle OUT CA_DIR..."
	local out=$1 arg f n
	shift
	local outdir
	outdir=$(dirname -- "$out")
	mkdir -p -- "$outdir"
	mk_tmp "$outdir"
	: >"$TMPDIR_PKI/bundle.pem"
	for arg in "$@"; do
		if [[ -d $arg ]]; then f=$arg/ca.crt; else f=$arg; fi
		[[ -f $f ]] || die "no CA certificate at $f"
		openssl x509 -in "$f" -noout 2>/dev/null || die "$f is not a PEM certificate"
		# Copy every certificate block (an input may itself be a bundle),
		# dropping any text dump around them.
		awk '/^-----BEGIN CERTIFICATE-----/{p=1} p{print} /^-----END CERTIFICATE-----/{p=0}' \
			"$f" >>"$TMPDIR_PKI/bundle.pem"
	done
	openssl crl2pkcs7 -nocrl -certfile "$TMPDIR_PKI/bundle.pem" -out /dev/null 2>/dev/null ||
		die "could not parse the resulting bundle"
	n=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$TMPDIR_PKI/bundle.pem")
	chmod 644 "$TMPDIR_PKI/bundle.pem"
	mv -f -- "$TMPDIR_PKI/bundle.pem" "$out"
	echo "wrote $out ($n certificate(s))"
}

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
cmd=$1
shift
case $cmd in
ca) cmd_ca "$@" ;;
svid) cmd_svid "$@" ;;
bundle) cmd_bundle "$@" ;;
-h | --help | help) usage ;;
*) echo "$PROG: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
esac
