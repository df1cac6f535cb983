# The shipped Lua CMP mappings through real nginx, loaded with the default
# consent_lua_path: what each destination receives, including the
# categoryPreferences the mapping wrote into the forwarded event.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use ConsentTest;

my $root = ConsentTest::root();
my $dir = tempdir('consent-map-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# IAB TCF v2: purposes 1,3,9,10 are consented in this published string
my $TC = 'CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAA'
       . 'GQYIAAAAAAEAIAEgAA';

open my $fh, '>', "$dir/tcf.lua" or die $!;
print {$fh} <<'EOF';
return require("consent.tcf").new{
    categories = { C0002 = { 1, 9, 10 }, C0004 = { 1, 2, 3, 4 } },
}
EOF
close $fh;

my $t = ConsentTest->new(
    dests => { map { $_ => {} } qw(amplitude facebook webhook) },
    http  => <<"EOF",
    consent_category C0001;
    consent_category C0002 "Performance";
    consent_category C0003 "Functional";
    consent_category C0004 "Targeting";
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination facebook  /_dest/facebook  C0004;
    consent_destination webhook   /_dest/webhook;
EOF
    locations => <<"EOF",
        location /ot/v1/  { consent_ingest;
                            consent_lua_hook $root/lua/examples/onetrust_gpc.lua; }
        location /tcf/v1/ { consent_ingest; consent_lua_hook $dir/tcf.lua; }
        location /ketch/v1/ { consent_ingest;
                            consent_lua_hook $root/lua/examples/ketch.lua; }
        location /ta/v1/  { consent_ingest;
                            consent_lua_hook $root/lua/examples/trustarc.lua; }
        location /rs/v1/  { consent_ingest;
                            consent_lua_hook $root/lua/examples/rudderstack.lua; }
EOF
);

my $T = JSON::PP::true;
my $F = JSON::PP::false;
sub route { $t->route_prefs(@_) }

my $OT = 'OptanonConsent=isGpcEnabled=0&datestamp=Mon+Nov+23+2026'
       . '&version=202409.1.0&isIABGlobal=false&hosts=&consentId=0b5e'
       . '&interactionCount=1&landingPath=NotLandingPage'
       . '&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A0%2CC0004%3A1';

my $p = route('onetrust: cookie', '/ot/v1/track', '',
              { Cookie => "OptanonAlertBoxClosed=x; $OT" },
              [qw(amplitude facebook webhook)]);
is_deeply($p, { C0001 => $T, C0002 => $T, C0003 => $F, C0004 => $T,
                C0005 => $F },
          'onetrust: groups written as categoryPreferences');

$p = route('onetrust + gpc: Sec-GPC: 1 turns C0004 off', '/ot/v1/track', '',
           { Cookie => $OT, 'Sec-GPC' => '1' }, [qw(amplitude webhook)]);
is($p->{C0004}, $F, 'onetrust + gpc: C0004 false in the forwarded event');

route('onetrust + gpc: Sec-GPC: 0 is not an opt-out', '/ot/v1/track', '',
      { Cookie => $OT, 'Sec-GPC' => '0' }, [qw(amplitude facebook webhook)]);

$p = route('gpc without any consent signal', '/ot/v1/track', '',
           { 'Sec-GPC' => '1' }, [qw(amplitude webhook)]);
is_deeply($p, { C0002 => $T, C0004 => $F },
          'gpc alone: forced false plus assume_granted');

route('no signal at all: event unchanged, everywhere', '/ot/v1/track', '',
      {}, [qw(amplitude facebook webhook)]);

$p = route('onetrust: event activeGroups', '/ot/v1/track',
           '"context":{"consent":{"onetrust":{"activeGroups":",C0001,C0004,"}}}',
           {}, [qw(facebook webhook)]);
is($p->{C0002}, $F, 'onetrust: group missing from activeGroups is false');

$p = route('tcf: euconsent-v2 cookie', '/tcf/v1/track', '',
           { Cookie => "euconsent-v2=$TC" }, [qw(amplitude webhook)]);
is_deeply($p, { C0002 => $T, C0004 => $F },
          'tcf: purposes 1,9,10 consented, 2 and 4 not');

route('tcf: malformed string fails closed', '/tcf/v1/track', '',
      { Cookie => 'euconsent-v2=%%%not-base64' }, [qw(webhook)]);

$p = route('rudderstack: consentManagement', '/rs/v1/track',
           '"context":{"consentManagement":{"provider":"oneTrust",'
           . '"allowedConsentIds":["C0001","C0002"],'
           . '"deniedConsentIds":["C0004"]}}',
           {}, [qw(amplitude webhook)]);
is($p->{C0002}, $T, 'rudderstack: allowed id true');
is($p->{C0004}, $F, 'rudderstack: denied id false');

# {"analytics":{"status":"granted"},"behavioral_advertising":
#  {"status":"granted"}}, base64 by coreutils
my $KETCH = 'eyJhbmFseXRpY3MiOnsic3RhdHVzIjoiZ3JhbnRlZCJ9LCJiZWhhdmlvcmFsX2Fk'
          . 'dmVydGlzaW5nIjp7InN0YXR1cyI6ImdyYW50ZWQifX0=';
$p = route('ketch: _ketch_consent_v1_ cookie', '/ketch/v1/track', '',
           { Cookie => "_ga=GA1.1.2.3; _ketch_consent_v1_=$KETCH" },
           [qw(amplitude webhook)]);
is_deeply($p, { C0001 => $F, C0002 => $T, C0004 => $F },
          'ketch: C0004 needs every mapped purpose');

$p = route('trustarc: notice_gdpr_prefs cookie', '/ta/v1/track', '',
           { Cookie => 'notice_gdpr_prefs=0,1:' }, [qw(webhook)]);
is_deeply($p, { required => $T, functional => $T, advertising => $F },
          'trustarc: levels 0 and 1 consented, gated destinations blocked');

$t->stop;
done_testing;
