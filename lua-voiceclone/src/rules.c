/*
 * Every documented rule of the requests, checked before anything is sent,
 * while the wire table is built from the caller's table.
 *
 * Copying rather than sending the caller's table means only documented
 * fields travel and arrays are fresh sequences (so they encode as JSON
 * arrays). Values are the service's own: inputSelectors count from 0, as in
 * its documentation. A broken rule gives nil and an "invalid" error whose
 * field names the place in the caller's own table
 * ("outputs[1].inputSelectors[2]": Lua's index of the item).
 *
 * Convention: a check returns 0 when it passed, or 2 with nil and the error
 * pushed, which the caller returns as they are. A request is pushed as a
 * wire table (encoded by lua-cjson), or as JSON text when it is one or two
 * scalars.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "vc.h"

#define MAX_TEXT_CHARS       512   /* sourceData: at most */
#define CUSTOM_ID_BELOW       64   /* customId: fewer than */
#define MODEL_NAME_BELOW      64   /* modelName: fewer than */
#define OUTPUT_PREFIX_BELOW   20   /* outputPrefix: fewer than */
#define MAX_EPOCHS            50
#define MAX_MODELS_PAGE      100

#define TYPE_GENERATE 1
#define TYPE_TRAIN    2

/* Field paths are short and of bounded depth: a fixed buffer does. */
typedef char vc_path[160];

static int invalid(lua_State *L, const char *field, const char *fmt, ...) {
    va_list ap;
    const char *message;
    va_start(ap, fmt);
    message = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return vc_fail(L, "invalid", field, "%s", message);
}

/* The paths' depth is bounded, so they always fit; were one cut short it
 * would still name the place. */
static const char *join(vc_path out, const char *prefix, const char *name) {
    if (snprintf(out, sizeof(vc_path), "%s%s%s", prefix, *prefix ? "." : "", name) < 0)
        *out = '\0';
    return out;
}

static const char *join_index(vc_path out, const char *prefix, lua_Integer i) {
    if (snprintf(out, sizeof(vc_path), "%s[%lld]", prefix, (long long)i) < 0) *out = '\0';
    return out;
}

/* Rejects keys that are not documented: a typo ("customID") would
 * otherwise be dropped without a word. */
static int check_keys(lua_State *L, int t, const char *const allowed[], const char *path) {
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *key;
        int i, known = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return invalid(L, *path ? path : NULL, "has a key that is not a field name (%s)",
                           luaL_typename(L, -1));
        key = lua_tostring(L, -1);
        for (i = 0; allowed[i] && !known; i++) known = strcmp(key, allowed[i]) == 0;
        if (!known) {
            vc_path field;
            return invalid(L, join(field, path, key), "is not a field of this request");
        }
    }
    return 0;
}

/* The length of a sequence t[1..n] with no other keys, or -1. */
static lua_Integer sequence_length(lua_State *L, int t) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, t), count = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return -1;
        }
        count++;
    }
    return count == n ? n : -1;
}

static int check_array(lua_State *L, int t, const char *path, lua_Integer *n) {
    if (!lua_istable(L, t))
        return invalid(L, path, "must be an array (a Lua sequence), got %s", luaL_typename(L, t));
    *n = sequence_length(L, t);
    if (*n < 0) return invalid(L, path, "must be an array (a Lua sequence without holes)");
    if (*n == 0) return invalid(L, path, "must not be empty");
    return 0;
}

/* OPTIONAL: may be absent; NONEMPTY: may be absent, not empty;
 * REQUIRED: present, and for strings not empty. */
enum { OPTIONAL = 0, REQUIRED = 1, NONEMPTY = 2 };

/* Checks the string at the top against the flags above; chars_below > 0
 * means "fewer than that many characters". Leaves the value. */
static int check_string(lua_State *L, const char *path, int flags, int chars_below) {
    size_t len;
    const char *s;
    long chars;
    if (lua_isnil(L, -1))
        return flags & REQUIRED ? invalid(L, path, "is required") : 0;
    if (lua_type(L, -1) != LUA_TSTRING)
        return invalid(L, path, "must be a string, got %s", luaL_typename(L, -1));
    s = lua_tolstring(L, -1, &len);
    chars = vc_utf8_length(s, len);
    if (chars < 0) return invalid(L, path, "is not valid UTF-8");
    if (flags != OPTIONAL && len == 0) return invalid(L, path, "must not be empty");
    if (chars_below > 0 && chars >= chars_below)
        return invalid(L, path, "must have at most %d characters (has %d)", chars_below - 1,
                       (int)chars);
    return 0;
}

/* Checks the integer at the top against [min, max]; nil allowed unless
 * required. Integral floats (2.0) count as integers. */
