/*
 * Key-pair authentication of the API gateway in front of the published
 * endpoint (Tencent's): every attempt carries
 *   X-Date: Wed, 02 Dec 2026 14:00:00 GMT
 *   Source: <source>
 *   Authorization: hmac id="<id>", algorithm="hmac-sha1", headers="x-date source",
 *                  signature="<Base64 of HMAC-SHA1(key, "x-date: <date>\nsource: <source>")>"
 * signed when libcurl gets it (transport.c), so a retry, or a request that
 * waited its turn, carries the time it really leaves.
 *
 * HMAC-SHA1 and Base64 come from libcrypto (OpenSSL), which libcurl's TLS
 * already brings: a hand-written SHA-1 would be one more thing to get wrong.
 * The gateway's key stays in C memory, wiped when freed; only the signature
 * travels, and secret.c scrubs the key from answers as it does the
 * service's key.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "vc.h"

struct vc_gateway {
    char *id, *source;               /* NUL-terminated; checked: no control characters */
    vc_buffer key;
};

#define GATEWAY_DATE_SIZE 64         /* "Wed, 02 Dec 2026 14:00:00 GMT": 29, and room */

vc_gateway *vc_gateway_new(const char *id, const char *key, size_t key_len, const char *source) {
    vc_gateway *g = calloc(1, sizeof *g);
    size_t id_len = strlen(id), source_len = strlen(source);
    if (!g) return NULL;
    g->id = malloc(id_len + 1);
    g->source = malloc(source_len + 1);
    if (!g->id || !g->source || vc_buffer_add(&g->key, key, key_len)) {
        vc_gateway_free(g);
        return NULL;
    }
    memcpy(g->id, id, id_len + 1);
    memcpy(g->source, source, source_len + 1);
    return g;
}

void vc_gateway_free(vc_gateway *g) {
    if (!g) return;
    vc_buffer_free(&g->key);
    free(g->id);
    free(g->source);
    free(g);
}

/* The Base64 of HMAC-SHA1(key, message) into out (NUL-terminated); 0, or -1. */
int vc_hmac_sha1_base64(const char *key, size_t key_len, const char *message, size_t len,
                        char out[VC_SIGNATURE_SIZE]) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (key_len > INT_MAX ||
        !HMAC(EVP_sha1(), key, (int)key_len, (const unsigned char *)message, len, digest,
              &digest_len))
        return -1;
    EVP_EncodeBlock((unsigned char *)out, digest, (int)digest_len);   /* 28 characters */
    vc_wipe(digest, sizeof digest);
    return 0;
}

/* RFC 7231's IMF-fixdate of now, with English names whatever the locale. */
static void http_date(char out[GATEWAY_DATE_SIZE]) {
    static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, GATEWAY_DATE_SIZE, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

/* Appends one header to *list; -1 (the list left as it was) if out of memory. */
static int append(struct curl_slist **list, const char *header) {
    struct curl_slist *l = curl_slist_append(*list, header);
    if (!l) return -1;
    *list = l;
    return 0;
}

struct curl_slist *vc_gateway_sign(const vc_gateway *g, const struct curl_slist *base) {
    char date[GATEWAY_DATE_SIZE], signature[VC_SIGNATURE_SIZE];
    size_t source_len = strlen(g->source), id_len = strlen(g->id);
    size_t size = source_len + id_len + 128;   /* the longer of the signed text and a header */
    char *text = malloc(size);
    struct curl_slist *list = NULL;
    const struct curl_slist *h;
    int failed = !text;
    for (h = base; h && !failed; h = h->next) failed = append(&list, h->data);
    if (!failed) {
        http_date(date);
        snprintf(text, size, "x-date: %s\nsource: %s", date, g->source);
        failed = vc_hmac_sha1_base64(g->key.data, g->key.len, text, strlen(text), signature) ||
                 snprintf(text, size, "X-Date: %s", date) < 0 || append(&list, text) ||
                 snprintf(text, size, "Source: %s", g->source) < 0 || append(&list, text) ||
                 snprintf(text, size, "Authorization: hmac id=\"%s\", algorithm=\"hmac-sha1\", "
                          "headers=\"x-date source\", signature=\"%s\"", g->id, signature) < 0 ||
                 append(&list, text);
    }
    free(text);
    if (failed) {
        curl_slist_free_all(list);
        return NULL;
    }
    return list;
}

/* Whether url goes to the endpoint's own scheme, host and port: only there
 * does a download carry the signature. */
int vc_gateway_same_origin(const char *endpoint, const char *url) {
    static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
    CURLU *a = curl_url(), *b = curl_url();
    size_t i;
    int same = a && b && curl_url_set(a, CURLUPART_URL, endpoint, 0) == CURLUE_OK &&
               curl_url_set(b, CURLUPART_URL, url, 0) == CURLUE_OK;
    for (i = 0; same && i < sizeof parts / sizeof *parts; i++) {
        char *x = NULL, *y = NULL;
        same = curl_url_get(a, parts[i], &x, CURLU_DEFAULT_PORT) == CURLUE_OK &&
               curl_url_get(b, parts[i], &y, CURLU_DEFAULT_PORT) == CURLUE_OK &&
               strcasecmp(x, y) == 0;
        curl_free(x);
        curl_free(y);
    }
    curl_url_cleanup(a);
    curl_url_cleanup(b);
    return same;
}

/* ---- the gateway option of new ----------------------------------------- */

/* The field at the top: a string (its length in *len), or NULL when absent;
 * any other type raises. It stays on the stack, which keeps it alive. */
static const char *field_string(lua_State *L, int idx, const char *key, size_t *len) {
    int type = lua_getfield(L, idx, key);
    *len = 0;
    if (type == LUA_TSTRING) return lua_tolstring(L, -1, len);
    if (type != LUA_TNIL)
        luaL_error(L, "bad option 'gateway.%s' to 'new' (string expected, got %s)", key,
                   luaL_typename(L, -1));
    return NULL;
}

static int has_control(const char *s, size_t len, const char *also) {
    size_t i;
    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F || (also && strchr(also, s[i])))
            return 1;
    return 0;
}

