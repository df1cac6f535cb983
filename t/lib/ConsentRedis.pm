package ConsentRedis;

# A real redis-server for the consent profile tests (issue 13, t/42):
# started on a port of ConsentTest's range (reserved, see ConsentTest
# "ports"), bound to 127.0.0.1 and optionally a unix socket, no
# persistence, not daemonised (our child), in a temporary directory.
#
#   my $r = ConsentRedis->new;            # waits until PING answers
#   $r->port; $r->addr;                   # "127.0.0.1:PORT"
#   $r->cmd('HGETALL', 'consent:{u:U}');  # RESP reply (see cmd)
#   $r->commandstats->{hget}{calls};      # INFO commandstats
#   $r->stop;  $r->start;                 # same port, data gone
#   $r->pause; $r->resume;                # SIGSTOP / SIGCONT: a slow store
#
# ConsentRedis::fake(sub { ... }) starts a TCP server answering every
# read with the sub's bytes (a store that answers garbage).
#
# Synchronisation: start() polls PING (bounded) until the server
# answers; stop() waits for the process to exit.  Nothing sleeps as
# synchronisation.  Under the harness's ASan/valgrind modes redis-server
# runs as is: the child drops LD_PRELOAD and the sanitizer variables, it
# is never put under valgrind.  Every server still running is killed at
# END (a test that died included).

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Scalar::Util ();
use Time::HiRes qw(sleep time);

use ConsentTest;

our $SERVER = $ENV{CONSENT_TEST_REDIS} || '/usr/bin/redis-server';

our %LIVE;
our @FAKES;
END {
    local $?;
    for my $r (grep { defined } values %LIVE) {
        $r->_kill('KILL');
    }
}

sub available { -x $SERVER }

# new(unix => 1): also listen on DIR/redis.sock (unix_path)
sub new {
    my ($class, %o) = @_;
    die "$SERVER not found: sh scripts/deps.sh\n" unless available();
    my $self = bless {
        dir   => tempdir('consent-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1),
        unix  => $o{unix},
        owner => $$,
    }, $class;
    $self->{port} = ConsentTest::reserve_port();
    $LIVE{$self + 0} = $self;
    Scalar::Util::weaken($LIVE{$self + 0});
    $self->start;
    return $self;
}

sub port { $_[0]{port} }
sub addr { "127.0.0.1:$_[0]{port}" }
sub dir  { $_[0]{dir} }
sub pid  { $_[0]{pid} }
sub unix_path { "$_[0]{dir}/redis.sock" }

sub start {
    my ($self) = @_;
    die "redis already running\n" if $self->{pid};
    my @cmd = ($SERVER, '--port', $self->{port}, '--bind', '127.0.0.1',
               '--save', '', '--appendonly', 'no', '--dir', $self->{dir},
               '--daemonize', 'no', '--loglevel', 'warning',
               '--logfile', "$self->{dir}/redis.log",
               '--protected-mode', 'no');
    push @cmd, '--unixsocket', $self->unix_path, '--unixsocketperm', '777'
        if $self->{unix};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        delete @ENV{qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS)};
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/redis.out";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    delete $self->{sock};
    # bounded poll: the server answers PING once it listens
    my $deadline = time + 20;
    while (time < $deadline) {
        my $got = eval { $self->cmd('PING') };
        return $self if defined $got && $got eq 'PONG';
        delete $self->{sock};
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            die "redis-server exited at start:\n" . $self->server_log . "\n";
        }
        sleep 0.02;
    }
    $self->_kill('KILL');
    die "redis-server did not answer PING within 20 s:\n" . $self->server_log;
}

sub server_log {
    my ($self) = @_;
    my $s = '';
    for my $f (qw(redis.out redis.log)) {
        open my $fh, '<', "$self->{dir}/$f" or next;
        local $/;
        $s .= <$fh> // '';
        close $fh;
    }
    return $s;
}

# Stops the server (SIGTERM, as a shutdown: it closes its clients) and
# waits for it to exit.  The port stays reserved: start() reuses it.
sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    $self->resume if $self->{paused};
    delete $self->{sock};
    $self->_kill('TERM', 15) or $self->_kill('KILL', 5);
}

sub restart {
    my ($self) = @_;
    $self->stop;
    return $self->start;
}

