
/*
 * ngx_consent: the Lua state hooks run in.  Memory is capped by the
 * allocator; instructions by a count hook that is never removed and,
 * once the budget of a call is spent, raises on every instruction, so
 * that pcall, error handlers and __close cannot go on; C functions that
 * loop over their arguments charge the same budget, and a wall clock
 * stops what the count cannot see.  The global environment keeps only
 * what docs/lua.md lists ("The sandbox").
 */

#include "ngx_http_consent_lua.h"


/* instructions between two count hook calls */
#define NGX_HTTP_CONSENT_LUA_STEP   1000

/* the setup's own budget, whatever consent_lua_max_instructions says */
#define NGX_HTTP_CONSENT_LUA_SETUP  10000000

/* wall time a call may take, per instruction of its budget: 1m -> 5 s */
#define NGX_HTTP_CONSENT_LUA_NS_PER_INSTRUCTION  5000


typedef struct {
    size_t                     used;
    size_t                     cap;
} ngx_http_consent_lua_mem_t;


/* per process: one state at a time (worker, or nginx -t) */
static ngx_http_consent_lua_mem_t  ngx_http_consent_lua_mem;
static size_t                      ngx_http_consent_lua_max;
static size_t                      ngx_http_consent_lua_left;
static ngx_uint_t                  ngx_http_consent_lua_tripped;
static uint64_t                    ngx_http_consent_lua_deadline;


/* the environment, set up once with the standard libraries at hand */
static const char  ngx_http_consent_lua_sandbox[] =
    "local path, tripped = ...\n"
    "local cjson = require 'cjson'\n"
    "local G, loaded, error, type, select, rawget, rawset, pairs, tostring ="
    "  _G, package.loaded, error, type, select, rawget, rawset, pairs,"
    "  tostring\n"
    "local fmt, searchpath, loadfile = string.format, package.searchpath,"
    "  loadfile\n"
    "local load, setmetatable, collectgarbage, xpcall = load, setmetatable,"
    "  collectgarbage, xpcall\n"
    "local function deny(name)\n"
    "  error(name .. ' is not available to consent hooks (sandbox)', 3)\n"
    "end\n"
    /* require: the configured path, Lua sources only */
    "package.path, package.cpath = path, ''\n"
    "package.searchers = { package.searchers[1], function(name)\n"
    "  local file, err = searchpath(name, path)\n"
    "  if file == nil then return '\\n\\t' .. err end\n"
    "  local f, e = loadfile(file, 't')\n"
    "  if f == nil then\n"
    "    error(fmt(\"error loading module '%s' from file '%s':\\n\\t%s\",\n"
    "              name, file, e), 0)\n"
    "  end\n"
    "  return f, file\n"
    "end }\n"
    "local keep = { assert = 1, error = 1, getmetatable = 1, ipairs = 1,\n"
    "  next = 1, pairs = 1, pcall = 1, rawequal = 1, rawget = 1,\n"
    "  rawlen = 1, rawset = 1, select = 1, tonumber = 1, tostring = 1,\n"
    "  type = 1, xpcall = 1, require = 1, _G = 1, _VERSION = 1,\n"
    "  string = 1, table = 1, math = 1, utf8 = 1, cjson = 1,\n"
    "  load = 1, setmetatable = 1, collectgarbage = 1, os = 1 }\n"
    "local denied = {}\n"
    "for k in pairs(G) do if not keep[k] then denied[k] = true end end\n"
    "for k in pairs(denied) do G[k] = nil end\n"
    "for k in pairs(loaded) do\n"
    "  if not keep[k] or k == 'os' then loaded[k] = nil end\n"
    "end\n"
    "local os = { time = os.time, date = os.date, clock = os.clock }\n"
    "setmetatable(os, { __metatable = false, __index = function(_, k)\n"
    "  deny('os.' .. tostring(k)) end })\n"
    "G.os, loaded.os = os, os\n"
    /* finalizers run with hooks off: no instruction limit there */
    "G.setmetatable = function(t, mt)\n"
    "  if type(mt) == 'table' and rawget(mt, '__gc') ~= nil then\n"
    "    error('__gc metamethods are not available to consent hooks "
                "(sandbox)', 2)\n"
    "  end\n"
    "  return setmetatable(t, mt)\n"
    "end\n"
    "G.collectgarbage = function(opt)\n"
    "  if opt == nil or opt == 'collect' or opt == 'count' then\n"
    "    return collectgarbage(opt)\n"
    "  end\n"
    "  error(fmt('collectgarbage(%q) is not available to consent hooks "
               "(sandbox)', tostring(opt)), 2)\n"
    "end\n"
    "G.load = function(chunk, name, mode, ...)\n"
    "  if select('#', ...) > 0 then return load(chunk, name, 't', (...)) end\n"
    "  return load(chunk, name, 't')\n"
    "end\n"
    /* the limit raises inside the count hook, where Lua runs a message
       handler with hooks off: a spent budget skips the hook's handler */
    "G.xpcall = function(f, msgh, ...)\n"
    "  return xpcall(f, function(m)\n"
    "    if tripped() then return m end\n"
    "    return msgh(m)\n"
    "  end, ...)\n"
    "end\n"
    "string.dump = function() deny('string.dump') end\n"
    "setmetatable(G, { __index = function(_, k)\n"
    "  if denied[k] then deny(tostring(k)) end end })\n";


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


