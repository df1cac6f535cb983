
/*
 * ngx_consent: Lua 5.4 hooks.  One Lua state per worker; a hook file
 * returns a table whose event(ev, req) maps CMP signals to category
 * preferences.  Every call into Lua that can raise runs under
 * lua_pcall, so that an error, the memory cap or the instruction limit
 * fails the event closed and never the worker.  The state and its
 * limits: ngx_http_consent_lua_sandbox.c; ev and req:
 * ngx_http_consent_lua_ev.c.
 */

#include "ngx_http_consent_lua.h"


#define NGX_HTTP_CONSENT_LUA_SEEN_MAX  128


/* per worker */
static ngx_int_t ngx_http_consent_lua_alone(ngx_conf_t *cf);


static lua_State                    *ngx_http_consent_L;
static ngx_http_consent_main_conf_t *ngx_http_consent_lua_conf;
static uint32_t      ngx_http_consent_lua_seen[NGX_HTTP_CONSENT_LUA_SEEN_MAX];
static ngx_uint_t                    ngx_http_consent_lua_nseen;


static int
ngx_http_consent_lua_traceback(lua_State *L)
{
    const char  *msg;

    msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);

    return 1;
}


/* protected: runs a hook file, returns its event function (or nil) */

static int
ngx_http_consent_lua_run_file(lua_State *L)
{
    const char  *path = lua_touserdata(L, 1);

    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        return lua_error(L);
    }

    lua_call(L, 0, 1);

    if (!lua_istable(L, -1)) {
        lua_pushliteral(L, "the hook file must return a table");
        return lua_error(L);
    }

    if (lua_getfield(L, -1, "event") != LUA_TNIL && !lua_isfunction(L, -1)) {
        lua_pushliteral(L, "the hook's \"event\" must be a function");
        return lua_error(L);
    }

    return 1;
}


static int
ngx_http_consent_lua_ref(lua_State *L)
{
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
    return 1;
}


/*
 * Runs a hook file under the limits; on success leaves its event
 * function (or nil) on the stack.  On failure returns the message.
 */
static const char *
ngx_http_consent_lua_load(lua_State *L, ngx_http_consent_hook_t *hook)
{
    lua_settop(L, 0);
    lua_pushcfunction(L, ngx_http_consent_lua_traceback);
    lua_pushcfunction(L, ngx_http_consent_lua_run_file);
    lua_pushlightuserdata(L, hook->path.data);

    ngx_http_consent_lua_arm(L);

    if (lua_pcall(L, 1, 1, 1) != LUA_OK) {
        return lua_tostring(L, -1) ? lua_tostring(L, -1)
                                   : "(error object is not a string)";
    }

    lua_remove(L, 1);                           /* the traceback */

    return NULL;
}


char *
ngx_http_consent_lua_hook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = conf;

    ngx_str_t                     *value, path;
    ngx_uint_t                     i;
    ngx_http_consent_hook_t       *hook;
    ngx_http_consent_main_conf_t  *cmcf;

    if (clcf->hook != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        clcf->hook = 0;
        return NGX_CONF_OK;
    }

    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    hook = cmcf->hooks.elts;
    for (i = 0; i < cmcf->hooks.nelts; i++) {
        if (hook[i].path.len == path.len
            && ngx_strncmp(hook[i].path.data, path.data, path.len) == 0)
        {
            clcf->hook = i + 1;
            return NGX_CONF_OK;
        }
    }

    hook = ngx_array_push(&cmcf->hooks);
    if (hook == NULL) {
        return NGX_CONF_ERROR;
    }

    hook->path = path;
    hook->file = cf->conf_file->file.name.data;
    hook->line = cf->conf_file->line;
    hook->ref = LUA_NOREF;

    clcf->hook = cmcf->hooks.nelts;

    return NGX_CONF_OK;
}


/* at configuration time: every hook compiles and returns a table */

