
/*
 * ngx_consent: Lua 5.4 hooks.  One Lua state per worker; a hook file
 * returns a table whose event(ev, req) maps CMP signals to category
 * preferences.  Runaway hooks are stopped by an instruction count and
 * a memory cap; every failure fails closed.
 */

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "ngx_http_consent.h"



#define NGX_HTTP_CONSENT_LUA_SEEN_MAX  128


typedef struct {
    size_t                     used;
    size_t                     cap;
} ngx_http_consent_lua_mem_t;


/* per worker */
static lua_State                    *ngx_http_consent_L;
static ngx_http_consent_lua_mem_t    ngx_http_consent_lua_mem;
static ngx_http_consent_main_conf_t *ngx_http_consent_lua_conf;
static ngx_http_request_t           *ngx_http_consent_lua_r;
static int                           ngx_http_consent_lua_mt = LUA_NOREF;
static int                           ngx_http_consent_lua_seen = LUA_NOREF;
static ngx_uint_t                    ngx_http_consent_lua_nseen;


/* ev's metatable: members decoded with cjson on first use */
static const char  ngx_http_consent_lua_prelude[] =
    "local cjson = require 'cjson'\n"
    "local sub, rawget, rawset = string.sub, rawget, rawset\n"
    "local spans = { consent = { '_cs', '_ce' }, context = { '_xs', '_xe' },\n"
    "                properties = { '_ps', '_pe' } }\n"
    "local function json(ev)\n"
    "    return sub(rawget(ev, '_b'), rawget(ev, '_s'), rawget(ev, '_e'))\n"
    "end\n"
    "return { __index = function(ev, k)\n"
    "    if k == 'json' then return json end\n"
    "    local span = spans[k]\n"
    "    if span == nil then return nil end\n"
    "    local s = rawget(ev, span[1])\n"
    "    if s == nil then return nil end\n"
    "    local b, e = rawget(ev, '_b'), rawget(ev, span[2])\n"
    "    local v = cjson.decode(sub(b, s, e))\n"
    "    rawset(ev, k, v)\n"
    "    return v\n"
    "end }\n";


static void *
ngx_http_consent_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    ngx_http_consent_lua_mem_t *mem = ud;

    void  *p;

    if (ptr == NULL) {
        osize = 0;                          /* osize is a type tag then */
    }

    if (nsize == 0) {
        free(ptr);
        mem->used -= osize;
        return NULL;
    }

    if (nsize > osize && mem->used + (nsize - osize) > mem->cap) {
        return NULL;                        /* Lua raises "not enough memory" */
    }

    p = realloc(ptr, nsize);

    if (p != NULL) {
        mem->used = mem->used - osize + nsize;
    }

    return p;
}


static void
ngx_http_consent_lua_count(lua_State *L, lua_Debug *ar)
{
    luaL_error(L, "instruction limit exceeded (consent_lua_max_instructions)");
}


static int
ngx_http_consent_lua_traceback(lua_State *L)
{
    const char  *msg;

    msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);

    return 1;
}


/* req.headers / req.headers_all / req.cookies lookups */

static ngx_http_request_t *
ngx_http_consent_lua_request(lua_State *L, ngx_str_t *name)
{
    size_t  len;

    if (ngx_http_consent_lua_r == NULL || lua_type(L, 2) != LUA_TSTRING) {
        return NULL;                        /* outside a hook call */
    }

    name->data = (u_char *) lua_tolstring(L, 2, &len);
    name->len = len;

    return ngx_http_consent_lua_r;
}


static int
ngx_http_consent_lua_headers(lua_State *L)
{
    int                                all, n;
    ngx_str_t                          name;
    ngx_table_elt_t                   *h;
    ngx_http_request_t                *r;
    ngx_http_consent_header_cursor_t   c;

    all = (int) lua_tointeger(L, lua_upvalueindex(1));
    r = ngx_http_consent_lua_request(L, &name);

    if (all) {
        lua_newtable(L);
    }

    n = 0;
    c.part = NULL;

    while (r != NULL
           && (h = ngx_http_consent_header_next(r, (char *) name.data,
                                                name.len, &c))
              != NULL)
    {
        lua_pushlstring(L, (char *) h->value.data, h->value.len);

        if (!all) {
            return 1;
        }

        lua_rawseti(L, -2, ++n);
    }

    if (!all) {
        lua_pushnil(L);
    }

    return 1;
}


