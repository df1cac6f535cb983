# Consent profiles in Redis (issue 13, docs/profiles.md): a real
# redis-server on a loopback port (t/lib/ConsentRedis.pm), the gateway
# records each consent-carrying event's preferences for its userId and
# anonymousId (latest decision wins, identify/alias link the two) and
# routes events carrying no consent with the stored preferences, else by
# consent_default.  Store failures fail closed for gated destinations;
# the store reconnects without a reload.  Metrics, variables, the
# profile API, nginx -t.
#
# Destinations (ConsentTest::default_consent): amplitude needs C0002,
# facebook C0004 (C0005 is turned off), warehouse has enforce=off,
# webhook is unmapped.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(strftime floor);
use Time::HiRes qw(time sleep);
use ConsentTest;
use ConsentRedis;

plan skip_all => 'redis-server not installed (sh scripts/deps.sh)'
    unless ConsentRedis::available();

my $MEM = $ConsentTest::MEMCHECK;
# the store's timeout: the default (100ms) except under ASan/valgrind,
# where a slowed nginx would miss it against a healthy store
my $TO_MS = $MEM ? 3000 : 100;
my $TO = $MEM ? ' timeout=3s' : '';
# what "answers within timeout (+ delivery)" may take on top
my $SLACK = $MEM ? 15 : 1.5;

