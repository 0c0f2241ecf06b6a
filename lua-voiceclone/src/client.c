/*
 * voiceclone.Client: the endpoint, the credentials (secret.c) and a libcurl
 * transport. Its public methods are Lua (voiceclone/client.lua fills the
 * method table, core.Client); this file gives them the C they stand on:
 * new, close, and the client's table of Lua-side state.
 *
 * The secret key (and the API gateway's, gateway.c) is never in a Lua
 * string that we make, an error, or tostring(client).
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "vc.h"

#define DEFAULT_TIMEOUT          30.0
#define DEFAULT_CONNECT_TIMEOUT  10.0
#define DEFAULT_DOWNLOAD_TIMEOUT 600.0
#define DEFAULT_MAX_DOWNLOAD     1073741824.0   /* 1 GiB */
#define DEFAULT_MAX_IN_FLIGHT    64
#define MAX_IN_FLIGHT_LIMIT      4096
#define MAX_SECONDS              (86400.0 * 365)

#define ROUTES 2                 /* the API's paths: /release/job, /release/music_model */

struct vc_client {
    vc_transport *transport;
    vc_secret *secret;
    vc_gateway *gateway;         /* the API gateway's key pair; NULL: requests go unsigned */
    char *endpoint;              /* no trailing slash; may hold a user:password */
    char *shown;                 /* without its userinfo: copied into the client's table */
    CURLU *routes[ROUTES];       /* endpoint + path, parsed once */
    const char *route_paths[ROUTES];
};

/* ---- lifetime ---------------------------------------------------------- */

/* The one release path of close, __gc and __close: idempotent, never raises. */
static void client_release(vc_client *c) {
    int i;
    vc_transport_free(c->transport, vc_call_orphan);
    c->transport = NULL;
    for (i = 0; i < ROUTES; i++) {
        curl_url_cleanup(c->routes[i]);
        c->routes[i] = NULL;
        c->route_paths[i] = NULL;
    }
    free(c->endpoint);
    curl_free(c->shown);
    c->endpoint = c->shown = NULL;
    vc_secret_unref(c->secret);
    c->secret = NULL;
    vc_gateway_free(c->gateway);   /* after the transport, which signs with it */
    c->gateway = NULL;
}

static int is_open(const vc_client *c) {
    return c->transport != NULL;
}

vc_client *vc_client_check(lua_State *L, int idx) {
    vc_client *c = luaL_checkudata(L, idx, VC_CLIENT);
    if (!is_open(c)) luaL_error(L, "attempt to use a closed " VC_CLIENT);
    return c;
}

vc_transport *vc_client_transport(vc_client *c) {
    return c->transport;
}

vc_secret *vc_client_secret(vc_client *c) {
    return c->secret;
}

/* The parsed URL of endpoint..path, made once per path: libcurl would
 * otherwise parse the same URL again for every request. */
