# Methods and endpoints: only POST (and OPTIONS), the type comes from the
# last path segment, other paths answer 404 unknown_endpoint.

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
              '/v1/track/extra', '/v1/batch/x')
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
