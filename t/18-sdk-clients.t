# Segment's mobile and server SDKs, unchanged, against the gateway: each
# row posts exactly the request its SDK's HTTP code builds (path, method,
# headers, gzip and chunking, body bytes and envelope), with events in
# the SDK's own serialisation (its separators, escapes, members and their
# order as its event classes declare them), some carrying consent and
# some not.  Per destination: exactly the events the routing rule (SPEC
# section 4) allows, in order, byte-for-byte, with the batch's sentAt and
# writeKey, and the destination header set; the reply the SDK reads.  Then
# the replies that drive each SDK's retry logic (502 on a failed
# destination, 400 when every event is rejected).  docs/clients.md has the
# findings.
#
# Sources read (the request shapes below cite them by repository/path):
#   segmentio/analytics-swift  Sources/Segment/Utilities/Networking/HTTPClient.swift
#                              Sources/Segment/Utilities/Storage/Types/DirectoryStore.swift
#   segmentio/analytics-kotlin core/src/main/java/com/segment/analytics/kotlin/core/HTTPClient.kt
#                              core/src/main/java/com/segment/analytics/kotlin/core/utilities/StorageImpl.kt
#   segmentio/analytics-next   packages/node/src/plugins/segmentio/publisher.ts
#   segmentio/analytics-python segment/analytics/request.py, client.py

use strict;
use warnings;
use lib 't/lib';

use IO::Compress::Gzip qw(gzip $GzipError);
use MIME::Base64 qw(encode_base64);
use Test::More;
use ConsentTest;

my $KEY = 'wk-sdk-test';
my $ALL = [qw(amplitude facebook warehouse webhook)];

# The consent states every SDK sends, with the destinations of
# ConsentTest::default_consent() (amplitude C0002, facebook C0004 (+ C0005
# turned off), warehouse enforce=off, webhook unmapped) each event reaches.
# kind: the event type (mobile SDKs have no page: screen instead).
my @SCENARIOS = (
    { id => 'granted', kind => 'track', prefs => { C0002 => 1, C0004 => 1 },
      to => $ALL },
    { id => 'partial', kind => 'view', prefs => { C0002 => 1, C0004 => 0 },
      to => [qw(amplitude warehouse webhook)] },
    { id => 'noconsent', kind => 'identify', to => $ALL },
    { id => 'empty', kind => 'group', prefs => {},
      to => [qw(warehouse webhook)] },
    { id => 'updated', kind => 'pref', prefs => { C0002 => 0, C0004 => 1 },
      to => [qw(facebook warehouse webhook)] },
    { id => 'nowebhook', kind => 'alias', prefs => { C0002 => 1, C0004 => 1 },
      off => 'webhook', to => [qw(amplitude facebook warehouse)] },
);

# The members of a categoryPreferences object, in a serialiser's
# separators.
sub prefs_json {
    my ($p, $colon, $comma) = @_;
    return join($comma, map { qq("$_"$colon) . ($p->{$_} ? 'true' : 'false') }
                            sort keys %$p);
}

# A JSON object of @m = ([key, raw JSON value], ...) in that order, with
# the separators $ser = [colon, comma].
sub object {
    my ($ser, @m) = @_;
    my ($colon, $comma) = @$ser;
    return '{' . join($comma, map { qq("$_->[0]"$colon$_->[1]) } @m) . '}';
}

