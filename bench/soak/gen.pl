#!/usr/bin/perl
# bench/soak/gen.pl DIR: writes the soak's request kinds, one raw HTTP/1.1
# request per file (DIR/NAME.req), and DIR/kinds.txt listing "NAME
# EXPECTED" in rotation order.  EXPECTED is the status the kind should
# get; only the dest_fail kind expects a 5xx (a destination answers 503).

use strict;
use warnings;

use IO::Compress::Gzip qw(gzip $GzipError);

my $dir = shift or die "usage: $0 DIR\n";
mkdir $dir;

my $OT = 'OptanonConsent=isGpcEnabled=0&datestamp=Mon+Nov+23+2026'
       . '&version=202409.1.0&interactionCount=1'
       . '&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A0%2CC0004%3A0';

sub prefs {
    my ($c2, $c4) = @_;
    return qq("context":{"consent":{"categoryPreferences":)
         . qq({"C0002":$c2,"C0004":$c4}}});
}

sub event {
    my ($i, $type, %o) = @_;
    my $ev = qq({"type":"$type","userId":"user-$i","messageId":"m-$i",)
           . qq("timestamp":"2026-11-23T10:00:00.000Z",);
    $ev .= qq("event":"Soak Event $i",) if $type eq 'track';
    $ev .= qq("properties":{"plan":"pro","amount":$i.5,"tags":["a","b"],)
         . qq("text":"caf\\u00e9 \\"quoted\\" \\ud83d\\ude00"},);
    $ev .= $o{prefs} // prefs($i % 2 ? 'true' : 'false',
                              $i % 3 ? 'true' : 'false');
    $ev .= qq(,"integrations":{"facebook":false}) if $o{no_fb};
    return $ev . '}';
}

sub batch {
    my (@ev) = @_;
    return '{"batch":[' . join(',', @ev) . '],'
         . '"context":{"library":{"name":"analytics-node","version":"2.1"}},'
         . '"writeKey":"soak-key"}';
}

sub gz {
    my ($data) = @_;
    my $out;
    gzip(\$data => \$out) or die "gzip: $GzipError";
    return $out;
}

my @types = qw(track identify page screen group alias);
my $batch20 = batch(map { event($_, $types[$_ % 6], no_fb => $_ % 5 == 0) }
                    1 .. 20);
my $gz_batch = gz($batch20);

my @kinds = (
    # name, expected, method, path, headers, body
    ['track', 200, 'POST', '/v1/track', {}, event(1, 'track')],
    ['batch', 200, 'POST', '/v1/batch', {}, $batch20],
    ['batch_rejects', 200, 'POST', '/v1/batch', {},
     batch(event(1, 'track'), '{"type":"track","event":"no ids"}',
           event(2, 'identify'), '{"type":"nonsense","userId":"u"}',
           '{"type":"track","userId":"u","event":'
           . '"Segment Consent Preference Updated"}',
           event(3, 'page'))],
    ['text_plain', 200, 'POST', '/v1/identify',
     { 'Content-Type' => 'text/plain' }, event(4, 'identify')],
    ['gzip_batch', 200, 'POST', '/v1/batch',
     { 'Content-Encoding' => 'gzip' }, $gz_batch],
    ['gzip_corrupt', 400, 'POST', '/v1/batch',
     { 'Content-Encoding' => 'gzip' },
     substr($gz_batch, 0, length($gz_batch) - 12)],
    ['gzip_bomb', 413, 'POST', '/v1/track',
     { 'Content-Encoding' => 'gzip' },
     gz('{"userId":"u","event":"' . ('a' x 1_000_000) . '"}')],
    ['malformed', 400, 'POST', '/v1/batch', {},
     substr($batch20, 0, length($batch20) / 2)],
    ['wrong_types', 400, 'POST', '/v1/track', {},
     '{"userId":"u","event":"Segment Consent Preference Updated",'
     . '"context":{"consent":{"categoryPreferences":{"C0002":"yes"}}}}'],
    ['not_object', 400, 'POST', '/v1/batch', {}, '{"batch":{"a":1}}'],
    ['oversized', 413, 'POST', '/v1/batch', {},
     batch(map { event($_, 'track') } 1 .. 400)],
    ['lua_onetrust', 200, 'POST', '/lua/v1/batch', { Cookie => $OT },
     batch(map { event($_, 'track', prefs => '"x":1') } 1 .. 5)],
    ['dest_fail', 502, 'POST', '/fail/v1/track', {}, event(5, 'track')],
    ['preflight', 204, 'OPTIONS', '/v1/track',
     { Origin => 'https://shop.example',
       'Access-Control-Request-Method' => 'POST' }, undef],
    ['unknown_endpoint', 404, 'POST', '/v1/nope', {}, event(6, 'track')],
    ['status', 200, 'GET', '/status', {}, undef],
);

open my $list, '>', "$dir/kinds.txt" or die "$dir/kinds.txt: $!";
for my $k (@kinds) {
    my ($name, $expect, $method, $path, $h, $body) = @$k;
    my %h = (Host => '127.0.0.1', 'X-Soak-Kind' => $name, %$h);
    if (defined $body) {
        $h{'Content-Type'} //= 'application/json';
        $h{'Content-Length'} = length $body;
    }
    my $req = "$method $path HTTP/1.1\r\n";
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    $req .= "\r\n" . ($body // '');
    open my $fh, '>', "$dir/$name.req" or die "$dir/$name.req: $!";
    binmode $fh;
    print {$fh} $req;
    close $fh;
    printf {$list} "%s %d %d\n", $name, $expect, length($body // '');
}
close $list;
