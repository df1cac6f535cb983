# consent_audit_log: one JSON line per configuration change against the
# previous configuration, on start, on reload and across restarts (the
# state file next to the trail); nothing when nothing changed, nothing
# for nginx -t or a rejected configuration.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use JSON::PP ();
use ConsentTest;

my $DIR = tempdir('consent-audit-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $AUDIT = "$DIR/audit.log";
my $STATE = "$AUDIT.state";
my $TIME = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

my %DESTS = %{ ConsentTest::default_dests() };

# the README's configuration, audited
my $HTTP1 = "    consent_audit_log $AUDIT;\n" . ConsentTest::default_consent();

my $LOC1 = <<'EOF';
        location /src2/v1/ {
            consent_ingest;
            consent_category C0002 "Performance";
            consent_destination amplitude /_dest/amplitude C0002;
        }
EOF

# C0002 renamed; C0004 renamed and turned off; C0005 removed with its
# mapping; webhook removed; warehouse enforced; amplitude mapped to C0004
# too; extra created; the location's amplitude moved to another uri
my $HTTP2 = <<"EOF";
    consent_audit_log $AUDIT;
    consent_category C0002 "Analytics";
    consent_category C0004 "Ads" off;
    consent_destination amplitude /_dest/amplitude C0002 C0004;
    consent_destination facebook  /_dest/facebook  C0004;
    consent_destination warehouse /_dest/warehouse;
    consent_destination extra     /_dest/webhook C0002;
EOF

my $LOC2 = <<'EOF';
        location /src2/v1/ {
            consent_ingest;
            consent_category C0002 "Performance";
            consent_destination amplitude /_dest/webhook C0002;
        }
EOF


# ---------------------------------------------------------------------
# helpers

my $JSON = JSON::PP->new->utf8;
my $seen = 0;       # lines of the trail already checked

sub read_file {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    binmode $fh;
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s // '';
}

sub trail {
    my $text = read_file($AUDIT) // '';
    return split /\n/, $text;
}

# booleans as 'true' / 'false' for is_deeply
sub plain {
    my ($h) = @_;
    return { map { $_ => (JSON::PP::is_bool($h->{$_})
                          ? ($h->{$_} ? 'true' : 'false') : $h->{$_}) }
             keys %$h };
}

# The lines written since the last call, decoded, without "time" (checked
# here: ISO 8601 UTC, the same for every line of one configuration).
sub new_lines {
    my ($desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @all = trail();
    my @new = @all[$seen .. $#all];
    $seen = @all;
    my (@out, %times);
    for my $l (@new) {
        my $h = eval { $JSON->decode($l) };
        ok($h, "$desc: a JSON line") or diag $l;
        next unless $h;
        $times{ delete $h->{time} // 'none' }++;
        push @out, plain($h);
    }
    if (@out) {
        my @t = keys %times;
        ok(@t == 1 && $t[0] =~ $TIME,
           "$desc: one ISO 8601 UTC timestamp") or diag "@t";
    }
    return @out;
}

sub lines_are {
    my ($desc, $expect) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @got = new_lines($desc);
    is_deeply(\@got, $expect, "$desc: the expected lines")
        or diag join "\n", map { $JSON->canonical->encode($_) } @got;
}

sub nothing_written {
    my ($desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @new = new_lines($desc);
    is(scalar @new, 0, "$desc: nothing written")
        or diag explain \@new;
}

# "file:line" of the first line of $t's nginx.conf matching $re
sub at {
    my ($t, $re) = @_;
    my $conf = $t->prefix . '/nginx.conf';
    my $n = ConsentTest::line_of($conf, $re)
        // die "no line matching $re in $conf";
    return "$conf:$n";
}

sub cat_line {
    my ($change, $scope, $scope_at, $id, $name, $at, %more) = @_;
    return { change => $change, scope => $scope, scope_at => $scope_at,
             category => $id, name => $name, at => $at, %more };
}

sub dest_line {
    my ($change, $scope, $scope_at, $name, $uri, $at, %more) = @_;
    return { change => $change, scope => $scope, scope_at => $scope_at,
             destination => $name, uri => $uri, at => $at, %more };
}

sub map_line {
    my ($change, $scope, $scope_at, $name, $cat, $at) = @_;
    return { change => $change, scope => $scope, scope_at => $scope_at,
             destination => $name, category => $cat, at => $at };
}

my $LOC = 'server > location /src2/v1/';


# ---------------------------------------------------------------------
# first start: everything is created

my $t = ConsentTest->new(dests => \%DESTS, http => $HTTP1,
                         locations => $LOC1);

{
    my $h = at($t, qr/^http \{/);
    my $l = at($t, qr{location /src2/v1/ \{});
    my $a = sub { at($t, $_[0]) };

    lines_are('first start', [
        cat_line('category_created', 'http', $h, 'C0002', 'Performance',
                 $a->(qr/C0002 "Performance"/), enabled => 'true'),
        cat_line('category_created', 'http', $h, 'C0004', 'Targeting',
                 $a->(qr/C0004 "Targeting"/), enabled => 'true'),
        cat_line('category_created', 'http', $h, 'C0005', 'Social',
                 $a->(qr/C0005 "Social" off/), enabled => 'false'),
        cat_line('category_created', $LOC, $l, 'C0002', 'Performance',
                 $a->(qr/^ {12}consent_category C0002/), enabled => 'true'),
        dest_line('destination_created', 'http', $h, 'amplitude',
                  '/_dest/amplitude', $a->(qr/destination amplitude/),
                  enforce => 'true'),
        dest_line('destination_created', 'http', $h, 'facebook',
                  '/_dest/facebook', $a->(qr/destination facebook/),
                  enforce => 'true'),
        dest_line('destination_created', 'http', $h, 'warehouse',
                  '/_dest/warehouse', $a->(qr/destination warehouse/),
                  enforce => 'false'),
        dest_line('destination_created', 'http', $h, 'webhook',
                  '/_dest/webhook', $a->(qr/destination webhook/),
                  enforce => 'true'),
        dest_line('destination_created', $LOC, $l, 'amplitude',
                  '/_dest/amplitude',
                  $a->(qr/^ {12}consent_destination amplitude/),
                  enforce => 'true'),
        map_line('mapping_created', 'http', $h, 'amplitude', 'C0002',
                 $a->(qr/destination amplitude/)),
        map_line('mapping_created', 'http', $h, 'facebook', 'C0004',
                 $a->(qr/destination facebook/)),
        map_line('mapping_created', 'http', $h, 'facebook', 'C0005',
                 $a->(qr/destination facebook/)),
        map_line('mapping_created', $LOC, $l, 'amplitude', 'C0002',
                 $a->(qr/^ {12}consent_destination amplitude/)),
    ]);

    my $state = eval { $JSON->decode(read_file($STATE) // '') };
    ok($state && $state->{version} == 1
       && @{ $state->{records} } == 13,
       'the state file holds the 13 records');
}

ConsentTest::accepted_ok($t->post('/v1/track',
                                  '{"userId":"u","event":"e1"}'),
                         'the gateway works with an audit trail');

ok($t->reload, 'reload, same configuration');
nothing_written('unchanged reload');


# ---------------------------------------------------------------------
# a reload with changes; nginx -t before it writes nothing

my (%old, $h1);
{
    $h1 = at($t, qr/^http \{/);
    $old{facebook} = at($t, qr/destination facebook/);
    $old{webhook} = at($t, qr/destination webhook/);
    $old{C0005} = at($t, qr/C0005 "Social" off/);
}

$t->reconfigure(http => $HTTP2, locations => $LOC2);

{
    my $p = $t->prefix;
    my ($rc, $out) = ConsentTest::_run($ConsentTest::NGINX, '-t', '-p', $p,
                                       '-c', "$p/nginx.conf",
                                       '-e', "$p/error.log");
    is($rc, 0, 'nginx -t on the changed configuration') or diag $out;
    nothing_written('nginx -t');
}

ok($t->reload, 'reload, changed configuration');

{
    my $h = at($t, qr/^http \{/);
    my $l = at($t, qr{location /src2/v1/ \{});
    my $a = sub { at($t, $_[0]) };

    lines_are('reload with changes', [
        map_line('mapping_removed', 'http', $h1, 'facebook', 'C0005',
                 $old{facebook}),
        dest_line('destination_removed', 'http', $h1, 'webhook',
                  '/_dest/webhook', $old{webhook}),
        cat_line('category_removed', 'http', $h1, 'C0005', 'Social',
                 $old{C0005}),
        cat_line('category_renamed', 'http', $h, 'C0002', 'Analytics',
                 $a->(qr/C0002 "Analytics"/), old_name => 'Performance'),
        cat_line('category_renamed', 'http', $h, 'C0004', 'Ads',
                 $a->(qr/C0004 "Ads"/), old_name => 'Targeting'),
        cat_line('category_turned_off', 'http', $h, 'C0004', 'Ads',
                 $a->(qr/C0004 "Ads"/)),
        dest_line('destination_enforce_on', 'http', $h, 'warehouse',
                  '/_dest/warehouse', $a->(qr/destination warehouse/)),
        dest_line('destination_created', 'http', $h, 'extra',
                  '/_dest/webhook', $a->(qr/destination extra/),
                  enforce => 'true'),
        dest_line('destination_uri_changed', $LOC, $l, 'amplitude',
                  '/_dest/webhook',
                  $a->(qr/^ {12}consent_destination amplitude/),
                  old_uri => '/_dest/amplitude'),
        map_line('mapping_created', 'http', $h, 'amplitude', 'C0004',
                 $a->(qr/destination amplitude/)),
        map_line('mapping_created', 'http', $h, 'extra', 'C0002',
                 $a->(qr/destination extra/)),
    ]);
}

ok($t->reload, 'reload, same configuration again');
nothing_written('unchanged reload after changes');


# ---------------------------------------------------------------------
# a configuration nginx rejects is not recorded

$t->reconfigure(http => $HTTP2 . "    consent_category 9bad;\n");
ok($t->reload(fail => qr/invalid consent category id "9bad"/),
   'reload with an invalid configuration is rejected');
nothing_written('rejected reload');
$t->reconfigure(http => $HTTP2);


# ---------------------------------------------------------------------
# no state file: the previous cycle is the previous configuration

ok(unlink($STATE), 'state file removed');
(my $http3 = $HTTP2) =~ s/"Analytics"/"Performance"/;
$t->reconfigure(http => $http3);
ok($t->reload, 'reload without a state file');
lines_are('previous cycle without a state file', [
    cat_line('category_renamed', 'http', at($t, qr/^http \{/), 'C0002',
             'Performance', at($t, qr/C0002 "Performance"/),
             old_name => 'Analytics'),
]);
ok(-s $STATE, 'the state file is written again');

# the master runs as root: a ".state.tmp" planted as a symlink to another
# file (or a ".state" as one) is replaced, the file it points to untouched
{
    my $victim = "$DIR/victim";
    open my $vf, '>', $victim or die "$victim: $!";
    print {$vf} "precious\n";
    close $vf;
    unlink "$STATE.tmp";
    ok(symlink($victim, "$STATE.tmp"), 'state.tmp made a symlink');
    $t->reconfigure(http => $HTTP2);
    ok($t->reload, 'reload with a symlinked state.tmp');
    ok(scalar(new_lines('symlinked state.tmp')), 'symlinked state.tmp: '
                                                 . 'the changes recorded');
    is(read_file($victim), "precious\n",
       'symlinked state.tmp: the file it pointed to is unchanged');
    ok(!-l "$STATE.tmp" && !-e "$STATE.tmp",
       'symlinked state.tmp: the link is gone');
    ok(!-l $STATE && -s $STATE, 'symlinked state.tmp: the state written');

    unlink $STATE;
    ok(symlink($victim, $STATE), 'state made a symlink');
    $t->reconfigure(http => $http3);
    ok($t->reload, 'reload with a symlinked state');
    ok(scalar(new_lines('symlinked state')), 'symlinked state: the changes '
                                             . 'recorded');
    is(read_file($victim), "precious\n",
       'symlinked state: the file it pointed to is unchanged');
    ok(!-l $STATE && -s $STATE, 'symlinked state: replaced by the state');
    unlike($t->error_log, qr/ignoring invalid state file/,
           'symlinked state: not read through the link');
}

$t->stop;


# ---------------------------------------------------------------------
# restarts compare with the state file (another prefix: every file:line
# moves, which is not a change)

my $t2 = ConsentTest->new(dests => \%DESTS, http => $http3,
                          locations => $LOC2);
nothing_written('restart with the same configuration');

my %at2 = (
    http => at($t2, qr/^http \{/),
    loc  => at($t2, qr{location /src2/v1/ \{}),
    cat  => at($t2, qr/^ {12}consent_category C0002/),
    dest => at($t2, qr/^ {12}consent_destination amplitude/),
);
$t2->stop;

(my $http4 = $http3) =~ s/"Ads" off/"Ads"/;
my $t3 = ConsentTest->new(dests => \%DESTS, http => $http4);
lines_are('restart with changes', [
    map_line('mapping_removed', $LOC, $at2{loc}, 'amplitude', 'C0002',
             $at2{dest}),
    dest_line('destination_removed', $LOC, $at2{loc}, 'amplitude',
              '/_dest/webhook', $at2{dest}),
    cat_line('category_removed', $LOC, $at2{loc}, 'C0002', 'Performance',
             $at2{cat}),
    cat_line('category_turned_on', 'http', at($t3, qr/^http \{/), 'C0004',
             'Ads', at($t3, qr/C0004 "Ads"/)),
]);
$t3->stop;


# ---------------------------------------------------------------------
# an invalid state file is reported and ignored: everything is created

{
    open my $fh, '>', $STATE or die "$STATE: $!";
    print {$fh} "{\"version\":1,\"records\":[{\"type\":\"category\"}]}\n";
    close $fh;

    my $t4 = ConsentTest->new(dests => \%DESTS, http => $http4);
    my @l = new_lines('invalid state file');
    is(scalar @l, 10, 'invalid state file: every record created');
    is(scalar(grep { $_->{change} =~ /_created$/ } @l), 10,
       'invalid state file: all of them as created');
    like($t4->error_log,
         qr/\[error\].*consent audit: ignoring invalid state file/,
         'invalid state file: logged');
    $t4->stop;
}


# ---------------------------------------------------------------------
# names are escaped; bytes that are not UTF-8 are kept as Latin-1, and
# the state reads back identical (a reload writes nothing)

{
    my $audit = "$DIR/names.log";
    my $t5 = ConsentTest->new(dests => { amplitude => {} }, http => <<"EOF");
    consent_audit_log $audit;
    consent_category C0002 "Qu\\"o\\\\te \xff \xc3\xa9";
    consent_destination amplitude /_dest/amplitude C0002;
EOF
    my @l = map { plain($JSON->decode($_)) }
            split /\n/, read_file($audit) // '';
    is($l[0]{name}, "Qu\"o\\te \x{ff} \x{e9}",
       'names: escaped, Latin-1 for bytes that are not UTF-8');
    ok($t5->reload, 'names: reload');
    my @again = split /\n/, read_file($audit) // '';
    is(scalar @again, scalar @l, 'names: the state reads back identical');
    $t5->stop;
}


# ---------------------------------------------------------------------
# a trail that cannot be written is logged, never fatal

{
    my $t6 = ConsentTest->new(dests => { amplitude => {} }, http => <<"EOF");
    consent_audit_log $DIR/missing/audit.log;
    consent_category C0002;
    consent_destination amplitude /_dest/amplitude C0002;
EOF
    ConsentTest::accepted_ok($t6->post('/v1/track',
                                       '{"userId":"u","event":"e2"}'),
                             'unwritable trail: nginx runs');
    like($t6->error_log,
         qr/\[crit\].*consent audit: open\(\) "\Q$DIR\E\/missing\/audit\.log"/,
         'unwritable trail: logged');
    ok(!-e "$DIR/missing/audit.log.state",
       'unwritable trail: no state written');
    $t6->stop;
}


# ---------------------------------------------------------------------
# nginx -t: no trail, no state; the directive's context

{
    my $audit = "$DIR/t/audit.log";
    mkdir "$DIR/t";
    my ($rc, $out) = ConsentTest::nginx_t(
        "    consent_audit_log $audit;\n    consent_category C0002;\n");
    is($rc, 0, 'nginx -t with consent_audit_log') or diag $out;
    ok(!-e $audit && !-e "$audit.state", 'nginx -t writes nothing');

    ($rc, $out) = ConsentTest::nginx_t(
        "    consent_audit_log $audit;\n    consent_audit_log $audit;\n");
    isnt($rc, 0, 'duplicate consent_audit_log fails');
    like($out, qr/"consent_audit_log" directive is duplicate/,
         'duplicate consent_audit_log: message');

    ($rc, $out) = ConsentTest::nginx_t('', server =>
        "        consent_audit_log $audit;\n");
    isnt($rc, 0, 'consent_audit_log in server fails');
    like($out, qr/"consent_audit_log" directive is not allowed here/,
         'consent_audit_log in server: message');
}

done_testing();
