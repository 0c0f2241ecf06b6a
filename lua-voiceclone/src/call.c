/*
 * voiceclone.Request: one exchange in flight, born when it starts. It owns
 * its transfer: request:finish() turns the answer into results,
 * request:cancel() (and __gc, and __close) abandons it at once, wiping the
 * body that holds the key. C never waits for it: the Lua layer yields or
 * drives the transport (loop.c) until request:done().
 *
 * The four API calls (core.create_job, get_job, list_jobs, list_models, and
 * refresh for job:refresh) check their arguments, then start a Request.
 *
 * A Request's user value is a table: [1] its client, [2] what the call is
 * about (a refreshed job, a download's URL). Each running Request is also
 * in its client's table under `requests` (weak values), so that a drive can
 * hand the scheduler the Requests that ended.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vc.h"

/* FINISHING: finish() is reading the answer; a cancel from a finalizer then waits. */
typedef enum { RUNNING, FINISHING, FINISHED, CANCELED, CLOSED } request_state;

typedef struct vc_request {
    request_state state;
    vc_transfer *x;              /* while RUNNING, and while finish reads it */
    vc_transport *transport;     /* x's; NULL once finish has detached x */
    vc_secret *secret;           /* a reference while RUNNING or being finished */
    const vc_call *call;
    char *file;                  /* a download's temporary file: removed unless renamed */
    char *dest;                  /* where it goes once whole */
    long status;                 /* once finished: for request:info() */
    double seconds;
} vc_request;

/* ---- lifetime ---------------------------------------------------------- */

/* Gives back what the request holds; state says why. Idempotent, never raises. */
static void request_release(vc_request *r, request_state state) {
    if (r->x && r->transport) vc_transport_recycle(r->transport, r->x);   /* closes its file */
    else if (r->x) vc_transfer_free(r->x);
    r->x = NULL;
    r->transport = NULL;
    vc_secret_unref(r->secret);
    r->secret = NULL;
    if (r->file) remove(r->file);   /* canceled, closed, failed: no .part left */
    free(r->file);
    free(r->dest);
    r->file = r->dest = NULL;
    if (r->state == RUNNING || r->state == FINISHING) r->state = state;
}

void vc_call_orphan(void *request) {
    vc_request *r = request;
    r->x = NULL;                 /* the transport frees it */
    request_release(r, CLOSED);
}

static void forget(lua_State *L, vc_request *r) {   /* stack: request, client, ... */
    vc_client_push_table(L, 2);
    if (lua_getfield(L, -1, "requests") == LUA_TTABLE) {
        lua_pushnil(L);
        lua_rawsetp(L, -2, r);
    }
    lua_pop(L, 2);
}

/* After finish read x: back to its client's transport, or freed if the
 * client was closed meanwhile. Stack: request, client, ... */
static void give_back(lua_State *L, vc_request *r) {
    vc_transport *t = vc_client_transport(luaL_checkudata(L, 2, VC_CLIENT));
    if (t) vc_transport_recycle(t, r->x);
    else vc_transfer_free(r->x);
    r->x = NULL;
}

static int request_gc(lua_State *L) {
    request_release(luaL_checkudata(L, 1, VC_REQUEST), CANCELED);
    return 0;
}

/* request:cancel(): abandons the exchange now; finish() then gives a
 * "canceled" error. */
static int request_cancel(lua_State *L) {
    vc_request *r = luaL_checkudata(L, 1, VC_REQUEST);
    lua_settop(L, 1);
    lua_getuservalue(L, 1);
    lua_rawgeti(L, 2, 1);
    lua_replace(L, 2);           /* request, client */
    if (r->state == FINISHING) return 0;   /* from a finalizer run by finish itself */
    if (r->state == RUNNING) forget(L, r);
    request_release(r, CANCELED);
    return 0;
}

/* ---- starting ---------------------------------------------------------- */

/* Pushes a new RUNNING Request of the client, holding nothing yet, listed
 * in the client's requests. */