/*
 * nginx loads modules RTLD_GLOBAL: with a LuaJIT module in the same
 * nginx (Debian's libnginx-mod-http-lua, OpenResty), whichever of the
 * two loads first provides every lua_* symbol to both, and to
 * lua-cjson, and a hook crashes the worker.  Refuse the hooks instead.
 */

static ngx_int_t
ngx_http_consent_lua_alone(ngx_conf_t *cf)
{
#if (NGX_HAVE_DLOPEN)
    Dl_info   info;
    void     *jit;

    jit = dlsym(RTLD_DEFAULT, "luaJIT_setmode");

    if (jit == NULL) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "consent_lua_hook needs Lua 5.4, but this nginx also "
                  "loads LuaJIT (%s): its lua_* functions and Lua 5.4's "
                  "have the same names and would be mixed up; remove the "
                  "LuaJIT module or the consent hooks (docs/install.md, "
                  "OpenResty)",
                  dladdr(jit, &info) && info.dli_fname ? info.dli_fname
                                                       : "unknown");
    return NGX_ERROR;
#else
    return NGX_OK;
#endif
}


ngx_int_t
ngx_http_consent_lua_check(ngx_conf_t *cf, ngx_http_consent_main_conf_t *cmcf)
{
    lua_State                *L;
    ngx_uint_t                i;
    const char               *err;
    ngx_http_consent_hook_t  *hook;

    if (cmcf->hooks.nelts == 0) {
        return NGX_OK;
    }

    if (ngx_http_consent_lua_alone(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    L = ngx_http_consent_lua_state(cmcf, cf->log);
    if (L == NULL) {
        return NGX_ERROR;
    }

    hook = cmcf->hooks.elts;

    for (i = 0; i < cmcf->hooks.nelts; i++) {
        err = ngx_http_consent_lua_load(L, &hook[i]);

        if (err != NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "consent_lua_hook \"%V\" failed: %s in %s:%ui",
                          &hook[i].path, err, hook[i].file, hook[i].line);
            ngx_http_consent_lua_close(L);
            return NGX_ERROR;
        }
    }

    ngx_http_consent_lua_close(L);

    return NGX_OK;
}


static int
ngx_http_consent_lua_open(lua_State *L)
{
    ngx_http_consent_lua_open_ev(L);
    return 0;
}


ngx_int_t
ngx_http_consent_lua_init_worker(ngx_cycle_t *cycle,
    ngx_http_consent_main_conf_t *cmcf)
{
    lua_State                *L;
    ngx_uint_t                i;
    const char               *err;
    ngx_http_consent_hook_t  *hook;

    if (cmcf == NULL || cmcf->hooks.nelts == 0) {
        return NGX_OK;
    }

    /* hooks fail closed until the next reload if this fails */

    L = ngx_http_consent_lua_state(cmcf, cycle->log);
    if (L == NULL) {
        return NGX_OK;
    }

    lua_pushcfunction(L, ngx_http_consent_lua_open);

    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "consent: Lua hooks fail closed: %s",
                      lua_tostring(L, -1));
        ngx_http_consent_lua_close(L);
        return NGX_OK;
    }

    hook = cmcf->hooks.elts;

    for (i = 0; i < cmcf->hooks.nelts; i++) {
        err = ngx_http_consent_lua_load(L, &hook[i]);

        if (err != NULL) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "consent_lua_hook \"%V\" failed in worker, its "
                          "events fail closed: %s", &hook[i].path, err);
            hook[i].ref = LUA_REFNIL;

        } else if (lua_isnil(L, -1)) {
            hook[i].ref = LUA_NOREF;

        } else {
            lua_pushcfunction(L, ngx_http_consent_lua_ref);
            lua_insert(L, -2);
            hook[i].ref = (lua_pcall(L, 1, 1, 0) == LUA_OK)
                          ? (int) lua_tointeger(L, -1) : LUA_REFNIL;
        }

        lua_settop(L, 0);
    }

    ngx_http_consent_L = L;
    ngx_http_consent_lua_conf = cmcf;

    return NGX_OK;
}


