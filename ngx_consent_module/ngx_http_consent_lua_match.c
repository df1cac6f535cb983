
/*
 * ngx_consent: string.find, match, gmatch and gsub for hooks.  Lua's
 * own matcher backtracks in C, where the count hook never runs:
 * string.find(("a"):rep(30), ("a*"):rep(30) .. "b") would not return in
 * this century.  This one implements the same patterns (Lua 5.4 manual,
 * 6.4.1) and charges every step to the call's instruction budget.
 * A plain find charges each place it compares.
 */

#include "ngx_http_consent_lua.h"


#define NGX_HTTP_CONSENT_MATCH_DEPTH    200     /* as Lua's MAXCCALLS */
#define NGX_HTTP_CONSENT_MATCH_CAPTURES 32      /* as LUA_MAXCAPTURES */
#define NGX_HTTP_CONSENT_MATCH_CHARGE   256     /* steps charged at once */

#define NGX_HTTP_CONSENT_CAP_UNFINISHED  (-1)
#define NGX_HTTP_CONSENT_CAP_POSITION    (-2)


typedef struct {
    const u_char              *init;
    ptrdiff_t                  len;
} ngx_http_consent_capture_t;


typedef struct {
    const u_char              *src;         /* the subject */
    const u_char              *src_end;
    const u_char              *p_end;       /* the pattern's end */
    lua_State                 *L;
    ngx_uint_t                 depth;
    ngx_uint_t                 steps;
    int                        level;       /* captures open or closed */
    ngx_http_consent_capture_t capture[NGX_HTTP_CONSENT_MATCH_CAPTURES];
} ngx_http_consent_match_t;


static const u_char *ngx_http_consent_match(ngx_http_consent_match_t *ms,
    const u_char *s, const u_char *p);


static void
ngx_http_consent_match_step(ngx_http_consent_match_t *ms)
{
    if (++ms->steps >= NGX_HTTP_CONSENT_MATCH_CHARGE) {
        ngx_http_consent_lua_charge(ms->L, ms->steps);
        ms->steps = 0;
    }
}


static int
ngx_http_consent_match_class(int c, int cl)
{
    int  res;

    switch (ngx_tolower(cl)) {
    case 'a': res = isalpha(c); break;
    case 'c': res = iscntrl(c); break;
    case 'd': res = isdigit(c); break;
    case 'g': res = isgraph(c); break;
    case 'l': res = islower(c); break;
    case 'p': res = ispunct(c); break;
    case 's': res = isspace(c); break;
    case 'u': res = isupper(c); break;
    case 'w': res = isalnum(c); break;
    case 'x': res = isxdigit(c); break;
    case 'z': res = (c == 0); break;        /* deprecated, still there */
    default: return cl == c;
    }

    if (isupper(cl)) {
        res = !res;
    }

    return res != 0;
}


/* [set]: p at '[', ec at its closing ']' */

static int
ngx_http_consent_match_set(int c, const u_char *p, const u_char *ec)
{
    int  sig = 1;

    if (p[1] == '^') {
        sig = 0;
        p++;
    }

    while (++p < ec) {
        if (*p == '%') {
            p++;
            if (ngx_http_consent_match_class(c, *p)) {
                return sig;
            }

        } else if (p[1] == '-' && p + 2 < ec) {
            p += 2;
            if (p[-2] <= c && c <= *p) {
                return sig;
            }

        } else if (*p == c) {
            return sig;
        }
    }

    return !sig;
}


/* the end of the single character class at p */

static const u_char *
ngx_http_consent_match_class_end(ngx_http_consent_match_t *ms,
    const u_char *p)
{
    u_char  c = *p++;

    if (c == '%') {
        if (p >= ms->p_end) {
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        }
        return p + 1;
    }

    if (c == '[') {
        if (p < ms->p_end && *p == '^') {
            p++;
        }

        do {                                /* the first ']' is a member */
            if (p >= ms->p_end) {
                luaL_error(ms->L, "malformed pattern (missing ']')");
            }
            c = *p++;
            if (c == '%' && p < ms->p_end) {
                p++;
            }
        } while (p >= ms->p_end || *p != ']');

        return p + 1;
    }

    return p;
}


static int
ngx_http_consent_match_single(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char *p, const u_char *ep)
{
    if (s >= ms->src_end) {
        return 0;
    }

    switch (*p) {
    case '.': return 1;
    case '%': return ngx_http_consent_match_class(*s, p[1]);
    case '[': return ngx_http_consent_match_set(*s, p, ep - 1);
    default:  return *p == *s;
    }
}


