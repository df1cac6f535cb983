# Hostile Lua hooks (issue 12): none of them may crash, hang or escape
# the worker.  A body or event larger than the Lua memory cap; loops
# that catch the instruction limit, remove it or hide in C (patterns,
# string.rep, table functions) or in __gc; the sandbox (no io, no
# os.execute/exit, no C modules, no bytecode, no debug); preference
# keys that are not UTF-8; 50,000 keys.  The budgeted pattern matcher
# gives the results of Lua's own (t/lua/match_cases.lua).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use Time::HiRes qw(time);
use ConsentTest;

my $root = ConsentTest::root();
my $dir = tempdir('consent-hostile-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $slow = $ENV{CONSENT_TEST_VALGRIND} || $ENV{CONSENT_TEST_ASAN};

sub hook_file { ConsentTest::write_file($dir, @_) }

# each probe runs for the event of its name; a probe that returns lets
# the hook return its table, or { C0002 = true }
my $hostile = hook_file('hostile.lua', <<"LUA");
local MARK = "$dir/mark"
local probes = {
  -- instruction limit
  pcall_loop = function() while true do pcall(function() while true do end end) end end,
  xpcall_loop = function()
    while true do
      xpcall(function() while true do end end, function() while true do end end)
    end
  end,
  close_loop = function()
    local x <close> = setmetatable({}, { __close = function() while true do end end })
    while true do end
  end,
  sethook = function() debug.sethook() while true do end end,
  gc = function()
    setmetatable({}, { __gc = function() while true do end end })
    collectgarbage()
  end,
  gc_later = function()
    local mt = { __gc = true }
    local t = setmetatable({}, mt)
    mt.__gc = function() while true do end end
  end,
  pattern = function() return string.find(("a"):rep(30), ("a*"):rep(30) .. "b") end,
  gsub = function() return (("a"):rep(40)):gsub(("a-"):rep(20) .. "b", "") end,
  gmatch = function() for _ in (("a"):rep(40)):gmatch(("a?"):rep(40) .. "b") do end end,
  move = function() table.move({}, 1, 1e15, 2) end,
  insert_len = function()
    table.insert(setmetatable({ year = 2020, month = 1, day = 1 },
                              { __len = os.time }), 1, "x")
  end,
  -- sandbox
  io_popen = function() io.popen("touch " .. MARK .. "-popen"):close() end,
  os_execute = function() os.execute("touch " .. MARK .. "-execute") end,
  os_exit = function() os.exit(2) end,
  os_getenv = function() return { C0002 = os.getenv("PATH") ~= nil } end,
  os_remove = function() os.remove(MARK .. "-none") end,
  os_rename = function() os.rename(MARK .. "-a", MARK .. "-b") end,
  os_tmpname = function() os.tmpname() end,
  loadlib = function() package.loadlib("libc.so.6", "*") end,
  require_c = function() require "cjson.safe" end,
  loadfile = function() assert(loadfile("$dir/hostile.lua")) end,
  dofile = function() dofile("$dir/none.lua") end,
  bytecode = function() assert(load(string.dump(function() return 1 end)))() end,
  gc_stop = function() collectgarbage("stop") end,
  gc_step = function() collectgarbage("step", 1) end,
  print = function() print("hi") end,
  coroutine = function() coroutine.wrap(function() end)() end,
  -- allowed
  ok_os = function() assert(os.time() > 0 and os.date("!%Y") and os.clock() >= 0) end,
  ok_string = function()
    assert(("x"):rep(3) == "xxx" and string.rep("", 1e15) == "")
    assert(("a,b"):gsub(",", ";") == "a;b" and utf8.char(228) == "\\u{e4}")
    assert(string.find("abc", "b", 1, true) == 2 and ("k=v"):match("(%w)=") == "k")
    assert(string.format("%5.1f", 1) == "  1.0" and math.max(1, 2) == 2)
    assert(table.concat({ "a", "b" }, ",") == "a,b")
    assert(select("#", table.unpack({ 1, 2 })) == 2)
  end,
  ok_require = function()
    assert(require("consent.util") and require("cjson").decode("[1]")[1] == 1)
  end,
  ok_load = function()
    assert(load("return 1 + 1")() == 2)
    assert(load("return x", "chunk", "t", { x = 3 })() == 3)
  end,
  ok_gc = function() assert(collectgarbage("count") > 0) collectgarbage() end,
  ok_meta = function()
    assert(setmetatable({}, { __index = function() return 1 end }).x == 1)
  end,
  -- results
  bad_utf8 = function() return { ["\\xff\\xfe"] = true, C0002 = true } end,
  bad_utf8_2 = function() return { ["ok\\xc0\\x80"] = false, C0002 = true } end,
  escapes = function()
    return { ['q"b\\\\s\\n\\1'] = true, C0002 = true, ["\\u{e9}t\\u{e9}"] = false }
  end,
  many_keys = function()
    local t = {}
    for i = 1, 50000 do t["k" .. i] = (i % 2 == 0) end
    t.C0002 = true
    return t
  end,
}
return { event = function(ev, req)
  local p = probes[ev.event]
  if p == nil then return nil, "no probe " .. tostring(ev.event) end
  local r = p()
  return type(r) == "table" and r or { C0002 = true }
end }
LUA

my $match = hook_file('match.lua', <<'LUA');
local cases = require "match_cases"
return { event = function(ev, req) return nil, cases(math.tointeger(ev.properties.part)) end }
LUA

# reads the event in the ways a hook can
my $big = hook_file('big.lua', <<'LUA');
return { event = function(ev, req)
  if ev.event == "Json" then return { C0002 = #ev:json() > 0 } end
  if ev.event == "Raw" then return { C0002 = #ev.raw > 0 } end
  return { C0002 = ev.properties == nil or ev.properties.n ~= nil }
end }
LUA

my $t = ConsentTest->new(
    dests => { map { $_ => {} } qw(amplitude webhook) },
    http  => <<"NGX",
    client_max_body_size 8m;
    consent_lua_path "$root/lua/?.lua;$root/t/lua/?.lua;;";
    consent_category C0002 "Performance";
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination webhook   /_dest/webhook;
NGX
    locations => <<"NGX",
        location /h/v1/     { consent_ingest; consent_lua_hook $hostile; }
        location /match/v1/ { consent_ingest; consent_lua_hook $match; }
NGX
);
# a hook that hangs the worker must fail the test, not hang it
$t->{ua} = HTTP::Tiny->new(timeout => $slow ? 60 : 10, keep_alive => 0);

sub probe {
    my ($name) = @_;
    $t->clear;
    my $t0 = time;
    my $res = $t->post('/h/v1/track', qq({"userId":"u","event":"$name"}));
    return ($res, time - $t0);
}

sub fails_closed {
    my ($name, $log) = @_;
    my ($res) = probe($name);
    is($res->{status}, 200, "$name: accepted") or diag $res->{content};
    is_deeply([$t->routed($name)], ['webhook'],
              "$name: fails closed (gated destination blocked)");
    like($t->error_log, qr/fails closed.*\Q$log\E/, "$name: error logged")
        if defined $log;
}

# --- the instruction limit cannot be caught, removed or outrun -------------

fails_closed('pcall_loop', 'instruction limit exceeded');
fails_closed('xpcall_loop');
fails_closed('close_loop');
fails_closed('sethook', 'debug is not available to consent hooks');
fails_closed('gc', '__gc metamethods are not available');
fails_closed('gc_later', '__gc metamethods are not available');
fails_closed('pattern');
fails_closed('gsub');
fails_closed('gmatch');
fails_closed('move');
fails_closed('insert_len');

# --- the sandbox ------------------------------------------------------------

for my $case (['io_popen', 'io is not available'],
              ['os_execute', 'os.execute is not available'],
              ['os_exit', 'os.exit is not available'],
              ['os_getenv', 'os.getenv is not available'],
              ['os_remove', 'os.remove is not available'],
              ['os_rename', 'os.rename is not available'],
              ['os_tmpname', 'os.tmpname is not available'],
              ['loadlib', 'package is not available'],
              ['require_c', "module 'cjson.safe' not found"],
              ['loadfile', 'loadfile is not available'],
              ['dofile', 'dofile is not available'],
              ['bytecode', 'string.dump is not available'],
              ['gc_stop', 'collectgarbage("stop") is not available'],
              ['gc_step', 'collectgarbage("step") is not available'],
              ['print', 'print is not available'],
              ['coroutine', 'coroutine is not available'])
{
    fails_closed(@$case);
}
ok(!-e "$dir/mark-popen" && !-e "$dir/mark-execute",
   'io.popen and os.execute ran nothing');

for my $name (qw(ok_os ok_string ok_require ok_load ok_gc ok_meta)) {
    probe($name);
    is_deeply([$t->routed($name)], [qw(amplitude webhook)],
              "$name: allowed in the sandbox");
}

# --- forwarded preferences are valid UTF-8 JSON ----------------------------

for my $name (qw(bad_utf8 bad_utf8_2)) {
    fails_closed($name, 'not valid UTF-8');
    my ($raw) = $t->received_raw_events('webhook');
    ok(utf8::decode(my $copy = $raw // ''), "$name: webhook body is UTF-8");
    is($raw, qq({"type":"track","userId":"u","event":"$name"}),
       "$name: event forwarded unchanged");
}

{
    probe('escapes');
    my ($ev) = $t->received_events('amplitude');
    is_deeply($ev->{context}{consent}{categoryPreferences},
              { "q\"b\\s\n\x01" => JSON::PP::true, C0002 => JSON::PP::true,
                "\x{e9}t\x{e9}" => JSON::PP::false },
              'escapes: quotes, backslashes, controls and UTF-8 keys '
              . 'arrive as the hook wrote them');
}

{
    # the sinks decode what they get in pure Perl: time the gateway
    # alone, on an event that "integrations" keeps from everyone
    $t->clear;
    my $t0 = time;
    my $res = $t->post('/h/v1/track', '{"userId":"u","event":"many_keys",'
                                      . '"integrations":{"All":false}}');
    my $secs = time - $t0;
    is($res->{status}, 200, 'many_keys: accepted');
    $t->nothing_received('many_keys: integrations off: nothing forwarded');
    my $max = $slow ? 30 : 2;
    ok($secs < $max, sprintf('many_keys: 50,000 keys in %.2f s (< %d s)',
                             $secs, $max));
}

# --- the pattern matcher is Lua's --------------------------------------------

for my $part (0 .. 4) {
    my $want = `cd $root && lua5.4 -e 'package.path = "./t/lua/?.lua;" .. package.path; io.write(require("match_cases")($part))'`;
    ok(length $want > 1000, "pattern cases $part: lua5.4 ran them");
    my $res = $t->post('/match/v1/track',
                       qq({"userId":"u","event":"M","properties":{"part":$part}}));
    my $got = $res->{json}{message} // '';
    utf8::encode($got);                     # $want is bytes
    # the file's path in error positions differs
    s/error:\S*match_cases\.lua:\d+: /error:/g for $want, $got;
    my @w = split /\n/, $want;
    my @g = split /\n/, $got;
    my @diff = grep { ($w[$_] // '') ne ($g[$_] // '') } 0 .. $#w;
    is(scalar @g, scalar @w, "pattern cases $part: as many results as lua5.4");
    ok(!@diff, "pattern cases $part: the same results as lua5.4")
        or diag join "\n", map { "want $w[$_]\n got  " . ($g[$_] // '') }
                           @diff[0 .. ($#diff < 9 ? $#diff : 9)];
}

# the workers are all still there, and a reload lets the old ones go
unlike($t->error_log, qr/exited on signal|exited with code [1-9]/,
       'no worker crashed or exited');
ok($t->reload, 'reload: old workers exit');
probe('ok_os');
is_deeply([$t->routed('ok_os')], [qw(amplitude webhook)],
          'after reload: serving');

$t->stop;

# --- bodies and events larger than the Lua memory cap (384k) --------------

$t = ConsentTest->new(
    dests => { map { $_ => {} } qw(amplitude webhook) },
    http  => <<"NGX",
    client_max_body_size 8m;
    consent_lua_max_memory 384k;
    consent_category C0002 "Performance";
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination webhook   /_dest/webhook;
NGX
    locations => <<"NGX",
        location /big/v1/ { consent_ingest; consent_lua_hook $big;
                            consent_max_body_size 1m;
                            consent_max_event_size 1m; }
NGX
);
$t->{ua} = HTTP::Tiny->new(timeout => $slow ? 60 : 10, keep_alive => 0);

{
    # 500 events of 1 KB: the body was copied into Lua whole (SIGABRT)
    my $pad = 'x' x 1000;
    my $body = '{"batch":['
             . join(',', map { qq({"type":"track","userId":"u$_","event":"B",)
                               . qq("properties":{"n":$_,"pad":"$pad"}}) }
                         1 .. 500)
             . ']}';
    $t->clear;
    my $res = $t->post('/big/v1/batch', $body);
    is($res->{status}, 200, 'big body (500 KB, cap 384 KB): accepted')
        or diag substr($res->{content} // '', 0, 300);
    my ($got) = $t->received('amplitude');
    my $n = () = ($got->{body} // '') =~ /"event":"B"/g;
    is($n, 500, 'big body: every event routed by the hook');

    # one event of 400 KB: ev:json(), ev.raw and ev.properties cannot
    # fit, the event fails closed
    for my $name (qw(Json Raw Props)) {
        $t->clear;
        my $e = qq({"userId":"u","event":"$name","properties":{"pad":")
              . ('y' x 400_000) . '"}}';
        $res = $t->post('/big/v1/track', $e);
        is($res->{status}, 200, "big event ($name): accepted");
        # (not decoded: JSON::PP is slow)
        is($t->count('amplitude') . ' ' . $t->count('webhook'), '0 1',
           "big event ($name): fails closed");
    }
    like($t->error_log, qr/not enough memory/,
         'big event: memory error logged');
}

unlike($t->error_log, qr/exited on signal|exited with code [1-9]/,
     'big: no worker crashed');
$t->stop;

# --- C work the count cannot see: next() over an emptied array part -------

# each next(t) scans 100,000 empty slots from the start (~100 us): with
# 200,000 instructions a call used to take seconds; the wall clock stops
# it after 200,000 x 5 us = 1 s
my $next = hook_file('next.lua', <<'LUA');
local t = table.pack(string.byte(("x"):rep(100000), 1, -1))
table.move({}, 1, 99999, 1, t)
return { event = function(ev, req)
  local n = next
  for i = 1, 1e9 do n(t) end
end }
LUA

$t = ConsentTest->new(
    dests => { map { $_ => {} } qw(amplitude webhook) },
    http  => <<"NGX",
    consent_lua_max_instructions 200000;
    consent_category C0002 "Performance";
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination webhook   /_dest/webhook;
    consent_lua_hook $next;
NGX
);
$t->{ua} = HTTP::Tiny->new(timeout => $slow ? 60 : 10, keep_alive => 0);

{
    my $t0 = time;
    my $res = $t->post('/v1/track', '{"userId":"u","event":"Next"}');
    my $secs = time - $t0;
    is($res->{status}, 200, 'next: accepted');
    is_deeply([$t->routed('Next')], ['webhook'], 'next: fails closed');
    # valgrind: scans are slower between two checks of the clock
    my $max = $slow ? 20 : 2;
    ok($secs < $max, sprintf('next: stopped after %.2f s (< %d s)', $secs,
                             $max));
}
$t->stop;

# --- nginx -t ------------------------------------------------------------------

sub nginx_t_bounded {
    my ($hook, $more) = @_;
    my @r;
    local $SIG{ALRM} = sub { die "nginx -t did not return\n" };
    alarm($slow ? 120 : 20);
    @r = eval { ConsentTest::nginx_t(($more // '')
                                     . "    consent_lua_hook $hook;\n") };
    alarm 0;
    return @r ? @r : (-1, $@);
}

for my $case (['exit0.lua', "os.exit(0)\nreturn {}\n",
               'os.exit is not available'],
              ['popen.lua', "io.popen('true')\nreturn {}\n",
               'io is not available'],
              ['catch.lua', "while true do pcall(function() "
                            . "while true do end end) end\n",
               'instruction limit exceeded'],
              ['gcload.lua', "setmetatable({}, { __gc = function() "
                             . "while true do end end })\nreturn {}\n",
               '__gc metamethods are not available'])
{
    my ($name, $text, $msg) = @$case;
    my ($rc, $out) = nginx_t_bounded(hook_file($name, $text));
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, qr/\[emerg\].*\Q$name\E.*\Q$msg\E/s, "$name: says why")
        or diag $out;
}

# the sandbox's own setup is not held to a small limit
my ($rc, $out) = nginx_t_bounded(hook_file('tiny.lua', "return {}\n"),
                                 "    consent_lua_max_instructions 20;\n");
is($rc, 0, 'consent_lua_max_instructions 20: nginx -t passes') or diag $out;

done_testing;