void
ngx_http_consent_lua_exit_worker(void)
{
    if (ngx_http_consent_L) {
        ngx_http_consent_lua_close(ngx_http_consent_L);
        ngx_http_consent_L = NULL;
    }
}


/* logs the first occurrence of each distinct error at error level */

static void
ngx_http_consent_lua_error(ngx_http_request_t *r, const char *msg)
{
    size_t       len;
    uint32_t     crc;
    ngx_uint_t   i;
    const char  *nl;

    ngx_http_consent_status_lua_error(r);

    nl = ngx_strchr(msg, '\n');
    len = nl ? (size_t) (nl - msg) : ngx_strlen(msg);
    crc = ngx_crc32_short((u_char *) msg, len);

    for (i = 0; i < ngx_http_consent_lua_nseen; i++) {
        if (ngx_http_consent_lua_seen[i] == crc) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "consent: Lua hook failed again: %s", msg);
            return;
        }
    }

    if (ngx_http_consent_lua_nseen < NGX_HTTP_CONSENT_LUA_SEEN_MAX) {
        ngx_http_consent_lua_seen[ngx_http_consent_lua_nseen++] = crc;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "consent: Lua hook failed, event fails closed "
                  "(logged once per cause): %s", msg);
}


/*
 * A returned preferences table (at -1): the JSON text for the event,
 * and the mask.  Runs protected; keys stay valid while the table is on
 * the stack.
 */

static const char *
ngx_http_consent_lua_prefs(lua_State *L, ngx_http_consent_lua_call_t *call)
{
    char                         *out;
    size_t                        n, k, len;
    long                          c;
    consent_pref_t               *prefs;
    consent_result_t             *res = call->res;
    ngx_http_request_t           *r = call->r;
    ngx_http_consent_loc_conf_t  *clcf;

    n = 0;

    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            return "the hook returned a preference whose key is not a string";
        }

        if (!lua_isboolean(L, -1)) {
            return "the hook returned a preference that is not a boolean";
        }

        n++;
        lua_pop(L, 1);
    }

    prefs = ngx_palloc(r->pool, (n + 1) * sizeof(consent_pref_t));
    if (prefs == NULL) {
        return "out of memory";
    }

    k = 0;

    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        prefs[k].key.data = lua_tolstring(L, -2, &prefs[k].key.len);
        prefs[k].value = lua_toboolean(L, -1);
        k++;
        lua_pop(L, 1);
    }

    out = ngx_pnalloc(r->pool, consent_prefs_size(prefs, n));
    if (out == NULL) {
        return "out of memory";
    }

    /* sorted, so the forwarded JSON does not depend on hashing */
    len = consent_prefs_json(prefs, n, out);
    if (len == 0) {
        return "the hook returned a preference key that is not valid UTF-8";
    }

    if (res->rewrite == NULL) {
        res->rewrite = ngx_pcalloc(r->pool,
                                   res->nevents * sizeof(consent_str_t));
        if (res->rewrite == NULL) {
            return "out of memory";
        }
    }

    res->rewrite[call->i].data = out;
    res->rewrite[call->i].len = len;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    for (k = 0; k < n; k++) {
        if (!prefs[k].value) {
            continue;
        }

        c = consent_policy_find(&clcf->policy, prefs[k].key.data,
                                prefs[k].key.len);
        if (c >= 0) {
            call->consented[c / 64] |= (uint64_t) 1 << (c % 64);
        }
    }

    return NULL;
}


/* nil, "reason": the reason, kept in the request's pool */

static void
ngx_http_consent_lua_reject(lua_State *L, ngx_http_consent_lua_call_t *call)
{
    size_t                   len;
    const char              *reason;
    ngx_http_request_t      *r = call->r;
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);
    reason = lua_tolstring(L, -1, &len);

    if (ctx->reasons == NULL) {
        ctx->reasons = ngx_pcalloc(r->pool,
                                   call->res->nevents * sizeof(ngx_str_t));
    }

    /* the reason goes into the client's JSON reply: made valid UTF-8 */
    if (ctx->reasons != NULL) {
        ctx->reasons[call->i].data = ngx_pnalloc(r->pool, len);
        if (ctx->reasons[call->i].data != NULL) {
            ngx_memcpy(ctx->reasons[call->i].data, reason, len);
            ctx->reasons[call->i].len = len;

            if (ngx_http_consent_json_utf8(r->pool, &ctx->reasons[call->i])
                != NGX_OK)
            {
                ngx_str_null(&ctx->reasons[call->i]);
            }
        }
    }

    call->verdict = CONSENT_HOOK_REJECT;
}