static int
ngx_http_consent_lua_cookies(lua_State *L)
{
    u_char                            *p, *end, *eq, *semi;
    ngx_str_t                          name;
    ngx_table_elt_t                   *h;
    ngx_http_request_t                *r;
    ngx_http_consent_header_cursor_t   c;

    r = ngx_http_consent_lua_request(L, &name);
    c.part = NULL;

    while (r != NULL
           && (h = ngx_http_consent_header_next(r, "cookie", 6, &c)) != NULL)
    {
        p = h->value.data;
        end = p + h->value.len;

        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t')) {
                p++;
            }

            semi = ngx_strlchr(p, end, ';');
            if (semi == NULL) {
                semi = end;
            }

            eq = ngx_strlchr(p, semi, '=');

            if (eq != NULL && (size_t) (eq - p) == name.len
                && ngx_strncmp(p, name.data, name.len) == 0)
            {
                lua_pushlstring(L, (char *) eq + 1, semi - eq - 1);
                return 1;
            }

            p = semi + 1;
        }
    }

    lua_pushnil(L);
    return 1;
}


static void
ngx_http_consent_lua_lookup_table(lua_State *L, const char *field,
    lua_CFunction fn, int all)
{
    lua_newtable(L);                            /* the proxy table */
    lua_createtable(L, 0, 1);                   /* its metatable */
    lua_pushinteger(L, all);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, field);
}


/* a state with the standard libraries, our path and the ev metatable */

static lua_State *
ngx_http_consent_lua_new(ngx_http_consent_main_conf_t *cmcf, ngx_log_t *log)
{
    lua_State  *L;

    ngx_http_consent_lua_mem.used = 0;
    ngx_http_consent_lua_mem.cap = cmcf->max_memory;

    L = lua_newstate(ngx_http_consent_lua_alloc, &ngx_http_consent_lua_mem);
    if (L == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "consent: cannot create Lua state");
        return NULL;
    }

    luaL_openlibs(L);

    /* ";;" stands for Lua's default path, as in LUA_PATH */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, ";%s;", lua_tostring(L, -1));
    luaL_gsub(L, (char *) cmcf->lua_path.data, ";;", lua_tostring(L, -1));
    lua_setfield(L, -4, "path");
    lua_pop(L, 3);

    if (luaL_loadbuffer(L, ngx_http_consent_lua_prelude,
                        sizeof(ngx_http_consent_lua_prelude) - 1, "=consent")
        != LUA_OK
        || lua_pcall(L, 0, 1, 0) != LUA_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "consent: Lua prelude failed (is lua-cjson "
                      "installed?): %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }

    ngx_http_consent_lua_mt = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_newtable(L);
    ngx_http_consent_lua_seen = luaL_ref(L, LUA_REGISTRYINDEX);

    return L;
}


/*
 * Runs a hook file under the limits; on success leaves its event
 * function (or nil) on the stack.  On failure returns the message.
 */
static const char *
ngx_http_consent_lua_load(lua_State *L, ngx_http_consent_main_conf_t *cmcf,
    ngx_http_consent_hook_t *hook)
{
    int  rc;

    lua_pushcfunction(L, ngx_http_consent_lua_traceback);

    rc = luaL_loadfilex(L, (char *) hook->path.data, "t");

    if (rc == LUA_OK) {
        lua_sethook(L, ngx_http_consent_lua_count, LUA_MASKCOUNT,
                    (int) cmcf->max_instructions);
        rc = lua_pcall(L, 0, 1, -2);
        lua_sethook(L, NULL, 0, 0);
    }

    if (rc != LUA_OK) {
        return lua_tostring(L, -1);
    }

    if (!lua_istable(L, -1)) {
        return "the hook file must return a table";
    }

    lua_getfield(L, -1, "event");

    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1)) {
        return "the hook's \"event\" must be a function";
    }

    lua_remove(L, -2);                          /* the table */
    lua_remove(L, -2);                          /* the traceback */

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

    L = ngx_http_consent_lua_new(cmcf, cf->log);
    if (L == NULL) {
        return NGX_ERROR;
    }

    hook = cmcf->hooks.elts;

    for (i = 0; i < cmcf->hooks.nelts; i++) {
        err = ngx_http_consent_lua_load(L, cmcf, &hook[i]);

        if (err != NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "consent_lua_hook \"%V\" failed: %s in %s:%ui",
                          &hook[i].path, err, hook[i].file, hook[i].line);
            lua_close(L);
            return NGX_ERROR;
        }

        lua_settop(L, 0);
    }

    lua_close(L);

    return NGX_OK;
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

    L = ngx_http_consent_lua_new(cmcf, cycle->log);
    if (L == NULL) {
        /* hooks fail closed until the next reload */
        return NGX_OK;
    }

    hook = cmcf->hooks.elts;

    for (i = 0; i < cmcf->hooks.nelts; i++) {
        err = ngx_http_consent_lua_load(L, cmcf, &hook[i]);

        if (err != NULL) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "consent_lua_hook \"%V\" failed in worker, its "
                          "events fail closed: %s", &hook[i].path, err);
            hook[i].ref = LUA_REFNIL;
            lua_settop(L, 0);
            continue;
        }

        hook[i].ref = lua_isnil(L, -1) ? LUA_NOREF
                                       : luaL_ref(L, LUA_REGISTRYINDEX);
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
        lua_close(ngx_http_consent_L);
        ngx_http_consent_L = NULL;
    }
}


