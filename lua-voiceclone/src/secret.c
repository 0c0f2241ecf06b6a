/*
 * The credentials. They travel in every request body, so they live in C
 * memory only: the JSON-escaped envelope every body shares, and the forms
 * in which a server may quote the key back (raw; JSON-escaped as we write it
 * and with "/" as "\/" as lua-cjson, PHP and others write it; URL-encoded
 * with upper- and lowercase hex; HTML-escaped), to scrub it from anything
 * that reaches Lua. The API gateway's key (gateway.c), when there is one,
 * never travels, and is scrubbed all the same.
 *
 * Reference-counted: the client holds one reference and each request being
 * read holds one, so a client closed by a finalizer in the middle of reading
 * an answer does not pull the key forms from under the scrubbing. The last
 * reference wipes everything.
 */
#define _GNU_SOURCE   /* memmem */
#include <stdlib.h>
#include <string.h>
#include "vc.h"

enum { RAW, JSON, JSON_SLASH, URL, URL_LOWER, HTML, FORMS };
enum { KEYS = 2 };                 /* the service's key, the gateway's */
#define ALL_FORMS (KEYS * FORMS)

struct vc_secret {
    int refs;
    vc_buffer envelope;
    vc_buffer forms[ALL_FORMS];    /* empty when the same as an earlier form */
};

static int put_url(vc_buffer *b, const char *s, size_t len, const char *hex) {
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char escaped[3] = {'%', hex[c >> 4], hex[c & 15]};
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || strchr("-._~", c);
        if (vc_buffer_add(b, plain ? (const char *)&s[i] : escaped, plain ? 1 : 3)) return -1;
    }
    return 0;
}

static int put_html(vc_buffer *b, const char *s, size_t len) {
    size_t i;
    for (i = 0; i < len; i++) {
        const char *entity = s[i] == '&' ? "&amp;" : s[i] == '<' ? "&lt;" : s[i] == '>' ? "&gt;"
                           : s[i] == '"' ? "&quot;" : s[i] == '\'' ? "&#39;" : NULL;
        if (entity ? vc_buffer_add(b, entity, strlen(entity)) : vc_buffer_add(b, &s[i], 1))
            return -1;
    }
    return 0;
}

/* The JSON string's inside, without its quotes. */
static int put_json(vc_buffer *b, const char *s, size_t len) {
    size_t start = b->len;
    if (vc_json_string(s, len, vc_buffer_put, b)) return -1;
    memmove(b->data + start, b->data + start + 1, b->len - start - 2);
    b->len -= 2;
    return 0;
}

/* The JSON form with every "/" written "\/", as many encoders do. */
static int put_json_slash(vc_buffer *b, const vc_buffer *json) {
    size_t i;
    for (i = 0; i < json->len; i++)
        if (json->data[i] == '/' ? vc_buffer_add(b, "\\/", 2) : vc_buffer_add(b, &json->data[i], 1))
            return -1;
    return 0;
}

/* The forms of a key into f[RAW..HTML]. */
static int make_forms(vc_buffer *f, const char *key, size_t len) {
    return vc_buffer_add(&f[RAW], key, len) || put_json(&f[JSON], key, len) ||
           put_json_slash(&f[JSON_SLASH], &f[JSON]) ||
           put_url(&f[URL], key, len, "0123456789ABCDEF") ||
           put_url(&f[URL_LOWER], key, len, "0123456789abcdef") || put_html(&f[HTML], key, len);
}

static void drop_duplicates(vc_secret *s) {
    int i, j;
    for (i = 1; i < ALL_FORMS; i++)   /* one form to look for where two are the same */
        for (j = 0; j < i; j++)
            if (s->forms[i].len && s->forms[i].len == s->forms[j].len &&
                memcmp(s->forms[i].data, s->forms[j].data, s->forms[i].len) == 0)
                s->forms[i].len = 0;
}