sub consent_member {
    my ($sc, $ser) = @_;
    return () unless $sc->{prefs};
    my ($colon, $comma) = @$ser;
    return ['consent', qq({"categoryPreferences"$colon\{)
                       . prefs_json($sc->{prefs}, $colon, $comma) . '}}'];
}

sub integrations {
    my ($sc, $ser) = @_;
    return $sc->{off} ? qq({"$sc->{off}"$ser->[0]false}) : '{}';
}

# type-specific members (the SDK's own names); a mobile SDK has screen
# where the others have page; swift's JSONEncoder writes "/" as "\/"
sub kind_members {
    my ($sc, $ser, $sdk) = @_;
    my ($colon, $comma) = @$ser;
    my $k = $sc->{kind};
    my $url = $sdk->{slash} ? 'https:\\/\\/shop.example\\/c'
                            : 'https://shop.example/c';
    return (['type', '"track"'], ['event', qq("Order $sc->{id}")],
            ['properties', qq({"url"$colon"$url"$comma"total"${colon}9.5})])
        if $k eq 'track';
    return (['type', '"track"'],
            ['event', '"Segment Consent Preference Updated"'],
            ['properties', '{}'])
        if $k eq 'pref';
    return (['type', $sdk->{mobile} ? '"screen"' : '"page"'],
            ['name', '"Home"'], ['properties', '{}'])
        if $k eq 'view';
    return (['type', '"identify"'], ['traits', qq({"plan"$colon"pro"})])
        if $k eq 'identify';
    return (['type', '"group"'], ['groupId', '"g1"'], ['traits', '{}'])
        if $k eq 'group';
    return (['type', '"alias"'], ['previousId', '"anon-1"']);
}

my $TS = '2026-12-06T03:14:46.123Z';

# One SDK: name, path, the raw request headers, how the body is encoded,
# the event serialiser and the batch envelope.
my @SDKS = (
    {
        # analytics-swift: HTTPClient.swift startBatchUpload() posts to
        # "https://\(apiHost)/b" (apiHost "api.segment.io/v1"), headers
        # from configuredRequest(); no Authorization, no gzip.  The body
        # is the batch file DirectoryStore.swift writes line by line:
        # "{ \"batch\": [" then each event (",event" after the first)
        # and "],\"sentAt\":..,\"writeKey\":..}", each line ending "\n".
        # Events: Codable structs (Types.swift TrackEvent...) through
        # JSONEncoder, which escapes "/"; library analytics-swift.
        name => 'analytics-swift',
        path => '/v1/b',
        headers => [
            'Content-Type: application/json; charset=utf-8',
            'User-Agent: analytics-ios/1.9.4',
            'Accept-Encoding: gzip',
            'Accept: */*',                          # URLSession's own
            'Accept-Language: en-GB,en;q=0.9',      # URLSession's own
            'Connection: keep-alive',
        ],
        ua => 'analytics-ios/1.9.4',
        mobile => 1, slash => 1,
        ser => [':', ','],
        event => sub {
            my ($sc, $ser, @kind) = @_;
            my $type = shift @kind;
            return object($ser, $type, ['anonymousId', '"3F2504E0-4F89"'],
                ['messageId', qq("swift-$sc->{id}")],
                ['userId', '"u-swift"'], ['timestamp', qq("$TS")],
                ['context', object($ser, consent_member($sc, $ser),
                    ['library', '{"name":"analytics-swift","version":'
                                . '"1.9.4"}'],
                    ['os', '{"name":"iOS","version":"17.4"}'])],
                ['integrations', integrations($sc, $ser)],
                ['_metadata', '{"bundled":[],"unbundled":[],'
                              . '"bundledIds":[]}'],
                @kind);
        },
        body => sub {
            my ($ev) = @_;
            my $i = 0;
            return qq({ "batch": [\n)
                . join('', map { ($i++ ? ',' : '') . "$_\n" } @$ev)
                . qq(],"sentAt":"$TS","writeKey":"$KEY"}\n);
        },
    },
    {
        # analytics-kotlin: HTTPClient.kt RequestFactory.upload() opens
        # "https://$apiHost/b" with Content-Type text/plain,
        # Content-Encoding gzip (createPostConnection() wraps the stream
        # in GZIPOutputStream) and setChunkedStreamingMode(0): a chunked
        # body; User-Agent analytics-kotlin/VERSION; OkHttp adds Host,
        # Connection and Accept-Encoding.  No Authorization.  Body:
        # StorageImpl.kt begin {"batch":[, events joined by ",", end
        # ],"sentAt":..,"writeKey":..}.  Events: kotlinx.serialization of
        # Events.kt (TrackEvent: properties, event, type, messageId,
        # anonymousId, integrations, context, userId, _metadata,
        # timestamp).
        name => 'analytics-kotlin',
        path => '/v1/b',
        headers => [
            'User-Agent: analytics-kotlin/1.24.1',
            'Content-Type: text/plain',
            'Content-Encoding: gzip',
            'Transfer-Encoding: chunked',
            'Connection: Keep-Alive',               # OkHttp's own
            'Accept-Encoding: gzip',                # OkHttp's own
        ],
        ua => 'analytics-kotlin/1.24.1',
        gzip => 1, chunked => 1, mobile => 1,
        ser => [':', ','],
        event => sub {
            my ($sc, $ser, $type, @kind) = @_;
            # the event class's constructor members come first:
            # TrackEvent(properties, event), ScreenEvent(name, category,
            # properties), IdentifyEvent(userId, traits), GroupEvent(
            # groupId, traits), AliasEvent(userId, previousId); userId is
            # "" when anonymous (identify and alias always have one)
            my %k = map { $_->[0] => $_ } @kind;
            my $t = $type->[1];
            my $uid = ['userId', '"u-kotlin"'];
            my @front = $t eq '"track"' ? @k{qw(properties event)}
                      : $t eq '"screen"' ? ($k{name}, ['category', '""'],
                                            $k{properties})
                      : $t eq '"identify"' ? ($uid, $k{traits})
                      : $t eq '"group"' ? @k{qw(groupId traits)}
                      : ($uid, $k{previousId});
            return object($ser, @front, $type,
                ['messageId', qq("kotlin-$sc->{id}")],
                ['anonymousId', '"9b1deb4d-3b7d"'],
                ['integrations', integrations($sc, $ser)],
                ['context', object($ser,
                    ['library', '{"name":"analytics-kotlin","version":'
                                . '"1.24.1"}'],
                    consent_member($sc, $ser))],
                ($t =~ /identify|alias/ ? () : ['userId', '""']),
                ['_metadata', '{"bundled":[],"unbundled":[],'
                              . '"bundledIds":[]}'],
                ['timestamp', qq("$TS")]);
        },
        body => sub {
            my ($ev) = @_;
            return '{"batch":[' . join(',', @$ev)
                . qq(],"sentAt":"$TS","writeKey":"$KEY"});
        },
    },
    {
        # analytics-node (@segment/analytics-node, analytics-next
        # packages/node): publisher.ts send() posts to host + '/v1/batch'
        # with Content-Type application/json, User-Agent
        # analytics-node-next/latest and Authorization Basic
        # base64(writeKey:); body JSON.stringify({batch, writeKey,
        # sentAt}); no gzip.  fetch (undici) adds the rest.  Events:
        # packages/core events/index.ts normalize() (timestamp,
        # integrations, event, type, properties, context, userId,
        # messageId "node-next-..."), then plugins/segmentio/index.ts
        # sets context.library and _metadata.
        name => 'analytics-node',
        path => '/v1/batch',
        headers => [
            'connection: keep-alive',
            'content-type: application/json',
            'user-agent: analytics-node-next/latest',
            'authorization: Basic ' . encode_base64("$KEY:", ''),
            'accept: */*',
            'accept-language: *',
            'sec-fetch-mode: cors',
            'accept-encoding: gzip, deflate',
        ],
        ua => 'analytics-node-next/latest',
        auth => 'Basic ' . encode_base64("$KEY:", ''),
        ser => [':', ','],
        event => sub {
            my ($sc, $ser, $type, @kind) = @_;
            # track() spreads event before type (core events/index.ts)
            my @members = $kind[0][0] eq 'event'
                        ? (shift @kind, $type, @kind) : ($type, @kind);
            return object($ser, ['timestamp', qq("$TS")],
                ['integrations', integrations($sc, $ser)],
                @members,
                ['context', object($ser, consent_member($sc, $ser),
                    ['library', '{"name":"@segment/analytics-node",'
                                . '"version":"3.1.0"}'])],
                ['userId', '"u-node"'],
                ['messageId', qq("node-next-$sc->{id}")],
                ['_metadata', '{"nodeVersion":"v20.11.0",'
                              . '"jsRuntime":"node"}']);
        },
        body => sub {
            my ($ev) = @_;
            return '{"batch":[' . join(',', @$ev)
                . qq(],"writeKey":"$KEY","sentAt":"$TS"});
        },
    },
    (map {
        my $gz = $_;
        +{
        # analytics-python: request.py post() posts to host + '/v1/batch'
        # with Content-Type application/json and User-Agent
        # analytics-python/VERSION; no Authorization (Basic auth was
        # dropped in 2.3: the write key is the body's writeKey; OAuth
        # adds a Bearer token); Content-Encoding gzip only with
        # gzip=True (default False, client.py).  Body: json.dumps of
        # {batch, sentAt, writeKey} (", " and ": " separators).  Events:
        # client.py (integrations, anonymousId null when not given,
        # properties, timestamp, context with library, userId, type,
        # event, messageId).  requests adds the rest.
        name => 'analytics-python' . ($gz ? ' gzip=True' : ''),
        path => '/v1/batch',
        headers => [
            'User-Agent: analytics-python/2.3.4',
            'Accept-Encoding: gzip, deflate',
            'Accept: */*',
            'Connection: keep-alive',
            'Content-Type: application/json',
            ($gz ? 'Content-Encoding: gzip' : ()),
        ],
        ua => 'analytics-python/2.3.4',
        gzip => $gz,
        ser => [': ', ', '],
        event => sub {
            my ($sc, $ser, $type, @kind) = @_;
            return object($ser,
                ['integrations', integrations($sc, $ser)],
                ['anonymousId', 'null'],
                ['timestamp', '"2026-12-06T03:14:46.123+00:00"'],
                ['context', object($ser, consent_member($sc, $ser),
                    ['library', '{"name": "analytics-python", '
                                . '"version": "2.3.4"}'])],
                ['userId', '"u-python"'], $type, @kind,
                ['messageId', qq("py-$sc->{id}")]);
        },
        body => sub {
            my ($ev) = @_;
            return '{"batch": [' . join(', ', @$ev)
                . '], "sentAt": "2026-12-06T03:14:46.123456+00:00", '
                . qq("writeKey": "$KEY"});
        },
        }
    } 0, 1),
);

