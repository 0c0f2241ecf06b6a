/*
 * voiceclone.core: the internal interface the C files share.
 *
 * The layout: client.c, call.c (the Request in flight), job.c and model.c
 * each own one userdata type; secret.c keeps the credentials and scrubs
 * them from what comes back; gateway.c signs requests for the API gateway
 * (libcrypto); download.c starts file transfers; loop.c
 * gives the Lua scheduler and outside event loops what they wait on;
 * rules.c checks the documented rules and builds the wire payloads;
 * response.c turns answers into values or errors; transport.c and
 * buffer.c move bytes with libcurl; error.c builds the error objects.
 *
 * One source for Lua 5.1 to 5.4 and LuaJIT: the 5.3 API, through
 * lua-compat-5.3 where it is missing (compiled once, in compat.c).
 */
#ifndef VC_H
#define VC_H

#include <assert.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <curl/curl.h>

#include <lua.h>
#include <lauxlib.h>
#if LUA_VERSION_NUM < 503        /* 5.1, 5.2, LuaJIT; 5.3 and 5.4 need nothing */
#define COMPAT53_PREFIX vc_compat53
#include "compat-5.3.h"
#endif

/* Only luaopen_voiceclone_core leaves the library (-fvisibility=hidden). */
#define VC_EXPORT __attribute__((visibility("default")))

#define VC_VERSION "0.3.0"   /* the one place: the Makefile, rockspecs and specs read it */

#define VC_CLIENT  "voiceclone.Client"
#define VC_REQUEST "voiceclone.Request"
#define VC_JOB     "voiceclone.Job"
#define VC_MODEL   "voiceclone.Model"
#define VC_ERROR   "voiceclone.Error"

#define VC_PATH_JOB    "/release/job"
#define VC_PATH_MODELS "/release/music_model"

/* The service's int: the largest timeout, offset, ... it takes. */
#define VC_INT_MAX 2147483647

/* Every C function that encodes, decodes or makes records has one upvalue,
 * the module state: a table holding our own lua-cjson instance at these
 * indexes. (now, sleep, fsync, lock, error and totable need none.) */
#define VC_STATE lua_upvalueindex(1)
enum { VC_ENCODE = 1, VC_DECODE, VC_NULL, VC_STATE_SIZE = VC_NULL };
void vc_push_state(lua_State *L, int slot);   /* pushes state[slot] */

/* The stack top a function expects at a point, checked in debug builds;
 * VC_STACK_MARK (with the declarations) notes the top at entry, and
 * VC_STACK_LEFT(L, n) checks that the function left n values more. */
#define VC_STACK(L, top) assert(lua_gettop(L) == (top))
#define VC_STACK_MARK(L) const int vc_stack_mark = lua_gettop(L)
#define VC_STACK_LEFT(L, n) ((void)vc_stack_mark, VC_STACK(L, vc_stack_mark + (n)))

/* Registers funcs into the table at the top with the module state as upvalue;
 * state is its stack index (at open time) or VC_STATE (from a C function). */
void vc_setfuncs(lua_State *L, const luaL_Reg *funcs, int state);

/* ---- buffer.c: growable bytes in C memory ------------------------------ */

typedef struct vc_buffer {
    char *data;
    size_t len, cap;
} vc_buffer;

int  vc_buffer_add(vc_buffer *b, const char *s, size_t n);   /* 0 on success */
int  vc_buffer_put(void *buffer, const char *s, size_t n);   /* the same, as a vc_put */
void vc_buffer_wipe(vc_buffer *b);                           /* zero, keep memory */
void vc_buffer_free(vc_buffer *b);                           /* zero, then free */
void vc_wipe(void *p, size_t n);                             /* not optimised away */

/* ---- transport.c: HTTP exchanges on a libcurl multi handle ------------- */

typedef struct vc_transport vc_transport;   /* private to transport.c */
typedef struct vc_transfer vc_transfer;     /* one exchange; private too */
typedef struct vc_gateway vc_gateway;       /* private to gateway.c */

typedef struct vc_transport_options {
    long timeout_ms, connect_timeout_ms;
    long download_timeout_ms;                /* a whole download, start to end */
    curl_off_t max_download;                 /* bytes */
    int max_in_flight;
    int multiplex;                           /* https: share HTTP/2 connections */
    const vc_gateway *gateway;               /* signs each attempt; NULL: none. Outlives t */
} vc_transport_options;

/* How a request goes: a CreateJob is never sent on a reused connection, so
 * libcurl can never send it twice by itself. */
enum { VC_REUSE = 0, VC_FRESH_CONNECTION = 1 };

/* What an ended transfer got. */
typedef struct vc_outcome {
    CURLcode result;                         /* CURLE_OK, or why it ended early */
    long status;                             /* HTTP status; 0: none */
    int too_large;                           /* the body passed the limit */
    int write_failed;                        /* a download's file could not be written */
    const char *error;                       /* libcurl's own words */
    const char *retry_after;                 /* the Retry-After header, "" if none */
    double seconds;                          /* from the start of the exchange to its end */
    const char *body;                        /* NUL-terminated */
    size_t len;
    const struct vc_secret *secret;          /* to scrub what reaches Lua (set by call.c) */
} vc_outcome;