my $dir = tempdir('consent-prof-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my $r = ConsentRedis->new(unix => 1);
my $REDIS = $r->addr;
my $SOCK = $r->unix_path;

# a store that answers garbage, and a port nobody listens on
my ($GARBAGE) = ConsentRedis::fake(sub { "+OK\r\n:nope\r\n\$9\r\nxx\r\n" });
my $CLOSED = ConsentTest::reserve_port();

my $hook = ConsentTest::write_file($dir, 'hook.lua', <<'EOF');
-- preferences from a CMP signal: properties.cmp = "noads" | "all"
return { event = function(ev, req)
  local cmp = ev.properties and ev.properties.cmp
  if cmp == "noads" then return { C0002 = true, C0004 = false } end
  if cmp == "all" then return { C0002 = true, C0004 = true } end
  return nil
end }
EOF

my $HTTP = ConsentTest::default_consent() . <<"EOF";
    consent_profiles $REDIS$TO;
    log_format prof '\$request_uri \$status p=\$consent_profiled f=\$consent_profile_failed \$http_x_seq';
    access_log %%PREFIX%%/prof.log prof;
EOF

my $LOCATIONS = <<"EOF";
        location = /status { consent_status; }
        location /_profiles/ { consent_profile_api; }
        location /deny/v1/ { consent_ingest; consent_default deny; }
        location /nop/v1/ { consent_ingest; consent_profiles off; }
        location /nopdeny/v1/ {
            consent_ingest;
            consent_profiles off;
            consent_default deny;
        }
        location /hook/v1/ { consent_ingest; consent_lua_hook $hook; }
        location /unix/v1/ { consent_ingest; consent_profiles unix:$SOCK$TO; }
        location /unix/_profiles/ {
            consent_profile_api;
            consent_profiles unix:$SOCK$TO;
        }
        location /tenant/v1/ {
            consent_ingest;
            consent_profiles $REDIS prefix=tenant2: ttl=1h$TO;
        }
        location /tenant/_profiles/ {
            consent_profile_api;
            consent_profiles $REDIS prefix=tenant2:$TO;
        }
        location /garbage/v1/ {
            consent_ingest;
            consent_profiles 127.0.0.1:$GARBAGE timeout=${TO_MS}ms;
        }
        location /garbage/_profiles/ {
            consent_profile_api;
            consent_profiles 127.0.0.1:$GARBAGE timeout=${TO_MS}ms;
        }
        location /batched/v1/ {
            consent_ingest;
            consent_delivery batch flush=10ms;
        }
        location /closed/v1/ {
            consent_ingest;
            consent_profiles 127.0.0.1:$CLOSED timeout=${TO_MS}ms;
        }
EOF

my $t = ConsentTest->new(dests => ConsentTest::default_dests(),
                         http => $HTTP, locations => $LOCATIONS);

my @ALL = qw(amplitude facebook warehouse webhook);
my @NOADS = qw(amplitude warehouse webhook);
my @ADS = qw(facebook warehouse webhook);
my @UNGATED = qw(warehouse webhook);

my %GRANT = (C0002 => 1, C0004 => 1);
my %NOADS = (C0002 => 1, C0004 => 0);
my %ADS = (C0002 => 0, C0004 => 1);
my %NONE = (C0002 => 0, C0004 => 0);

my $DAY = 86400 * 1000;
my $TTL_DEFAULT = 395 * $DAY;


# ---------------------------------------------------------------------
# helpers

my $N = 0;

sub iso {
    my ($ms) = @_;
    return strftime('%Y-%m-%dT%H:%M:%S', gmtime(floor($ms / 1000)))
         . sprintf('.%03dZ', $ms % 1000);
}

sub now_ms { int(time * 1000) }

# booleans (JSON or Perl) as 0/1, for comparisons
sub norm {
    my ($h) = @_;
    return undef unless ref $h eq 'HASH';
    return { map { $_ => ($h->{$_} ? 1 : 0) } keys %$h };
}

# an event: fields as given plus messageId m-NAME, consent => {prefs}
# becomes context.consent.categoryPreferences; returns ($mid, $hash)
sub event {
    my (%f) = @_;
    my $name = 'p' . ++$N;
    my $mid = $f{messageId} //= "m-$name";
    $f{event} //= $name unless ($f{type} // 'track') ne 'track';
    if (my $p = delete $f{consent}) {
        $f{context} = ConsentTest::consent_ctx(%$p);
    }
    return ($mid, \%f);
}

# the reply of a 200: {"success":true} plus %extra (profiled, ...)
sub reply_ok {
    my ($res, $extra, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = is($res->{status}, 200, "$desc: status 200");
    $ok &&= is_deeply($res->{json}, { success => JSON::PP::true,
                                      %{ $extra // {} } },
                      "$desc: reply " . ConsentTest::json_encode(
                          { success => JSON::PP::true, %{ $extra // {} } }));
    diag("reply: $res->{content}") unless $ok;
    return $ok;
}

# Sends one event (%f, see event()) to PATH (/v1/track by default,
# /v1/TYPE for other types), asserts the reply (extra members), where it
# went and, when $prefs is given, the categoryPreferences of the copy
# the unmapped webhook got (undef: none).  Returns ($res, $mid, $event).
sub send_ok {
    my ($desc, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $gw = $o{t} // $t;
    my ($mid, $ev) = event(%{ $o{event} });
    my $path = $o{path} // '/v1/' . ($ev->{type} // 'track');
    $gw->clear;
    my $t0 = time;
    my $res = $gw->post($path, ConsentTest::json_encode($ev),
                        $o{headers});
    $res->{elapsed} = time - $t0;
    if (($o{reply} // '') eq 'any') {
        is($res->{status}, 200, "$desc: status 200")
            or diag("reply: $res->{content}");
    } else {
        reply_ok($res, $o{reply}, $desc);
    }
    is_deeply([$gw->routed($mid, 'messageId')], $o{to},
              "$desc: routed to @{ $o{to} }") if $o{to};
    if (exists $o{prefs}) {
        my ($got) = grep { ($_->{messageId} // '') eq $mid }
                    $gw->received_events('webhook');
        is_deeply(norm($got && $got->{context}{consent}
                       ? $got->{context}{consent}{categoryPreferences}
                       : undef),
                  $o{prefs}, "$desc: forwarded categoryPreferences");
    }
    return ($res, $mid, $ev);
}

# a consent-carrying event: records %prefs for the ids in %f
sub record_ok {
    my ($desc, $prefs, %f) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $path = delete $f{path};
    my $gw = delete $f{t};
    return send_ok($desc, event => { %f, consent => $prefs },
                   $path ? (path => $path) : (), $gw ? (t => $gw) : ());
}

# a consent-less track for %f, expected to be routed with %$prefs from
# the store (undef: a miss, consent_default allow)
sub enforced_ok {
    my ($desc, $prefs, $to, %f) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $path = delete $f{path};
    my $gw = delete $f{t};
    return send_ok($desc, event => \%f, to => $to,
                   reply => $prefs ? { profiled => 1 } : {},
                   $prefs ? (prefs => norm($prefs)) : (),
                   $path ? (path => $path) : (), $gw ? (t => $gw) : ());
}

# the stored decision of a key: { p => prefs (0/1), t, o, e, ttl } or
# undef
sub stored {
    my ($kind, $id, $prefix) = @_;
    my $key = ($prefix // 'consent:') . "{$kind:$id}";
    my $h = $r->hgetall($key);
    return undef unless %$h;
    my $v = eval { ConsentTest::json_decode($h->{v} // '') };
    return { raw => $h, v => $v, p => norm($v && $v->{p}), t => $h->{t},
             o => $h->{o}, e => $v && $v->{e},
             ttl => $r->cmd('PTTL', $key) };
}

sub stored_prefs {
    my $s = stored(@_);
    return $s ? $s->{p} : undef;
}

my @LOOKUPS = map { "ngx_consent_profile_lookups_total{result=\"$_\"}" }
              qw(hit miss error);
my @RECORDS = map { "ngx_consent_profile_records_total{result=\"$_\"}" }
              qw(stored older_ignored error);
my $RT = 'ngx_consent_profile_round_trips_total';

# the profile counters: { hit, miss, error, stored, older_ignored,
# rerror, rt, count (histogram) }
sub pm {
    my ($gw) = @_;
    my $m = ($gw // $t)->metrics;
    my %c;
    @c{qw(hit miss error)} = map { $m->{$_} // 0 } @LOOKUPS;
    @c{qw(stored older_ignored rerror)} = map { $m->{$_} // 0 } @RECORDS;
    $c{rt} = $m->{$RT} // 0;
    $c{count} = $m->{ngx_consent_profile_store_seconds_count} // 0;
    return \%c;
}

# asserts the counters moved by exactly %want since $before (the others
# named in %want only; rt/count: at least when given as [min])
sub moved_ok {
    my ($before, $desc, %want) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $now = pm();
    my (%got, %exp);
    for my $k (sort keys %want) {
        $got{$k} = $now->{$k} - $before->{$k};
        $exp{$k} = $want{$k};
    }
    is_deeply(\%got, \%exp, "$desc: counters moved "
              . join(', ', map { "$_ +$want{$_}" } sort keys %want))
        or diag(explain($before), explain($now));
    return $now;
}

sub prof_log_lines {
    open my $fh, '<', $t->prefix . '/prof.log' or return ();
    my @l = <$fh>;
    close $fh;
    chomp @l;
    return @l;
}

# the access log line of the request that sent X-Seq: $seq (bounded poll:
# nginx writes it after the reply)
sub prof_log_line {
    my ($seq) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        my ($l) = grep { / \Q$seq\E$/ } prof_log_lines();
        return $l if defined $l;
        sleep 0.02;
    }
    return '';
}


# ---------------------------------------------------------------------
# 1. the issue's story: a browser declines advertising for anonymousId
# A, identify links A to user U, a backend track for U carries no
# consent: facebook does not get it, amplitude does

{
    my $m0 = pm();
    my ($res, $mid) = send_ok('browser: page declining ads',
        event => { type => 'page', anonymousId => 'A1', name => 'Home',
                   consent => \%NOADS },
        to => \@NOADS);
    my $s = stored('a', 'A1');
    ok($s, 'browser: consent:{a:A1} stored');
    is_deeply($s->{p}, \%NOADS, 'browser: stored preferences');
    is($s->{e}, $mid, 'browser: stored messageId');
    like($s->{t}, qr/^\d+$/, 'browser: t is ms');
    ok(abs($s->{t} - now_ms()) < 60_000, 'browser: t is the arrival time');
    like($s->{o} // '', qr/^\d+$/, 'browser: o (arrival order) stored');
    is($s->{v}{t}, $s->{t}, 'browser: value t equals field t');
    ok($s->{ttl} > $TTL_DEFAULT - 600_000 && $s->{ttl} <= $TTL_DEFAULT,
       'browser: PEXPIRE 395d') or diag("PTTL $s->{ttl}");
    is(stored('u', ''), undef, 'browser: no key for an absent userId');
    moved_ok($m0, 'browser', stored => 1, hit => 0, miss => 0,
             older_ignored => 0, rerror => 0, error => 0);

    $m0 = pm();
    send_ok('identify U1 with A1, no consent: routed on A1',
        event => { type => 'identify', userId => 'U1', anonymousId => 'A1',
                   traits => { plan => 'pro' } },
        reply => { profiled => 1 }, to => \@NOADS, prefs => \%NOADS);
    moved_ok($m0, 'identify', hit => 1, miss => 0, error => 0);
    is_deeply(stored_prefs('u', 'U1'), \%NOADS,
              'identify: A1\'s decision linked to U1');
    is(stored('u', 'U1')->{t}, $s->{t}, 'identify: linked with its time');

    $m0 = pm();
    my ($r2, $bmid) = send_ok('backend track for U1, no consent',
        event => { userId => 'U1', properties => { total => 12 } },
        reply => { profiled => 1 }, to => \@NOADS, prefs => \%NOADS);
    my ($amp) = grep { $_->{messageId} eq $bmid }
                $t->received_events('amplitude');
    is_deeply(norm($amp && $amp->{context}{consent}{categoryPreferences}),
              \%NOADS, 'backend track: amplitude sees the enforced '
                       . 'preferences');
    is($amp && $amp->{properties}{total}, 12,
       'backend track: the event is otherwise intact');
    moved_ok($m0, 'backend track', hit => 1, miss => 0, stored => 0);

    # a user nobody recorded: consent_default allow
    $m0 = pm();
    enforced_ok('unknown user: miss, allowed', undef, \@ALL,
                userId => 'nobody-1');
    moved_ok($m0, 'unknown user', hit => 0, miss => 1);
}


# ---------------------------------------------------------------------
# 2. userId before anonymousId; recording for both ids; consent_default
# deny with and without a store; profiles off

{
    record_ok('U2 grants all', \%GRANT, userId => 'U2');
    record_ok('A2 declines all', \%NONE, anonymousId => 'A2');
    enforced_ok('both ids: userId wins', \%GRANT, \@ALL,
                userId => 'U2', anonymousId => 'A2');
    enforced_ok('unknown userId: anonymousId used', \%NONE, \@UNGATED,
                userId => 'U2-unknown', anonymousId => 'A2');
    is(stored('u', 'U2-unknown'), undef,
       'a consent-less track does not record');

    my ($res, $mid) = record_ok('an event with both ids records both',
                                \%ADS, userId => 'U3', anonymousId => 'A3');
    is_deeply(stored_prefs('u', 'U3'), \%ADS, 'recorded for userId');
    is_deeply(stored_prefs('a', 'A3'), \%ADS, 'recorded for anonymousId');
    record_ok('empty userId is absent', \%NOADS, userId => '',
              anonymousId => 'A3e');
    is(stored('u', ''), undef, 'no key for userId ""');
    is_deeply(stored_prefs('a', 'A3e'), \%NOADS, 'anonymousId recorded');

    # consent_default deny (location /deny/) with the store
    enforced_ok('deny + store: a profile wins', \%GRANT, \@ALL,
                path => '/deny/v1/track', userId => 'U2');
    enforced_ok('deny + store: no profile, denied', undef, \@UNGATED,
                path => '/deny/v1/track', userId => 'nobody-2');
    # profiles off in a location
    enforced_ok('profiles off: no lookup, allowed', undef, \@ALL,
                path => '/nop/v1/track', userId => 'A2-as-user',
                anonymousId => 'A2');
    enforced_ok('profiles off + deny: denied although U2 granted', undef,
                \@UNGATED, path => '/nopdeny/v1/track', userId => 'U2');
    record_ok('profiles off: consent routed', \%GRANT,
              path => '/nop/v1/track', userId => 'N-off');
    is(stored('u', 'N-off'), undef, 'profiles off: nothing recorded');

    # an empty consent object does not carry consent: a lookup
    send_ok('context.consent {} is no consent: looked up',
        event => { userId => 'U3', context => { consent => {} } },
        reply => { profiled => 1 }, to => \@ADS);
    # the legacy consentCategories carries consent: recorded
    send_ok('consentCategories recorded',
        event => { userId => 'U-legacy',
                   context => { consentCategories =>
                       { C0002 => JSON::PP::true, C0004 => JSON::PP::false } } },
        to => \@NOADS);
    is_deeply(stored_prefs('u', 'U-legacy'), \%NOADS,
              'consentCategories: stored');
}


# ---------------------------------------------------------------------
# 3. latest decision wins: two devices out of order, equal times,
# timestamp vs originalTimestamp vs arrival, future timestamps clamped

my $T0 = 1_704_067_200_000;     # 2024-01-01T00:00:00.000Z
{
    my $m0 = pm();
    record_ok('device 1: newer deny (ads) first', \%NOADS, userId => 'U4',
              anonymousId => 'D1', timestamp => iso($T0 + 2000));
    my $m1 = moved_ok($m0, 'newer deny', stored => 2, older_ignored => 0);
    record_ok('device 2: older grant later', \%GRANT, userId => 'U4',
              anonymousId => 'D2', timestamp => iso($T0 + 1000));
    moved_ok($m1, 'older grant', stored => 1, older_ignored => 1);
    is_deeply(stored_prefs('u', 'U4'), \%NOADS,
              'out of order: the newer deny stays on U4');
    is(stored('u', 'U4')->{t}, $T0 + 2000, 'out of order: t of the deny');
    is_deeply(stored_prefs('a', 'D2'), \%GRANT,
              'out of order: device 2\'s own key has its grant');
    enforced_ok('out of order: backend track for U4', \%NOADS, \@NOADS,
                userId => 'U4');

    # equal times: the later arrival wins, each time
    my $ts = iso($T0 + 5000);
    record_ok('equal time: grant', \%GRANT, userId => 'U5', timestamp => $ts);
    record_ok('equal time: deny arrives later', \%NONE, userId => 'U5',
              timestamp => $ts);
    is_deeply(stored_prefs('u', 'U5'), \%NONE, 'equal time: later deny won');
    record_ok('equal time: grant arrives last', \%GRANT, userId => 'U5',
              timestamp => $ts);
    is_deeply(stored_prefs('u', 'U5'), \%GRANT,
              'equal time: later grant won');
    # the same through the other worker's connections, a few times
    for my $i (1 .. 4) {
        my $p = $i % 2 ? \%NONE : \%ADS;
        record_ok("equal time: arrival $i", $p, userId => 'U5',
                  timestamp => $ts);
        is_deeply(stored_prefs('u', 'U5'), norm($p),
                  "equal time: arrival $i won");
    }

    # [desc, event fields, preferences stored afterwards]
    my @TS = (
        ['timestamp T+10s', { timestamp => iso($T0 + 10_000) }, \%NONE,
         \%NONE, $T0 + 10_000],
        ['older timestamp ignored', { timestamp => iso($T0 + 5_000) },
         \%GRANT, \%NONE, $T0 + 10_000],
        ['older originalTimestamp ignored',
         { originalTimestamp => iso($T0 + 5_000) }, \%GRANT, \%NONE,
         $T0 + 10_000],
        ['timestamp wins over a newer originalTimestamp',
         { timestamp => iso($T0 + 5_000),
           originalTimestamp => iso($T0 + 20_000) }, \%GRANT, \%NONE,
         $T0 + 10_000],
        ['newer originalTimestamp', { originalTimestamp => iso($T0 + 20_000) },
         \%ADS, \%ADS, $T0 + 20_000],
        ['timestamp between: older', { timestamp => iso($T0 + 15_000) },
         \%GRANT, \%ADS, $T0 + 20_000],
        ['offset +01:00: 01:00:25+01:00 is T+25s, newer',
         { timestamp => '2024-01-01T01:00:25.000+01:00' }, \%NOADS, \%NOADS,
         $T0 + 25_000],
        ['offset -02:00: 21:59:59-02:00 is T-1s, older',
         { timestamp => '2023-12-31T21:59:59.000-02:00' }, \%GRANT, \%NOADS,
         $T0 + 25_000],
        ['seconds without fraction', { timestamp => '2024-01-01T00:00:30Z' },
         \%ADS, \%ADS, $T0 + 30_000],
        ['no timestamp: arrival time (now) is newer', {}, \%GRANT, \%GRANT,
         'now'],
        ['a future timestamp is clamped to arrival',
         { timestamp => '2100-01-01T00:00:00.000Z' }, \%NOADS, \%NOADS,
         'now'],
        ['after the clamped one: arrival wins again', {}, \%NONE, \%NONE,
         'now'],
    );
    for my $c (@TS) {
        my ($desc, $f, $send, $want, $t_want) = @$c;
        my $before = now_ms();
        record_ok("timestamps: $desc", $send, userId => 'U6', %$f);
        my $after = now_ms();
        my $s = stored('u', 'U6');
        is_deeply($s && $s->{p}, norm($want), "timestamps: $desc: stored");
        if ($t_want eq 'now') {
            ok($s && $s->{t} >= $before - 1000 && $s->{t} <= $after + 1000,
               "timestamps: $desc: t is the arrival time")
                or diag("t $s->{t}, sent between $before and $after");
        } else {
            is($s && $s->{t}, $t_want, "timestamps: $desc: t");
        }
    }
    enforced_ok('timestamps: enforced', \%NONE, \@UNGATED, userId => 'U6');
}


# ---------------------------------------------------------------------
# 4. linking: identify with both ids and alias, either side newer

{
    # identify: U7 older grant, A7 newer deny -> both deny
    record_ok('link: U7 older grant', \%GRANT, userId => 'U7',
              timestamp => iso($T0 + 1000));
    record_ok('link: A7 newer deny', \%NOADS, anonymousId => 'A7',
              timestamp => iso($T0 + 2000));
    # routed on U7's stored decision (looked up in the same round trip
    # as the link is made: either decision may be enforced on it)
    send_ok('link: identify U7 + A7 without consent',
        event => { type => 'identify', userId => 'U7', anonymousId => 'A7' },
        reply => { profiled => 1 });
    is_deeply(stored_prefs('u', 'U7'), \%NOADS,
              'identify: U7 gets the newer decision of A7');
    is_deeply(stored_prefs('a', 'A7'), \%NOADS, 'identify: A7 keeps it');
    enforced_ok('identify: U7 enforced with the newer one', \%NOADS, \@NOADS,
                userId => 'U7');

    # identify the other way: U8 newer, A8 older
    record_ok('link: A8 older deny', \%NONE, anonymousId => 'A8',
              timestamp => iso($T0 + 1000));
    record_ok('link: U8 newer grant', \%GRANT, userId => 'U8',
              timestamp => iso($T0 + 2000));
    send_ok('link: identify U8 + A8',
        event => { type => 'identify', userId => 'U8', anonymousId => 'A8' },
        reply => { profiled => 1 }, to => \@ALL);
    is_deeply(stored_prefs('a', 'A8'), \%GRANT,
              'identify: A8 gets U8\'s newer decision');

    # an identify carrying consent records it on both ids, and that is
    # the newest: nothing to link
    record_ok('identify with consent', \%ADS, type => 'identify',
              userId => 'U9', anonymousId => 'A9');
    is_deeply(stored_prefs('u', 'U9'), \%ADS, 'identify with consent: U9');
    is_deeply(stored_prefs('a', 'A9'), \%ADS, 'identify with consent: A9');

    # alias: previousId -> userId.  The previous id's decision is
    # recorded as both a userId and an anonymousId (P used as both), so
    # the test does not depend on which kind previousId is looked up as
    record_ok('alias: P1 older deny', \%NOADS, userId => 'P1',
              anonymousId => 'P1', timestamp => iso($T0 + 3000));
    send_ok('alias P1 -> U10',
        event => { type => 'alias', previousId => 'P1', userId => 'U10' },
        reply => 'any');
    is_deeply(stored_prefs('u', 'U10'), \%NOADS,
              'alias: U10 gets P1\'s decision');
    record_ok('alias: U11 newer grant', \%GRANT, userId => 'U11',
              timestamp => iso($T0 + 9000));
    record_ok('alias: P2 older deny', \%NONE, userId => 'P2',
              anonymousId => 'P2', timestamp => iso($T0 + 1000));
    send_ok('alias P2 -> U11',
        event => { type => 'alias', previousId => 'P2', userId => 'U11' },
        reply => { profiled => 1 }, to => \@ALL);
    ok(grep({ my $p = stored_prefs($_, 'P2');
              $p && $p->{C0004} } qw(u a)),
       'alias: previousId P2 gets U11\'s newer decision');
    is_deeply(stored_prefs('u', 'U11'), \%GRANT, 'alias: U11 keeps it');
}


# ---------------------------------------------------------------------
# 5. batch consent and Lua hooks are recorded

{
    my $body = ConsentTest::json_encode({
        batch => [
            { type => 'track', userId => 'B1', event => 'b1',
              messageId => 'mb1' },
            { type => 'page', anonymousId => 'B2', messageId => 'mb2' },
            { type => 'track', userId => 'B3', event => 'b3',
              messageId => 'mb3', context => ConsentTest::consent_ctx(%GRANT) },
            { type => 'track', userId => 'B4', event => 'b4',
              messageId => 'mb4', context => { consent => {} } },
        ],
        context => ConsentTest::consent_ctx(%NONE),
    });
    $t->clear;
    my $m0 = pm();
    reply_ok($t->post('/v1/batch', $body), {}, 'batch consent');
    is_deeply([$t->routed('mb1', 'messageId')], \@UNGATED,
              'batch consent: b1 routed on it');
    is_deeply([$t->routed('mb3', 'messageId')], \@ALL,
              'batch consent: own consent wins');
    is_deeply([$t->routed('mb4', 'messageId')], \@UNGATED,
              'batch consent: covers an event with an empty consent');
    is_deeply(stored_prefs('u', 'B1'), \%NONE,
              'batch consent: recorded for B1');
    is_deeply(stored_prefs('a', 'B2'), \%NONE,
              'batch consent: recorded for B2');
    is_deeply(stored_prefs('u', 'B3'), \%GRANT,
              'batch consent: B3 recorded with its own');
    is_deeply(stored_prefs('u', 'B4'), \%NONE,
              'batch consent: B4 (empty consent of its own) recorded with '
              . 'the batch\'s');
    moved_ok($m0, 'batch consent', hit => 0, miss => 0, error => 0);

    record_ok('hook: consent-less event recorded with the hook\'s', undef,
              path => '/hook/v1/track', userId => 'H1',
              properties => { cmp => 'noads' });
    is_deeply(stored_prefs('u', 'H1'), \%NOADS,
              'hook: the hook\'s preferences recorded');
    enforced_ok('hook: enforced elsewhere', \%NOADS, \@NOADS,
                userId => 'H1');
    enforced_ok('hook: a hook that leaves the event as is: looked up',
                \%NOADS, \@NOADS, path => '/hook/v1/track', userId => 'H1');
    send_ok('hook: a hook overrides the event\'s consent: recorded',
        path => '/hook/v1/track',
        event => { userId => 'H2', properties => { cmp => 'all' },
                   consent => \%NONE },
        to => \@ALL);
    is_deeply(stored_prefs('u', 'H2'), \%GRANT,
              'hook: the hook\'s, not the event\'s, recorded');
}


# ---------------------------------------------------------------------
# 5b. the anonymousId's profile is read only when the userId has none:
# known users cost one round trip, unknown ones a second

{
    record_ok('fallback: anonymousId FA declines ads', \%NOADS,
              anonymousId => 'FA');
    record_ok('fallback: user FU2 grants ads', \%ADS, userId => 'FU2');
    # [desc, userId, round trips, hit, miss, prefs or undef, routed to]
    my @CASES = (
        ['unknown user, known anonymousId: the second round reads it',
         'FU1', 2, 1, 0, \%NOADS, \@NOADS],
        ['known user: one round, the anonymousId is not read',
         'FU2', 1, 1, 0, \%ADS, \@ADS],
        ['unknown user, unknown anonymousId', 'FU3', 2, 0, 1, undef, \@ALL],
    );
    for my $c (@CASES) {
        my ($desc, $user, $rt, $hit, $miss, $prefs, $to) = @$c;
        my $m0 = pm();
        my $s0 = $r->commandstats;
        enforced_ok("fallback: $desc", $prefs, $to, userId => $user,
                    anonymousId => $user eq 'FU3' ? 'FA3' : 'FA');
        my $s1 = $r->commandstats;
        moved_ok($m0, "fallback: $desc", rt => $rt, hit => $hit,
                 miss => $miss);
        is(($s1->{hmget}{calls} // 0) - ($s0->{hmget}{calls} // 0), $rt,
           "fallback: $desc: $rt HMGET");
    }
}


# ---------------------------------------------------------------------
# 5c. batched delivery (consent_delivery batch): the queued copy is the
# enforced one.  Order per destination is kept, so once facebook has
# the later event of a user granting ads, it would have had the earlier
# one of the user declining them, had that been queued for it.

{
    record_ok('batched: user BN declines ads', \%NOADS, userId => 'BN');
    record_ok('batched: user BA grants ads', \%ADS, userId => 'BA');
    $t->clear;
    my ($m1, $e1) = event(userId => 'BN');
    my ($m2, $e2) = event(userId => 'BA');
    # posted directly: send_ok clears the sinks, which the first batch
    # may already have reached
    for my $e ($e1, $e2) {
        reply_ok($t->post('/batched/v1/track', ConsentTest::json_encode($e)),
                 { profiled => 1 }, "batched: $e->{userId} without consent");
    }
    my $deadline = time + 20;
    my $got = sub { my ($d, $m) = @_;
                    grep { ($_->{messageId} // '') eq $m }
                    $t->received_events($d) };
    until (($got->('facebook', $m2) && $got->('amplitude', $m1)
            && $got->('webhook', $m1)) || time > $deadline)
    {
        select(undef, undef, undef, 0.02);
    }
    ok(scalar $got->('facebook', $m2), 'batched: facebook got BA\'s event');
    ok(!$got->('facebook', $m1), 'batched: facebook never got BN\'s');
    my ($ev) = $got->('webhook', $m1);
    is_deeply(norm($ev && $ev->{context}{consent}{categoryPreferences}),
              norm(\%NOADS), 'batched: the queued copy carries BN\'s '
              . 'stored preferences');
}


# ---------------------------------------------------------------------
# 6. one round trip per request: a 500-event batch of consent-less
# events, and one of 500 consent-carrying events

{
    # warm-up: both workers have a connection with the script loaded
    for my $i (1 .. 12) {
        record_ok("warm-up $i", \%NOADS, userId => 'W1', anonymousId => 'WA');
    }
    my @ev = map { { type => 'track', userId => 'W1', anonymousId => 'WA',
                     event => "w$_", messageId => "w$_" } } 1 .. 500;
    my $m0 = pm();
    my $s0 = $r->commandstats;
    $t->clear;
    my $res = $t->post('/v1/batch',
                       ConsentTest::json_encode({ batch => \@ev }));
    reply_ok($res, { profiled => 500 }, '500 consent-less events');
    my $s1 = $r->commandstats;
    moved_ok($m0, '500 consent-less events', rt => 1, hit => 500, miss => 0,
             error => 0);
    my $hmget = ($s1->{hmget}{calls} // 0) - ($s0->{hmget}{calls} // 0);
    ok($hmget >= 1 && $hmget <= 2,
       "500 events, one user: $hmget HMGET (<= 2: userId, anonymousId)");
    is(($s1->{hget}{calls} // 0) - ($s0->{hget}{calls} // 0), 0,
       '500 events, one user: no HGET');
    is(($s1->{evalsha}{calls} // 0) - ($s0->{evalsha}{calls} // 0), 0,
       '500 consent-less events: no EVALSHA');
    is(scalar $t->received_events('facebook'), 0,
       '500 events: facebook got none');
    is(scalar $t->received_events('amplitude'), 500,
       '500 events: amplitude got all');

    # 500 users, 500 lookups, one round trip
    @ev = map { { type => 'track', userId => "W-$_", event => "x$_",
                  messageId => "x$_" } } 1 .. 500;
    $m0 = pm();
    $s0 = $r->commandstats;
    reply_ok($t->post('/v1/batch', ConsentTest::json_encode({ batch => \@ev })),
             {}, '500 unknown users');
    $s1 = $r->commandstats;
    moved_ok($m0, '500 unknown users', rt => 1, miss => 500);
    is(($s1->{hmget}{calls} // 0) - ($s0->{hmget}{calls} // 0), 500,
       '500 users: one HMGET per distinct key');

    # 500 consent-carrying events of 500 users: 500 EVALSHA, one round trip
    @ev = map { { type => 'track', userId => "R-$_", event => "r$_",
                  messageId => "r$_",
                  context => ConsentTest::consent_ctx(%ADS) } } 1 .. 500;
    $m0 = pm();
    $s0 = $r->commandstats;
    reply_ok($t->post('/v1/batch', ConsentTest::json_encode({ batch => \@ev })),
             {}, '500 recording events');
    $s1 = $r->commandstats;
    moved_ok($m0, '500 recording events', rt => 1, stored => 500);
    is(($s1->{evalsha}{calls} // 0) - ($s0->{evalsha}{calls} // 0), 500,
       '500 recording events: 500 EVALSHA');
    is_deeply(stored_prefs('u', 'R-500'), \%ADS, '500 recording: the last');

    # keys deduplicated within a request: 20 events of one user carrying
    # the same consent, 20 without
    @ev = ((map { { type => 'track', userId => 'W2', event => "y$_",
                    messageId => "y$_",
                    context => ConsentTest::consent_ctx(%ADS) } } 1 .. 20),
           (map { { type => 'track', userId => 'W3', event => "z$_",
                    messageId => "z$_" } } 1 .. 20));
    $s0 = $r->commandstats;
    reply_ok($t->post('/v1/batch', ConsentTest::json_encode({ batch => \@ev })),
             {}, 'dedup');
    $s1 = $r->commandstats;
    is(($s1->{evalsha}{calls} // 0) - ($s0->{evalsha}{calls} // 0), 1,
       'dedup: one EVALSHA for 20 events of one key');
    # the script's own HMGET counts in commandstats too: 1 + 1
    is(($s1->{hmget}{calls} // 0) - ($s0->{hmget}{calls} // 0), 2,
       'dedup: one HMGET for 20 events of one key (and the script\'s)');

    # Redis Cluster: every command the gateway sends names one key
    my $mon = $r->monitor;
    record_ok('monitor: a recording with two ids', \%ADS, userId => 'M1',
              anonymousId => 'MA');
    enforced_ok('monitor: a lookup with two ids', \%ADS, \@ADS,
                userId => 'M2', anonymousId => 'MA');
    send_ok('monitor: identify linking', event => {
        type => 'identify', userId => 'M3', anonymousId => 'MA' },
        reply => { profiled => 1 }, to => \@ADS);
    $r->ok_cmd('ECHO', 'monitor-end');
    my @cmds = $mon->monitored_until(sub { lc $_[0] eq 'echo'
                                           && ($_[1] // '') eq 'monitor-end' });
    my @gw = grep { $_->[0] !~ /^(?:monitor|info|hgetall|pttl|keys|echo)$/i }
             @cmds;
    my @bad;
    for my $c (@gw) {
        my $name = lc $c->[0];
        if ($name eq 'evalsha') {
            push @bad, $c unless ($c->[2] // '') eq '1'
                              && ($c->[3] // '') =~ /^consent:\{[ua]:/;
        } elsif ($name eq 'hmget' && ($c->[2] // '') eq 't') {
            # a lookup (the script's own HMGET reads t, o, v too)
            push @bad, $c unless ($c->[1] // '') =~ /^consent:\{[ua]:[^}]*\}$/
                              && "@$c[2 .. $#$c]" eq 't o v';
        } elsif ($name eq 'script') {
            push @bad, $c unless lc($c->[1] // '') eq 'load';
        } elsif ($name =~ /^(?:hmget|hset|pexpire)$/) {
            # run by the script (MONITOR shows them): one key each
            push @bad, $c unless ($c->[1] // '') =~ /^consent:\{[ua]:/;
        } else {
            push @bad, $c;
        }
    }
    ok(scalar(grep { lc $_->[0] eq 'evalsha' } @gw) >= 2,
       'monitor: EVALSHA seen');
    ok(scalar(grep { lc $_->[0] eq 'hmget' } @gw) >= 2,
       'monitor: HMGET seen');
    ok(!@bad, 'monitor: every command names one profile key')
        or diag(explain(\@bad));
}


# ---------------------------------------------------------------------
# 7. two nginx instances sharing one Redis

{
    my $t2 = ConsentTest->new(dests => ConsentTest::default_dests(),
                              http => $HTTP, locations => $LOCATIONS);
    record_ok('node 1: X1 declines ads', \%NOADS, anonymousId => 'X1');
    enforced_ok('node 2: X1 enforced', \%NOADS, \@NOADS, t => $t2,
                anonymousId => 'X1');
    record_ok('node 2: X2 declines all', \%NONE, userId => 'X2', t => $t2);
    enforced_ok('node 1: X2 enforced', \%NONE, \@UNGATED, userId => 'X2');
    # racing is the script's job: an older decision through node 2 after
    # a newer one through node 1
    record_ok('node 1: newer', \%GRANT, userId => 'X3',
              timestamp => iso($T0 + 2000));
    record_ok('node 2: older', \%NONE, userId => 'X3', t => $t2,
              timestamp => iso($T0 + 1000));
    is_deeply(stored_prefs('u', 'X3'), \%GRANT, 'two nodes: newer kept');
    $t2->stop;
}


# ---------------------------------------------------------------------
# 8. profile API

{
    my ($res, $mid) = record_ok('api: record', \%NOADS, userId => 'a b@x',
                                timestamp => iso($T0 + 42));
    record_ok('api: record anonymousId', \%ADS, anonymousId => 'a b@x');
    my $g = $t->request('GET', '/_profiles/a%20b%40x');
    is($g->{status}, 200, 'api GET: 200');
    like($g->{headers}{'content-type'} // '', qr{^application/json},
         'api GET: JSON');
    my $j = $g->{json} // {};
    is($j->{id}, 'a b@x', 'api GET: id percent-decoded');
    is_deeply(norm($j->{userId}{preferences}), \%NOADS,
              'api GET: userId preferences');
    is($j->{userId}{t}, $T0 + 42, 'api GET: userId t');
    is($j->{userId}{decided_at}, '2024-01-01T00:00:00.042Z',
       'api GET: decided_at ISO 8601 UTC ms');
    is($j->{userId}{event}, $mid, 'api GET: event');
    is_deeply(norm($j->{anonymousId}{preferences}), \%ADS,
              'api GET: anonymousId preferences');
    like($j->{anonymousId}{decided_at} // '',
         qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
         'api GET: anonymousId decided_at');

    $g = $t->request('GET', '/_profiles/A1');
    is($g->{status}, 200, 'api GET anonymous only: 200');
    ok(exists $g->{json}{userId} && !defined $g->{json}{userId},
       'api GET anonymous only: userId null');
    is_deeply(norm($g->{json}{anonymousId}{preferences}), \%NOADS,
              'api GET anonymous only: anonymousId');

    $g = $t->request('GET', '/_profiles/never-seen');
    ConsentTest::reply_is($g, 404, 'profile_not_found', undef,
                          'api GET unknown');

    for my $m (qw(POST PUT PATCH)) {
        my $x = $t->request($m, '/_profiles/A1', '{}',
                            { 'Content-Type' => 'application/json' });
        is($x->{status}, 405, "api $m: 405");
    }

    my $d = $t->request('DELETE', '/_profiles/a%20b%40x');
    is($d->{status}, 200, 'api DELETE: 200');
    is_deeply($d->{json}, { success => JSON::PP::true, deleted => 2 },
              'api DELETE: both keys');
    is(stored('u', 'a b@x'), undef, 'api DELETE: userId key gone');
    is(stored('a', 'a b@x'), undef, 'api DELETE: anonymousId key gone');
    ConsentTest::reply_is($t->request('GET', '/_profiles/a%20b%40x'), 404,
                          'profile_not_found', undef, 'api GET after DELETE');
    ConsentTest::reply_is($t->request('DELETE', '/_profiles/a%20b%40x'), 404,
                          'profile_not_found', undef, 'api DELETE again');
    my $m0 = pm();
    enforced_ok('api: after DELETE, lookups miss', undef, \@ALL,
                userId => 'a b@x');
    moved_ok($m0, 'after DELETE', miss => 1, hit => 0);

    $d = $t->request('DELETE', '/_profiles/U1');
    is_deeply($d->{json}, { success => JSON::PP::true, deleted => 1 },
              'api DELETE U1: one key');
    enforced_ok('api: U1 deleted, A1 still known', \%NOADS, \@NOADS,
                userId => 'U1', anonymousId => 'A1');

    # prefix and ttl per location, the API of that location's store
    record_ok('tenant: record', \%NONE, path => '/tenant/v1/track',
              userId => 'T1');
    my $s = stored('u', 'T1', 'tenant2:');
    is_deeply($s && $s->{p}, \%NONE, 'tenant: key tenant2:{u:T1}');
    ok($s && $s->{ttl} > 3_500_000 && $s->{ttl} <= 3_600_000,
       'tenant: ttl=1h') or diag("PTTL " . ($s ? $s->{ttl} : '-'));
    is(stored('u', 'T1'), undef, 'tenant: nothing under consent:');
    enforced_ok('tenant: other prefix, not found', undef, \@ALL,
                userId => 'T1');
    $g = $t->request('GET', '/tenant/_profiles/T1');
    is($g->{status}, 200, 'tenant api: found');
    ConsentTest::reply_is($t->request('GET', '/_profiles/T1'), 404,
                          'profile_not_found', undef, 'api: not in consent:');

    # unix socket
    record_ok('unix: record', \%ADS, path => '/unix/v1/track',
              userId => 'S1');
    is_deeply(stored_prefs('u', 'S1'), \%ADS, 'unix: recorded');
    enforced_ok('unix: enforced', \%ADS, \@ADS, path => '/unix/v1/track',
                userId => 'S1');
    is($t->request('GET', '/unix/_profiles/S1')->{status}, 200,
       'unix: api');
}


# ---------------------------------------------------------------------
# 9. variables and metrics exposition

{
    $t->clear;
    my $body = ConsentTest::json_encode({ batch => [
        { type => 'track', userId => 'U4', event => 'v1' },
        { type => 'track', userId => 'nobody-3', event => 'v2' },
        { type => 'track', userId => 'U2', event => 'v3' },
        { type => 'track', userId => 'V1', event => 'v4',
          context => ConsentTest::consent_ctx(%ADS) },
    ] });
    reply_ok($t->post('/v1/batch', $body, { 'X-Seq' => 'seq-1' }),
             { profiled => 2 }, 'variables: batch');
    like(prof_log_line('seq-1'), qr{^/v1/batch 200 p=2 f=0 seq-1$},
         'variables: $consent_profiled 2, $consent_profile_failed 0');

    my $res = $t->request('GET', '/status');
    my $text = $res->{content};
    for my $name (@LOOKUPS, @RECORDS, $RT,
                  'ngx_consent_profile_store_seconds_sum',
                  'ngx_consent_profile_store_seconds_count')
    {
        like($text, qr/^\Q$name\E \d+(?:\.\d+)?(?:e[-+]?\d+)?$/m,
             "metrics: $name");
    }
    like($text, qr/^ngx_consent_profile_store_seconds_bucket\{le="\+Inf"\} \d+$/m,
         'metrics: histogram +Inf bucket');
    like($text, qr/^# TYPE ngx_consent_profile_store_seconds histogram$/m,
         'metrics: histogram TYPE');
    like($text, qr/^# TYPE ngx_consent_profile_lookups_total counter$/m,
         'metrics: lookups TYPE');
    my $m = $t->metrics;
    my @b = map { /^ngx_consent_profile_store_seconds_bucket\{le="([^"]+)"\}$/
                  ? [$1, $m->{$_}] : () } keys %$m;
    @b = sort { ($a->[0] eq '+Inf' ? 9e9 : $a->[0])
                <=> ($b->[0] eq '+Inf' ? 9e9 : $b->[0]) } @b;
    ok(@b >= 3, 'metrics: histogram buckets');
    my $mono = 1;
    $mono &&= $b[$_][1] >= $b[$_ - 1][1] for 1 .. $#b;
    ok($mono, 'metrics: buckets cumulative');
    is($b[-1][1], $m->{ngx_consent_profile_store_seconds_count},
       'metrics: +Inf bucket equals _count');
    is($m->{ngx_consent_profile_store_seconds_count}, $m->{$RT},
       'metrics: one latency sample per round trip');
    ok($m->{$_} > 0, "metrics: $_ moved") for @LOOKUPS[0, 1], $RECORDS[0],
                                             $RECORDS[1], $RT;

    my $js = $t->request('GET', '/status?format=json');
    is($js->{status}, 200, 'metrics JSON: 200');
    my $p = $js->{json}{profiles} // {};
    my $m2 = $t->metrics;
    # the members the contract names (more may follow)
    is_deeply({ map { $_ => $p->{$_} } qw(lookups records round_trips) }, {
        lookups => { map { $_ => $m2->{"ngx_consent_profile_lookups_total{result=\"$_\"}"} + 0 }
                     qw(hit miss error) },
        records => { map { $_ => $m2->{"ngx_consent_profile_records_total{result=\"$_\"}"} + 0 }
                     qw(stored older_ignored error) },
        round_trips => $m2->{$RT} + 0,
    }, 'metrics JSON: profiles equals the text');
}


# ---------------------------------------------------------------------
# 10. failure: store stopped, slow (SIGSTOP), answering garbage, closed
# port; restarted without reload

# a batch: 2 events needing a lookup (one of a known user), one carrying
# consent
sub failing_batch_ok {
    my ($desc, $path, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $tag = 'f' . ++$N;
    my $body = ConsentTest::json_encode({ batch => [
        { type => 'track', userId => 'U4', event => "$tag-1",
          messageId => "$tag-1" },
        { type => 'track', anonymousId => 'F-new', event => "$tag-2",
          messageId => "$tag-2" },
        { type => 'track', userId => 'F-rec', event => "$tag-3",
          messageId => "$tag-3", context => ConsentTest::consent_ctx(%GRANT) },
    ] });
    $t->clear;
    my $m0 = pm();
    my $t0 = time;
    my $res = $t->post($path, $body, { 'X-Seq' => $tag });
    my $el = time - $t0;
    ok($el < $TO_MS / 1000 + $SLACK,
       sprintf('%s: answered in %.3f s', $desc, $el));
    reply_ok($res, { profile_failed => 2 }, $desc);
    is_deeply([$t->routed("$tag-1", 'messageId')], \@UNGATED,
              "$desc: lookup event (known user) fails closed");
    is_deeply([$t->routed("$tag-2", 'messageId')], \@UNGATED,
              "$desc: lookup event (unknown) fails closed");
    is_deeply([$t->routed("$tag-3", 'messageId')], \@ALL,
              "$desc: consent-carrying event routed as usual");
    like(prof_log_line($tag), qr{ 200 p=0 f=2 \Q$tag\E$},
         "$desc: \$consent_profile_failed 2");
    moved_ok($m0, $desc, error => 2, hit => 0, miss => 0, rerror => 1,
             stored => 0) unless $o{no_counters};
    return $el;
}

{
    # a store that answers garbage, a closed port
    failing_batch_ok('garbage store', '/garbage/v1/batch');
    ConsentTest::reply_is($t->request('GET', '/garbage/_profiles/U4'), 503,
                          'store_unavailable', undef, 'api: garbage store');
    failing_batch_ok('closed port', '/closed/v1/batch');

    # slow: the server stopped (SIGSTOP), connections still accepted
    $r->pause;
    my $el = failing_batch_ok('slow store', '/v1/batch');
    ok($el >= $TO_MS / 1000 * 0.9,
       sprintf('slow store: waited for the timeout (%.3f s)', $el));
    failing_batch_ok('slow store, deny location', '/deny/v1/batch');
    send_ok('slow store: single lookup event',
        event => { userId => 'U4' }, reply => { profile_failed => 1 },
        to => \@UNGATED);
    $r->resume;
    enforced_ok('resumed: lookups work again', \%NOADS, \@NOADS,
                userId => 'U4');

    # stopped
    $r->stop;
    failing_batch_ok('store stopped', '/v1/batch');
    failing_batch_ok('store stopped, again', '/v1/batch');
    send_ok('store stopped: single consent-carrying event',
        event => { userId => 'F-rec2', consent => \%NOADS }, to => \@NOADS);
    send_ok('store stopped: enforce=off and unmapped still get lookups',
        event => { userId => 'U2' }, reply => { profile_failed => 1 },
        to => \@UNGATED);
    send_ok('store stopped: an event sending integrations still closed',
        event => { userId => 'U2', integrations => { facebook => JSON::PP::true } },
        reply => { profile_failed => 1 }, to => \@UNGATED);
    enforced_ok('store stopped: profiles off unaffected', undef, \@ALL,
                path => '/nop/v1/track', userId => 'U2');
    ConsentTest::reply_is($t->request('GET', '/_profiles/U4'), 503,
                          'store_unavailable', undef, 'api: store stopped');
    ConsentTest::reply_is($t->request('DELETE', '/_profiles/U4'), 503,
                          'store_unavailable', undef,
                          'api DELETE: store stopped');
    my @errs = grep { /profile|redis|store/i && /\[(error|warn)\]/ }
               split /\n/, $t->error_log;
    ok(@errs, 'store stopped: logged');
    ok(@errs <= 40, 'store stopped: logged once per cause and worker, not '
                    . 'per event (' . scalar(@errs) . ' lines)');

    # restarted on the same port (empty: no persistence): no reload
    $r->start;
    my $m0 = pm();
    for my $i (1 .. 6) {
        enforced_ok("restarted $i: miss (store empty)", undef, \@ALL,
                    userId => 'U4');
    }
    moved_ok($m0, 'restarted', miss => 6, error => 0);
    record_ok('restarted: record', \%NOADS, userId => 'U4');
    is_deeply(stored_prefs('u', 'U4'), \%NOADS,
              'restarted: recorded (script loaded again)');
    for my $i (1 .. 6) {
        enforced_ok("restarted $i: enforced", \%NOADS, \@NOADS,
                    userId => 'U4');
    }
    ok($r->calls('script|load') >= 1, 'restarted: SCRIPT LOAD on the new '
                                       . 'connections');
    is($r->calls('eval'), 0, 'no EVAL with the script text (EVALSHA only)');
}

$t->stop;


# ---------------------------------------------------------------------
# 11. nginx -t

{
    my $C = ConsentTest::default_consent();
    # [desc, http snippet, server snippet or undef, expected output]
    my @BAD = (
        ['no address', "    consent_profiles;\n", undef,
         qr/invalid number of arguments in "consent_profiles"/],
        ['bad port', "    consent_profiles 127.0.0.1:99999;\n", undef,
         qr/invalid address "127\.0\.0\.1:99999" in "consent_profiles"/],
        ['no port', "    consent_profiles 127.0.0.1:;\n", undef,
         qr/invalid address "127\.0\.0\.1:" in "consent_profiles"/],
        ['empty unix path', "    consent_profiles unix:;\n", undef,
         qr/invalid address "unix:" in "consent_profiles"/],
        ['unknown host',
         "    consent_profiles no-such-host.invalid:6379;\n", undef,
         qr/consent_profiles|host not found/],
        ['timeout not a time', "    consent_profiles $REDIS timeout=abc;\n",
         undef, qr/timeout/],
        ['timeout 0', "    consent_profiles $REDIS timeout=0;\n", undef,
         qr/timeout/],
        ['ttl not a time', "    consent_profiles $REDIS ttl=forever;\n", undef,
         qr/ttl/],
        ['ttl 0', "    consent_profiles $REDIS ttl=0;\n", undef, qr/ttl/],
        ['prefix with a brace (hash tag)',
         "    consent_profiles $REDIS 'prefix=a{b:';\n", undef,
         qr/prefix=a\{b:.*must not hold/],
        ['prefix with a closing brace',
         "    consent_profiles $REDIS 'prefix=a}';\n", undef,
         qr/must not hold/],
        ['unknown option', "    consent_profiles $REDIS pool=4;\n", undef,
         qr/pool=4/],
        ['an option twice',
         "    consent_profiles $REDIS timeout=1s timeout=2s;\n", undef,
         qr/duplicate "timeout=" in "consent_profiles"/],
        ['a path', "    consent_profiles localhost/db;\n", undef,
         qr/invalid address "localhost\/db" in "consent_profiles"/],
        ['off with options', "    consent_profiles off timeout=1s;\n", undef,
         qr/consent_profiles/],
        ['duplicate', "    consent_profiles $REDIS;\n"
                    . "    consent_profiles $REDIS;\n", undef,
         qr/"consent_profiles" directive is duplicate/],
        ['api without a store', '',
         "        location /v1/ { consent_ingest; }\n"
         . "        location /_p/ { consent_profile_api; }\n",
         qr/consent_profile_api/],
        ['api with profiles off',
         "    consent_profiles $REDIS;\n",
         "        location /_p/ { consent_profiles off; "
         . "consent_profile_api; }\n",
         qr/consent_profile_api/],
        ['api at http level', "    consent_profiles $REDIS;\n"
                              . "    consent_profile_api;\n", undef,
         qr/"consent_profile_api" directive is not allowed here/],
        ['api with an argument', "    consent_profiles $REDIS;\n",
         "        location /_p/ { consent_profile_api on; }\n",
         qr/invalid number of arguments in "consent_profile_api"/],
    );
    for my $c (@BAD) {
        my ($desc, $http, $server, $re) = @$c;
        my ($rc, $out) = ConsentTest::nginx_t($C . $http,
                                              defined $server
                                              ? (server => $server) : ());
        isnt($rc, 0, "nginx -t: $desc fails");
        like($out, $re, "nginx -t: $desc: message") or diag($out);
        like($out, qr/nginx\.conf:\d+/, "nginx -t: $desc: names the line");
    }

    my @GOOD = (
        ['host:port', "    consent_profiles $REDIS;\n"],
        ['all options', "    consent_profiles $REDIS timeout=250ms ttl=30d "
                        . "prefix=acme:consent:;\n"],
        ['localhost', "    consent_profiles localhost:6379;\n"],
        ['unix', "    consent_profiles unix:/run/redis/redis.sock;\n"],
        ['off', "    consent_profiles off;\n"],
        ['server and location',
         "    consent_profiles $REDIS;\n",
         "        consent_profiles off;\n"
         . "        location /v1/ { consent_ingest; "
         . "consent_profiles $REDIS prefix=x:; }\n"
         . "        location /_p/ { consent_profiles $REDIS; "
         . "consent_profile_api; }\n"],
        ['api inheriting the store', "    consent_profiles $REDIS;\n",
         "        location /v1/ { consent_ingest; }\n"
         . "        location /_p/ { internal; consent_profile_api; }\n"],
    );
    for my $c (@GOOD) {
        my ($desc, $http, $server) = @$c;
        my ($rc, $out) = ConsentTest::nginx_t($C . $http,
                                              defined $server
                                              ? (server => $server) : ());
        is($rc, 0, "nginx -t: $desc accepted") or diag($out);
    }
}

done_testing;