/* protected: one call of event(ev, req) and what it returned */

static int
ngx_http_consent_lua_run(lua_State *L)
{
    ngx_http_consent_lua_call_t *call = lua_touserdata(L, 1);

    lua_rawgeti(L, LUA_REGISTRYINDEX, call->ref);
    ngx_http_consent_lua_push_ev(L, call);
    ngx_http_consent_lua_push_req(L, call->r);

    lua_call(L, 2, 2);

    if (lua_istable(L, -2)) {
        lua_pop(L, 1);
        call->err = ngx_http_consent_lua_prefs(L, call);
        call->verdict = call->err ? CONSENT_HOOK_FAIL : CONSENT_HOOK_SET;

    } else if (lua_isnil(L, -2) && lua_type(L, -1) == LUA_TSTRING) {
        ngx_http_consent_lua_reject(L, call);

    } else if (!lua_isnil(L, -2)) {
        call->err = "the hook must return a table of preferences, nil, "
                    "or nil and a reason";
        call->verdict = CONSENT_HOOK_FAIL;
    }

    return 0;
}


consent_hook_e
ngx_http_consent_lua_event(void *data, consent_result_t *res, uint32_t i,
    uint64_t *consented)
{
    ngx_http_request_t *r = data;

    int                           rc;
    const char                   *err;
    ngx_http_consent_hook_t      *hook;
    ngx_http_consent_lua_call_t   call;
    ngx_http_consent_loc_conf_t  *clcf;
    lua_State                    *L = ngx_http_consent_L;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (L == NULL) {
        ngx_http_consent_status_lua_error(r);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "consent: no Lua state in this worker, event fails "
                      "closed");
        return CONSENT_HOOK_FAIL;
    }

    hook = ngx_http_consent_lua_conf->hooks.elts;
    hook = &hook[clcf->hook - 1];

    if (hook->ref == LUA_NOREF) {
        return CONSENT_HOOK_KEEP;               /* no event() */
    }

    if (hook->ref == LUA_REFNIL) {
        ngx_http_consent_status_lua_error(r);
        return CONSENT_HOOK_FAIL;               /* did not load */
    }

    call.r = r;
    call.res = res;
    call.i = i;
    call.consented = consented;
    call.ref = hook->ref;
    call.verdict = CONSENT_HOOK_KEEP;
    call.err = NULL;

    /* the stack is empty between calls: these pushes allocate nothing */
    lua_pushcfunction(L, ngx_http_consent_lua_traceback);
    lua_pushcfunction(L, ngx_http_consent_lua_run);
    lua_pushlightuserdata(L, &call);

    ngx_http_consent_lua_arm(L);
    rc = lua_pcall(L, 1, 0, 1);
    ngx_http_consent_lua_leave(L, 0);

    err = call.err;

    if (rc != LUA_OK) {
        err = lua_tostring(L, -1);
        if (err == NULL) {
            err = "(error object is not a string)";
        }
    }

    if (err != NULL) {
        ngx_http_consent_lua_error(r, err);
        call.verdict = CONSENT_HOOK_FAIL;
    }

    lua_settop(L, 0);

    if (rc == LUA_ERRMEM) {
        lua_gc(L, LUA_GCCOLLECT);
    }

    return call.verdict;
}


/* the request is over: its req table goes */

void
ngx_http_consent_lua_done(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    if (ngx_http_consent_L != NULL) {
        ngx_http_consent_lua_leave(ngx_http_consent_L, 1);
    }
}
