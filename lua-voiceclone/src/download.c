/*
 * Downloads: a GET of a generated file straight into a file on disk, as a
 * Request (call.c) like any call. The file is written under a temporary name
 * of its own beside the destination and renamed to it once whole, so a file
 * at the destination is always whole; a download canceled, failed or cut
 * short by a close leaves nothing behind.
 */
#include <string.h>
#include "vc.h"

/* Stack: request, client, url, body (unused). */
static int finish_download(lua_State *L, const vc_call *call, const vc_outcome *o) {
    (void)call;
    if (o->write_failed) return vc_fail(L, "invalid", "dest", "cannot write the file");
    if (o->too_large || o->result == CURLE_FILESIZE_EXCEEDED)
        return vc_fail(L, "http", NULL, "the file at %s is larger than max_download",
                       lua_tostring(L, 3));
    if (o->result != CURLE_OK) return vc_response_transport_error(L, o);
    if (o->status < 200 || o->status > 299) {
        vc_fail(L, vc_response_kind(o->status), NULL, "HTTP %d for %s", (int)o->status,
                lua_tostring(L, 3));
        vc_response_http_details(L, o);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const vc_call download_call = {NULL, "download", NULL, NULL, finish_download, VC_REUSE};

/* core.download(client, url, dest) -> Request | nil, err; its finish gives
 * dest, or nil and an error. */
static int download_start(lua_State *L) {
    size_t url_len, dest_len;
    const char *dest;
    vc_client_check(L, 1);
    luaL_argcheck(L, strlen(luaL_checklstring(L, 2, &url_len)) == url_len, 2, "has a NUL byte");
    dest = luaL_checklstring(L, 3, &dest_len);
    luaL_argcheck(L, strlen(dest) == dest_len, 3, "has a NUL byte");
    lua_settop(L, 3);
    return vc_call_start_download(L, 1, &download_call, 2, dest);
}

static const luaL_Reg download_functions[] = {
    {"download", download_start},
    {NULL, NULL}
};

/* Stack at entry: module (1), ..., state. */
void vc_download_open(lua_State *L, int state) {
    lua_pushvalue(L, 1);
    vc_setfuncs(L, download_functions, state);
    lua_pop(L, 1);
}
