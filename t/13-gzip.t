# Content-Encoding: gzip request bodies: inflated before validation and
# routing, forwarded inflated (without the header), bounded by
# consent_max_body_size after inflation; corrupt streams are 400
# invalid_gzip, other codings 415 unsupported_encoding.

use strict;
use warnings;
use lib 't/lib';

use IO::Compress::Gzip qw(gzip $GzipError);
use Test::More;
use ConsentTest;

my $LIMIT = 65536;

my $t = ConsentTest->new(
    dests => ConsentTest::default_dests(),
    http  => ConsentTest::default_consent()
             . "    client_body_buffer_size 1k;\n",
    locations => "        location /small/v1/ {\n"
               . "            consent_ingest;\n"
               . "            consent_max_body_size $LIMIT;\n"
               . "        }\n",
);

sub gz {
    my ($data, %o) = @_;
    my $out;
    gzip(\$data => \$out, Minimal => 1, %o) or die $GzipError;
    return $out;
}

sub track {
    my ($name, $prefs) = @_;
    my $c = $prefs ? qq(,"context":{"consent":{"categoryPreferences":$prefs}})
                   : '';
    return qq({"userId":"u1","event":"$name"$c});
}

sub btrack {
    my $e = track(@_);
    $e =~ s/^\{/{"type":"track",/;
    return $e;
}

my %GZ = ('Content-Encoding' => 'gzip');

# a gzip single event: delivered as if sent plain
{
    $t->clear;
    my $body = track('g1', '{"C0002":true,"C0004":false}');
    ConsentTest::accepted_ok($t->post('/v1/track', gz($body), \%GZ),
                             'gzip track');
    is_deeply([$t->routed('g1')], [qw(amplitude warehouse webhook)],
              'gzip track: routed by the inflated consent');

    my ($r) = $t->received('amplitude');
    ok(!exists $r->{headers}{'content-encoding'},
       'gzip track: destination request has no Content-Encoding')
        or diag "content-encoding: $r->{headers}{'content-encoding'}";
    is($r->{headers}{'content-length'}, length $r->{body},
       'gzip track: Content-Length is the inflated batch length');
    my ($raw) = $t->received_raw_events('amplitude');
    like($raw, qr/"userId":"u1","event":"g1","context":\{"consent":/,
         'gzip track: event forwarded byte for byte from the inflated body');
}

# a gzip batch with filtering, x-gzip, any case, identity
{
    $t->clear;
    my $body = '{"batch":[' . btrack('b1', '{"C0002":false}') . ','
             . btrack('b2', '{"C0002":true}') . '],'
             . '"context":{"library":{"name":"x"}}}';
    ConsentTest::accepted_ok(
        $t->post('/v1/batch', gz($body), { 'Content-Encoding' => 'x-gzip' }),
        'x-gzip batch');
    is_deeply([map { $_->{event} } $t->received_events('amplitude')], ['b2'],
              'x-gzip batch: amplitude got only the consented event');
    is_deeply([map { $_->{event} } $t->received_events('webhook')],
              [qw(b1 b2)], 'x-gzip batch: webhook got both');

    $t->clear;
    ConsentTest::accepted_ok(
        $t->post('/v1/track', gz(track('g2')), { 'Content-Encoding' => 'GZIP' }),
        'GZIP in capitals');
    ConsentTest::accepted_ok(
        $t->post('/v1/track', track('g3', '{"C0002":false}'),
                 { 'Content-Encoding' => 'identity' }),
        'identity');
    is_deeply([$t->routed('g3')], [qw(warehouse webhook)],
              'identity: routed as plain');
}

# gzip members concatenated (gzip allows it); the first buffer is sized by
# the last member's length, so this also grows the output buffer
{
    $t->clear;
    my $body = '{"batch":[' . join(',', map { btrack("m$_") } 1 .. 200)
             . ']}';
    my $cut = length($body) - 3;
    my $two = gz(substr($body, 0, $cut)) . gz(substr($body, $cut));
    ConsentTest::accepted_ok($t->post('/v1/batch', $two, \%GZ),
                             'two gzip members');
    my @e = $t->received_events('webhook');
    is(scalar @e, 200, 'two gzip members: all 200 events delivered');
}

# a body nginx buffers to a temporary file, sent chunked
{
    $t->clear;
    my $body = '{"batch":[' . join(',', map {
        btrack("f$_", '{"C0002":true}') } 1 .. 300) . ']}';
    my $z = gz($body, -Level => 0);
    ok(length $z > 4096, 'temp file: compressed body is larger than the '
                         . '1k body buffer');
    my @chunks = unpack('(a1000)*', $z);
    my $res = $t->post_chunked('/v1/batch', \@chunks, \%GZ);
    ConsentTest::accepted_ok($res, 'gzip in a temp file, chunked');
    my @e = $t->received_events('amplitude');
    is(scalar @e, 300, 'temp file: amplitude got the 300 events');
}

# corrupt streams: 400 invalid_gzip, nothing forwarded
my @BAD;
{
    my $good = gz(track('c1'));

    my $flip = $good;
    substr($flip, 12, 4) = "\xff\xff\xff\xff";
    my $trunc = substr($good, 0, length($good) - 6);
    my $isize = $good;
    substr($isize, -4) = pack('V', 3);
    my $crc = $good;
    substr($crc, -8, 4) = pack('V', 0);

    @BAD = (
        [ 'plain JSON labelled gzip', track('c1'), qr/not a gzip stream/ ],
        [ 'corrupt deflate data', $flip, qr/^invalid gzip body: / ],
        [ 'truncated stream', $trunc, qr/^invalid gzip body: / ],
        [ 'wrong length in trailer', $isize, qr/^invalid gzip body: / ],
        [ 'wrong CRC in trailer', $crc, qr/^invalid gzip body: / ],
        [ 'trailing junk', $good . 'junk', qr/trailing data/ ],
        [ 'empty body', '', qr/not a gzip stream/ ],
    );

    for my $b (@BAD) {
        my ($desc, $body, $msg) = @$b;
        $t->refused_ok($desc, '/v1/track', $body, 400, 'invalid_gzip', $msg,
                       \%GZ);
    }
}

# other codings: 415, nothing forwarded
{
    for my $ce ('br', 'deflate', 'gzip, gzip', 'compress') {
        $t->refused_ok("Content-Encoding: $ce", '/v1/track',
                       gz(track('x')), 415, 'unsupported_encoding', undef,
                       { 'Content-Encoding' => $ce });
    }

    $t->clear;
    my $res = $t->raw_request("POST /v1/track HTTP/1.1\r\nHost: x\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . "Content-Encoding: gzip\r\nContent-Encoding: gzip\r\n"
        . "Content-Length: 2\r\n\r\n{}");
    ConsentTest::reply_is($res, 415, 'unsupported_encoding', undef,
                          'two Content-Encoding headers');
}

# the limit applies after inflation: a bomb is refused without inflating
# past it, a body exactly at the limit is accepted
{
    my $pad = sub {
        my ($name, $size) = @_;
        my $e = track($name, '{"C0002":false}');
        return $e . (' ' x ($size - length $e));
    };

    $t->clear;
    my $at = gz($pad->('atlimit', $LIMIT));
    ok(length $at < 1024, 'at the limit: compressed to under 1k');
    ConsentTest::accepted_ok($t->post('/small/v1/track', $at, \%GZ),
                             'inflates to exactly the limit');
    is_deeply([$t->routed('atlimit')], [qw(warehouse webhook)],
              'at the limit: delivered');

    $t->refused_ok('one byte over the limit', '/small/v1/track',
                   gz($pad->('over', $LIMIT + 1)), 413, 'too_large',
                   "request body inflates to more than $LIMIT bytes", \%GZ);

    # 64 MB of spaces: about 64 KB compressed, refused at the limit
    my $bomb = gz(track('bomb') . (' ' x (64 * 1024 * 1024)));
    ok(length $bomb < 128 * 1024, 'bomb: ' . length($bomb)
                                  . ' bytes compressed');
    $t->refused_ok('gzip bomb (64 MB inflated)', '/v1/track', $bomb, 413,
                   'too_large', qr/inflates to more than/, \%GZ);
}

# one log line per refusal; stop() checks for alerts and crashes
{
    my @lines = $t->error_log =~ /^.*consent: request refused.*$/mg;
    my @gzip = grep { /invalid_gzip/ } @lines;
    is(scalar @gzip, scalar @BAD, 'one log line per corrupt stream');
    is(scalar @lines, scalar(@BAD) + 5 + 2,
       'no other refusal logged for them (415s and 413s aside)')
        or diag join "\n", @lines;
}

$t->stop;

done_testing;
