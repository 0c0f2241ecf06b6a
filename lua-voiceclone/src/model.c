/*
 * voiceclone.Model: a trained voice as ListModels describes it, a record
 * (record.c): its fields read as the API names them (model.name,
 * model.createdAt). No C state: the record's data alone.
 */
#include "vc.h"

/* Pushes a Model for the data table at data_idx, which it takes over. */
void vc_model_push(lua_State *L, int data_idx) {
    vc_record_push(L, VC_MODEL, data_idx);
}

static int model_tostring(lua_State *L) {
    luaL_checkudata(L, 1, VC_MODEL);
    vc_record_get(L, 1, VC_RECORD_DATA);
    lua_getfield(L, -1, "name");
    lua_pushfstring(L, VC_MODEL " (%s): %p", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?",
                    lua_topointer(L, 1));
    return 1;
}

static const luaL_Reg model_meta[] = {
    {"__tostring", model_tostring},
    {NULL, NULL}
};

/* Stack at entry: module (1), ..., state. */
void vc_model_open(lua_State *L, int state) {
    vc_record_open(L, VC_MODEL, model_meta, "Model", state);
}
