/*
 * From an HTTP answer to a Lua value or an error.
 *
 * Error answers are undocumented and come from two places (the service and
 * the API gateway in front of it), so nothing here assumes one shape: the
 * message, code and request id are looked for under the names either uses.
 * A refusal of the credentials (401, 403: the gateway's signature, the
 * service's secretId/secretKey) is an "auth" error, any other non-2xx "http".
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vc.h"

#define MAX_MESSAGE 300   /* bytes of a server's text kept in a message */
#define MAX_DEPTH    64   /* matches the decoder's own nesting limit */

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
long vc_utf8_length(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    long count = 0;
    while (p < end) {
        unsigned c = *p++;
        int extra;
        unsigned min, code;
        if (c < 0x80) { count++; continue; }
        else if ((c & 0xE0) == 0xC0) extra = 1, min = 0x80, code = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) extra = 2, min = 0x800, code = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) extra = 3, min = 0x10000, code = c & 0x07;
        else return -1;
        if (end - p < extra) return -1;
        while (extra--) {
            if ((*p & 0xC0) != 0x80) return -1;
            code = (code << 6) | (*p++ & 0x3F);
        }
        if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return -1;
        count++;
    }
    return count;
}

/* A float with an integer's value, which 5.3+ can hold as an integer; on
 * 5.1, 5.2 and LuaJIT every number is a float already. */
static int whole_float(lua_State *L, int idx, lua_Integer *n) {
#if LUA_VERSION_NUM >= 503
    lua_Number f;
    if (lua_type(L, idx) != LUA_TNUMBER || lua_isinteger(L, idx)) return 0;
    f = lua_tonumber(L, idx);
    return f == floor(f) && lua_numbertointeger(f, n);
#else
    (void)L, (void)idx, (void)n;
    return 0;
#endif
}

/* Maps lua-cjson's decoding to plain Lua values, in place: a null field
 * becomes an absent one (a null inside an array keeps its place, as
 * voiceclone.null, so # and ipairs see every item), and integral numbers
 * (cjson decodes all as floats) become integers, as the API means them. */
