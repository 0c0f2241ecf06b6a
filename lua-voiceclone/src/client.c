/*
 * voiceclone.Client: credentials, endpoint and a libcurl transport, with the
 * four API calls as methods. The Lua layer (voiceclone/client.lua) adds the
 * task helpers to the same method table.
 *
 * The secret key lives only in C memory, JSON-escaped inside the request
 * envelope, and is wiped when the client is closed. It is never in a Lua
 * string, an error or tostring(client).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vc.h"

#define DEFAULT_TIMEOUT          30.0
#define DEFAULT_CONNECT_TIMEOUT  10.0
#define DEFAULT_MAX_IN_FLIGHT    64
#define MAX_IN_FLIGHT_LIMIT      4096

#define UV_TASKS        1   /* the scheduler's table of tasks (voiceclone/tasks.lua) */
#define UV_REPOSITORIES 2   /* new's repositories option: where downloads come from */

/* ---- strings in C memory --------------------------------------------- */

static void wipe_free(char *s, size_t len) {
    volatile char *p = s;
    size_t i;
    if (!s) return;
    for (i = 0; i < len; i++) p[i] = 0;
    free(s);
}

static char *copy_string(const char *s, size_t len) {
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return copy;
}

static int put_c(void *sink, const char *p, size_t n) {
    return vc_buffer_add(sink, p, n);
}

static int add_json_string(vc_buffer *b, const char *s) {
    return vc_json_string(s, strlen(s), put_c, b);
}

/* The JSON-escaped form of s, without the quotes. */
static char *json_escaped(const char *s) {
    vc_buffer b = {NULL, 0, 0};
    if (add_json_string(&b, s) || vc_buffer_add(&b, "", 1)) {
        vc_buffer_free(&b);
        return NULL;
    }
    memmove(b.data, b.data + 1, b.len - 3);   /* drop the quotes */
    b.data[b.len - 3] = '\0';
    return b.data;
}

