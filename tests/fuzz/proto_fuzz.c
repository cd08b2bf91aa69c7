/* Fuzz target for what the agent and the proxy decode from each other:
 * gRPC messages (lib/wisp_grpc's reader) holding wisp.v1 protobufs
 * (protobuf-c unpack), and the pure code that interprets them after
 * unpack. Input: one byte choosing the message type (low 4 bits) and
 * whether the rest is a gRPC-framed stream as on the wire (bit 4) or one
 * bare message; then the bytes.
 *
 * Decoded from peers:
 *   agent  <- proxy/wispctl: SignRequest, WatchRequest,
 *             CreateJoinTokenRequest, ApplyPolicyRequest, RotateCARequest
 *   proxy  <- agent: SignResponse, Snapshot (also its --svid-cache file)
 *   wispctl <- agent: the Admin responses
 * Invariants: a message that unpacks has every string (and every repeated
 * element) non-NULL, as the handlers assume; it packs to its packed size,
 * and that packing unpacks and packs again to the same bytes. Then as the
 * handlers do: a SignRequest's CSR is checked and its join token looked
 * up; a CreateJoinTokenRequest's ID parsed and a token made with its TTL
 * (it must not be born expired); a Snapshot's destinations built into the
 * address map (every entry must then look up to its ID) and its policy
 * compiled; certificate lists decoded.
 *
 * Replayed over corpus/proto/ by //tests/fuzz:proto_fuzz_replay in the
 * normal suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <string.h>

#include <openssl/x509.h>

#include "control/agent/wisp_tokens.h"
#include "lib/wisp_ca.h"
#include "lib/wisp_grpc.h"
#include "lib/wisp_policy.h"
#include "proxy/dataplane/wisp_dests.h"
#include "tests/fuzz/fuzz.h"
#include "wisp/v1/admin.pb-c.h"
#include "wisp/v1/config.pb-c.h"
#include "wisp/v1/identity.pb-c.h"

#define FRAMED 0x10
#define MAX_MESSAGES 4         /* per input, to bound the time */
#define MAX_POLICY 16384       /* policies compiled per message (policy_fuzz does more) */
#define DEFAULT_TOKEN_TTL 3600 /* as wisp_agent.c */
#define NOW 1700000000

/* ---- generic checks through the descriptors ---- */

static void check_fields(const ProtobufCMessage *m, int depth) {
  CHECK(depth < 8);
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *at = (const char *)m + f->offset;
    bool str = f->type == PROTOBUF_C_TYPE_STRING, msg = f->type == PROTOBUF_C_TYPE_MESSAGE;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
      void *const *items = *(void *const *const *)at;
      if (n) CHECK(items != NULL);
      for (size_t k = 0; (str || msg) && k < n; k++) {
        CHECK(items[k] != NULL);
        if (msg) check_fields(items[k], depth + 1);
      }
    } else if (str) {
      CHECK(*(const char *const *)at != NULL); /* proto3: "" when absent */
    } else if (msg && *(const ProtobufCMessage *const *)at) {
      check_fields(*(const ProtobufCMessage *const *)at, depth + 1);
    }
  }
}

/* Hides (|hide|) or restores every unknown field of |m| and its
 * submessages, in the same walk order both times; |saved| holds the counts. */
typedef struct {
  unsigned *v;
  size_t n, cap;
} counts;

static void unknown_fields(ProtobufCMessage *m, counts *saved, size_t *at, bool hide) {
  if (hide) {
    if (saved->n == saved->cap) {
      saved->cap = saved->cap ? 2 * saved->cap : 8;
      saved->v = realloc(saved->v, saved->cap * sizeof(*saved->v));
      CHECK(saved->v != NULL);
    }
    saved->v[saved->n++] = m->n_unknown_fields;
    m->n_unknown_fields = 0;
  } else {
    m->n_unknown_fields = saved->v[(*at)++];
  }
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    char *at_field = (char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
      for (size_t k = 0; k < n; k++) unknown_fields((*(ProtobufCMessage ***)at_field)[k], saved, at, hide);
    } else if (*(ProtobufCMessage **)at_field) {
      unknown_fields(*(ProtobufCMessage **)at_field, saved, at, hide);
    }
  }
}

/* Unknown fields are left out: protobuf-c 1.4 keeps a field numbered 0
 * whose tag is not minimally encoded ("82 00": field 0, wire type 2), then
 * packs it as "02", which it refuses to unpack (corpus: proto/field_zero).
 * wisp never re-sends what it received, and ignores unknown fields. */
static void check_repack(ProtobufCMessage *m) {
  counts saved = {0};
  size_t at = 0;
  unknown_fields(m, &saved, &at, true);
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *a = malloc(len + 1), *b = malloc(len + 1);
  CHECK(a != NULL && b != NULL);
  CHECK(protobuf_c_message_pack(m, a) == len);
  ProtobufCMessage *again = protobuf_c_message_unpack(m->descriptor, NULL, len, a);
  CHECK(again != NULL);
  CHECK(protobuf_c_message_get_packed_size(again) == len && protobuf_c_message_pack(again, b) == len);
  CHECK(memcmp(a, b, len) == 0);
  protobuf_c_message_free_unpacked(again, NULL);
  free(a);
  free(b);
  unknown_fields(m, &saved, &at, false);
  free(saved.v);
}

/* ---- what the handlers do with them ---- */

static void certs(const ProtobufCBinaryData *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    STACK_OF(X509) *out = NULL;
    if (wisp_ca_certs_from_der(&out, items[i].data, items[i].len, NULL, 0) == WISP_OK) {
      CHECK(sk_X509_num(out) >= 1 && sk_X509_num(out) <= WISP_CA_CERTS_MAX);
      sk_X509_pop_free(out, X509_free);
    }
  }
}