/* the request as a Lua table, built once per request */

static void
ngx_http_consent_lua_push_req(lua_State *L, ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx)
{
    if (ctx->lua_req != LUA_NOREF && ctx->lua_req != 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->lua_req);
        return;
    }

    lua_createtable(L, 0, 5);
    lua_pushlstring(L, (char *) r->uri.data, r->uri.len);
    lua_setfield(L, -2, "uri");
    lua_pushlstring(L, (char *) r->connection->addr_text.data,
                    r->connection->addr_text.len);
    lua_setfield(L, -2, "remote_addr");

    ngx_http_consent_lua_lookup_table(L, "headers",
                                      ngx_http_consent_lua_headers, 0);
    ngx_http_consent_lua_lookup_table(L, "headers_all",
                                      ngx_http_consent_lua_headers, 1);
    ngx_http_consent_lua_lookup_table(L, "cookies",
                                      ngx_http_consent_lua_cookies, 0);

    lua_pushvalue(L, -1);
    ctx->lua_req = luaL_ref(L, LUA_REGISTRYINDEX);
}


/* pushes a scanned scalar: string, number, boolean; nil otherwise */

static void
ngx_http_consent_lua_push_value(lua_State *L, consent_result_t *res,
    uint32_t t)
{
    u_char                    *buf;
    size_t                     n;
    luaL_Buffer                b;
    const consent_json_tok_t  *tok = &res->tok[t];

    switch (tok->type) {

    case CONSENT_JSON_STRING:
        buf = (u_char *) luaL_buffinitsize(L, &b, tok->end - tok->start);
        n = consent_json_str_decode(res->body, tok, buf);
        luaL_pushresultsize(&b, n);
        return;

    case CONSENT_JSON_NUMBER:
        lua_pushlstring(L, (char *) res->body + tok->start,
                        tok->end - tok->start);
        if (lua_stringtonumber(L, lua_tostring(L, -1)) != 0) {
            lua_remove(L, -2);
        }
        return;

    case CONSENT_JSON_TRUE:
    case CONSENT_JSON_FALSE:
        lua_pushboolean(L, tok->type == CONSENT_JSON_TRUE);
        return;

    default:
        lua_pushnil(L);
        return;
    }
}


static void
ngx_http_consent_lua_field(lua_State *L, consent_result_t *res,
    uint32_t obj, const char *key, const char *field)
{
    uint32_t  t;

    t = consent_json_member(res->body, res->tok, obj, key, ngx_strlen(key));

    if (t == 0) {
        return;
    }

    ngx_http_consent_lua_push_value(L, res, t);
    lua_setfield(L, -2, field);
}


/* ev: scalars now, JSON members as offsets into the body for later */

static void
ngx_http_consent_lua_span(lua_State *L, const consent_json_tok_t *tok,
    uint32_t t, const char *s, const char *e)
{
    if (t == 0) {
        return;
    }

    lua_pushinteger(L, tok[t].start + 1);
    lua_setfield(L, -2, s);
    lua_pushinteger(L, tok[t].end);
    lua_setfield(L, -2, e);
}


