#!/usr/bin/perl
# The real browser client: Segment's analytics.js (npm
# @segment/analytics-next, pinned in package.json) in headless Chromium
# (Debian's), on a page of another origin, posting to the gateway
# cross-origin with the consent a CMP wrapper stamps on every event.
# Per consent state and delivery strategy, each sink must receive exactly
# the events SPEC section 4 routes to it; the browser must see no failed
# request, no CORS error, no console error; an origin not in
# consent_cors_origins is refused by the browser and nothing is delivered.
# docs/browser.md describes it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use ConsentTest;
use ConsentBrowser;
use MIME::Base64 ();

ConsentBrowser::check_ready();

my $ROOT = ConsentTest::root();
my $WRITE_KEY = 'wk_browser_test';

# the page's origin (allowed) and a stranger's (not allowed): host names
# Chromium maps to 127.0.0.1 (ConsentBrowser::HOST_RULES), the gateway's
# port; the gateway itself is http://127.0.0.1:PORT
my $t = ConsentTest->new(
    dests  => ConsentTest::default_dests(),
    http   => ConsentTest::default_consent() . <<'EOF',
    consent_cors_origins http://shop.test:%%NGINX_PORT%%;
    log_format origin '$request_method $uri $status "$http_origin"';
EOF
    server => ConsentBrowser::static_locations() . <<'EOF',
        access_log %%PREFIX%%/origin.log origin;
EOF
);

my $gateway = $t->url('');
my $shop = 'http://shop.test:' . $t->port;
my $stranger = 'http://stranger.test:' . $t->port;

# the routing of demo's/README's configuration (ConsentTest::default_consent)
my %CATEGORIES = (amplitude => ['C0002'], facebook => ['C0004'],
                  warehouse => undef, webhook => []);  # undef: enforce=off

my %STATES = (
    granted => { C0002 => 1, C0003 => 1, C0004 => 1, C0005 => 1 },
    no_ads  => { C0002 => 1, C0004 => 0 },
    ads     => { C0002 => 0, C0004 => 1, C0005 => 0 },
    empty   => {},
    none    => undef,
);

# The calls of one scenario: [method, args...] for runScenario, and what
# the event looks like at a sink: [type, event name, integrations].
sub calls {
    my ($name, $prefs) = @_;
    my @c = (
        [['track', 'Order Completed', { revenue => 42, scenario => $name }],
         ['track', 'Order Completed']],
        [['page', 'Shop', 'Checkout'], ['page']],
        [['identify', "user-$name", { plan => 'pro' }], ['identify']],
        [['group', 'acme', { name => 'Acme Inc.' }], ['group']],
        [['alias', "user-$name-2"], ['alias']],
        [['track', 'Ad Clicked', {}, { integrations => { facebook =>
                                           JSON::PP::false } }],
         ['track', 'Ad Clicked', { facebook => 0 }]],
    );
    push @c, [['consentChanged'],
              ['track', 'Segment Consent Preference Updated']]
        if defined $prefs;
    return @c;
}

sub json_prefs {
    my ($p) = @_;
    return undef unless defined $p;
    return { map { $_ => ($p->{$_} ? JSON::PP::true : JSON::PP::false) }
             keys %$p };
}

