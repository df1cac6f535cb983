package ConsentBrowser;

# Headless Chromium for the prove suite (t/40-browser.t, t/41-demo.t):
# the npm packages (make npm-deps: playwright-core, analytics.js) and
# Debian's /usr/bin/chromium, driven by node scripts under t/browser/
# that print one JSON result.  docs/browser.md describes the tests.
#
#   ConsentBrowser::check_ready();   # fails the test if a piece is missing
#   my $res = ConsentBrowser::run_node('t/browser/drive.js', \%job);
#
# Chromium resolves *.test to 127.0.0.1 (HOST_RULES), so a test page
# served by the gateway's own nginx under http://shop.test:PORT is an
# origin other than the gateway's http://127.0.0.1:PORT.

use strict;
use warnings;

use File::Temp qw(tempdir tempfile);
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep time);

use ConsentTest;

our $CHROMIUM = $ENV{CONSENT_TEST_CHROMIUM} || '/usr/bin/chromium';
our $NODE = $ENV{CONSENT_TEST_NODE} || 'node';
our $HOST_RULES = 'MAP *.test 127.0.0.1';

my $ROOT = ConsentTest::root();
my $BUNDLES = "$ROOT/node_modules/\@segment/analytics-next/dist/umd";

# Fails the test (and ends it) when a piece is missing: `make test-prove`
# installs them all, so a missing browser is a failure, not a skip.
sub check_ready {
    my @missing;
    push @missing, "$CHROMIUM (Debian package chromium: make deps)"
        unless -x $CHROMIUM;
    push @missing, "$BUNDLES/index.js and playwright-core (make npm-deps)"
        unless -f "$BUNDLES/index.js"
            && -d "$ROOT/node_modules/playwright-core";
    push @missing, "node (Debian package nodejs: make deps)"
        unless system("$NODE --version >/dev/null 2>&1") == 0;
    return unless @missing;
    Test::More::fail("browser test prerequisites: missing "
                     . join('; ', @missing));
    Test::More::done_testing();
    exit 1;
}

# nginx locations serving the test page, the demo's scripts it shares
# (demo/www) and analytics.js's UMD bundle with its lazy chunks (the page sets
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
        location /demo/ { alias $ROOT/demo/www/; }
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

# ---------------------------------------------------------------------
# the demo (make run), on free ports: t/41-demo.t

our @DEMO_SINKS = qw(amplitude facebook warehouse webhook);

# Starts what demo/run.sh starts: a demo/sink.pl per destination and
# nginx on demo/nginx.conf (placeholders filled in, the sinks' and the
# gateway's ports free ones), in the foreground as the demo config says
# (daemon off).  Returns { port, prefix, nginx => pid, sinks => { NAME
# => { pid, port, log } } } once the page answers.
sub start_demo {
    my $prefix = tempdir('consent-demo-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $d = { prefix => $prefix, sinks => {} };
    for my $name (@DEMO_SINKS) {
        my $log = "$prefix/$name.log";
        my $pid = open(my $out, '-|', $^X, $ConsentTest::SINK,
                       '--name', $name, '--log', $log)
            // die "cannot start sink $name: $!";
        my $line = <$out> // '';
        $line =~ /^PORT (\d+)$/ or die "sink $name: no port: $line";
        $d->{sinks}{$name} = { pid => $pid, fh => $out, port => $1,
                               log => $log };
    }
    open my $in, '<', "$ROOT/demo/nginx.conf" or die "demo/nginx.conf: $!";
    my $template = do { local $/; <$in> };
    close $in;

    # a free port may be taken between the probe and nginx's bind(): retry
    for my $try (1 .. 5) {
        $d->{port} = ConsentTest::free_port();
        my %v = (MODULE => $ConsentTest::MODULE, PREFIX => $prefix,
                 ROOT => $ROOT, PORT => $d->{port},
                 map { ('PORT_' . uc($_) => $d->{sinks}{$_}{port}) }
                     @DEMO_SINKS);
        (my $conf = $template) =~ s/@(\w+)@/$v{$1} \/\/ die "no \@$1\@"/ge;
        open my $out, '>', "$prefix/nginx.conf" or die "$prefix: $!";
        print {$out} $conf;
        close $out;

        my $pid = fork // die "fork: $!";
        if (!$pid) {
            open STDOUT, '>>', "$prefix/stderr.log";
            open STDERR, '>&', \*STDOUT;
            { exec $ConsentTest::NGINX, '-p', $prefix,
                   '-c', "$prefix/nginx.conf", '-e', "$prefix/error.log",
                   ($> == 0 ? ('-g', 'user root;') : ()); }
            POSIX::_exit(127);
        }
        $d->{nginx} = $pid;
        my $up = wait_for(sub {
            return 'exited' if waitpid($pid, WNOHANG) == $pid;
            my $r = HTTP::Tiny->new(timeout => 2)
                ->get("http://127.0.0.1:$d->{port}/");
            return $r->{status} == 200 ? 'up' : undef;
        }, 20) // '';
        return $d if $up eq 'up';
        my $err = join "\n", lines("$prefix/stderr.log");
        stop_demo($d);
        die "demo nginx did not start ($up):\n$err\n"
            unless $up eq 'exited' && $err =~ /Address already in use/;
        unlink "$prefix/stderr.log";
    }
    die "demo nginx: no free port in 5 tries\n";
}

# Stops the demo's nginx (graceful quit, then TERM) and sinks.
sub stop_demo {
    my ($d) = @_;
    if (my $pid = delete $d->{nginx}) {
        kill 'QUIT', $pid;
        wait_for(sub { waitpid($pid, WNOHANG) != 0 }, 10)
            or do { kill 'TERM', $pid; waitpid($pid, 0) };
    }
    for my $s (values %{ $d->{sinks} }) {
        next unless $s->{pid};
        kill 'TERM', $s->{pid};
        close $s->{fh};
        delete $s->{pid};
    }
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