static int check_integer(lua_State *L, const char *path, int required,
                         lua_Integer min, lua_Integer max, lua_Integer *value) {
    int exact;
    if (lua_isnil(L, -1))
        return required ? invalid(L, path, "is required") : 0;
    if (lua_type(L, -1) != LUA_TNUMBER)
        return invalid(L, path, "must be an integer, got %s", luaL_typename(L, -1));
    *value = lua_tointegerx(L, -1, &exact);
    if (!exact) return invalid(L, path, "must be an integer");
    if (*value < min || *value > max) {
        char range[80];   /* lua_pushfstring has no format for lua_Integer before 5.3 */
        snprintf(range, sizeof range, "between %lld and %lld (is %lld)", (long long)min,
                 (long long)max, (long long)*value);
        return invalid(L, path, "must be %s", range);
    }
    return 0;
}

/* Moves src[key], checked as a string, into the table at the top. */
static int copy_string(lua_State *L, int src, const char *key, const char *prefix,
                       int flags, int chars_below) {
    vc_path path;
    int r;
    lua_getfield(L, src, key);
    if ((r = check_string(L, join(path, prefix, key), flags, chars_below))) return r;
    lua_setfield(L, -2, key);   /* setting nil leaves the field out */
    return 0;
}

static int copy_integer(lua_State *L, int src, const char *key, const char *prefix,
                        int required, lua_Integer min, lua_Integer max, lua_Integer *value) {
    vc_path path;
    lua_Integer v = 0;
    int r;
    lua_getfield(L, src, key);
    if ((r = check_integer(L, join(path, prefix, key), required, min, max, &v))) return r;
    if (!lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushinteger(L, v);
    }
    lua_setfield(L, -2, key);
    if (value) *value = v;
    return 0;
}

static int check_table(lua_State *L, const char *path, int required) {
    if (lua_isnil(L, -1)) return required ? invalid(L, path, "is required") : 0;
    if (!lua_istable(L, -1))
        return invalid(L, path, "must be a table, got %s", luaL_typename(L, -1));
    return 0;
}

