# Validation at the edge: request-level and event-level refusals, with
# their status, code and message; refused requests forward nothing.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => ConsentTest::default_dests(),
    http  => ConsentTest::default_consent()
           . "    client_max_body_size 1m;\n"
           . "    client_body_buffer_size 1m;\n",
);

my $INVALID_JSON = qr/^invalid JSON at byte \d+: \S/;

# well-formed JSON of the wrong shape has its own message (README)
my %SHAPE = (
    'top-level array'       => 'request body must be a JSON object',
    'top-level string'      => 'request body must be a JSON object',
    'top-level number'      => 'request body must be a JSON object',
    'batch top-level array' => 'request body must be a JSON object',
    'batch not an array'    => '"batch" must be an array of events',
    'batch a string'        => '"batch" must be an array of events',
    'batch missing'         => '"batch" must be an array of events',
    'duplicate batch key'   => 'duplicate key in batch envelope',
);

# the harness's refused_ok: the error reply, and nothing forwarded
sub refused { return $t->refused_ok(@_) }

sub accepted {
    my ($desc, $path, $body) = @_;
    $t->clear;
    my $res = $t->post($path, $body);
    ConsentTest::accepted_ok($res, $desc);
    # no consent object: the event goes everywhere
    is($t->count($_), 1, "$desc: $_ got one request") for $t->dest_names;
    return $res;
}


# --- invalid JSON ---------------------------------------------------------

my @bad_json = (
    ['truncated object',      '/v1/track', '{"userId":"u1","event":"A"'],
    ['truncated string',      '/v1/track', '{"userId":"u1","event":"A'],
    ['trailing garbage',      '/v1/track', '{"userId":"u1","event":"A"} x'],
    ['two objects',           '/v1/track', '{"userId":"u1"}{"userId":"u2"}'],
    ['top-level array',       '/v1/track', '[{"userId":"u1","event":"A"}]'],
    ['top-level string',      '/v1/track', '"hello"'],
    ['top-level number',      '/v1/batch', '42'],
    ['batch top-level array', '/v1/batch',
        '[{"type":"track","userId":"u1","event":"A"}]'],
    ['leading zero',          '/v1/track', '{"userId":"u1","event":"A","n":01}'],
    ['leading zero in batch', '/v1/batch',
        '{"batch":[{"type":"track","userId":"u1","event":"A","n":-012}]}'],
    ['trailing comma',        '/v1/track', '{"userId":"u1","event":"A",}'],
    ['single quotes',         '/v1/track', "{'userId':'u1'}"],
    ['unquoted key',          '/v1/track', '{userId:"u1"}'],
    ['bare word',             '/v1/track', '{"userId":"u1","x":undefined}'],
    ['empty body',            '/v1/track', ''],
    ['only whitespace',       '/v1/track', "  \n "],
    ['BOM',                   '/v1/track', "\xEF\xBB\xBF" . '{"userId":"u1"}'],
    ['raw control character', '/v1/track', qq({"userId":"u1","event":"a\x01b"})],
    ['raw newline in string', '/v1/track', qq({"userId":"u1","event":"a\nb"})],
    ['invalid escape',        '/v1/track', '{"userId":"u1","event":"\\x41"}'],
    ['short \\u escape',      '/v1/track', '{"userId":"u1","event":"\\u12"}'],
    ['overlong UTF-8',        '/v1/track', qq({"userId":"u1","event":"\xC0\xAF"})],
    ['encoded surrogate',     '/v1/track', qq({"userId":"u1","event":"\xED\xA0\x80"})],
    ['above U+10FFFF',        '/v1/track', qq({"userId":"u1","event":"\xF4\x90\x80\x80"})],
    ['lone continuation byte','/v1/track', qq({"userId":"u1","event":"\x80"})],
    ['batch not an array',    '/v1/batch', '{"batch":{"type":"track","userId":"u1"}}'],
    ['batch a string',        '/v1/batch', '{"batch":"[]"}'],
    ['batch missing',         '/v1/batch', '{"type":"track","userId":"u1","event":"A"}'],
    ['duplicate batch key',   '/v1/batch',
        '{"batch":[{"type":"track","userId":"u1","event":"A"}],'
      . '"batch":[{"type":"track","userId":"u2","event":"B"}]}'],
    ['nesting 200 deep',      '/v1/track',
        '{"userId":"u1","properties":' . ('[' x 200) . (']' x 200) . '}'],
);

