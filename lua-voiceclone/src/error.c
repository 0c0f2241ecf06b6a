/*
 * Error objects: plain tables with the voiceclone.Error metatable, so
 * callers branch on err.kind and read err.field, err.status, err.request_id,
 * err.retryable; tostring(err) is one readable line.
 */
#include <stdarg.h>
#include "vc.h"

/* "kind: message (request id)". The pieces are pushed and concatenated:
 * a luaL_Buffer may not share the stack with lua_getfield. */
static int error_tostring(lua_State *L) {
    int parts = 3;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "kind");
    luaL_tolstring(L, -1, NULL);
    lua_replace(L, -2);
    lua_pushliteral(L, ": ");
    lua_getfield(L, 1, "message");
    luaL_tolstring(L, -1, NULL);
    lua_replace(L, -2);
    if (lua_getfield(L, 1, "request_id") == LUA_TSTRING) {
        lua_pushliteral(L, " (request ");
        lua_insert(L, -2);
        lua_pushliteral(L, ")");
        parts += 3;
    } else {
        lua_pop(L, 1);
    }
    lua_concat(L, parts);
    return 1;
}

/* Pushes a new error {kind=, message=, retryable=false}. */
void vc_error_push(lua_State *L, const char *kind, const char *message) {
    luaL_checkstack(L, 3, NULL);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "retryable");
    luaL_setmetatable(L, VC_ERROR);
}

void vc_error_set_string(lua_State *L, const char *key, const char *value) {
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

void vc_error_set_integer(lua_State *L, const char *key, lua_Integer value) {
    lua_pushinteger(L, value);
    lua_setfield(L, -2, key);
}

void vc_error_set_boolean(lua_State *L, const char *key, int value) {
    lua_pushboolean(L, value);
    lua_setfield(L, -2, key);
}

/* Pushes nil and an error of the given kind; field may be NULL. The
 * message is "<field>: <text>" when a field is named. Returns 2. */
int vc_fail(lua_State *L, const char *kind, const char *field, const char *fmt, ...) {
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    if (field) {
        lua_pushfstring(L, "%s: %s", field, lua_tostring(L, -1));
        lua_replace(L, -2);
    }
    vc_error_push(L, kind, lua_tostring(L, -1));
    lua_remove(L, -2);
    if (field) vc_error_set_string(L, "field", field);
    return 2;
}

/* core.error(kind, message [, details]): an error object for the Lua layer,
 * with the details' fields (job, field, ...) copied in. */
static int error_new(lua_State *L) {
    const char *kind = luaL_checkstring(L, 1);
    const char *message = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    vc_error_push(L, kind, message);
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4);
        }
    }
    return 1;
}

void vc_error_open(lua_State *L) {
    static const luaL_Reg meta[] = {
        {"__tostring", error_tostring},
        {NULL, NULL}
    };
    luaL_newmetatable(L, VC_ERROR);
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    lua_pushcfunction(L, error_new);
    lua_setfield(L, 1, "error");
}