double vc_now(void);                         /* monotonic seconds */
/* NULL when memory ran out, or when the runtime libcurl refuses an option
 * that security depends on (*refused names it). */
vc_transport *vc_transport_new(const vc_transport_options *o, const char **refused);
/* Frees every transfer; each one still owned is first handed to orphan(owner). */
void vc_transport_free(vc_transport *t, void (*orphan)(void *owner));

/* A transfer for owner, its body buffer empty; NULL when memory ran out. */
vc_transfer *vc_transport_acquire(vc_transport *t, void *owner);
vc_buffer *vc_transfer_body(vc_transfer *x);
void vc_transport_post(vc_transport *t, vc_transfer *x, CURLU *url, int how);   /* POST the body */
/* GET url into sink (which x owns from here), signed for the gateway if
 * sign (and then no redirect is followed); -1: out of memory, nothing taken. */
int  vc_transport_get(vc_transport *t, vc_transfer *x, const char *url, FILE *sink, int sign);
int  vc_transfer_done(const vc_transfer *x);
void vc_transfer_outcome(const vc_transfer *x, vc_outcome *out);
int  vc_transfer_close_sink(vc_transfer *x);   /* 0, or -1 if the file failed */
struct vc_secret;
void vc_transfer_scrub(vc_transfer *x, const struct vc_secret *secret);   /* the answer, in place */
/* Stops x if it is still running, wipes it and takes it back (a detached one too). */
void vc_transport_recycle(vc_transport *t, vc_transfer *x);
/* An ended x leaves the transport, which will neither free nor orphan it:
 * its owner reads it, then recycles it or, once the transport is gone, frees it. */
void vc_transfer_detach(vc_transport *t, vc_transfer *x);
void vc_transfer_free(vc_transfer *x);

/* Waits up to `wait` seconds for the sockets or the timer, then lets libcurl act. */
void vc_transport_drive(vc_transport *t, double wait);
int   vc_transport_finished(const vc_transport *t);  /* ended since the last take */
void *vc_transport_take_finished(vc_transport *t);   /* the owner of one of them, or NULL */
double vc_transport_due(const vc_transport *t);      /* seconds until a drive is due, -1: none */
int   vc_transport_sockets(const vc_transport *t, const struct pollfd **sockets);

/* ---- secret.c: the credentials, kept in C memory only ------------------ */

typedef struct vc_secret vc_secret;          /* reference-counted, wiped when freed */

/* gateway_key: the API gateway's key, scrubbed too (NULL: none). */
vc_secret *vc_secret_new(const char *id, size_t id_len, const char *key, size_t key_len,
                         const char *gateway_key, size_t gateway_key_len);
vc_secret *vc_secret_ref(vc_secret *s);
void vc_secret_unref(vc_secret *s);          /* NULL is fine */
/* ,"secretId":"..","secretKey":"..",  : what every body carries */
const char *vc_secret_envelope(const vc_secret *s, size_t *len);
/* Replaces the string at the top with a copy where each form of the key reads "***". */
void vc_secret_scrub(lua_State *L, const vc_secret *s);
/* The same on C memory, in place, before any of it becomes a Lua string. */
void vc_secret_scrub_bytes(const vc_secret *s, char *text, size_t *len);
size_t vc_secret_longest_form(const vc_secret *s);

/* ---- gateway.c: the API gateway's key-pair signature (libcrypto) ------- */

#define VC_SIGNATURE_SIZE 29                 /* Base64 of a SHA-1 HMAC, and its NUL */

/* The gateway option of new, checked: pointers into Lua strings on the stack. */
typedef struct vc_gateway_spec {
    const char *id, *key, *source;
    size_t key_len;
} vc_gateway_spec;

/* With the gateway table at idx: pushes three values and returns 0, or
 * pushes nil, err ("invalid") and returns 2. */
int vc_gateway_check(lua_State *L, int idx, vc_gateway_spec *spec);
vc_gateway *vc_gateway_new(const char *id, const char *key, size_t key_len, const char *source);
void vc_gateway_free(vc_gateway *g);         /* wipes the key; NULL is fine */
/* A copy of base (may be NULL) with X-Date (now), Source and Authorization
 * added; NULL if out of memory. */
struct curl_slist *vc_gateway_sign(const vc_gateway *g, const struct curl_slist *base);
int vc_gateway_same_origin(const char *endpoint, const char *url);
int vc_hmac_sha1_base64(const char *key, size_t key_len, const char *message, size_t len,
                        char out[VC_SIGNATURE_SIZE]);
void vc_gateway_open(lua_State *L, int state);

/* ---- client.c ---------------------------------------------------------- */

typedef struct vc_client vc_client;