/* a coarse monotonic clock, in ns: a few ns a call (vDSO) */

static uint64_t
ngx_http_consent_lua_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static void
ngx_http_consent_lua_count(lua_State *L, lua_Debug *ar)
{
    /*
     * A backstop for C functions whose cost no count sees, such as
     * next() scanning a large emptied array part from its start.
     */
    if (ngx_http_consent_lua_clock() > ngx_http_consent_lua_deadline) {
        ngx_http_consent_lua_left = 0;
    }

    ngx_http_consent_lua_charge(L, lua_gethookcount(L));
}


void
ngx_http_consent_lua_charge(lua_State *L, size_t n)
{
    if (!ngx_http_consent_lua_tripped && n <= ngx_http_consent_lua_left) {
        ngx_http_consent_lua_left -= n;
        return;
    }

    /* from now on every instruction raises, until the next call */
    ngx_http_consent_lua_tripped = 1;
    lua_sethook(L, ngx_http_consent_lua_count, LUA_MASKCOUNT, 1);

    luaL_error(L, "instruction limit exceeded (consent_lua_max_instructions)");
}


static int
ngx_http_consent_lua_tripped_fn(lua_State *L)
{
    lua_pushboolean(L, ngx_http_consent_lua_tripped);
    return 1;
}


void
ngx_http_consent_lua_arm(lua_State *L)
{
    ngx_http_consent_lua_left = ngx_http_consent_lua_max;
    ngx_http_consent_lua_tripped = 0;
    ngx_http_consent_lua_deadline = ngx_http_consent_lua_clock()
        + (uint64_t) ngx_http_consent_lua_max
          * NGX_HTTP_CONSENT_LUA_NS_PER_INSTRUCTION;

    lua_sethook(L, ngx_http_consent_lua_count, LUA_MASKCOUNT,
                (int) ngx_min(ngx_http_consent_lua_max,
                              NGX_HTTP_CONSENT_LUA_STEP));
}


/*
 * string.rep and the table functions that loop over a range or a
 * length their arguments give: the work is charged before it is done
 * (string.rep("", 1e18) and table.move({}, 1, 1e15, 2) spend no memory).
 */

#define NGX_HTTP_CONSENT_LUA_REP     0
#define NGX_HTTP_CONSENT_LUA_MOVE    1
#define NGX_HTTP_CONSENT_LUA_LEN     2      /* insert, remove: #t */
#define NGX_HTTP_CONSENT_LUA_SORT    3
#define NGX_HTTP_CONSENT_LUA_CONCAT  4      /* t, sep, i, j */
#define NGX_HTTP_CONSENT_LUA_UNPACK  5      /* t, i, j */


static lua_Unsigned
ngx_http_consent_lua_span(lua_Integer i, lua_Integer j)
{
    return i > j ? 0 : (lua_Unsigned) j - (lua_Unsigned) i + 1;
}


static lua_Unsigned
ngx_http_consent_lua_cost(lua_State *L, int kind)
{
    int           a;
    size_t        l, lsep;
    lua_Integer   n, i;
    lua_Unsigned  cost;

    switch (kind) {

    case NGX_HTTP_CONSENT_LUA_REP:
        luaL_checklstring(L, 1, &l);
        luaL_optlstring(L, 3, "", &lsep);
        n = luaL_checkinteger(L, 2);

        if (n <= 0 || l + lsep == 0) {
            return 0;
        }

        /* a copy of l + lsep bytes costs about (l + lsep) / 64 + 1/16 */
        return (lua_Unsigned) n / 16 + (lua_Unsigned) n / 64 * (l + lsep);

    case NGX_HTTP_CONSENT_LUA_MOVE:
        return ngx_http_consent_lua_span(luaL_checkinteger(L, 2),
                                         luaL_checkinteger(L, 3));
    }

    if (lua_type(L, 1) != LUA_TTABLE) {
        return 0;                           /* the function itself raises */
    }

    if (kind == NGX_HTTP_CONSENT_LUA_CONCAT
        || kind == NGX_HTTP_CONSENT_LUA_UNPACK)
    {
        a = (kind == NGX_HTTP_CONSENT_LUA_CONCAT) ? 3 : 2;
        i = luaL_optinteger(L, a, 1);
        n = lua_isnoneornil(L, a + 1) ? luaL_len(L, 1)
                                      : luaL_checkinteger(L, a + 1);
        return ngx_http_consent_lua_span(i, n);
    }

    n = luaL_len(L, 1);
    cost = n > 0 ? (lua_Unsigned) n : 0;

    if (kind == NGX_HTTP_CONSENT_LUA_SORT) {
        for (l = 1; ((lua_Unsigned) 1 << l) < cost && l < 63; l++) {
            /* log2 */
        }

        cost = (cost > LUA_MAXINTEGER / l) ? LUA_MAXINTEGER : cost * l;
    }

    return cost;
}


