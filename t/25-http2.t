# HTTP/2 clients (h2c, prior knowledge, as curl --http2-prior-knowledge
# sends it): the same validation, routing and replies as over HTTP/1.1.
# nginx reads an HTTP/2 request body in its own way (DATA frames, no
# Content-Length required), which the module's body step must join.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use IO::Compress::Gzip qw(gzip);
use ConsentTest;

my $CURL = '/usr/bin/curl';
plan skip_all => 'curl with HTTP/2 not installed (scripts/deps.sh)'
    unless -x $CURL && `$CURL --version` =~ /\bHTTP2\b/;

my $H2 = ConsentTest::reserve_port();

my $t = ConsentTest->new(
    dests  => ConsentTest::default_dests(),
    http   => ConsentTest::default_consent(),
    server => "        listen 127.0.0.1:$H2 http2;\n",
);

# POSTs $body over HTTP/2; returns (HTTP version, status, reply body)
sub h2_post {
    my ($path, $body, @headers) = @_;
    my $f = $t->prefix . '/h2-body';
    open my $fh, '>', $f or die "$f: $!";
    binmode $fh;
    print {$fh} $body;
    close $fh;
    my @cmd = ($CURL, '-sS', '--http2-prior-knowledge', '-o', '-',
               '-w', '\n%{http_version} %{http_code}', '-X', 'POST',
               '--data-binary', "\@$f", map({ ('-H', $_) } @headers),
               "http://127.0.0.1:$H2$path");
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
     qq({"userId":"u1","event":"h1",$GRANT}), [], 200, undef, 'h1',
     [qw(amplitude warehouse webhook)]],
    ['a short path (analytics.js)', '/v1/t',
     qq({"userId":"u1","event":"h2","type":"track"}),
     ['Content-Type: text/plain'], 200, undef, 'h2',
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
    my ($ver, $st, $reply) = h2_post($path, $body, @$headers);
    is($ver, '2', "$desc: answered over HTTP/2");
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
    my ($ver, $st) = h2_post('/v1/batch', $CASES[2][2]);
    is($st, 200, 'batch again: 200');
    is_deeply([map { $_->{event} } $t->received_events('amplitude')],
              [map { "b$_" } 1 .. 300], 'batch: 300 events, in order');
}

$t->stop;
done_testing;
