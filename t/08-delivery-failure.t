# Delivery failures: a destination answering non-2xx, refusing the
# connection, hanging or closing: the client gets 502 delivery_failed
# listing the failed destinations; the others still got their events.
# Each failure is one error log line and counted for its destination.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => {
        amplitude => {},
        webhook   => {},
        broken    => { status => 500 },
        missing   => { status => 404 },
        refused   => { closed => 1 },
        hanging   => { mode => 'hang', keepalive => 0,
                       extra => 'proxy_read_timeout 1s;' },
        closing   => { mode => 'close', keepalive => 0 },
        partial   => { mode => 'partial', keepalive => 0 },
        unbuffered => { mode => 'partial', keepalive => 0,
                        extra => 'proxy_buffering off;' },
    },
    locations => "        location = /status { consent_status; }\n",
    http => <<'EOF',
    consent_status_zone 256k;
    consent_category C0002;
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination webhook   /_dest/webhook;
    consent_destination broken    /_dest/broken;
    consent_destination missing   /_dest/missing;
    consent_destination refused   /_dest/refused;
    consent_destination hanging   /_dest/hanging;
    consent_destination closing   /_dest/closing;
    consent_destination partial   /_dest/partial;
    consent_destination unbuffered /_dest/unbuffered;
EOF
);

my @BAD = qw(broken closing hanging missing partial refused unbuffered);

# the status each failure is logged with (a timeout is 504 Gateway
# Timeout, as in background mode and nginx's own access log)
my %STATUS = (broken => 500, missing => 404, refused => 502, closing => 502,
              partial => 502, unbuffered => 502, hanging => 504);

my %before;

sub snapshot {
    %before = map { $_ => [$t->dest_events($_, 'failed'),
                           scalar(my @l = $t->failed_lines($_))] } @BAD;
}

# An event for the healthy destinations plus those of @on (integrations
# switch the other failing ones off).
sub event {
    my ($name, @on) = @_;
    my %on = map { $_ => 1 } @on;
    my $int = join ',', map { qq("$_":false) } grep { !$on{$_} } @BAD;
    return qq({"userId":"u1","event":"$name","integrations":{$int}});
}

# the reply, and per destination one more log line and one more failed
# event (every request here carries one event per destination)
sub failed_ok {
    my ($desc, $res, @failed) = @_;
    ConsentTest::reply_is($res, 502, 'delivery_failed', undef, $desc);
    is_deeply([sort @{ $res->{json}{failed} // [] }], [sort @failed],
              "$desc: failed lists @failed") or diag $res->{content};
    my %f = map { $_ => 1 } @failed;
    for my $d (@BAD) {
        my $n = $f{$d} ? 1 : 0;
        is($t->dest_events($d, 'failed') - $before{$d}[0], $n,
           "$desc: $d failed events counted +$n");
        my @l = $t->failed_lines($d);
        is(scalar(@l) - $before{$d}[1], $n, "$desc: $d error log lines +$n");
        like($l[-1], qr/failed with status $STATUS{$d},/,
             "$desc: $d logged with status $STATUS{$d}") if $n;
    }
}

# healthy baseline
{
    $t->clear;
    snapshot();
    ConsentTest::accepted_ok($t->post('/v1/track', event('ok')), 'healthy');
    is_deeply([$t->routed('ok')], [qw(amplitude webhook)],
              'healthy: delivered to the healthy destinations');
}

# a destination answering 500
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/track', event('e500', 'broken'));
    failed_ok('destination answering 500', $res, 'broken');
    is_deeply([$t->routed('e500')], [qw(amplitude broken webhook)],
              '500: the others (and the failing one) received the event');
    is($t->count($_), 1, "500: $_ got exactly one request")
        for qw(amplitude webhook broken);
}

# a destination answering 404
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/track', event('e404', 'missing'));
    failed_ok('destination answering 404', $res, 'missing');
    is_deeply([$t->routed('e404')], [qw(amplitude missing webhook)],
              '404: the others received the event');
}

# connection refused
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/track', event('refused', 'refused'));
    failed_ok('destination with a closed port', $res, 'refused');
    is_deeply([$t->routed('refused')], [qw(amplitude webhook)],
              'closed port: the others received the event');
}

