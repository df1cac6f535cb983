# Lua hooks through real nginx: preferences a hook returns are enforced and
# written into the forwarded event; rejections, runtime errors, runaway
# loops and memory bombs; nginx -t on broken hook files.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use ConsentTest;

my $dir = tempdir('consent-lua-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub hook_file { ConsentTest::write_file($dir, @_) }

my $set = hook_file('set.lua', <<'EOF');
-- fixed preferences for every event
return { event = function(ev, req) return { C0002 = true, C0004 = false } end }
EOF

my $fields = hook_file('fields.lua', <<'EOF');
local cjson = require "cjson"
return {
  event = function(ev, req)
    if ev.event == "Bad" then return nil, "bad event from " .. ev.userId end
    local raw = cjson.decode(ev:json())
    if raw.properties and raw.properties.drop then
      return nil, "dropped by properties"
    end
    if ev.event == "Keep" then return nil end
    local prefs = {}
    -- a CMP cookie and a header, with the event's own preferences as base
    for k, v in pairs(ev.consent or {}) do prefs[k] = v end
    prefs.C0002 = req.cookies["allow"] == "1"
    prefs.C0004 = req.headers["x-ads"] == "yes"
    if ev.properties and ev.properties.level then
      prefs["level-" .. ev.properties.level] = true
    end
    prefs["type-" .. ev.type] = true
    prefs["uri-ok"] = req.uri == "/fields/v1/batch" or req.uri == "/fields/v1/track"
    prefs["gpc-count-" .. #req.headers_all["sec-gpc"]] = true
    return prefs
  end
}
EOF

my $err = hook_file('error.lua', <<'EOF');
return { event = function(ev, req) error("boom from the hook") end }
EOF

my $loop = hook_file('loop.lua', <<'EOF');
return { event = function(ev, req) while true do end end }
EOF

my $bomb = hook_file('bomb.lua', <<'EOF');
return { event = function(ev, req)
  local t = {}
  for i = 1, 1e9 do t[i] = string.rep("x", 1048576) .. i end
end }
EOF

my $badret = hook_file('badret.lua', <<'EOF');
return { event = function(ev, req) return { C0002 = "yes" } end }
EOF

# a reason that is not UTF-8 must still give the client valid JSON
my $badreason = hook_file('badreason.lua', <<'EOF');
return { event = function(ev, req) return nil, "no \255\254 way" end }
EOF

my $t = ConsentTest->new(
    dests => { map { $_ => {} } qw(amplitude facebook warehouse webhook) },
    http  => <<"EOF",
    consent_category C0002 "Performance";
    consent_category C0004 "Targeting";
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination facebook  /_dest/facebook  C0004;
    consent_destination warehouse /_dest/warehouse enforce=off;
    consent_destination webhook   /_dest/webhook;
    consent_lua_hook $set;
EOF
    locations => <<"EOF",
        location /fields/v1/ { consent_ingest; consent_lua_hook $fields; }
        location /err/v1/    { consent_ingest; consent_lua_hook $err; }
        location /loop/v1/   { consent_ingest; consent_lua_hook $loop; }
        location /bomb/v1/   { consent_ingest; consent_lua_hook $bomb; }
        location /badret/v1/ { consent_ingest; consent_lua_hook $badret; }
        location /badreason/v1/ {
            consent_ingest;
            consent_lua_hook $badreason;
        }
        location /nohook/v1/ { consent_ingest; consent_lua_hook off; }
EOF
);

my @ALL = qw(amplitude facebook warehouse webhook);
my $PREFS = { C0002 => JSON::PP::true, C0004 => JSON::PP::false };

sub send_ok {
    my ($desc, $path, $body, $headers) = @_;
    $t->clear;
    my $res = $t->post($path, $body, $headers);
    ConsentTest::accepted_ok($res, $desc);
    return $res;
}

sub prefs_of {
    my ($ev) = @_;
    return $ev->{context}{consent}{categoryPreferences};
}

# --- preferences returned by the hook are enforced and written ----------

my @shapes = (
    ['no context',           '{"userId":"u1","event":"A"}'],
    ['context without consent',
     '{"userId":"u1","event":"A","context":{"ip":"1.2.3.4"}}'],
    ['empty context',        '{"userId":"u1","event":"A","context":{}}'],
    ['consent without preferences',
     '{"userId":"u1","event":"A","context":{"consent":{"version":3}}}'],
    ['empty consent',        '{"userId":"u1","event":"A","context":{"consent":{}}}'],
    ['preferences replaced',
     '{"userId":"u1","event":"A","context":{"consent":{"categoryPreferences":'
     . '{"C0002":false,"C0004":true}},"ip":"1.2.3.4"}}'],
    ['consent not an object',
     '{"userId":"u1","event":"A","context":{"consent":"yes"}}'],
    ['context not an object', '{"userId":"u1","event":"A","context":7}'],
);

for my $s (@shapes) {
    my ($desc, $event) = @$s;
    send_ok("set: $desc", '/v1/track', $event);
    is_deeply([$t->routed('A')], [qw(amplitude warehouse webhook)],
              "set: $desc: consented to C0002 only")
        or diag $event;
    my ($got) = $t->received_events('amplitude');
    is_deeply(prefs_of($got), $PREFS,
              "set: $desc: forwarded categoryPreferences are the hook's");
    is($got->{type}, 'track', "set: $desc: type inserted");
    is($got->{userId}, 'u1', "set: $desc: other members kept");
    my $orig = ConsentTest::json_decode($event);
    is($got->{context}{ip}, $orig->{context}{ip}, "set: $desc: context kept")
        if ref $orig->{context} eq 'HASH' && $orig->{context}{ip};
    is($got->{context}{consent}{version}, 3, "set: $desc: version kept")
        if $desc eq 'consent without preferences';
    my ($raw) = $t->received_raw_events('amplitude');
    like($raw, qr/"categoryPreferences":\{"C0002":true,"C0004":false\}/,
         "set: $desc: preferences written as sorted JSON");
}

{
    # inside a batch, events keep their order and bytes around the splice
    my $b = '{"batch":[{"type":"track","userId":"a","event":"B1"},'
          . ' {"type":"page","anonymousId":"b","name":"P",'
          . '"context":{"consent":{"categoryPreferences":{"C0004":true}}}}],'
          . '"writeKey":"wk"}';
    send_ok('set: batch', '/v1/batch', $b);
    my @ev = $t->received_events('amplitude');
    is(scalar @ev, 2, 'set: batch: both events at amplitude');
    is_deeply([map { prefs_of($_) } @ev], [$PREFS, $PREFS],
              'set: batch: both rewritten');
    is($t->count('facebook'), 0, 'set: batch: facebook gets nothing');
    my ($r) = $t->received('amplitude');
    like($r->{body}, qr/\],"writeKey":"wk"\}$/, 'set: batch: envelope kept');
}