CURLU *vc_client_route(vc_client *c, const char *path) {
    size_t i, endpoint_len = strlen(c->endpoint), path_len = strlen(path);
    char *url;
    CURLU *parsed;
    for (i = 0; i < ROUTES && c->route_paths[i]; i++)
        if (strcmp(c->route_paths[i], path) == 0) return c->routes[i];
    if (i == ROUTES) return NULL;
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

int vc_client_signs(vc_client *c, const char *url) {
    return c->gateway && vc_gateway_same_origin(c->endpoint, url);
}

void vc_client_push_table(lua_State *L, int idx) {
    lua_getuservalue(L, idx);
}

/* ---- options ----------------------------------------------------------- */

/* The string option, left on the stack: that keeps it alive (an __index
 * may have made it) until it is copied. NULL when absent. */
static const char *option_string(lua_State *L, const char *key, size_t *len) {
    int type = lua_getfield(L, 1, key);
    if (type == LUA_TSTRING) return lua_tolstring(L, -1, len);
    if (type != LUA_TNIL)
        luaL_error(L, "bad option '%s' to 'new' (string expected, got %s)", key,
                   luaL_typename(L, -1));
    *len = 0;
    return NULL;
}

static double option_number(lua_State *L, const char *key, double fallback) {
    int type = lua_getfield(L, 1, key);
    double value = fallback;
    if (type == LUA_TNUMBER) value = lua_tonumber(L, -1);
    else if (type != LUA_TNIL)
        luaL_error(L, "bad option '%s' to 'new' (number expected, got %s)", key,
                   luaL_typename(L, -1));
    lua_pop(L, 1);
    return value;
}

static int unknown_option(lua_State *L) {
    static const char *const known[] = {
        "secret_id", "secret_key", "endpoint", "timeout", "connect_timeout", "max_in_flight",
        "repositories", "download_timeout", "max_download", "allow_insecure", "gateway", NULL
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

/* A period libcurl takes in whole milliseconds: never rounded down to 0,
 * which it reads as "no limit". */
static int valid_seconds(double seconds) {
    return seconds > 0 && seconds <= MAX_SECONDS;   /* NaN fails both */
}

static long milliseconds(double seconds) {
    return (long)ceil(seconds * 1000);
}

static int has_nul(const char *s, size_t len) {
    return s && strlen(s) != len;
}

/* host as libcurl's URL parser gives it, which writes every IPv4 form
 * (127.1, 0x7f000001) as a dotted quad: a name that only begins like one
 * ("127.0.0.18080", "127.evil.example") is a host name, found by DNS. */
static int is_loopback(const char *host) {
    unsigned char ip[4];
    if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0) return 1;
    return inet_pton(AF_INET, host, ip) == 1 && ip[0] == 127;
}

/* Checks the endpoint with libcurl's own URL parser: http or https, a host,
 * no query and no fragment; plain http only to this machine unless
 * allow_insecure. Returns NULL, or what is wrong with it. With shown, a
 * valid endpoint's form without its userinfo goes there (for curl_free;
 * NULL if out of memory). */
static const char *check_endpoint(const char *endpoint, int allow_insecure, char **shown) {
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    const char *wrong = NULL;
    if (shown) *shown = NULL;
    if (!u) return "cannot be parsed: out of memory";
    /* The paths are appended to the endpoint as text: after a '?' or '#',
     * even one libcurl reports no query or fragment for ("https://h/#"),
     * they would end up in the query or fragment, not the path. */
    if (strchr(endpoint, '?'))
        wrong = "must have no query (?...)";
    else if (strchr(endpoint, '#'))
        wrong = "must have no fragment (#...)";
    else if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK)
        wrong = "is not a URL";
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        wrong = "must be an http:// or https:// URL";
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        wrong = "has no host";
    else if (strcmp(scheme, "http") == 0 && !allow_insecure && !is_loopback(host))
        wrong = "is plain http to another machine: use https (or allow_insecure = true)";
    else if (shown && (curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
                       curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
                       curl_url_get(u, CURLUPART_URL, shown, 0) != CURLUE_OK))
        *shown = NULL;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return wrong;
}

static size_t length_without_trailing_slashes(const char *s) {
    size_t len = strlen(s);
    while (len > 0 && s[len - 1] == '/') len--;
    return len;
}

/* A malloc'd copy of s without its trailing slashes. */
static char *without_trailing_slashes(const char *s) {
    size_t len = length_without_trailing_slashes(s);
    char *copy;
    if (!(copy = malloc(len + 1))) return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

/* core.new{secret_id=, secret_key=, endpoint=, timeout=, connect_timeout=,
 * max_in_flight=, repositories=, download_timeout=, max_download=,
 * allow_insecure=, gateway={secret_id=, secret_key=, source=}} */
static int client_new(lua_State *L) {
    const char *id, *key, *endpoint, *wrong, *refused = NULL;
    size_t id_len, key_len, endpoint_len;
    double timeout, connect_timeout, download_timeout, max_download, max_in_flight;
    vc_transport_options transport;
    vc_gateway_spec gateway = {NULL, NULL, NULL, 0};
    vc_client *c;
    int r, type, allow_insecure, signed_requests;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    id = option_string(L, "secret_id", &id_len);
    key = option_string(L, "secret_key", &key_len);
    endpoint = option_string(L, "endpoint", &endpoint_len);
    timeout = option_number(L, "timeout", DEFAULT_TIMEOUT);
    connect_timeout = option_number(L, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    max_in_flight = option_number(L, "max_in_flight", DEFAULT_MAX_IN_FLIGHT);
    download_timeout = option_number(L, "download_timeout", DEFAULT_DOWNLOAD_TIMEOUT);
    max_download = option_number(L, "max_download", DEFAULT_MAX_DOWNLOAD);
    type = lua_getfield(L, 1, "allow_insecure");
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        luaL_error(L, "bad option 'allow_insecure' to 'new' (boolean expected, got %s)",
                   luaL_typename(L, -1));
    allow_insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    type = lua_getfield(L, 1, "repositories");   /* 5: kept for the client's table */
    if (type != LUA_TNIL && type != LUA_TSTRING && type != LUA_TFUNCTION)
        luaL_error(L, "bad option 'repositories' to 'new' (string or function expected, got %s)",
                   luaL_typename(L, -1));
    type = lua_getfield(L, 1, "gateway");        /* 6 */
    if (type != LUA_TNIL && type != LUA_TTABLE)
        luaL_error(L, "bad option 'gateway' to 'new' (table expected, got %s)",
                   luaL_typename(L, -1));
    signed_requests = type == LUA_TTABLE;
    VC_STACK(L, 6);
    if ((r = unknown_option(L))) return r;
    if (!id || !*id) return vc_fail(L, "invalid", "secret_id", "is required");
    if (!key || !*key) return vc_fail(L, "invalid", "secret_key", "is required");
    if (has_nul(id, id_len)) return vc_fail(L, "invalid", "secret_id", "has a NUL byte");
    if (has_nul(key, key_len)) return vc_fail(L, "invalid", "secret_key", "has a NUL byte");
    if (!endpoint) return vc_fail(L, "invalid", "endpoint", "is required");
    if (has_nul(endpoint, endpoint_len))
        return vc_fail(L, "invalid", "endpoint", "has a NUL byte");
    if (!valid_seconds(timeout))
        return vc_fail(L, "invalid", "timeout", "must be a positive number of seconds");
    if (!valid_seconds(connect_timeout))
        return vc_fail(L, "invalid", "connect_timeout", "must be a positive number of seconds");
    if (!valid_seconds(download_timeout))
        return vc_fail(L, "invalid", "download_timeout", "must be a positive number of seconds");
    if (!(max_download >= 1 && max_download <= 9007199254740992.0) ||
        max_download != floor(max_download))
        return vc_fail(L, "invalid", "max_download", "must be a whole number of bytes");
    if (!(max_in_flight >= 1 && max_in_flight <= MAX_IN_FLIGHT_LIMIT) ||
        max_in_flight != floor(max_in_flight))
        return vc_fail(L, "invalid", "max_in_flight", "must be a whole number from 1 to %d",
                       MAX_IN_FLIGHT_LIMIT);

    if ((wrong = check_endpoint(endpoint, allow_insecure, NULL)))
        return vc_fail(L, "invalid", "endpoint", "%s", wrong);
    if (signed_requests && (r = vc_gateway_check(L, 6, &gateway))) return r;   /* 7, 8, 9 */

    /* Zeroed, with its table and metatable first: from here every
     * allocation hangs off the userdata, so __gc reclaims it if anything
     * raises. */
    c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 5);
    lua_setfield(L, -2, "repositories");
    lua_setuservalue(L, -2);
    luaL_setmetatable(L, VC_CLIENT);

    c->endpoint = without_trailing_slashes(endpoint);
    if (signed_requests)
        c->gateway = vc_gateway_new(gateway.id, gateway.key, gateway.key_len, gateway.source);
    c->secret = vc_secret_new(id, id_len, key, key_len, gateway.key, gateway.key_len);
    transport.timeout_ms = milliseconds(timeout);
    transport.connect_timeout_ms = milliseconds(connect_timeout);
    transport.download_timeout_ms = milliseconds(download_timeout);
    transport.max_download = (curl_off_t)max_download;
    transport.max_in_flight = (int)max_in_flight;
    transport.multiplex = strncasecmp(endpoint, "https://", 8) == 0;
    transport.gateway = c->gateway;
    if (c->endpoint && c->secret && (c->gateway || !signed_requests))
        c->transport = vc_transport_new(&transport, &refused);
    if (refused) {
        client_release(c);
        return vc_fail(L, "network", NULL, "this libcurl refuses %s, which a safe request needs",
                       refused);
    }
    if (!c->transport) {
        client_release(c);
        return luaL_error(L, "not enough memory");
    }
    /* What messages show, as Lua strings: on 5.1 and LuaJIT a push may run a
     * finalizer that closes a client before its C strings are copied. */
    check_endpoint(endpoint, allow_insecure, &c->shown);
    if (!c->shown) {
        client_release(c);
        return luaL_error(L, "not enough memory");
    }
    vc_client_push_table(L, -1);
    lua_pushlstring(L, c->shown, length_without_trailing_slashes(c->shown));
    lua_setfield(L, -2, "shown_endpoint");
    lua_pushlstring(L, id, id_len);
    lua_setfield(L, -2, "secret_id");
    lua_pop(L, 1);
    return 1;
}

/* ---- the C side of the Client's methods (client.lua names them) -------- */

static int client_close(lua_State *L) {
    client_release(luaL_checkudata(L, 1, VC_CLIENT));
    return 0;
}

static int client_is_open(lua_State *L) {
    lua_pushboolean(L, is_open(luaL_checkudata(L, 1, VC_CLIENT)));
    return 1;
}

/* The endpoint as shown: without a user:password it may hold. */
static int client_endpoint(lua_State *L) {
    vc_client_check(L, 1);
    vc_client_push_table(L, 1);
    lua_getfield(L, -1, "shown_endpoint");
    return 1;
}

/* core.client_table(client): the table where the Lua layer keeps this
 * client's state (its scheduler, the repositories option); raises once closed. */
static int client_table(lua_State *L) {
    vc_client_check(L, 1);
    vc_client_push_table(L, 1);
    return 1;
}

static int client_tostring(lua_State *L) {
    vc_client *c = luaL_checkudata(L, 1, VC_CLIENT);
    if (!is_open(c)) {
        lua_pushfstring(L, VC_CLIENT " (closed): %p", (void *)c);
        return 1;
    }
    vc_client_push_table(L, 1);
    lua_getfield(L, 2, "shown_endpoint");
    lua_getfield(L, 2, "secret_id");
    lua_pushfstring(L, VC_CLIENT " (%s, secret id %s): %p", lua_tostring(L, 3),
                    lua_tostring(L, 4), (void *)c);
    return 1;
}

static const luaL_Reg client_meta[] = {
    {"__gc", client_close},
    {"__close", client_close},
    {"__tostring", client_tostring},
    {NULL, NULL}
};

static const luaL_Reg client_functions[] = {
    {"new", client_new},
    {"close", client_close},
    {"is_open", client_is_open},
    {"endpoint", client_endpoint},
    {"client_table", client_table},
    {NULL, NULL}
};

/* Stack at entry: module, ..., state (at index state). */
void vc_client_open(lua_State *L, int state) {
    luaL_newmetatable(L, VC_CLIENT);
    vc_setfuncs(L, client_meta, state);
    lua_newtable(L);                     /* the methods: voiceclone/client.lua fills them */
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, 1, "Client");
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    vc_setfuncs(L, client_functions, state);
    lua_pop(L, 1);
}
