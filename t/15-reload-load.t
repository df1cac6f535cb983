# Graceful reload under load: client processes send batches while the
# master is told to reload several times.  Every request answered 200 has
# its events at every allowed destination exactly once, no event reaches
# a destination twice or one it is not allowed to reach, and nothing is
# lost or crashes while workers are replaced.
#
# Load is bounded (loopback only; each client stops when told to, after
# $MAX requests or after 60 s); reloads are spaced by the progress the
# destinations see, not by sleeps.

use strict;
use warnings;
use lib 't/lib';

use HTTP::Tiny;
use Test::More;
use Time::HiRes qw(sleep time);
use ConsentTest;

my $CLIENTS = 4;
my $MAX = 3000;
my $RELOADS = 5;
my $STEP = 40;          # requests delivered between two reloads

my $t = ConsentTest->new(
    dests => ConsentTest::default_dests(),
    http  => ConsentTest::default_consent(),
);

# clients: one process each, a new connection per request, statuses back
# through a pipe
my $stop = $t->prefix . '/stop-load';
my %pipes = %{ ConsentTest::spawn_load($t->url('/v1/batch'), $CLIENTS, $MAX,
                                       $stop, \&ConsentTest::load_batch) };

# reloads, each once the destinations have seen $STEP more requests;
# then the load must go on through the last generation of workers
# (requests the webhook sink logged: its log lines, counted as they come)
my ($seen, $off) = (0, 0);
sub delivered {
    my $log = $t->prefix . '/sink-webhook.log';
    open my $fh, '<', $log or return $seen;
    seek $fh, $off, 0;
    local $/;
    my $new = <$fh> // '';
    close $fh;
    my $end = rindex($new, "\n") + 1;
    $seen += substr($new, 0, $end) =~ tr/\n//;
    $off += $end;
    return $seen;
}

sub progress {
    my $want = delivered() + $STEP;
    my $deadline = time + 30;
    sleep 0.01 while delivered() < $want && time < $deadline;
    return delivered() >= $want;
}

my $reloaded = 0;
for my $k (1 .. $RELOADS) {
    progress();
    $reloaded++ if $t->reload;
}
is($reloaded, $RELOADS, "$RELOADS graceful reloads completed under load");
ok(progress(), 'the load went on after the last reload');

open my $sf, '>', $stop or die "$stop: $!";
close $sf;

my %status = %{ ConsentTest::client_statuses(\%pipes) };
my ($n200, $total) = (0, 0);
for my $c (sort { $a <=> $b } keys %status) {
    my @st = @{ $status{$c} };
    ok(@st > 0 && @st < $MAX, "client $c: " . scalar(@st)
                              . " requests, stopped when told");
    $total += @st;
    $n200 += grep { $_ == 200 } @st;
}
is($n200, $total, "all $total requests answered 200 across the reloads")
    or diag join "\n", map { "client $_: @{ $status{$_} }" } sort keys %status;

# what each destination received, event => times
my %got;
for my $d ($t->dest_names) {
    $got{$d}{ $_->{event} }++ for $t->received_events($d);
}

my ($missing, $twice, $leaked) = (0, 0, 0);
for my $c (1 .. $CLIENTS) {
    for my $i (1 .. scalar @{ $status{$c} }) {
        my $ok = ($status{$c}[$i - 1] // 0) == 200;
        my %allowed = ConsentTest::load_allowed($c, $i);
        for my $ev (sort keys %allowed) {
            my %may = map { $_ => 1 } @{ $allowed{$ev} };
            for my $d ($t->dest_names) {
                my $n = $got{$d}{$ev} // 0;
                if (!$may{$d}) {
                    $leaked++, diag "leak: $ev at $d" if $n;
                    next;
                }
                $twice++, diag "$ev twice at $d" if $n > 1;
                $missing++, diag "$ev missing at $d" if $ok && $n == 0;
            }
        }
    }
}
is($leaked, 0, 'no event reached a destination it is not allowed to');
is($twice, 0, 'no event reached a destination twice');
is($missing, 0, 'every event of every 200 reached each allowed destination');

my ($events, $expected) = (0, 0);
$events += $_ for map { values %$_ } values %got;
for my $c (1 .. $CLIENTS) {
    for my $i (1 .. scalar @{ $status{$c} }) {
        my %allowed = ConsentTest::load_allowed($c, $i);
        $expected += @$_ for values %allowed;
    }
}
is($events, $expected, "destinations got $expected events in all");

$t->stop;

done_testing;
