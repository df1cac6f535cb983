# Categories and destinations are inherited as whole lists from http to
# server to location; a level that declares its own replaces them.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

my $HTTP = <<'EOF';
    consent_category C0002 "Performance";
    consent_category C0004 "Targeting";
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination facebook  /_dest/facebook  C0004;
    consent_destination webhook   /_dest/webhook;
EOF

my %DESTS = map { $_ => {} } qw(amplitude facebook warehouse webhook);

my $t = ConsentTest->new(
    dests => \%DESTS,
    http  => $HTTP,
    locations => <<'EOF',
        location /src2/v1/ {
            consent_ingest;
            consent_destination warehouse /_dest/warehouse;
        }
        location /src3/v1/ {
            consent_ingest;
            consent_destination amplitude /_dest/amplitude C0004;
            consent_destination webhook   /_dest/webhook C0002;
        }
        location /src4/v1/ {
            consent_ingest;
            consent_category C0002 "Performance" off;
            consent_category C0004;
        }
        location /src5/ {
            consent_destination facebook /_dest/facebook C0004;
            location /src5/v1/ {
                consent_ingest;
            }
        }
        location /src6/v1/ {
            consent_ingest;
            consent_category C0004;
            consent_category C0009;
            consent_destination amplitude /_dest/amplitude C0009;
        }
EOF
);

my $n = 0;

sub route {
    my ($t, $desc, $path, $prefs, $expect) = @_;
    $n++;
    my $ev = qq({"userId":"u1","event":"i$n")
           . (defined $prefs
              ? qq(,"context":{"consent":{"categoryPreferences":$prefs}})
              : '')
           . '}';
    $t->clear;
    ConsentTest::accepted_ok($t->post($path, $ev), $desc);
    is_deeply([$t->routed("i$n")], [sort @$expect], "$desc: destinations")
        or diag $ev;
}

route($t, 'http level inherited', '/v1/track', '{"C0002":true}',
      [qw(amplitude webhook)]);
route($t, 'http level inherited, no consent', '/v1/track', undef,
      [qw(amplitude facebook webhook)]);

route($t, 'location replaces the destination list', '/src2/v1/track',
      '{"C0002":false,"C0004":false}', [qw(warehouse)]);
route($t, 'location destination list, no consent', '/src2/v1/track', undef,
      [qw(warehouse)]);

route($t, 'location destinations use inherited categories',
      '/src3/v1/track', '{"C0002":false,"C0004":true}', [qw(amplitude)]);
route($t, 'location destinations use inherited categories (2)',
      '/src3/v1/track', '{"C0002":true,"C0004":false}', [qw(webhook)]);

route($t, 'location categories: C0002 turned off', '/src4/v1/track',
      '{"C0002":false,"C0004":false}', [qw(amplitude webhook)]);
route($t, 'location categories: C0004 still enforced', '/src4/v1/track',
      '{"C0002":false,"C0004":true}', [qw(amplitude facebook webhook)]);

route($t, 'nested location inherits its parent location', '/src5/v1/track',
      '{"C0004":true}', [qw(facebook)]);
route($t, 'nested location inherits, consent false', '/src5/v1/track',
      '{"C0004":false}', []);

route($t, 'location categories and destinations', '/src6/v1/track',
      '{"C0009":true}', [qw(amplitude)]);
route($t, 'location categories and destinations, C0009 false',
      '/src6/v1/track', '{"C0009":false,"C0002":true}', []);

$t->stop;


# server level between http and location

my $s = ConsentTest->new(
    dests  => \%DESTS,
    http   => $HTTP,
    server => <<'EOF',
        consent_destination warehouse /_dest/warehouse C0004;
        location /loc/v1/ {
            consent_ingest;
            consent_destination webhook /_dest/webhook;
        }
EOF
);

route($s, 'server replaces http destinations', '/v1/track',
      '{"C0002":true,"C0004":true}', [qw(warehouse)]);
route($s, 'server destination uses http categories', '/v1/track',
      '{"C0002":true,"C0004":false}', []);
route($s, 'location inside the server replaces again', '/loc/v1/track',
      '{"C0004":false}', [qw(webhook)]);

$s->stop;


# nginx -t: unknown categories are checked where the destinations are used

{
    my ($rc, $out, $conf) = ConsentTest::nginx_t($HTTP,
        server => "        location /v1/ {\n"
                . "            consent_ingest;\n"
                . "            consent_category C0004;\n"
                . "        }\n");
    my $line = ConsentTest::line_of($conf, qr/consent_destination amplitude/);
    ok($rc != 0, 'inherited destination with a category missing at the '
                 . 'location: nginx -t fails') or diag $out;
    like($out, qr/C0002/, '... names the category');
    like($out, qr/amplitude/, '... names the destination');
    like($out, qr/\Q$conf\E:$line\b/, "... names $conf:$line");
}

{
    my ($rc, $out) = ConsentTest::nginx_t(
        "    consent_destination amplitude /_dest/amplitude C0009;\n",
        server => "        location /v1/ {\n"
                . "            consent_ingest;\n"
                . "            consent_category C0009;\n"
                . "        }\n");
    is($rc, 0, 'http destination whose category is declared where it is '
               . 'used: nginx -t passes') or diag $out;
}

done_testing;