/* ,"secretId":"..","secretKey":"..",  (the part every body shares) */
static char *make_envelope(const char *id, const char *key, size_t *len) {
    vc_buffer b = {NULL, 0, 0};
    if (vc_buffer_add(&b, ",\"secretId\":", 12) || add_json_string(&b, id) ||
        vc_buffer_add(&b, ",\"secretKey\":", 13) || add_json_string(&b, key) ||
        vc_buffer_add(&b, ",", 1)) {
        vc_buffer_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

/* ---- lifetime ---------------------------------------------------------- */

/* The one release path of close, __gc and __close: idempotent, never raises. */
static void client_release(vc_client *c) {
    int i;
    c->open = 0;
    c->reading = 0;
    vc_transport_release(&c->transport);
    for (i = 0; i < VC_ROUTES; i++) {
        curl_url_cleanup(c->routes[i]);
        c->routes[i] = NULL;
        c->route_paths[i] = NULL;
    }
    free(c->endpoint);
    free(c->secret_id);
    wipe_free(c->envelope, c->envelope_len);
    wipe_free(c->secret_key, c->secret_key ? strlen(c->secret_key) : 0);
    wipe_free(c->secret_key_json, c->secret_key_json ? strlen(c->secret_key_json) : 0);
    c->endpoint = c->secret_id = c->envelope = c->secret_key = c->secret_key_json = NULL;
    c->envelope_len = 0;
}

vc_client *vc_client_check(lua_State *L, int idx) {
    vc_client *c = luaL_checkudata(L, idx, VC_CLIENT);
    if (!c->open) luaL_error(L, "attempt to use a closed " VC_CLIENT);
    return c;
}

static void replace_all(lua_State *L, const char *secret) {
    if (secret && *secret && strstr(lua_tostring(L, -1), secret)) {
        luaL_gsub(L, lua_tostring(L, -1), secret, "***");
        lua_replace(L, -2);
    }
}

/* Replaces the string at the top with a copy where the key reads "***":
 * a server may quote a request back, escaped, in an error message. */
void vc_client_scrub(lua_State *L, const vc_client *c) {
    replace_all(L, c->secret_key);
    replace_all(L, c->secret_key_json);
}

/* ---- options ----------------------------------------------------------- */

/* The string option, left on the stack: that keeps it alive (an __index
 * may have made it) until it is copied. */
static const char *option_string(lua_State *L, const char *key) {
    int type = lua_getfield(L, 1, key);
    if (type == LUA_TSTRING) return lua_tostring(L, -1);
    if (type != LUA_TNIL)
        luaL_error(L, "bad option '%s' to 'new' (string expected, got %s)", key,
                   luaL_typename(L, -1));
    return NULL;
}

static double option_seconds(lua_State *L, const char *key, double fallback) {
    int type = lua_getfield(L, 1, key);
    double seconds = fallback;
    if (type == LUA_TNUMBER) seconds = lua_tonumber(L, -1);
    else if (type != LUA_TNIL)
        luaL_error(L, "bad option '%s' to 'new' (number expected, got %s)", key,
                   luaL_typename(L, -1));
    lua_pop(L, 1);
    return seconds;
}

static int unknown_option(lua_State *L) {
    static const char *const known[] = {
        "secret_id", "secret_key", "endpoint", "timeout", "connect_timeout", "max_in_flight",
        "repositories", NULL
    };
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        int i;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return vc_fail(L, "invalid", NULL, "options must be named");
        for (i = 0; known[i] && strcmp(known[i], lua_tostring(L, -1)) != 0; i++) {}
        if (!known[i])
            return vc_fail(L, "invalid", lua_tostring(L, -1), "is not an option of new");
    }
    return 0;
}

static int valid_timeout(double seconds) {
    return seconds > 0 && seconds <= 86400.0 * 365;
}

/* core.new{secret_id=, secret_key=, endpoint=, timeout=, connect_timeout=} */
static int client_new(lua_State *L) {
    const char *id, *key, *endpoint;
    double timeout, connect_timeout, max_in_flight;
    size_t endpoint_len;
    vc_client *c;
    int r, type;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    id = option_string(L, "secret_id");
    key = option_string(L, "secret_key");
    endpoint = option_string(L, "endpoint");
    timeout = option_seconds(L, "timeout", DEFAULT_TIMEOUT);
    connect_timeout = option_seconds(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    max_in_flight = option_seconds(L, "max_in_flight", DEFAULT_MAX_IN_FLIGHT);
    type = lua_getfield(L, 1, "repositories");
    if (type != LUA_TNIL && type != LUA_TSTRING && type != LUA_TFUNCTION)
        luaL_error(L, "bad option 'repositories' to 'new' (string or function expected, got %s)",
                   luaL_typename(L, -1));
    lua_pop(L, 1);
    if ((r = unknown_option(L))) return r;
    if (!id || !*id) return vc_fail(L, "invalid", "secret_id", "is required");
    if (!key || !*key) return vc_fail(L, "invalid", "secret_key", "is required");
    if (!endpoint || (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)))
        return vc_fail(L, "invalid", "endpoint", "must be an http:// or https:// URL");
    if (!valid_timeout(timeout))
        return vc_fail(L, "invalid", "timeout", "must be a positive number of seconds");
    if (!valid_timeout(connect_timeout))
        return vc_fail(L, "invalid", "connect_timeout", "must be a positive number of seconds");
    if (!(max_in_flight >= 1 && max_in_flight <= MAX_IN_FLIGHT_LIMIT) ||
        max_in_flight != (double)(int)max_in_flight)
        return vc_fail(L, "invalid", "max_in_flight", "must be a whole number from 1 to %d",
                       MAX_IN_FLIGHT_LIMIT);

    /* Zeroed and with its metatable first: from here every allocation
     * hangs off the userdata, so __gc reclaims it if anything raises. */
    c = lua_newuserdatauv(L, sizeof *c, 2);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, VC_CLIENT);
    lua_getfield(L, 1, "repositories");
    lua_setiuservalue(L, -2, UV_REPOSITORIES);

    endpoint_len = strlen(endpoint);
    while (endpoint_len > 0 && endpoint[endpoint_len - 1] == '/') endpoint_len--;
    c->endpoint = copy_string(endpoint, endpoint_len);
    c->secret_id = copy_string(id, strlen(id));
    c->secret_key = copy_string(key, strlen(key));
    c->secret_key_json = json_escaped(key);
    c->envelope = make_envelope(id, key, &c->envelope_len);
    if (!c->endpoint || !c->secret_id || !c->secret_key || !c->secret_key_json || !c->envelope ||
        vc_transport_init(&c->transport, (long)(timeout * 1000),
                          (long)(connect_timeout * 1000), (int)max_in_flight,
                          strncmp(endpoint, "https://", 8) == 0) != 0) {
        client_release(c);
        return luaL_error(L, "not enough memory");
    }
    c->open = 1;
    return 1;
}