static vc_request *push_request(lua_State *L, int client_idx, int about_idx) {
    vc_request *r = lua_newuserdata(L, sizeof *r);
    memset(r, 0, sizeof *r);
    r->state = CANCELED;         /* harmless to its finalizer until it holds something */
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, client_idx);
    lua_rawseti(L, -2, 1);
    if (about_idx) {
        lua_pushvalue(L, about_idx);
        lua_rawseti(L, -2, 2);
    }
    lua_setuservalue(L, -2);
    luaL_setmetatable(L, VC_REQUEST);
    vc_client_push_table(L, client_idx);
    if (lua_getfield(L, -1, "requests") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "v");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "requests");
    }
    lua_pushvalue(L, -3);
    lua_rawsetp(L, -2, r);
    lua_pop(L, 2);
    return r;
}

/* After the Lua allocations of a start (any of which may run a finalizer
 * that closes the client): the client's transport, or a raise. */
static vc_transport *transport_now(lua_State *L, int client_idx) {
    return vc_client_transport(vc_client_check(L, client_idx));
}

static void hold(vc_request *r, vc_client *c, vc_transfer *x, const vc_call *call) {
    r->state = RUNNING;
    r->x = x;
    r->transport = vc_client_transport(c);
    r->secret = vc_secret_ref(vc_client_secret(c));
    r->call = call;
}

/* {"action":"X","secretId":..,"secretKey":..,"<payload_key>":<json>} into b. */
static int fill_body(vc_buffer *b, const vc_call *call, const vc_secret *secret,
                     const char *json, size_t json_len) {
    size_t envelope_len;
    const char *envelope = vc_secret_envelope(secret, &envelope_len);
    return vc_buffer_add(b, "{\"action\":\"", 11) ||
           vc_buffer_add(b, call->action, strlen(call->action)) ||
           vc_buffer_add(b, "\"", 1) || vc_buffer_add(b, envelope, envelope_len) ||
           vc_buffer_add(b, "\"", 1) ||
           vc_buffer_add(b, call->payload_key, strlen(call->payload_key)) ||
           vc_buffer_add(b, "\":", 2) || vc_buffer_add(b, json, json_len) ||
           vc_buffer_add(b, "}", 1);
}

/* Nothing was sent: the caller may try again once memory is freed. */
static int out_of_memory(lua_State *L) {
    return vc_fail(L, "memory", NULL, "not enough memory for a request");
}

