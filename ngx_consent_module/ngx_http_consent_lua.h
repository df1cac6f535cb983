
/*
 * ngx_consent: what the Lua glue files share (not part of the module's
 * interface, ngx_http_consent.h).
 */

#ifndef _NGX_HTTP_CONSENT_LUA_H_INCLUDED_
#define _NGX_HTTP_CONSENT_LUA_H_INCLUDED_


/* nginx's headers first: ngx_config.h defines _GNU_SOURCE, which
   nginx >= 1.25's QUIC structures (struct in6_pktinfo) need */
#include "ngx_http_consent.h"

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>


/* one call of a hook's event(): what it is given and what it decided */
typedef struct {
    ngx_http_request_t        *r;
    consent_result_t          *res;
    uint32_t                   i;
    uint64_t                  *consented;
    int                        ref;         /* event() in the registry */
    consent_hook_e             verdict;
    const char                *err;         /* a wrong return value */
} ngx_http_consent_lua_call_t;


/* a worker's state, sandboxed (ngx_http_consent_lua_sandbox.c) */
lua_State *ngx_http_consent_lua_state(ngx_http_consent_main_conf_t *cmcf,
    ngx_log_t *log);
void ngx_http_consent_lua_close(lua_State *L);

/* a fresh instruction budget for one call into Lua */
void ngx_http_consent_lua_arm(lua_State *L);

/* work done in C for a hook: n instructions' worth; raises past it */
void ngx_http_consent_lua_charge(lua_State *L, size_t n);

/* string.find/match/gmatch/gsub on the budget, into the table at -1 */
void ngx_http_consent_lua_open_match(lua_State *L);

/* ev and req (ngx_http_consent_lua_ev.c); open_ev runs protected */
void ngx_http_consent_lua_open_ev(lua_State *L);
void ngx_http_consent_lua_push_ev(lua_State *L,
    ngx_http_consent_lua_call_t *call);
void ngx_http_consent_lua_push_req(lua_State *L, ngx_http_request_t *r);
void ngx_http_consent_lua_leave(lua_State *L, ngx_uint_t done);


#endif /* _NGX_HTTP_CONSENT_LUA_H_INCLUDED_ */