# SPEC section 4 for destination $d: consent first, then integrations.
sub routes_to {
    my ($d, $prefs, $integrations) = @_;
    my $cats = $CATEGORIES{$d};
    if (defined $cats && defined $prefs) {
        for my $c (@$cats) {
            return 0 unless $prefs->{$c};
        }
    }
    return !(exists(($integrations // {})->{$d})
             && !$integrations->{$d});
}

my @scenarios;
my %expected;    # dest -> [ "anon|type|event" ... ]

sub scenario {
    my (%o) = @_;
    my $name = $o{name};
    my $prefs = $STATES{$o{consent}};
    my $anon = "anon-$name";
    my @calls = calls($name, $prefs);
    push @scenarios, {
        name => $name,
        page => ($o{origin} // $shop) . '/page.html',
        expect => $o{expect} // 'delivered',
        events => scalar @calls,
        telemetry => $o{telemetry} ? JSON::PP::true : JSON::PP::false,
        spec => {
            gateway => $gateway, writeKey => $WRITE_KEY,
            anonymousId => $anon, consent => json_prefs($prefs),
            calls => [map { $_->[0] } @calls],
            ($o{delivery} ? (delivery => $o{delivery}) : ()),
            (($o{expect} // '') eq 'unload' ? (awaitCalls => JSON::PP::true)
                                            : ()),
            # analytics.js's telemetry every 100 ms instead of 30 s, where
            # the test waits for it (elsewhere a /v1/m in flight would be
            # aborted when the unload scenario leaves its page)
            ($o{telemetry} ? (metrics => { flushTimer => 100 }) : ()),
        },
        # for the checks below
        _prefs => $prefs, _one_batch => $o{one_batch},
    };
    return if ($o{expect} // '') eq 'cors';
    for my $c (@calls) {
        my ($type, $event, $integrations) = @{ $c->[1] };
        for my $d (sort keys %CATEGORIES) {
            push @{ $expected{$d} }, join '|', $anon, $type, $event // ''
                if routes_to($d, $prefs, $integrations);
        }
    }
}

# analytics.js's default delivery: one request per event (/v1/t, p, ...)
scenario(name => "std-$_", consent => $_, telemetry => $_ eq 'granted')
    for sort keys %STATES;

# its batching strategy (/v1/b): flushed when `size` events are buffered,
# or after `timeout` ms
for my $state (sort keys %STATES) {
    my $n = scalar calls('x', $STATES{$state});
    my $by_time = $state eq 'empty' || $state eq 'none';
    scenario(name => "batch-$state", consent => $state, one_batch => !$by_time,
             delivery => { strategy => 'batching', config => $by_time
                 ? { size => 100, timeout => 50 }
                 : { size => $n, timeout => 60000 } });
}

# batching, the page left before the batch is due: analytics.js sends it
# on pagehide with fetch keepalive
scenario(name => 'unload', consent => 'no_ads', expect => 'unload',
         delivery => { strategy => 'batching',
                       config => { size => 100, timeout => 60000 } });

# an origin not in consent_cors_origins: the preflight is refused
scenario(name => 'stranger', consent => 'granted', expect => 'cors',
         origin => $stranger);

my $res = ConsentBrowser::drive(
    gateway => $gateway,
    scenarios => [map { my %s = %$_; delete @s{grep { /^_/ } keys %s}; \%s }
                  @scenarios],
);
diag("chromium $res->{version}: " . @{ $res->{scenarios} }
     . " scenarios in $res->{ms} ms ("
     . join(', ', map { "$_->{name} $_->{ms}" } @{ $res->{scenarios} }) . ")")
    if $ENV{TEST_VERBOSE};

my %by_name = map { $_->{name} => $_ } @{ $res->{scenarios} };

# ---------------------------------------------------------------------
# what the browser saw

for my $sc (@scenarios) {
    my $r = $by_name{ $sc->{name} } or do {
        fail("$sc->{name}: no result");
        next;
    };
    my $n = $sc->{name};
    ok(!$r->{error}, "$n: the browser reached its expected state")
        or diag($r->{error}, "\n", ConsentTest::json_encode($r));
    is($r->{anonymousId}, "anon-$n", "$n: analytics.js loaded, anonymousId");
    is_deeply($r->{pageErrors}, [], "$n: no page error");
    is_deeply($r->{external}, [], "$n: no request to another host (CDN)");

    if ($sc->{expect} eq 'cors') {
        ok(@{ $r->{failed} }, "$n: the browser refused the requests");
        ok(!(grep { $_->{method} eq 'POST' } @{ $r->{posts} }),
           "$n: the page saw no answered POST");
        next;
    }

    my @errors = grep { $_->{type} eq 'error' } @{ $r->{console} };
    is_deeply(\@errors, [], "$n: no console error (CORS or other)")
        or diag(ConsentTest::json_encode(\@errors));
    is_deeply($r->{failed}, [], "$n: no failed request")
        or diag(ConsentTest::json_encode($r->{failed}));
    my @bad = grep { $_->{status} != 200 } @{ $r->{posts} };
    is_deeply(\@bad, [], "$n: every gateway reply 200");
    if ($sc->{expect} eq 'unload') {
        is($r->{batchesBeforeUnload}, 0,
           "$n: nothing sent before the page was left");
        next;
    }
    is($r->{events}, $sc->{events}, "$n: $sc->{events} events answered");
    my %paths = map { $_->{path} => 1 } @{ $r->{posts} };
    if ($sc->{spec}{delivery}) {
        ok($paths{'/v1/b'} && !(grep { m{^/v1/[tpiga]$} } keys %paths),
           "$n: posted to /v1/b only");
        is(scalar(grep { $_->{path} eq '/v1/b' } @{ $r->{posts} }), 1,
           "$n: one batch of $sc->{events} (size reached)")
            if $sc->{_one_batch};
    } else {
        is_deeply([sort grep { $_ ne '/v1/m' } keys %paths],
                  [qw(/v1/a /v1/g /v1/i /v1/p /v1/t)],
                  "$n: posted to /v1/t, p, i, g, a");
    }
    if ($sc->{telemetry}) {
        ok($paths{'/v1/m'}, "$n: telemetry to /v1/m answered 200");
    }
}

# ---------------------------------------------------------------------
# what the sinks received: exactly the routed events, once each

# the unload scenario's batch arrives after the page is gone: wait for
# it at the sinks (bounded), the one thing no browser event reports
my $unload_n = grep { /^anon-unload\|/ } map { @$_ } values %expected;
ConsentBrowser::wait_for(sub {
    my $n = 0;
    for my $d (sort keys %CATEGORIES) {
        $n += grep { ($_->{anonymousId} // '') eq 'anon-unload' }
              $t->received_events($d);
    }
    return $n >= $unload_n;
}, 20) or fail('unload: the keepalive batch reached the sinks in 20 s');

my %FORWARDED = map { $_ => 1 } qw(content-type authorization user-agent
    x-forwarded-for x-real-ip host content-length connection);

my %prefs_of = map { ("anon-$_->{name}" => $_->{_prefs}) } @scenarios;

for my $d (sort keys %CATEGORIES) {
    my @ev = $t->received_events($d);
    my @got = sort map {
        join '|', $_->{anonymousId} // '?', $_->{type} // '?',
                  $_->{event} // ''
    } @ev;
    is_deeply(\@got, [sort @{ $expected{$d} }],
              "$d: exactly the events routed to it, once each")
        or diag(ConsentBrowser::diff(\@got, $expected{$d}));

    my %ids;
    $ids{ $_->{messageId} // '' }++ for @ev;
    is(scalar(grep { $ids{$_} > 1 } keys %ids), 0,
       "$d: no messageId twice");

    # the events as analytics.js built them, consent stamped on each
    my @wrong = grep {
        my $p = $prefs_of{ $_->{anonymousId} };
        my $consent = ref $_->{context} eq 'HASH' && $_->{context}{consent};
        !(defined $p ? ref $consent eq 'HASH'
                       && ConsentTest::json_encode($consent) eq
                          ConsentTest::json_encode(
                              { categoryPreferences => json_prefs($p) })
                     : !defined $consent)
        || ($_->{writeKey} // '') ne $WRITE_KEY
        || !$_->{messageId} || !$_->{timestamp}
        || ref $_->{_metadata} ne 'HASH'
    } @ev;
    is(scalar @wrong, 0, "$d: consent, writeKey, messageId, timestamp, "
                         . "_metadata as analytics.js sent them")
        or diag(ConsentTest::json_encode($wrong[0]));

    my @req = $t->received($d);
    my $auth = 'Basic ' . MIME::Base64::encode_base64("$WRITE_KEY:", '');
    is(scalar(grep { ($_->{headers}{authorization} // '') ne $auth } @req),
       0, "$d: the write key's Authorization passed on");
    # analytics.js's envelope as forwarded: default delivery puts sentAt
    # on each event; batching on the batch, with its writeKey
    my @envelope = grep {
        my $j = $_->{json};
        my @b = @{ $j->{batch} };
        (grep { $_->{anonymousId} =~ /^anon-(?:batch|unload)-?/ } @b)
            ? !($j->{sentAt} && ($j->{writeKey} // '') eq $WRITE_KEY)
              || grep { exists $_->{sentAt} } @b
            : grep { !$_->{sentAt} } @b
    } @req;
    is(scalar @envelope, 0, "$d: sentAt per event (default delivery) or "
       . "per batch with its writeKey (batching)")
        or diag($envelope[0]{body});
    # README, "Headers destinations receive": none of the browser's others
    # (Origin, Referer, Sec-CH-UA, Accept-Language, ...)
    my %other;
    for my $r (@req) {
        $other{$_} = 1 for grep { !$FORWARDED{$_} } keys %{ $r->{headers} };
    }
    is_deeply([sort keys %other], [], "$d: only the documented headers");
}

# the stranger's page: only refused preflights reached the gateway
my @stranger = grep { /"\Q$stranger\E"$/ } ConsentBrowser::lines(
    $t->prefix . '/origin.log');
ok(@stranger, 'stranger: its preflight reached the gateway');
# analytics.js's telemetry (/v1/m) is a CORS "simple" request (text/plain,
# no Authorization): the browser sends it without a preflight and only
# hides the reply from the page; the event requests carry the write key's
# Authorization, so the refused preflight stops them before they are sent
is_deeply([grep { !/^OPTIONS / && !m{^POST /v1/m } } @stranger], [],
          'stranger: no event request from its origin reached the gateway');
is_deeply([grep { /^OPTIONS / && !/ 204 / } @stranger], [],
          'stranger: preflights answered 204 (without its origin)');

$t->stop;
done_testing();