vc_secret *vc_secret_new(const char *id, size_t id_len, const char *key, size_t key_len,
                         const char *gateway_key, size_t gateway_key_len) {
    vc_secret *s = calloc(1, sizeof *s);
    vc_buffer *e;
    if (!s) return NULL;
    s->refs = 1;
    e = &s->envelope;
    if (vc_buffer_add(e, ",\"secretId\":", 12) || vc_json_string(id, id_len, vc_buffer_put, e) ||
        vc_buffer_add(e, ",\"secretKey\":", 13) || vc_json_string(key, key_len, vc_buffer_put, e) ||
        vc_buffer_add(e, ",", 1) || make_forms(s->forms, key, key_len) ||
        (gateway_key && make_forms(s->forms + FORMS, gateway_key, gateway_key_len))) {
        vc_secret_unref(s);
        return NULL;
    }
    drop_duplicates(s);
    return s;
}

vc_secret *vc_secret_ref(vc_secret *s) {
    s->refs++;
    return s;
}

void vc_secret_unref(vc_secret *s) {
    int i;
    if (!s || --s->refs > 0) return;
    vc_buffer_free(&s->envelope);
    for (i = 0; i < ALL_FORMS; i++) {
        s->forms[i].len = s->forms[i].cap;   /* a dropped duplicate still holds its bytes */
        vc_buffer_free(&s->forms[i]);
    }
    free(s);
}

const char *vc_secret_envelope(const vc_secret *s, size_t *len) {
    *len = s->envelope.len;
    return s->envelope.data;
}

size_t vc_secret_longest_form(const vc_secret *s) {
    size_t longest = 0;
    int i;
    for (i = 0; i < ALL_FORMS; i++)
        if (s->forms[i].len > longest) longest = s->forms[i].len;
    return longest;
}

/* The length of the longest form of a key that starts at p, or 0 (the
 * longest: one key may begin with the other). */
static size_t form_at(const vc_secret *s, const char *p, size_t left) {
    size_t longest = 0;
    int i;
    for (i = 0; i < ALL_FORMS; i++) {
        const vc_buffer *f = &s->forms[i];
        if (f->len > longest && f->len <= left && memcmp(p, f->data, f->len) == 0)
            longest = f->len;
    }
    return longest;
}

/* memmem: the key may follow a NUL byte, where strstr would stop looking. */
static int has_form(const vc_secret *s, const char *text, size_t len) {
    int i;
    for (i = 0; i < ALL_FORMS; i++)
        if (s->forms[i].len && memmem(text, len, s->forms[i].data, s->forms[i].len)) return 1;
    return 0;
}

/* Shorter forms would match ordinary text: in an answer's raw bytes only a
 * form this long is masked (a real key is 32 characters). */
#define RAW_MASK_MIN 6

void vc_secret_scrub_bytes(const vc_secret *s, char *text, size_t *len) {
    size_t i = 0, out = 0;
    if (!has_form(s, text, *len)) return;
    while (i < *len) {
        size_t n = form_at(s, text + i, *len - i);
        if (n >= RAW_MASK_MIN) {
            memcpy(text + out, "***", 3);   /* never longer than what it replaces */
            out += 3;
            i += n;
        } else {
            text[out++] = text[i++];
        }
    }
    vc_wipe(text + out, *len - out);
    *len = out;
}

void vc_secret_scrub(lua_State *L, const vc_secret *s) {
    size_t len, i = 0;
    const char *text = lua_tolstring(L, -1, &len);
    luaL_Buffer b;
    if (!text || !has_form(s, text, len)) return;
    luaL_buffinit(L, &b);   /* only luaL_add* below: the buffer owns the stack top */
    while (i < len) {
        size_t n = form_at(s, text + i, len - i);
        if (n) {
            luaL_addlstring(&b, "***", 3);
            i += n;
        } else {
            luaL_addchar(&b, text[i]);
            i++;
        }
    }
    luaL_pushresult(&b);
    lua_replace(L, -2);
}
