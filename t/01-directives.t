# nginx -t on valid and invalid consent configurations: failures name the
# file and line and say what is wrong.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use ConsentTest;

# Runs nginx -t; expects failure at the line matching $marker with an
# output matching every regexp of $what.
sub fails_at {
    my ($desc, $http, $marker, $what, %o) = @_;
    my ($rc, $out, $conf) = ConsentTest::nginx_t($http, %o);
    my $line = ConsentTest::line_of($conf, $marker);
    ok($rc != 0, "$desc: nginx -t fails") or diag $out;
    ok(defined $line, "$desc: marker found in config");
    like($out, qr/\[emerg\]/, "$desc: emerg message");
    like($out, qr/\Q$conf\E:\Q@{[ $line \/\/ 0 ]}\E\b/,
         "$desc: names $conf:" . ($line // '?'));
    like($out, $_, "$desc: says $_") for @$what;
}

sub passes {
    my ($desc, $http, %o) = @_;
    my ($rc, $out) = ConsentTest::nginx_t($http, %o);
    is($rc, 0, "$desc: nginx -t passes") or diag $out;
    like($out, qr/test is successful/, "$desc: test is successful");
}


passes('README example', ConsentTest::default_consent());

passes('no consent directives at all', '');

passes('categories with names and switches', <<'EOF');
    consent_category C0001;
    consent_category C0002 "Performance";
    consent_category C0003 "Functional" on;
    consent_category C0005 "Social media" off;
    consent_category _private;
    consent_category Targeting-Ads_2;
    consent_destination a /_dest/a C0001 C0002 C0003 C0005;
    consent_destination b /_dest/b enforce=off;
    consent_destination c /_dest/c C0002 enforce=on;
    consent_destination d /_dest/d;
EOF

my $id34 = 'C' . ('x' x 33);
my $id35 = 'C' . ('x' x 34);
is(length $id34, 34, 'id34 is 34 chars');

passes('category id of 34 characters',
       "    consent_category $id34;\n"
     . "    consent_destination a /_dest/a $id34;\n");

fails_at('category id starting with a digit',
         "    consent_category C0001;\n    consent_category 2abc \"Two\";\n",
         qr/consent_category 2abc/,
         [qr/2abc/, qr/digit/]);

fails_at('category id of 35 characters',
         "    consent_category $id35;\n",
         qr/consent_category $id35/,
         [qr/\Q$id35\E/, qr/35/]);

fails_at('duplicate category id',
         "    consent_category C0002 \"A\";\n"
       . "    consent_category C0004;\n"
       . "    consent_category C0002 \"B\";\n",
         qr/consent_category C0002 "B"/,
         [qr/duplicate/i, qr/C0002/]);

fails_at('duplicate category id in a location',
         "    consent_category C0002;\n",
         qr/consent_category C0007 "second"/,
         [qr/duplicate/i, qr/C0007/],
         server => "        location /v1/ {\n"
                 . "            consent_ingest;\n"
                 . "            consent_category C0007;\n"
                 . "            consent_category C0007 \"second\";\n"
                 . "        }\n");

fails_at('duplicate destination name',
         "    consent_category C0002;\n"
       . "    consent_destination amplitude /_dest/a C0002;\n"
       . "    consent_destination webhook /_dest/w;\n"
       . "    consent_destination amplitude /_dest/b;\n",
         qr{consent_destination amplitude /_dest/b},
         [qr/duplicate/i, qr/amplitude/]);

fails_at('destination naming an unknown category',
         "    consent_category C0002;\n"
       . "    consent_destination webhook /_dest/w;\n"
       . "    consent_destination amplitude /_dest/a C0002 C0009;\n",
         qr{consent_destination amplitude},
         [qr/unknown/i, qr/C0009/, qr/amplitude/]);

fails_at('destination named All',
         "    consent_destination All /_dest/all;\n",
         qr{consent_destination All},
         [qr/"?All"?/, qr/reserved/i]);

passes('destination names are case-sensitive: "all" is not reserved',
       "    consent_destination all /_dest/all;\n"
     . "    consent_destination ALL /_dest/all2;\n");

passes('destinations differing only in case are distinct',
       "    consent_destination Amplitude /_dest/a;\n"
     . "    consent_destination amplitude /_dest/b;\n");

passes('category ids are case-sensitive',
       "    consent_category c0002;\n    consent_category C0002;\n");

fails_at('category ids are case-sensitive in destinations',
         "    consent_category C0002;\n"
       . "    consent_destination amplitude /_dest/a c0002;\n",
         qr{consent_destination amplitude},
         [qr/unknown/i, qr/c0002/]);

fails_at('invalid category switch',
         "    consent_category C0002 \"Performance\" maybe;\n",
         qr/consent_category C0002/,
         [qr/maybe/]);

fails_at('invalid enforce= value',
         "    consent_destination warehouse /_dest/w enforce=perhaps;\n",
         qr/consent_destination warehouse/,
         [qr/enforce/]);

fails_at('consent_ingest outside a location',
         "    consent_ingest;\n",
         qr/consent_ingest;/,
         [qr/consent_ingest/, qr/not allowed/]);

fails_at('consent_max_batch_events not a number',
         "    consent_max_batch_events lots;\n",
         qr/consent_max_batch_events/,
         [qr/consent_max_batch_events|lots/]);

fails_at('consent_max_body_size not a size',
         "    consent_max_body_size big;\n",
         qr/consent_max_body_size/,
         [qr/consent_max_body_size|big/]);

fails_at('consent_cors_origins mixing * with origins',
         "    consent_cors_origins * https://a.example;\n",
         qr/consent_cors_origins/,
         [qr/\*/]);

passes('consent_cors_origins forms',
       "    consent_cors_origins https://a.example https://b.example;\n",
       server => "        location /v1/ { consent_ingest; }\n"
               . "        location /x/v1/ { consent_ingest;"
               . " consent_cors_origins off; }\n"
               . "        location /y/v1/ { consent_ingest;"
               . " consent_cors_origins *; }\n");

fails_at('consent_delivery with an unknown mode',
         "    consent_delivery sometimes;\n",
         qr/consent_delivery/,
         [qr/invalid value "sometimes"/, qr/"wait"/, qr/"background"/]);

passes('consent_delivery modes',
       "    consent_delivery background;\n",
       server => "        location /v1/ { consent_ingest; }\n"
               . "        location /w/v1/ { consent_ingest;"
               . " consent_delivery wait; }\n");

fails_at('consent_malloc_trim below 128k',
         "    consent_malloc_trim 4k;\n",
         qr/consent_malloc_trim/,
         [qr/invalid value "4k"/, qr/128k to 32m/]);

fails_at('consent_malloc_trim above 32m',
         "    consent_malloc_trim 1g;\n",
         qr/consent_malloc_trim/,
         [qr/invalid value "1g"/]);

passes('consent_malloc_trim off', "    consent_malloc_trim off;\n");
passes('consent_malloc_trim 32m',
       "    consent_malloc_trim 32m;\n");

# nginx allows 50 subrequests per request
my $fifty = join '', map { "    consent_destination d$_ /_dest/d$_;\n" }
                         1 .. 50;
passes('50 destinations in one location', $fifty);

{
    my ($rc, $out) = ConsentTest::nginx_t(
        $fifty . "    consent_destination d51 /_dest/d51;\n");
    ok($rc != 0, '51 destinations in one ingest location: nginx -t fails')
        or diag $out;
    like($out, qr/destinations/i, '51 destinations: says so');
    like($out, qr/50/, '51 destinations: names the limit');
}

# the headers destinations get: pass_header= / drop_header=
passes('pass_header and drop_header',
       "    consent_destination a /_dest/a pass_header=Cookie "
       . "pass_header=X-Request-Id drop_header=Authorization "
       . "drop_header=x-real-ip;\n");

for my $c (
    ['pass_header of a hop-by-hop header', 'pass_header=Connection',
     qr/hop-by-hop or framing header is never passed/],
    ['pass_header of Proxy-Authorization', 'pass_header=Proxy-Authorization',
     qr/never passed/],
    ['pass_header of Content-Length', 'pass_header=content-length',
     qr/never passed/],
    ['pass_header of a default header', 'pass_header=User-Agent',
     qr/destinations get it by default/],
    ['drop_header of a header not forwarded', 'drop_header=Cookie',
     qr/destinations do not get it unless passed/],
    ['pass_header with an empty name', 'pass_header=',
     qr/invalid header name/],
    ['pass_header with a bad character', 'pass_header=X:Y',
     qr/invalid header name/],
)
{
    my ($desc, $param, $what) = @$c;
    fails_at($desc, "    consent_destination a /_dest/a $param;\n",
             qr/consent_destination a/, [qr/\Q$param\E/, $what]);
}

done_testing;
