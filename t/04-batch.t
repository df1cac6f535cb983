# Batches: partial rejection, batch-level context and integrations,
# /v1/import, other top-level members forwarded after the batch array.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => ConsentTest::default_dests(),
    http  => ConsentTest::default_consent(),
);

my $NOID = 'userId or anonymousId is required';
my $TYPE = 'type is missing, unknown or contradicts the endpoint';

sub names { map { $_->{event} // $_->{type} } @_ }

for my $path ('/v1/batch', '/v1/import') {

    # --- mixed valid and invalid events -------------------------------
    {
        my @ev = (
            '{"type":"track","userId":"u1","event":"A"}',
            '{"type":"track","event":"no ids"}',
            '{"type":"identify","anonymousId":"a1","event":"B"}',
            '7',
            '{"type":"nope","userId":"u1","event":"bad type"}',
            '{"type":"page","userId":"u1","event":"C"}',
            '{"type":"track","userId":"u1","userId":"u2","event":"dup"}',
        );
        $t->clear;
        my $res = $t->post($path, '{"batch":[' . join(',', @ev) . ']}');
        is($res->{status}, 200, "$path mixed: 200");
        is(ref $res->{json}, 'HASH', "$path mixed: JSON reply")
            or diag $res->{content};
        ok($res->{json}{success}, "$path mixed: success true");
        is_deeply($res->{json}{rejected}, [
            { index => 1, code => 'no_user_anon_id', message => $NOID },
            { index => 3, code => 'invalid_event',
              message => 'event must be a JSON object' },
            { index => 4, code => 'invalid_type', message => $TYPE },
            { index => 6, code => 'duplicate_key',
              message => 'duplicate key in event' },
        ], "$path mixed: rejected lists index, code, message")
            or diag $res->{content};
        for my $d ($t->dest_names) {
            is($t->count($d), 1, "$path mixed: $d got one request");
            is_deeply([$t->received_raw_events($d)], [@ev[0, 2, 5]],
                      "$path mixed: $d got the valid events in order, "
                      . "byte-identical");
        }
    }

    # --- all invalid ---------------------------------------------------
    {
        $t->clear;
        my $res = $t->post($path, '{"batch":[{"type":"track","event":"x"},'
                                  . '"str",{"userId":"u1","event":"y"}]}');
        ConsentTest::reply_is($res, 400, 'no_valid_events', undef,
                              "$path all invalid");
        is_deeply($res->{json}{rejected}, [
            { index => 0, code => 'no_user_anon_id', message => $NOID },
            { index => 1, code => 'invalid_event',
              message => 'event must be a JSON object' },
            { index => 2, code => 'invalid_type', message => $TYPE },
        ], "$path all invalid: rejected list") or diag $res->{content};
        $t->nothing_received("$path all invalid: nothing forwarded");
    }

    # --- every type is accepted in a batch ------------------------------
    {
        my @ev = map { qq({"type":"$_","userId":"u1","event":"t-$_"}) }
                     qw(track identify page screen group alias);
        $t->clear;
        my $res = $t->post($path, '{"batch":[' . join(',', @ev) . ']}');
        ConsentTest::accepted_ok($res, "$path six types");
        is_deeply([$t->received_raw_events('webhook')], \@ev,
                  "$path six types: all forwarded in order");
    }
}

# --- batch-level context consent --------------------------------------------
{
    my @ev = (
        '{"type":"track","userId":"u1","event":"inherits"}',
        '{"type":"track","userId":"u1","event":"own yes","context":'
          . '{"consent":{"categoryPreferences":{"C0002":true,"C0004":true}}}}',
        '{"type":"track","userId":"u1","event":"own context no consent",'
          . '"context":{"ip":"1.2.3.4"}}',
        '{"type":"track","userId":"u1","event":"own legacy yes","context":'
          . '{"consentCategories":{"C0002":true}}}',
        '{"type":"track","userId":"u1","event":"own consent without prefs",'
          . '"context":{"consent":{"version":1}}}',
        '{"type":"track","userId":"u1","event":"own no","context":'
          . '{"consent":{"categoryPreferences":{"C0002":false}}}}',
    );
    my $body = '{"batch":[' . join(',', @ev) . '],"context":{"consent":'
             . '{"categoryPreferences":{"C0002":false,"C0004":true}}}}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch', $body), 'batch consent');
    is_deeply([names($t->received_events('amplitude'))],
              ['own yes', 'own legacy yes'],
              'batch consent: applies to events without their own; '
              . 'own consent wins');
    is_deeply([names($t->received_events('facebook'))],
              ['inherits', 'own yes', 'own context no consent',
               'own consent without prefs'],
              'batch consent: facebook by batch consent unless own');
    is_deeply([$t->received_raw_events('warehouse')], \@ev,
              'batch consent: enforce=off gets all');
    is_deeply([$t->received_raw_events('webhook')], \@ev,
              'batch consent: unmapped gets all');
}

# batch-level consent via the legacy shape
{
    my $body = '{"batch":[{"type":"track","userId":"u1","event":"L"}],'
             . '"context":{"consentCategories":{"C0002":false,"C0004":true}}}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch', $body), 'batch legacy');
    is_deeply([$t->routed('L')], [qw(facebook warehouse webhook)],
              'batch legacy consentCategories applies');
}

# batch context without consent: events flow everywhere
{
    my $body = '{"batch":[{"type":"track","userId":"u1","event":"N"}],'
             . '"context":{"consent":{}}}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch', $body), 'batch no consent');
    is_deeply([$t->routed('N')], [$t->dest_names],
              'batch context.consent without prefs: no consent');
}

