package ConsentTest;

# Test harness for ngx_consent: starts one demo/sink.pl per destination,
# the stock /usr/sbin/nginx with the module on a generated config in a
# temporary prefix, sends requests and reads back what each sink got.
#
#   my $t = ConsentTest->new(
#       dests     => { amplitude => {}, facebook => { status => 500 } },
#       http      => $http_snippet,     # consent_category/destination ...
#       server    => $server_snippet,   # inside server { }
#       locations => $more_locations,   # inside server { }, after /v1/
#   );
#   my $res = $t->post('/v1/track', $body, { Authorization => ... });
#   my @ev  = $t->received_events('amplitude');
#
# Synchronisation: the module replies only after every destination
# answered and the sink logs a request before answering it, so the sink
# logs are complete once the reply is in.  Nothing here sleeps to wait
# for the module.
#
# Destination options (dests => { NAME => { ... } }):
#   status => CODE     sink answers CODE
#   mode   => 'hang' | 'close'
#   closed => 1        no sink: the location points at a closed port
#   keepalive => N     upstream block with keepalive N and HTTP/1.1 (the
#                      default, N = 4); 0: plain proxy_pass, HTTP/1.0
#   extra  => '...'    more directives inside location /_dest/NAME
#   path   => '/p'     upstream URI (default /NAME)
#
# Placeholders in snippets: %%PORT_NAME%%, %%PREFIX%%, %%NGINX_PORT%%.
#
# Ports: nginx, the sinks and closed destinations get ports of a fixed
# range outside the ephemeral one, each locked for the instance's life
# (see "ports" below); reserve_port() gives a test one of its own.
#
# Environment (make test-memcheck sets the last three):
#   TEST_NGINX_BINARY    nginx binary (default /usr/sbin/nginx)
#   CONSENT_TEST_KEEP    keep the temporary prefixes, print their paths
#   CONSENT_TEST_MODULE  module to load (default build/ngx_http_...so)
#   CONSENT_TEST_PRELOAD LD_PRELOAD for every nginx process (libasan.so)
#   CONSENT_TEST_ASAN    sanitizer mode: nginx runs with ASAN_OPTIONS and
#                        UBSAN_OPTIONS writing one report file per process
#                        (PREFIX/sanitizer/ for an instance), leak checking
#                        on; stop() fails its error.log test on any report
#                        (leaks: see _san_reports), _run() (so nginx_t)
#                        adds a failing test on one.
#   CONSENT_TEST_VALGRIND  the same with every nginx process under valgrind
#                        (memcheck, no leak check): any error fails.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use Scalar::Util ();
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep time);

our $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $ROOT = abs_path(File::Spec->catdir(dirname(abs_path(__FILE__)),
                                        '..', '..'));
our $MODULE = $ENV{CONSENT_TEST_MODULE}
              || "$ROOT/build/ngx_http_consent_module.so";
our $SINK = "$ROOT/demo/sink.pl";

my $JSON = JSON::PP->new->utf8->canonical;

# instances not stopped yet: stopped at END (before File::Temp's END and
# Test::Builder's, which were set up earlier), also when a test died
our %LIVE;

END {
    local $?;
    for my $t (grep { defined } values %LIVE) {
        $t->stop;
        $t->_cleanup;
    }
}

sub root   { $ROOT }
sub module { $MODULE }

sub _check_module {
    return if $ENV{CONSENT_TEST_NO_MODULE};
    Test::More::BAIL_OUT("$MODULE not found: run make first")
        unless -f $MODULE;
}


# ---------------------------------------------------------------------
# sanitizer mode (CONSENT_TEST_ASAN, CONSENT_TEST_PRELOAD)

our $ASAN = $ENV{CONSENT_TEST_ASAN};
our $VALGRIND = $ENV{CONSENT_TEST_VALGRIND};
our $MEMCHECK = $ASAN || $VALGRIND;
die "CONSENT_TEST_ASAN and CONSENT_TEST_VALGRIND exclude each other\n"
    if $ASAN && $VALGRIND;

# valgrind (memcheck) in front of nginx: the daemon's processes stay
# under it across fork(); -q keeps a log file empty unless it has errors.
# Leaks are left to the ASan mode (nginx's own exit-time noise).
sub _valgrind {
    my ($dir) = @_;
    return () unless $VALGRIND;
    return ('valgrind', '-q', '--leak-check=no', '--num-callers=30',
            "--log-file=$dir/valgrind.%p");
}

# where the nginx processes _run() starts write their reports; new()
# sets it to PREFIX/sanitizer, otherwise one directory per test process
our $SAN_DIR;
my $SAN_TMP;

sub _san_env {
    my ($dir) = @_;
    my %env;
    $env{LD_PRELOAD} = $ENV{CONSENT_TEST_PRELOAD}
        if $ENV{CONSENT_TEST_PRELOAD};
    return %env unless $ASAN;
    # abort_on_error=0: the process exits (code 1) after writing its
    # report, no core dump; leaks are checked when a process exits (nginx
    # keeps its cycle memory reachable, so only real leaks are reported)
    $env{ASAN_OPTIONS} = join ':', "log_path=$dir/asan", 'detect_leaks=1',
        'abort_on_error=0', 'halt_on_error=1', 'fast_unwind_on_malloc=0',
        'handle_abort=1', 'handle_sigill=1', 'detect_stack_use_after_return=1',
        'check_initialization_order=1', 'strict_string_checks=1';
    $env{UBSAN_OPTIONS} = join ':', "log_path=$dir/ubsan",
        'print_stacktrace=1', 'halt_on_error=0';
    # a leak alone does not change the exit code: nginx's own (its regex
    # compile context, say) would fail a start; _san_reports decides
    $env{LSAN_OPTIONS} = 'print_suppressions=0:exitcode=0';
    return %env;
}

