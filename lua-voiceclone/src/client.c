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

/* Appends s as a JSON string literal. */
static int add_json_string(vc_buffer *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    int r = vc_buffer_add(b, "\"", 1);
    for (; *s && r == 0; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char escaped[2] = {'\\', (char)c};
            r = vc_buffer_add(b, escaped, 2);
        } else if (c < 0x20) {
            char escaped[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            r = vc_buffer_add(b, escaped, 6);
        } else {
            r = vc_buffer_add(b, (const char *)&c, 1);
        }
    }
    return r ? r : vc_buffer_add(b, "\"", 1);
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
    c->open = 0;
    vc_transport_release(&c->transport);
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

static const char *option_string(lua_State *L, const char *key) {
    int type = lua_getfield(L, 1, key);
    const char *s = NULL;
    if (type == LUA_TSTRING) s = lua_tostring(L, -1);
    else if (type != LUA_TNIL)
        luaL_error(L, "bad option '%s' to 'new' (string expected, got %s)", key,
                   luaL_typename(L, -1));
    lua_pop(L, 1);   /* still anchored by the options table */
    return s;
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
        "secret_id", "secret_key", "endpoint", "timeout", "connect_timeout", NULL
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
    double timeout, connect_timeout;
    size_t endpoint_len;
    vc_client *c;
    int r;

    luaL_checktype(L, 1, LUA_TTABLE);
    id = option_string(L, "secret_id");
    key = option_string(L, "secret_key");
    endpoint = option_string(L, "endpoint");
    timeout = option_seconds(L, "timeout", DEFAULT_TIMEOUT);
    connect_timeout = option_seconds(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    if ((r = unknown_option(L))) return r;
    if (!id || !*id) return vc_fail(L, "invalid", "secret_id", "is required");
    if (!key || !*key) return vc_fail(L, "invalid", "secret_key", "is required");
    if (!endpoint || (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)))
        return vc_fail(L, "invalid", "endpoint", "must be an http:// or https:// URL");
    if (!valid_timeout(timeout))
        return vc_fail(L, "invalid", "timeout", "must be a positive number of seconds");
    if (!valid_timeout(connect_timeout))
        return vc_fail(L, "invalid", "connect_timeout", "must be a positive number of seconds");

    /* Zeroed and with its metatable first: from here every allocation
     * hangs off the userdata, so __gc reclaims it if anything raises. */
    c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, VC_CLIENT);

    endpoint_len = strlen(endpoint);
    while (endpoint_len > 0 && endpoint[endpoint_len - 1] == '/') endpoint_len--;
    c->endpoint = copy_string(endpoint, endpoint_len);
    c->secret_id = copy_string(id, strlen(id));
    c->secret_key = copy_string(key, strlen(key));
    c->secret_key_json = json_escaped(key);
    c->envelope = make_envelope(id, key, &c->envelope_len);
    if (!c->endpoint || !c->secret_id || !c->secret_key || !c->secret_key_json || !c->envelope ||
        vc_transport_init(&c->transport, (long)(timeout * 1000),
                          (long)(connect_timeout * 1000)) != 0) {
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

int vc_client_call(lua_State *L, int client_idx, const char *path, const char *action,
                   const char *payload_key, const char *response_key) {
    vc_client *c = vc_client_check(L, client_idx);
    const char *json, *url;
    size_t json_len;
    vc_transfer *x;

    lua_pushvalue(L, VC_ENCODE);
    lua_insert(L, -2);
    lua_call(L, 1, 2);             /* cjson.safe: json, or nil and a message */
    if (lua_isnil(L, -2))
        return vc_fail(L, "invalid", NULL, "the request cannot be encoded: %s",
                       lua_tostring(L, -1));
    lua_pop(L, 1);
    json = lua_tolstring(L, -1, &json_len);
    url = lua_pushfstring(L, "%s%s", c->endpoint, path);

    /* No Lua call from here until the transfer is recycled: nothing can
     * raise while the body holding the key is in flight. */
    x = vc_transport_acquire(&c->transport);
    if (!x) return vc_fail(L, "network", NULL, "not enough memory for a request");
    if (fill_request(x, action, c, payload_key, json, json_len)) {
        vc_transport_recycle(x);
        return vc_fail(L, "network", NULL, "not enough memory for a request");
    }
    vc_transport_run(&c->transport, x, url);
    vc_transport_recycle(x);
    return vc_response_decode(L, c, x, response_key);
}

static int client_create_job(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if ((r = vc_request_create_job(L, 2)) != 1) return r;
    if ((r = vc_client_call(L, 1, VC_PATH_JOB, "CreateJob", "createJobRequest",
                            "createJobResponse")) ||
        (r = vc_response_table(L, "createJobResponse", "job")))
        return r;
    vc_job_push(L, 1, -1);
    return 1;
}

static int client_get_job(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_checktype(L, 2, LUA_TSTRING);
    if ((r = vc_request_job_id(L, 2)) != 1) return r;
    if ((r = vc_client_call(L, 1, VC_PATH_JOB, "GetJob", "getJobRequest", "getJobResponse")) ||
        (r = vc_response_table(L, "getJobResponse", "job")))
        return r;
    vc_job_push(L, 1, -1);
    return 1;
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

static int client_list_jobs(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_checktype(L, 2, LUA_TSTRING);
    if ((r = vc_request_custom_id(L, 2)) != 1) return r;
    if ((r = vc_client_call(L, 1, VC_PATH_JOB, "ListJobs", "listJobsRequest",
                            "listJobsResponse")))
        return r;
    return push_list(L, 1, "listJobsResponse", "jobs", 1);
}

static int client_list_models(lua_State *L) {
    int r;
    vc_client_check(L, 1);
    luaL_optinteger(L, 2, 0);    /* wrong types raise; values are checked below */
    luaL_optinteger(L, 3, 10);
    lua_settop(L, 3);
    if ((r = vc_request_list_models(L, 2, 3)) != 1) return r;
    if ((r = vc_client_call(L, 1, VC_PATH_MODELS, "ListModels", "listModelsRequest",
                            "listModelsResponse")))
        return r;
    return push_list(L, 1, "listModelsResponse", "models", 0);
}

/* client:sleep(seconds): the pause between polls. */
static int client_sleep(lua_State *L) {
    double seconds = luaL_checknumber(L, 2);
    struct timespec left;
    vc_client_check(L, 1);
    if (seconds <= 0) return 0;
    left.tv_sec = (time_t)seconds;
    left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {}
    return 0;
}

static int client_close(lua_State *L) {
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
    {"__gc", client_close},
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
    {"sleep", client_sleep},
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
}