/* ---- calls ------------------------------------------------------------- */

/* Builds the body in C memory: {"action":"X","secretId":..,"secretKey":..,"<payload_key>":<json>} */
static int fill_request(vc_transfer *x, const char *action, const vc_client *c,
                        const char *payload_key, const char *json, size_t json_len) {
    vc_buffer *b = &x->request;
    return vc_buffer_add(b, "{\"action\":\"", 11) || vc_buffer_add(b, action, strlen(action)) ||
           vc_buffer_add(b, "\"", 1) || vc_buffer_add(b, c->envelope, c->envelope_len) ||
           vc_buffer_add(b, "\"", 1) || vc_buffer_add(b, payload_key, strlen(payload_key)) ||
           vc_buffer_add(b, "\":", 2) || vc_buffer_add(b, json, json_len) ||
           vc_buffer_add(b, "}", 1);
}

/* The thread runs a task of this client (its scheduler keeps them in the
 * client's user value) and may yield here. */
static int in_task(lua_State *L, int client_idx) {
    int task;
    if (!lua_isyieldable(L)) return 0;
    if (lua_getiuservalue(L, client_idx, UV_TASKS) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushthread(L);
    task = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return task;
}

/* What a task yields: (WAIT_SLOT) while max_in_flight requests are on the
 * wire, (WAIT_TRANSFER, x) while its request x is. */
static char wait_slot, wait_transfer;

/* Blocks until the transport has room for one more request; inside a task
 * returns 0 instead, for the caller to yield (WAIT_SLOT). */
static int room_now(vc_client *c, int task) {
    while (vc_transport_full(&c->transport)) {
        if (task) return 0;
        vc_transport_drive(&c->transport, 1.0);
    }
    return 1;
}

static int yield_slot(lua_State *L, lua_KContext ctx, lua_KFunction k) {
    lua_pushlightuserdata(L, &wait_slot);
    return lua_yieldk(L, 1, ctx, k);
}

/* Before waiting on x: x goes on the stack above the client, and the
 * continuation gets its stack index as context, so it can check the client
 * before it touches x (closing a client frees its transfers). */
static int push_transfer(lua_State *L, vc_transfer *x) {
    lua_pushlightuserdata(L, x);
    return lua_gettop(L);
}

/* The scheduler resumes the task once x is done. */
static int yield_transfer(lua_State *L, vc_transfer *x, int slot, lua_KFunction k) {
    lua_pushlightuserdata(L, &wait_transfer);
    lua_pushlightuserdata(L, x);
    return lua_yieldk(L, 2, (lua_KContext)slot, k);
}

/* In a continuation: back to the stack the call had when it started waiting
 * (what a resume passed is not ours); returns the transfer, and the client
 * below it in *c. Raises if the client was closed meanwhile. */
static vc_transfer *resumed(lua_State *L, int slot, vc_client **c) {
    lua_settop(L, slot);
    *c = vc_client_check(L, slot - 1);
    return lua_touserdata(L, slot);
}

static int call_receive(lua_State *L, int status, lua_KContext ctx);

/* A call finished reading its answer: a close asked for meanwhile happens now. */
static void done_reading(vc_client *c) {
    if (--c->reading == 0 && !c->open) client_release(c);
}

/* The parsed URL of endpoint..path, made once per path: libcurl would
 * otherwise parse the same URL again for every request. */
static CURLU *route(vc_client *c, const char *path) {
    size_t i, endpoint_len = strlen(c->endpoint), path_len = strlen(path);
    char *url;
    CURLU *parsed;
    for (i = 0; i < VC_ROUTES && c->route_paths[i]; i++)
        if (strcmp(c->route_paths[i], path) == 0) return c->routes[i];
    if (i == VC_ROUTES) return NULL;
    url = malloc(endpoint_len + path_len + 1);
    parsed = url ? curl_url() : NULL;
    if (parsed) {
        memcpy(url, c->endpoint, endpoint_len);
        memcpy(url + endpoint_len, path, path_len + 1);
        if (curl_url_set(parsed, CURLUPART_URL, url, 0) != CURLUE_OK) {
            curl_url_cleanup(parsed);
            parsed = NULL;
        }
    }
    free(url);
    if (parsed) {
        c->routes[i] = parsed;
        c->route_paths[i] = path;
    }
    return parsed;
}

/* Stack: ..., json, client. Sends as soon as the transport has room. */
static int call_send(lua_State *L, int status, lua_KContext ctx) {
    const vc_call *call = (const vc_call *)ctx;
    int client_idx = lua_gettop(L), task;
    vc_client *c = vc_client_check(L, client_idx);   /* raises if closed while waiting */
    CURLU *url = route(c, call->path);
    vc_transfer *x;
    int slot;
    (void)status;
    if (!url) return vc_fail(L, "network", NULL, "the endpoint %s%s is not a valid URL",
                             c->endpoint, call->path);
    task = in_task(L, client_idx);
    if (!room_now(c, task)) return yield_slot(L, ctx, call_send);
    /* No Lua call from here until the request is on its way: nothing can
     * raise while the body holding the key is being built. */
    x = vc_transport_acquire(&c->transport);
    if (x && fill_request(x, call->action, c, call->payload_key,
                          lua_tostring(L, client_idx - 1), lua_rawlen(L, client_idx - 1))) {
        vc_transport_recycle(&c->transport, x);
        x = NULL;
    }
    if (!x) return vc_fail(L, "network", NULL, "not enough memory for a request");
    x->call = call;
    slot = push_transfer(L, x);
    vc_transport_start(&c->transport, x, url);
    if (task && !x->done) {
        x->in_task = 1;
        return yield_transfer(L, x, slot, call_receive);
    }
    vc_transport_wait(&c->transport, x);
    return call_receive(L, LUA_OK, (lua_KContext)slot);
}

/* Stack: ..., json, client, x; x is done (or we were resumed early). */
static int call_receive(lua_State *L, int status, lua_KContext ctx) {
    vc_client *c;
    vc_transfer *x = resumed(L, (int)ctx, &c);
    const vc_call *call;
    int r;
    (void)status;
    /* resumed early, by someone else: not done, or done but not yet
     * reported to the scheduler (it is still in the finished list) */
    if (!x->done || x->queued) return yield_transfer(L, x, (int)ctx, call_receive);
    call = x->call;
    /* x stays busy while its answer is read: a finalizer's call made during
     * decoding gets another transfer, and a finalizer's close waits */
    c->reading++;
    r = vc_response_decode(L, c, x, call->response_key);
    vc_transport_recycle(&c->transport, x);
    done_reading(c);
    return r ? r : call->finish(L, call);
}

int vc_client_call(lua_State *L, int client_idx, const vc_call *call) {
    vc_client_check(L, client_idx);
    if (lua_type(L, -1) != LUA_TSTRING) {   /* a wire table; else JSON text already */
        lua_pushvalue(L, VC_ENCODE);
        lua_insert(L, -2);
        lua_call(L, 1, 2);                   /* cjson.safe: json, or nil and a message */
        if (lua_isnil(L, -2))
            return vc_fail(L, "invalid", NULL, "the request cannot be encoded: %s",
                           lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pushvalue(L, client_idx);
    return call_send(L, LUA_OK, (lua_KContext)call);
}

/* finish: the job in the response, as a Job of the client at index 1. */
static int finish_job(lua_State *L, const vc_call *call) {
    int r;
    if ((r = vc_response_table(L, call->response_key, "job"))) return r;
    vc_job_push(L, 1, -1);
    return 1;
}

static const vc_call create_job_call = {
    VC_PATH_JOB, "CreateJob", "createJobRequest", "createJobResponse", finish_job
};
static const vc_call get_job_call = {
    VC_PATH_JOB, "GetJob", "getJobRequest", "getJobResponse", finish_job
};

static int client_create_job(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if ((r = vc_request_create_job(L, 2)) != 1) return r;
    return vc_client_call(L, 1, &create_job_call);
}

static int client_get_job(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_checktype(L, 2, LUA_TSTRING);
    if ((r = vc_request_job_id(L, 2)) != 1) return r;
    return vc_client_call(L, 1, &get_job_call);
}

/* With the root and response at the top: pushes response[key] as a list of
 * Jobs (or Models) and the total (response.total, else the list's length). */
static int push_list(lua_State *L, int client_idx, const char *where, const char *key,
                     int jobs) {
    int response = lua_gettop(L), items, list, has_total;
    lua_Integer i, n, total;
    lua_getfield(L, response, key);
    items = lua_gettop(L);
    if (!lua_isnil(L, items) && !lua_istable(L, items))
        return vc_response_fail(L, response - 1, "%s.%s is not an array", where, key);
    n = lua_istable(L, items) ? (lua_Integer)lua_rawlen(L, items) : 0;
    lua_createtable(L, (int)n, 0);
    list = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, items, i) != LUA_TTABLE)
            return vc_response_fail(L, response - 1, "%s.%s[%d] is not an object", where, key,
                                    (int)i);
        if (jobs) vc_job_push(L, client_idx, -1);
        else vc_model_push(L, -1);
        lua_rawseti(L, list, i);
        lua_pop(L, 1);
    }
    /* total: a number, or a string holding one; else the list's length */
    lua_getfield(L, response, "total");
    total = lua_tointegerx(L, -1, &has_total);
    lua_pushvalue(L, list);
    lua_pushinteger(L, has_total ? total : n);
    return 2;
}

