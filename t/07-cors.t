# CORS: preflights, Access-Control-Allow-Origin by consent_cors_origins.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => { webhook => {} },
    http  => "    consent_destination webhook /_dest/webhook;\n",
    locations => <<'EOF',
        location /listed/v1/ {
            consent_ingest;
            consent_cors_origins https://a.example https://b.example:8443;
        }
        location /off/v1/ {
            consent_ingest;
            consent_cors_origins off;
        }
EOF
);

my $EV = '{"userId":"u1","event":"cors"}';

sub preflight_ok {
    my ($desc, $res, $origin) = @_;
    is($res->{status}, 204, "$desc: 204");
    is($res->{headers}{'access-control-allow-methods'}, 'POST, OPTIONS',
       "$desc: Allow-Methods");
    is($res->{headers}{'access-control-allow-headers'},
       'Content-Type, Authorization, Content-Encoding',
       "$desc: Allow-Headers");
    is($res->{headers}{'access-control-max-age'}, '86400', "$desc: Max-Age");
    is($res->{headers}{'access-control-allow-origin'}, $origin,
       "$desc: Allow-Origin " . ($origin // 'absent'));
    is($res->{content} // '', '', "$desc: no body");
}

# --- default: * -----------------------------------------------------------

{
    $t->clear;
    my $res = $t->request('OPTIONS', '/v1/track', undef, {
        'Origin' => 'https://site.example',
        'Access-Control-Request-Method' => 'POST',
        'Access-Control-Request-Headers' => 'content-type',
    });
    preflight_ok('default preflight', $res, '*');
    $t->nothing_received('preflight forwards nothing');

    $res = $t->request('OPTIONS', '/v1/batch');
    preflight_ok('default preflight without Origin', $res, '*');
}

{
    my $res = $t->post('/v1/track', $EV, { Origin => 'https://site.example' });
    ConsentTest::accepted_ok($res, 'default POST');
    is($res->{headers}{'access-control-allow-origin'}, '*',
       'default POST: Allow-Origin *');

    $res = $t->post('/v1/track', $EV);
    is($res->{headers}{'access-control-allow-origin'}, '*',
       'default POST without Origin: Allow-Origin *');

    $res = $t->post('/v1/track', '{"event":"no ids"}',
                    { Origin => 'https://site.example' });
    is($res->{status}, 400, 'default refused POST: 400');
    is($res->{headers}{'access-control-allow-origin'}, '*',
       'default refused POST: Allow-Origin * (the browser can read the error)');
}

# --- a list of origins ------------------------------------------------------

{
    my $res = $t->post('/listed/v1/track', $EV,
                       { Origin => 'https://a.example' });
    ConsentTest::accepted_ok($res, 'listed origin');
    is($res->{headers}{'access-control-allow-origin'}, 'https://a.example',
       'listed origin echoed');
    like($res->{headers}{vary} // '', qr/\bOrigin\b/, 'listed origin: Vary');

    $res = $t->post('/listed/v1/track', $EV,
                    { Origin => 'https://b.example:8443' });
    is($res->{headers}{'access-control-allow-origin'},
       'https://b.example:8443', 'second listed origin echoed');

    $res = $t->post('/listed/v1/track', $EV,
                    { Origin => 'https://c.example' });
    ConsentTest::accepted_ok($res, 'unlisted origin still processed');
    ok(!exists $res->{headers}{'access-control-allow-origin'},
       'unlisted origin: no Allow-Origin');

    $res = $t->post('/listed/v1/track', $EV,
                    { Origin => 'https://a.example.evil' });
    ok(!exists $res->{headers}{'access-control-allow-origin'},
       'origin with a listed prefix: no Allow-Origin');

    $res = $t->post('/listed/v1/track', $EV,
                    { Origin => 'https://b.example' });
    ok(!exists $res->{headers}{'access-control-allow-origin'},
       'listed host on another port: no Allow-Origin');

    $res = $t->post('/listed/v1/track', $EV);
    ok(!exists $res->{headers}{'access-control-allow-origin'},
       'no Origin: no Allow-Origin');

    $res = $t->request('OPTIONS', '/listed/v1/track', undef,
                       { Origin => 'https://a.example' });
    preflight_ok('listed preflight', $res, 'https://a.example');

    $res = $t->request('OPTIONS', '/listed/v1/track', undef,
                       { Origin => 'https://c.example' });
    is($res->{status}, 204, 'unlisted preflight: 204');
    ok(!exists $res->{headers}{'access-control-allow-origin'},
       'unlisted preflight: no Allow-Origin');
}

# --- off --------------------------------------------------------------------

{
    my $res = $t->post('/off/v1/track', $EV, { Origin => 'https://a.example' });
    ConsentTest::accepted_ok($res, 'cors off');
    my @cors = grep { /^access-control-/ } keys %{ $res->{headers} };
    is_deeply(\@cors, [], 'cors off: no CORS headers on POST');

    $res = $t->request('OPTIONS', '/off/v1/track', undef,
                       { Origin => 'https://a.example' });
    @cors = grep { /^access-control-/ } keys %{ $res->{headers} };
    is_deeply(\@cors, [], 'cors off: no CORS headers on OPTIONS');
}

$t->stop;
done_testing;