static void on_sign_request(const ProtobufCMessage *m) {
  const Wisp__V1__SignRequest *req = (const Wisp__V1__SignRequest *)m;
  wisp_ca_csr_info info = {0};
  if (wisp_ca_csr_check(&info, req->csr.data, req->csr.len, NULL, 0) == WISP_OK) wisp_ca_csr_info_cleanup(&info);
  if (req->join_token[0]) {
    wisp_tokens t = {0};
    char err[256];
    CHECK(wisp_tokens_use(&t, req->join_token, "spiffe://example.org/w", NOW, err, sizeof(err)) == WISP_ERR_IDENTITY);
  }
}

static void on_create_token(const ProtobufCMessage *m) {
  const Wisp__V1__CreateJoinTokenRequest *req = (const Wisp__V1__CreateJoinTokenRequest *)m;
  wisp_spiffe_id id;
  if (wisp_spiffe_parse(&id, req->spiffe_id, strlen(req->spiffe_id), NULL, 0) != WISP_OK) return;
  int64_t ttl = req->ttl_seconds > 0 ? req->ttl_seconds : DEFAULT_TOKEN_TTL;
  wisp_tokens t = {0};
  const wisp_token *tok = NULL;
  CHECK(wisp_tokens_create(&t, &tok, id.id, NOW, ttl, req->reusable) == WISP_OK);
  CHECK(tok->expires > NOW);
  char token[WISP_TOKEN_LEN + 1];
  memcpy(token, tok->token, sizeof(token));
  CHECK(wisp_tokens_use(&t, token, id.id, NOW, NULL, 0) == WISP_OK);
  wisp_tokens_cleanup(&t);
}

static void on_snapshot(const ProtobufCMessage *m) {
  const Wisp__V1__Snapshot *snap = (const Wisp__V1__Snapshot *)m;
  wisp_policy_destination *d = calloc(snap->n_destinations + 1, sizeof(*d));
  CHECK(d != NULL);
  for (size_t i = 0; i < snap->n_destinations; i++) {
    d[i].address = snap->destinations[i]->address;
    d[i].spiffe_id = snap->destinations[i]->spiffe_id;
  }
  wisp_dests *map = NULL;
  char err[512];
  if (wisp_dests_new(&map, d, snap->n_destinations, err, sizeof(err)) == WISP_OK) {
    CHECK(wisp_dests_count(map) == snap->n_destinations);
    for (size_t i = 0; i < snap->n_destinations; i++) {
      wisp_addr a;
      CHECK(wisp_addr_parse_dest(&a, d[i].address) == WISP_OK);
      const char *id = wisp_dests_lookup(map, &a);
      CHECK(id != NULL && strcmp(id, d[i].spiffe_id) == 0);
    }
    wisp_dests_free(map);
  } else {
    CHECK(err[0] != '\0');
  }
  free(d);
  size_t ylen = strlen(snap->policy_yaml);
  if (ylen <= MAX_POLICY) {
    wisp_policy *p = NULL;
    if (wisp_policy_compile(&p, snap->policy_yaml, ylen, NULL, 0) == WISP_OK) wisp_policy_free(p);
  }
  certs(snap->bundle, snap->n_bundle);
}

static void on_sign_response(const ProtobufCMessage *m) {
  const Wisp__V1__SignResponse *resp = (const Wisp__V1__SignResponse *)m;
  certs(resp->chain, resp->n_chain);
  certs(resp->bundle, resp->n_bundle);
}

typedef struct {
  const ProtobufCMessageDescriptor *desc;
  void (*interpret)(const ProtobufCMessage *m);
} kind;

static const kind kKinds[] = {
    {&wisp__v1__sign_request__descriptor, on_sign_request},
    {&wisp__v1__watch_request__descriptor, NULL},
    {&wisp__v1__create_join_token_request__descriptor, on_create_token},
    {&wisp__v1__apply_policy_request__descriptor, NULL},
    {&wisp__v1__rotate_carequest__descriptor, NULL},
    {&wisp__v1__sign_response__descriptor, on_sign_response},
    {&wisp__v1__snapshot__descriptor, on_snapshot},
    {&wisp__v1__create_join_token_response__descriptor, NULL},
    {&wisp__v1__apply_policy_response__descriptor, NULL},
    {&wisp__v1__status_response__descriptor, NULL},
    {&wisp__v1__rotate_caresponse__descriptor, NULL},
};
#define KINDS (sizeof(kKinds) / sizeof(kKinds[0]))

static void decode(const kind *k, const uint8_t *msg, size_t len) {
  ProtobufCMessage *m = protobuf_c_message_unpack(k->desc, NULL, len, msg);
  if (!m) return;
  CHECK(m->descriptor == k->desc);
  check_fields(m, 0);
  check_repack(m);
  if (k->interpret) k->interpret(m);
  protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const kind *k = &kKinds[(data[0] & 0x0f) % KINDS];
  const uint8_t *p = data + 1;
  size_t left = size - 1;
  if (!(data[0] & FRAMED)) {
    decode(k, p, left);
    return 0;
  }
  /* As the agent's and the client's call handlers feed DATA frames. */
  wisp_grpc_reader r;
  wisp_grpc_reader_init(&r, 0);
  int n = 0;
  while (left > 0 && n < MAX_MESSAGES) {
    wisp_grpc_msg msg;
    bool has = false;
    size_t used = 0;
    if (wisp_grpc_reader_feed(&r, &msg, &has, &used, p, left) != WISP_OK) break;
    p += used;
    left -= used;
    if (has) {
      decode(k, msg.data, msg.len);
      n++;
    }
  }
  wisp_grpc_reader_cleanup(&r);
  return 0;
}
