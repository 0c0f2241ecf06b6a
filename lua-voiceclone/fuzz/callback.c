/*
 * Fuzz target: a callback body, as the service (or anyone) POSTs it to
 * callbacks.listen / callbacks.handler, through core.job_from_json, with
 * and without a client; then every core function that reads the Job.
 *
 * Promises checked: no raise; either a Job with a non-empty string id and
 * an integer state, or nil and a "decode" or "invalid" error.
 */
#include "common.h"

static void one(lua_State *L, const uint8_t *data, size_t size, int with_client) {
    int top = lua_gettop(L);
    lua_pushlstring(L, (const char *)data, size);
    if (with_client) fuzz_push(L, "client");
    else lua_pushnil(L);
    fuzz_call_core(L, "job_from_json", 2, 2);
    if (lua_isnil(L, -2)) {
        fuzz_check_error(L, -1);
        lua_getfield(L, -1, "kind");
        if (strcmp(lua_tostring(L, -1), "decode") != 0 && strcmp(lua_tostring(L, -1), "invalid") != 0)
            fuzz_fail("job_from_json failed with an unexpected kind", lua_tostring(L, -1));
    } else {
        if (!luaL_testudata(L, -2, VC_JOB)) fuzz_fail("job_from_json gave no Job", NULL);
        lua_getfield(L, -2, "id");
        if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
            fuzz_fail("a Job without an id", NULL);
        lua_getfield(L, -3, "state");
        if (!lua_isinteger(L, -1)) fuzz_fail("a Job without an integer state", NULL);
        fuzz_use_job(L, -4);
    }
    lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = fuzz_lua();
    one(L, data, size, 0);
    one(L, data, size, 1);
    fuzz_done(L);
    return 0;
}
