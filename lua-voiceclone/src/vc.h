/*
 * voiceclone.core: internal interface shared by the C files.
 *
 * The split: client.c, job.c and model.c each own one userdata type;
 * request.c checks the documented rules and builds the wire tables;
 * response.c turns HTTP answers into Lua values or errors; transport.c
 * moves bytes with libcurl; error.c builds the error objects.
 *
 * Every C function of the module has the same three upvalues: the
 * module's own lua-cjson instance (see VC_UPVALUES).
 */
#ifndef VC_H
#define VC_H

#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <curl/curl.h>
#include <lua.h>
#include <lauxlib.h>

/* Only luaopen_voiceclone_core leaves the library (-fvisibility=hidden). */
#define VC_EXPORT __attribute__((visibility("default")))

#define VC_VERSION "0.2.0"

#define VC_CLIENT "voiceclone.Client"
#define VC_JOB    "voiceclone.Job"
#define VC_MODEL  "voiceclone.Model"
#define VC_ERROR  "voiceclone.Error"

/* Upvalues of every function: our own cjson.safe instance. */
#define VC_UPVALUES  3
#define VC_ENCODE    lua_upvalueindex(1)
#define VC_DECODE    lua_upvalueindex(2)
#define VC_NULL      lua_upvalueindex(3)

#define VC_PATH_JOB    "/release/job"
#define VC_PATH_MODELS "/release/music_model"

/* A growable byte buffer in C memory, owned by whatever embeds it. */
typedef struct vc_buffer {
    char *data;
    size_t len, cap;
} vc_buffer;

int  vc_buffer_add(vc_buffer *b, const char *s, size_t n); /* 0 on success */
void vc_buffer_wipe(vc_buffer *b);                          /* zero, keep memory */
void vc_buffer_free(vc_buffer *b);

/* One HTTP exchange: an easy handle and its buffers, owned by a client. */
typedef struct vc_transfer {
    CURL *easy;
    vc_buffer request;           /* the body sent: holds the credentials */
    vc_buffer response;          /* NUL-terminated once done */
    char errbuf[CURL_ERROR_SIZE];
    CURLcode result;
    long status;
    int busy;                    /* handed out, not yet recycled */
    int in_multi, done, too_large;
    int in_task;                 /* a task waits on it */
    int queued;                  /* in t->finished, not yet handed to the scheduler */
    const struct vc_call *call;  /* what to make of the answer */
    struct vc_transfer *next_idle;     /* in t->idle while not busy */
    struct vc_transfer *next_finished; /* in t->finished: done, its task to resume */
    struct vc_transfer *next_pending;  /* in t->pending: not handed to libcurl yet */
    FILE *sink;                  /* a download's file, else the body goes to response */
    int write_failed;
    struct vc_transfer *next;
} vc_transfer;

/* Owns every transfer it hands out, busy or idle, so a Lua error raised
 * while one is in use leaks nothing: the client's release frees them all. */
typedef struct vc_transport {
    CURLM *multi;
    struct curl_slist *headers;
    vc_transfer *transfers;      /* all of them; idle ones keep their easy handles warm */
    vc_transfer *idle;           /* the ones free for the next request */
    vc_transfer *finished;       /* tasks' transfers done since the last vc_transport_finished, */
    vc_transfer *finished_last;  /* in the order they ended */
    vc_transfer *pending, *pending_last;   /* started, for the next drive to hand over */
    int in_flight, max_in_flight; /* requests started and not ended */
    struct pollfd *sockets;      /* what libcurl wants watched */
    struct pollfd *ready;        /* scratch: the ones poll found ready */
    int nsockets, sockets_cap;
    double timer_due;            /* vc_now() when libcurl wants a timeout action; -1: none */
    int multiplex;               /* https: requests may share an HTTP/2 connection */
    long timeout_ms, connect_timeout_ms;
} vc_transport;

/* transport.c */
double vc_now(void);             /* monotonic seconds */
int  vc_transport_init(vc_transport *t, long timeout_ms, long connect_timeout_ms,
                       int max_in_flight, int multiplex);