# --- the hook sees ev and req -------------------------------------------

{
    send_ok('fields: cookie and header', '/fields/v1/track',
            '{"userId":"u2","event":"F1","properties":{"level":"gold"},'
            . '"context":{"consent":{"categoryPreferences":{"X9":true}}}}',
            { Cookie => 'a=b; allow=1; c=d', 'X-Ads' => 'no',
              'Sec-GPC' => '1' });
    my ($got) = $t->received_events('amplitude');
    is_deeply(prefs_of($got),
              { C0002 => JSON::PP::true, C0004 => JSON::PP::false,
                X9 => JSON::PP::true, 'level-gold' => JSON::PP::true,
                'type-track' => JSON::PP::true, 'uri-ok' => JSON::PP::true,
                'gpc-count-1' => JSON::PP::true },
              'fields: ev.consent, ev.properties, ev.type, cookies, headers, '
              . 'uri, headers_all');
    is($t->count('facebook'), 0, 'fields: facebook filtered (x-ads: no)');

    send_ok('fields: other cookie', '/fields/v1/track',
            '{"userId":"u3","event":"F2"}',
            { Cookie => 'allow=0', 'X-Ads' => 'yes' });
    is_deeply([$t->routed('F2')], [qw(facebook warehouse webhook)],
              'fields: C0004 only');

    send_ok('fields: nil keeps the event as is', '/fields/v1/track',
            '{"userId":"u4","event":"Keep"}');
    is_deeply([$t->routed('Keep')], \@ALL, 'fields: nil: no consent, '
              . 'delivered everywhere');
    my ($raw) = $t->received_raw_events('amplitude');
    is($raw, '{"type":"track","userId":"u4","event":"Keep"}',
       'fields: nil: event forwarded unchanged');
}

{
    $t->clear;
    my $res = $t->post('/fields/v1/track', '{"userId":"u5","event":"Bad"}');
    ConsentTest::reply_is($res, 400, 'lua_rejected', 'bad event from u5',
                          'fields: single event rejected by the hook');
    $t->nothing_received('fields: rejected: nothing forwarded');

    $res = $t->refused_ok('a reason that is not UTF-8', '/badreason/v1/track',
                          '{"userId":"u5","event":"X"}', 400, 'lua_rejected',
                          "no \x{ff}\x{fe} way");
    like($res->{content}, qr/"no \xc3\xbf\xc3\xbe way"/,
         'a reason that is not UTF-8: its bytes as Latin-1 characters');

    $t->clear;
    $res = $t->post('/fields/v1/batch',
        '{"batch":[{"type":"track","userId":"a","event":"G1"},'
        . '{"type":"track","userId":"b","event":"Bad"},'
        . '{"type":"track","userId":"c","event":"G3",'
        . '"properties":{"drop":true}},'
        . '{"type":"track","userId":"d","event":"G4"}]}',
        { Cookie => 'allow=1' });
    is($res->{status}, 200, 'fields: batch with rejections: 200');
    is_deeply($res->{json}{rejected},
              [{ index => 1, code => 'lua_rejected', message => 'bad event from b' },
               { index => 2, code => 'lua_rejected',
                 message => 'dropped by properties' }],
              'fields: batch: rejected indexes with the hook\'s reasons');
    is_deeply([map { $_->{event} } $t->received_events('amplitude')],
              [qw(G1 G4)], 'fields: batch: the others forwarded in order');
}

