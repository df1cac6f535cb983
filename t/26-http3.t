# HTTP/3 (QUIC) clients: the same validation, routing and replies as over
# HTTP/1.1 and HTTP/2 (t/25-http2.t), on a `listen ... quic` listener.
# Runs only where both exist: an nginx built with HTTP/3 (nginx -V has
# --with-http_v3_module: the matrix's 1.26 and 1.30, not bookworm's
# stock 1.22) and an HTTP/3 client, CONSENT_TEST_H3_CURL (a curl whose
# --version lists HTTP3: make matrix sets it to sid's curl, built with
# ngtcp2/nghttp3; bookworm's curl has no HTTP/3).  Skipped otherwise,
# hence in make test.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use IO::Compress::Gzip qw(gzip);
use ConsentTest;

my $CURL = $ENV{CONSENT_TEST_H3_CURL};
plan skip_all => 'no HTTP/3 client (CONSENT_TEST_H3_CURL; make matrix '
               . 'sets it)'
    unless $CURL && -x $CURL && `$CURL --version 2>/dev/null` =~ /\bHTTP3\b/;
plan skip_all => "$ConsentTest::NGINX has no HTTP/3 (--with-http_v3_module)"
    unless `$ConsentTest::NGINX -V 2>&1` =~ /--with-http_v3_module/;

# a self-signed certificate for 127.0.0.1 (QUIC is TLS 1.3 only)
my $dir = tempdir('consent-h3-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
       'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
       '-subj', '/CN=127.0.0.1', '-keyout', "$dir/key.pem",
       '-out', "$dir/cert.pem") == 0
    or plan skip_all => 'openssl cannot make a test certificate';

# the harness holds a port by binding a UDP socket to it (lock_port), the
# very socket a quic listener needs: give it up just before nginx binds
my ($H3, $lock) = ConsentTest::lock_port();
close $lock;

# reuseport: with more than one worker (the harness runs two), nginx
# routes a QUIC connection's packets to its worker only on reuseport
# sockets; without it packets land on the wrong worker ("quic no hs
# keys, ignoring packet"), requests stall and a worker keeps a dead
# connection through a graceful shutdown
my $t = ConsentTest->new(
    dests  => ConsentTest::default_dests(),
    http   => ConsentTest::default_consent(),
    server => "        listen 127.0.0.1:$H3 quic reuseport;\n"
            . "        listen 127.0.0.1:$H3 ssl;\n"
            . "        ssl_certificate $dir/cert.pem;\n"
            . "        ssl_certificate_key $dir/key.pem;\n"
            . "        ssl_protocols TLSv1.2 TLSv1.3;\n",
);

# POSTs $body over HTTP/3 only; returns (HTTP version, status, reply body)
sub h3_post {
    my ($path, $body, @headers) = @_;
    my $f = $t->prefix . '/h3-body';
    open my $fh, '>', $f or die "$f: $!";
    binmode $fh;
    print {$fh} $body;
    close $fh;
    my @cmd = ($CURL, '-sS', '--http3-only', '-k', '--max-time', '20',
               '-o', '-', '-w', '\n%{http_version} %{http_code}',
               '-X', 'POST', '--data-binary', "\@$f",
               map({ ('-H', $_) } @headers),
               "https://127.0.0.1:$H3$path");
    open my $out, '-|', @cmd or die "curl: $!";
    local $/;
    my $text = <$out> // '';
    close $out;
    my ($reply, $ver, $status) = $text =~ /\A(.*)\n(\S+) (\d+)\z/s
        or return ('', 0, $text);
    return ($ver, $status, $reply);
}

my $GRANT = '"context":{"consent":{"categoryPreferences":'
          . '{"C0002":true,"C0004":false}}}';
my $gz;
gzip(\qq({"batch":[{"type":"track","userId":"u1","event":"z1",$GRANT}]})
     => \$gz);

# [desc, path, body, headers, status, reply code or undef, routed event,
#  destinations that get it]
my @CASES = (
    ['single event', '/v1/track',
     qq({"userId":"u1","event":"q1",$GRANT}), [], 200, undef, 'q1',
     [qw(amplitude warehouse webhook)]],
    ['a short path (analytics.js)', '/v1/t',
     qq({"userId":"u1","event":"q2","type":"track"}),
     ['Content-Type: text/plain'], 200, undef, 'q2',
     [qw(amplitude facebook warehouse webhook)]],
    ['a batch', '/v1/batch',
     '{"batch":[' . join(',', map {
         qq({"type":"track","userId":"u$_","event":"b$_",$GRANT}) } 1 .. 300)
     . ']}', [], 200, undef, 'b300', [qw(amplitude warehouse webhook)]],
    ['a gzip batch', '/v1/b', $gz, ['Content-Encoding: gzip'], 200, undef,
     'z1', [qw(amplitude warehouse webhook)]],
    ['invalid JSON', '/v1/track', '{"userId":', [], 400, 'invalid_json',
     undef, []],
    ['a malformed preference event', '/v1/track',
     '{"userId":"u1","event":"Segment Consent Preference Updated"}', [],
     400, 'consent_categorypreferences_should_exist', undef, []],
);

for my $c (@CASES) {
    my ($desc, $path, $body, $headers, $status, $code, $ev, $want) = @$c;
    $t->clear;
    my ($ver, $st, $reply) = h3_post($path, $body, @$headers);
    is($ver, '3', "$desc: answered over HTTP/3") or diag $reply;
    is($st, $status, "$desc: status $status") or diag $reply;
    my $j = eval { ConsentTest::json_decode($reply) };
    ok(ref $j eq 'HASH', "$desc: a JSON reply") or diag $reply;
    if (defined $code) {
        is($j->{code}, $code, "$desc: code $code");
        $t->nothing_received("$desc: nothing forwarded");
    } else {
        ok($j->{success}, "$desc: success");
        is_deeply([$t->routed($ev)], $want, "$desc: routed to @$want");
    }
}

# every event of the 300-event batch, in order, at amplitude
{
    $t->clear;
    my ($ver, $st) = h3_post('/v1/batch', $CASES[2][2]);
    is($st, 200, 'batch again: 200');
    is_deeply([map { $_->{event} } $t->received_events('amplitude')],
              [map { "b$_" } 1 .. 300], 'batch: 300 events, in order');
}

$t->stop;
done_testing;
