/*
 * Records: userdata whose fields are the API's own data (a Job, a Model),
 * exactly as the service sent them. The user value is a table: [1] the data,
 * [2] what the type keeps beside it (a Job's client). The type's methods
 * come first, so a field the service may add one day never hides one;
 * fields are read-only.
 */
#include "vc.h"

/* Pushes a new record of the named type with the data table at data_idx
 * (taken over). */
void vc_record_push(lua_State *L, const char *type, int data_idx) {
    data_idx = lua_absindex(L, data_idx);
    lua_newuserdata(L, 0);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, data_idx);
    lua_rawseti(L, -2, VC_RECORD_DATA);
    lua_setuservalue(L, -2);
    luaL_setmetatable(L, type);
}

void vc_record_get(lua_State *L, int idx, int slot) {
    lua_getuservalue(L, idx);
    if (lua_istable(L, -1)) lua_rawgeti(L, -1, slot);
    else lua_pushnil(L);
    lua_remove(L, -2);
}

void vc_record_set(lua_State *L, int idx, int slot) {
    idx = lua_absindex(L, idx);
    lua_getuservalue(L, idx);
    lua_insert(L, -2);
    lua_rawseti(L, -2, slot);
    lua_pop(L, 1);
}

/* __index: the methods (upvalue 2), then the fields. */
static int record_index(lua_State *L) {
    luaL_checktype(L, 1, LUA_TUSERDATA);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) return 1;
    vc_record_get(L, 1, VC_RECORD_DATA);
    if (!lua_istable(L, -1)) return 0;
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
    if (!luaL_testudata(L, 1, VC_JOB)) luaL_checkudata(L, 1, VC_MODEL);
    vc_record_get(L, 1, VC_RECORD_DATA);
    if (!lua_istable(L, -1)) return 0;
    push_copy(L, -1, 0);
    return 1;
}

/* core.totable, which serves every record type. */
void vc_record_functions(lua_State *L) {
    lua_pushcfunction(L, record_totable);
    lua_setfield(L, 1, "totable");
}

/* Registers the record type `type` with its own meta. Its methods table is
 * core[module_field], which the Lua layer fills (voiceclone/job.lua).
 * Stack at entry: module (1), ..., state. */
void vc_record_open(lua_State *L, const char *type, const luaL_Reg *meta,
                    const char *module_field, int state) {
    static const luaL_Reg shared_meta[] = {
        {"__newindex", record_newindex},
        {NULL, NULL}
    };
    luaL_newmetatable(L, type);
    vc_setfuncs(L, shared_meta, state);
    vc_setfuncs(L, meta, state);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, module_field);
    lua_pushvalue(L, state);
    lua_insert(L, -2);
    lua_pushcclosure(L, record_index, 2);   /* state, methods */
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
