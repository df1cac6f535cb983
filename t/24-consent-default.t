# consent_default allow | deny: what an event that carries no consent
# gets.  deny routes it as if it carried categoryPreferences {}: gated
# destinations get nothing, unmapped and enforce=off ones still do.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use ConsentTest;

my $dir = tempdir('consent-default-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $keep = "$dir/keep.lua";
open my $fh, '>', $keep or die "$keep: $!";
print {$fh} "return { event = function(ev, req) return nil end }\n";
close $fh;

my $t = ConsentTest->new(
    dests => { amplitude => {}, facebook => {}, warehouse => {},
               webhook => {} },
    http  => ConsentTest::default_consent() . "    consent_default deny;\n",
    locations => <<"EOF",
        location /allow/v1/ {
            consent_ingest;
            consent_default allow;
        }
        location /hook/v1/ {
            consent_ingest;
            consent_lua_hook $keep;
        }
EOF
);

my $NONE = '{"userId":"u1","event":"%s"}';
my $GRANT = '{"userId":"u1","event":"%s","context":{"consent":'
          . '{"categoryPreferences":{"C0002":true,"C0004":true}}}}';

# [desc, path, body template, destinations that get it]
my @CASES = (
    ['deny: no consent', '/v1/track', $NONE, [qw(warehouse webhook)]],
    ['deny: an empty consent object', '/v1/track',
     '{"userId":"u1","event":"%s","context":{"consent":{}}}',
     [qw(warehouse webhook)]],
    ['deny: consent carried', '/v1/track', $GRANT,
     [qw(amplitude facebook warehouse webhook)]],
    ['deny: a hook that leaves the event as is', '/hook/v1/track', $NONE,
     [qw(warehouse webhook)]],
    ['allow in a location', '/allow/v1/track', $NONE,
     [qw(amplitude facebook warehouse webhook)]],
);

my $n = 0;
for my $c (@CASES) {
    my ($desc, $path, $tmpl, $want) = @$c;
    my $name = 'e' . $n++;
    $t->clear;
    ConsentTest::accepted_ok($t->post($path, sprintf($tmpl, $name)), $desc);
    is_deeply([$t->routed($name)], $want, "$desc: routed to @$want");
}

# a batch: the batch's consent still covers its events
{
    $t->clear;
    ConsentTest::accepted_ok($t->post('/v1/batch',
        '{"batch":[{"type":"track","userId":"u1","event":"b1"}],'
        . '"context":{"consent":{"categoryPreferences":{"C0002":true}}}}'),
        'deny: batch consent');
    is_deeply([$t->routed('b1')], [qw(amplitude warehouse webhook)],
              'deny: batch consent applies');
}

$t->stop;

{
    my ($rc, $out) = ConsentTest::nginx_t("    consent_default maybe;\n");
    isnt($rc, 0, 'consent_default maybe: nginx -t fails');
    like($out, qr/invalid value "maybe" in "consent_default" directive, it must be "allow" or "deny"/,
         'consent_default maybe: names the valid values');
    ($rc, $out) = ConsentTest::nginx_t("    consent_default deny;\n"
                                       . "    consent_default allow;\n");
    isnt($rc, 0, 'consent_default twice: nginx -t fails');
    like($out, qr/"consent_default" directive is duplicate/,
         'consent_default twice: duplicate');
}

done_testing;