static const u_char *
ngx_http_consent_match_balance(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char *p)
{
    int  cont;

    if (p + 1 >= ms->p_end) {
        luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    }

    if (s >= ms->src_end || *s != *p) {
        return NULL;
    }

    cont = 1;

    while (++s < ms->src_end) {
        ngx_http_consent_match_step(ms);

        if (*s == p[1]) {
            if (--cont == 0) {
                return s + 1;
            }

        } else if (*s == *p) {
            cont++;
        }
    }

    return NULL;
}


/* greedy: the longest run first, then shorter ones */

static const u_char *
ngx_http_consent_match_max(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char *p, const u_char *ep)
{
    ptrdiff_t      i;
    const u_char  *res;

    for (i = 0; ngx_http_consent_match_single(ms, s + i, p, ep); i++) {
        ngx_http_consent_match_step(ms);
    }

    for ( /* void */ ; i >= 0; i--) {
        res = ngx_http_consent_match(ms, s + i, ep + 1);
        if (res != NULL) {
            return res;
        }
    }

    return NULL;
}


static const u_char *
ngx_http_consent_match_min(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char *p, const u_char *ep)
{
    const u_char  *res;

    for ( ;; ) {
        res = ngx_http_consent_match(ms, s, ep + 1);

        if (res != NULL) {
            return res;
        }

        if (!ngx_http_consent_match_single(ms, s, p, ep)) {
            return NULL;
        }

        s++;
    }
}


static const u_char *
ngx_http_consent_match_open(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char *p, ptrdiff_t what)
{
    const u_char  *res;

    if (ms->level >= NGX_HTTP_CONSENT_MATCH_CAPTURES) {
        luaL_error(ms->L, "too many captures");
    }

    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;

    res = ngx_http_consent_match(ms, s, p);
    if (res == NULL) {
        ms->level--;
    }

    return res;
}


static const u_char *
ngx_http_consent_match_close(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char *p)
{
    int            l;
    const u_char  *res;

    for (l = ms->level - 1; l >= 0; l--) {
        if (ms->capture[l].len == NGX_HTTP_CONSENT_CAP_UNFINISHED) {
            break;
        }
    }

    if (l < 0) {
        luaL_error(ms->L, "invalid pattern capture");
    }

    ms->capture[l].len = s - ms->capture[l].init;

    res = ngx_http_consent_match(ms, s, p);
    if (res == NULL) {
        ms->capture[l].len = NGX_HTTP_CONSENT_CAP_UNFINISHED;
    }

    return res;
}


/* %1-%9: the text of a closed capture again */

static const u_char *
ngx_http_consent_match_back(ngx_http_consent_match_t *ms, const u_char *s,
    int l)
{
    size_t  len;

    l -= '1';

    if (l < 0 || l >= ms->level
        || ms->capture[l].len == NGX_HTTP_CONSENT_CAP_UNFINISHED)
    {
        luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    }

    len = (size_t) ms->capture[l].len;

    if ((size_t) (ms->src_end - s) >= len
        && ngx_memcmp(ms->capture[l].init, s, len) == 0)
    {
        ms->steps += len / 64;
        return s + len;
    }

    return NULL;
}


/* %f[set]: p after "%f" */

static const u_char *
ngx_http_consent_match_frontier(ngx_http_consent_match_t *ms,
    const u_char *s, const u_char *p)
{
    int            prev, cur;
    const u_char  *ep;

    if (p >= ms->p_end || *p != '[') {
        luaL_error(ms->L, "missing '[' after '%%f' in pattern");
    }

    ep = ngx_http_consent_match_class_end(ms, p);
    prev = (s == ms->src) ? '\0' : s[-1];
    cur = (s < ms->src_end) ? *s : '\0';

    if (!ngx_http_consent_match_set(prev, p, ep - 1)
        && ngx_http_consent_match_set(cur, p, ep - 1))
    {
        return ep;
    }

    return NULL;
}


/* a single class and what follows it: '?', '*', '+', '-' or nothing */