/* upvalue 1: the library function, 2: its kind */

static int
ngx_http_consent_lua_charged(lua_State *L)
{
    int           kind;
    size_t        l, lsep;
    lua_Unsigned  cost;

    kind = (int) lua_tointeger(L, lua_upvalueindex(2));
    cost = ngx_http_consent_lua_cost(L, kind);

    ngx_http_consent_lua_charge(L, (size_t) ngx_min(cost,
                                        ngx_http_consent_lua_max + 1));

    if (kind == NGX_HTTP_CONSENT_LUA_REP) {
        lua_tolstring(L, 1, &l);
        luaL_optlstring(L, 3, "", &lsep);

        if (l + lsep == 0) {
            lua_pushliteral(L, "");         /* Lua would loop n times */
            return 1;
        }
    }

    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);

    return lua_gettop(L);
}


static void
ngx_http_consent_lua_wrap(lua_State *L, const char *name, int kind)
{
    lua_getfield(L, -1, name);
    lua_pushinteger(L, kind);
    lua_pushcclosure(L, ngx_http_consent_lua_charged, 2);
    lua_setfield(L, -2, name);
}


/* runs protected: libraries, charged functions, then the sandbox */

static int
ngx_http_consent_lua_setup(lua_State *L)
{
    ngx_http_consent_main_conf_t *cmcf = lua_touserdata(L, 1);

    luaL_openlibs(L);

    lua_getglobal(L, "string");
    ngx_http_consent_lua_wrap(L, "rep", NGX_HTTP_CONSENT_LUA_REP);
    ngx_http_consent_lua_open_match(L);
    lua_getglobal(L, "table");
    ngx_http_consent_lua_wrap(L, "move", NGX_HTTP_CONSENT_LUA_MOVE);
    ngx_http_consent_lua_wrap(L, "insert", NGX_HTTP_CONSENT_LUA_LEN);
    ngx_http_consent_lua_wrap(L, "remove", NGX_HTTP_CONSENT_LUA_LEN);
    ngx_http_consent_lua_wrap(L, "sort", NGX_HTTP_CONSENT_LUA_SORT);
    ngx_http_consent_lua_wrap(L, "concat", NGX_HTTP_CONSENT_LUA_CONCAT);
    ngx_http_consent_lua_wrap(L, "unpack", NGX_HTTP_CONSENT_LUA_UNPACK);
    lua_pop(L, 2);

    if (luaL_loadbuffer(L, ngx_http_consent_lua_sandbox,
                        sizeof(ngx_http_consent_lua_sandbox) - 1,
                        "=consent")
        != LUA_OK)
    {
        return lua_error(L);
    }

    /* ";;" stands for Lua's default path, as in LUA_PATH */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, ";%s;", lua_tostring(L, -1));
    luaL_gsub(L, (char *) cmcf->lua_path.data, ";;", lua_tostring(L, -1));
    lua_replace(L, -4);
    lua_pop(L, 2);

    lua_pushcfunction(L, ngx_http_consent_lua_tripped_fn);
    lua_call(L, 2, 0);

    return 0;
}


lua_State *
ngx_http_consent_lua_state(ngx_http_consent_main_conf_t *cmcf,
    ngx_log_t *log)
{
    lua_State  *L;

    ngx_http_consent_lua_mem.used = 0;
    ngx_http_consent_lua_mem.cap = cmcf->max_memory;
    ngx_http_consent_lua_max = NGX_HTTP_CONSENT_LUA_SETUP;

    L = lua_newstate(ngx_http_consent_lua_alloc, &ngx_http_consent_lua_mem);
    if (L == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "consent: cannot create Lua state");
        return NULL;
    }

    ngx_http_consent_lua_arm(L);

    lua_pushcfunction(L, ngx_http_consent_lua_setup);
    lua_pushlightuserdata(L, cmcf);

    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "consent: cannot set up the Lua sandbox (is lua-cjson "
                      "installed?): %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }

    ngx_http_consent_lua_max = cmcf->max_instructions;

    return L;
}


/* hooks cannot set __gc: only lua-cjson's own finalizer runs here */

void
ngx_http_consent_lua_close(lua_State *L)
{
    ngx_http_consent_lua_arm(L);
    lua_close(L);
}
