# Where the module decides, every reply is its JSON: also when nginx ends
# an ingest request itself because it could not read the body (malformed
# chunked framing, a chunked body over client_max_body_size).  nginx's own
# replies before the module runs (a bad request line) stay nginx's, and a
# body that never arrives gets no reply at all.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => { webhook => {} },
    http  => "    consent_destination webhook /_dest/webhook;\n",
    locations => <<'EOF',
        location /small/v1/ {
            consent_ingest;
            client_max_body_size 1k;
        }
        location /slow/v1/ {
            consent_ingest;
            client_body_timeout 1s;
        }
        location = /status { consent_status; }
EOF
);

my $EV = '{"userId":"u1","event":"E"}';
my $big = '{"userId":"u1","event":"E","properties":{"p":"' . ('x' x 2000)
        . '"}}';

sub chunked {
    my ($body) = @_;
    return sprintf("%x\r\n%s\r\n0\r\n\r\n", length $body, $body);
}

# [desc, raw request, status, code]
my @CASES = (
    ['malformed chunked framing',
     "POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     . "Connection: close\r\n\r\nzz\r\n$EV\r\n0\r\n\r\n",
     400, 'invalid_body'],
    ['a chunked body over client_max_body_size',
     "POST /small/v1/track HTTP/1.1\r\nHost: x\r\n"
     . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
     . chunked($big),
     413, 'too_large'],
);

for my $c (@CASES) {
    my ($desc, $raw, $status, $code) = @$c;
    $t->clear;
    my $before = $t->metrics->{qq(ngx_consent_rejected_total{code="$code"})}
                 // 0;
    my $res = $t->raw_request($raw);
    ConsentTest::reply_is($res, $status, $code, undef, $desc);
    unlike($res->{content}, qr/<html>/i, "$desc: no HTML page");
    is($res->{headers}{'content-length'}, length $res->{content},
       "$desc: Content-Length of the JSON");
    $t->nothing_received("$desc: nothing forwarded");
    is($t->metrics->{qq(ngx_consent_rejected_total{code="$code"})},
       $before + 1, "$desc: counted under $code");
}

# a body that never arrives: nginx closes without a reply (the client
# is not reading either); the request counts under 408
{
    $t->clear;
    my $before = $t->metrics->{'ngx_consent_requests_total{status="408"}'}
                 // 0;
    my $res = $t->raw_request("POST /slow/v1/track HTTP/1.1\r\nHost: x\r\n"
                              . "Content-Length: 100\r\n\r\n{\"user");
    is($res->{status}, 0, 'body timeout: connection closed, no reply');
    $t->nothing_received('body timeout: nothing forwarded');
    is($t->metrics->{'ngx_consent_requests_total{status="408"}'},
       $before + 1, 'body timeout: counted under 408');
}

# the same request well-formed is accepted
{
    $t->clear;
    my $res = $t->raw_request("POST /v1/track HTTP/1.1\r\nHost: x\r\n"
                              . "Transfer-Encoding: chunked\r\n"
                              . "Connection: close\r\n\r\n" . chunked($EV));
    ConsentTest::accepted_ok($res, 'well-formed chunked body');
    is($t->count('webhook'), 1, 'well-formed chunked body: forwarded');
}

# before the module: nginx's own reply, not claimed by the module
{
    my $res = $t->raw_request("BROKEN\r\n\r\n");
    is($res->{status}, 400, 'bad request line: nginx answers 400');
}

$t->stop;
done_testing;
