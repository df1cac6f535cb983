package ConsentBrowser;

# Headless Chromium for the prove suite (t/40-browser.t, t/41-demo.t):
# the npm packages (make npm-deps: playwright-core, analytics.js) and
# Debian's /usr/bin/chromium, driven by node scripts under t/browser/
# that print one JSON result.  docs/browser.md describes the tests.
#
#   ConsentBrowser::skip_unless_ready();     # skip_all under valgrind
#   my $res = ConsentBrowser::run_node('t/browser/drive.js', \%job);
#
# Chromium resolves *.test to 127.0.0.1 (HOST_RULES), so a test page
# served by the gateway's own nginx under http://shop.test:PORT is an
# origin other than the gateway's http://127.0.0.1:PORT.

use strict;
use warnings;

use File::Temp qw(tempfile);
use JSON::PP;
use Test::More ();
use Time::HiRes qw(sleep time);

use ConsentTest;

our $CHROMIUM = $ENV{CONSENT_TEST_CHROMIUM} || '/usr/bin/chromium';
our $NODE = $ENV{CONSENT_TEST_NODE} || 'node';
our $HOST_RULES = 'MAP *.test 127.0.0.1';

my $ROOT = ConsentTest::root();
my $BUNDLES = "$ROOT/node_modules/\@segment/analytics-next/dist/umd";

# Skips the whole test under valgrind (every nginx process under
# memcheck: analytics.js's timers and Chromium's own timeouts are not
# made for a gateway 20 to 50 times slower).  Outside that, missing
# pieces are a failure, not a skip: `make test-prove` installs them.
sub skip_unless_ready {
    Test::More::plan(skip_all => 'browser tests are not run under valgrind '
        . '(CONSENT_TEST_VALGRIND): Chromium and analytics.js time out '
        . 'against nginx under memcheck; make test-prove runs them')
        if $ConsentTest::VALGRIND;
    my @missing;
    push @missing, "$CHROMIUM (Debian package chromium: make deps)"
        unless -x $CHROMIUM;
    push @missing, "$BUNDLES/index.js and playwright-core (make npm-deps)"
        unless -f "$BUNDLES/index.js"
            && -d "$ROOT/node_modules/playwright-core";
    push @missing, "node (Debian package nodejs: make deps)"
        unless system("$NODE --version >/dev/null 2>&1") == 0;
    Test::More::BAIL_OUT("browser test prerequisites missing: "
                         . join('; ', @missing)) if @missing;
}

# nginx locations serving the test page, the page script shared with the
# demo and analytics.js's UMD bundle with its lazy chunks (the page sets
# analytics._cdn to its own origin: /analytics-next/bundles/).
sub static_locations {
    return <<"EOF";
        types {
            text/html               html;
            application/javascript  js;
            text/css                css;
            image/svg+xml           svg;
        }
        location = /page.html { root $ROOT/t/browser; }
        location = /gateway-analytics.js { root $ROOT/demo/www; }
        location /analytics-next/bundles/ { alias $BUNDLES/; }
EOF
}

# Runs `node SCRIPT JOB.json` with JOB (a hash, chromium and hostRules
# added) and returns its decoded JSON result; dies with its stderr when
# it fails.
sub run_node {
    my ($script, $job) = @_;
    my %job = (chromium => $CHROMIUM, hostRules => $HOST_RULES, %$job);
    my ($fh, $file) = tempfile('consent-job-XXXXXX', TMPDIR => 1,
                               UNLINK => 1);
    print {$fh} JSON::PP->new->utf8->encode(\%job);
    close $fh;
    my $err = "$file.err";
    my $out = `$NODE $ROOT/$script $file 2>$err`;
    my $rc = $? >> 8;
    my $stderr = join "\n", lines($err);
    unlink $err;
    die "$script failed (exit $rc):\n$stderr\n$out"
        if $rc || $out !~ /^\{.*\}\s*\z/s;
    return JSON::PP->new->utf8->decode($out);
}

sub drive {
    my (%job) = @_;
    return run_node('t/browser/drive.js', \%job);
}

# Polls CHECK (every 50 ms) until it returns true or SECONDS pass; for a
# signal no browser event reports (a request sent after its page was
# left, seen at the sinks).  Returns the last result.
sub wait_for {
    my ($check, $seconds) = @_;
    my $deadline = time + $seconds;
    for (;;) {
        my $r = $check->();
        return $r if $r || time > $deadline;
        sleep 0.05;
    }
}

# The lines of FILE.
sub lines {
    my ($file) = @_;
    open my $fh, '<', $file or return ();
    chomp(my @l = <$fh>);
    close $fh;
    return @l;
}

# "missing: ...\nunexpected: ..." between two lists of strings.
sub diff {
    my ($got, $want) = @_;
    my %g;
    $g{$_}++ for @$got;
    my @missing;
    for (@$want) {
        if ($g{$_}) { $g{$_}-- } else { push @missing, $_ }
    }
    my @extra = grep { $g{$_}-- > 0 } @$got;
    return "missing: @missing\nunexpected: @extra";
}

1;