# Sanitizer report files in DIR, as "file:\ncontents" texts.  The stock
# nginx leaves some of its own memory unreachable when a process exits
# (a failed configuration's init pool, a worker's connection arrays once
# the cycle pool is gone): a leak counts only when the module is on its
# allocation stack (the module's pool allocations are malloc() calls
# from the module in the ASan build, t/asan/ngx_palloc.h).
sub _san_reports {
    my ($dir) = @_;
    my @r;
    my $mod = quotemeta((File::Spec->splitpath($MODULE))[2]);
    opendir my $dh, $dir or return ();
    for my $f (sort grep { /^(asan|ubsan|valgrind)\./ } readdir $dh) {
        open my $fh, '<', "$dir/$f" or next;
        local $/;
        my $text = <$fh> // '';
        close $fh;
        next unless length $text;
        if ($text =~ /ERROR: LeakSanitizer/
            && $text !~ /ERROR: AddressSanitizer/)
        {
            my @leaks = grep { /$mod|\/ngx_consent_module\//o }
                        split /\n(?=(?:Direct|Indirect) leak of )/, $text;
            next unless @leaks;
        }
        push @r, "$dir/$f:\n$text";
    }
    closedir $dh;
    return @r;
}

sub _san_dir {
    $SAN_TMP //= tempdir('consent-san-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    return $SAN_TMP;
}


# ---------------------------------------------------------------------
# default consent configuration (README's example)

sub default_consent {
    return <<'EOF';
    consent_category C0002 "Performance";
    consent_category C0004 "Targeting";
    consent_category C0005 "Social" off;
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination facebook  /_dest/facebook  C0004 C0005;
    consent_destination warehouse /_dest/warehouse enforce=off;
    consent_destination webhook   /_dest/webhook;
EOF
}

sub default_dests {
    return { amplitude => {}, facebook => {}, warehouse => {},
             webhook => {} };
}


# ---------------------------------------------------------------------
# load clients (t/12, t/15): client processes that report their statuses

# Request $i of client $c: two events, the first consenting to C0002 on
# every other request, the second without a consent object.
sub load_batch {
    my ($c, $i) = @_;
    my $yes = ($c + $i) % 2 ? 'true' : 'false';
    return '{"batch":['
        . qq({"type":"track","userId":"c$c","event":"c$c-$i-a",)
        . qq("context":{"consent":{"categoryPreferences":)
        . qq({"C0002":$yes,"C0004":true}}}},)
        . qq({"type":"track","userId":"c$c","event":"c$c-$i-b"}]});
}

# The destinations of default_consent() allowed for each event of
# load_batch($c, $i) (README's routing rule): event => [names].
sub load_allowed {
    my ($c, $i) = @_;
    my $yes = ($c + $i) % 2;
    return ("c$c-$i-a" => [$yes ? qw(amplitude) : (),
                           qw(facebook warehouse webhook)],
            "c$c-$i-b" => [qw(amplitude facebook warehouse webhook)]);
}

# Runs $code, which returns the statuses it got, in a child process;
# returns the pipe that client_statuses() reads them from.
sub spawn_client {
    my ($code) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        print join(',', $code->()), "\n";
        POSIX::_exit(0);
    }
    return $fh;
}

# Load for reload tests: $n client processes, each POSTing
# $content->($c, $i) to $url on a new connection per request until the
# file $stop exists, $max requests or 60 s; returns the pipes for
# client_statuses().
sub spawn_load {
    my ($url, $n, $max, $stop, $content) = @_;
    my %pipes;
    for my $c (1 .. $n) {
        $pipes{$c} = spawn_client(sub {
            my $ua = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
            my $end = Time::HiRes::time() + 60;
            my @st;
            for my $i (1 .. $max) {
                last if -e $stop || Time::HiRes::time() > $end;
                push @st, $ua->post($url, {
                    headers => { 'Content-Type' => 'application/json' },
                    content => $content->($c, $i),
                })->{status};
            }
            return @st;
        });
    }
    return \%pipes;
}

# Waits for each client's report: { client => [status, ...] }.
sub client_statuses {
    my ($pipes) = @_;
    my %st;
    for my $c (keys %$pipes) {
        my $fh = $pipes->{$c};
        my $line = <$fh> // '';
        close $fh;
        chomp $line;
        $st{$c} = [split /,/, $line];
    }
    return \%st;
}


# ---------------------------------------------------------------------
# start / stop