static int finish_jobs(lua_State *L, const vc_call *call) {
    return push_list(L, 1, call->response_key, "jobs", 1);
}

static int finish_models(lua_State *L, const vc_call *call) {
    return push_list(L, 1, call->response_key, "models", 0);
}

static const vc_call list_jobs_call = {
    VC_PATH_JOB, "ListJobs", "listJobsRequest", "listJobsResponse", finish_jobs
};
static const vc_call list_models_call = {
    VC_PATH_MODELS, "ListModels", "listModelsRequest", "listModelsResponse", finish_models
};

static int client_list_jobs(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_checktype(L, 2, LUA_TSTRING);
    if ((r = vc_request_custom_id(L, 2)) != 1) return r;
    return vc_client_call(L, 1, &list_jobs_call);
}

static int client_list_models(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_optinteger(L, 2, 0);    /* wrong types raise; values are checked below */
    luaL_optinteger(L, 3, 10);
    lua_settop(L, 3);
    if ((r = vc_request_list_models(L, 2, 3)) != 1) return r;
    return vc_client_call(L, 1, &list_models_call);
}

/* client:_sleep(seconds): a blocking pause (voiceclone/tasks.lua makes
 * client:sleep yield instead inside a task). */
static int client_sleep(lua_State *L) {
    double seconds = luaL_checknumber(L, 2);
    struct timespec left;
    vc_client_check(L, 1);
    if (!(seconds > 0)) return 0;                 /* NaN too */
    if (seconds > 86400.0 * 365) seconds = 86400.0 * 365;
    left.tv_sec = (time_t)seconds;
    left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {}
    return 0;
}