{
    # an event the hook keeps, then one it rewrites: no shared slice
    send_ok('fields: kept then rewritten', '/fields/v1/batch',
            '{"batch":[{"type":"track","userId":"k","event":"Keep"},'
            . '{"type":"track","userId":"r","event":"R1"}]}',
            { Cookie => 'allow=1' });
    my @ev = $t->received_events('amplitude');
    is_deeply([map { $_->{event} } @ev], [qw(Keep R1)],
              'fields: kept then rewritten: both at amplitude');
    ok(!exists $ev[0]{context}, 'fields: kept event unchanged');
    is(prefs_of($ev[1])->{C0002}, JSON::PP::true,
       'fields: following event carries the hook\'s preferences');
}

# --- failures fail closed -----------------------------------------------

for my $case (['err', 'boom from the hook'],
              ['loop', 'instruction limit exceeded'],
              ['bomb', 'not enough memory'],
              ['badret', 'not a boolean'])
{
    my ($name, $log) = @$case;
    for my $i (1 .. 3) {
        send_ok("$name: request $i", "/$name/v1/track",
                qq({"userId":"u$i","event":"$name$i"}));
        is_deeply([$t->routed("$name$i")], [qw(warehouse webhook)],
                  "$name: request $i: gated destinations blocked, "
                  . 'unmapped and enforce=off served');
        my ($raw) = $t->received_raw_events('webhook');
        is($raw, qq({"type":"track","userId":"u$i","event":"$name$i"}),
           "$name: request $i: event forwarded unchanged");
    }
    my @lines = grep { /\Q$log\E/ } split /\n/, $t->error_log;
    ok(@lines >= 1, "$name: error logged");
    # two workers: at most one line per worker and cause
    ok(@lines <= 2, "$name: logged once per cause and worker (@{[ scalar @lines ]})");
    like($lines[0] // '', qr/\[error\].*fails closed/, "$name: at error level");
}

like($t->error_log, qr/stack traceback:.*error\.lua/s,
     'err: traceback names the hook file');

# the workers keep serving after loops and bombs
send_ok('after failures: hook location', '/v1/track',
        '{"userId":"u9","event":"After"}');
is_deeply([$t->routed('After')], [qw(amplitude warehouse webhook)],
          'after failures: routing as before');

send_ok('hook off', '/nohook/v1/track', '{"userId":"u9","event":"NoHook"}');
is_deeply([$t->routed('NoHook')], \@ALL, 'consent_lua_hook off: no hook');

$t->stop;

# --- nginx -t ---------------------------------------------------------------

my $syntax = hook_file('syntax.lua', "return { event = function(ev) return { end }\n");
my ($rc, $out, $conf) = ConsentTest::nginx_t("    consent_lua_hook $syntax;\n");
isnt($rc, 0, 'syntax error: nginx -t fails');
like($out, qr/\[emerg\].*syntax\.lua:1:.*(unexpected|expected)/,
     'syntax error: Lua message with the hook line');
my $line = ConsentTest::line_of($conf, qr/consent_lua_hook/);
like($out, qr/\Q$conf\E:$line\b/, 'syntax error: names the directive line');

my $notable = hook_file('notable.lua', "return 42\n");
($rc, $out) = ConsentTest::nginx_t("    consent_lua_hook $notable;\n");
isnt($rc, 0, 'hook returning a number: nginx -t fails');
like($out, qr/must return a table/, 'hook returning a number: says so');

($rc, $out) = ConsentTest::nginx_t("    consent_lua_hook $dir/missing.lua;\n");
isnt($rc, 0, 'missing hook file: nginx -t fails');
like($out, qr/cannot open/, 'missing hook file: says so');

my $toplevel = hook_file('toplevel.lua', "while true do end\n");
($rc, $out) = ConsentTest::nginx_t("    consent_lua_hook $toplevel;\n");
isnt($rc, 0, 'looping hook file: nginx -t fails instead of hanging');
like($out, qr/instruction limit/, 'looping hook file: says so');

($rc, $out) = ConsentTest::nginx_t("    consent_lua_hook $set;\n");
is($rc, 0, 'valid hook: nginx -t passes') or diag $out;

done_testing;