sub new {
    my ($class, %args) = @_;

    _check_module() unless $args{no_module};

    my $self = bless {
        dests     => $args{dests} // {},
        http      => $args{http} // '',
        server    => $args{server} // '',
        locations => $args{locations} // '',
        main      => $args{main} // '',
        no_module => $args{no_module},
        sinks     => {},
        offsets   => {},
        owner     => $$,
    }, $class;

    # removed when the object goes away (logs stay readable after stop)
    $self->{prefix} = tempdir('consent-t-XXXXXX', TMPDIR => 1, CLEANUP => 0);
    $LIVE{$self + 0} = $self;
    Scalar::Util::weaken($LIVE{$self + 0});
    Test::More::diag("prefix $self->{prefix}") if $ENV{CONSENT_TEST_KEEP};
    mkdir "$self->{prefix}/$_" for qw(logs client_body proxy fastcgi uwsgi
                                      scgi sanitizer);

    for my $name (sort keys %{ $self->{dests} }) {
        $self->_start_sink($name, $self->{dests}{$name});
    }

    # our lock keeps the port from other test processes; a program
    # outside the scheme may still take it before nginx's bind(): retry
    my $err;
    for my $try (1 .. 5) {
        $self->_release_port($self->{port}) if $self->{port};
        $self->{port} = $self->_port;
        $self->_write_conf;
        local $SAN_DIR = "$self->{prefix}/sanitizer";
        my ($rc, $out) = _run($NGINX, '-p', $self->{prefix},
                              '-c', "$self->{prefix}/nginx.conf",
                              '-e', "$self->{prefix}/error.log");
        if ($rc == 0) {
            $self->{started} = 1;
            $self->{log_start} = -s "$self->{prefix}/error.log" // 0;
            return $self;
        }
        $err = $out . "\n" . $self->error_log;
        last unless $err =~ /Address already in use/;
    }

    my $conf = $self->conf_text;
    $self->stop;
    die "nginx failed to start:\n$err\nconfig:\n" . $conf;
}

