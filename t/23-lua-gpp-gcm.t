# The IAB GPP and Google Consent Mode mappings through real nginx, loaded
# with the default consent_lua_path: what each destination receives,
# including the categoryPreferences written into the forwarded event.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $root = ConsentTest::root();

my $t = ConsentTest->new(
    dests => { map { $_ => {} } qw(amplitude facebook sensitive webhook) },
    http  => <<"EOF2",
    consent_category C0002 "Performance";
    consent_category C0004 "Targeting";
    consent_category C0005 "Sensitive data";
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination facebook  /_dest/facebook  C0004;
    consent_destination sensitive /_dest/sensitive C0005;
    consent_destination webhook   /_dest/webhook;
EOF2
    locations => <<"EOF2",
        location /gpp/v1/ { consent_ingest;
                            consent_lua_hook $root/lua/examples/gpp.lua; }
        location /gcm/v1/ { consent_ingest;
                            consent_lua_hook $root/lua/examples/gcm.lua; }
EOF2
);

my $T = JSON::PP::true;
my $F = JSON::PP::false;
sub route { $t->route_prefs(@_) }

# --- IAB GPP (strings from IAB Tech Lab's reference library tests; see
# t/lua/test_gpp.lua for their field-by-field decoding)

# usnat: did not opt out of anything
my $p = route('gpp: __gpp cookie, no opt-out', '/gpp/v1/track', '',
              { Cookie => '__gpp=DBABLA~CVQqAAAACg; __gpp_sid=7' },
              [qw(facebook sensitive webhook)]);
is_deeply($p, { C0004 => $T, C0005 => $T },
          'gpp: no opt-out, categories true');

# usnat: opted out of sale, sharing and targeted advertising, GPC set,
# no consent for some sensitive data
$p = route('gpp: opted out', '/gpp/v1/track', '',
           { Cookie => '__gpp=DBABLA~CVVVkkkkkpFY.YA' }, [qw(webhook)]);
is_deeply($p, { C0004 => $F, C0005 => $F }, 'gpp: opt-outs written');

$p = route('gpp: event context.consent.gpp with applicableSections',
           '/gpp/v1/track',
           '"context":{"consent":{"gpp":{"gppString":"DBABLA~CVQqAAAACg",'
           . '"applicableSections":[7]}}}',
           { Cookie => '__gpp=DBABLA~CVVVkkkkkpFY.YA' },
           [qw(facebook sensitive webhook)]);
is($p->{C0004}, $T, 'gpp: the event string wins over the cookie');

route('gpp: malformed string fails closed', '/gpp/v1/track', '',
      { Cookie => '__gpp=DBABLA~CVV*kkkkkpFY' }, [qw(webhook)]);

route('gpp: no string, event unchanged', '/gpp/v1/track', '', {},
      [qw(amplitude facebook sensitive webhook)]);

# --- Google Consent Mode

$p = route('gcm: gtag state object', '/gcm/v1/track',
           '"context":{"consent":{"gcm":{"ad_storage":"granted",'
           . '"analytics_storage":"granted","ad_user_data":"denied",'
           . '"ad_personalization":"granted"}}}',
           {}, [qw(amplitude webhook)]);
is_deeply($p, { C0002 => $T, C0004 => $F },
          'gcm: C0004 needs ad_user_data too');

$p = route('gcm: gcs G110', '/gcm/v1/track',
           '"context":{"consent":{"gcm":"G110"}}', {}, [qw(webhook)]);
is_deeply($p, { C0002 => $F, C0004 => $F },
          'gcm: analytics denied, ad_user_data not in gcs: denied');

$p = route('gcm: gcd all granted on update', '/gcm/v1/track',
           '"context":{"consent":{"gcm":"13r3r3r3r5"}}', {},
           [qw(amplitude facebook webhook)]);
is_deeply($p, { C0002 => $T, C0004 => $T }, 'gcm: gcd decoded');

route('gcm: undocumented gcd letter fails closed', '/gcm/v1/track',
      '"context":{"consent":{"gcm":"13x3r3r3r5"}}', {}, [qw(webhook)]);

$t->stop;
done_testing;
