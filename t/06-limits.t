# Size and count limits: consent_max_body_size, consent_max_event_size,
# consent_max_batch_events (configured and defaults), at their boundaries.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => { webhook => {} },
    http  => "    consent_destination webhook /_dest/webhook;\n"
           . "    client_max_body_size 2m;\n"
           . "    client_body_buffer_size 2m;\n",
    locations => <<'EOF',
        location /small/v1/ {
            consent_ingest;
            consent_max_body_size 1k;
            consent_max_event_size 200;
            consent_max_batch_events 3;
        }
EOF
);

# An event of exactly $len bytes.
sub event {
    my ($len, $name, $type) = @_;
    $type //= 'track';
    my $head = qq({"type":"$type","userId":"u1","event":"$name",)
             . '"properties":{"p":"';
    my $tail = '"}}';
    my $pad = $len - length($head) - length($tail);
    die "event of $len bytes too small" if $pad < 0;
    return $head . ('x' x $pad) . $tail;
}

# A batch body of exactly $len bytes holding @ev (padded with a member).
sub batch_of {
    my ($len, @ev) = @_;
    my $head = '{"batch":[' . join(',', @ev) . '],"pad":"';
    my $tail = '"}';
    my $pad = $len - length($head) - length($tail);
    die "batch of $len bytes too small" if $pad < 0;
    return $head . ('y' x $pad) . $tail;
}

# the harness's refused_ok: the error reply, and nothing forwarded
sub refused { return $t->refused_ok(@_) }

sub accepted {
    my ($desc, $path, $body, $nevents) = @_;
    $t->clear;
    ConsentTest::accepted_ok($t->post($path, $body), $desc);
    is(scalar(() = $t->received_events('webhook')), $nevents,
       "$desc: $nevents events forwarded");
}

is(length(event(200, 'e')), 200, 'event() builds exact sizes');

# --- configured limits --------------------------------------------------------

my @three = map { event(150, "s$_") } 1 .. 3;

accepted('body of exactly consent_max_body_size', '/small/v1/batch',
         batch_of(1024, @three), 3);
refused('body one byte over consent_max_body_size', '/small/v1/batch',
        batch_of(1025, @three), 413, 'too_large',
        'request body exceeds 1024 bytes');
refused('single event body over consent_max_body_size', '/small/v1/track',
        '{"userId":"u1","event":"big","properties":{"p":"'
        . ('z' x 2000) . '"}}', 413, 'too_large',
        'request body exceeds 1024 bytes');

{
    $t->clear;
    my $body = batch_of(1500, @three);
    my $res = $t->post_chunked('/small/v1/batch',
                               [substr($body, 0, 700), substr($body, 700)]);
    ConsentTest::reply_is($res, 413, 'too_large',
                          'request body exceeds 1024 bytes',
                          'chunked body over consent_max_body_size');
    $t->nothing_received('chunked body over limit: nothing forwarded');
}

accepted('batch of exactly consent_max_batch_events', '/small/v1/batch',
         '{"batch":[' . join(',', map { event(80, "c$_") } 1 .. 3) . ']}', 3);
refused('batch over consent_max_batch_events', '/small/v1/batch',
        '{"batch":[' . join(',', map { event(80, "c$_") } 1 .. 4) . ']}',
        400, 'too_large', 'batch exceeds 3 events');
refused('batch over consent_max_batch_events, some invalid', '/small/v1/batch',
        '{"batch":[1,2,3,' . event(80, "c4") . ']}',
        400, 'too_large', 'batch exceeds 3 events');

accepted('single event of exactly consent_max_event_size', '/small/v1/track',
         event(200, 'exact'), 1);
refused('single event over consent_max_event_size', '/small/v1/track',
        event(201, 'over'), 400, 'too_large', 'event exceeds 200 bytes');
refused('single identify over consent_max_event_size', '/small/v1/identify',
        event(300, 'over', 'identify'), 400, 'too_large',
        'event exceeds 200 bytes');

{
    my @ev = (event(100, 'b0'), event(201, 'b1'), event(200, 'b2'));
    $t->clear;
    my $res = $t->post('/small/v1/batch', '{"batch":[' . join(',', @ev) . ']}');
    is($res->{status}, 200, 'event over the limit in a batch: 200');
    is_deeply($res->{json}{rejected},
              [{ index => 1, code => 'too_large',
                 message => 'event exceeds 200 bytes' }],
              'event over the limit in a batch: rejected with its index')
        or diag $res->{content};
    is_deeply([$t->received_raw_events('webhook')], [@ev[0, 2]],
              'event over the limit in a batch: the others forwarded');
}

{
    $t->clear;
    my $res = $t->post('/small/v1/batch',
                       '{"batch":[' . event(250, 'x1') . ','
                       . event(201, 'x2') . ']}');
    ConsentTest::reply_is($res, 400, 'no_valid_events', undef,
                          'all events over the limit');
    is_deeply([map { $_->{code} } @{ $res->{json}{rejected} // [] }],
              ['too_large', 'too_large'], 'all over: both too_large');
    $t->nothing_received('all events over the limit: nothing forwarded');
}

# --- defaults: 500k body, 32k event, 2500 events --------------------------------

{
    my @big = map { event(30000, "d$_") } 1 .. 17;
    accepted('body of exactly 500k (default)', '/v1/batch',
             batch_of(500 * 1024, @big), 17);
    refused('body of 500k + 1 (default)', '/v1/batch',
            batch_of(500 * 1024 + 1, @big), 413, 'too_large',
            'request body exceeds 512000 bytes');
}

accepted('event of exactly 32k (default)', '/v1/track', event(32768, 'e32k'),
         1);
refused('event of 32k + 1 (default)', '/v1/track', event(32769, 'e32k1'),
        400, 'too_large', 'event exceeds 32768 bytes');

{
    my $small = '{"type":"track","userId":"u1","event":"n"}';
    accepted('batch of 2500 events (default)', '/v1/batch',
             '{"batch":[' . join(',', ($small) x 2500) . ']}', 2500);
    refused('batch of 2501 events (default)', '/v1/batch',
            '{"batch":[' . join(',', ($small) x 2501) . ']}', 400,
            'too_large', 'batch exceeds 2500 events');
}

$t->stop;
done_testing;