sub _start_sink {
    my ($self, $name, $o) = @_;

    my $log = "$self->{prefix}/sink-$name.log";

    # closed: a reserved port nobody listens on while the instance lives
    if ($o->{closed}) {
        $self->{sinks}{$name} = { port => $self->_port, log => $log };
        open my $fh, '>', $log or die "$log: $!";
        close $fh;
        $self->{offsets}{$name} = 0;
        return;
    }

    my @cmd = ($^X, $SINK, '--name', $name, '--log', $log);
    push @cmd, '--status', $o->{status} if $o->{status};
    push @cmd, '--mode', $o->{mode} if $o->{mode};

    # the sink listens on a port of ours (a program outside the scheme
    # may have taken it since lock_port() looked: another one then)
    my $line;
    for my $try (1 .. 5) {
        my $port = $self->_port;
        my $pid = open(my $out, '-|', @cmd, '--port', $port)
            // die "cannot start sink: $!";
        $line = <$out>;
        if (defined $line && $line =~ /^PORT $port$/) {
            $self->{sinks}{$name} = { pid => $pid, fh => $out,
                                      port => $port, log => $log };
            $self->{offsets}{$name} = 0;
            return;
        }
        close $out;
        $self->_release_port($port);
    }
    die "sink $name did not report its port: " . ($line // 'EOF');
}

# ---------------------------------------------------------------------
# ports, as nginx's own test suite (nginx-tests, lib/Test/Nginx.pm port())
# allocates them: from a fixed range outside the kernel's ephemeral range
# (/proc/sys/net/ipv4/ip_local_port_range), so the kernel never hands one
# of them to a bind(port 0) or to an outgoing connection; each held by a
# lock, a UDP socket bound to the same number on 127.0.0.1 without
# SO_REUSEADDR, for as long as the port is in use.  Another test process
# (prove -j2, or a second run on the same machine) cannot bind that lock,
# so it never picks the port: a port is listened on only by whoever holds
# its lock, and a "closed" destination's port stays unlistened while its
# instance lives.  CONSENT_TEST_PORTS=LO-HI overrides the range.

our ($PORT_LO, $PORT_HI) = port_range();

sub port_range {
    return ($1, $2)
        if ($ENV{CONSENT_TEST_PORTS} // '') =~ /^(\d+)-(\d+)$/ && $1 < $2;
    my ($elo, $ehi) = (32768, 60999);
    if (open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
        ($elo, $ehi) = ($1, $2) if (<$fh> // '') =~ /^\s*(\d+)\s+(\d+)/;
        close $fh;
    }
    # the larger gap above 10000 (below: well-known services, Redis...)
    my @gaps = sort { ($b->[1] - $b->[0]) <=> ($a->[1] - $a->[0]) }
               ([10000, $elo - 1], [$ehi + 1, 65535]);
    die "no port range of 1000 outside the ephemeral range $elo-$ehi: "
        . "set CONSENT_TEST_PORTS=LO-HI\n"
        if $gaps[0][1] - $gaps[0][0] < 1000;
    return @{ $gaps[0] };
}

# A port of the range that no other holder of our locks uses and nothing
# listens on now: ($port, $lock).  The port is ours while $lock is open.
sub lock_port {
    for (1 .. 500) {
        my $port = $PORT_LO + int rand($PORT_HI - $PORT_LO + 1);
        my $lock = IO::Socket::INET->new(Proto => 'udp',
                                         LocalAddr => "127.0.0.1:$port")
            or next;
        # a program outside this scheme listening there: skip the port
        my $probe = IO::Socket::INET->new(Proto => 'tcp',
                                          LocalAddr => "127.0.0.1:$port",
                                          Listen => 1, ReuseAddr => 1)
            or next;
        close $probe;
        return ($port, $lock);
    }
    die "no free port in $PORT_LO-$PORT_HI\n";
}

# A port reserved until this process exits (a test's own listeners).
my %RESERVED;

sub reserve_port {
    my ($port, $lock) = lock_port();
    $RESERVED{$port} = $lock;
    return $port;
}

# the old name: ports are no longer probed and released
*free_port = \&reserve_port;

# A port for this instance: reserved until the instance is cleaned up.
sub _port {
    my ($self) = @_;
    my ($port, $lock) = lock_port();
    $self->{port_locks}{$port} = $lock;
    return $port;
}

sub _release_port {
    my ($self, $port) = @_;
    close delete $self->{port_locks}{$port} if $self->{port_locks}{$port};
}

sub port   { $_[0]{port} }
sub prefix { $_[0]{prefix} }
sub sink_port { $_[0]{sinks}{$_[1]}{port} }

sub _subst {
    my ($self, $text) = @_;
    $text =~ s{%%PORT_(\w+)%%}{
        exists $self->{sinks}{$1} ? $self->{sinks}{$1}{port}
                                  : die "no destination $1 for %%PORT_$1%%"
    }ge;
    $text =~ s/%%PREFIX%%/$self->{prefix}/g;
    $text =~ s/%%NGINX_PORT%%/$self->{port}/g;
    return $text;
}

sub _write_conf {
    my ($self) = @_;

    my $p = $self->{prefix};
    my $server = $self->_subst($self->{server});
    my $locations = $self->_subst($self->{locations});

    my $conf = '';
    $conf .= "load_module $MODULE;\n" unless $self->{no_module};
    $conf .= "user root;\n" if $> == 0;
    $conf .= <<"EOF";
worker_processes 2;
master_process on;
daemon on;
pid $p/nginx.pid;
error_log $p/error.log info;
EOF
    $conf .= $self->_subst($self->{main});
    $conf .= <<"EOF";

events {
    worker_connections 1024;
}

http {
    access_log $p/access.log;
    client_body_temp_path $p/client_body;
    proxy_temp_path       $p/proxy;
    fastcgi_temp_path     $p/fastcgi;
    uwsgi_temp_path       $p/uwsgi;
    scgi_temp_path        $p/scgi;

EOF
    $conf .= $self->_subst($self->{http}) . "\n";

    my $upstreams = '';
    my $dest_locs = '';
    for my $name (sort keys %{ $self->{dests} }) {
        my $o = $self->{dests}{$name};
        my $port = $self->{sinks}{$name}{port};
        my $path = $o->{path} // "/$name";
        my $extra = $self->_subst($o->{extra} // '');
        next if ($server . $locations) =~ m{location\s+/_dest/\Q$name\E\s*\{};
        my $target;
        my $ka = '';
        my $keepalive = $o->{keepalive} // 4;
        if ($keepalive) {
            $upstreams .= "    upstream sink_$name {\n"
                        . "        server 127.0.0.1:$port;\n"
                        . "        keepalive $keepalive;\n    }\n";
            $target = "http://sink_$name$path";
            $ka = "            proxy_http_version 1.1;\n"
                . "            proxy_set_header Connection \"\";\n";
        } else {
            $target = "http://127.0.0.1:$port$path";
        }
        $dest_locs .= <<"EOF";
        location /_dest/$name {
            internal;
            proxy_set_header Content-Type application/json;
$ka            proxy_pass $target;
$extra
        }
EOF
    }

    $conf .= $upstreams;
    $conf .= "    server {\n        listen 127.0.0.1:$self->{port};\n";
    $conf .= $server . "\n";
    $conf .= "        location /v1/ { consent_ingest; }\n"
        unless $self->{no_module}
            || ($server . $locations) =~ m{location\s+(=\s*)?/v1/?\s*\{};
    $conf .= $locations . "\n";
    $conf .= $dest_locs;
    $conf .= "    }\n}\n";

    open my $fh, '>', "$p/nginx.conf" or die "$p/nginx.conf: $!";
    print {$fh} $conf;
    close $fh;
    $self->{conf} = $conf;
}

sub conf_text { $_[0]{conf} }

# Replaces snippets (http, server, locations, main) and rewrites
# PREFIX/nginx.conf, same ports and sinks; reload() applies it.
sub reconfigure {
    my ($self, %args) = @_;
    for my $k (qw(http server locations main)) {
        $self->{$k} = $args{$k} if exists $args{$k};
    }
    $self->_write_conf;
}

# HUP to the master.  Waits (bounded) until both new workers started and
# both old ones exited, so that whatever the master did at configuration
# time is done and later requests see the new configuration.  Returns
# true if that happened.  With fail => qr/.../, the configuration is
# expected to be rejected: waits for the master's [emerg] line matching
# it instead, and stop() does not count that line as an error.
sub reload {
    my ($self, %o) = @_;
    my $off = -s "$self->{prefix}/error.log" // 0;
    my $pid = $self->master_pid;
    # the master blocks its signals just before it starts its workers; a
    # HUP caught before that only sets a flag, read after the next signal
    # (a reload lost under load): wait for a "start worker process" first
    my $ready = time + 10;
    sleep 0.02 while time < $ready
                     && $self->error_log !~ /start worker process \d+/;
    return 0 unless $pid && kill 'HUP', $pid;
    my $deadline = time + 20;
    while (time < $deadline) {
        my $text = substr($self->error_log, $off);
        if ($o{fail}) {
            my ($line) = grep { /\[emerg\]/ && $_ =~ $o{fail} }
                         split /\n/, $text;
            if (defined $line) {
                $self->{expected_emerg}{$line} = 1;
                return 1;
            }
        } else {
            my $started = () = $text =~ /start worker process \d+/g;
            my $exited = () = $text =~ /worker process \d+ exited with code/g;
            return 1 if $started >= 2 && $exited >= 2;
        }
        sleep 0.05;
    }
    return 0;
}

sub _run {
    my (@cmd) = @_;
    # an instance's daemon keeps running: its reports are read at stop()
    my $dir = $SAN_DIR // (($MEMCHECK || $ENV{CONSENT_TEST_PRELOAD})
                           ? _san_dir() : undef);
    my %env = _san_env($dir);
    my %seen = map { $_ => 1 }
               ($MEMCHECK && !$SAN_DIR ? _san_reports($dir) : ());
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        @ENV{keys %env} = values %env;
        open STDERR, '>&', \*STDOUT;
        exec _valgrind($dir), @cmd or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $rc = $? >> 8;
    if ($MEMCHECK && !$SAN_DIR) {
        my @new = grep { !$seen{$_} } _san_reports($dir);
        local $Test::Builder::Level = $Test::Builder::Level + 1;
        if (@new) {
            Test::More::ok(0, "no sanitizer report from @cmd");
            Test::More::diag(join "\n", @new);
        }
    }
    return ($rc, $out);
}

sub master_pid {
    my ($self) = @_;
    my $file = "$self->{prefix}/nginx.pid";
    # the daemonised master writes its pid file just after the starting
    # process returned: bounded poll
    my $deadline = time + 10;
    while (time < $deadline) {
        if (open my $fh, '<', $file) {
            my $pid = <$fh>;
            close $fh;
            return $1 if defined $pid && $pid =~ /^(\d+)\s*$/;
        }
        sleep 0.02;
    }
    return undef;
}

sub stop {
    my ($self) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return if $self->{stopped} || $self->{owner} != $$;
    $self->{stopped} = 1;

    if (!$self->{started}) {
        $self->_kill_sinks;
        $self->_cleanup;
        return;
    }

    my $pid = $self->master_pid;
    my $quit_ok = 0;
    if ($pid) {
        # graceful quit (nginx -s quit), escalating if it does not finish
        $quit_ok = _signal_wait($pid, 'QUIT', 15);
        _signal_wait($pid, 'TERM', 5) || _signal_wait($pid, 'KILL', 5)
            unless $quit_ok;
    }

    $self->_kill_sinks;

    my $log = $self->error_log;
    my $after = substr($log, $self->{log_start} // 0);
    my @bad;
    push @bad, grep { /\[alert\]/ } split /\n/, $log;
    push @bad, grep { /\[emerg\]/ && !$self->{expected_emerg}{$_} }
               split /\n/, $after;
    push @bad, grep { /exited on signal/ && !/\[alert\]/ } split /\n/, $log;
    # ASan turns a crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, abort()) into
    # a report and exit code 1
    push @bad, _san_reports("$self->{prefix}/sanitizer") if $MEMCHECK;

    Test::More::ok($pid && $quit_ok,
                   "nginx quit gracefully (pid " . ($pid // 'none') . ")");
    Test::More::ok(!@bad, "error.log has no alert, emerg or crash"
                          . ($MEMCHECK ? "; no sanitizer report" : ''))
        or Test::More::diag(join "\n", @bad);

}

# The prefix (logs included) stays readable after stop() until the object
# goes away.
sub _cleanup {
    my ($self) = @_;
    return if $self->{owner} != $$ || $self->{cleaned}++;
    delete $LIVE{$self + 0};
    $self->_release_port($_) for keys %{ $self->{port_locks} // {} };
    remove_tree($self->{prefix}) unless $ENV{CONSENT_TEST_KEEP};
}

sub _signal_wait {
    my ($pid, $sig, $secs) = @_;
    kill $sig, $pid or return 1;     # already gone
    my $deadline = time + $secs;
    while (time < $deadline) {
        return 1 unless _alive($pid);
        sleep 0.02;
    }
    return 0;
}

# The daemonised master is not our child: once it exits it may stay a
# zombie until init reaps it, which counts as gone.
sub _alive {
    my ($pid) = @_;
    return 0 unless kill 0, $pid;
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh> // '';
        close $fh;
        return 0 if $stat =~ /^\d+ \(.*\) [ZX] /s;
    }
    return 1;
}

sub _kill_sinks {
    my ($self) = @_;
    for my $s (values %{ $self->{sinks} }) {
        next unless $s->{pid};
        kill 'TERM', $s->{pid};
        close $s->{fh};             # waits for the sink to exit
        delete $s->{pid};
    }
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@, $!);
    $self->stop;
    $self->_cleanup;
}

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{prefix}/error.log" or return '';
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s // '';
}


# ---------------------------------------------------------------------
# requests

sub _http {
    my ($self) = @_;
    return $self->{ua} //= HTTP::Tiny->new(timeout => 30, keep_alive => 0,
                                           agent => 'consent-test/1');
}

sub url { "http://127.0.0.1:$_[0]{port}$_[1]" }

sub request {
    my ($self, $method, $path, $body, $headers) = @_;
    my %o = (headers => { %{ $headers // {} } });
    $o{content} = $body if defined $body;
    my $res = $self->_http->request($method, $self->url($path), \%o);
    _decode_json_reply($res);
    return $res;
}

sub post {
    my ($self, $path, $body, $headers) = @_;
    my $h = { 'Content-Type' => 'application/json', %{ $headers // {} } };
    return $self->request('POST', $path, $body, $h);
}

sub _decode_json_reply {
    my ($res) = @_;
    $res->{json} = undef;
    if (defined $res->{content} && length $res->{content}) {
        $res->{json} = eval { $JSON->decode($res->{content}) };
    }
    return $res;
}

# Sends a hand-made request (bytes as given) and parses the reply:
# { status, headers => {lc name => value}, content, json, raw }.
sub raw_request {
    my ($self, $data) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 10)
        or die "connect: $@";
    binmode $s;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($s, $data, length($data) - $off, $off);
        die "write: $!" unless defined $n;
        $off += $n;
    }
    my $sel = IO::Select->new($s);
    my $raw = '';
    my $deadline = time + 30;
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, $raw, 65536, length $raw);
        last unless $n;
        # stop once a complete Content-Length reply is in
        if ($raw =~ /\A(.*?\r\n\r\n)/s) {
            my $head = $1;
            if ($head =~ /^Content-Length:\s*(\d+)/mi
                && length($raw) >= length($head) + $1)
            {
                last;
            }
        }
    }
    close $s;
    return parse_reply($raw);
}

sub parse_reply {
    my ($raw) = @_;
    my %res = (raw => $raw, status => 0, headers => {}, content => '');
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return \%res unless defined $head;
    my ($line, @h) = split /\r\n/, $head;
    ($res{status}) = ($line // '') =~ m{^HTTP/\d\.\d (\d+)};
    $res{status} //= 0;
    for (@h) {
        my ($n, $v) = /^([^:]+):\s*(.*)$/ or next;
        $n = lc $n;
        $res{headers}{$n} = exists $res{headers}{$n}
                            ? "$res{headers}{$n}, $v" : $v;
    }
    $body //= '';
    if (($res{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($body, 0, $n);
            substr($body, 0, $n + 2) = '';
        }
        $body = $out;
    } elsif (defined $res{headers}{'content-length'}) {
        $body = substr($body, 0, $res{headers}{'content-length'});
    }
    $res{content} = $body;
    $res{success} = $res{status} >= 200 && $res{status} < 300;
    return _decode_json_reply(\%res);
}

# POST with a chunked request body: @chunks are sent as separate chunks.
sub post_chunked {
    my ($self, $path, $chunks, $headers) = @_;
    my $req = "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            . "Connection: close\r\nContent-Type: application/json\r\n"
            . "Transfer-Encoding: chunked\r\n";
    $req .= "$_: $headers->{$_}\r\n" for sort keys %{ $headers // {} };
    $req .= "\r\n";
    $req .= sprintf("%x\r\n%s\r\n", length $_, $_) for @$chunks;
    $req .= "0\r\n\r\n";
    return $self->raw_request($req);
}


# ---------------------------------------------------------------------
# what the sinks received

sub _read_log {
    my ($self, $name) = @_;
    my $s = $self->{sinks}{$name} or die "no destination '$name'";
    open my $fh, '<', $s->{log} or return ('', 0);
    binmode $fh;
    local $/;
    my $all = <$fh> // '';
    close $fh;
    # a sink still writing its last record: that line is not one yet
    my $end = rindex($all, "\n") + 1;
    my $off = $self->{offsets}{$name};
    return ($end > $off ? substr($all, $off, $end - $off) : '', $end);
}

# Records of the requests NAME received since the last clear():
# { name, method, uri, headers, body (raw bytes), json (decoded or undef) }
sub received {
    my ($self, $name) = @_;
    my ($text) = $self->_read_log($name);
    my $lat = JSON::PP->new->latin1;
    my @r;
    for my $line (split /\n/, $text) {
        my $rec = $lat->decode($line);
        $rec->{json} = eval { $JSON->decode($rec->{body}) };
        push @r, $rec;
    }
    return @r;
}

# Decoded events of all batches NAME received since the last clear().
sub received_events {
    my ($self, $name) = @_;
    my @ev;
    for my $r ($self->received($name)) {
        die "destination $name got a body that is not a JSON batch: "
            . $r->{body}
            unless ref $r->{json} eq 'HASH' && ref $r->{json}{batch} eq 'ARRAY';
        push @ev, @{ $r->{json}{batch} };
    }
    return @ev;
}

# Raw text of every event NAME received since the last clear(), in order.
sub received_raw_events {
    my ($self, $name) = @_;
    my @ev;
    for my $r ($self->received($name)) {
        my $m = raw_members($r->{body})
            or die "destination $name got an unparsable body: $r->{body}";
        my ($batch) = grep { $_->[0] eq '"batch"' } @$m;
        die "no batch in $r->{body}" unless $batch;
        push @ev, @{ raw_elements($batch->[1]) };
    }
    return @ev;
}

# Number of requests NAME received since the last clear().
sub count {
    my ($self, $name) = @_;
    my @r = $self->received($name);
    return scalar @r;
}

sub clear {
    my ($self) = @_;
    for my $name (keys %{ $self->{sinks} }) {
        my (undef, $len) = $self->_read_log($name);
        $self->{offsets}{$name} = $len;
    }
}

sub dest_names { sort keys %{ $_[0]{dests} } }

# The counters of a consent_status location (default /status), from its
# Prometheus text: { "name{labels}" => value }.
sub metrics {
    my ($self, $path) = @_;
    my $res = $self->request('GET', $path // '/status');
    die "status: $res->{status}" unless $res->{status} == 200;
    my %m;
    for (split /\n/, $res->{content}) {
        $m{$1} = $2 if /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/;
    }
    return \%m;
}

# Events of destination NAME counted under OUTCOME (delivered, failed...).
sub dest_events {
    my ($self, $name, $outcome) = @_;
    return $self->metrics->{qq(ngx_consent_events_total{destination=)
                            . qq("$name",outcome="$outcome"})} // 0;
}

# The error log's lines for failed deliveries to destination NAME.
sub failed_lines {
    my ($self, $name) = @_;
    return $self->error_log
        =~ /^.*destination "\Q$name\E" \(\S+\) failed with status.*$/mg;
}

# POSTs $body to $path (with optional extra headers) after a clear(),
# asserts the error reply (reply_is) and that nothing was forwarded;
# returns the reply.
sub refused_ok {
    my ($self, $desc, $path, $body, $status, $code, $message, $headers) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $self->clear;
    my $res = $self->post($path, $body, $headers);
    reply_is($res, $status, $code, $message, $desc);
    $self->nothing_received("$desc: nothing forwarded");
    return $res;
}

# Asserts that no destination received anything since the last clear().
sub nothing_received {
    my ($self, $msg) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @got = grep { $self->count($_) } $self->dest_names;
    return Test::More::ok(!@got, $msg // 'no destination received anything')
        || Test::More::diag("received: @got");
}


# Sorted names of the destinations that received an event whose "event"
# (or, with a third argument, another member) equals $value.
sub routed {
    my ($self, $value, $key) = @_;
    $key //= 'event';
    my @d;
    for my $name ($self->dest_names) {
        next if ($self->{dests}{$name}{closed});
        push @d, $name
            if grep { ref $_ eq 'HASH' && defined $_->{$key}
                      && $_->{$key} eq $value } $self->received_events($name);
    }
    return @d;
}

# Posts one track event named "E<n>" (n counts per harness) with the
# extra members $event (JSON text without braces, or ''), asserts it was
# accepted and reached exactly the destinations @$expect, and returns
# the categoryPreferences the unmapped destination $witness (default
# "webhook", which gets every accepted event) received, or undef. Serves
# the Lua mapping tests (t/21, t/23).
sub route_prefs {
    my ($self, $desc, $path, $event, $headers, $expect, $witness) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $n = ++$self->{route_n};
    my $name = "E$n";
    my $body = qq({"userId":"u$n","event":"$name") . ($event ? ",$event" : '')
             . '}';
    $self->clear;
    my $res = $self->post($path, $body, $headers);
    accepted_ok($res, $desc);
    Test::More::is_deeply([$self->routed($name)], $expect,
                          "$desc: destinations");
    my ($ev) = grep { $_->{event} eq $name }
               $self->received_events($witness // 'webhook');
    return $ev ? $ev->{context}{consent}{categoryPreferences} : undef;
}

# Asserts an error reply: status, JSON content type, success false, code
# and (when defined) message (a string for equality or a qr//).
sub reply_is {
    my ($res, $status, $code, $message, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $desc //= "$status $code";
    my $ok = 1;
    $ok &&= Test::More::is($res->{status}, $status, "$desc: status $status");
    $ok &&= Test::More::like($res->{headers}{'content-type'} // '',
                             qr{^application/json}, "$desc: JSON reply");
    my $j = $res->{json};
    $ok &&= Test::More::ok(ref $j eq 'HASH', "$desc: reply is a JSON object")
        or Test::More::diag("reply: " . ($res->{content} // ''));
    return 0 unless ref $j eq 'HASH';
    $ok &&= Test::More::ok(defined $j->{success} && !$j->{success},
                           "$desc: success false");
    $ok &&= Test::More::is($j->{code}, $code, "$desc: code $code");
    if (defined $message) {
        if (ref $message eq 'Regexp') {
            $ok &&= Test::More::like($j->{message}, $message,
                                     "$desc: message");
        } else {
            $ok &&= Test::More::is($j->{message}, $message, "$desc: message");
        }
    }
    Test::More::diag("reply: $res->{content}") unless $ok;
    return $ok;
}

# Asserts a 200 {"success":true} reply without "rejected".
sub accepted_ok {
    my ($res, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $desc //= 'accepted';
    my $ok = Test::More::is($res->{status}, 200, "$desc: status 200");
    $ok &&= Test::More::is($res->{content}, '{"success":true}',
                           "$desc: body {\"success\":true}");
    Test::More::diag("reply: $res->{content}") unless $ok;
    return $ok;
}

# ---------------------------------------------------------------------
# raw JSON slicing (no re-serialisation: byte offsets of the source)

# Skips one JSON value at pos($$s); returns [start, end).
sub _skip_value {
    my ($s) = @_;
    $$s =~ /\G[ \t\r\n]*/gc;
    my $start = pos($$s);
    if ($$s =~ /\G"(?:[^"\\]|\\.)*"/gcs) {
    } elsif ($$s =~ /\G[{\[]/gc) {
        my $depth = 1;
        while ($depth) {
            if ($$s =~ /\G"(?:[^"\\]|\\.)*"/gcs) { next }
            if ($$s =~ /\G[{\[]/gc) { $depth++; next }
            if ($$s =~ /\G[}\]]/gc) { $depth--; next }
            if ($$s =~ /\G[^"{}\[\]]+/gc) { next }
            die "unterminated JSON at $start";
        }
    } elsif ($$s =~ /\G[^,}\] \t\r\n]+/gc) {
    } else {
        die "no JSON value at $start";
    }
    return [$start, pos($$s)];
}

# The members of a JSON object as [raw key, raw value] pairs.
sub raw_members {
    my ($text) = @_;
    my @m;
    my $ok = eval {
        pos($text) = 0;
        $text =~ /\G[ \t\r\n]*\{[ \t\r\n]*/gc or die "not an object";
        if ($text =~ /\G\}/gc) { return 1 }
        for (;;) {
            my $k = _skip_value(\$text);
            $text =~ /\G[ \t\r\n]*:/gc or die "no colon";
            my $v = _skip_value(\$text);
            push @m, [substr($text, $k->[0], $k->[1] - $k->[0]),
                      substr($text, $v->[0], $v->[1] - $v->[0])];
            $text =~ /\G[ \t\r\n]*/gc;
            next if $text =~ /\G,/gc;
            last if $text =~ /\G\}/gc;
            die "bad object";
        }
        1;
    };
    return $ok ? \@m : undef;
}

# The elements of a JSON array as raw texts.
sub raw_elements {
    my ($text) = @_;
    my @e;
    pos($text) = 0;
    $text =~ /\G[ \t\r\n]*\[[ \t\r\n]*/gc or die "not an array: $text";
    return \@e if $text =~ /\G\]/gc;
    for (;;) {
        my $v = _skip_value(\$text);
        push @e, substr($text, $v->[0], $v->[1] - $v->[0]);
        $text =~ /\G[ \t\r\n]*/gc;
        next if $text =~ /\G,/gc;
        last if $text =~ /\G\]/gc;
        die "bad array: $text";
    }
    return \@e;
}


# ---------------------------------------------------------------------
# nginx -t

# Runs `nginx -t` on a generated config.  Returns ($exit, $output, $path
# of the config).  Options: server => '...', main => '...'.
sub nginx_t {
    my ($http, %o) = @_;
    _check_module();
    my $p = tempdir('consent-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my ($port, $lock) = lock_port();     # held until nginx -t is done
    my $conf = "load_module $MODULE;\n";
    $conf .= "user root;\n" if $> == 0;
    $conf .= "pid $p/nginx.pid;\nerror_log $p/error.log info;\n";
    $conf .= $o{main} // '';
    $conf .= "events { worker_connections 64; }\nhttp {\n"
           . "    access_log off;\n"
           . "    client_body_temp_path $p/cb;\n"
           . "    proxy_temp_path $p/px;\n"
           . "    fastcgi_temp_path $p/fc;\n"
           . "    uwsgi_temp_path $p/uw;\n"
           . "    scgi_temp_path $p/sc;\n"
           . $http . "\n"
           . "    server {\n        listen 127.0.0.1:$port;\n"
           . ($o{server} // "        location /v1/ { consent_ingest; }\n")
           . "    }\n}\n";
    open my $fh, '>', "$p/nginx.conf" or die "$p/nginx.conf: $!";
    print {$fh} $conf;
    close $fh;
    my ($rc, $out) = _run($NGINX, '-t', '-p', $p, '-c', "$p/nginx.conf",
                          '-e', "$p/error.log");
    return ($rc, $out, "$p/nginx.conf", $p);
}

# Writes TEXT to DIR/NAME (a hook file, say); returns the path.
sub write_file {
    my ($dir, $name, $text) = @_;
    my $f = "$dir/$name";
    open my $fh, '>', $f or die "$f: $!";
    print {$fh} $text;
    close $fh;
    return $f;
}

# 1-based line number of the first line of FILE matching RE.
sub line_of {
    my ($file, $re) = @_;
    open my $fh, '<', $file or die "$file: $!";
    while (my $l = <$fh>) {
        return $. if $l =~ $re;
    }
    return undef;
}


# ---------------------------------------------------------------------
# event builders

sub json_encode { $JSON->encode($_[0]) }
sub json_decode { $JSON->decode($_[0]) }

# A consent context: prefs('C0002' => 1, 'C0004' => 0) -> context hash.
sub consent_ctx {
    my (%prefs) = @_;
    return { consent => { categoryPreferences => {
        map { $_ => ($prefs{$_} ? JSON::PP::true : JSON::PP::false) }
            keys %prefs } } };
}

1;