void vc_response_normalize(lua_State *L, int idx, int depth) {
    idx = lua_absindex(L, idx);
    if (depth > MAX_DEPTH) return;
    luaL_checkstack(L, 4, NULL);
    vc_push_state(L, VC_NULL);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_Integer n;
        if (lua_rawequal(L, -1, -3) && lua_type(L, -2) == LUA_TSTRING) {
            lua_pushvalue(L, -2);
            lua_pushnil(L);
            lua_rawset(L, idx);   /* changing a present field is safe mid-traversal */
        } else if (whole_float(L, -1, &n)) {
            lua_pushvalue(L, -2);
            lua_pushinteger(L, n);
            lua_rawset(L, idx);
        } else if (lua_istable(L, -1)) {
            vc_response_normalize(L, -1, depth + 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Scrubs the key from every string of the decoded tree at idx, keys too.
 * The raw bytes were scrubbed before decoding; a string only differs from
 * its bytes where an escape made it ("\u0066..." in place of "f..."), so
 * only bodies with a backslash get here. A key that changes is replaced
 * after the traversal, which may not add keys. */
static void scrub_tree(lua_State *L, int idx, const vc_secret *secret, int depth) {
    lua_Integer renamed = 0, i;
    VC_STACK_MARK(L);
    idx = lua_absindex(L, idx);
    if (depth > MAX_DEPTH) return;
    luaL_checkstack(L, 6, NULL);
    lua_newtable(L);                                /* renamed: old key, new key, ... */
    lua_pushnil(L);
    while (lua_next(L, idx)) {                      /* ..., renamed, key, value */
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_pushvalue(L, -1);
            vc_secret_scrub(L, secret);
            if (!lua_rawequal(L, -1, -2)) {
                lua_pushvalue(L, -3);
                lua_insert(L, -2);
                lua_rawset(L, idx);                 /* changing a present field is safe */
            } else {
                lua_pop(L, 1);
            }
        } else if (lua_istable(L, -1)) {
            scrub_tree(L, -1, secret, depth + 1);
        }
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_pushvalue(L, -1);
            vc_secret_scrub(L, secret);
            if (!lua_rawequal(L, -1, -2)) {
                lua_pushvalue(L, -2);
                lua_rawseti(L, -4, ++renamed);
                lua_rawseti(L, -3, ++renamed);
            } else {
                lua_pop(L, 1);
            }
        }
    }
    for (i = 1; i <= renamed; i += 2) {             /* t[new] = t[old], t[old] = nil */
        lua_rawgeti(L, -1, i + 1);
        lua_rawgeti(L, -2, i);
        lua_rawget(L, idx);
        lua_rawset(L, idx);
        lua_rawgeti(L, -1, i);
        lua_pushnil(L);
        lua_rawset(L, idx);
    }
    lua_pop(L, 1);
    VC_STACK_LEFT(L, 0);
}

/* Pushes the value at a dotted path under the table at idx, or nothing and
 * returns 0 when the path does not lead to a string or number. */
static int push_path(lua_State *L, int idx, const char *path) {
    char key[32];
    int top = lua_gettop(L);
    lua_pushvalue(L, idx);
    while (*path) {
        size_t n = strcspn(path, ".");
        if (!lua_istable(L, -1) || n >= sizeof key) break;
        memcpy(key, path, n);
        key[n] = '\0';
        lua_getfield(L, -1, key);
        lua_remove(L, -2);
        path += n + (path[n] == '.');
    }
    if (!*path && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
        lua_tostring(L, -1);   /* numbers become strings in place */
        return 1;
    }
    lua_settop(L, top);
    return 0;
}

static int push_first(lua_State *L, int idx, const char *const paths[]) {
    for (; *paths; paths++)
        if (push_path(L, idx, *paths)) return 1;
    return 0;
}

static const char *const message_paths[] = {
    "error.message", "error.Message", "Error.Message", "Response.Error.Message",
    "message", "Message", "msg", "errorMessage", "errMsg", "error", NULL
};
static const char *const code_paths[] = {
    "error.code", "error.Code", "Error.Code", "Response.Error.Code",
    "code", "Code", "errorCode", NULL
};
static const char *const request_id_paths[] = {
    "requestId", "RequestId", "Response.RequestId", "request_id", NULL
};

/* Pushes a readable one-line excerpt, at most `limit` bytes, of a non-JSON
 * body (an HTML error page: its <title> when it has one). */
static void push_excerpt(lua_State *L, const char *body, size_t len, size_t limit) {
    luaL_Buffer b;
    const char *title = len ? strstr(body, "<title>") : NULL;
    size_t i, kept = 0;
    int space = 0;
    if (title && title < body + len) {
        const char *end = strstr(title, "</title>");
        if (end) body = title + 7, len = (size_t)(end - body);
    }
    luaL_buffinit(L, &b);
    for (i = 0; i < len && kept < limit; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c < 0x20 || c == 0x7F) { space = kept > 0; continue; }
        if (space) luaL_addchar(&b, ' '), kept++, space = 0;
        luaL_addchar(&b, (char)c);
        kept++;
    }
    luaL_pushresult(&b);
}

/* Adds status, code and request_id (found in the decoded body at idx, which
 * may be nil; scrubbed of the key when secret is given) to the error at the top. */
static void add_details(lua_State *L, const vc_secret *secret, int decoded, long status) {
    if (status) vc_error_set_integer(L, "status", status);
    if (!lua_istable(L, decoded)) return;
    if (push_first(L, decoded, request_id_paths)) {
        if (secret) vc_secret_scrub(L, secret);
        lua_setfield(L, -2, "request_id");
    }
    if (push_first(L, decoded, code_paths)) {
        if (secret) vc_secret_scrub(L, secret);
        lua_setfield(L, -2, "code");
    }
}

/* nil and an "api" error for a 2xx answer whose content is not what the
 * contract says; root is the decoded body, for its request id. Returns 2. */
int vc_response_fail(lua_State *L, const vc_outcome *o, int root, const char *fmt, ...) {
    va_list ap;
    root = lua_absindex(L, root);
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    vc_error_push(L, "api", lua_tostring(L, -1));
    lua_remove(L, -2);
    add_details(L, o->secret, root, 0);
    return 2;
}

/* With the root and a response object at the top: pushes response[key]
 * when it is a table and returns 0, else nil and an "api" error (2). */
int vc_response_table(lua_State *L, const vc_outcome *o, const char *where, const char *key) {
    if (lua_getfield(L, -1, key) == LUA_TTABLE) return 0;
    return vc_response_fail(L, o, -3, "%s has no %s", where, key);
}

/* Seconds the server asks to wait (Retry-After: seconds or an HTTP date), or -1. */
static double retry_after(const char *value) {
    char *end;
    double seconds;
    time_t when;
    if (!*value) return -1;
    seconds = strtod(value, &end);
    if (end != value && *end == '\0') return seconds >= 0 ? seconds : -1;
    if ((when = curl_getdate(value, NULL)) == -1) return -1;
    seconds = difftime(when, time(NULL));
    return seconds > 0 ? seconds : 0;
}