# SIGSTOP: connections are still accepted (the kernel's backlog), nothing
# is answered: a store that is slow
sub pause {
    my ($self) = @_;
    kill 'STOP', $self->{pid} or die "SIGSTOP: $!";
    $self->{paused} = 1;
}

sub resume {
    my ($self) = @_;
    return unless $self->{paused};
    kill 'CONT', $self->{pid};
    delete $self->{paused};
}

sub _kill {
    my ($self, $sig, $secs) = @_;
    my $pid = $self->{pid} or return 1;
    return 1 if $self->{owner} != $$;
    kill 'CONT', $pid if $self->{paused};
    kill $sig, $pid;
    my $deadline = time + ($secs // 10);
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            delete $self->{paused};
            return 1;
        }
        sleep 0.01;
    }
    return 0;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@, $!);
    return if $self->{owner} != $$;
    $self->_kill('KILL');
    delete $LIVE{$self + 0};
}


# ---------------------------------------------------------------------
# a RESP2 client, one connection kept open (reconnects when it broke)

sub _sock {
    my ($self) = @_;
    return $self->{sock} if $self->{sock};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 5)
        or die "connect redis: $@\n";
    binmode $s;
    $self->{buf} = '';
    return $self->{sock} = $s;
}

sub encode_command {
    my (@args) = @_;
    my $out = '*' . scalar(@args) . "\r\n";
    for my $a (@args) {
        $a //= '';
        utf8::encode($a) if utf8::is_utf8($a);
        $out .= '$' . length($a) . "\r\n$a\r\n";
    }
    return $out;
}

sub _fill {
    my ($self, $deadline) = @_;
    my $s = $self->{sock};
    my $sel = IO::Select->new($s);
    my $left = $deadline - time;
    die "redis: no reply within the deadline\n"
        if $left <= 0 || !$sel->can_read($left);
    my $n = sysread($s, $self->{buf}, 65536, length $self->{buf});
    if (!$n) {
        delete $self->{sock};
        die "redis: connection closed\n";
    }
}

sub _line {
    my ($self, $deadline) = @_;
    for (;;) {
        my $i = index($self->{buf}, "\r\n");
        if ($i >= 0) {
            my $l = substr($self->{buf}, 0, $i);
            substr($self->{buf}, 0, $i + 2) = '';
            return $l;
        }
        $self->_fill($deadline);
    }
}

# One reply: a string (simple or bulk), an integer, undef (nil), an
# array ref, or { err => 'ERR ...' } for an error reply.
sub _reply {
    my ($self, $deadline) = @_;
    my $l = $self->_line($deadline);
    my ($t, $v) = (substr($l, 0, 1), substr($l, 1));
    return $v if $t eq '+';
    return { err => $v } if $t eq '-';
    return $v + 0 if $t eq ':';
    if ($t eq '$') {
        return undef if $v < 0;
        $self->_fill($deadline) while length($self->{buf}) < $v + 2;
        my $s = substr($self->{buf}, 0, $v);
        substr($self->{buf}, 0, $v + 2) = '';
        return $s;
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [map { $self->_reply($deadline) } 1 .. $v];
    }
    die "redis: bad reply line '$l'\n";
}

# Runs one command; returns its reply (see _reply).
sub cmd {
    my ($self, @args) = @_;
    my $s = $self->_sock;
    my $req = encode_command(@args);
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($s, $req, length($req) - $off, $off);
        if (!defined $n) {
            delete $self->{sock};
            die "redis: write: $!\n";
        }
        $off += $n;
    }
    return $self->_reply(time + 10);
}

# Like cmd(), dies on an error reply.
sub ok_cmd {
    my ($self, @args) = @_;
    my $r = $self->cmd(@args);
    die "redis @args: $r->{err}\n" if ref $r eq 'HASH';
    return $r;
}

sub flushall { $_[0]->ok_cmd('FLUSHALL') }

# HGETALL as a hash ref (empty when the key does not exist)
sub hgetall {
    my ($self, $key) = @_;
    my $r = $self->ok_cmd('HGETALL', $key);
    return { @$r };
}

