# consent_delivery background: the client gets its reply (200, with any
# rejected events) before the destinations answer, as with mirror; each
# destination still gets exactly its events, and a failure afterwards is
# logged once and counted, never reported to the client.
#
# The reply no longer tells when delivery is over, so this test waits
# for what it checks (sink logs, counters, log lines) by bounded polls.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep time);
use ConsentTest;

my $t = ConsentTest->new(
    dests => {
        amplitude => {},
        webhook   => {},
        broken    => { status => 500 },
        hanging   => { mode => 'hang', keepalive => 0,
                       extra => 'proxy_read_timeout 2s;' },
    },
    http => <<'EOF',
    consent_status_zone 256k;
    consent_delivery background;
    consent_category C0002;
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination webhook   /_dest/webhook;
    consent_destination broken    /_dest/broken;
    consent_destination hanging   /_dest/hanging;
EOF
    locations => <<'EOF',
        location = /status { consent_status; }
        location /wait/v1/ { consent_ingest; consent_delivery wait; }
EOF
);

# bounded poll: true once $cond holds, false after 10 s
sub wait_for {
    my ($cond) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.02;
    }
    return $cond->();
}

sub subrequests {
    my ($dest) = @_;
    return $t->metrics->{'ngx_consent_destination_latency_seconds_count'
                         . qq({destination="$dest"})} // 0;
}

sub event {
    my ($name, $c0002, @on) = @_;
    my %on = map { $_ => 1 } @on;
    my $int = join ',', map { qq("$_":false) } grep { !$on{$_} }
                                               qw(broken hanging);
    return qq({"userId":"u1","event":"$name","integrations":{$int},)
         . qq("context":{"consent":{"categoryPreferences":)
         . qq({"C0002":$c0002}}}});
}

# healthy destinations: 200 at once, each gets its events exactly once
{
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/track', event('h1', 'true')),
                             'background, healthy');
    ConsentTest::accepted_ok($t->post('/v1/track', event('h2', 'false')),
                             'background, healthy, no consent for C0002');
    ok(wait_for(sub { $t->count('amplitude') >= 1
                      && $t->count('webhook') >= 2 }),
       'healthy: deliveries arrived');
    is_deeply([map { $_->{event} } $t->received_events('amplitude')], ['h1'],
              'healthy: amplitude got only the consented event');
    # two requests' background deliveries may arrive in either order
    is_deeply([sort map { $_->{event} } $t->received_events('webhook')],
              [qw(h1 h2)], 'healthy: webhook got both, once each');
    ok(wait_for(sub { $t->dest_events('webhook', 'delivered') == 2 }),
       'healthy: webhook counted delivered twice');
    is($t->dest_events('amplitude', 'delivered'), 1,
       'healthy: amplitude delivered 1');
    is($t->dest_events('amplitude', 'filtered_consent'), 1,
       'healthy: amplitude filtered_consent 1');
}

# a destination answering 500: the client still has 200; the failure is
# logged once and counted
{
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/track',
                                      event('b1', 'true', 'broken')),
                             'background, destination answering 500');
    ok(wait_for(sub { $t->dest_events('broken', 'failed') == 1 }),
       '500: counted as failed');
    is(scalar(my @l = $t->failed_lines('broken')), 1,
       '500: one error log line') or diag $t->error_log;
    like($l[0] // '', qr/\[error\].*status 500, 1 events not delivered/,
         '500: the line says what was lost');
    is_deeply([$t->routed('b1')], [qw(amplitude broken webhook)],
              '500: the others got the event');
}

# a destination that hangs: the reply does not wait for it
{
    $t->clear;
    my $res = $t->post('/v1/track', event('g1', 'true', 'hanging'));
    ConsentTest::accepted_ok($res, 'background, hanging destination');
    # answered while the hanging delivery was still under way: its
    # subrequest had not ended (no latency observation, no failure yet)
    is(subrequests('hanging'), 0,
       'hanging: reply came before the delivery ended');
    is($t->dest_events('hanging', 'failed'), 0, 'hanging: not failed yet');
    ok(wait_for(sub { $t->count('hanging') == 1 }),
       'hanging: the destination got the request');
    ok(wait_for(sub { $t->dest_events('hanging', 'failed') == 1 }),
       'hanging: counted failed after its proxy_read_timeout');
    is(subrequests('hanging'), 1, 'hanging: one latency observation');
    my @l = $t->failed_lines('hanging');
    is(scalar @l, 1, 'hanging: one error log line');
    like($l[0] // '', qr/status 504/, 'hanging: 504 from the timeout');
}

# rejected events are still in the reply
{
    $t->clear;
    my $res = $t->post('/v1/batch', '{"batch":[{"type":"track",'
        . '"userId":"u1","event":"r1"},{"type":"track","event":"r2"}]}');
    is($res->{status}, 200, 'background batch with a bad event: 200');
    is_deeply($res->{json}{rejected},
              [{ index => 1, code => 'no_user_anon_id',
                 message => $res->{json}{rejected}[0]{message} }],
              'background batch: the bad event is listed')
        or diag $res->{content};
    ok(wait_for(sub { $t->count('hanging') == 1 && $t->count('broken') == 1
                      && $t->count('webhook') == 1 }),
       'background batch: delivered to every destination');
}

# a location may still wait
{
    $t->clear;
    my $res = $t->post('/wait/v1/track', event('w1', 'true', 'broken'));
    ConsentTest::reply_is($res, 502, 'delivery_failed', undef,
                          'consent_delivery wait overrides background');
    is_deeply($res->{json}{failed}, ['broken'], 'wait: broken listed');
}

# the hanging delivery of the batch ends before nginx quits
{
    ok(wait_for(sub { $t->dest_events('hanging', 'failed') == 2 }),
       'every background delivery ended and was counted');
}

$t->stop;

done_testing;