sub gzipped {
    my ($data) = @_;
    gzip(\$data => \my $out) or die $GzipError;
    return $out;
}

# The request an SDK sends with $body (plain JSON), as raw bytes.
sub sdk_request {
    my ($t, $sdk, $body) = @_;
    my $data = $sdk->{gzip} ? gzipped($body) : $body;
    my $req = "POST $sdk->{path} HTTP/1.1\r\nHost: 127.0.0.1:"
            . $t->port . "\r\n" . join('', map { "$_\r\n" } @{ $sdk->{headers} });
    if ($sdk->{chunked}) {
        # OkHttp writes the chunks its buffer holds: any split will do
        $req .= "\r\n";
        $req .= sprintf("%x\r\n%s\r\n", length $1, $1)
            while $data =~ /\G(.{1,200})/gs;
        return $req . "0\r\n\r\n";
    }
    return $req . 'Content-Length: ' . length($data) . "\r\n\r\n$data";
}

# The events of an SDK for @SCENARIOS: [raw text, scenario] pairs.
sub sdk_events {
    my ($sdk) = @_;
    my @ev;
    for my $sc (@SCENARIOS) {
        my @kind = kind_members($sc, $sdk->{ser}, $sdk);
        push @ev, [$sdk->{event}->($sc, $sdk->{ser}, @kind), $sc];
    }
    return @ev;
}

