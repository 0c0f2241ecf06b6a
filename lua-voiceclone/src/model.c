/*
 * voiceclone.Model: a trained voice as ListModels describes it; its fields
 * read as the API names them (model.name, model.createdAt).
 * No C state: user value 1 is the data table.
 */
#include "vc.h"

#define UV_DATA 1

/* Pushes a Model for the data table at data_idx, which it takes over. */
void vc_model_push(lua_State *L, int data_idx) {
    data_idx = lua_absindex(L, data_idx);
    lua_newuserdatauv(L, 0, 1);
    luaL_setmetatable(L, VC_MODEL);
    lua_pushvalue(L, data_idx);
    lua_setiuservalue(L, -2, UV_DATA);
}

static int model_totable(lua_State *L) {
    luaL_checkudata(L, 1, VC_MODEL);
    lua_getiuservalue(L, 1, UV_DATA);
    return 1;
}

/* __index: methods first (upvalue 1), then the model's fields. */
static int model_index(lua_State *L) {
    luaL_checkudata(L, 1, VC_MODEL);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_getiuservalue(L, 1, UV_DATA);
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int model_newindex(lua_State *L) {
    return luaL_error(L, VC_MODEL " fields are read-only (field '%s')",
                      luaL_tolstring(L, 2, NULL));
}

static int model_tostring(lua_State *L) {
    luaL_checkudata(L, 1, VC_MODEL);
    lua_getiuservalue(L, 1, UV_DATA);
    lua_getfield(L, -1, "name");
    lua_pushfstring(L, VC_MODEL " (%s): %p", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?",
                    lua_topointer(L, 1));
    return 1;
}

static const luaL_Reg model_methods[] = {
    {"totable", model_totable},
    {NULL, NULL}
};

static const luaL_Reg model_meta[] = {
    {"__newindex", model_newindex},
    {"__tostring", model_tostring},
    {NULL, NULL}
};

/* Stack at entry: module, encode, decode, null (the shared upvalues). */
void vc_model_open(lua_State *L) {
    int upvalues = lua_gettop(L) - VC_UPVALUES + 1, module = upvalues - 1;
    luaL_newmetatable(L, VC_MODEL);
    vc_setfuncs(L, model_meta, upvalues);
    lua_newtable(L);
    vc_setfuncs(L, model_methods, upvalues);
    lua_pushvalue(L, -1);
    lua_setfield(L, module, "Model");
    lua_pushcclosure(L, model_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
