/*
 * Fuzz target: a service answer, from libcurl's callbacks to the results a
 * call gives. For each input a real Request is started on the fuzz client
 * (CreateJob, GetJob, a job's refresh, ListJobs or ListModels); it is never
 * sent: the input plays libcurl's part instead, feeding the transfer's
 * header and body callbacks (transport.c's on_header, on_body) and ending
 * it with an HTTP status and a libcurl result, as the transport does
 * (end). Then request:finish() runs as in any call: the key is scrubbed,
 * the answer decoded (response.c), and the call's finish builds its Job,
 * list of Jobs or Models, or its error.
 *
 * The input is an HTTP answer in text:
 *   STATUS CALL [CURLCODE]\n        e.g. "200 GetJob", "503 CreateJob 0", "0 ListJobs 28"
 *   Header: value\r\n ...           Retry-After among them, to an empty line
 *   body                            the rest
 * CALL is CreateJob, GetJob, Refresh, ListJobs or ListModels (anything else
 * picks one by its bytes); CURLCODE 23 (a write error) is an answer that
 * was too large.
 *
 * Promises checked: finish never raises; it gives results or nil and an
 * error with a kind and a message; the secret key is in no string that
 * reaches Lua; every Job and Model it gives can be read.
 */
/* Both files name a state RUNNING: the transport's is renamed here. */
#define RUNNING TRANSFER_RUNNING
#include "../src/transport.c"
#undef RUNNING
#include "../src/call.c"
#include "common.h"

static const char *const calls[] = {"CreateJob", "GetJob", "Refresh", "ListJobs", "ListModels"};
enum { CALLS = sizeof calls / sizeof *calls };

/* The length of the line at p, without its \n. */
static size_t line_length(const char *p, size_t n) {
    const char *eol = memchr(p, '\n', n);
    return eol ? (size_t)(eol - p) : n;
}

/* The first line: status, which call, the libcurl result. */
static int first_line(const char *p, size_t n, long *status, CURLcode *result) {
    char line[128], name[64] = "";
    long code = 0;
    size_t len = n < sizeof line - 1 ? n : sizeof line - 1;
    unsigned sum = 0;
    int i;
    memcpy(line, p, len);
    line[len] = '\0';
    *status = 0;
    if (sscanf(line, "%ld %63s %ld", status, name, &code) < 1) *status = 200;
    if (*status < 0 || *status > 999) *status = 500;
    *result = code >= 0 && code < CURL_LAST ? (CURLcode)code : CURLE_RECV_ERROR;
    for (i = 0; i < CALLS; i++)
        if (strcmp(name, calls[i]) == 0) return i;
    for (i = 0; name[i]; i++) sum += (unsigned char)name[i];
    return (int)(sum % CALLS);
}

