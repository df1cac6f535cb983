# The headers destinations receive: an explicit set (Content-Type, the
# write key's Authorization, User-Agent, X-Forwarded-For / X-Real-IP built
# from the connection), never the end user's Cookie, credentials for a
# proxy or hop-by-hop headers; pass_header= / drop_header= per
# destination.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use IO::Compress::Gzip qw(gzip);
use ConsentTest;

my $t = ConsentTest->new(
    dests => { plain => {}, passing => {}, dropping => {} },
    http  => <<'EOF',
    consent_destination plain    /_dest/plain;
    consent_destination passing  /_dest/passing pass_header=X-Custom
                                 pass_header=cookie pass_header=X-Hop;
    consent_destination dropping /_dest/dropping drop_header=Authorization
                                 drop_header=x-forwarded-for
                                 drop_header=User-Agent;
EOF
);

my $EV = '{"userId":"u1","event":"E"}';

# what every destination gets, whatever the client sent
my %BASE = (
    'content-type' => 'application/json',
    'x-real-ip'    => '127.0.0.1',
);

# [desc, raw request headers, gzip, {dest => {header => value | undef}}]
my @CASES = (
    ['a browser with cookies and a forwarded-for chain',
     "Cookie: sid=secret; OptanonConsent=groups%3DC0002%3A1\r\n"
     . "Authorization: Basic d3JpdGVrZXk6\r\n"
     . "Proxy-Authorization: Basic cHJveHk6cHc=\r\n"
     . "X-Forwarded-For: 203.0.113.7\r\n"
     . "User-Agent: Mozilla/5.0 test\r\n"
     . "Referer: https://shop.example/cart\r\n"
     . "X-Custom: yes\r\n"
     . "Keep-Alive: timeout=5\r\n"
     . "TE: trailers\r\n"
     . "Content-Type: text/plain\r\n",
     0,
     { plain => { authorization => 'Basic d3JpdGVrZXk6',
                  'user-agent' => 'Mozilla/5.0 test',
                  'x-forwarded-for' => '203.0.113.7, 127.0.0.1',
                  cookie => undef, 'proxy-authorization' => undef,
                  referer => undef, 'x-custom' => undef,
                  'keep-alive' => undef, te => undef },
       passing => { authorization => 'Basic d3JpdGVrZXk6',
                    cookie => 'sid=secret; OptanonConsent=groups%3DC0002%3A1',
                    'x-custom' => 'yes', referer => undef,
                    'proxy-authorization' => undef },
       dropping => { authorization => undef, 'user-agent' => undef,
                     'x-forwarded-for' => undef, cookie => undef } }],
    ['no X-Forwarded-For: the connection address alone',
     "User-Agent: analytics-python/2.3.2\r\n", 0,
     { plain => { 'x-forwarded-for' => '127.0.0.1',
                  'user-agent' => 'analytics-python/2.3.2',
                  authorization => undef } }],
    ['two X-Forwarded-For headers, in order',
     "X-Forwarded-For: 10.1.1.1\r\nX-Forwarded-For: 10.2.2.2, 10.3.3.3\r\n",
     0,
     { plain => { 'x-forwarded-for' => '10.1.1.1, 10.2.2.2, 10.3.3.3, '
                                       . '127.0.0.1' } }],
    ['a passed header the client names in Connection is hop-by-hop',
     "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Custom: 2\r\n", 0,
     { passing => { 'x-hop' => undef, 'x-custom' => '2' } }],
    ['the same header outside Connection is passed',
     "X-Hop: 1\r\n", 0, { passing => { 'x-hop' => '1' } }],
    ['a gzip body: destinations get JSON, no Content-Encoding',
     "Content-Encoding: gzip\r\nCookie: a=b\r\n", 1,
     { plain => { 'content-encoding' => undef, cookie => undef } }],
);

for my $c (@CASES) {
    my ($desc, $headers, $gz, $want) = @$c;
    my $body = $EV;
    gzip(\$EV => \$body) if $gz;
    my $close = $headers =~ /^Connection:/mi ? '' : "Connection: close\r\n";
    $t->clear;
    my $res = $t->raw_request("POST /v1/track HTTP/1.1\r\n"
                              . "Host: localhost\r\n$headers"
                              . "Content-Length: " . length($body) . "\r\n"
                              . "$close\r\n$body");
    ConsentTest::accepted_ok($res, $desc);

    for my $d (sort keys %$want) {
        my @r = $t->received($d);
        is(scalar @r, 1, "$desc: $d got one request") or next;
        my $h = $r[0]{headers};
        my %w = (%BASE, %{ $want->{$d} });
        for my $name (sort keys %w) {
            is($h->{$name}, $w{$name},
               "$desc: $d: $name " . ($w{$name} // 'absent'));
        }
        is($r[0]{body}, qq({"batch":[{"type":"track","userId":"u1",)
                        . qq("event":"E"}]}), "$desc: $d: the body");
    }
}

$t->stop;
done_testing;
