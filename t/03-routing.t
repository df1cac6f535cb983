# The routing rule, row by row: which destinations receive an event.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my @DESTS = qw(amplitude both facebook social warehouse webhook);

my $t = ConsentTest->new(
    dests => { map { $_ => {} } @DESTS },
    http  => <<'EOF',
    consent_category C0002 "Performance";
    consent_category C0003 "Functional";
    consent_category C0004 "Targeting";
    consent_category C0005 "Social" off;

    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination facebook  /_dest/facebook  C0004 C0005;
    consent_destination both      /_dest/both      C0002 C0004;
    consent_destination social    /_dest/social    C0005;
    consent_destination warehouse /_dest/warehouse C0002 enforce=off;
    consent_destination webhook   /_dest/webhook;
EOF
);

my $n = 0;

# Sends one track event with the given extra members (raw JSON text after
# userId/event) and checks the set of destinations that received it, that
# each got at most one request, and that the event arrived byte-identical.
sub route {
    my ($desc, $members, $expect, $path) = @_;
    $path //= '/v1/track';
    $n++;
    my $name = "ev$n";
    my $event = qq({"type":"track","userId":"u$n","event":"$name")
              . ($members eq '' ? '' : ",$members") . '}';
    $t->clear;
    my $res;
    if ($path eq '/v1/batch') {
        $res = $t->post($path, qq({"batch":[$event]}));
    } else {
        $res = $t->post($path, $event);
    }
    ConsentTest::accepted_ok($res, "$desc ($path)");
    is_deeply([$t->routed($name)], [sort @$expect], "$desc: destinations")
        or diag "event: $event";
    for my $d (@DESTS) {
        my $want = (grep { $_ eq $d } @$expect) ? 1 : 0;
        is($t->count($d), $want, "$desc: $d got $want request(s)")
            unless $want;
        next unless $want;
        is_deeply([$t->received_raw_events($d)], [$event],
                  "$desc: $d got the event byte-identical");
    }
}

sub prefs { '"context":{"consent":{"categoryPreferences":' . $_[0] . '}}' }

my @ALL = @DESTS;
my @UNGATED = qw(social warehouse webhook);   # enforce=off, unmapped, off-only

for my $path ('/v1/track', '/v1/batch') {

    # 1. enforce=off: consent not checked (warehouse is mapped to C0002)
    route('enforce=off gets events even when consent is false',
          prefs('{"C0002":false,"C0003":false,"C0004":false,"C0005":false}'),
          \@UNGATED, $path);

    # 2. no consent object: goes everywhere
    route('no consent object', '', \@ALL, $path);
    route('context without consent', '"context":{"ip":"1.2.3.4"}', \@ALL,
          $path);

    # 3. unmapped destination (webhook) and destination mapped only to an
    #    off category (social) get events with consent false for everything
    route('all false', prefs('{"C0002":false,"C0004":false,"C0005":false}'),
          \@UNGATED, $path);

    # 4. mapped destinations need every enabled category true
    route('all true',
          prefs('{"C0002":true,"C0003":true,"C0004":true,"C0005":true}'),
          \@ALL, $path);
    route('C0002 only true', prefs('{"C0002":true,"C0004":false}'),
          [qw(amplitude social warehouse webhook)], $path);
    route('C0004 only true', prefs('{"C0002":false,"C0004":true}'),
          [qw(facebook social warehouse webhook)], $path);
    route('off category C0005 false does not matter',
          prefs('{"C0002":true,"C0004":true,"C0005":false}'), \@ALL, $path);
    route('missing category', prefs('{"C0004":true}'),
          [qw(facebook social warehouse webhook)], $path);
    route('non-boolean "true"', prefs('{"C0002":"true","C0004":true}'),
          [qw(facebook social warehouse webhook)], $path);
    route('non-boolean 1', prefs('{"C0002":1,"C0004":true}'),
          [qw(facebook social warehouse webhook)], $path);
    route('non-boolean null', prefs('{"C0002":null,"C0004":true}'),
          [qw(facebook social warehouse webhook)], $path);
    route('non-boolean object', prefs('{"C0002":{"v":true},"C0004":true}'),
          [qw(facebook social warehouse webhook)], $path);
    route('empty categoryPreferences {}', prefs('{}'), \@UNGATED, $path);
    route('categoryPreferences a string', prefs('"C0002"'), \@UNGATED, $path);
    route('categoryPreferences an array', prefs('["C0002","C0004"]'),
          \@UNGATED, $path);
    route('categoryPreferences true', prefs('true'), \@UNGATED, $path);
    route('category ids are case-sensitive',
          prefs('{"c0002":true,"C0004":true}'),
          [qw(facebook social warehouse webhook)], $path);
    route('two categories: both need true (one false)',
          prefs('{"C0002":true,"C0004":false}'),
          [qw(amplitude social warehouse webhook)], $path);
    route('duplicate category: true then false is not consent',
          prefs('{"C0002":true,"C0004":true,"C0002":false}'),
          [qw(facebook social warehouse webhook)], $path);
    route('duplicate category: false then true is not consent',
          prefs('{"C0002":false,"C0004":true,"C0002":true}'),
          [qw(facebook social warehouse webhook)], $path);
    route('duplicate category: true twice is consent',
          prefs('{"C0002":true,"C0004":true,"C0002":true}'), \@ALL, $path);
    route('unknown categories are ignored',
          prefs('{"C0002":true,"C0004":true,"C9999":false}'), \@ALL, $path);

    # legacy context.consentCategories
    route('legacy consentCategories',
          '"context":{"consentCategories":{"C0002":true,"C0004":false}}',
          [qw(amplitude social warehouse webhook)], $path);
    route('legacy consentCategories all false',
          '"context":{"consentCategories":{"C0002":false,"C0004":false}}',
          \@UNGATED, $path);
    route('categoryPreferences wins over consentCategories',
          '"context":{"consentCategories":{"C0002":true,"C0004":true},'
          . '"consent":{"categoryPreferences":{"C0002":false,"C0004":true}}}',
          [qw(facebook social warehouse webhook)], $path);

    # context.consent without categoryPreferences: no consent
    route('context.consent {}', '"context":{"consent":{}}', \@ALL, $path);
    route('context.consent with version only',
          '"context":{"consent":{"version":3}}', \@ALL, $path);

    # escaped keys are unescaped before comparison
    route('escaped "categoryPreferenc\\u0065s"',
          '"context":{"consent":{"categoryPreferenc\u0065s":'
          . '{"C0002":false,"C0004":false}}}', \@UNGATED, $path);
    route('escaped "\\u0063ontext" and "c\\u006Fnsent"',
          '"\u0063ontext":{"c\u006Fnsent":{"categoryPreferences":'
          . '{"C0002":false,"C0004":false}}}', \@UNGATED, $path);
    route('escaped category id', prefs('{"C000\u0032":true,"C0004":true}'),
          \@ALL, $path);

    # 5. integrations
    my $yes = prefs('{"C0002":true,"C0004":true}');
    route('integrations "D": false filters even when consented',
          qq($yes,"integrations":{"amplitude":false}),
          [qw(both facebook social warehouse webhook)], $path);
    route('integrations false filters enforce=off destinations too',
          qq($yes,"integrations":{"warehouse":false,"webhook":false}),
          [qw(amplitude both facebook social)], $path);
    route('"All": false filters everything',
          qq($yes,"integrations":{"All":false}), [], $path);
    route('"All": false unless "D": true',
          qq($yes,"integrations":{"All":false,"amplitude":true}),
          [qw(amplitude)], $path);
    route('"All": false, "D" with settings object keeps D on',
          qq($yes,"integrations":{"All":false,"webhook":{"apiKey":"x"}}),
          [qw(webhook)], $path);
    route('"All": false, "D": false stays off',
          qq($yes,"integrations":{"All":false,"webhook":false}), [], $path);
    route('"All": true, "D": false',
          qq($yes,"integrations":{"All":true,"facebook":false}),
          [qw(amplitude both social warehouse webhook)], $path);
    route('only literal false turns off',
          qq($yes,"integrations":{"amplitude":"false","both":0,)
          . '"facebook":null,"social":{},"webhook":[]}', \@ALL, $path);
    route('integrations cannot override consent',
          prefs('{"C0002":false,"C0004":false}')
          . ',"integrations":{"amplitude":true,"facebook":true,"All":true}',
          \@UNGATED, $path);
    route('integrations keys are case-sensitive',
          qq($yes,"integrations":{"Amplitude":false,"all":false}), \@ALL,
          $path);
    route('escaped integration key',
          qq($yes,"integrations":{"ampl\\u0069tude":false}),
          [qw(both facebook social warehouse webhook)], $path);
    route('duplicate integration key: off if any false',
          qq($yes,"integrations":{"webhook":true,"webhook":false}),
          [qw(amplitude both facebook social warehouse)], $path);
    route('duplicate integration key: false then true stays off',
          qq($yes,"integrations":{"webhook":false,"webhook":true}),
          [qw(amplitude both facebook social warehouse)], $path);
    route('integrations without consent object',
          '"integrations":{"All":false,"facebook":true}', [qw(facebook)],
          $path);
    route('integrations not an object is ignored',
          qq($yes,"integrations":false), \@ALL, $path);
}

$t->stop;
done_testing;