static void
ngx_http_consent_lua_push_ev(lua_State *L, ngx_http_consent_ctx_t *ctx,
    consent_result_t *res, uint32_t i)
{
    uint32_t                   obj;
    consent_event_t           *ev;
    const consent_json_tok_t  *tok = res->tok;

    ev = &res->events[i];
    obj = ev->tok;

    lua_createtable(L, 0, 12);

    lua_pushstring(L, consent_type_name(ev->type));
    lua_setfield(L, -2, "type");

    ngx_http_consent_lua_field(L, res, obj, "event", "event");
    ngx_http_consent_lua_field(L, res, obj, "userId", "userId");
    ngx_http_consent_lua_field(L, res, obj, "anonymousId", "anonymousId");

    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->lua_body);
    lua_setfield(L, -2, "_b");
    lua_pushinteger(L, ev->start + 1);
    lua_setfield(L, -2, "_s");
    lua_pushinteger(L, ev->end);
    lua_setfield(L, -2, "_e");

    ngx_http_consent_lua_span(L, tok, ev->prefs, "_cs", "_ce");

    if (ev->broken) {
        /* a malformed consent object is not "no consent": cjson.null */
        lua_pushlightuserdata(L, NULL);
        lua_setfield(L, -2, "consent");
    }
    ngx_http_consent_lua_span(L, tok,
                              consent_json_member(res->body, tok, obj,
                                                  "context", 7),
                              "_xs", "_xe");
    ngx_http_consent_lua_span(L, tok,
                              consent_json_member(res->body, tok, obj,
                                                  "properties", 10),
                              "_ps", "_pe");

    lua_rawgeti(L, LUA_REGISTRYINDEX, ngx_http_consent_lua_mt);
    lua_setmetatable(L, -2);
}


/* logs the first occurrence of each distinct error at error level */

static void
ngx_http_consent_lua_error(lua_State *L, ngx_http_request_t *r,
    const char *msg)
{
    size_t       len;
    const char  *nl;

    ngx_http_consent_status_lua_error(r);

    nl = ngx_strchr(msg, '\n');
    len = nl ? (size_t) (nl - msg) : ngx_strlen(msg);

    lua_rawgeti(L, LUA_REGISTRYINDEX, ngx_http_consent_lua_seen);
    lua_pushlstring(L, msg, len);

    if (lua_rawget(L, -2) != LUA_TNIL) {
        lua_pop(L, 2);
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "consent: Lua hook failed again: %s", msg);
        return;
    }

    lua_pop(L, 1);

    if (ngx_http_consent_lua_nseen < NGX_HTTP_CONSENT_LUA_SEEN_MAX) {
        ngx_http_consent_lua_nseen++;
        lua_pushlstring(L, msg, len);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }

    lua_pop(L, 1);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "consent: Lua hook failed, event fails closed "
                  "(logged once per cause): %s", msg);
}


/* a returned preferences table: JSON text for the event, and the mask */

static const char *
ngx_http_consent_lua_prefs(lua_State *L, ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, consent_result_t *res, uint32_t i,
    uint64_t *consented)
{
    u_char                       *p;
    size_t                        size, n, k, j;
    long                          c;
    ngx_str_t                    *keys, key;
    ngx_uint_t                   *vals, v;
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    n = 0;
    size = 2;

    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return "the hook returned a preference whose key is not a string";
        }

        if (!lua_isboolean(L, -1)) {
            lua_pop(L, 2);
            return "the hook returned a preference that is not a boolean";
        }

        size += lua_rawlen(L, -2) * 6 + sizeof("\"\":false,");
        n++;
        lua_pop(L, 1);
    }

    keys = ngx_palloc(r->pool, (n + 1) * sizeof(ngx_str_t));
    vals = ngx_palloc(r->pool, (n + 1) * sizeof(ngx_uint_t));
    p = ngx_pnalloc(r->pool, size);
    if (keys == NULL || vals == NULL || p == NULL) {
        return "out of memory";
    }

    /* sorted by key, so the forwarded JSON does not depend on hashing */
    k = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        key.data = (u_char *) lua_tolstring(L, -2, &key.len);
        v = lua_toboolean(L, -1);

        for (j = k; j > 0 && ngx_memn2cmp(keys[j - 1].data, key.data,
                                         keys[j - 1].len, key.len) > 0; j--)
        {
            keys[j] = keys[j - 1];
            vals[j] = vals[j - 1];
        }

        keys[j] = key;
        vals[j] = v;
        k++;

        if (v) {
            c = consent_policy_find(&clcf->policy, (char *) key.data, key.len);
            if (c >= 0) {
                consented[c / 64] |= (uint64_t) 1 << (c % 64);
            }
        }

        lua_pop(L, 1);
    }

    if (res->rewrite == NULL) {
        res->rewrite = ngx_pcalloc(r->pool,
                                   res->nevents * sizeof(consent_str_t));
        if (res->rewrite == NULL) {
            return "out of memory";
        }
    }

    res->rewrite[i].data = (char *) p;

    *p++ = '{';

    for (j = 0; j < k; j++) {
        if (j) {
            *p++ = ',';
        }

        *p++ = '"';
        p = (u_char *) ngx_escape_json(p, keys[j].data, keys[j].len);
        p = ngx_sprintf(p, "\":%s", vals[j] ? "true" : "false");
    }

    *p++ = '}';

    res->rewrite[i].len = p - (u_char *) res->rewrite[i].data;

    return NULL;
}