# the upstream closes without answering
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/track', event('closing', 'closing'));
    failed_ok('destination closing the connection', $res, 'closing');
    is_deeply([$t->routed('closing')], [qw(amplitude closing webhook)],
              'closing: the others received the event');
}

# the upstream answers 200 and closes in the middle of the body
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/track', event('partial', 'partial'));
    failed_ok('destination closing mid-response', $res, 'partial');
    is_deeply([$t->routed('partial')], [qw(amplitude partial webhook)],
              'mid-response: the others received the event');
    like($t->error_log, qr/upstream prematurely closed connection/,
         'mid-response: nginx says what happened');

    $t->clear;
    snapshot();
    $res = $t->post('/v1/track', event('unbuf', 'unbuffered'));
    failed_ok('closing mid-response, proxy_buffering off', $res,
              'unbuffered');
}

# the upstream never answers (proxy_read_timeout 1s)
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/track', event('hanging', 'hanging'));
    failed_ok('destination timing out', $res, 'hanging');
    is_deeply([$t->routed('hanging')], [qw(amplitude hanging webhook)],
              'timeout: the others received the event');
}

# several failures at once
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/batch', '{"batch":['
        . '{"type":"track","userId":"u1","event":"multi"}]}');
    failed_ok('every failure at once', $res, @BAD);
    is_deeply([$t->routed('multi')],
              [qw(amplitude broken closing hanging missing partial unbuffered
                  webhook)],
              'every failure: the reachable ones received the event');
}

# a failing destination with nothing to receive does not fail the request
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/track', event('skip'));
    ConsentTest::accepted_ok($res, 'failing destinations switched off');
    is($t->count($_), 0, "switched off: $_ got no request") for @BAD;
}

# a failing destination filtered by consent does not fail the request
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/track', '{"userId":"u1","event":"consent",'
        . '"context":{"consent":{"categoryPreferences":{"C0002":false}}},'
        . '"integrations":{"All":false,"amplitude":true,"webhook":true}}');
    ConsentTest::accepted_ok($res, 'only the consent-filtered one');
    is_deeply([$t->routed('consent')], ['webhook'],
              'consent-filtered: webhook only');
}

# a batch with rejected events and a failed destination: still 502
{
    $t->clear;
    snapshot();
    my $res = $t->post('/v1/batch', '{"batch":['
        . '{"type":"track","event":"no ids"},'
        . '{"type":"track","userId":"u1","event":"part","integrations":'
        . '{"closing":false,"hanging":false,"missing":false,'
        . '"partial":false,"refused":false,"unbuffered":false}}]}');
    failed_ok('rejected events plus a failure', $res, 'broken');
    is_deeply([$t->routed('part')], [qw(amplitude broken webhook)],
              'rejected plus failure: the valid event was delivered');
}

# the gateway keeps working after failures
{
    $t->clear;
    snapshot();
    ConsentTest::accepted_ok($t->post('/v1/track', event('after')),
                             'after failures');
    is_deeply([$t->routed('after')], [qw(amplitude webhook)],
              'after failures: delivered');
}

like($t->error_log, qr/broken/, 'error.log names the failed destination');

$t->stop;

# destinations answered by nginx itself, with empty bodies, and upstream
# replies without a body are complete deliveries
{
    my @kinds = qw(r200 r204 r200body u204 u200empty);
    my $l = ConsentTest->new(
        http => join('', map { "    consent_destination $_ /_d/$_;\n" }
                             @kinds),
        locations => <<'EOF',
        location /_d/r200 { return 200; }
        location /_d/r204 { return 204; }
        location /_d/r200body { return 200 "ok"; }
        location /_d/u204 {
            proxy_pass http://127.0.0.1:%%NGINX_PORT%%/up204;
        }
        location /_d/u200empty {
            proxy_pass http://127.0.0.1:%%NGINX_PORT%%/up200;
        }
        location /up204 { return 204; }
        location /up200 { return 200 ""; }
EOF
    );
    for my $d (@kinds) {
        ConsentTest::accepted_ok($l->post('/v1/track', '{"userId":"u",'
            . qq("integrations":{"All":false,"$d":true}})),
            "destination $d");
    }
    $l->stop;
}

done_testing;