static const u_char *
ngx_http_consent_match_item(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char **pp)
{
    const u_char  *p, *ep, *res;

    p = *pp;
    ep = ngx_http_consent_match_class_end(ms, p);

    if (!ngx_http_consent_match_single(ms, s, p, ep)) {
        if (ep < ms->p_end && (*ep == '*' || *ep == '?' || *ep == '-')) {
            *pp = ep + 1;                   /* matches empty */
            return s;
        }

        return NULL;
    }

    if (ep >= ms->p_end) {
        *pp = ep;
        return s + 1;
    }

    switch (*ep) {

    case '?':
        res = ngx_http_consent_match(ms, s + 1, ep + 1);
        if (res != NULL) {
            *pp = NULL;                     /* the whole match is res */
            return res;
        }
        *pp = ep + 1;
        return s;

    case '+':
        *pp = NULL;
        return ngx_http_consent_match_max(ms, s + 1, p, ep);

    case '*':
        *pp = NULL;
        return ngx_http_consent_match_max(ms, s, p, ep);

    case '-':
        *pp = NULL;
        return ngx_http_consent_match_min(ms, s, p, ep);

    default:
        *pp = ep;
        return s + 1;
    }
}


/* the end of the match of pattern p at s, or NULL */

static const u_char *
ngx_http_consent_match(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char *p)
{
    if (ms->depth++ == NGX_HTTP_CONSENT_MATCH_DEPTH) {
        luaL_error(ms->L, "pattern too complex");
    }

    while (s != NULL && p != NULL && p < ms->p_end) {
        ngx_http_consent_match_step(ms);

        switch (*p) {

        case '(':
            if (p + 1 < ms->p_end && p[1] == ')') {
                s = ngx_http_consent_match_open(ms, s, p + 2,
                                              NGX_HTTP_CONSENT_CAP_POSITION);
            } else {
                s = ngx_http_consent_match_open(ms, s, p + 1,
                                            NGX_HTTP_CONSENT_CAP_UNFINISHED);
            }
            p = NULL;
            continue;

        case ')':
            s = ngx_http_consent_match_close(ms, s, p + 1);
            p = NULL;
            continue;

        case '$':
            if (p + 1 == ms->p_end) {
                s = (s == ms->src_end) ? s : NULL;
                p = NULL;
                continue;
            }
            break;

        case '%':
            if (p + 1 >= ms->p_end) {
                break;                      /* class_end() raises */
            }

            if (p[1] == 'b') {
                s = ngx_http_consent_match_balance(ms, s, p + 2);
                p += 4;
                continue;
            }

            if (p[1] == 'f') {
                p = ngx_http_consent_match_frontier(ms, s, p + 2);
                s = (p != NULL) ? s : NULL;
                continue;
            }

            if (isdigit(p[1])) {
                s = ngx_http_consent_match_back(ms, s, p[1]);
                p += 2;
                continue;
            }

            break;
        }

        s = ngx_http_consent_match_item(ms, s, &p);
    }

    ms->depth--;

    return s;
}


/* a match attempt at s, from a clean state */

static const u_char *
ngx_http_consent_match_at(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char *p)
{
    ms->level = 0;
    ms->depth = 0;

    return ngx_http_consent_match(ms, s, p);
}


static void
ngx_http_consent_match_init(ngx_http_consent_match_t *ms, lua_State *L,
    const u_char *s, size_t ls, const u_char *p, size_t lp)
{
    ms->L = L;
    ms->src = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->steps = 0;
    ms->level = 0;
    ms->depth = 0;
}


/* capture i of the match [s, e); i == 0 without captures: the match */

static void
ngx_http_consent_match_push_one(ngx_http_consent_match_t *ms, int i,
    const u_char *s, const u_char *e)
{
    ptrdiff_t  l;

    if (i >= ms->level) {
        if (i != 0) {
            luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        }
        lua_pushlstring(ms->L, (const char *) s, e - s);
        return;
    }

    l = ms->capture[i].len;

    if (l == NGX_HTTP_CONSENT_CAP_UNFINISHED) {
        luaL_error(ms->L, "unfinished capture");
    }

    if (l == NGX_HTTP_CONSENT_CAP_POSITION) {
        lua_pushinteger(ms->L, ms->capture[i].init - ms->src + 1);
        return;
    }

    lua_pushlstring(ms->L, (const char *) ms->capture[i].init, l);
}


/* s == NULL: captures only (find); returns how many were pushed */

static int
ngx_http_consent_match_push(ngx_http_consent_match_t *ms, const u_char *s,
    const u_char *e)
{
    int  i, n;

    n = (ms->level == 0 && s != NULL) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");

    for (i = 0; i < n; i++) {
        ngx_http_consent_match_push_one(ms, i, s, e);
    }

    return n;
}


/* Lua's posrelatI(): a 1-based start, clipped to [1, len + 1] */