static int is_model_name(const char *s, size_t len) {
    size_t i;
    for (i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;   /* a NUL byte too */
    return 1;
}

static int copy_source(lua_State *L, int input, const char *prefix) {
    static const char *const fields[] = {"contentId", "path", NULL};
    vc_path path;
    int source, r;
    VC_STACK_MARK(L);
    lua_getfield(L, input, "source");
    source = lua_gettop(L);
    if ((r = check_keys(L, source, fields, join(path, prefix, "source")))) return r;
    lua_createtable(L, 0, 2);
    if ((r = copy_string(L, source, "contentId", path, REQUIRED, 0))) return r;
    if ((r = copy_string(L, source, "path", path, REQUIRED, 0))) return r;
    lua_setfield(L, -3, "source");   /* into the wire input */
    lua_pop(L, 1);
    VC_STACK_LEFT(L, 0);
    return 0;
}

/* One input: exactly one of sourceData, url, source; pushes its wire table. */
static int copy_input(lua_State *L, int input, const char *prefix) {
    static const char *const fields[] = {"sourceData", "url", "source", NULL};
    vc_path path;
    int r, present = 0, i;
    VC_STACK_MARK(L);
    if ((r = check_keys(L, input, fields, prefix))) return r;
    for (i = 0; fields[i]; i++) present += lua_getfield(L, input, fields[i]) != LUA_TNIL;
    lua_pop(L, 3);
    if (present != 1)
        return invalid(L, prefix, "must have exactly one of sourceData, url and source (has %d)",
                       present);
    lua_createtable(L, 0, 1);
    if ((r = copy_string(L, input, "sourceData", prefix, NONEMPTY, MAX_TEXT_CHARS + 1))) return r;
    if ((r = copy_string(L, input, "url", prefix, NONEMPTY, 0))) return r;
    if (lua_getfield(L, input, "source") == LUA_TNIL) {
        lua_pop(L, 1);
        VC_STACK_LEFT(L, 1);
        return 0;
    }
    if ((r = check_table(L, join(path, prefix, "source"), REQUIRED))) return r;
    lua_pop(L, 1);
    VC_STACK_LEFT(L, 1);
    return copy_source(L, input, prefix);
}

static int copy_inputs(lua_State *L, int request, lua_Integer *count) {
    int inputs, r;
    lua_Integer i;
    VC_STACK_MARK(L);
    lua_getfield(L, request, "inputs");
    inputs = lua_gettop(L);
    if ((r = check_array(L, inputs, "inputs", count))) return r;
    lua_createtable(L, (int)*count, 0);
    for (i = 1; i <= *count; i++) {
        vc_path path;
        join_index(path, "inputs", i);
        lua_rawgeti(L, inputs, i);
        if ((r = check_table(L, path, REQUIRED))) return r;
        if ((r = copy_input(L, lua_gettop(L), path))) return r;
        lua_rawseti(L, -3, i);   /* ... inputs, wire_inputs, input, wire_input */
        lua_pop(L, 1);
    }
    lua_setfield(L, -3, "inputs");
    lua_pop(L, 1);
    VC_STACK_LEFT(L, 0);
    return 0;
}

static int copy_selectors(lua_State *L, int output, const char *prefix, lua_Integer inputs) {
    vc_path path;
    int selectors, r;
    lua_Integer n, i;
    VC_STACK_MARK(L);
    lua_getfield(L, output, "inputSelectors");
    selectors = lua_gettop(L);
    join(path, prefix, "inputSelectors");
    if (lua_isnil(L, selectors)) return invalid(L, path, "is required");
    if ((r = check_array(L, selectors, path, &n))) return r;
    lua_createtable(L, (int)n, 0);
    for (i = 1; i <= n; i++) {
        vc_path item;
        lua_Integer index;
        lua_rawgeti(L, selectors, i);
        if ((r = check_integer(L, join_index(item, path, i), REQUIRED, 0, inputs - 1, &index)))
            return r;
        lua_pop(L, 1);
        lua_pushinteger(L, index);
        lua_rawseti(L, -2, (int)i);
    }
    lua_setfield(L, -3, "inputSelectors");
    lua_pop(L, 1);
    VC_STACK_LEFT(L, 0);
    return 0;
}

/* smartContentDescriptor; *type receives voiceCloning.type. */
static int copy_descriptor(lua_State *L, int output, const char *prefix, lua_Integer *type) {
    static const char *const fields[] = {"outputPrefix", "voiceCloning", NULL};
    static const char *const cloning_fields[] = {"type", "totalEpoch", "modelName", NULL};
    vc_path path, cloning_path;
    int descriptor, cloning, r;
    lua_Integer epochs = 0;
    VC_STACK_MARK(L);

    join(path, prefix, "smartContentDescriptor");
    lua_getfield(L, output, "smartContentDescriptor");
    descriptor = lua_gettop(L);
    if ((r = check_table(L, path, REQUIRED))) return r;
    if ((r = check_keys(L, descriptor, fields, path))) return r;
    lua_createtable(L, 0, 2);
    if ((r = copy_string(L, descriptor, "outputPrefix", path, OPTIONAL, OUTPUT_PREFIX_BELOW)))
        return r;

    join(cloning_path, path, "voiceCloning");
    lua_getfield(L, descriptor, "voiceCloning");
    cloning = lua_gettop(L);
    if ((r = check_table(L, cloning_path, REQUIRED))) return r;
    if ((r = check_keys(L, cloning, cloning_fields, cloning_path))) return r;
    lua_createtable(L, 0, 3);
    if ((r = copy_integer(L, cloning, "type", cloning_path, REQUIRED,
                          TYPE_GENERATE, TYPE_TRAIN, type)))
        return r;
    if ((r = copy_integer(L, cloning, "totalEpoch", cloning_path, OPTIONAL,
                          1, MAX_EPOCHS, &epochs)))
        return r;
    if (epochs && *type != TYPE_TRAIN) {
        vc_path field;
        return invalid(L, join(field, cloning_path, "totalEpoch"),
                       "is for training jobs (type 2) only");
    }
    if ((r = copy_string(L, cloning, "modelName", cloning_path, REQUIRED, MODEL_NAME_BELOW)))
        return r;
    lua_getfield(L, -1, "modelName");
    if (!is_model_name(lua_tostring(L, -1), lua_rawlen(L, -1))) {
        vc_path field;
        return invalid(L, join(field, cloning_path, "modelName"),
                       "may hold only letters, digits and _");
    }
    lua_pop(L, 1);
    lua_setfield(L, -3, "voiceCloning");   /* ... descriptor, wire, cloning, wire_cloning */
    lua_pop(L, 1);
    lua_setfield(L, -3, "smartContentDescriptor");
    lua_pop(L, 1);
    VC_STACK_LEFT(L, 0);
    return 0;
}

static int copy_output(lua_State *L, int output, const char *prefix, lua_Integer inputs) {
    static const char *const fields[] = {
        "contentId", "destination", "inputSelectors", "smartContentDescriptor", NULL
    };
    lua_Integer type = 0;
    int r;
    if ((r = check_keys(L, output, fields, prefix))) return r;
    lua_createtable(L, 0, 4);
    if ((r = copy_descriptor(L, output, prefix, &type))) return r;
    if ((r = copy_string(L, output, "contentId", prefix, type == TYPE_GENERATE, 0))) return r;
    if ((r = copy_string(L, output, "destination", prefix, OPTIONAL, 0))) return r;
    return copy_selectors(L, output, prefix, inputs);
}

static int copy_outputs(lua_State *L, int request, lua_Integer inputs) {
    int outputs, r;
    lua_Integer count, i;
    VC_STACK_MARK(L);
    lua_getfield(L, request, "outputs");
    outputs = lua_gettop(L);
    if ((r = check_array(L, outputs, "outputs", &count))) return r;
    lua_createtable(L, (int)count, 0);
    for (i = 1; i <= count; i++) {
        vc_path path;
        join_index(path, "outputs", i);
        lua_rawgeti(L, outputs, i);
        if ((r = check_table(L, path, REQUIRED))) return r;
        if ((r = copy_output(L, lua_gettop(L), path, inputs))) return r;
        lua_rawseti(L, -3, i);
        lua_pop(L, 1);
    }
    lua_setfield(L, -3, "outputs");
    lua_pop(L, 1);
    VC_STACK_LEFT(L, 0);
    return 0;
}

static int is_http_url(const char *s) {
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

int vc_rules_create_job(lua_State *L, int idx) {
    static const char *const fields[] = {
        "inputs", "outputs", "callback", "customId", "timeout", NULL
    };
    lua_Integer inputs = 0;
    int r;
    idx = lua_absindex(L, idx);
    if ((r = check_keys(L, idx, fields, ""))) return r;
    lua_createtable(L, 0, 5);
    if ((r = copy_inputs(L, idx, &inputs))) return r;
    if ((r = copy_outputs(L, idx, inputs))) return r;
    if ((r = copy_string(L, idx, "callback", "", OPTIONAL, 0))) return r;
    if (lua_getfield(L, -1, "callback") == LUA_TSTRING && !is_http_url(lua_tostring(L, -1)))
        return invalid(L, "callback", "must be an http:// or https:// URL");
    lua_pop(L, 1);
    if ((r = copy_string(L, idx, "customId", "", OPTIONAL, CUSTOM_ID_BELOW))) return r;
    return (r = copy_integer(L, idx, "timeout", "", OPTIONAL, 1, VC_INT_MAX, NULL)) ? r : 1;
}

/* Appends s as a JSON string literal through put: the one escaper, for the
 * request bodies (luaL_Buffer) and the credentials (C memory, client.c). */
int vc_json_string(const char *s, size_t len, vc_put put, void *sink) {
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;
    int r = put(sink, "\"", 1);
    for (i = 0; i < len && r == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        char escaped[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t n = 2;
        if (c >= 0x20 && c != '"' && c != '\\') continue;   /* copied with its run */
        r = put(sink, s + run, i - run);
        if (c < 0x20) {
            escaped[1] = 'u', escaped[2] = '0', escaped[3] = '0';
            escaped[4] = hex[c >> 4], escaped[5] = hex[c & 15];
            n = 6;
        }
        if (r == 0) r = put(sink, escaped, n);
        run = i + 1;
    }
    if (r == 0) r = put(sink, s + run, len - run);
    return r ? r : put(sink, "\"", 1);
}

static int put_lua(void *sink, const char *p, size_t n) {
    luaL_addlstring((luaL_Buffer *)sink, p, n);
    return 0;
}

/* Pushes {"<key>":"<string at the top>"} as JSON text, replacing the string:
 * a payload this small is written directly, not built and encoded. */
static void push_string_payload(lua_State *L, const char *key) {
    luaL_Buffer b;
    size_t len;
    const char *value = lua_tolstring(L, -1, &len);
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '{');
    vc_json_string(key, strlen(key), put_lua, &b);
    luaL_addchar(&b, ':');
    vc_json_string(value, len, put_lua, &b);
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
    lua_replace(L, -2);
}

int vc_rules_job_id(lua_State *L, int idx) {
    int r;
    lua_pushvalue(L, idx);
    if ((r = check_string(L, "id", REQUIRED, 0))) return r;
    push_string_payload(L, "id");
    return 1;
}

int vc_rules_custom_id(lua_State *L, int idx) {
    int r;
    lua_pushvalue(L, idx);
    if ((r = check_string(L, "customId", REQUIRED, CUSTOM_ID_BELOW))) return r;
    push_string_payload(L, "customId");
    return 1;
}

int vc_rules_list_models(lua_State *L, int offset_idx, int limit_idx) {
    lua_Integer offset = 0, limit = 10;
    int r;
    lua_pushvalue(L, offset_idx);
    if ((r = check_integer(L, "offset", OPTIONAL, 0, VC_INT_MAX, &offset))) return r;
    lua_pushvalue(L, limit_idx);
    if ((r = check_integer(L, "limit", OPTIONAL, 1, MAX_MODELS_PAGE, &limit))) return r;
    lua_pushfstring(L, "{\"offset\":%d,\"limit\":%d}", (int)offset, (int)limit);
    return 1;
}
