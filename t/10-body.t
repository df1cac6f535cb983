# Request body handling: bodies spilled to a temporary file, chunked
# bodies, bodies arriving in pieces, content types.

use strict;
use warnings;
use lib 't/lib';

use IO::Socket::INET;
use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => { amplitude => {}, webhook => {} },
    http  => <<'EOF',
    consent_category C0002;
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination webhook   /_dest/webhook;
    client_max_body_size    1m;
    client_body_buffer_size 1k;
    consent_max_body_size   1m;
EOF
    locations => <<'EOF',
        location /mem/v1/ {
            consent_ingest;
            client_body_buffer_size 512k;
        }
EOF
);

sub events {
    my ($count, $tag) = @_;
    return map {
        my $c = $_ % 3 ? 'true' : 'false';
        qq({"type":"track","userId":"u$_","event":"$tag$_","messageId":)
        . qq("$tag-$_","properties":{"pad":") . ('p' x 60) . '"},'
        . qq("context":{"consent":{"categoryPreferences":{"C0002":$c}}}})
    } 1 .. $count;
}

# --- a 100 KB+ body over client_body_buffer_size 1k: spilled to a file -----

{
    my @ev = events(600, 'f');
    my $body = '{"batch":[' . join(',', @ev) . '],"writeKey":"wk"}';
    ok(length($body) > 100_000, 'spilled body is over 100 KB');
    $t->clear;
    my $res = $t->post('/v1/batch', $body);
    ConsentTest::accepted_ok($res, 'body in a temporary file');
    is_deeply([$t->received_raw_events('webhook')], \@ev,
              'temp file: unmapped destination got every event in order');
    is_deeply([$t->received_raw_events('amplitude')],
              [grep { /"C0002":true/ } @ev],
              'temp file: amplitude got exactly the consented events');
    my ($r) = $t->received('webhook');
    like($r->{body}, qr/\],"writeKey":"wk"\}\z/,
         'temp file: top-level members follow the batch');
    like($t->error_log, qr/client request body is buffered to a temporary/,
         'the body was indeed buffered to a temporary file');
}

# --- a body in memory, partly read with the headers ------------------------
# (sent in one write: nginx reads the first bytes of the body into its
# header buffer and the rest into the body buffer; the module joins them)

for my $n (10, 100, 600) {
    my @ev = events($n, "m$n-");
    my $body = '{"batch":[' . join(',', @ev) . '],"writeKey":"wk"}';
    $t->clear;
    my $res = $t->raw_request("POST /mem/v1/batch HTTP/1.1\r\nHost: x\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n" . $body);
    ConsentTest::accepted_ok($res, "in memory, $n events");
    is_deeply([$t->received_raw_events('webhook')], \@ev,
              "in memory, $n events: webhook got every event, byte exact");
    is_deeply([$t->received_raw_events('amplitude')],
              [grep { /"C0002":true/ } @ev],
              "in memory, $n events: amplitude got the consented ones");
}

# --- chunked request bodies ----------------------------------------------------

{
    my @ev = events(5, 'c');
    my $body = '{"batch":[' . join(',', @ev) . ']}';
    # cut inside keys, strings and escapes
    my @chunks = map { substr($body, $_ * 37, 37) }
                 0 .. int((length($body) - 1) / 37);
    $t->clear;
    my $res = $t->post_chunked('/v1/batch', \@chunks);
    is($res->{status}, 200, 'chunked body: 200') or diag $res->{raw};
    is($res->{content}, '{"success":true}', 'chunked body: success');
    is_deeply([$t->received_raw_events('webhook')], \@ev,
              'chunked body: events forwarded byte-identical');
}

{
    my $ev = '{"userId":"u1","event":"one chunk"}';
    $t->clear;
    my $res = $t->post_chunked('/v1/track', [$ev]);
    is($res->{status}, 200, 'chunked single event: 200') or diag $res->{raw};
    is_deeply([$t->received_raw_events('webhook')],
              ['{"type":"track","userId":"u1","event":"one chunk"}'],
              'chunked single event: type inserted');
}

