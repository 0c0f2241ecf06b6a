/*
 * Records: userdata whose fields are the API's own data (a Job, a Model).
 * User value 1 is the data table; the type's methods come first, so a field
 * the service may add one day never hides one; fields are read-only.
 */
#include "vc.h"

/* Pushes a new record of the named type with the data table at data_idx
 * (taken over) and room for `extra` more user values. */
void vc_record_push(lua_State *L, const char *type, int data_idx, int extra) {
    data_idx = lua_absindex(L, data_idx);
    lua_newuserdatauv(L, 0, 1 + extra);
    luaL_setmetatable(L, type);
    lua_pushvalue(L, data_idx);
    lua_setiuservalue(L, -2, VC_UV_DATA);
}

/* __index: the methods (upvalue 1), then the fields. */
static int record_index(lua_State *L) {
    luaL_checktype(L, 1, LUA_TUSERDATA);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    if (lua_getiuservalue(L, 1, VC_UV_DATA) != LUA_TTABLE) return 0;
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int record_newindex(lua_State *L) {
    const char *field = luaL_tolstring(L, 2, NULL);
    if (luaL_getmetafield(L, 1, "__name") != LUA_TSTRING) lua_pushliteral(L, "record");
    return luaL_error(L, "%s fields are read-only (field '%s')", lua_tostring(L, -1), field);
}

/* Pushes a deep copy of the table at idx (the API's data: a tree, no cycles,
 * at most a few levels deep, as the decoder's depth limit guarantees). */
static void push_copy(lua_State *L, int idx, int depth) {
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 4, NULL);
    lua_createtable(L, (int)lua_rawlen(L, idx), 0);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_istable(L, -1) && depth < 64) {
            push_copy(L, -1, depth + 1);
            lua_replace(L, -2);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
}

/* record:totable(): a copy of the data as the API sent it, to keep or change. */
static int record_totable(lua_State *L) {
    luaL_checktype(L, 1, LUA_TUSERDATA);
    if (lua_getiuservalue(L, 1, VC_UV_DATA) != LUA_TTABLE) return 0;
    push_copy(L, -1, 0);
    return 1;
}

/* Registers the record type `type` with its own meta and methods, exposed
 * to the Lua layer as core[module_field] (the methods table). Stack at
 * entry: module, encode, decode, null (the shared upvalues). */
void vc_record_open(lua_State *L, const char *type, const luaL_Reg *meta,
                    const luaL_Reg *methods, const char *module_field) {
    static const luaL_Reg shared_meta[] = {
        {"__newindex", record_newindex},
        {NULL, NULL}
    };
    int upvalues = lua_gettop(L) - VC_UPVALUES + 1, module = upvalues - 1;
    luaL_newmetatable(L, type);
    vc_setfuncs(L, shared_meta, upvalues);
    vc_setfuncs(L, meta, upvalues);
    lua_newtable(L);
    lua_pushcfunction(L, record_totable);
    lua_setfield(L, -2, "totable");
    vc_setfuncs(L, methods, upvalues);
    lua_pushvalue(L, -1);
    lua_setfield(L, module, module_field);
    lua_pushcclosure(L, record_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
