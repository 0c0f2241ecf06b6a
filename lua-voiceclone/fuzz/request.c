/*
 * Fuzz target: the validation of a CreateJob request (rules.c's
 * vc_rules_create_job, which checks every documented rule and builds the
 * wire table) and the start of the call (core.create_job: the encoding and
 * the body with the credentials), on Lua tables made from the input.
 *
 * The input is read as a Lua table constructor by a decoder that accepts
 * anything: {inputs={{sourceData="hi"}}, outputs={...}, timeout=10}, with
 * strings ("..." with \" \\ \n \xHH escapes), integers, floats (1.5, 2.0,
 * nan, inf), true, false, [key]=value and nested tables; what it cannot read
 * it skips, and an unclosed table ends with the input. So seeds are readable
 * request tables and every mutation is still a table.
 *
 * Promises checked: validation never raises; it gives nil and an "invalid"
 * error, or a wire table that cjson encodes, that decodes and validates
 * again to the same wire table, and with which core.create_job starts a
 * request (canceled at once: nothing is sent).
 */
#include <math.h>
#include "common.h"

#define MAX_DEPTH 40

typedef struct reader {
    const char *p, *end;
} reader;

static int peek(reader *r) {
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

static void skip_space(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int is_name_start(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(int c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static int hex_digit(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void push_string(lua_State *L, reader *r) {
    char quote = *r->p++;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (r->p < r->end && *r->p != quote) {
        char c = *r->p++;
        if (c == '\\' && r->p < r->end) {
            c = *r->p++;
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c == '0') c = '\0';
            else if (c == 'x' && r->end - r->p >= 2 && hex_digit(r->p[0]) >= 0 &&
                     hex_digit(r->p[1]) >= 0) {
                c = (char)(hex_digit(r->p[0]) * 16 + hex_digit(r->p[1]));
                r->p += 2;
            }
        }
        luaL_addchar(&b, c);
    }
    if (r->p < r->end) r->p++;   /* the closing quote */
    luaL_pushresult(&b);
}

static void push_number(lua_State *L, reader *r) {
    char text[64];
    size_t n = 0;
    int is_float = 0;
    while (r->p < r->end && n < sizeof text - 1 &&
           *r->p && strchr("0123456789+-.eE", *r->p) != NULL) {
        if (*r->p == '.' || *r->p == 'e' || *r->p == 'E') is_float = 1;
        text[n++] = *r->p++;
    }
    text[n] = '\0';
    if (!is_float) {
        char *end;
        long long v = strtoll(text, &end, 10);
        if (end != text) {
            lua_pushinteger(L, (lua_Integer)v);
            return;
        }
    }
    lua_pushnumber(L, strtod(text, NULL));
}

static void push_value(lua_State *L, reader *r, int depth);

/* name, or NULL: a bare word at r. */
static size_t word(reader *r, const char **start) {
    const char *p = r->p;
    *start = p;
    if (!is_name_start(peek(r))) return 0;
    while (p < r->end && is_name_char((unsigned char)*p)) p++;
    return (size_t)(p - *start);
}

static int word_is(const char *w, size_t n, const char *s) {
    return strlen(s) == n && memcmp(w, s, n) == 0;
}

/* A value that is a word (true, false, nan, inf), else 0. */
static int push_word_value(lua_State *L, reader *r) {
    const char *w;
    size_t n = word(r, &w);
    if (word_is(w, n, "true") || word_is(w, n, "false")) lua_pushboolean(L, *w == 't');
    else if (word_is(w, n, "nan")) lua_pushnumber(L, NAN);
    else if (word_is(w, n, "inf")) lua_pushnumber(L, HUGE_VAL);
    else return 0;
    r->p += n;
    return 1;
}

static void set_entry(lua_State *L, int t) {   /* ..., key, value */
    if (lua_isnil(L, -2) || lua_isnil(L, -1) ||
        (lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2))) {
        lua_pop(L, 2);                          /* nil or NaN key: no entry */
        return;
    }
    lua_rawset(L, t);
}

static void push_table(lua_State *L, reader *r, int depth) {
    lua_Integer next = 1;
    int t;
    r->p++;                                     /* { */
    lua_newtable(L);
    t = lua_gettop(L);
    for (;;) {
        const char *w;
        size_t n;
        skip_space(r);
        if (peek(r) < 0) break;
        if (peek(r) == '}') { r->p++; break; }
        if (peek(r) == ',' || peek(r) == ';' || peek(r) == ']') { r->p++; continue; }
        n = word(r, &w);
        if (n) {
            const char *after = r->p + n;
            while (after < r->end && *after == ' ') after++;
            if (after < r->end && *after == '=') {   /* name = value */
                lua_pushlstring(L, w, n);
                r->p = after + 1;
                push_value(L, r, depth + 1);
                set_entry(L, t);
                continue;
            }
        }
        if (peek(r) == '[') {                       /* [key] = value */
            r->p++;
            push_value(L, r, depth + 1);
            skip_space(r);
            if (peek(r) == ']') r->p++;
            skip_space(r);
            if (peek(r) == '=') r->p++;
            push_value(L, r, depth + 1);
            set_entry(L, t);
            continue;
        }
        lua_pushinteger(L, next++);                 /* an item */
        push_value(L, r, depth + 1);
        set_entry(L, t);
    }
}

/* Pushes one value; at the end of the input, or deeper than MAX_DEPTH, nil. It
 * consumes at least one byte unless it stops at the end or at a closing }, ] or ,. */
static void push_value(lua_State *L, reader *r, int depth) {
    luaL_checkstack(L, 8, NULL);
    for (;;) {
        int c;
        skip_space(r);
        c = peek(r);
        if (c < 0) { lua_pushnil(L); return; }
        if (depth > MAX_DEPTH) {                    /* too deep: a byte is dropped */
            if (c == 0 || !strchr("}],;", c)) r->p++;
            lua_pushnil(L);
            return;
        }
        if (c == '{') { push_table(L, r, depth); return; }
        if (c == '"' || c == '\'') { push_string(L, r); return; }
        if ((c >= '0' && c <= '9') || c == '-' || c == '.') { push_number(L, r); return; }
        if (push_word_value(L, r)) return;
        if (c == '}' || c == ']' || c == ',') { lua_pushnil(L); return; }
        r->p++;                                     /* anything else: skipped */
    }
}

/* Deep equality of two trees of plain values. */
static int equal(lua_State *L, int a, int b, int depth) {
    int count = 0;
    a = lua_absindex(L, a), b = lua_absindex(L, b);
    if (!lua_istable(L, a) || !lua_istable(L, b)) return lua_rawequal(L, a, b);
    if (depth > MAX_DEPTH + 2) return 0;
    luaL_checkstack(L, 6, NULL);
    lua_pushnil(L);
    while (lua_next(L, a)) {
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        if (!equal(L, -2, -1, depth + 1)) { lua_pop(L, 3); return 0; }
        lua_pop(L, 2);
        count++;
    }
    lua_pushnil(L);
    while (lua_next(L, b)) lua_pop(L, 1), count--;
    return count == 0;
}

/* Stack: request. The checks of the promises above. */
static int validate(lua_State *L) {
    int results = vc_rules_create_job(L, 1);
    if (results == 2) {                            /* request, ..., nil, err */
        int err = lua_gettop(L);
        if (!lua_isnil(L, err - 1)) fuzz_fail("a refusal without nil", NULL);
        fuzz_check_error(L, err);
        lua_getfield(L, err, "kind");
        if (strcmp(lua_tostring(L, -1), "invalid") != 0)
            fuzz_fail("a request refused with another kind than invalid", lua_tostring(L, -1));
        lua_getfield(L, err, "field");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
            fuzz_fail("an error whose field is not a string", NULL);
        return 0;
    }
    if (results != 1 || lua_gettop(L) != 2 || !lua_istable(L, 2))
        fuzz_fail("validation gave no wire table", NULL);
    /* request, wire */
    vc_push_state(L, VC_ENCODE);
    lua_pushvalue(L, 2);
    lua_call(L, 1, 2);
    if (lua_type(L, 3) != LUA_TSTRING) fuzz_fail("a valid request cannot be encoded", lua_tostring(L, 4));
    lua_pop(L, 1);
    vc_push_state(L, VC_DECODE);                   /* request, wire, json, decode */
    lua_pushvalue(L, 3);
    lua_call(L, 1, 1);
    if (!lua_istable(L, 4)) fuzz_fail("the wire JSON does not decode", lua_tostring(L, 3));
    vc_response_normalize(L, 4, 0);
    if (vc_rules_create_job(L, 4) != 1) fuzz_fail("the wire table is not valid again", luaL_tolstring(L, -1, NULL));
    if (!equal(L, 2, -1, 0)) fuzz_fail("validating the wire table changes it", lua_tostring(L, 3));
    lua_settop(L, 1);
    fuzz_push(L, "client");                        /* request, client */
    lua_insert(L, 1);
    fuzz_call_core(L, "create_job", 2, 2);
    if (!lua_isuserdata(L, 1)) fuzz_fail("core.create_job refused a valid request", luaL_tolstring(L, 2, NULL));
    lua_getfield(L, 1, "cancel");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = fuzz_lua();
    reader r = {(const char *)data, (const char *)data + size};
    push_value(L, &r, 0);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    if (fuzz_pcall(L, validate, 1, 0) != LUA_OK) fuzz_fail("raised", lua_tostring(L, -1));
    fuzz_done(L);
    return 0;
}
