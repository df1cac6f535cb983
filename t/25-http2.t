# HTTP/2 clients (h2c, prior knowledge, as curl --http2-prior-knowledge
# sends it): the same validation, routing and replies as over HTTP/1.1.
# nginx reads an HTTP/2 request body in its own way (DATA frames, no
# Content-Length required), which the module's body step must join.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;
use ConsentCurl;

my $CURL = '/usr/bin/curl';
plan skip_all => 'curl with HTTP/2 not installed (scripts/deps.sh)'
    unless -x $CURL && `$CURL --version` =~ /\bHTTP2\b/;

my $H2 = ConsentTest::reserve_port();

my $t = ConsentTest->new(
    dests  => ConsentTest::default_dests(),
    http   => ConsentTest::default_consent(),
    server => "        listen 127.0.0.1:$H2 http2;\n",
);

ConsentCurl::cases_ok($t, sub {
    my ($path, $body, @headers) = @_;
    return ConsentCurl::post($t, [$CURL, '--http2-prior-knowledge'],
                             "http://127.0.0.1:$H2$path", $body, @headers);
}, '2', 'h');

$t->stop;
done_testing;