int vc_call_start(lua_State *L, int client_idx, const vc_call *call, int about_idx) {
    vc_client *c = vc_client_check(L, client_idx);
    vc_request *r;
    vc_transfer *x;
    CURLU *url;
    const char *json;
    size_t json_len;

    client_idx = lua_absindex(L, client_idx);
    if (lua_type(L, -1) != LUA_TSTRING) {   /* a wire table; else JSON text already */
        vc_push_state(L, VC_ENCODE);
        lua_insert(L, -2);
        lua_call(L, 1, 2);                   /* cjson.safe: json, or nil and a message */
        if (lua_isnil(L, -2))
            return vc_fail(L, "invalid", NULL, "the request cannot be encoded: %s",
                           lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    r = push_request(L, client_idx, about_idx);   /* ..., json, request */
    transport_now(L, client_idx);
    if (!(url = vc_client_route(c, call->path)))
        return out_of_memory(L);
    /* No Lua call from here until the request is on its way: nothing can
     * raise while the body holding the key is being built. */
    json = lua_tolstring(L, -2, &json_len);
    x = vc_transport_acquire(vc_client_transport(c), r);
    if (x && fill_body(vc_transfer_body(x), call, vc_client_secret(c), json, json_len)) {
        vc_transport_recycle(vc_client_transport(c), x);
        x = NULL;
    }
    if (!x) return out_of_memory(L);
    hold(r, c, x, call);
    vc_transport_post(r->transport, x, url, call->how);
    return 1;
}

/* The temporary file of a download beside dest, made here and ours alone
 * (O_EXCL): no other download, in this process or another, shares it. */
static FILE *open_temporary(vc_request *r, const char *dest) {
    static unsigned long counter;
    size_t len = strlen(dest);
    int fd = -1, tries;
    FILE *sink;
    if (!(r->dest = malloc(len + 1)) || !(r->file = malloc(len + 48))) return NULL;
    memcpy(r->dest, dest, len + 1);
    for (tries = 0; fd < 0 && tries < 100; tries++) {
        snprintf(r->file, len + 48, "%s.part-%ld-%lu", dest, (long)getpid(), ++counter);
        fd = open(r->file, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        free(r->file);           /* not ours: nothing to remove */
        r->file = NULL;
        return NULL;
    }
    if (!(sink = fdopen(fd, "wb"))) {
        int error = errno;
        close(fd);               /* the file itself is removed with the request */
        errno = error;
    }
    return sink;
}

int vc_call_start_download(lua_State *L, int client_idx, const vc_call *call, int url_idx,
                           const char *dest) {
    vc_client *c = vc_client_check(L, client_idx);
    vc_request *r = push_request(L, lua_absindex(L, client_idx), lua_absindex(L, url_idx));
    vc_transport *t = transport_now(L, client_idx);
    vc_transfer *x = vc_transport_acquire(t, r);
    FILE *sink;
    int error;
    if (!x) return out_of_memory(L);
    /* no Lua call until the file is the transfer's */
    if (!(sink = open_temporary(r, dest))) {
        error = errno;
        vc_transport_recycle(t, x);
        request_release(r, CANCELED);   /* removes the file, if it was made */
        return vc_fail(L, "invalid", "dest", "cannot write beside %s: %s", dest, strerror(error));
    }
    if (vc_transport_get(t, x, lua_tostring(L, url_idx), sink,
                         vc_client_signs(c, lua_tostring(L, url_idx))) != 0) {
        fclose(sink);
        vc_transport_recycle(t, x);
        request_release(r, CANCELED);
        return out_of_memory(L);
    }
    hold(r, c, x, call);
    return 1;
}

/* ---- finishing --------------------------------------------------------- */

/* Keeps the answer's requestId (decoded body at idx) as the request's user value [3]. */
static void keep_request_id(lua_State *L, int request, int decoded) {
    if (lua_getfield(L, decoded, "requestId") == LUA_TSTRING) {
        lua_getuservalue(L, request);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 3);
    }
    lua_pop(L, 1);
}

/* A download that came whole: its temporary file renamed to dest, which
 * is pushed (returns 1); or nil and an error. */
static int move_into_place(lua_State *L, vc_request *r) {
    if (rename(r->file, r->dest) != 0)
        return vc_fail(L, "invalid", "dest", "cannot rename the download to %s: %s", r->dest,
                       strerror(errno));
    free(r->file);
    r->file = NULL;
    lua_pushstring(L, r->dest);
    return 1;
}

static const char *copy_into(char *to, size_t size, const char *from) {
    strncpy(to, from, size - 1);
    to[size - 1] = '\0';
    return to;
}

/* request:done(): true once finish() can give its results without waiting. */
static int request_done(lua_State *L) {
    vc_request *r = luaL_checkudata(L, 1, VC_REQUEST);
    lua_pushboolean(L, r->state != RUNNING || vc_transfer_done(r->x));
    return 1;
}

/* request:finish(): the call's results (its Job, list, ... or nil and an
 * error), once done(); the Request is spent after it. */
static int request_finish(lua_State *L) {
    vc_request *r = luaL_checkudata(L, 1, VC_REQUEST);
    char error[CURL_ERROR_SIZE], retry_after[64];
    vc_outcome o;
    int results;

    if (r->state == CLOSED) return luaL_error(L, "attempt to use a closed " VC_CLIENT);
    if (r->state == FINISHED || r->state == FINISHING)
        return luaL_error(L, "this request is already finished");
    if (r->state == CANCELED) return vc_fail(L, "canceled", NULL, "the request was canceled");
    if (!vc_transfer_done(r->x)) return luaL_error(L, "this request is not done yet");

    /* From here a finalizer run by an allocation may close the client: x
     * leaves the transport first, and the request alone frees it. */
    vc_transfer_detach(r->transport, r->x);
    r->transport = NULL;
    r->state = FINISHING;
    vc_transfer_scrub(r->x, r->secret);   /* the key never reaches a Lua string */
    vc_transfer_outcome(r->x, &o);
    o.secret = r->secret;
    r->status = o.status;
    r->seconds = o.seconds;
    if (!r->call->path) o.write_failed = vc_transfer_close_sink(r->x) != 0;
    /* o's strings point into x, which give_back recycles or frees */
    o.error = copy_into(error, sizeof error, o.error);
    o.retry_after = copy_into(retry_after, sizeof retry_after, o.retry_after);
    lua_settop(L, 1);
    lua_getuservalue(L, 1);
    lua_rawgeti(L, 2, 1);
    lua_rawgeti(L, 2, 2);
    lua_remove(L, 2);            /* request, client, about */
    lua_pushlstring(L, o.body, o.len);
    o.body = lua_tostring(L, 4);
    give_back(L, r);
    forget(L, r);
    VC_STACK(L, 4);
    if (!r->call->path) {
        results = r->call->finish(L, r->call, &o);
        if (results == 1) results = move_into_place(L, r);
    } else {
        results = vc_response_decode(L, r->secret, &o, r->call->response_key);
        if (!results) {
            keep_request_id(L, 1, 5);
            results = r->call->finish(L, r->call, &o);
        }
    }
    request_release(r, FINISHED);
    return results;
}

/* request:info(): { action, status, seconds, request_id } of a finished
 * request (the request id of a failed one is in its error). */
static int request_info(lua_State *L) {
    vc_request *r = luaL_checkudata(L, 1, VC_REQUEST);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, r->call ? (r->call->path ? r->call->action : "download") : "?");
    lua_setfield(L, -2, "action");
    if (r->state != FINISHED) return 1;
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_pushnumber(L, r->seconds);
    lua_setfield(L, -2, "seconds");
    lua_getuservalue(L, 1);
    lua_rawgeti(L, -1, 3);
    lua_setfield(L, -3, "request_id");
    lua_pop(L, 1);
    return 1;
}

static int request_tostring(lua_State *L) {
    static const char *const states[] = {"running", "finishing", "finished", "canceled", "closed"};
    vc_request *r = luaL_checkudata(L, 1, VC_REQUEST);
    const char *what = r->call ? (r->call->path ? r->call->action : "download") : "?";
    lua_pushfstring(L, VC_REQUEST " (%s, %s): %p", what, states[r->state], (void *)r);
    return 1;
}

static const luaL_Reg request_meta[] = {
    {"__gc", request_gc},
    {"__close", request_cancel},
    {"__tostring", request_tostring},
    {NULL, NULL}
};

static const luaL_Reg request_methods[] = {
    {"done", request_done},
    {"finish", request_finish},
    {"cancel", request_cancel},
    {"info", request_info},
    {NULL, NULL}
};

/* ---- the API calls ----------------------------------------------------- */

/* finish: the job in the response, as a Job of the client. */
static int finish_job(lua_State *L, const vc_call *call, const vc_outcome *o) {
    int r;
    if ((r = vc_response_table(L, o, call->response_key, "job"))) return r;
    vc_job_push(L, 2, -1);
    return 1;
}

/* finish of a refresh: the job (at 3) takes the answer's data. */
static int finish_refresh(lua_State *L, const vc_call *call, const vc_outcome *o) {
    int r;
    if ((r = vc_response_table(L, o, call->response_key, "job"))) return r;
    vc_record_set(L, 3, VC_RECORD_DATA);
    lua_pushvalue(L, 3);
    return 1;
}

/* With the body and response at the top: pushes response[key] as a list of
 * Jobs (or Models) and the total (response.total, else the list's length). */
static int push_list(lua_State *L, const vc_outcome *o, const char *where, const char *key,
                     int jobs) {
    int response = lua_gettop(L), items, list, has_total;
    lua_Integer i, n, total;
    VC_STACK_MARK(L);
    lua_getfield(L, response, key);
    items = lua_gettop(L);
    if (!lua_isnil(L, items) && !lua_istable(L, items))
        return vc_response_fail(L, o, response - 1, "%s.%s is not an array", where, key);
    n = lua_istable(L, items) ? (lua_Integer)lua_rawlen(L, items) : 0;
    lua_createtable(L, (int)n, 0);
    list = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, items, i) != LUA_TTABLE)
            return vc_response_fail(L, o, response - 1, "%s.%s[%d] is not an object", where,
                                    key, (int)i);
        if (jobs) vc_job_push(L, 2, -1);
        else vc_model_push(L, -1);
        lua_rawseti(L, list, (int)i);
        lua_pop(L, 1);
    }
    /* total: a number, or a string holding one; else the list's length */
    lua_getfield(L, response, "total");
    total = lua_tointegerx(L, -1, &has_total);
    lua_pushvalue(L, list);
    lua_pushinteger(L, has_total ? total : n);
    VC_STACK_LEFT(L, 5);          /* items, list, total's field; list, total */
    return 2;
}