/* ---- what the scheduler (voiceclone/tasks.lua) needs ------------------- */

/* client:_tasks(): the table of this client's tasks, made on first use. */
static int client_tasks(lua_State *L) {
    vc_client_check(L, 1);
    if (lua_getiuservalue(L, 1, UV_TASKS) != LUA_TTABLE) {
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, 1, UV_TASKS);
    }
    return 1;
}

/* client:_drive(wait): advances the transfers, waiting up to `wait` seconds
 * for something to happen; returns the transfers tasks wait on that ended
 * (as the light userdata the tasks yielded), and the free places. */
static int client_drive(lua_State *L) {
    vc_client *c = vc_client_check(L, 1);
    double wait = luaL_optnumber(L, 2, 0);
    vc_transfer *x;
    if (!(wait > 0)) wait = 0;                    /* NaN too */
    if (wait > 3600) wait = 3600;
    int n = 0;
    vc_transport_drive(&c->transport, wait);
    for (x = c->transport.finished; x; x = x->next_finished) n++;
    lua_createtable(L, n, 0);   /* presized: filling it allocates nothing */
    n = 0;
    for (x = vc_transport_finished(&c->transport); x; x = x->next_finished) {
        x->queued = 0;
        lua_pushlightuserdata(L, x);
        lua_rawseti(L, -2, ++n);
    }
    lua_pushinteger(L, c->transport.max_in_flight - c->transport.in_flight);
    return 2;
}

