# The requests of t/25-http2.t and t/26-http3.t, one table for both:
# the same validation, routing and replies whatever the HTTP version,
# sent by curl (the HTTP/2 and HTTP/3 clients at hand).

package ConsentCurl;

use strict;
use warnings;

use Test::More;
use IO::Compress::Gzip qw(gzip);
use ConsentTest;

# POSTs $body with curl @$args to $url; returns (HTTP version, status,
# reply body)
sub post {
    my ($t, $args, $url, $body, @headers) = @_;
    my $f = $t->prefix . '/curl-body';
    open my $fh, '>', $f or die "$f: $!";
    binmode $fh;
    print {$fh} $body;
    close $fh;
    my @cmd = (@$args, '-sS', '-o', '-', '-w', '\n%{http_version} %{http_code}',
               '-X', 'POST', '--data-binary', "\@$f",
               map({ ('-H', $_) } @headers), $url);
    open my $out, '-|', @cmd or die "curl: $!";
    local $/;
    my $text = <$out> // '';
    close $out;
    my ($reply, $ver, $status) = $text =~ /\A(.*)\n(\S+) (\d+)\z/s
        or return ('', 0, $text);
    return ($ver, $status, $reply);
}

# the cases; $tag names the single events ("h1", "q1", ...)
# [desc, path, body, headers, status, reply code or undef, routed event,
#  destinations that get it]
sub cases {
    my ($tag) = @_;
    my $grant = '"context":{"consent":{"categoryPreferences":'
              . '{"C0002":true,"C0004":false}}}';
    my $gz;
    gzip(\qq({"batch":[{"type":"track","userId":"u1","event":"z1",$grant}]})
         => \$gz);
    return (
        ['single event', '/v1/track',
         qq({"userId":"u1","event":"${tag}1",$grant}), [], 200, undef,
         "${tag}1", [qw(amplitude warehouse webhook)]],
        ['a short path (analytics.js)', '/v1/t',
         qq({"userId":"u1","event":"${tag}2","type":"track"}),
         ['Content-Type: text/plain'], 200, undef, "${tag}2",
         [qw(amplitude facebook warehouse webhook)]],
        ['a batch', '/v1/batch',
         '{"batch":[' . join(',', map {
             qq({"type":"track","userId":"u$_","event":"b$_",$grant}) }
             1 .. 300)
         . ']}', [], 200, undef, 'b300', [qw(amplitude warehouse webhook)]],
        ['a gzip batch', '/v1/b', $gz, ['Content-Encoding: gzip'], 200,
         undef, 'z1', [qw(amplitude warehouse webhook)]],
        ['invalid JSON', '/v1/track', '{"userId":', [], 400, 'invalid_json',
         undef, []],
        ['a malformed preference event', '/v1/track',
         '{"userId":"u1","event":"Segment Consent Preference Updated"}', [],
         400, 'consent_categorypreferences_should_exist', undef, []],
    );
}

# runs the cases with $post->($path, $body, @headers), each answered over
# HTTP version $ver, then the 300-event batch again: all, in order
sub cases_ok {
    my ($t, $post, $ver, $tag) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @cases = cases($tag);
    for my $c (@cases) {
        my ($desc, $path, $body, $headers, $status, $code, $ev, $want) = @$c;
        $t->clear;
        my ($v, $st, $reply) = $post->($path, $body, @$headers);
        is($v, $ver, "$desc: answered over HTTP/$ver") or diag $reply;
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

    $t->clear;
    my (undef, $st) = $post->('/v1/batch', $cases[2][2]);
    is($st, 200, 'batch again: 200');
    is_deeply([map { $_->{event} } $t->received_events('amplitude')],
              [map { "b$_" } 1 .. 300], 'batch: 300 events, in order');
}

1;