consent_hook_e
ngx_http_consent_lua_event(void *data, consent_result_t *res, uint32_t i,
    uint64_t *consented)
{
    ngx_http_request_t *r = data;

    int                           rc, base;
    size_t                        len;
    const char                   *err, *reason;
    consent_hook_e                verdict;
    ngx_http_consent_ctx_t       *ctx;
    ngx_http_consent_hook_t      *hook;
    ngx_http_consent_loc_conf_t  *clcf;
    lua_State                    *L = ngx_http_consent_L;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_consent_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_consent_module);

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

    base = lua_gettop(L);

    if (ctx->lua_body == 0) {
        lua_pushlstring(L, (char *) res->body, ctx->body_len);
        ctx->lua_body = luaL_ref(L, LUA_REGISTRYINDEX);
    }

    lua_pushcfunction(L, ngx_http_consent_lua_traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hook->ref);
    ngx_http_consent_lua_push_ev(L, ctx, res, i);
    ngx_http_consent_lua_push_req(L, r, ctx);

    ngx_http_consent_lua_r = r;
    lua_sethook(L, ngx_http_consent_lua_count, LUA_MASKCOUNT,
                (int) ngx_http_consent_lua_conf->max_instructions);

    rc = lua_pcall(L, 2, 2, base + 1);

    lua_sethook(L, NULL, 0, 0);
    ngx_http_consent_lua_r = NULL;

    err = NULL;
    verdict = CONSENT_HOOK_KEEP;

    if (rc != LUA_OK) {
        err = lua_tostring(L, -1);
        if (err == NULL) {
            err = "(error object is not a string)";
        }

    } else if (lua_istable(L, -2)) {
        lua_pushvalue(L, -2);
        err = ngx_http_consent_lua_prefs(L, r, ctx, res, i, consented);
        lua_pop(L, 1);
        verdict = CONSENT_HOOK_SET;

    } else if (lua_isnil(L, -2) && lua_type(L, -1) == LUA_TSTRING) {
        reason = lua_tolstring(L, -1, &len);

        if (ctx->reasons == NULL) {
            ctx->reasons = ngx_pcalloc(r->pool,
                                       res->nevents * sizeof(ngx_str_t));
        }

        if (ctx->reasons != NULL) {
            ctx->reasons[i].data = ngx_pnalloc(r->pool, len);
            if (ctx->reasons[i].data != NULL) {
                ngx_memcpy(ctx->reasons[i].data, reason, len);
                ctx->reasons[i].len = len;
            }
        }

        verdict = CONSENT_HOOK_REJECT;

    } else if (!lua_isnil(L, -2)) {
        err = "the hook must return a table of preferences, nil, "
              "or nil and a reason";
    }

    if (err != NULL) {
        ngx_http_consent_lua_error(L, r, err);
        verdict = CONSENT_HOOK_FAIL;

        if (rc == LUA_ERRMEM) {
            lua_settop(L, base);
            lua_gc(L, LUA_GCCOLLECT);
        }
    }

    lua_settop(L, base);

    return verdict;
}


/* drops the request's Lua objects */

void
ngx_http_consent_lua_done(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    lua_State  *L = ngx_http_consent_L;

    if (L == NULL) {
        return;
    }

    if (ctx->lua_req != 0 && ctx->lua_req != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, ctx->lua_req);
    }

    if (ctx->lua_body != 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, ctx->lua_body);
    }

    ctx->lua_req = 0;
    ctx->lua_body = 0;
}