static size_t
ngx_http_consent_match_start(lua_Integer pos, size_t len)
{
    if (pos > 0) {
        return (size_t) pos;
    }

    if (pos == 0 || pos < -(lua_Integer) len) {
        return 1;
    }

    return len + (size_t) pos + 1;
}


static int
ngx_http_consent_match_plain(const u_char *p, size_t lp)
{
    size_t  i;

    for (i = 0; i < lp; i++) {
        if (ngx_strchr("^$*+?.([%-", p[i]) != NULL && p[i] != '\0') {
            return 0;
        }
    }

    return 1;
}


/* p in [s, end), each place compared charged */

static const u_char *
ngx_http_consent_match_plain_find(lua_State *L, const u_char *s,
    const u_char *end, const u_char *p, size_t lp)
{
    if (lp == 0) {
        return s;
    }

    while ((size_t) (end - s) >= lp
           && (s = memchr(s, *p, end - s - lp + 1)) != NULL)
    {
        ngx_http_consent_lua_charge(L, 1 + lp / 64);

        if (ngx_memcmp(s, p, lp) == 0) {
            return s;
        }

        s++;
    }

    return NULL;
}


static int
ngx_http_consent_match_find_aux(lua_State *L, int find)
{
    int                        anchor;
    size_t                     ls, lp, init;
    const u_char              *s, *p, *s1, *e;
    ngx_http_consent_match_t   ms;

    s = (const u_char *) luaL_checklstring(L, 1, &ls);
    p = (const u_char *) luaL_checklstring(L, 2, &lp);
    init = ngx_http_consent_match_start(luaL_optinteger(L, 3, 1), ls) - 1;

    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }

    if (find && (lua_toboolean(L, 4) || ngx_http_consent_match_plain(p, lp))) {
        e = ngx_http_consent_match_plain_find(L, s + init, s + ls, p, lp);

        if (e == NULL) {
            luaL_pushfail(L);
            return 1;
        }

        lua_pushinteger(L, e - s + 1);
        lua_pushinteger(L, e - s + lp);
        return 2;
    }

    anchor = (lp > 0 && *p == '^');
    if (anchor) {
        p++;
        lp--;
    }

    ngx_http_consent_match_init(&ms, L, s, ls, p, lp);
    s1 = s + init;

    do {
        e = ngx_http_consent_match_at(&ms, s1, p);

        if (e != NULL) {
            if (find) {
                lua_pushinteger(L, s1 - s + 1);
                lua_pushinteger(L, e - s);
                return ngx_http_consent_match_push(&ms, NULL, NULL) + 2;
            }

            return ngx_http_consent_match_push(&ms, s1, e);
        }

    } while (s1++ < ms.src_end && !anchor);

    luaL_pushfail(L);
    return 1;
}


static int
ngx_http_consent_lua_find(lua_State *L)
{
    return ngx_http_consent_match_find_aux(L, 1);
}


static int
ngx_http_consent_lua_match(lua_State *L)
{
    return ngx_http_consent_match_find_aux(L, 0);
}


/* gmatch's state, a userdata: upvalues 1 and 2 keep s and p alive */

typedef struct {
    const u_char              *src;
    const u_char              *p;
    const u_char              *lastmatch;
    ngx_http_consent_match_t   ms;
} ngx_http_consent_gmatch_t;


static int
ngx_http_consent_lua_gmatch_aux(lua_State *L)
{
    const u_char               *src, *e;
    ngx_http_consent_gmatch_t  *gm;

    gm = lua_touserdata(L, lua_upvalueindex(3));
    gm->ms.L = L;

    for (src = gm->src; src <= gm->ms.src_end; src++) {
        e = ngx_http_consent_match_at(&gm->ms, src, gm->p);

        if (e != NULL && e != gm->lastmatch) {
            gm->src = gm->lastmatch = e;
            return ngx_http_consent_match_push(&gm->ms, src, e);
        }
    }

    return 0;
}


static int
ngx_http_consent_lua_gmatch(lua_State *L)
{
    size_t                      ls, lp, init;
    const u_char               *s, *p;
    ngx_http_consent_gmatch_t  *gm;

    s = (const u_char *) luaL_checklstring(L, 1, &ls);
    p = (const u_char *) luaL_checklstring(L, 2, &lp);
    init = ngx_http_consent_match_start(luaL_optinteger(L, 3, 1), ls) - 1;

    if (init > ls) {
        init = ls + 1;                      /* no match at all */
    }

    lua_settop(L, 2);
    gm = lua_newuserdatauv(L, sizeof(ngx_http_consent_gmatch_t), 0);

    ngx_http_consent_match_init(&gm->ms, L, s, ls, p, lp);
    gm->src = s + init;
    gm->p = p;
    gm->lastmatch = NULL;

    lua_pushcclosure(L, ngx_http_consent_lua_gmatch_aux, 3);

    return 1;
}


