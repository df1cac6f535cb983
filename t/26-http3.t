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
use ConsentTest;
use ConsentCurl;

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

ConsentCurl::cases_ok($t, sub {
    my ($path, $body, @headers) = @_;
    return ConsentCurl::post($t, [$CURL, '--http3-only', '-k',
                                  '--max-time', '20'],
                             "https://127.0.0.1:$H3$path", $body, @headers);
}, '3', 'q');

$t->stop;
done_testing;