/* client:_timer(): seconds until the transport wants a drive (or nil), and
 * the free places among max_in_flight. */
static int client_timer(lua_State *L) {
    vc_client *c = vc_client_check(L, 1);
    double due = c->transport.pending || c->transport.finished ? 0 : c->transport.timer_due;
    if (due < 0) lua_pushnil(L);
    else lua_pushnumber(L, due > vc_now() ? due - vc_now() : 0);
    lua_pushinteger(L, c->transport.max_in_flight - c->transport.in_flight);
    return 2;
}

/* client:sockets(): what an outside event loop should watch, as
 * { [fd] = "r" | "w" | "rw" }; call client:step() when one is ready. */
static int client_sockets(lua_State *L) {
    vc_client *c = vc_client_check(L, 1);
    int i;
    lua_createtable(L, 0, c->transport.nsockets);
    for (i = 0; i < c->transport.nsockets; i++) {
        short events = c->transport.sockets[i].events;
        if (!events) continue;
        lua_pushstring(L, events == (POLLIN | POLLOUT) ? "rw" : events == POLLIN ? "r" : "w");
        lua_rawseti(L, -2, c->transport.sockets[i].fd);
    }
    return 1;
}

/* ---- downloads ---------------------------------------------------------- */

static int download_receive(lua_State *L, int status, lua_KContext ctx);

/* client:_download(url, path): GETs url into the file path (the Lua layer
 * gives a temporary name and renames it once this returns true). */
static int download_send(lua_State *L, int status, lua_KContext ctx) {
    int client_idx = lua_gettop(L), task, error, slot;
    vc_client *c = vc_client_check(L, client_idx);
    vc_transfer *x;
    (void)status;
    (void)ctx;
    task = in_task(L, client_idx);
    if (!room_now(c, task)) return yield_slot(L, 0, download_send);
    x = vc_transport_acquire(&c->transport);
    if (!x) return vc_fail(L, "network", NULL, "not enough memory for a request");
    x->sink = fopen(lua_tostring(L, 3), "wb");
    if (!x->sink) {
        error = errno;
        vc_transport_recycle(&c->transport, x);
        return vc_fail(L, "invalid", "dest", "cannot write %s: %s", lua_tostring(L, 3),
                       strerror(error));
    }
    slot = push_transfer(L, x);
    vc_transport_get(&c->transport, x, lua_tostring(L, 2));
    if (task && !x->done) {
        x->in_task = 1;
        return yield_transfer(L, x, slot, download_receive);
    }
    vc_transport_wait(&c->transport, x);
    return download_receive(L, LUA_OK, (lua_KContext)slot);
}