/* gsub's replacement string: %0-%9 and %% */

static void
ngx_http_consent_match_add_s(ngx_http_consent_match_t *ms, luaL_Buffer *b,
    const u_char *s, const u_char *e)
{
    size_t         l;
    lua_State     *L = ms->L;
    const u_char  *news, *p, *end;

    news = (const u_char *) lua_tolstring(L, 3, &l);
    end = news + l;

    while ((p = memchr(news, '%', end - news)) != NULL) {
        luaL_addlstring(b, (const char *) news, p - news);
        p++;

        if (p < end && *p == '%') {
            luaL_addchar(b, '%');

        } else if (p < end && isdigit(*p)) {
            if (*p == '0') {
                luaL_addlstring(b, (const char *) s, e - s);

            } else {
                ngx_http_consent_match_push_one(ms, *p - '1', s, e);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            }

        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }

        news = p + 1;
        ngx_http_consent_match_step(ms);
    }

    luaL_addlstring(b, (const char *) news, end - news);
}


/* adds the replacement of [s, e); returns whether it changed anything */

static int
ngx_http_consent_match_add(ngx_http_consent_match_t *ms, luaL_Buffer *b,
    const u_char *s, const u_char *e, int tr)
{
    lua_State  *L = ms->L;

    switch (tr) {

    case LUA_TFUNCTION:
        lua_pushvalue(L, 3);
        lua_call(L, ngx_http_consent_match_push(ms, s, e), 1);
        break;

    case LUA_TTABLE:
        ngx_http_consent_match_push_one(ms, 0, s, e);
        lua_gettable(L, 3);
        break;

    default:
        ngx_http_consent_match_add_s(ms, b, s, e);
        return 1;
    }

    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, (const char *) s, e - s);
        return 0;
    }

    if (!lua_isstring(L, -1)) {
        return luaL_error(L, "invalid replacement value (a %s)",
                          luaL_typename(L, -1));
    }

    luaL_addvalue(b);
    return 1;
}


static int
ngx_http_consent_lua_gsub(lua_State *L)
{
    int                        tr, anchor, changed;
    size_t                     ls, lp;
    lua_Integer                n, max_s;
    luaL_Buffer                b;
    const u_char              *src, *p, *e, *lastmatch;
    ngx_http_consent_match_t   ms;

    src = (const u_char *) luaL_checklstring(L, 1, &ls);
    p = (const u_char *) luaL_checklstring(L, 2, &lp);
    tr = lua_type(L, 3);
    max_s = luaL_optinteger(L, 4, (lua_Integer) ls + 1);

    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING
                     || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                     "string/function/table");

    anchor = (lp > 0 && *p == '^');
    if (anchor) {
        p++;
        lp--;
    }

    luaL_buffinit(L, &b);
    ngx_http_consent_match_init(&ms, L, src, ls, p, lp);

    lastmatch = NULL;
    changed = 0;
    n = 0;

    while (n < max_s) {
        e = ngx_http_consent_match_at(&ms, src, p);

        if (e != NULL && e != lastmatch) {
            n++;
            changed = ngx_http_consent_match_add(&ms, &b, src, e, tr)
                      | changed;
            src = lastmatch = e;

        } else if (src < ms.src_end) {
            luaL_addchar(&b, (char) *src++);

        } else {
            break;
        }

        if (anchor) {
            break;
        }
    }

    if (!changed) {
        lua_pushvalue(L, 1);

    } else {
        luaL_addlstring(&b, (const char *) src, ms.src_end - src);
        luaL_pushresult(&b);
    }

    lua_pushinteger(L, n);

    return 2;
}


void
ngx_http_consent_lua_open_match(lua_State *L)
{
    static const luaL_Reg  fns[] = {
        { "find", ngx_http_consent_lua_find },
        { "match", ngx_http_consent_lua_match },
        { "gmatch", ngx_http_consent_lua_gmatch },
        { "gsub", ngx_http_consent_lua_gsub },
        { NULL, NULL }
    };

    luaL_setfuncs(L, fns, 0);
}
