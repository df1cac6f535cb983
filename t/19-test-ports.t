# The harness's ports (t/lib/ConsentTest.pm, as nginx-tests' port()):
# from a fixed range outside the kernel's ephemeral range, each held by a
# lock that another test process cannot take, so no two test processes
# (prove -j2, parallel runs) share a port and a "closed" destination's
# port is never listened on while its instance lives.

use strict;
use warnings;
use lib 't/lib';

use IO::Socket::INET;
use Test::More;
use ConsentTest;

my ($lo, $hi) = ($ConsentTest::PORT_LO, $ConsentTest::PORT_HI);

SKIP: {
    open my $fh, '<', '/proc/sys/net/ipv4/ip_local_port_range'
        or skip 'no /proc/sys/net/ipv4/ip_local_port_range', 1;
    my ($elo, $ehi) = (<$fh> // '') =~ /(\d+)\s+(\d+)/;
    skip 'CONSENT_TEST_PORTS set', 1 if $ENV{CONSENT_TEST_PORTS};
    ok($hi < $elo || $lo > $ehi,
       "range $lo-$hi is outside the ephemeral range $elo-$ehi");
}

# a reserved port: inside the range, and its lock cannot be taken by
# another process (a child here stands for a parallel test file)
my $p = ConsentTest::reserve_port();
ok($p >= $lo && $p <= $hi, "reserved port $p in the range");

sub child_can_lock {
    my ($port) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        my $s = IO::Socket::INET->new(Proto => 'udp',
                                      LocalAddr => "127.0.0.1:$port");
        print $s ? "locked\n" : "busy\n";
        POSIX::_exit(0);
    }
    my $r = <$fh> // '';
    close $fh;
    chomp $r;
    return $r eq 'locked';
}

ok(!child_can_lock($p), 'another process cannot take its lock');

# many allocations in one process: all different
my %seen;
$seen{ ConsentTest::reserve_port() }++ for 1 .. 50;
is(scalar(keys %seen), 50, '50 reservations, 50 different ports');

# an instance: nginx, its sinks and a closed destination each on a port
# of the range; the closed one refuses connections and stays locked
my $t = ConsentTest->new(
    dests => { up => {}, down => { closed => 1 } },
    http  => "    consent_destination up /_dest/up;\n"
           . "    consent_destination down /_dest/down;\n",
);
my %ports = (nginx => $t->port, up => $t->sink_port('up'),
             down => $t->sink_port('down'));
for my $n (sort keys %ports) {
    ok($ports{$n} >= $lo && $ports{$n} <= $hi,
       "$n listens on port $ports{$n} of the range");
}
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ports{down},
                          Proto => 'tcp', Timeout => 2),
   'the closed destination refuses connections');
ok(!child_can_lock($ports{down}), 'the closed port stays locked');

my $res = $t->post('/v1/track', '{"userId":"u","event":"e",'
                                . '"integrations":{"down":false}}');
ConsentTest::accepted_ok($res, 'the instance works');
is($t->count('up'), 1, 'the sink on its locked port got the event');

$t->stop;
undef $t;
ok(child_can_lock($ports{down}), 'the lock is released with the instance');

done_testing;