/* Stack: client. Pushes the started Request of call `which`. */
static void start(lua_State *L, int which) {
    static const char request[] =
        "{\"inputs\":[{\"sourceData\":\"hello\"}],\"outputs\":[{\"contentId\":\"repo\","
        "\"inputSelectors\":[0],\"smartContentDescriptor\":{\"voiceCloning\":"
        "{\"type\":1,\"modelName\":\"default\"}}}]}";
    const char *fn = which == 0 ? "create_job" : which == 1 ? "get_job" : which == 2 ? "refresh"
                   : which == 3 ? "list_jobs" : "list_models";
    int nargs = 2;
    if (which == 0) {                                 /* a request table */
        vc_push_state(L, VC_DECODE);
        lua_pushstring(L, request);
        lua_call(L, 1, 1);
        vc_response_normalize(L, -1, 0);
    } else if (which == 1) {
        lua_pushliteral(L, "13f342e4-6866-450e-b44e-3151431c578b");
    } else if (which == 2) {                          /* the job to refresh, alone */
        lua_pop(L, 1);
        lua_pushliteral(L, "{\"id\":\"13f342e4-6866-450e-b44e-3151431c578b\",\"state\":2}");
        fuzz_push(L, "client");
        fuzz_call_core(L, "job_from_json", 2, 1);
        nargs = 1;
    } else if (which == 3) {
        lua_pushliteral(L, "batch-7");
    } else {
        nargs = 1;
    }
    fuzz_call_core(L, fn, nargs, 2);
    if (!luaL_testudata(L, -2, VC_REQUEST)) fuzz_fail("a call did not start", luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
}

/* Stack: client, answer, Request. Plays libcurl: the headers, the body in
 * two pieces, the end; the transfer is then ENDED in its transport. */
static void answer(lua_State *L, vc_request *r) {
    size_t n, eol, i;
    const char *p = lua_tolstring(L, 2, &n), *end_of = p + n;
    long status;
    CURLcode result;
    vc_transfer *x = r->x;
    if (r->state != RUNNING || !x || !r->transport) fuzz_fail("a started Request without a transfer", NULL);
    eol = line_length(p, n);
    first_line(p, eol, &status, &result);
    p += eol < n ? eol + 1 : n;
    while (p < end_of) {                             /* header lines, to an empty one */
        size_t len = 0;
        while (p + len < end_of && p[len] != '\n') len++;
        if (p + len < end_of) len++;                 /* with its \n, as libcurl gives it */
        if (len == 1 || (len == 2 && p[0] == '\r')) { p += len; break; }
        if (on_header((char *)p, 1, len, x) != len) fuzz_fail("on_header refused a line", NULL);
        p += len;
    }
    /* libcurl (7.88 here) gives an empty body no call at all */
    n = (size_t)(end_of - p);
    i = n / 2;
    if ((i && on_body((char *)p, 1, i, x) != i) ||
        (n - i && on_body((char *)p + i, 1, n - i, x) != n - i))
        fuzz_fail("on_body refused a small answer", NULL);
    if (result == CURLE_WRITE_ERROR) x->too_large = 1;
    x->status = status;
    end(r->transport, x, result);
    if (!vc_transfer_done(x)) fuzz_fail("an ended transfer is not done", NULL);
}

/* Stack: client, answer. */
static int exchange(lua_State *L) {
    int which, results, i;
    long status;
    CURLcode result;
    size_t n;
    const char *text = lua_tolstring(L, 2, &n);
    which = first_line(text, line_length(text, n), &status, &result);
    lua_pushvalue(L, 1);
    start(L, which);                                 /* client, answer, request */
    answer(L, luaL_checkudata(L, 3, VC_REQUEST));
    lua_getfield(L, 3, "finish");
    lua_pushvalue(L, 3);
    lua_call(L, 1, LUA_MULTRET);                     /* client, answer, request, results... */
    results = lua_gettop(L) - 3;
    if (results < 1) fuzz_fail("finish gave nothing", NULL);
    for (i = 4; i <= lua_gettop(L); i++) fuzz_check_no_key(L, i, 0);
    if (lua_isnil(L, 4)) {
        fuzz_check_error(L, 5);
        luaL_tolstring(L, 5, NULL);
        fuzz_check_no_key(L, -1, 0);
        lua_pop(L, 1);
    } else if (luaL_testudata(L, 4, VC_JOB)) {
        fuzz_use_job(L, 4);
    } else if (lua_istable(L, 4)) {                  /* a list, and its total */
        lua_Integer k, len = (lua_Integer)lua_rawlen(L, 4);
        if (!lua_isinteger(L, 5)) fuzz_fail("a list without an integer total", NULL);
        for (k = 1; k <= len; k++) {
            lua_rawgeti(L, 4, k);
            if (luaL_testudata(L, -1, VC_JOB)) fuzz_use_job(L, -1);
            else if (luaL_testudata(L, -1, VC_MODEL)) luaL_tolstring(L, -1, NULL), lua_pop(L, 1);
            else fuzz_fail("a list item is neither a Job nor a Model", NULL);
            lua_pop(L, 1);
        }
    } else {
        fuzz_fail("finish gave an unexpected value", luaL_typename(L, 4));
    }
    lua_getfield(L, 3, "info");
    lua_pushvalue(L, 3);
    lua_call(L, 1, 1);
    fuzz_check_no_key(L, -1, 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = fuzz_lua();
    fuzz_push(L, "client");
    lua_pushlstring(L, (const char *)data, size);
    if (fuzz_pcall(L, exchange, 2, 0) != LUA_OK) fuzz_fail("raised", lua_tostring(L, -1));
    fuzz_done(L);
    return 0;
}