static int finish_jobs(lua_State *L, const vc_call *call, const vc_outcome *o) {
    return push_list(L, o, call->response_key, "jobs", 1);
}

static int finish_models(lua_State *L, const vc_call *call, const vc_outcome *o) {
    return push_list(L, o, call->response_key, "models", 0);
}

/* A CreateJob goes on a connection of its own: were a reused one to close
 * without an answer, libcurl would send the POST again by itself, and the
 * service would bill the job twice. */
static const vc_call create_job_call = {
    VC_PATH_JOB, "CreateJob", "createJobRequest", "createJobResponse", finish_job,
    VC_FRESH_CONNECTION
};
static const vc_call get_job_call = {
    VC_PATH_JOB, "GetJob", "getJobRequest", "getJobResponse", finish_job, VC_REUSE
};
static const vc_call refresh_call = {
    VC_PATH_JOB, "GetJob", "getJobRequest", "getJobResponse", finish_refresh, VC_REUSE
};
static const vc_call list_jobs_call = {
    VC_PATH_JOB, "ListJobs", "listJobsRequest", "listJobsResponse", finish_jobs, VC_REUSE
};
static const vc_call list_models_call = {
    VC_PATH_MODELS, "ListModels", "listModelsRequest", "listModelsResponse", finish_models,
    VC_REUSE
};