/* Stack: client, url, path, client, x. */
static int download_receive(lua_State *L, int status, lua_KContext ctx) {
    vc_client *c;
    vc_transfer *x = resumed(L, (int)ctx, &c);
    CURLcode result;
    long http_status;
    int write_failed;
    (void)status;
    if (!x->done || x->queued) return yield_transfer(L, x, (int)ctx, download_receive);
    write_failed = (fclose(x->sink) != 0) | x->write_failed;
    x->sink = NULL;
    result = x->result;
    http_status = x->status;
    c->reading++;
    if (write_failed)
        vc_fail(L, "invalid", "dest", "cannot write %s", lua_tostring(L, 3));
    else if (result != CURLE_OK)
        vc_response_transport_error(L, x);
    vc_transport_recycle(&c->transport, x);
    done_reading(c);
    if (write_failed || result != CURLE_OK) return 2;
    if (http_status < 200 || http_status > 299) {
        vc_fail(L, "http", NULL, "HTTP %d for %s", (int)http_status, lua_tostring(L, 2));
        vc_error_set_integer(L, "status", http_status);
        vc_error_set_boolean(L, "retryable", http_status == 408 || http_status == 429 ||
                                              http_status >= 500);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int client_download(lua_State *L) {
    size_t url_len, path_len;
    vc_client_check(L, 1);
    luaL_argcheck(L, strlen(luaL_checklstring(L, 2, &url_len)) == url_len, 2, "has a NUL byte");
    luaL_argcheck(L, strlen(luaL_checklstring(L, 3, &path_len)) == path_len, 3, "has a NUL byte");
    lua_settop(L, 3);
    lua_pushvalue(L, 1);
    return download_send(L, LUA_OK, 0);
}

/* client:_repositories(): the repositories option of new, or nil. */
static int client_repositories(lua_State *L) {
    vc_client_check(L, 1);
    lua_getiuservalue(L, 1, UV_REPOSITORIES);
    return 1;
}

/* close and __close. While a call reads its answer (a finalizer may close
 * the client from inside the decoder's allocations) the client only stops
 * taking calls; that call releases it when done. */
static int client_close(lua_State *L) {
    vc_client *c = luaL_checkudata(L, 1, VC_CLIENT);
    if (c->reading) c->open = 0;
    else client_release(c);
    return 0;
}

/* __gc: nothing can be reading, or the client would still be reachable. */
static int client_gc(lua_State *L) {
    client_release(luaL_checkudata(L, 1, VC_CLIENT));
    return 0;
}

static int client_is_open(lua_State *L) {
    lua_pushboolean(L, ((vc_client *)luaL_checkudata(L, 1, VC_CLIENT))->open);
    return 1;
}

static int client_endpoint(lua_State *L) {
    lua_pushstring(L, vc_client_check(L, 1)->endpoint);
    return 1;
}

static int client_tostring(lua_State *L) {
    vc_client *c = luaL_checkudata(L, 1, VC_CLIENT);
    if (!c->open) lua_pushfstring(L, VC_CLIENT " (closed): %p", (void *)c);
    else lua_pushfstring(L, VC_CLIENT " (%s, secret id %s): %p", c->endpoint, c->secret_id,
                         (void *)c);
    return 1;
}

static const luaL_Reg client_meta[] = {
    {"__gc", client_gc},
    {"__close", client_close},
    {"__tostring", client_tostring},
    {"__index", NULL},   /* the methods table, set below */
    {NULL, NULL}
};

static const luaL_Reg client_methods[] = {
    {"create_job", client_create_job},
    {"get_job", client_get_job},
    {"list_jobs", client_list_jobs},
    {"list_models", client_list_models},
    {"_sleep", client_sleep},
    {"_download", client_download},
    {"_repositories", client_repositories},
    {"_tasks", client_tasks},
    {"_drive", client_drive},
    {"_timer", client_timer},
    {"sockets", client_sockets},
    {"endpoint", client_endpoint},
    {"is_open", client_is_open},
    {"close", client_close},
    {NULL, NULL}
};

static const luaL_Reg client_functions[] = {
    {"new", client_new},
    {NULL, NULL}
};

/* Stack at entry: module, encode, decode, null (the shared upvalues). */
void vc_client_open(lua_State *L) {
    int upvalues = lua_gettop(L) - VC_UPVALUES + 1, module = upvalues - 1;
    luaL_newmetatable(L, VC_CLIENT);
    vc_setfuncs(L, client_meta, upvalues);
    lua_newtable(L);
    vc_setfuncs(L, client_methods, upvalues);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, module, "Client");   /* core.Client: the methods, for the Lua layer */
    lua_pop(L, 1);
    lua_pushvalue(L, module);
    vc_setfuncs(L, client_functions, upvalues);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &wait_slot);
    lua_setfield(L, module, "WAIT_SLOT");
    lua_pushlightuserdata(L, &wait_transfer);
    lua_setfield(L, module, "WAIT_TRANSFER");
}
