# consent_delivery batch (issue 14): accepted events are answered at once
# and queued per worker and per destination; a queue goes out as one
# {"batch":[...]} POST per size= events or flush= time, from a fake
# request that belongs to no client; failures are retried with backoff,
# then dropped and counted; the backlog caps memory; graceful reloads and
# quits flush the queues.
#
# Nothing here sleeps to synchronise: every wait is a bounded poll for
# the condition checked (sink logs, counters).  No timing is asserted.

use strict;
use warnings;
use lib 't/lib';

use HTTP::Tiny;
use Test::More;
use Time::HiRes qw(sleep time);
use ConsentTest;

my @FIVE = qw(amplitude facebook mixpanel warehouse webhook);

# bounded poll: true once $cond holds, false after $secs (default 20)
sub wait_for {
    my ($cond, $secs) = @_;
    my $deadline = time + ($secs // 20);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.02;
    }
    return $cond->();
}

sub event {
    my ($name, %o) = @_;
    my $int = $o{int} ? qq("integrations":{$o{int}},) : '';
    return qq({"userId":"u1","event":"$name",$int"properties":{"n":1}});
}

# every event of @$want exactly once and in order at $dest
sub in_order_ok {
    my ($t, $dest, $want, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @got = map { $_->{event} } $t->received_events($dest);
    is_deeply(\@got, $want, "$desc: $dest got every event once, in order")
        or diag "got " . scalar(@got) . " of " . scalar(@$want);
}

sub metric {
    my ($t, $name, %l) = @_;
    my $labels = join ',', map { qq($_="$l{$_}") } sort keys %l;
    return $t->metrics->{"$name\{$labels\}"} // 0;
}

sub five_conf {
    my ($params) = @_;
    return "    consent_status_zone 256k;\n"
         . "    consent_delivery batch $params;\n"
         . join('', map { "    consent_destination $_ /_dest/$_;\n" } @FIVE);
}

my $STATUS = "        location = /status { consent_status; }\n";

# --- nginx -t: the parameters, with file and line ----------------------
{
    my @bad = (
        ['size=0', qr/invalid parameter "size=0" of "consent_delivery batch", it must be a number from 1 to 10000/],
        ['size=x', qr/"size=x".*a number from 1 to 10000/],
        ['flush=0', qr/"flush=0".*a time from 1ms to 60s/],
        ['flush=soon', qr/"flush=soon".*a time from 1ms to 60s/],
        ['flush=2m', qr/"flush=2m".*a time from 1ms to 60s/],
        ['retries=-1', qr/"retries=-1".*a number from 0 to 100/],
        ['retries=101', qr/"retries=101".*a number from 0 to 100/],
        ['backlog=1k', qr/"backlog=1k".*a size of at least 64k/],
        ['backlog=lots', qr/"backlog=lots".*a size of at least 64k/],
        ['sizes=5', qr/invalid parameter "sizes=5", expected "size=", "flush=", "retries=" or "backlog="/],
        ['now', qr/invalid parameter "now", expected "size="/],
    );
    for my $b (@bad) {
        my ($param, $re) = @$b;
        my ($rc, $out, $conf) = ConsentTest::nginx_t(
            "    consent_destination w /_dest/w;\n"
          . "    consent_delivery batch $param;  # here\n");
        my $line = ConsentTest::line_of($conf, '# here');
        ok($rc != 0, "nginx -t: batch $param fails");
        like($out, qr/\[emerg\].*$re.*\Q$conf\E:$line\b/,
             "nginx -t: batch $param: message and line") or diag $out;
    }
    my ($rc, $out) = ConsentTest::nginx_t(
        "    consent_delivery wait size=5;\n");
    like($out, qr/invalid parameter "size=5": only "batch" takes parameters/,
         'nginx -t: parameters only for batch');
    ($rc, $out) = ConsentTest::nginx_t(
        "    consent_delivery sometimes;\n");
    like($out, qr/it must be "wait", "background" or "batch"/,
         'nginx -t: the modes are named');
    ($rc, $out) = ConsentTest::nginx_t(
        "    consent_destination w /_dest/w;\n"
      . "    consent_delivery batch size=500 flush=5s retries=0 "
      . "backlog=1m;\n",
        server => "        location /v1/ { consent_ingest; }\n"
                . "        location /w/ { consent_ingest;"
                . " consent_delivery wait; }\n");
    is($rc, 0, 'nginx -t: every parameter, and wait below batch')
        or diag $out;
}

# --- single events to five destinations: few upstream requests --------
{
    my $t = ConsentTest->new(
        dests => { map { $_ => {} } @FIVE },
        http  => five_conf('size=50 flush=1s'),
        locations => $STATUS,
    );

    my ($CLIENTS, $N) = (4, 100);
    my %pipes;
    for my $c (1 .. $CLIENTS) {
        $pipes{$c} = ConsentTest::spawn_client(sub {
            my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
            map { $ua->post($t->url('/v1/track'),
                            { content => event("c$c-$_") })->{status} }
                1 .. $N;
        });
    }
    my %st = %{ ConsentTest::client_statuses(\%pipes) };
    is((grep { $_ == 200 } map { @$_ } values %st), $CLIENTS * $N,
       'single events: every request answered 200');

    my $all = $CLIENTS * $N;
    ok(wait_for(sub { (grep { scalar($t->received_events($_)) < $all }
                           @FIVE) == 0 }),
       'single events: every destination got every event');

    my $requests = 0;
    for my $d (@FIVE) {
        my @got = map { $_->{event} } $t->received_events($d);
        my %n;
        $n{$_}++ for @got;
        is((grep { $_ != 1 } values %n) + 0, 0, "single events: $d: once");
        is(scalar keys %n, $all, "single events: $d: all $all events");
        # one client's events go to one worker's queue: in order
        for my $c (1 .. $CLIENTS) {
            my @mine = grep { /^c$c-/ } @got;
            is_deeply(\@mine, [map { "c$c-$_" } 1 .. $N],
                      "single events: $d: client $c in order");
        }
        my @r = $t->received($d);
        $requests += @r;
        is((grep { !(ref $_->{json} eq 'HASH'
                     && ref $_->{json}{batch} eq 'ARRAY') } @r), 0,
           "single events: $d: every request a valid batch");
    }
    cmp_ok($requests, '<=', 5 * $all / 10,
           "single events: $requests upstream requests for "
           . 5 * $all . " (event, destination) pairs");
    ok(wait_for(sub { metric($t, 'ngx_consent_events_total',
                             destination => 'webhook',
                             outcome => 'delivered') == $all }),
       'single events: delivered counted once the batches got 2xx');
    is(metric($t, 'ngx_consent_batch_queue_events', destination => 'webhook'),
       0, 'single events: queue empty');
    is(metric($t, 'ngx_consent_batches_total', destination => 'webhook'),
       $t->count('webhook'), 'single events: batches counted');
    $t->stop;
}

# --- envelopes and write keys: only alike requests share a batch -------
{
    my $t = ConsentTest->new(
        dests => { webhook => {}, nokey => {} },
        http  => "    consent_delivery batch flush=300ms;\n"
               . "    consent_destination webhook /_dest/webhook;\n"
               . "    consent_destination nokey /_dest/nokey"
               . " drop_header=Authorization;\n",
    );
    my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
    my @posts = (
        ['/v1/track', 'Basic a2V5MTo=', event('k1')],
        ['/v1/batch', 'Basic a2V5MTo=', '{"batch":[' . event('b1')
            . '],"context":{"library":{"name":"x"}},"sentAt":"s1"}'],
        ['/v1/track', 'Basic a2V5Mjo=', event('k2')],
        ['/v1/track', 'Basic a2V5MTo=', event('k3')],
        ['/v1/batch', 'Basic a2V5MTo=', '{"batch":[' . event('b2')
            . '],"context":{"library":{"name":"x"}},"sentAt":"s1"}'],
    );
    my $ok = 0;
    for my $p (@posts) {
        my ($path, $auth, $body) = @$p;
        $body =~ s/\{"userId"/{"type":"track","userId"/ if $path =~ /batch/;
        $ok++ if $ua->post($t->url($path), { content => $body,
                  headers => { Authorization => $auth } })->{status} == 200;
    }
    is($ok, 5, 'envelopes: 5 requests answered 200');
    ok(wait_for(sub { $t->received_events('webhook') >= 5
                      && $t->received_events('nokey') >= 5 }),
       'envelopes: delivered');
    my %by;
    for my $r ($t->received('webhook')) {
        my $key = join ' ', $r->{headers}{authorization} // '-',
                            $r->{json}{sentAt} // '-';
        push @{ $by{$key} }, map { $_->{event} } @{ $r->{json}{batch} };
        ok(!exists $r->{json}{sentAt}
           || $r->{json}{context}{library}{name} eq 'x',
           'envelopes: a batch keeps its requests\' envelope');
    }
    is_deeply(\%by, { 'Basic a2V5MTo= -'  => [qw(k1 k3)],
                      'Basic a2V5MTo= s1' => [qw(b1 b2)],
                      'Basic a2V5Mjo= -'  => [qw(k2)] },
              'envelopes: one batch per write key and envelope, in order');
    is((grep { exists $_->{headers}{authorization} } $t->received('nokey')),
       0, 'envelopes: drop_header=Authorization holds for batches');
    is_deeply([sort map { $_->{event} } $t->received_events('nokey')],
              [qw(b1 b2 k1 k2 k3)], 'envelopes: nokey got all, once');
    $t->stop;
}

# --- HTTP/2 clients that close at once lose nothing ---------------------
SKIP: {
    my $CURL = '/usr/bin/curl';
    skip 'curl with HTTP/2 not installed', 3
        unless -x $CURL && `$CURL --version` =~ /\bHTTP2\b/;

    my $H2 = ConsentTest::reserve_port();
    my $t = ConsentTest->new(
        dests  => { webhook => {} },
        http   => "    consent_delivery batch flush=300ms;\n"
                . "    consent_destination webhook /_dest/webhook;\n",
        server => "        listen 127.0.0.1:$H2 http2;\n",
    );
    my $ok = 0;
    for my $i (1 .. 5) {
        my @cmd = ($CURL, '-sS', '--http2-prior-knowledge', '-o', '/dev/null',
                   '-w', '%{http_code}', '--data-binary', event("h$i"),
                   "http://127.0.0.1:$H2/v1/track");
        open my $out, '-|', @cmd or die "curl: $!";
        my $code = <$out> // '';
        close $out;
        $ok++ if $code eq '200';
    }
    is($ok, 5, 'http2: 5 events answered 200, the clients gone');
    ok(wait_for(sub { $t->received_events('webhook') >= 5 }),
       'http2: delivered after the clients closed');
    # five connections, maybe five workers' queues: any order
    is_deeply([sort map { $_->{event} } $t->received_events('webhook')],
              [map { "h$_" } 1 .. 5], 'http2: every event once');
    $t->stop;
}

# --- a destination down, then back; another down for good --------------
{
    my $t = ConsentTest->new(
        dests => { flaky => { closed => 1 }, dead => { closed => 1 },
                   webhook => {} },
        http  => "    consent_status_zone 256k;\n"
               . "    consent_delivery batch size=10 flush=50ms retries=8;\n"
               . "    consent_destination flaky /_dest/flaky;\n"
               . "    consent_destination webhook /_dest/webhook;\n",
        locations => $STATUS
               . "        location /dead/v1/ { consent_ingest;\n"
               . "            consent_delivery batch flush=50ms retries=2;\n"
               . "            consent_destination dead /_dest/dead; }\n",
    );
    my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
    my $N = 30;
    my $ok = 0;
    for my $i (1 .. $N) {
        $ok++ if $ua->post($t->url('/v1/track'),
                           { content => event("f$i") })->{status} == 200;
        $ok++ if $ua->post($t->url('/dead/v1/track'),
                           { content => event("d$i") })->{status} == 200;
    }
    is($ok, 2 * $N, 'down: every request answered 200');

    ok(wait_for(sub { $t->received_events('webhook') >= $N }),
       'down: the healthy destination got its events meanwhile');
    in_order_ok($t, 'webhook', [map { "f$_" } 1 .. $N], 'down');
    ok(wait_for(sub { metric($t, 'ngx_consent_batch_retries_total',
                             destination => 'flaky') >= 2 }),
       'down: failed batches are retried');

    # the destination comes back on its port
    my $s = $t->{sinks}{flaky};
    my $pid = open(my $out, '-|', $^X, ConsentTest::root() . '/demo/sink.pl',
                   '--name', 'flaky', '--log', $s->{log},
                   '--port', $s->{port}) // die "sink: $!";
    my $line = <$out>;
    like($line // '', qr/^PORT /, 'down: the destination is back');
    ok(wait_for(sub { $t->received_events('flaky') >= $N }, 40),
       'down then back: delivered within the retry budget');
    in_order_ok($t, 'flaky', [map { "f$_" } 1 .. $N], 'down then back');
    ok(wait_for(sub { metric($t, 'ngx_consent_events_total',
                             destination => 'flaky',
                             outcome => 'delivered') == $N }),
       'down then back: counted delivered');
    is(metric($t, 'ngx_consent_batch_dropped_total', destination => 'flaky',
              reason => 'retries_exhausted'), 0, 'down then back: no drop');

    ok(wait_for(sub { metric($t, 'ngx_consent_batch_dropped_total',
                             destination => 'dead',
                             reason => 'retries_exhausted') == $N }),
       'down for good: every event dropped after its retries, counted');
    is(metric($t, 'ngx_consent_events_total', destination => 'dead',
              outcome => 'failed'), $N, 'down for good: counted failed');
    is(metric($t, 'ngx_consent_batch_queue_events', destination => 'dead'),
       0, 'down for good: nothing left queued');
    like($t->error_log,
         qr/destination "dead" \(\/_dest\/dead\): batch of \d+ events dropped after 3 tries/,
         'down for good: the drop is logged');
    $t->stop;
    kill 'TERM', $pid;
    close $out;
}

# --- backlog full: drops counted, memory bounded ------------------------
{
    my $t = ConsentTest->new(
        dests => { hanging => { mode => 'hang', keepalive => 0,
                                extra => 'proxy_read_timeout 1s;' } },
        http  => "    consent_status_zone 256k;\n"
               . "    consent_delivery batch backlog=64k retries=0;\n"
               . "    consent_destination hanging /_dest/hanging;\n",
        locations => $STATUS,
    );
    my $pad = 'x' x 400;
    my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
    my $ok = 0;
    my ($R, $B) = (50, 100);
    my $N = $R * $B;
    for my $i (1 .. $R) {
        $ok++ if $ua->post($t->url('/v1/batch'), { content =>
            '{"batch":[' . join(',', map {
                qq({"type":"track","userId":"u1","event":"b$i-$_",)
                . qq("properties":{"p":"$pad"}}) } 1 .. $B) . ']}' }
        )->{status} == 200;
    }
    is($ok, $R, 'backlog: every request answered 200, never blocked');
    my $dropped = metric($t, 'ngx_consent_batch_dropped_total',
                         destination => 'hanging', reason => 'backlog_full');
    cmp_ok($dropped, '>', $N / 2, "backlog: $dropped events dropped");
    cmp_ok(metric($t, 'ngx_consent_batch_queue_bytes',
                  destination => 'hanging'), '<=', 2 * 64 * 1024,
           'backlog: queued bytes within the backlog (per worker)');
    like($t->error_log, qr/batch backlog full/, 'backlog: logged');

    my $master = $t->master_pid;
    my $rss = 0;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $l = <$fh> // '';
        close $fh;
        # the master's children, whatever their name (under valgrind
        # it is memcheck's)
        next unless $l =~ /^(\d+) \(.*\) \S (\d+) /
                    && $2 == $master;
        open my $st, '<', "/proc/$1/status" or next;
        while (<$st>) { $rss = $1 if /^VmRSS:\s+(\d+)/ && $1 > $rss }
        close $st;
    }
    cmp_ok($rss, '<', 128 * 1024, "backlog: worker RSS $rss kB bounded");

    # a worker told to stop at once (SIGTERM, as nginx -s stop does)
    # loses its queue, and says so; the master starts a new one
    my @workers = grep { my $l = `cat /proc/$_/stat 2>/dev/null`;
                         $l =~ /^\d+ \(.*\) \S (\d+) / && $1 == $master }
                  map { m{/proc/(\d+)/stat} ? $1 : () }
                  glob '/proc/[0-9]*/stat';
    for my $i (1 .. 2) {
        $ua->post($t->url('/v1/batch'), { content => '{"batch":['
            . join(',', map { qq({"type":"track","userId":"u1",)
                              . qq("event":"s$i-$_"}) } 1 .. $B) . ']}' });
    }
    ok(scalar @workers, 'stop: the workers found (' . scalar(@workers) . ')');
    kill 'TERM', @workers;
    ok(wait_for(sub { $t->error_log
                      =~ /worker exits with \d+ events queued, dropped/ }),
       'stop: the queued events lost are logged');
    ok(wait_for(sub { metric($t, 'ngx_consent_batch_dropped_total',
                             destination => 'hanging',
                             reason => 'shutdown') > 0 }),
       'stop: and counted as shutdown');
    $t->stop;
}

# --- reload and quit under load: nothing lost, nothing twice ------------
{
    my $t = ConsentTest->new(
        dests => { map { $_ => {} } qw(amplitude webhook) },
        http  => "    consent_delivery batch size=20 flush=200ms;\n"
               . "    consent_destination amplitude /_dest/amplitude;\n"
               . "    consent_destination webhook /_dest/webhook;\n",
    );
    my ($CLIENTS, $MAX) = (4, 2000);
    my $stop = $t->prefix . '/stop-load';
    my %pipes = %{ ConsentTest::spawn_load($t->url('/v1/track'), $CLIENTS,
                       $MAX, $stop, sub { event("r$_[0]-$_[1]") }) };
    my $reloaded = 0;
    for my $k (1 .. 3) {
        my $want = $t->received_events('webhook') + 100;
        wait_for(sub { $t->received_events('webhook') >= $want }, 30);
        $reloaded++ if $t->reload;
    }
    is($reloaded, 3, 'reload: 3 graceful reloads under load');
    my $want = $t->received_events('webhook') + 100;
    wait_for(sub { $t->received_events('webhook') >= $want }, 30);

    # quit while the clients still send: the queues flush before exit
    $t->stop;
    open my $sf, '>', $stop or die "$stop: $!";
    close $sf;
    my %st = %{ ConsentTest::client_statuses(\%pipes) };

    my %ok;
    for my $c (keys %st) {
        my @s = @{ $st{$c} };
        $ok{"r$c-$_"} = 1 for grep { $s[$_ - 1] == 200 } 1 .. @s;
    }
    cmp_ok(scalar(keys %ok), '>', 200, 'reload: '
           . scalar(keys %ok) . ' events answered 200');
    for my $d (qw(amplitude webhook)) {
        my %n;
        $n{ $_->{event} }++ for $t->received_events($d);
        my @missing = grep { !$n{$_} } keys %ok;
        my @twice = grep { $n{$_} > 1 } keys %n;
        is(scalar @missing, 0, "reload and quit: $d lost nothing")
            or diag "missing: @missing[0 .. ($#missing < 9 ? $#missing : 9)]";
        is(scalar @twice, 0, "reload and quit: $d got nothing twice");
    }
    unlike($t->error_log, qr/dropped/, 'reload and quit: nothing dropped');
}

done_testing();
