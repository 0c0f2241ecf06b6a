/*
 * A host program that embeds Lua (any of 5.1 to 5.4, or LuaJIT) the way a
 * game or IVR engine does: the voiceclone C core is linked in and preloaded
 * (no .so on disk), and a
 * 60 frames-per-second loop calls one Lua function per frame, which calls
 * client:step(budget). It prints the worst frame time, and the worst CPU
 * time a frame took beyond the script's budget: the network never makes a
 * frame wait, and step() keeps to what the frame gave it.
 *
 *   embed-host SCRIPT ENDPOINT SECRET_ID SECRET_KEY JOBS [MAX_SECONDS]
 *
 * SCRIPT (examples/embed/game.lua) gets the other arguments and returns the
 * per-frame function, which returns (tasks left, jobs done, jobs failed),
 * and the budget in seconds it gives client:step() each frame.
 *
 * A frame's CPU time is this thread's (CLOCK_THREAD_CPUTIME_ID) around the
 * call of the frame function: what the frame cost the game's thread, which
 * neither preemption nor the sleep between frames inflates.
 * The secret key is read from the command line here only to keep the
 * example short: a real host would take it from its own configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#if LUA_VERSION_NUM < 503
#include "compat-5.3.h"       /* Debian's lua-compat53-dev: the 5.3 API on older Luas */
#endif

int luaopen_voiceclone_core(lua_State *L);

#define FRAME_SECONDS (1.0 / 60.0)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double when) {
    double left = when - now();
    struct timespec ts;
    if (left <= 0) return;
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

static int traceback(lua_State *L) {
    luaL_traceback(L, L, luaL_tolstring(L, 1, NULL), 1);
    return 1;
}

/* Runs SCRIPT with the arguments; leaves its frame function at the top
 * and its step budget (seconds) in *budget. */
static int load_game(lua_State *L, char **argv, int nargs, double *budget) {
    int i;
    lua_pushcfunction(L, traceback);
    if (luaL_loadfile(L, argv[0]) != LUA_OK) return 0;
    for (i = 1; i <= nargs; i++) lua_pushstring(L, argv[i]);
    if (lua_pcall(L, nargs, 2, -nargs - 2) != LUA_OK) return 0;
    if (!lua_isfunction(L, -2) || lua_type(L, -1) != LUA_TNUMBER) {
        lua_pushliteral(L, "the script must return its per-frame function and its step budget (seconds)");
        return 0;
    }
    *budget = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return 1;
}

int main(int argc, char **argv) {
    lua_State *L;
    double max_seconds, started, next_frame, worst = 0, budget = 0;
    double worst_cpu = 0, worst_overrun = 0;   /* a frame's CPU time, and beyond the budget */
    long frames = 0;
    lua_Integer left = 1, done = 0, failed = 0;
    int status = 0;

    if (argc < 6) {
        fprintf(stderr, "usage: %s SCRIPT ENDPOINT SECRET_ID SECRET_KEY JOBS [MAX_SECONDS]\n",
                argv[0]);
        return 2;
    }
    max_seconds = argc > 6 ? atof(argv[6]) : 120;
    L = luaL_newstate();
    if (!L) return 1;
    luaL_openlibs(L);
    /* the C core, linked into this program: require finds it here */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_voiceclone_core);
    lua_setfield(L, -2, "voiceclone.core");
    lua_pop(L, 2);

    if (!load_game(L, argv + 1, 4, &budget)) {
        fprintf(stderr, "embed-host: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    lua_pushcfunction(L, traceback);      /* ..., frame, traceback */
    started = next_frame = now();
    while (left > 0 && now() - started < max_seconds) {
        double t0 = now(), c0 = thread_cpu(), spent, cpu;
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 0, 3, -2) != LUA_OK) {
            fprintf(stderr, "embed-host: frame %ld: %s\n", frames, lua_tostring(L, -1));
            status = 1;
            break;
        }
        left = lua_tointeger(L, -3);
        done = lua_tointeger(L, -2);
        failed = lua_tointeger(L, -1);
        lua_pop(L, 3);
        cpu = thread_cpu() - c0;
        spent = now() - t0;
        if (spent > worst) worst = spent;
        if (cpu > worst_cpu) worst_cpu = cpu;
        if (cpu - budget > worst_overrun) worst_overrun = cpu - budget;
        frames++;
        next_frame += FRAME_SECONDS;
        sleep_until(next_frame);           /* the rest of the frame: drawing, audio... */
    }
    printf("embed-host: %ld frames in %.2f s, worst frame %.3f ms, worst frame CPU %.3f ms, "
           "worst CPU overrun %.3f ms of a %.3f ms step budget; jobs completed %lld, "
           "failed %lld, unfinished %lld\n", frames, now() - started, worst * 1000,
           worst_cpu * 1000, worst_overrun * 1000, budget * 1000,
           (long long)done, (long long)failed, (long long)left);
    lua_close(L);
    return status != 0 || failed > 0 || left > 0;
}
