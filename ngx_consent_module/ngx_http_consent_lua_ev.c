
/*
 * ngx_consent: what a hook's event(ev, req) is given.  ev holds the
 * event's scalars; its JSON text and its objects are read from the
 * request body (never copied into Lua whole) on first access, and only
 * while its own event() call runs.  req is built once per request.
 */

#include "ngx_http_consent_lua.h"


/* per worker: the call under way, and objects kept in the registry */
static ngx_http_consent_lua_call_t  *ngx_http_consent_lua_cur;
static lua_Integer                   ngx_http_consent_lua_gen;
static ngx_http_request_t           *ngx_http_consent_lua_req_for;
static int                           ngx_http_consent_lua_req_ref;
static int                           ngx_http_consent_lua_mt_ref;

/* ev[&key] is the number of the call ev was made for */
static const char                    ngx_http_consent_lua_key;


/* req.headers / req.headers_all / req.cookies lookups */

static ngx_http_request_t *
ngx_http_consent_lua_request(lua_State *L, ngx_str_t *name)
{
    size_t  len;

    if (ngx_http_consent_lua_cur == NULL || lua_type(L, 2) != LUA_TSTRING) {
        return NULL;                        /* outside a hook call */
    }

    name->data = (u_char *) lua_tolstring(L, 2, &len);
    name->len = len;

    return ngx_http_consent_lua_cur->r;
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
    lua_createtable(L, 0, 2);                   /* its metatable */
    lua_pushinteger(L, all);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, field);
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


/* the event ev was made for, if its call is the one under way */

static consent_event_t *
ngx_http_consent_lua_event_of(lua_State *L, int ev)
{
    lua_Integer  gen;

    luaL_checktype(L, ev, LUA_TTABLE);
    lua_rawgetp(L, ev, &ngx_http_consent_lua_key);
    gen = lua_tointeger(L, -1);
    lua_pop(L, 1);

    if (ngx_http_consent_lua_cur == NULL || gen != ngx_http_consent_lua_gen) {
        luaL_error(L, "ev is only readable during its own event() call");
    }

    return &ngx_http_consent_lua_cur->res->events[ngx_http_consent_lua_cur->i];
}


static int
ngx_http_consent_lua_json(lua_State *L)
{
    consent_event_t  *ev;

    ev = ngx_http_consent_lua_event_of(L, 1);
    lua_pushlstring(L, (char *) ngx_http_consent_lua_cur->res->body
                       + ev->start, ev->end - ev->start);

    return 1;
}


/* ev.raw, ev.consent, ev.context, ev.properties; upvalue: cjson.decode */

static int
ngx_http_consent_lua_ev_index(lua_State *L)
{
    size_t                     len;
    uint32_t                   t;
    const char                *k;
    consent_event_t           *ev;
    consent_result_t          *res;
    const consent_json_tok_t  *tok;

    k = lua_tolstring(L, 2, &len);

    if (k == NULL || lua_type(L, 2) != LUA_TSTRING) {
        return 0;
    }

    if (len == 4 && ngx_strcmp(k, "json") == 0) {
        lua_pushcfunction(L, ngx_http_consent_lua_json);
        return 1;
    }

    ev = ngx_http_consent_lua_event_of(L, 1);
    res = ngx_http_consent_lua_cur->res;
    tok = res->tok;

    if (len == 3 && ngx_strcmp(k, "raw") == 0) {
        ngx_http_consent_lua_json(L);
        goto cache;
    }

    if (len == 7 && ngx_strcmp(k, "consent") == 0) {
        if (ev->broken) {
            /* a malformed consent object is not "no consent": cjson.null */
            lua_pushlightuserdata(L, NULL);
            goto cache;
        }

        t = ev->prefs;

    } else if ((len == 7 && ngx_strcmp(k, "context") == 0)
               || (len == 10 && ngx_strcmp(k, "properties") == 0))
    {
        t = consent_json_member(res->body, tok, ev->tok, k, len);

    } else {
        return 0;
    }

    if (t == 0) {
        return 0;
    }

    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushlstring(L, (char *) res->body + tok[t].start,
                    tok[t].end - tok[t].start);
    lua_call(L, 1, 1);

cache:

    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);

    return 1;
}


void
ngx_http_consent_lua_push_ev(lua_State *L, ngx_http_consent_lua_call_t *call)
{
    uint32_t          obj;
    consent_event_t  *ev;

    ev = &call->res->events[call->i];
    obj = ev->tok;

    ngx_http_consent_lua_cur = call;
    ngx_http_consent_lua_gen++;

    lua_createtable(L, 0, 5);

    lua_pushstring(L, consent_type_name(ev->type));
    lua_setfield(L, -2, "type");

    ngx_http_consent_lua_field(L, call->res, obj, "event", "event");
    ngx_http_consent_lua_field(L, call->res, obj, "userId", "userId");
    ngx_http_consent_lua_field(L, call->res, obj, "anonymousId",
                               "anonymousId");

    lua_pushinteger(L, ngx_http_consent_lua_gen);
    lua_rawsetp(L, -2, &ngx_http_consent_lua_key);

    lua_rawgeti(L, LUA_REGISTRYINDEX, ngx_http_consent_lua_mt_ref);
    lua_setmetatable(L, -2);
}


/* the request as a Lua table, built once per request */

void
ngx_http_consent_lua_push_req(lua_State *L, ngx_http_request_t *r)
{
    if (ngx_http_consent_lua_req_for == r) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ngx_http_consent_lua_req_ref);
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
    lua_rawseti(L, LUA_REGISTRYINDEX, ngx_http_consent_lua_req_ref);
    ngx_http_consent_lua_req_for = r;
}


/*
 * After a call: ev and req lookups stop working.  done: the request
 * is over, its req goes (replacing a registry slot allocates nothing).
 */

void
ngx_http_consent_lua_leave(lua_State *L, ngx_uint_t done)
{
    ngx_http_consent_lua_cur = NULL;

    if (done && ngx_http_consent_lua_req_for != NULL) {
        ngx_http_consent_lua_req_for = NULL;
        lua_pushboolean(L, 0);
        lua_rawseti(L, LUA_REGISTRYINDEX, ngx_http_consent_lua_req_ref);
    }
}


/* runs protected, once per worker state */

void
ngx_http_consent_lua_open_ev(lua_State *L)
{
    lua_pushboolean(L, 0);
    ngx_http_consent_lua_req_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ngx_http_consent_lua_req_for = NULL;

    lua_createtable(L, 0, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "cjson");
    lua_getfield(L, -1, "decode");
    lua_pushcclosure(L, ngx_http_consent_lua_ev_index, 1);
    lua_setfield(L, -4, "__index");
    lua_pop(L, 2);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    ngx_http_consent_lua_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}