/* What is wrong with a field's value, or NULL. */
static const char *wrong_value(const char *s, size_t len, int sent, const char *also) {
    if (!s || len == 0) return "is required";
    if (strlen(s) != len) return "has a NUL byte";
    if (sent && has_control(s, len, also))
        return also ? "has a control character or a quote" : "has a control character";
    return NULL;
}

/* The gateway table at idx: pushes its secret_id, secret_key and source
 * (source defaults to "lua-voiceclone") and returns 0, with their pointers
 * in g; or pushes nil, err ("invalid", field "gateway.<name>") and returns 2.
 * Wrong types raise, as new's other options do. */
int vc_gateway_check(lua_State *L, int idx, vc_gateway_spec *g) {
    static const char *const names[] = {"secret_id", "secret_key", "source"};
    const char *wrong;
    size_t len[3];
    int i;
    idx = lua_absindex(L, idx);
    g->id = field_string(L, idx, "secret_id", &len[0]);
    g->key = field_string(L, idx, "secret_key", &len[1]);
    g->source = field_string(L, idx, "source", &len[2]);
    g->key_len = len[1];
    if (!g->source) {
        lua_pushliteral(L, "lua-voiceclone");
        lua_replace(L, -2);
        g->source = lua_tolstring(L, -1, &len[2]);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return vc_fail(L, "invalid", "gateway", "its options must be named");
        for (i = 0; i < 3 && strcmp(names[i], lua_tostring(L, -1)) != 0; i++) {}
        if (i == 3) {
            lua_pushfstring(L, "gateway.%s", lua_tostring(L, -1));
            return vc_fail(L, "invalid", lua_tostring(L, -1), "is not an option of gateway");
        }
    }
    if ((wrong = wrong_value(g->id, len[0], 1, "\"")))
        return vc_fail(L, "invalid", "gateway.secret_id", "%s", wrong);
    if ((wrong = wrong_value(g->key, len[1], 0, NULL)))
        return vc_fail(L, "invalid", "gateway.secret_key", "%s", wrong);
    if ((wrong = wrong_value(g->source, len[2], 1, NULL)))
        return vc_fail(L, "invalid", "gateway.source", "%s", wrong);
    return 0;
}

/* core.hmac_sha1_base64(key, message): the signature the gateway checks,
 * for the sandbox, which verifies it as the gateway does. */
static int gateway_hmac(lua_State *L) {
    size_t key_len, len;
    const char *key = luaL_checklstring(L, 1, &key_len);
    const char *message = luaL_checklstring(L, 2, &len);
    char out[VC_SIGNATURE_SIZE];
    if (vc_hmac_sha1_base64(key, key_len, message, len, out))
        return luaL_error(L, "HMAC-SHA1 failed");
    lua_pushstring(L, out);
    return 1;
}

static const luaL_Reg gateway_functions[] = {
    {"hmac_sha1_base64", gateway_hmac},
    {NULL, NULL}
};

/* Stack at entry: module (1), ..., state. */
void vc_gateway_open(lua_State *L, int state) {
    lua_pushvalue(L, 1);
    vc_setfuncs(L, gateway_functions, state);
    lua_pop(L, 1);
}
