/*
 * lua-compat-5.3 (Debian's lua-compat53-dev), compiled once for the whole
 * core: the 5.3 API on Lua 5.1, 5.2 and LuaJIT; nothing on 5.3 and 5.4
 * (Debian's copy refuses 5.4, which needs none of it).
 * Its symbols carry our prefix (vc.h) and stay hidden.
 */
#include "vc.h"
#if LUA_VERSION_NUM < 503
#include "compat-5.3.c"
#else
typedef int vc_compat_unused;   /* C forbids an empty file */
#endif
