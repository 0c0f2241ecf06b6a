/*
 * Fuzz target: the endpoint option of core.new (client.c's check_endpoint,
 * which parses it with libcurl's URL API), with allow_insecure off and on;
 * for a client it makes, the routes it will POST to (vc_client_route) and
 * the endpoint it shows. Only parsing: the client is closed undriven.
 *
 * Promises checked: no raise; a refusal is an "invalid" error on the
 * endpoint field; an accepted endpoint has no '?' or '#', its routes parse
 * and go to the endpoint's own scheme, host and port, under its path, with
 * no query or fragment; plain http is accepted only to a loopback address
 * (decided here independently of client.c) unless allow_insecure; the
 * endpoint shown (for messages only: libcurl writes a '%' in a host as %25)
 * parses and has no user or password in it.
 */
#include <arpa/inet.h>
#include "common.h"

typedef struct url_parts {
    char *scheme, *host, *port, *path, *query, *fragment, *user, *password;
} url_parts;

static void parts_of(CURLU *u, url_parts *p) {
    memset(p, 0, sizeof *p);
    curl_url_get(u, CURLUPART_SCHEME, &p->scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &p->host, 0);
    curl_url_get(u, CURLUPART_PORT, &p->port, CURLU_DEFAULT_PORT);
    curl_url_get(u, CURLUPART_PATH, &p->path, 0);
    curl_url_get(u, CURLUPART_QUERY, &p->query, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &p->fragment, 0);
    curl_url_get(u, CURLUPART_USER, &p->user, 0);
    curl_url_get(u, CURLUPART_PASSWORD, &p->password, 0);
}

static int parse(const char *url, url_parts *p) {
    CURLU *u = curl_url();
    int ok;
    memset(p, 0, sizeof *p);
    if (!u) fuzz_fail("out of memory", NULL);
    ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK;
    if (ok) parts_of(u, p);
    curl_url_cleanup(u);
    return ok;
}

static void parts_free(url_parts *p) {
    curl_free(p->scheme), curl_free(p->host), curl_free(p->port), curl_free(p->path);
    curl_free(p->query), curl_free(p->fragment), curl_free(p->user), curl_free(p->password);
}

static int same(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int ends_with(const char *s, const char *tail) {
    size_t n = s ? strlen(s) : 0, m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

static int loopback(const char *host) {
    unsigned char ip[16];
    if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0) return 1;
    return inet_pton(AF_INET, host, ip) == 1 && ip[0] == 127;
}

/* The route of path, as libcurl is handed it (CURLOPT_CURLU): where the
 * endpoint says, under its path. */
static void check_route(vc_client *c, const url_parts *endpoint, const char *path) {
    CURLU *route = vc_client_route(c, path);
    url_parts p;
    if (!route) fuzz_fail("an accepted endpoint gives no route", path);
    parts_of(route, &p);
    if (!same(p.scheme, endpoint->scheme) || !same(p.host, endpoint->host) ||
        !same(p.port, endpoint->port) || !same(p.user, endpoint->user) ||
        !same(p.password, endpoint->password))
        fuzz_fail("a route goes to another server than the endpoint", p.host);
    if (!ends_with(p.path, path)) fuzz_fail("a route does not end with the API path", p.path);
    if (p.query || p.fragment) fuzz_fail("a route has a query or fragment", p.path);
    parts_free(&p);
}

/* Stack: endpoint string. */
static int try_endpoint(lua_State *L) {
    int allow_insecure = lua_toboolean(L, 2);
    const char *endpoint = lua_tostring(L, 1);
    url_parts parts, shown;
    vc_client *c;
    lua_pushvalue(L, 1);
    fuzz_push_settings(L);
    lua_pushboolean(L, allow_insecure);
    lua_setfield(L, -2, "allow_insecure");
    fuzz_call_core(L, "new", 1, 2);                /* endpoint, allow, client|nil, err */
    if (lua_isnil(L, 3)) {
        fuzz_check_error(L, 4);
        lua_getfield(L, 4, "kind");
        lua_getfield(L, 4, "field");
        if (strcmp(lua_tostring(L, -2), "invalid") != 0 || !lua_isstring(L, -1) ||
            strcmp(lua_tostring(L, -1), "endpoint") != 0)
            fuzz_fail("an endpoint refused with another error than invalid/endpoint",
                      luaL_tolstring(L, 4, NULL));
        return 0;
    }
    c = vc_client_check(L, 3);
    if (strlen(endpoint) != lua_rawlen(L, 1)) fuzz_fail("an endpoint with a NUL byte accepted", NULL);
    if (strchr(endpoint, '?') || strchr(endpoint, '#'))
        fuzz_fail("an endpoint with '?' or '#' accepted", endpoint);
    if (!parse(endpoint, &parts)) fuzz_fail("an endpoint libcurl cannot parse accepted", endpoint);
    if (!parts.host || !parts.scheme ||
        (strcmp(parts.scheme, "https") != 0 && strcmp(parts.scheme, "http") != 0))
        fuzz_fail("an endpoint without an http(s) scheme and a host accepted", endpoint);
    if (strcmp(parts.scheme, "http") == 0 && !allow_insecure && !loopback(parts.host))
        fuzz_fail("plain http to another machine accepted", endpoint);
    check_route(c, &parts, VC_PATH_JOB);
    check_route(c, &parts, VC_PATH_MODELS);
    check_route(c, &parts, VC_PATH_JOB);           /* the one made before */

    lua_pushvalue(L, 3);
    fuzz_call_core(L, "endpoint", 1, 1);
    if (!parse(lua_tostring(L, -1), &shown)) fuzz_fail("the endpoint shown does not parse", lua_tostring(L, -1));
    if (shown.user || shown.password) fuzz_fail("the endpoint shown has a user or password", lua_tostring(L, -1));
    luaL_tolstring(L, 3, NULL);
    if (strstr(lua_tostring(L, -1), FUZZ_SECRET_KEY) && !strstr(endpoint, FUZZ_SECRET_KEY))
        fuzz_fail("tostring(client) shows the key", NULL);   /* unless it was in the endpoint */
    parts_free(&parts);
    parts_free(&shown);
    lua_pushvalue(L, 3);
    fuzz_call_core(L, "close", 1, 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = fuzz_lua();
    int allow;
    for (allow = 0; allow <= 1; allow++) {
        lua_pushlstring(L, (const char *)data, size);
        lua_pushboolean(L, allow);
        if (fuzz_pcall(L, try_endpoint, 2, 0) != LUA_OK) fuzz_fail("raised", lua_tostring(L, -1));
    }
    fuzz_done(L);
    return 0;
}