const char *vc_response_kind(long status) {
    return status == 401 || status == 403 ? "auth" : "http";
}

/* To the error at the top: an HTTP error's status, whether a retry may
 * help, and the server's Retry-After. */
void vc_response_http_details(lua_State *L, const vc_outcome *o) {
    double after = retry_after(o->retry_after);
    vc_error_set_integer(L, "status", o->status);
    vc_error_set_boolean(L, "retryable", o->status == 408 || o->status == 429 ||
                                          o->status == 500 || o->status == 502 ||
                                          o->status == 503 || o->status == 504);
    if (after >= 0) {
        lua_pushnumber(L, after);
        lua_setfield(L, -2, "retry_after");
    }
}

/* The length of s cut to at most max bytes, not inside a UTF-8 character. */
static size_t utf8_cut(const char *s, size_t len, size_t max) {
    if (len <= max) return len;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    return max;
}

/* nil, err with the server's own words (scrubbed of the key) in it. */
static int fail_with_server_text(lua_State *L, const vc_secret *secret, const char *kind,
                                 const char *what, int decoded, const char *body,
                                 size_t len, long status) {
    size_t text_len;
    const char *text;
    /* cut long enough that a key straddling the cut is still whole for
     * the scrubbing; the message is cut to MAX_MESSAGE after it */
    if (!(lua_istable(L, decoded) && push_first(L, decoded, message_paths)))
        push_excerpt(L, body, len, MAX_MESSAGE + vc_secret_longest_form(secret));
    vc_secret_scrub(L, secret);
    text = lua_tolstring(L, -1, &text_len);
    if (text_len > MAX_MESSAGE) {
        lua_pushlstring(L, text, utf8_cut(text, text_len, MAX_MESSAGE));
        lua_replace(L, -2);
    }
    lua_pushfstring(L, lua_rawlen(L, -1) ? "%s: %s" : "%s", what, lua_tostring(L, -1));
    lua_pushnil(L);
    vc_error_push(L, kind, lua_tostring(L, -2));
    add_details(L, secret, decoded, status);
    return 2;
}

/* nil and a "network" or "timeout" error for a transfer libcurl failed. */
int vc_response_transport_error(lua_State *L, const vc_outcome *o) {
    int timeout = o->result == CURLE_OPERATION_TIMEDOUT;
    vc_fail(L, timeout ? "timeout" : "network", NULL, "%s", o->error);
    switch (o->result) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT: case CURLE_SEND_ERROR: case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE: case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        vc_error_set_boolean(L, "retryable", 1);
        break;
    default:
        break;
    }
    vc_error_set_integer(L, "curl_code", o->result);
    return 2;
}

int vc_response_decode(lua_State *L, const vc_secret *secret, const vc_outcome *o,
                       const char *response_key) {
    const char *body = o->body;
    size_t len = o->len;
    int decoded;
    VC_STACK_MARK(L);

    if (o->too_large)
        return vc_fail(L, "decode", NULL, "the response body is too large for this API");
    if (o->result != CURLE_OK) return vc_response_transport_error(L, o);

    vc_push_state(L, VC_DECODE);
    lua_pushvalue(L, -2);
    lua_call(L, 1, 2);            /* cjson.safe: value, or nil and a message */
    lua_pop(L, 1);
    decoded = lua_gettop(L);
    if (secret && lua_istable(L, decoded) && memchr(body, '\\', len))
        scrub_tree(L, decoded, secret, 0);

    if (o->status < 200 || o->status > 299) {
        lua_pushfstring(L, "HTTP %d", (int)o->status);
        fail_with_server_text(L, secret, vc_response_kind(o->status), lua_tostring(L, -1),
                              decoded, body, len, o->status);
        vc_response_http_details(L, o);
        return 2;
    }
    if (lua_isnil(L, decoded))
        return vc_fail(L, "decode", NULL, "the response is not JSON (HTTP %d, %d bytes)",
                       (int)o->status, (int)len);
    while (*body == ' ' || *body == '\t' || *body == '\r' || *body == '\n') body++;
    if (!lua_istable(L, decoded) || *body != '{')   /* an array decodes to a table too */
        return vc_fail(L, "decode", NULL, "the response is not a JSON object");

    lua_getfield(L, decoded, response_key);
    if (!lua_istable(L, -1)) {
        lua_pushfstring(L, "the response has no %s", response_key);
        return fail_with_server_text(L, secret, "api", lua_tostring(L, -1), decoded, "", 0,
                                     o->status);
    }
    vc_response_normalize(L, decoded, 0);
    VC_STACK_LEFT(L, 2);          /* the decoded body, and its response */
    return 0;
}
