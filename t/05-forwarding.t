# Forwarding: body format, type insertion, byte-identical slices, one
# request per destination, none for destinations with nothing, headers.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => { %{ ConsentTest::default_dests() },
               plain => { keepalive => 0 } },   # HTTP/1.0, no keepalive
    http  => ConsentTest::default_consent()
           . "    consent_destination plain /_dest/plain;\n",
);

# --- type insertion on single-event endpoints -------------------------------

for my $type (qw(track identify page screen group alias)) {
    my $ev = qq({"userId":"u1","event":"ins-$type","messageId":"m-$type"});
    (my $want = $ev) =~ s/^\{/{"type":"$type",/;
    $t->clear;
    ConsentTest::accepted_ok($t->post("/v1/$type", $ev), "/v1/$type no type");
    for my $d ($t->dest_names) {
        my @r = $t->received($d);
        is(scalar @r, 1, "/v1/$type: $d got one request");
        is($r[0]{body}, qq({"batch":[$want]}),
           "/v1/$type: $d body is {\"batch\":[event with type inserted]}");
    }

    my $typed = qq({"type":"$type","userId":"u1","event":"typed-$type"});
    $t->clear;
    ConsentTest::accepted_ok($t->post("/v1/$type", $typed), "/v1/$type typed");
    my @r = $t->received('webhook');
    is($r[0]{body}, qq({"batch":[$typed]}),
       "/v1/$type with matching type: byte-identical");
}

# insertion goes right after the opening brace, whitespace kept
{
    my $ev = qq({ \n "userId" : "u1", "event":"ws" }\n);
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/track', $ev), 'spaced event');
    my @r = $t->received('webhook');
    is_deeply([$t->received_raw_events('webhook')],
              [qq({"type":"track", \n "userId" : "u1", "event":"ws" })],
              'spaced event: "type":"track", inserted after the brace, '
              . 'rest byte-identical');
    ok(ref $r[0]{json} eq 'HASH', 'spaced event: valid JSON');
    is($r[0]{json}{batch}[0]{type}, 'track', 'spaced event: type track');
}

# type later in the object: not inserted again
{
    my $ev = '{"userId":"u1","event":"late","type":"track"}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/track', $ev), 'late type');
    is_deeply([$t->received_raw_events('webhook')], [$ev],
              'type as the last member: byte-identical');
}

# --- bytes are preserved ----------------------------------------------------

{
    my $ev = qq({"type":"track","userId":"u\\u00e9","event":"caf\xC3\xA9 )
           . qq(\\u00e9 \\/ \\" \\\\ \\ud83c\\udf6a \xF0\x9F\x8D\xAA",)
           . '"properties":{"n":-1.5e+10,"z":0,"f":[true,false,null],'
           . '"o":{},"a":[],"s":""},"context":{"ip":"::1"}}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/track', $ev), 'odd bytes');
    is_deeply([$t->received_raw_events($_)], [$ev],
              "escapes, UTF-8 and numbers byte-identical at $_")
        for $t->dest_names;
    my @r = $t->received('webhook');
    is($r[0]{body}, qq({"batch":[$ev]}), 'odd bytes: exact body');
}

# a large event (under the 32k default) survives intact
{
    my $pad = join '', map { chr(97 + $_ % 26) } 0 .. 30000;
    my $ev = qq({"type":"track","userId":"u1","event":"big",)
           . qq("properties":{"pad":"$pad"}});
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/track', $ev), 'large event');
    is_deeply([$t->received_raw_events('amplitude')], [$ev],
              'large event byte-identical');
}

# --- who gets a request ----------------------------------------------------

{
    my $ev = '{"userId":"u1","event":"only webhook",'
           . '"integrations":{"All":false,"webhook":true}}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/track', $ev), 'only webhook');
    is($t->count('webhook'), 1, 'only webhook: webhook got one request');
    is($t->count($_), 0, "only webhook: $_ got no request at all")
        for grep { $_ ne 'webhook' } $t->dest_names;
}

{
    my $ev = '{"userId":"u1","event":"nobody",'
           . '"integrations":{"All":false}}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/track', $ev), 'nobody');
    $t->nothing_received('integrations All false: no request anywhere');
}

{
    # facebook's events are all filtered: it gets no request, even an
    # empty batch
    my @ev = map {
        qq({"type":"track","userId":"u1","event":"c$_","context":)
        . '{"consent":{"categoryPreferences":{"C0002":true,"C0004":false}}}}'
    } 1 .. 3;
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch',
                                      '{"batch":[' . join(',', @ev) . ']}'),
                             'filtered for facebook');
    is($t->count('facebook'), 0, 'facebook gets no request for 0 events');
    is($t->count($_), 1, "$_ gets exactly one request for 3 events")
        for qw(amplitude warehouse webhook plain);
}

# --- request details at the destination ---------------------------------

{
    my $ev = '{"userId":"u1","event":"hdr"}';
    $t->clear;
    my $res = $t->post('/v1/track', $ev, {
        'Authorization' => 'Basic d3JpdGVrZXk6',
        'Content-Type'  => 'text/plain',
        'X-Custom'      => 'kept',
    });
    ConsentTest::accepted_ok($res, 'headers');
    for my $d ($t->dest_names) {
        my ($r) = $t->received($d);
        is($r->{method}, 'POST', "headers: $d got a POST");
        is($r->{uri}, "/$d", "headers: $d got its upstream URI");
        is($r->{headers}{authorization}, 'Basic d3JpdGVrZXk6',
           "headers: $d got Authorization");
        is($r->{headers}{'content-type'}, 'application/json',
           "headers: $d got Content-Type application/json");
        is($r->{headers}{'content-length'}, length($r->{body}),
           "headers: $d Content-Length matches the body");
        is($r->{body}, '{"batch":[{"type":"track","userId":"u1",'
                     . '"event":"hdr"}]}', "headers: $d body");
    }
}

# the reply is JSON
{
    my $res = $t->post('/v1/track', '{"userId":"u1","event":"ct"}');
    like($res->{headers}{'content-type'}, qr{^application/json},
         'success reply is application/json');
}

# many requests over kept-alive upstream connections
{
    $t->clear;
    my $ok = 0;
    for my $i (1 .. 40) {
        my $res = $t->post('/v1/track', qq({"userId":"u1","event":"k$i"}));
        $ok++ if $res->{status} == 200;
    }
    is($ok, 40, '40 sequential requests answered 200');
    for my $d ($t->dest_names) {
        is_deeply([map { $_->{event} } $t->received_events($d)],
                  [map { "k$_" } 1 .. 40], "40 requests: $d got all in order");
    }
}

$t->stop;
done_testing;
