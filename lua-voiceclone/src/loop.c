/*
 * What waiting needs, for the Lua layer (voiceclone/tasks.lua and
 * client.lua's blocking calls) and for outside event loops: drive the
 * transport, hand over the Requests that ended, say when to drive next
 * and which sockets to watch. All waiting itself is Lua's.
 */
#include "vc.h"

/* core.drive(client [, wait]): lets libcurl act, waiting up to `wait`
 * seconds (default 0) for a socket or its timer. Returns nothing: the
 * Requests that ended are taken with core.finished. */
static int loop_drive(lua_State *L) {
    vc_client *c = vc_client_check(L, 1);
    double wait = luaL_optnumber(L, 2, 0);
    if (!(wait > 0)) wait = 0;                    /* NaN too */
    if (wait > 3600) wait = 3600;
    vc_transport_drive(vc_client_transport(c), wait);
    return 0;
}

/* core.finished(client): the Requests that ended since the last call, in
 * the order they ended (those already collected are left out). */
static int loop_finished(lua_State *L) {
    vc_transport *t;
    void *owner;
    int n = 0;
    vc_client_check(L, 1);
    lua_settop(L, 1);
    vc_client_push_table(L, 1);
    lua_getfield(L, 2, "requests");               /* client, table, requests */
    lua_createtable(L, vc_transport_finished(vc_client_transport(vc_client_check(L, 1))), 0);
    /* That allocation may have run a finalizer that closed the client; from
     * here nothing allocates: the list is presized, lookups are raw. */
    t = vc_client_transport(vc_client_check(L, 1));
    if (!lua_istable(L, 3)) return 1;
    while ((owner = vc_transport_take_finished(t))) {
        if (lua_rawgetp(L, 3, owner) == LUA_TNIL) lua_pop(L, 1);
        else lua_rawseti(L, 4, ++n);
    }
    VC_STACK(L, 4);
    return 1;
}

/* core.due(client): seconds until a drive has something to do (0: now), or
 * nil when only a socket can bring news. */
static int loop_due(lua_State *L) {
    double due = vc_transport_due(vc_client_transport(vc_client_check(L, 1)));
    if (due < 0) lua_pushnil(L);
    else lua_pushnumber(L, due);
    return 1;
}

/* core.sockets(client): what an outside event loop should watch, as
 * { [fd] = "r" | "w" | "rw" }. */
static int loop_sockets(lua_State *L) {
    const struct pollfd *sockets;
    int i, n, now;
    vc_client_check(L, 1);
    lua_settop(L, 1);
    lua_pushliteral(L, "r");
    lua_pushliteral(L, "w");
    lua_pushliteral(L, "rw");                     /* 2, 3, 4 */
    n = vc_transport_sockets(vc_client_transport(vc_client_check(L, 1)), &sockets);
    lua_createtable(L, 0, n);
    /* As in finished: the allocations are done, the presized table takes
     * n keys without allocating. */
    now = vc_transport_sockets(vc_client_transport(vc_client_check(L, 1)), &sockets);
    if (now < n) n = now;
    for (i = 0; i < n; i++) {
        short events = sockets[i].events;
        if (!events) continue;
        lua_pushvalue(L, events == (POLLIN | POLLOUT) ? 4 : events == POLLIN ? 2 : 3);
        lua_rawseti(L, 5, sockets[i].fd);
    }
    return 1;
}

static const luaL_Reg loop_functions[] = {
    {"drive", loop_drive},
    {"finished", loop_finished},
    {"due", loop_due},
    {"sockets", loop_sockets},
    {NULL, NULL}
};

/* Stack at entry: module (1), ..., state. */
void vc_loop_open(lua_State *L, int state) {
    lua_pushvalue(L, 1);
    vc_setfuncs(L, loop_functions, state);
    lua_pop(L, 1);
}