{
    my @ev = events(600, 'cf');
    my $body = '{"batch":[' . join(',', @ev) . ']}';
    my @chunks = map { substr($body, $_ * 4000, 4000) }
                 0 .. int((length($body) - 1) / 4000);
    $t->clear;
    my $res = $t->post_chunked('/v1/batch', \@chunks);
    is($res->{status}, 200, 'large chunked body (temp file): 200')
        or diag $res->{raw};
    is_deeply([$t->received_raw_events('webhook')], \@ev,
              'large chunked body: every event forwarded');
}

{
    $t->clear;
    my $res = $t->post_chunked('/v1/track', ['{"userId":"u1"', ',"ev']);
    is($res->{status}, 400, 'chunked invalid JSON: 400');
    is($res->{json}{code}, 'invalid_json', 'chunked invalid JSON: code');
    $t->nothing_received('chunked invalid JSON: nothing forwarded');
}

# --- a body arriving slowly in pieces -----------------------------------------

{
    my $ev = '{"userId":"u1","event":"slow"}';
    my $req = "POST /v1/track HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            . "Content-Length: " . length($ev) . "\r\n\r\n";
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port, Proto => 'tcp')
        or die "connect: $@";
    $s->autoflush(1);
    $t->clear;
    print {$s} $req;
    # each piece is sent in its own segment; nginx reads what has arrived
    print {$s} substr($ev, 0, 10);
    select(undef, undef, undef, 0.05);
    print {$s} substr($ev, 10);
    local $/;
    my $raw = <$s>;
    close $s;
    my $res = ConsentTest::parse_reply($raw);
    is($res->{status}, 200, 'body in pieces: 200');
    is_deeply([$t->received_raw_events('webhook')],
              ['{"type":"track","userId":"u1","event":"slow"}'],
              'body in pieces: forwarded');
}

# --- content types are not checked --------------------------------------------

for my $ct ('text/plain', 'text/plain;charset=UTF-8',
            'application/x-www-form-urlencoded', undef) {
    my $desc = 'Content-Type ' . ($ct // 'absent');
    my $ev = '{"userId":"u1","event":"ct"}';
    $t->clear;
    my $req = "POST /v1/track HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            . (defined $ct ? "Content-Type: $ct\r\n" : '')
            . "Content-Length: " . length($ev) . "\r\n\r\n" . $ev;
    my $res = $t->raw_request($req);
    is($res->{status}, 200, "$desc: 200");
    is($t->count('webhook'), 1, "$desc: forwarded");
}

# --- HTTP/1.0 and keep-alive clients -----------------------------------------

{
    my $ev = '{"userId":"u1","event":"h10"}';
    $t->clear;
    my $res = $t->raw_request("POST /v1/track HTTP/1.0\r\n"
        . "Content-Length: " . length($ev) . "\r\n\r\n" . $ev);
    is($res->{status}, 200, 'HTTP/1.0 client: 200');
    is($t->count('webhook'), 1, 'HTTP/1.0 client: forwarded');
}

{
    # two requests on one client connection
    my @ev = ('{"userId":"u1","event":"ka1"}', '{"userId":"u1","event":"ka2"}');
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port, Proto => 'tcp')
        or die "connect: $@";
    binmode $s;
    $t->clear;
    my @st;
    for my $i (0, 1) {
        print {$s} "POST /v1/track HTTP/1.1\r\nHost: x\r\n"
                 . ($i ? "Connection: close\r\n" : '')
                 . "Content-Length: " . length($ev[$i]) . "\r\n\r\n" . $ev[$i];
        my $head = '';
        while ($head !~ /\r\n\r\n\z/) {
            my $n = sysread($s, my $c, 1) or last;
            $head .= $c;
        }
        my ($len) = $head =~ /Content-Length:\s*(\d+)/i;
        my $body = '';
        while (defined $len && length($body) < $len) {
            my $n = sysread($s, $body, $len - length $body, length $body)
                or last;
        }
        push @st, ($head =~ m{^HTTP/1\.1 (\d+)})[0] // 0;
    }
    close $s;
    is_deeply(\@st, [200, 200], 'keep-alive client: both requests answered');
    is_deeply([map { $_->{event} } $t->received_events('webhook')],
              ['ka1', 'ka2'], 'keep-alive client: both forwarded');
}

$t->stop;
done_testing;
