/*
 * voiceclone.Job: a job as the API describes it, a record (record.c): its
 * fields read as the API names them and hold what it sent (job.id,
 * job.state, job.outputs[1].inputSelectors[1] == 0 ...).
 *
 * No C state: the record's data, and beside it the client it came from
 * (nil for a job built from a callback body without one). Its public
 * methods are defined in voiceclone/job.lua, partly with these.
 */
#include <string.h>
#include "vc.h"

#define STATE_COMPLETED 3

static const char *const state_names[] = {
    NULL, "SUBMITTED", "PROCESSING", "COMPLETED", "ERROR", "CANCELED"
};

/* Pushes a Job for the client at client_idx (may be nil) and the data table
 * at data_idx, which it takes over. */
void vc_job_push(lua_State *L, int client_idx, int data_idx) {
    client_idx = lua_absindex(L, client_idx);
    vc_record_push(L, VC_JOB, data_idx);
    lua_pushvalue(L, client_idx);
    vc_record_set(L, -2, VC_RECORD_EXTRA);
}

static lua_Integer job_state(lua_State *L) {
    lua_Integer state;
    luaL_checkudata(L, 1, VC_JOB);
    vc_record_get(L, 1, VC_RECORD_DATA);
    lua_getfield(L, -1, "state");
    state = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 2);
    return state;
}

static const char *state_name(lua_Integer state) {
    return state >= 1 && state <= 5 ? state_names[state] : "UNKNOWN";
}

static int job_status(lua_State *L) {
    lua_pushstring(L, state_name(job_state(L)));
    return 1;
}

static int job_is_final(lua_State *L) {
    lua_Integer state = job_state(L);
    lua_pushboolean(L, state >= 3 && state <= 5);
    return 1;
}

/* Pushes destination/name, the file's path in its repository. */
static void push_repository_path(lua_State *L, int output, const char *name) {
    const char *destination = "";
    size_t len = 0;
    if (lua_getfield(L, output, "destination") == LUA_TSTRING)
        destination = lua_tolstring(L, -1, &len);
    while (len > 0 && *destination == '/') destination++, len--;
    while (len > 0 && destination[len - 1] == '/') len--;
    if (len > 0) {
        lua_pushlstring(L, destination, len);
        lua_pushfstring(L, "%s/%s", lua_tostring(L, -1), name);
        lua_replace(L, -3);
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
        lua_pushstring(L, name);
    }
}

static void copy_field(lua_State *L, int from, int to, const char *key) {
    lua_getfield(L, from, key);
    lua_setfield(L, to, key);
}

/* job:result(): what the first output produced, nil until COMPLETED. */
static int job_result(lua_State *L) {
    int output, result;
    if (job_state(L) != STATE_COMPLETED) return 0;
    vc_record_get(L, 1, VC_RECORD_DATA);
    if (lua_getfield(L, -1, "outputs") != LUA_TTABLE || lua_rawgeti(L, -1, 1) != LUA_TTABLE)
        return 0;
    output = lua_gettop(L);
    lua_createtable(L, 0, 5);
    result = lua_gettop(L);
    copy_field(L, output, result, "contentId");
    copy_field(L, output, result, "destination");
    if (lua_getfield(L, output, "smartContentResult") == LUA_TTABLE &&
        lua_getfield(L, -1, "voiceCloning") == LUA_TTABLE) {
        copy_field(L, -1, result, "modelName");
        copy_field(L, -1, result, "voiceName");
    }
    if (lua_getfield(L, result, "voiceName") == LUA_TSTRING) {
        push_repository_path(L, output, lua_tostring(L, -1));
        lua_setfield(L, result, "path");
    }
    lua_settop(L, result);
    return 1;
}

static int job_client(lua_State *L) {
    luaL_checkudata(L, 1, VC_JOB);
    vc_record_get(L, 1, VC_RECORD_EXTRA);
    return 1;
}

static int job_tostring(lua_State *L) {
    const char *status = state_name(job_state(L));
    vc_record_get(L, 1, VC_RECORD_DATA);
    lua_getfield(L, -1, "id");
    lua_pushfstring(L, VC_JOB " (%s, %s): %p", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?",
                    status, lua_topointer(L, 1));
    return 1;
}

/* core.job_from_json(body [, client]): the Job a callback POSTs (the job
 * itself, or {"job": job}); nil and a "decode" or "invalid" error else. */
static int job_from_json(lua_State *L) {
    luaL_checktype(L, 1, LUA_TSTRING);
    if (!lua_isnoneornil(L, 2)) luaL_checkudata(L, 2, VC_CLIENT);
    lua_settop(L, 2);
    vc_push_state(L, VC_DECODE);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 2);
    if (lua_isnil(L, 3))
        return vc_fail(L, "decode", NULL, "the body is not JSON: %s", lua_tostring(L, 4));
    lua_pop(L, 1);
    if (!lua_istable(L, 3)) return vc_fail(L, "invalid", "body", "is not a JSON object");
    if (lua_getfield(L, 3, "job") == LUA_TTABLE) lua_replace(L, 3);
    else lua_pop(L, 1);
    vc_response_normalize(L, 3, 0);
    if (lua_getfield(L, 3, "id") != LUA_TSTRING || lua_rawlen(L, -1) == 0)
        return vc_fail(L, "invalid", "id", "the body is not a job: it has no id");
    if (lua_getfield(L, 3, "state") != LUA_TNUMBER || !lua_isinteger(L, -1))
        return vc_fail(L, "invalid", "state", "the body is not a job: it has no state");
    lua_settop(L, 3);
    vc_job_push(L, 2, 3);
    return 1;
}


static const luaL_Reg job_meta[] = {
    {"__tostring", job_tostring},
    {NULL, NULL}
};

static const luaL_Reg job_functions[] = {
    {"job_status", job_status},
    {"job_is_final", job_is_final},
    {"job_result", job_result},
    {"job_client", job_client},
    {"job_from_json", job_from_json},
    {NULL, NULL}
};

/* Stack at entry: module (1), ..., state. */
void vc_job_open(lua_State *L, int state) {
    vc_record_open(L, VC_JOB, job_meta, "Job", state);
    lua_pushvalue(L, 1);
    vc_setfuncs(L, job_functions, state);
    lua_pop(L, 1);
}