void vc_transport_release(vc_transport *t);
int  vc_transport_full(const vc_transport *t);
vc_transfer *vc_transport_acquire(vc_transport *t);
void vc_transport_recycle(vc_transport *t, vc_transfer *x);   /* response stays readable */
vc_transfer *vc_transport_finished(vc_transport *t);   /* takes the list */
void vc_transport_start(vc_transport *t, vc_transfer *x, CURLU *url);     /* POST x->request */
void vc_transport_get(vc_transport *t, vc_transfer *x, const char *url);   /* GET into x->sink */
void vc_transport_drive(vc_transport *t, double wait);
void vc_transport_wait(vc_transport *t, vc_transfer *x);

/* The client as the other files see it (client.c owns it). */
#define VC_ROUTES 2              /* the API's paths: /release/job, /release/music_model */

typedef struct vc_client {
    vc_transport transport;
    char *endpoint;              /* no trailing slash */
    CURLU *routes[VC_ROUTES];    /* endpoint + path, parsed once */
    const char *route_paths[VC_ROUTES];
    char *secret_id;             /* as given */
    char *envelope;              /* ,"secretId":"..","secretKey":"..", JSON-escaped */
    size_t envelope_len;
    char *secret_key;            /* kept only to scrub it from messages, */
    char *secret_key_json;       /* as is and as a JSON string holds it */
    int reading;                 /* calls reading their answer: a close waits for them */
    int open;
} vc_client;

vc_client *vc_client_check(lua_State *L, int idx);   /* raises if closed */

/* One API call: where it goes, and how its answer becomes results. finish
 * runs with the decoded body and its response object at the top of the
 * calling function's own stack, and returns the number of results. */
typedef struct vc_call {
    const char *path, *action, *payload_key, *response_key;
    int (*finish)(lua_State *L, const struct vc_call *call);
} vc_call;

/* Sends {"action":..., credentials, <payload_key>: <payload at top>}. Outside
 * a task it blocks; inside one it yields until the answer is in. Returns
 * what call->finish returns, or nil and an error. */
int vc_client_call(lua_State *L, int client_idx, const vc_call *call);
void vc_client_scrub(lua_State *L, const vc_client *c);   /* top string */

/* error.c */
void vc_error_open(lua_State *L);
void vc_error_push(lua_State *L, const char *kind, const char *message);
int  vc_fail(lua_State *L, const char *kind, const char *field, const char *fmt, ...);
void vc_error_set_string(lua_State *L, const char *key, const char *value);
void vc_error_set_integer(lua_State *L, const char *key, lua_Integer value);
void vc_error_set_boolean(lua_State *L, const char *key, int value);

/* request.c: each returns 1 with the wire table (or its JSON text) pushed,
 * or 2 (nil, err). */
typedef int (*vc_put)(void *sink, const char *p, size_t n);   /* 0: stored */
int vc_json_string(const char *s, size_t len, vc_put put, void *sink);
int vc_request_create_job(lua_State *L, int idx);
int vc_request_job_id(lua_State *L, int idx);
int vc_request_custom_id(lua_State *L, int idx);
int vc_request_list_models(lua_State *L, int offset_idx, int limit_idx);

/* response.c */
int  vc_response_decode(lua_State *L, const vc_client *c, vc_transfer *x,
                        const char *response_key);       /* as vc_client_call */
int  vc_response_table(lua_State *L, const char *where, const char *key);
int  vc_response_fail(lua_State *L, int root, const char *fmt, ...);
void vc_response_normalize(lua_State *L, int idx, int depth);
int  vc_response_transport_error(lua_State *L, const vc_transfer *x);
long vc_utf8_length(const char *s, size_t len);   /* -1 if invalid */

/* record.c: userdata whose fields are the API's data (user value 1) */
#define VC_UV_DATA 1
void vc_record_push(lua_State *L, const char *type, int data_idx, int extra);
void vc_record_open(lua_State *L, const char *type, const luaL_Reg *meta,
                    const luaL_Reg *methods, const char *module_field);

/* job.c, model.c */
void vc_job_open(lua_State *L);
void vc_job_push(lua_State *L, int client_idx, int data_idx);
void vc_model_open(lua_State *L);
void vc_model_push(lua_State *L, int data_idx);

/* client.c */
void vc_client_open(lua_State *L);

/* Registers funcs with the shared upvalues, copied from the calling C
 * function's own upvalues (or from the given stack slots at open time). */
void vc_setfuncs(lua_State *L, const luaL_Reg *funcs, int upvalues_from);

#endif