my $t = ConsentTest->new(dests => ConsentTest::default_dests(),
                         http => ConsentTest::default_consent());

for my $sdk (@SDKS) {
    my $n = $sdk->{name};
    my @ev = sdk_events($sdk);
    my $body = $sdk->{body}->([map { $_->[0] } @ev]);
    die "$n: the test's body is not JSON: $body"
        unless eval { ConsentTest::json_decode($body) };

    $t->clear;
    my $res = $t->raw_request(sdk_request($t, $sdk, $body));
    ConsentTest::accepted_ok($res, "$n: POST $sdk->{path}");
    like($res->{headers}{'content-type'} // '', qr{^application/json},
         "$n: JSON reply");

    for my $d ($t->dest_names) {
        my @want = map { $_->[0] } grep { grep { $_ eq $d } @{ $_->[1]{to} } }
                   @ev;
        is($t->count($d), 1, "$n: $d got one request");
        is_deeply([$t->received_raw_events($d)], \@want,
                  "$n: $d got its " . scalar(@want) . ' events, in order, '
                  . 'byte for byte');
        my ($r) = $t->received($d);
        next unless $r;
        is($r->{json}{writeKey}, $KEY, "$n: $d: writeKey forwarded");
        ok(defined $r->{json}{sentAt}, "$n: $d: sentAt forwarded");
        my %h = %{ $r->{headers} };
        delete @h{qw(host connection content-length)};
        is_deeply(\%h, {
            'content-type' => 'application/json',
            'user-agent' => $sdk->{ua},
            'x-forwarded-for' => '127.0.0.1', 'x-real-ip' => '127.0.0.1',
            ($sdk->{auth} ? (authorization => $sdk->{auth}) : ()),
        }, "$n: $d: the destination header set") or diag explain \%h;
    }
}

