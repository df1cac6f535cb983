#!/usr/bin/perl
#
# A small HTTP destination for ngx_consent: the demo's "analytics vendors"
# and the prove suite's upstreams.
#
#   perl demo/sink.pl --name NAME --log FILE [--status CODE] [--port N]
#                     [--mode normal|hang|close|partial] [--print]
#
# Binds 127.0.0.1:N (0 or none: the kernel picks a port; the prove suite
# passes one it holds the lock of, t/lib/ConsentTest.pm), prints
# "PORT <n>" on stdout, then for every request appends one JSON line
#   {"name":..,"method":..,"uri":..,"headers":{..},"body":".."}
# to FILE (written and closed BEFORE the reply, so whoever got the reply
# can read the log without racing), and answers CODE with {"ok":true}.
# "body" holds the raw body bytes, one JSON string character per byte.
# GET /_sink/received is not logged: it answers what the log holds, as
# {"name":..,"requests":[{"uri":..,"body":".."}...]} (bodies decoded as
# UTF-8 where they are), for the demo page's panel (demo/www).
# --mode hang: never answers; --mode close: closes without answering;
# --mode partial: sends the headers and part of the body, then closes.
# One process per connection; HTTP/1.1 keep-alive is supported.
# Exits on SIGTERM / SIGINT (and takes its connection children along).

use strict;
use warnings;

use Fcntl qw(:flock);
use Getopt::Long;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);

my %opt = (status => 200, port => 0, mode => 'normal');
GetOptions(\%opt, 'name=s', 'log=s', 'status=i', 'port=i', 'mode=s', 'print')
    or die "usage: $0 --name NAME --log FILE [--status CODE] [--port N] "
         . "[--mode normal|hang|close|partial] [--print]\n";

defined $opt{name} or die "$0: --name is required\n";
defined $opt{log}  or die "$0: --log is required\n";
$opt{mode} =~ /^(normal|hang|close|partial)$/
    or die "$0: --mode must be normal, hang, close or partial\n";

my $print = $opt{print} || -t STDOUT;

my $listen = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1',
    LocalPort => $opt{port},
    Proto     => 'tcp',
    Listen    => 128,
    ReuseAddr => 1,
) or die "$0: cannot listen on 127.0.0.1:$opt{port}: $@\n";

# the log exists from the start, so readers never see "no such file"
{
    open my $fh, '>>', $opt{log} or die "$0: cannot open $opt{log}: $!\n";
    close $fh;
}

$| = 1;
print "PORT ", $listen->sockport, "\n";

my $json_log = JSON::PP->new->canonical->latin1;   # lossless for raw bytes
my $json_in  = JSON::PP->new->utf8->relaxed;

my %children;
my $parent = $$;
my $stop = 0;

$SIG{CHLD} = sub {
    while ((my $pid = waitpid(-1, WNOHANG)) > 0) {
        delete $children{$pid};
    }
};
# closing the socket, not only setting $stop: a signal handled after the
# loop's test but before accept() enters the kernel would otherwise leave
# accept() waiting for ever (seen: a make test-prove hung in _kill_sinks)
$SIG{TERM} = $SIG{INT} = sub { $stop = 1; close $listen; };
$SIG{PIPE} = 'IGNORE';

while (!$stop) {
    my $conn = $listen->accept;
    if (!$conn) {
        next if $!{EINTR} || $!{ECONNABORTED};
        last if $stop;
        die "$0: accept: $!\n";
    }

    my $pid = fork;
    if (!defined $pid) {
        warn "$0: fork: $!\n";
        close $conn;
        next;
    }

    if ($pid == 0) {
        $SIG{CHLD} = 'DEFAULT';
        $SIG{TERM} = $SIG{INT} = sub { POSIX::_exit(0) };
        close $listen;
        serve($conn);
        POSIX::_exit(0);
    }

    $children{$pid} = 1;
    close $conn;
}

kill 'TERM', keys %children if %children;
exit 0;


sub serve {
    my ($c) = @_;
    binmode $c;
    my $buf = '';

    for (;;) {
        my $req = read_request($c, \$buf) or return;

        if ($req->{method} eq 'GET'
            && $req->{uri} =~ m{^/_sink/received(?:\?|$)})
        {
            reply($c, $req, 200, received_json()) or return;
            next;
        }

        log_request($req);

        if ($opt{mode} eq 'hang') {
            # keep the connection open, never answer; the parent's TERM
            # (or the peer closing) ends us
            1 while sysread($c, my $junk, 65536);
            # the peer closed: keep sleeping until told to stop
            sleep 3600 while 1;
        }

        if ($opt{mode} eq 'close') {
            close $c;
            return;
        }

        if ($opt{mode} eq 'partial') {
            write_all($c, "HTTP/1.1 200 OK\r\nContent-Type: application/json"
                        . "\r\nContent-Length: 100\r\n\r\n{\"ok\":");
            close $c;
            return;
        }

        my $body = $opt{status} >= 200 && $opt{status} < 300
                   ? '{"ok":true}' : '{"ok":false}';
        reply($c, $req, $opt{status}, $body) or return;
    }
}


# Answers STATUS with the JSON BODY; false when the connection is done
# (write error, or the client did not ask for keep-alive).
sub reply {
    my ($c, $req, $status, $body) = @_;
    my $keep = $req->{keepalive};
    my $reply = "HTTP/1.1 $status " . reason($status) . "\r\n"
              . "Content-Type: application/json\r\n"
              . "Content-Length: " . length($body) . "\r\n"
              . ($keep ? "Connection: keep-alive\r\n"
                       : "Connection: close\r\n")
              . "\r\n" . $body;
    write_all($c, $reply) or return 0;
    return $keep;
}