# --- batch-level integrations merge, the event's key wins ------------------
{
    my @ev = (
        '{"type":"track","userId":"u1","event":"plain"}',
        '{"type":"track","userId":"u1","event":"amp on",'
          . '"integrations":{"amplitude":true}}',
        '{"type":"track","userId":"u1","event":"webhook off",'
          . '"integrations":{"webhook":false}}',
        '{"type":"track","userId":"u1","event":"All on",'
          . '"integrations":{"All":true}}',
        '{"type":"track","userId":"u1","event":"fb object",'
          . '"integrations":{"facebook":{"pixel":"1"}}}',
    );
    my $body = '{"batch":[' . join(',', @ev) . '],'
             . '"integrations":{"All":false,"webhook":true,"facebook":false}}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch', $body), 'batch integrations');
    is_deeply([names($t->received_events('webhook'))],
              ['plain', 'amp on', 'All on', 'fb object'],
              'batch integrations: webhook on unless the event turns it off');
    is_deeply([names($t->received_events('amplitude'))], ['amp on', 'All on'],
              'batch integrations: All false, event key wins');
    is_deeply([names($t->received_events('facebook'))], ['fb object'],
              'batch integrations: event object overrides batch false');
    is_deeply([names($t->received_events('warehouse'))], ['All on'],
              'batch integrations: warehouse only where All is on');
}

# batch integrations and consent together
{
    my $body = '{"batch":['
        . '{"type":"track","userId":"u1","event":"X","integrations":'
        . '{"amplitude":true}}],'
        . '"context":{"consent":{"categoryPreferences":{"C0002":false}}},'
        . '"integrations":{"All":false}}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch', $body), 'batch both');
    is_deeply([$t->routed('X')], [],
              'batch: integrations true cannot override batch consent false');
}

# --- other top-level members follow the batch array -------------------------
{
    my @ev = ('{"type":"track","userId":"u1","event":"M1"}',
              '{"type":"track","userId":"u1","event":"M2","integrations":'
              . '{"facebook":false}}');
    my $ctx = '{"library":{"name":"analytics-node","version":"1.0"}}';
    my $body = '{"writeKey":"wk_123",'
             . '"batch":[' . join(',', @ev) . '],'
             . '"sentAt":"2024-05-01T10:00:00.000Z",'
             . '"context":' . $ctx . ','
             . '"integrations":{"Segment.io":{"apiHost":"x"}},'
             . '"metadata":[1,2,{"a":null}]}';
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch', $body), 'members');

    my %want = (webhook => [@ev], facebook => [$ev[0]]);
    for my $d (sort keys %want) {
        my @r = $t->received($d);
        is(scalar @r, 1, "members: $d got one request");
        next unless @r;
        my $fwd = $r[0]{body};
        ok(ref $r[0]{json} eq 'HASH', "members: $d body is valid JSON")
            or diag $fwd;
        my $m = ConsentTest::raw_members($fwd);
        is_deeply([map { $_->[0] } @{ $m // [] }],
                  ['"batch"', '"writeKey"', '"sentAt"', '"context"',
                   '"integrations"', '"metadata"'],
                  "members: $d: batch first, then the others in order");
        my %v = map { $_->[0] => $_->[1] } @{ $m // [] };
        is($v{'"writeKey"'}, '"wk_123"', "members: $d writeKey as received");
        is($v{'"sentAt"'}, '"2024-05-01T10:00:00.000Z"',
           "members: $d sentAt as received");
        is($v{'"context"'}, $ctx, "members: $d context as received");
        is($v{'"integrations"'}, '{"Segment.io":{"apiHost":"x"}}',
           "members: $d integrations as received");
        is($v{'"metadata"'}, '[1,2,{"a":null}]',
           "members: $d metadata as received");
        is($fwd, '{"batch":[' . join(',', @{ $want{$d} }) . '],'
                 . '"writeKey":"wk_123",'
                 . '"sentAt":"2024-05-01T10:00:00.000Z",'
                 . '"context":' . $ctx . ','
                 . '"integrations":{"Segment.io":{"apiHost":"x"}},'
                 . '"metadata":[1,2,{"a":null}]}',
           "members: $d forwarded body exact");
    }
}

# whitespace and formatting inside and between events are kept per event
{
    my @ev = ("{ \"type\" : \"track\",\n  \"userId\":\"u1\", \"event\":\"W1\" }",
              "{\"type\":\"track\",\"userId\":\"u1\",\t\"event\":\"W2\"}");
    my $body = "{\n  \"batch\" : [\n    $ev[0] ,\n    $ev[1]\n  ]\n}\n";
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch', $body), 'pretty batch');
    is_deeply([$t->received_raw_events('webhook')], \@ev,
              'pretty batch: events byte-identical');
    my @r = $t->received('webhook');
    ok(@r && ref $r[0]{json} eq 'HASH',
       'pretty batch: forwarded body is valid JSON');
}

# one request per destination whatever the batch size
{
    my @ev = map { qq({"type":"track","userId":"u$_","event":"n$_",)
                   . '"messageId":"m' . $_ . '"}' } 1 .. 200;
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch',
                                      '{"batch":[' . join(',', @ev) . ']}'),
                             '200 events');
    for my $d ($t->dest_names) {
        is($t->count($d), 1, "200 events: $d got one request");
        is_deeply([$t->received_raw_events($d)], \@ev,
                  "200 events: $d got them all in order");
    }
}

$t->stop;
done_testing;