# The largest batch a mobile SDK uploads: StorageImpl.kt (and swift's
# DirectoryStore) closes a file once it has passed MAX_FILE_SIZE 475000
# bytes, so a file under it takes one more event of up to
# MAX_PAYLOAD_SIZE 32000: about 507 KB, within the default
# consent_max_body_size 500k (512000 bytes).
{
    my ($kotlin) = grep { $_->{name} eq 'analytics-kotlin' } @SDKS;
    my $pad = 'x' x 31500;
    my @ev;
    my $size = length '{"batch":[';
    while ($size <= 475000) {
        my $i = @ev;
        push @ev, qq({"properties":{"pad":"$pad"},"event":"big $i",)
                . qq("type":"track","messageId":"big-$i",)
                . qq("anonymousId":"a","userId":""});
        $size += length($ev[-1]) + 1;
    }
    my $body = $kotlin->{body}->(\@ev);
    $t->clear;
    my $res = $t->raw_request(sdk_request($t, $kotlin, $body));
    ConsentTest::accepted_ok($res, 'largest mobile batch ('
                             . length($body) . ' bytes inflated)');
    is(scalar(my @got = $t->received_events('webhook')), scalar @ev,
       'largest mobile batch: every event forwarded');
}

$t->stop;

# The replies that drive the SDKs' retry logic.  A destination that
# fails answers 502 delivery_failed: a 5xx, which every SDK retries
# (swift/kotlin keep the batch file for the next flush, node and python
# back off and retry); python's request.py reads "code" and "message"
# from the JSON.  A batch whose every event is rejected answers 400,
# which every SDK drops without retrying.
{
    my $f = ConsentTest->new(
        dests => { webhook => { status => 503 }, amplitude => {} },
        http  => "    consent_category C0002;\n"
               . "    consent_destination amplitude /_dest/amplitude C0002;\n"
               . "    consent_destination webhook   /_dest/webhook;\n");
    for my $sdk (@SDKS) {
        my $n = $sdk->{name};
        my @ev = map { $_->[0] } sdk_events($sdk);
        my $res = $f->raw_request(sdk_request($f, $sdk,
                                              $sdk->{body}->(\@ev)));
        ConsentTest::reply_is($res, 502, 'delivery_failed', qr/\S/,
                              "$n: a destination answering 503");
        is_deeply($res->{json}{failed}, ['webhook'],
                  "$n: 502 names the failed destination");

        # every event without ids: the SDK's envelope, nothing valid
        my $bad = $sdk->{body}->(['{"type":"track","event":"x"}']);
        $f->clear;
        $res = $f->raw_request(sdk_request($f, $sdk, $bad));
        ConsentTest::reply_is($res, 400, 'no_valid_events', undef,
                              "$n: no valid event");
        is($res->{json}{rejected}[0]{code}, 'no_user_anon_id',
           "$n: 400 lists the rejected event");
        $f->nothing_received("$n: no valid event: nothing forwarded");
    }
    $f->stop;
}

done_testing;