# The log's requests as the JSON text GET /_sink/received answers.
sub received_json {
    my @req;
    if (open my $fh, '<', $opt{log}) {
        binmode $fh;
        flock $fh, LOCK_SH;
        while (my $line = <$fh>) {
            my $rec = eval { $json_log->decode($line) } or next;
            my $body = $rec->{body};
            utf8::decode($body);     # stays bytes when not UTF-8
            push @req, { uri => $rec->{uri}, body => $body };
        }
        close $fh;
    }
    return JSON::PP->new->utf8->canonical->encode(
        { name => $opt{name}, requests => \@req });
}


# Reads one request from $c (with leftover bytes in $$buf).  Returns
# { method, uri, version, headers, body, keepalive } or undef on EOF/error.
sub read_request {
    my ($c, $buf) = @_;

    my $end;
    until (($end = index($$buf, "\r\n\r\n")) >= 0) {
        return undef unless fill($c, $buf);
        return undef if length($$buf) > 1024 * 1024;
    }

    my $head = substr($$buf, 0, $end);
    substr($$buf, 0, $end + 4) = '';

    my ($line, @lines) = split /\r\n/, $head;
    my ($method, $uri, $version) = $line =~ m{^(\S+) (\S+) HTTP/(\d\.\d)$}
        or return undef;

    my %h;
    for (@lines) {
        my ($n, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $n = lc $n;
        $h{$n} = exists $h{$n} ? "$h{$n}, $v" : $v;
    }

    my $body = '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        for (;;) {
            my $e;
            until (($e = index($$buf, "\r\n")) >= 0) {
                return undef unless fill($c, $buf);
            }
            my ($size) = substr($$buf, 0, $e) =~ /^([0-9a-fA-F]+)/
                or return undef;
            $size = hex $size;
            substr($$buf, 0, $e + 2) = '';
            if ($size == 0) {
                # trailers up to an empty line
                for (;;) {
                    until (($e = index($$buf, "\r\n")) >= 0) {
                        return undef unless fill($c, $buf);
                    }
                    my $t = substr($$buf, 0, $e);
                    substr($$buf, 0, $e + 2) = '';
                    last if $t eq '';
                }
                last;
            }
            while (length($$buf) < $size + 2) {
                return undef unless fill($c, $buf);
            }
            $body .= substr($$buf, 0, $size);
            substr($$buf, 0, $size + 2) = '';
        }

    } elsif (defined $h{'content-length'}) {
        my $len = $h{'content-length'};
        $len =~ /^\d+$/ or return undef;
        while (length($$buf) < $len) {
            return undef unless fill($c, $buf);
        }
        $body = substr($$buf, 0, $len);
        substr($$buf, 0, $len) = '';
    }

    my $conn = lc($h{connection} // '');
    my $keep = $version eq '1.1' ? $conn !~ /close/ : $conn =~ /keep-alive/;

    return { method => $method, uri => $uri, version => $version,
             headers => \%h, body => $body, keepalive => $keep };
}


sub fill {
    my ($c, $buf) = @_;
    for (;;) {
        my $n = sysread($c, $$buf, 65536, length $$buf);
        return $n if defined $n;
        next if $!{EINTR};
        return 0;
    }
}


sub write_all {
    my ($c, $data) = @_;
    while (length $data) {
        my $n = syswrite($c, $data);
        if (!defined $n) {
            next if $!{EINTR};
            return 0;
        }
        substr($data, 0, $n) = '';
    }
    return 1;
}


sub log_request {
    my ($req) = @_;

    my $line = $json_log->encode({
        name    => $opt{name},
        method  => $req->{method},
        uri     => $req->{uri},
        headers => $req->{headers},
        body    => $req->{body},
    }) . "\n";

    open my $fh, '>>', $opt{log} or die "$0: cannot open $opt{log}: $!\n";
    binmode $fh;
    flock $fh, LOCK_EX;
    print {$fh} $line;
    close $fh or die "$0: cannot write $opt{log}: $!\n";

    return unless $print;

    my $what = '';
    my $data = eval { $json_in->decode($req->{body}) };
    if (ref $data eq 'HASH') {
        my @ev = ref $data->{batch} eq 'ARRAY' ? @{ $data->{batch} } : ($data);
        my @d = map {
            ref $_ eq 'HASH'
                ? ($_->{type} // '?')
                  . (defined $_->{event} ? "/$_->{event}" : '')
                : '?'
        } @ev;
        $what = scalar(@ev) . " event" . (@ev == 1 ? '' : 's')
              . ": " . join(', ', @d);
    } else {
        $what = length($req->{body}) . " bytes";
    }
    my $out = "[$opt{name}] $req->{method} $req->{uri}  $what\n";
    utf8::encode($out) if utf8::is_utf8($out);
    syswrite STDOUT, $out;
}


sub reason {
    my %r = (200 => 'OK', 201 => 'Created', 202 => 'Accepted',
             204 => 'No Content', 400 => 'Bad Request', 404 => 'Not Found',
             429 => 'Too Many Requests', 500 => 'Internal Server Error',
             502 => 'Bad Gateway', 503 => 'Service Unavailable');
    return $r{$_[0]} // 'Status';
}
