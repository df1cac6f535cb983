# Methods and endpoints: only POST (and OPTIONS), the type comes from the
# last path segment (the stock clients' one-letter forms included), other
# paths answer 404 unknown_endpoint; /v1/m (analytics.js telemetry) is
# answered and forwarded nowhere.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => { webhook => {} },
    http  => "    consent_destination webhook /_dest/webhook;\n",
    locations => <<'EOF',
        location /source/a/v1/ {
            consent_ingest;
        }
        location = /exact/track {
            consent_ingest;
        }
        location = /status {
            consent_status;
        }
EOF
);

my $EV = '{"userId":"u1","event":"m"}';

for my $m (qw(GET PUT DELETE PATCH)) {
    $t->clear;
    my $res = $t->request($m, '/v1/track', $m eq 'GET' ? undef : $EV,
                          { 'Content-Type' => 'application/json' });
    ConsentTest::reply_is($res, 405, 'method_not_allowed', undef,
                          "$m /v1/track");
    $t->nothing_received("$m: nothing forwarded");
}

{
    my $res = $t->request('GET', '/v1/batch');
    ConsentTest::reply_is($res, 405, 'method_not_allowed', undef,
                          'GET /v1/batch');
}

for my $path ('/v1/nope', '/v1/', '/v1/tracks', '/v1/Track',
              '/v1/track/extra', '/v1/batch/x', '/v1/x', '/v1/T', '/v1/tt',
              '/v1/t/x', '/v1/telemetry')
{
    $t->refused_ok("POST $path", $path, $EV, 404, 'unknown_endpoint');
}

# the type comes from the last path segment, whatever the prefix
{
    $t->clear;
    ConsentTest::accepted_ok($t->post('/source/a/v1/identify',
                                      '{"userId":"u1","traits":{}}'),
                             'prefixed identify');
    is_deeply([$t->received_raw_events('webhook')],
              ['{"type":"identify","userId":"u1","traits":{}}'],
              'prefixed identify: type identify inserted');

    $t->clear;
    ConsentTest::accepted_ok($t->post('/exact/track', $EV), 'exact location');
    is_deeply([map { $_->{type} } $t->received_events('webhook')], ['track'],
              'exact location: track');
}

# analytics.js's and the mobile SDKs' short paths are the same endpoints:
# [path, body, type forwarded]
my @SHORT = (
    ['/v1/t', '{"userId":"u1","event":"E","type":"track"}', 'track'],
    ['/v1/p', '{"userId":"u1","name":"Home","type":"page"}', 'page'],
    ['/v1/i', '{"userId":"u1","traits":{},"type":"identify"}', 'identify'],
    ['/v1/g', '{"userId":"u1","groupId":"g1","type":"group"}', 'group'],
    ['/v1/a', '{"userId":"u1","previousId":"u0","type":"alias"}', 'alias'],
    ['/v1/s', '{"userId":"u1","name":"Main","type":"screen"}', 'screen'],
    ['/v1/t', '{"userId":"u1","event":"no type"}', 'track'],
    ['/source/a/v1/p', '{"userId":"u1","name":"Home"}', 'page'],
);

for my $c (@SHORT) {
    my ($path, $body, $type) = @$c;
    $t->clear;
    ConsentTest::accepted_ok($t->post($path, $body,
                                      { 'Content-Type' => 'text/plain' }),
                             "POST $path");
    is_deeply([map { $_->{type} } $t->received_events('webhook')], [$type],
              "POST $path: forwarded as $type");
}

# the short path's type is checked like the long one's
$t->refused_ok('type contradicting a short path', '/v1/t',
               '{"userId":"u1","type":"page","name":"x"}', 400,
               'invalid_type');

{
    $t->clear;
    my $res = $t->post('/v1/b', '{"batch":[{"type":"track","userId":"u1",'
                       . '"event":"A"},{"type":"page","userId":"u1"}],'
                       . '"sentAt":"2026-12-06T00:00:00.000Z"}');
    ConsentTest::accepted_ok($res, 'POST /v1/b');
    is_deeply([map { $_->{type} } $t->received_events('webhook')],
              ['track', 'page'], 'POST /v1/b: the batch forwarded');
    $t->refused_ok('empty batch on /v1/b', '/v1/b', '{"batch":[]}', 400,
                   'empty_batch');
}

# telemetry: answered 200, forwarded nowhere, counted; a malformed body
# is no business of ours either
for my $body ('{"series":[{"type":"Counter","metric":"analytics_js.invoke'
              . '.track","value":1,"tags":{}}]}', 'not json', '') {
    $t->clear;
    my $before = $t->metrics->{ngx_consent_telemetry_total};
    my $res = $t->post('/v1/m', $body, { 'Content-Type' => 'text/plain' });
    ConsentTest::accepted_ok($res, "telemetry '" . substr($body, 0, 8) . "'");
    $t->nothing_received('telemetry: nothing forwarded');
    is($t->metrics->{ngx_consent_telemetry_total}, $before + 1,
       'telemetry: counted');
}

{
    my $res = $t->request('GET', '/v1/m');
    ConsentTest::reply_is($res, 405, 'method_not_allowed', undef, 'GET /v1/m');
}

# the query string is not part of the endpoint
{
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/track?writeKey=abc', $EV),
                             'query string');
    is($t->count('webhook'), 1, 'query string: forwarded');
}

# the destinations' internal locations are not reachable from outside
{
    $t->clear;
    my $res = $t->post('/_dest/webhook', '{"batch":[]}');
    is($res->{status}, 404, 'internal destination location: 404');
    $t->nothing_received('internal destination location: not proxied');
}

$t->stop;
done_testing;
