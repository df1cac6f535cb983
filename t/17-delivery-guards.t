# Guards on delivery: a destination uri leading back to an ingest location
# (refused by nginx -t where nginx -t can see it, a failed delivery at run
# time where it cannot), and a hook rewrite that grows a batch past
# client_max_body_size (still delivered: the limit is for clients).

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use ConsentTest;

# ---------------------------------------------------------------------
# nginx -t: [desc, http snippet, server snippet, loops?]

my $DEST = "    consent_destination x %s;\n";
my @CONF = (
    ['prefix location', '/v1/x',
     "        location /v1/ { consent_ingest; }\n", 1],
    ['the ingest location itself', '/v1/',
     "        location /v1/ { consent_ingest; }\n", 1],
    ['exact ingest location', '/in',
     "        location /v1/ { consent_ingest; }\n"
     . "        location = /in { consent_ingest; }\n", 1],
    ['a longer prefix wins over the ingest location', '/v1/_dest/x',
     "        location /v1/ { consent_ingest; }\n"
     . "        location /v1/_dest/ { internal; return 204; }\n", 0],
    ['a regex wins over a prefix', '/_dest/x',
     "        location /v1/ { consent_ingest; }\n"
     . "        location /_dest/ { internal; return 204; }\n"
     . "        location ~ ^/_dest/x\$ { consent_ingest; }\n", 1],
    ['^~ keeps the prefix over the regex', '/_dest/x',
     "        location /v1/ { consent_ingest; }\n"
     . "        location ^~ /_dest/ { internal; return 204; }\n"
     . "        location ~ ^/_dest/x\$ { consent_ingest; }\n", 0],
    ['a nested ingest location', '/outer/in/x',
     "        location /v1/ { consent_ingest; }\n"
     . "        location /outer/ { location /outer/in/ { consent_ingest; } }\n",
     1],
    ['an exact location beside an ingest prefix', '/v1/exact',
     "        location /v1/ { consent_ingest; }\n"
     . "        location = /v1/exact { internal; return 204; }\n", 0],
    ['a separate destination location', '/_dest/x',
     "        location /v1/ { consent_ingest; }\n"
     . "        location /_dest/x { internal; return 204; }\n", 0],
);

for my $c (@CONF) {
    my ($desc, $uri, $server, $loops) = @$c;
    my ($rc, $out, $conf) = ConsentTest::nginx_t(sprintf($DEST, $uri),
                                                 server => $server);
    if ($loops) {
        ok($rc != 0, "$desc: nginx -t fails") or diag $out;
        my $dline = ConsentTest::line_of($conf, qr/consent_destination x/);
        like($out, qr/consent_destination "x" \(\Q$conf\E:$dline\): its uri "\Q$uri\E" leads to the consent_ingest location/,
             "$desc: names the destination and its line");
        like($out, qr/used by consent_ingest in \Q$conf\E:\d+/,
             "$desc: names the ingest location's line");
    } else {
        is($rc, 0, "$desc: nginx -t passes") or diag $out;
    }
}

# ---------------------------------------------------------------------
# run time: a rewrite nginx -t cannot follow

my $dir = tempdir('consent-guard-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $hook = "$dir/two.lua";
open my $fh, '>', $hook or die "$hook: $!";
print {$fh} 'return { event = function(ev, req) '
          . "return { C0002 = true, C0004 = true } end }\n";
close $fh;

my $t = ConsentTest->new(
    dests => { webhook => {}, amplitude => {} },
    http  => <<"EOF",
    client_max_body_size    500k;
    client_body_buffer_size 500k;
    consent_max_body_size   500k;
    consent_category C0002;
    consent_category C0004;
    consent_destination webhook   /_dest/webhook;
    consent_destination amplitude /_dest/amplitude C0002 C0004;
EOF
    locations => <<"EOF",
        location /loop/v1/ {
            consent_ingest;
            consent_destination webhook /_dest/webhook;
            consent_destination back    /_dest/back;
        }
        location /_dest/back {
            internal;
            rewrite ^ /v1/track last;
        }
        location /hook/v1/ {
            consent_ingest;
            consent_lua_hook $hook;
        }
EOF
);

{
    $t->clear;
    my $res = $t->post('/loop/v1/track', '{"userId":"u1","event":"L"}');
    ConsentTest::reply_is($res, 502, 'delivery_failed', undef,
                          'a destination rewritten into an ingest location');
    is_deeply($res->{json}{failed}, ['back'], 'loop: the looping one failed');
    is_deeply([$t->routed('L')], ['webhook'],
              'loop: the other destination got the event, once');
    is($t->count('amplitude'), 0, 'loop: no second fan-out');
    my @loop = $t->error_log =~ /^.*leads back to a consent_ingest location.*$/mg;
    is(scalar @loop, 1, 'loop: one error line');
    my @failed = $t->failed_lines('back');
    is(scalar @failed, 1, 'loop: one failed delivery line');
    like($failed[0] // '', qr/status 508/, 'loop: status 508 Loop Detected');
}

# ---------------------------------------------------------------------
# a rewrite grows the batch past client_max_body_size: 2500 events of
# ~200 bytes, each gaining categoryPreferences from the hook

{
    my @ev = map {
        qq({"type":"track","userId":"user-$_","event":"Product Viewed",)
        . qq("messageId":"m-$_","properties":{"sku":"SKU-$_",)
        . qq("price":19.99,"currency":"EUR","list":"search"},)
        . qq("timestamp":"2026-12-06T00:00:00.000Z"})
    } 1 .. 2500;
    my $body = '{"batch":[' . join(',', @ev) . ']}';
    ok(length($body) < 500 * 1024, 'batch under the 500k limits: '
                                   . length($body) . ' bytes');
    $t->clear;
    my $res = $t->post('/hook/v1/batch', $body);
    ConsentTest::accepted_ok($res, 'a rewritten batch past '
                                   . 'client_max_body_size');
    my @got = $t->received('amplitude');
    is(scalar @got, 1, 'rewritten batch: one request');
    my $len = length($got[0]{body} // '');
    ok($len > 500 * 1024, "rewritten batch: forwarded body $len bytes, "
                          . 'over client_max_body_size');
    is(scalar(my @e = $t->received_events('amplitude')), 2500,
       'rewritten batch: every event delivered');
    is($t->count('webhook'), 1, 'rewritten batch: webhook too');
}

$t->stop;
done_testing;