/* core.create_job(client, request) -> Request | nil, err */
static int call_create_job(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if ((r = vc_rules_create_job(L, 2)) != 1) return r;
    return vc_call_start(L, 1, &create_job_call, 0);
}

/* core.get_job(client, id) */
static int call_get_job(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_checktype(L, 2, LUA_TSTRING);
    if ((r = vc_rules_job_id(L, 2)) != 1) return r;
    return vc_call_start(L, 1, &get_job_call, 0);
}

/* core.refresh(job): GetJob for the job, whose fields finish() updates. */
static int call_refresh(lua_State *L) {
    int r;
    luaL_checkudata(L, 1, VC_JOB);
    lua_settop(L, 1);
    vc_record_get(L, 1, VC_RECORD_EXTRA);          /* job, client */
    if (lua_isnil(L, 2)) return luaL_error(L, "this job has no client to refresh it with");
    vc_client_check(L, 2);
    vc_record_get(L, 1, VC_RECORD_DATA);
    lua_getfield(L, -1, "id");
    lua_remove(L, -2);                             /* job, client, id */
    if ((r = vc_rules_job_id(L, 3)) != 1) return r;
    return vc_call_start(L, 2, &refresh_call, 1);
}

/* core.list_jobs(client, custom_id) */
static int call_list_jobs(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_checktype(L, 2, LUA_TSTRING);
    if ((r = vc_rules_custom_id(L, 2)) != 1) return r;
    return vc_call_start(L, 1, &list_jobs_call, 0);
}

/* Wrong types raise; values are checked by the rules. (luaL_optinteger would
 * take 0.5 as 0 on Lua 5.1 and LuaJIT.) */
static void check_optional_integer(lua_State *L, int arg) {
    if (!lua_isnoneornil(L, arg) && !lua_isinteger(L, arg))
        luaL_argerror(L, arg, lua_type(L, arg) == LUA_TNUMBER ?
                      "number has no integer representation" : "integer expected");
}

/* core.list_models(client [, offset [, limit]]) */
static int call_list_models(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    check_optional_integer(L, 2);
    check_optional_integer(L, 3);
    lua_settop(L, 3);
    if ((r = vc_rules_list_models(L, 2, 3)) != 1) return r;
    return vc_call_start(L, 1, &list_models_call, 0);
}

static const luaL_Reg call_functions[] = {
    {"create_job", call_create_job},
    {"get_job", call_get_job},
    {"refresh", call_refresh},
    {"list_jobs", call_list_jobs},
    {"list_models", call_list_models},
    {NULL, NULL}
};

/* Stack at entry: module (1), ..., state (at index state). */
void vc_call_open(lua_State *L, int state) {
    luaL_newmetatable(L, VC_REQUEST);
    vc_setfuncs(L, request_meta, state);
    lua_newtable(L);
    vc_setfuncs(L, request_methods, state);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    vc_setfuncs(L, call_functions, state);
    lua_pop(L, 1);
}