vc_client *vc_client_check(lua_State *L, int idx);   /* raises if closed */
vc_transport *vc_client_transport(vc_client *c);
vc_secret *vc_client_secret(vc_client *c);
CURLU *vc_client_route(vc_client *c, const char *path);   /* NULL: out of memory */
/* Whether a download of url carries the gateway's signature: only one to
 * the endpoint's own scheme, host and port, of a client with a gateway. */
int vc_client_signs(vc_client *c, const char *url);
/* Pushes the client's table of Lua-side state (created by new). */
void vc_client_push_table(lua_State *L, int idx);

/* ---- call.c: the Request, one exchange in flight ----------------------- */

/* One kind of exchange: an API call (where it goes, and how its answer
 * becomes results) or, with no path, a download. finish runs with the
 * Request at 1, its client at 2, what the call was about (the job of a
 * refresh, the URL of a download) at 3; for an API call the decoded body
 * and its response object are at the top. It returns the number of results. */
typedef struct vc_call {
    const char *path, *action, *payload_key, *response_key;
    int (*finish)(lua_State *L, const struct vc_call *call, const vc_outcome *o);
    int how;                                 /* VC_REUSE or VC_FRESH_CONNECTION */
} vc_call;

/* With the payload (a wire table, or its JSON text) at the top: starts the
 * call and pushes its Request (returns 1), or nil and an error (2). The
 * value at about_idx (0: none) is kept for finish. */
int vc_call_start(lua_State *L, int client_idx, const vc_call *call, int about_idx);
/* Starts a download of the URL at url_idx into a temporary file beside
 * dest (made here); pushes its Request, or nil and an error. */
int vc_call_start_download(lua_State *L, int client_idx, const vc_call *call, int url_idx,
                           const char *dest);
void vc_call_orphan(void *request);          /* its client is being closed */
void vc_call_open(lua_State *L, int state);

/* ---- error.c ----------------------------------------------------------- */

void vc_error_open(lua_State *L);
void vc_error_push(lua_State *L, const char *kind, const char *message);
int  vc_fail(lua_State *L, const char *kind, const char *field, const char *fmt, ...);
void vc_error_set_string(lua_State *L, const char *key, const char *value);
void vc_error_set_integer(lua_State *L, const char *key, lua_Integer value);
void vc_error_set_boolean(lua_State *L, const char *key, int value);

/* ---- rules.c: each returns 1 with the payload (a wire table, or its JSON
 * text) pushed, or 2 (nil, err) ----------------------------------------- */

typedef int (*vc_put)(void *sink, const char *p, size_t n);   /* 0: stored */
int vc_json_string(const char *s, size_t len, vc_put put, void *sink);
int vc_rules_create_job(lua_State *L, int idx);
int vc_rules_job_id(lua_State *L, int idx);
int vc_rules_custom_id(lua_State *L, int idx);
int vc_rules_list_models(lua_State *L, int offset_idx, int limit_idx);

/* ---- response.c -------------------------------------------------------- */

/* With the body string at the top: pushes the decoded body and its
 * response_key object and returns 0, or pushes nil, err and returns 2. */
int  vc_response_decode(lua_State *L, const vc_secret *secret, const vc_outcome *o,
                        const char *response_key);
int  vc_response_table(lua_State *L, const vc_outcome *o, const char *where, const char *key);
int  vc_response_fail(lua_State *L, const vc_outcome *o, int root, const char *fmt, ...);
void vc_response_http_details(lua_State *L, const vc_outcome *o);   /* status, retryable, retry_after */
const char *vc_response_kind(long status);   /* of a non-2xx answer: "auth" (401, 403) or "http" */
void vc_response_normalize(lua_State *L, int idx, int depth);
int  vc_response_transport_error(lua_State *L, const vc_outcome *o);
long vc_utf8_length(const char *s, size_t len);   /* -1 if invalid */

/* ---- record.c: userdata whose fields are the API's data ---------------- */

/* A record's user value is a table: [1] its data, [2] what else it keeps. */
enum { VC_RECORD_DATA = 1, VC_RECORD_EXTRA = 2 };
void vc_record_push(lua_State *L, const char *type, int data_idx);
void vc_record_get(lua_State *L, int idx, int slot);    /* pushes uservalue[slot] */
void vc_record_set(lua_State *L, int idx, int slot);    /* pops into uservalue[slot] */
void vc_record_open(lua_State *L, const char *type, const luaL_Reg *meta,
                    const char *module_field, int state);
void vc_record_functions(lua_State *L);   /* core.totable */

/* ---- job.c, model.c, client.c, download.c, loop.c ---------------------- */

void vc_job_open(lua_State *L, int state);
void vc_job_push(lua_State *L, int client_idx, int data_idx);
void vc_model_open(lua_State *L, int state);
void vc_model_push(lua_State *L, int data_idx);
void vc_client_open(lua_State *L, int state);
void vc_download_open(lua_State *L, int state);
void vc_loop_open(lua_State *L, int state);

#endif
