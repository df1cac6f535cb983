# Concurrent clients, and clients that go away while destinations are
# still pending: every request is answered and routed on its own, nginx
# does not crash, leak connections or hang on a graceful quit.

use strict;
use warnings;
use lib 't/lib';

use IO::Socket::INET;
use Test::More;
use ConsentTest;

my $t = ConsentTest->new(
    dests => ConsentTest::default_dests(),
    http  => ConsentTest::default_consent(),
);

my $CLIENTS = 8;
my $REQS = 25;

# each client process sends $REQS requests and reports its statuses
my %pipes;
for my $c (1 .. $CLIENTS) {
    $pipes{$c} = ConsentTest::spawn_client(sub {
        map { $t->post('/v1/batch', ConsentTest::load_batch($c, $_))
                ->{status} } 1 .. $REQS;
    });
}

my $status = ConsentTest::client_statuses(\%pipes);
my $all200 = 1;
for my $c (sort { $a <=> $b } keys %$status) {
    my @st = @{ $status->{$c} };
    my $ok = @st == $REQS && !grep { $_ != 200 } @st;
    $all200 &&= $ok;
    diag "client $c statuses: @st" unless $ok;
}
ok($all200, "$CLIENTS concurrent clients x $REQS requests: all 200");

{
    my %want;
    for my $c (1 .. $CLIENTS) {
        for my $i (1 .. $REQS) {
            my %allowed = ConsentTest::load_allowed($c, $i);
            for my $ev (sort keys %allowed) {
                push @{ $want{$_} }, $ev for @{ $allowed{$ev} };
            }
        }
    }
    for my $d ($t->dest_names) {
        my @got = map { $_->{event} } $t->received_events($d);
        is(scalar($t->received($d)), $CLIENTS * $REQS,
           "concurrent: $d got one request per client request");
        is_deeply([sort @got], [sort @{ $want{$d} }],
                  "concurrent: $d got exactly its events");
        # per client, the order of its requests is kept
        my $ordered = 1;
        for my $c (1 .. $CLIENTS) {
            my @mine = grep { /^c$c-/ } @got;
            my @exp = grep { /^c$c-/ } @{ $want{$d} };
            $ordered &&= "@mine" eq "@exp";
        }
        ok($ordered, "concurrent: $d got each client's events in order");
    }
}

$t->stop;


# clients that disconnect while destinations are pending

my $h = ConsentTest->new(
    dests => {
        slow    => { mode => 'hang', keepalive => 0,
                     extra => 'proxy_read_timeout 1s;' },
        webhook => {},
    },
    http => "    consent_destination slow /_dest/slow;\n"
          . "    consent_destination webhook /_dest/webhook;\n",
);

for my $i (1 .. 3) {
    my $ev = qq({"userId":"u1","event":"gone$i"});
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $h->port, Proto => 'tcp')
        or die "connect: $@";
    print {$s} "POST /v1/track HTTP/1.1\r\nHost: x\r\n"
             . "Content-Length: " . length($ev) . "\r\n\r\n" . $ev;
    close $s;
}

# a complete request after the aborted ones still works (and, as it
# waits for "slow" too, answers 502 after the timeout)
{
    my $res = $h->post('/v1/track', '{"userId":"u1","event":"after"}');
    ConsentTest::reply_is($res, 502, 'delivery_failed', undef,
                          'request after aborted clients');
}

# the graceful quit (bounded) must finish: nothing is left pending; whether
# the aborted requests reached the destinations is up to nginx's client
# abort handling and not asserted
$h->stop;
unlike($h->error_log, qr/open socket|exited on signal|\[alert\]/,
       'aborted clients: no leaked connection or crash');

done_testing;