for my $c (@bad_json) {
    refused("invalid_json: $c->[0]", $c->[1], $c->[2], 400, 'invalid_json',
            $SHAPE{$c->[0]} // $INVALID_JSON);
}

{
    my $res = refused('invalid_json: byte offset of trailing garbage',
                      '/v1/track', '{"userId":"u1"} x', 400, 'invalid_json',
                      $INVALID_JSON);
    my ($n) = ($res->{json}{message} // '') =~ /at byte (\d+)/;
    ok(defined $n && ($n == 16 || $n == 15),
       'invalid_json: offset points at the garbage (byte 15 or 16)')
        or diag $res->{content};
}

# valid JSON corner cases are accepted
accepted('escaped lone surrogate is valid JSON', '/v1/track',
         '{"userId":"u1","event":"lone \ud800 surrogate"}');
accepted('all standard escapes', '/v1/track',
         '{"userId":"u1","event":"esc \" \\\\ \/ \b \f \n \r \t \u00e9"}');
accepted('UTF-8 text', '/v1/track',
         qq({"userId":"u1","event":"caf\xC3\xA9 \xF0\x9F\x8D\xAA"}));
accepted('nesting 100 deep', '/v1/track',
         '{"userId":"u1","event":"deep","properties":'
         . ('[' x 100) . (']' x 100) . '}');
accepted('whitespace around the event', '/v1/track',
         qq( \r\n\t{ "userId" : "u1" , "event" : "ws" } \n));


# --- empty batch ------------------------------------------------------------

refused('empty_batch', '/v1/batch', '{"batch":[]}', 400, 'empty_batch',
        'batch holds no events');
refused('empty_batch with whitespace', '/v1/batch',
        '{"writeKey":"k","batch":[ ]}', 400, 'empty_batch',
        'batch holds no events');
refused('empty_batch on /v1/import', '/v1/import', '{"batch":[]}', 400,
        'empty_batch', 'batch holds no events');


# --- no_user_anon_id ------------------------------------------------------

my $NOID = 'userId or anonymousId is required';
refused('no_user_anon_id: none', '/v1/track', '{"event":"A"}', 400,
        'no_user_anon_id', $NOID);
refused('no_user_anon_id: empty userId', '/v1/track',
        '{"userId":"","event":"A"}', 400, 'no_user_anon_id', $NOID);
refused('no_user_anon_id: null userId', '/v1/identify',
        '{"userId":null}', 400, 'no_user_anon_id', $NOID);
refused('no_user_anon_id: object userId', '/v1/track',
        '{"userId":{"id":"u1"},"event":"A"}', 400, 'no_user_anon_id', $NOID);
refused('no_user_anon_id: boolean anonymousId', '/v1/page',
        '{"anonymousId":true}', 400, 'no_user_anon_id', $NOID);
refused('no_user_anon_id: ids only nested', '/v1/track',
        '{"event":"A","context":{"userId":"u1","anonymousId":"a1"}}', 400,
        'no_user_anon_id', $NOID);

accepted('numeric userId', '/v1/track', '{"userId":42,"event":"A"}');
accepted('anonymousId only', '/v1/track', '{"anonymousId":"a1","event":"A"}');
accepted('empty userId but anonymousId', '/v1/track',
         '{"userId":"","anonymousId":"a1","event":"A"}');


# --- Segment Consent Preference Updated -----------------------------------

my $PU = '"event":"Segment Consent Preference Updated"';

refused('prefs should exist: no context', '/v1/track',
        qq({"userId":"u1",$PU}), 400,
        'consent_categorypreferences_should_exist',
        'context.consent.categoryPreferences object is required');
refused('prefs should exist: empty context', '/v1/track',
        qq({"userId":"u1",$PU,"context":{}}), 400,
        'consent_categorypreferences_should_exist',
        'context.consent.categoryPreferences object is required');
refused('prefs should exist: consent without prefs', '/v1/track',
        qq({"userId":"u1",$PU,"context":{"consent":{"version":1}}}), 400,
        'consent_categorypreferences_should_exist',
        'context.consent.categoryPreferences object is required');
refused('prefs should be object: string', '/v1/track',
        qq({"userId":"u1",$PU,)
        . '"context":{"consent":{"categoryPreferences":"C0002"}}}', 400,
        'consent_categorypreferences_fields_should_be_object',
        'context.consent.categoryPreferences must be an object');
refused('prefs should be object: array', '/v1/track',
        qq({"userId":"u1",$PU,)
        . '"context":{"consent":{"categoryPreferences":[true]}}}', 400,
        'consent_categorypreferences_fields_should_be_object',
        'context.consent.categoryPreferences must be an object');
refused('prefs values should be bool: string', '/v1/track',
        qq({"userId":"u1",$PU,)
        . '"context":{"consent":{"categoryPreferences":'
        . '{"C0002":true,"C0004":"false"}}}}', 400,
        'consent_categorypreferences_fields_should_be_bool',
        'context.consent.categoryPreferences values must be booleans');
refused('prefs values should be bool: number', '/v1/track',
        qq({"userId":"u1",$PU,)
        . '"context":{"consent":{"categoryPreferences":{"C0002":1}}}}', 400,
        'consent_categorypreferences_fields_should_be_bool',
        'context.consent.categoryPreferences values must be booleans');
refused('prefs values should be bool: null', '/v1/track',
        qq({"userId":"u1",$PU,)
        . '"context":{"consent":{"categoryPreferences":{"C0002":null}}}}', 400,
        'consent_categorypreferences_fields_should_be_bool',
        'context.consent.categoryPreferences values must be booleans');
refused('version should be number: string', '/v1/track',
        qq({"userId":"u1",$PU,)
        . '"context":{"consent":{"version":"2",'
        . '"categoryPreferences":{"C0002":true}}}}', 400,
        'consent_version_should_be_number',
        'context.consent.version must be a number');
refused('version should be number: null', '/v1/track',
        qq({"userId":"u1",$PU,)
        . '"context":{"consent":{"version":null,'
        . '"categoryPreferences":{"C0002":true}}}}', 400,
        'consent_version_should_be_number',
        'context.consent.version must be a number');

{
    $t->clear;
    my $res = $t->post('/v1/track', qq({"userId":"u1",$PU,)
        . '"context":{"consent":{"version":2.5,'
        . '"categoryPreferences":{"C0002":true,"C0004":false}}}}');
    ConsentTest::accepted_ok($res, 'valid preference update');
    is_deeply([$t->routed('Segment Consent Preference Updated')],
              [qw(amplitude warehouse webhook)],
              'valid preference update routed by its own consent');
}
{
    $t->clear;
    my $res = $t->post('/v1/track', qq({"userId":"u1",$PU,)
        . '"context":{"consent":{"categoryPreferences":{}}}}');
    ConsentTest::accepted_ok($res, 'preference update with empty prefs');
}

# other events are not subject to the preference checks
{
    $t->clear;
    my $res = $t->post('/v1/track', '{"userId":"u1","event":"Other",'
        . '"context":{"consent":{"version":"x",'
        . '"categoryPreferences":{"C0002":"yes"}}}}');
    ConsentTest::accepted_ok($res, 'other track event with odd prefs');
    is_deeply([$t->routed('Other')], [qw(warehouse webhook)],
              'odd prefs: gated destinations filtered');
}
{
    $t->clear;
    my $res = $t->post('/v1/identify',
                       qq({"userId":"u1",$PU,"context":{}}));
    ConsentTest::accepted_ok($res, 'identify carrying the event name');
}

# in a batch, the batch's consent object counts for the preference checks
{
    $t->clear;
    my $res = $t->post('/v1/batch', '{"batch":['
        . qq({"type":"track","userId":"u1",$PU},)
        . qq({"type":"track","userId":"u2",$PU,"context":{"consent":)
        . '{"categoryPreferences":"no"}}}'
        . '],"context":{"consent":{"categoryPreferences":{"C0002":true}}}}');
    is($res->{status}, 200, 'batch: preference update uses batch consent');
    is_deeply($res->{json}{rejected},
              [{ index => 1,
                 code => 'consent_categorypreferences_fields_should_be_object',
                 message => 'context.consent.categoryPreferences must be '
                          . 'an object' }],
              'batch: event with its own bad prefs rejected')
        or diag $res->{content};
    is(scalar(() = $t->received_events('amplitude')), 1,
       'batch: the valid preference update reached amplitude');
}
{
    $t->clear;
    my $res = $t->post('/v1/batch', '{"batch":['
        . qq({"type":"track","userId":"u1",$PU},)
        . '{"type":"track","userId":"u1","event":"fine"}]}');
    is($res->{status}, 200, 'batch: preference update without any consent');
    is_deeply($res->{json}{rejected},
              [{ index => 0,
                 code => 'consent_categorypreferences_should_exist',
                 message => 'context.consent.categoryPreferences object is '
                          . 'required' }],
              'batch: rejected with should_exist')
        or diag $res->{content};
    is_deeply([$t->routed('fine')], [$t->dest_names],
              'batch: neighbour still forwarded everywhere');
}


# --- invalid_type ---------------------------------------------------------

my $TYPE = 'type is missing, unknown or contradicts the endpoint';

refused('invalid_type: track endpoint, identify type', '/v1/track',
        '{"type":"identify","userId":"u1"}', 400, 'invalid_type', $TYPE);
refused('invalid_type: page endpoint, track type', '/v1/page',
        '{"type":"track","userId":"u1","event":"A"}', 400, 'invalid_type',
        $TYPE);
refused('invalid_type: unknown type on single endpoint', '/v1/track',
        '{"type":"bogus","userId":"u1","event":"A"}', 400, 'invalid_type',
        $TYPE);
refused('invalid_type: type not a string', '/v1/track',
        '{"type":1,"userId":"u1","event":"A"}', 400, 'invalid_type', $TYPE);
refused('invalid_type: type is case-sensitive', '/v1/track',
        '{"type":"Track","userId":"u1","event":"A"}', 400, 'invalid_type',
        $TYPE);

{
    $t->clear;
    my $res = $t->post('/v1/batch', '{"batch":['
        . '{"type":"bogus","userId":"u1","event":"A"},'
        . '{"userId":"u1","event":"B"},'
        . '{"type":"batch","userId":"u1","event":"C"},'
        . '{"type":"track","userId":"u1","event":"D"}]}');
    is($res->{status}, 200, 'invalid_type in batch: 200');
    is_deeply($res->{json}{rejected},
              [map { { index => $_, code => 'invalid_type', message => $TYPE } }
                   0 .. 2],
              'invalid_type in batch: unknown, missing and "batch" rejected')
        or diag $res->{content};
    is_deeply([map { $_->{event} } $t->received_events('webhook')], ['D'],
              'invalid_type in batch: only the valid event forwarded');
}


# --- invalid_event --------------------------------------------------------

{
    $t->clear;
    my $res = $t->post('/v1/batch', '{"batch":[5,"x",[],null,'
        . '{"type":"track","userId":"u1","event":"ok"}]}');
    is($res->{status}, 200, 'invalid_event in batch: 200');
    is_deeply($res->{json}{rejected},
              [map { { index => $_, code => 'invalid_event',
                       message => 'event must be a JSON object' } } 0 .. 3],
              'invalid_event: non-objects rejected')
        or diag $res->{content};
    is_deeply([map { $_->{event} } $t->received_events('webhook')], ['ok'],
              'invalid_event: the object forwarded');
}


# --- duplicate_key --------------------------------------------------------

my $DUP = 'duplicate key in event';
my @dups = (
    ['userId',      '{"userId":"u1","event":"A","userId":"u2"}'],
    ['anonymousId', '{"anonymousId":"a","event":"A","anonymousId":"b"}'],
    ['event',       '{"userId":"u1","event":"A","event":"B"}'],
    ['type',        '{"type":"track","userId":"u1","event":"A","type":"track"}'],
    ['context',     '{"userId":"u1","event":"A","context":{},"context":{}}'],
    ['integrations','{"userId":"u1","event":"A","integrations":{},'
                  . '"integrations":{"amplitude":false}}'],
    ['context.consent', '{"userId":"u1","event":"A","context":'
                  . '{"consent":{},"consent":{}}}'],
    ['context.consentCategories', '{"userId":"u1","event":"A","context":'
                  . '{"consentCategories":{"C0002":false},'
                  . '"consentCategories":{"C0002":true}}}'],
    ['categoryPreferences', '{"userId":"u1","event":"A","context":{"consent":'
                  . '{"categoryPreferences":{"C0002":false},'
                  . '"categoryPreferences":{"C0002":true}}}}'],
    ['context.consent.version', '{"userId":"u1","event":"A","context":'
                  . '{"consent":{"version":1,"version":2,'
                  . '"categoryPreferences":{"C0002":true}}}}'],
    ['escaped userId', '{"userId":"u1","event":"A","user\u0049d":"u2"}'],
    ['escaped categoryPreferences', '{"userId":"u1","event":"A","context":'
                  . '{"consent":{"categoryPreferences":{"C0002":true},'
                  . '"categoryPreferenc\u0065s":{"C0002":false}}}}'],
);
for my $d (@dups) {
    refused("duplicate_key: $d->[0]", '/v1/track', $d->[1], 400,
            'duplicate_key', $DUP);
}

{
    $t->clear;
    my $res = $t->post('/v1/batch', '{"batch":['
        . '{"type":"track","userId":"u1","event":"A","userId":"u2"},'
        . '{"type":"track","userId":"u1","event":"B"}]}');
    is($res->{status}, 200, 'duplicate_key in batch: 200');
    is_deeply($res->{json}{rejected},
              [{ index => 0, code => 'duplicate_key', message => $DUP }],
              'duplicate_key in batch: event rejected')
        or diag $res->{content};
    is_deeply([map { $_->{event} } $t->received_events('webhook')], ['B'],
              'duplicate_key in batch: neighbour forwarded');
}

refused('duplicate top-level context in a batch', '/v1/batch',
        '{"batch":[{"type":"track","userId":"u1","event":"A"}],'
        . '"context":{},"context":{"consent":{"categoryPreferences":{}}}}',
        400, 'invalid_json', undef);

# keys the gateway does not interpret may repeat
accepted('repeated uninterpreted key', '/v1/track',
         '{"userId":"u1","event":"A","properties":{"a":1},"properties":{}}');


$t->stop;
done_testing;