# Keys matching PATTERN, sorted.
sub keys_like {
    my ($self, $pattern) = @_;
    return sort @{ $self->ok_cmd('KEYS', $pattern // '*') };
}

# INFO commandstats: { lc command => { calls, usec, ... } }
sub commandstats {
    my ($self) = @_;
    my $text = $self->ok_cmd('INFO', 'commandstats');
    my %s;
    for (split /\r?\n/, $text) {
        next unless /^cmdstat_([^:]+):(.*)$/;
        my ($c, $kv) = (lc $1, $2);
        $s{$c} = { map { split /=/, $_, 2 } split /,/, $kv };
    }
    return \%s;
}

# calls of COMMAND (lower case; "evalsha", "hget", "script|load"...)
sub calls {
    my ($self, $c) = @_;
    return $self->commandstats->{$c}{calls} // 0;
}

sub reset_stats { $_[0]->ok_cmd('CONFIG', 'RESETSTAT') }

# INFO clients: connected_clients
sub clients {
    my ($self) = @_;
    my ($n) = $self->ok_cmd('INFO', 'clients') =~ /connected_clients:(\d+)/;
    return $n;
}


# ---------------------------------------------------------------------
# MONITOR: a second connection that collects the commands the server
# runs, as arrays of arguments

sub monitor {
    my ($self) = @_;
    my $m = bless { port => $self->{port}, owner => $$ }, 'ConsentRedis';
    $m->_sock;
    my $s = $m->{sock};
    syswrite($s, encode_command('MONITOR'));
    my $ok = $m->_reply(time + 10);
    die "MONITOR: " . (ref $ok ? $ok->{err} : $ok) . "\n" unless $ok eq 'OK';
    return $m;
}

# Commands seen by a monitor() connection until WANT of them matched
# FILTER (a code ref on the argument list, default: every command) or
# the deadline (seconds, default 5) passed: list of array refs.  MONITOR
# lines: +1700000000.123456 [0 127.0.0.1:1234] "cmd" "arg" ...
sub monitored {
    my ($m, $want, $filter, $secs, $stop) = @_;
    $filter //= sub { 1 };
    my $deadline = time + ($secs // 5);
    my @got;
    while (@got < $want && !($stop && $$stop)) {
        my $l = eval { $m->_line($deadline) };
        last unless defined $l;
        next unless $l =~ /^\+\d+\.\d+ \[[^\]]*\] (.*)$/;
        my $rest = $1;
        my @args;
        while ($rest =~ /\G"((?:[^"\\]|\\.)*)" ?/gc) {
            my $a = $1;
            $a =~ s/\\x([0-9a-f]{2})/chr hex $1/ge;
            $a =~ s/\\(.)/$1 eq 'n' ? "\n" : $1 eq 'r' ? "\r" : $1/ge;
            push @args, $a;
        }
        push @got, \@args if $filter->(@args);
    }
    return @got;
}


# Commands seen until one matches $last (a code ref on the argument
# list; it is included): send a sentinel (ECHO tag) from another
# connection after the requests, then read up to it.  Deadline 10 s.
sub monitored_until {
    my ($m, $last) = @_;
    my $done = 0;
    my @got = $m->monitored(1e9, sub { $done ||= $last->(@_); 1 }, 10,
                            \$done);
    return @got;
}


# ---------------------------------------------------------------------
# a fake store: a TCP server on a reserved port answering every read
# with $reply->($bytes_read) (garbage, say); ($port, $pid)

sub fake {
    my ($reply) = @_;
    my $port = ConsentTest::reserve_port();
    my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
                                  Listen => 64, ReuseAddr => 1)
        or die "fake store listen: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $sel = IO::Select->new($l);
        for (;;) {
            for my $fh ($sel->can_read) {
                if ($fh == $l) {
                    my $c = $l->accept or next;
                    binmode $c;
                    $sel->add($c);
                    next;
                }
                my $n = sysread($fh, my $buf, 65536);
                if (!$n) {
                    $sel->remove($fh);
                    close $fh;
                    next;
                }
                my $out = $reply->($buf);
                syswrite($fh, $out) if defined $out && length $out;
            }
        }
    }
    close $l;
    push @FAKES, $pid;
    return ($port, $pid);
}

END {
    local $?;
    for my $pid (@FAKES) {
        next unless $pid;
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
}

1;
