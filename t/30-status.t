# Status and metrics: exact counters after a known sequence of requests in
# both formats (Prometheus text and JSON), the same numbers from both
# workers, kept across reloads (destinations by name), and the access log
# variables.

use strict;
use warnings;
use lib 't/lib';

use File::Temp qw(tempdir);
use HTTP::Tiny;
use Test::More;
use Time::HiRes qw(sleep time);
use ConsentTest;

my $dir = tempdir('consent-status-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $hook = "$dir/error.lua";
open my $fh, '>', $hook or die "$hook: $!";
print {$fh} "return { event = function(ev, req) error('boom') end }\n";
close $fh;

# a second listener with reuseport: the kernel spreads its connections
# over both workers by address hash; its port stays reserved (our lock)
# until the test exits
my $RP = ConsentTest::reserve_port();

my $DESTS = <<'EOF';
    consent_destination amplitude /_dest/amplitude C0002;
    consent_destination facebook  /_dest/facebook  C0004;
    consent_destination webhook   /_dest/webhook;
    consent_destination broken    /_dest/broken;
EOF

my $t = ConsentTest->new(
    dests => { amplitude => {}, facebook => {}, webhook => {},
               broken => { status => 500 } },
    http  => <<"EOF" . $DESTS,
    consent_status_zone 256k;
    log_format consent '\$pid \$request_uri \$status \$consent_events '
                       '\$consent_delivered \$consent_rejected \$consent_error '
                       '\$http_x_seq';
    access_log %%PREFIX%%/consent.log consent;
    consent_category C0002;
    consent_category C0004;
EOF
    server    => "        listen 127.0.0.1:$RP reuseport;\n",
    locations => <<"EOF",
        location = /status { consent_status; }
        location /lua/v1/ { consent_ingest; consent_lua_hook $hook; }
EOF
);

my @OUT = qw(delivered filtered_consent filtered_integrations failed);
my $PROM_CT = 'text/plain; version=0.0.4';

my $ua = HTTP::Tiny->new(timeout => 30, keep_alive => 0);

sub rp_request {
    my ($method, $path, $body) = @_;
    my %o = (headers => { 'Content-Type' => 'application/json' });
    $o{content} = $body if defined $body;
    return $ua->request($method, "http://127.0.0.1:$RP$path", \%o);
}

# ---------------------------------------------------------------------
# reading the status

# name{labels} => value
sub parse_prom {
    my ($text) = @_;
    my (%m, %help, %type);
    for my $line (split /\n/, $text) {
        if ($line =~ /^# HELP (\S+) \S/) { $help{$1} = 1; next }
        if ($line =~ /^# TYPE (\S+) (\S+)$/) { $type{$1} = $2; next }
        $line =~ /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/
            or die "bad exposition line: $line";
        $m{$1} = $2;
    }
    return (\%m, \%help, \%type);
}

sub scrape {
    my ($port) = @_;
    my $url = "http://127.0.0.1:" . ($port // $t->port) . "/status";
    my $text = $ua->get($url);
    my $json = $ua->get("$url?format=json");
    die "status: $text->{status}" unless $text->{status} == 200;
    die "status json: $json->{status}" unless $json->{status} == 200;
    my ($m) = parse_prom($text->{content});
    return ($m, ConsentTest::json_decode($json->{content}), $text, $json);
}

# the expectation: requests by status, events per destination as
# [delivered, filtered_consent, filtered_integrations, failed], rejected
# by code, lua errors, subrequests per destination
my %exp = (
    requests => {},
    events   => { map { $_ => [0, 0, 0, 0] }
                  qw(amplitude facebook webhook broken) },
    rejected => {},
    lua      => 0,
    telemetry => 0,
    latency  => { map { $_ => 0 } qw(amplitude facebook webhook broken) },
);

sub expect_events {
    my (%by) = @_;          # dest => 'D' | 'C' | 'I' | 'F' (a string each)
    for my $d (keys %by) {
        for my $o (split //, $by{$d}) {
            my $i = index('DCIF', $o);
            die "bad outcome $o" if $i < 0;
            $exp{events}{$d}[$i]++;
        }
        $exp{latency}{$d}++ if $by{$d} =~ /[DF]/;
    }
}

# Asserts every counter (exactly; latency buckets by their count) in both
# formats.
sub counters_ok {
    my ($desc, $port) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my ($m, $j) = scrape($port);

    my (%want, %got);
    for my $s (keys %{ $exp{requests} }) {
        $want{"ngx_consent_requests_total{status=\"$s\"}"}
            = $exp{requests}{$s};
    }
    for my $d (keys %{ $exp{events} }) {
        for my $i (0 .. 3) {
            $want{"ngx_consent_events_total{destination=\"$d\","
                  . "outcome=\"$OUT[$i]\"}"} = $exp{events}{$d}[$i];
        }
    }
    $want{ngx_consent_lua_errors_total} = $exp{lua};
    $want{ngx_consent_telemetry_total} = $exp{telemetry};

    # codes not expected are listed with 0
    my %rej;
    for my $k (keys %$m) {
        next if $k =~ /^ngx_consent_destination_latency_seconds/;
        if ($k =~ /^ngx_consent_rejected_total\{code="(\w+)"\}$/) {
            $rej{$1} = $m->{$k} if $m->{$k} || exists $exp{rejected}{$1};
            next;
        }
        $got{$k} = $m->{$k};
    }

    my $ok = is_deeply(\%got, \%want, "$desc: text counters exact");
    $ok &&= is_deeply(\%rej, $exp{rejected},
                      "$desc: text rejected codes exact");

    my %jwant = (
        requests_total   => { %{ $exp{requests} } },
        events_total     => {
            map { my $d = $_;
                  $d => { map { $OUT[$_] => $exp{events}{$d}[$_] } 0 .. 3 } }
                keys %{ $exp{events} } },
        lua_errors_total => $exp{lua},
        telemetry_total  => $exp{telemetry},
    );
    my %jgot = map { $_ => $j->{$_} }
                   qw(requests_total events_total lua_errors_total
                      telemetry_total);
    $ok &&= is_deeply(\%jgot, \%jwant, "$desc: JSON counters exact");
    my %jrej = map { $_ => $j->{rejected_total}{$_} }
                   grep { $j->{rejected_total}{$_} }
                   keys %{ $j->{rejected_total} };
    $ok &&= is_deeply(\%jrej, $exp{rejected},
                      "$desc: JSON rejected codes exact");

    my $pre = 'ngx_consent_destination_latency_seconds';
    my @le = qw(0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf);
    my @bad;
    for my $d (sort keys %{ $exp{latency} }) {
        my $n = $exp{latency}{$d};
        my @b = map { $m->{"${pre}_bucket{destination=\"$d\",le=\"$_\"}"} }
                    @le;
        my $sum = $m->{"${pre}_sum{destination=\"$d\"}"};
        my $jl = $j->{destination_latency_seconds}{$d} // {};
        push @bad, "$d: count" unless
            ($m->{"${pre}_count{destination=\"$d\"}"} // -1) == $n;
        push @bad, "$d: +Inf bucket" unless ($b[-1] // -1) == $n;
        push @bad, "$d: buckets not cumulative (@b)"
            if grep { !defined $b[$_] || $b[$_] > $b[$_ + 1] } 0 .. 10;
        push @bad, "$d: sum" unless defined $sum && $sum >= 0
                                    && $sum <= 30 * $n;
        push @bad, "$d: JSON count" unless ($jl->{count} // -1) == $n;
        push @bad, "$d: JSON buckets differ" if grep {
            ($jl->{buckets}{$le[$_]} // -1) != ($b[$_] // -2) } 0 .. 11;
        push @bad, "$d: JSON sum differs"
            unless defined $jl->{sum} && defined $sum && $jl->{sum} == $sum;
    }
    my %lat = map { /^${pre}_count\{destination="(.*)"\}$/ ? ($1 => 1) : () }
                  keys %$m;
    push @bad, "histogram destinations: " . join(',', sort keys %lat)
        unless join(',', sort keys %lat)
               eq join(',', sort keys %{ $exp{latency} });
    $ok &&= ok(!@bad, "$desc: latency histogram (counts exact)")
        or diag join "\n", @bad;

    return $ok;
}

# access log lines of ingest requests, fields split
sub log_lines {
    open my $lf, '<', $t->prefix . '/consent.log' or return ();
    my @l = map { chomp; [split / /] } grep { m{ /(?:lua/)?v1/} } <$lf>;
    close $lf;
    return @l;
}

# the access log is written after the reply: bounded poll for N lines
sub wait_log_lines {
    my ($n) = @_;
    my $deadline = time + 10;
    my @l;
    while (time < $deadline) {
        @l = log_lines();
        last if @l >= $n;
        sleep 0.02;
    }
    return @l;
}

# ---------------------------------------------------------------------
# a known sequence

my $NO_BROKEN = '"integrations":{"broken":false}';
my @SEQ = (
    # [desc, method, path, body, status, log "events delivered rejected
    #  error", outcomes, rejected codes]
    ['consented to C0002 only', 'POST', '/v1/track',
     '{"userId":"u1","event":"a","context":{"consent":{"categoryPreferences":'
     . qq({"C0002":true,"C0004":false}}},$NO_BROKEN}),
     200, '1 2 0 -',
     { amplitude => 'D', facebook => 'C', webhook => 'D', broken => 'I' }],
    ['integrations turn webhook off', 'POST', '/v1/track',
     '{"userId":"u1","event":"b","integrations":{"webhook":false,'
     . '"broken":false}}',
     200, '1 2 0 -',
     { amplitude => 'D', facebook => 'D', webhook => 'I', broken => 'I' }],
    ['no ids', 'POST', '/v1/track', '{"event":"c"}',
     400, '1 0 1 no_user_anon_id', {}, ['no_user_anon_id']],
    ['batch with two rejected events', 'POST', '/v1/batch',
     '{"batch":[{"type":"track","userId":"u1","event":"d","context":'
     . '{"consent":{"categoryPreferences":{"C0002":false,"C0004":true}}},'
     . qq($NO_BROKEN},{"type":"track","event":"no ids"},)
     . '{"type":"bogus","userId":"u1"}]}',
     200, '3 2 2 -',
     { amplitude => 'C', facebook => 'D', webhook => 'D', broken => 'I' },
     ['no_user_anon_id', 'invalid_type']],
    ['invalid JSON', 'POST', '/v1/track', '{"userId":',
     400, '0 0 0 invalid_json', {}, ['invalid_json']],
    ['GET', 'GET', '/v1/track', undef,
     405, '0 0 0 method_not_allowed', {}, ['method_not_allowed']],
    ['unknown endpoint', 'POST', '/v1/nope', '{}',
     404, '0 0 0 unknown_endpoint', {}, ['unknown_endpoint']],
    ['a failing destination', 'POST', '/v1/track',
     '{"userId":"u1","event":"e"}',
     502, '1 3 0 delivery_failed',
     { amplitude => 'D', facebook => 'D', webhook => 'D', broken => 'F' }],
    ['every event rejected', 'POST', '/v1/batch',
     '{"batch":[{"type":"track"},{"type":"track","event":"f"}]}',
     400, '2 0 2 no_valid_events', {},
     ['no_user_anon_id', 'no_user_anon_id', 'no_valid_events']],
    ['preflight', 'OPTIONS', '/v1/track', undef, 204, '0 0 0 -', {}],
    ['batch of two delivered events', 'POST', '/v1/batch',
     qq({"batch":[{"type":"track","userId":"u1","event":"g",$NO_BROKEN},)
     . '{"type":"identify","userId":"u1","context":{"consent":'
     . qq({"categoryPreferences":{"C0002":true,"C0004":true}}},$NO_BROKEN}]}),
     200, '2 6 0 -',
     { amplitude => 'DD', facebook => 'DD', webhook => 'DD',
       broken => 'II' }],
    ['a Lua hook failing closed', 'POST', '/lua/v1/track',
     qq({"userId":"u1","event":"h",$NO_BROKEN}),
     200, '1 1 0 -',
     { amplitude => 'C', facebook => 'C', webhook => 'D', broken => 'I' }],
    ['client telemetry', 'POST', '/v1/m',
     '{"series":[{"type":"Counter","metric":"analytics_js.invoke.track",'
     . '"value":1,"tags":{}}]}',
     200, '0 0 0 -', {}],
);

counters_ok('before any request');

for my $i (0 .. $#SEQ) {
    my ($desc, $method, $path, $body, $status, undef, $ev, $rej) =
        @{ $SEQ[$i] };
    my $res = $t->request($method, $path, $body,
                          { 'Content-Type' => 'application/json',
                            'X-Seq' => $i });
    is($res->{status}, $status, "$desc: status $status")
        or diag $res->{content};
    $exp{requests}{$status}++;
    expect_events(%$ev);
    $exp{rejected}{$_}++ for @{ $rej // [] };
}
$exp{lua}++;
$exp{telemetry}++;

counters_ok('after the sequence');

# scrapes do not count themselves
counters_ok('scraped again');

# the access log variables; nginx logs after it has sent the reply, so
# the next request may be logged first by the other worker: match the
# lines to requests by X-Seq, not by order
{
    my @l = sort { $a->[7] <=> $b->[7] } wait_log_lines(scalar @SEQ);
    is(scalar @l, scalar @SEQ, 'one access log line per ingest request');
    for my $i (0 .. $#SEQ) {
        my $f = $l[$i] // [];
        is(join(' ', @$f[2 .. 6]), "$SEQ[$i][4] $SEQ[$i][5]",
           "access log: $SEQ[$i][0]");
    }
}

# formats
{
    my $r = $ua->get($t->url('/status'));
    is($r->{headers}{'content-type'}, $PROM_CT, 'text: Content-Type');
    my (undef, $help, $type) = parse_prom($r->{content});
    for my $n (qw(ngx_consent_requests_total ngx_consent_events_total
                  ngx_consent_rejected_total ngx_consent_lua_errors_total
                  ngx_consent_telemetry_total))
    {
        ok($help->{$n}, "HELP $n");
        is($type->{$n}, 'counter', "TYPE $n counter");
    }
    is($type->{ngx_consent_destination_latency_seconds}, 'histogram',
       'TYPE latency histogram');
    my ($m) = parse_prom($r->{content});
    ok(exists $m->{"ngx_consent_rejected_total{code=\"$_\"}"},
       "code $_ listed from the start")
        for qw(invalid_json too_large empty_batch no_user_anon_id
               consent_categorypreferences_should_exist invalid_type
               duplicate_key invalid_event lua_rejected method_not_allowed
               unknown_endpoint no_valid_events);

    $r = $ua->get($t->url('/status?format=json'));
    like($r->{headers}{'content-type'}, qr{^application/json$},
         'json: Content-Type');
    $r = $ua->get($t->url('/status?format=prometheus'));
    is($r->{headers}{'content-type'}, $PROM_CT, 'format=prometheus');
    is($ua->get($t->url('/status?format=xml'))->{status}, 400,
       'unknown format: 400');
    is($ua->request('POST', $t->url('/status'), { content => 'x' })
           ->{status}, 405, 'POST to the status: 405');
    my $h = $ua->request('HEAD', $t->url('/status'));
    is($h->{status}, 200, 'HEAD: 200');
    ok(!length($h->{content} // ''), 'HEAD: no body');
}

# ---------------------------------------------------------------------
# both workers count into the same zone

my %pids;
my $before = scalar log_lines();
my $sent = 0;
my $webhook_only = '{"userId":"w","event":"w","integrations":'
                 . '{"All":false,"webhook":true}}';
while ($sent < 400) {
    for (1 .. 20) {
        my $res = rp_request('POST', "/v1/track?n=$sent", $webhook_only);
        $sent++;
        die "reuseport request: $res->{status} $res->{content}"
            unless $res->{status} == 200;
        $exp{requests}{200}++;
        expect_events(amplitude => 'I', facebook => 'I', webhook => 'D',
                      broken => 'I');
    }
    my @l = wait_log_lines($before + $sent);
    %pids = map { $_->[0] => 1 } @l[$before .. $#l];
    last if keys %pids >= 2;
}
is(scalar keys %pids, 2, "both workers served requests ($sent sent)");

{
    # every scrape, whichever worker serves it, has the same numbers
    my %spids;
    my $all = 1;
    for my $i (1 .. 40) {
        $all &&= counters_ok("two workers, scrape $i", $RP);
        open my $lf, '<', $t->prefix . '/consent.log' or die;
        %spids = map { (split / /)[0] => 1 } grep { m{ /status} } <$lf>;
        close $lf;
        last if $i >= 4 && keys %spids >= 2;
    }
    ok($all, 'two workers: every scrape exact');
    is(scalar keys %spids, 2, 'two workers: both served scrapes');
}

# ---------------------------------------------------------------------
# reloads

# HUP to the master; waits (bounded) until both new workers started and
# both old ones exited, so that every later request sees the new
# configuration
sub reload {
    my ($desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $log = $t->prefix . '/error.log';
    my $off = -s $log;
    my $pid = $t->master_pid;
    ok($pid && kill('HUP', $pid), "$desc: HUP sent to the master");
    my $deadline = time + 20;
    my ($started, $exited) = (0, 0);
    while (time < $deadline) {
        my $text = substr($t->error_log, $off);
        $started = () = $text =~ /start worker process \d+/g;
        $exited = () = $text =~ /worker process \d+ exited with code/g;
        last if $started >= 2 && $exited >= 2;
        sleep 0.05;
    }
    ok($started >= 2 && $exited >= 2,
       "$desc: new workers started, old ones exited")
        or diag substr($t->error_log, $off);
}

sub rewrite_conf {
    my ($from, $to) = @_;
    my $file = $t->prefix . '/nginx.conf';
    open my $in, '<', $file or die "$file: $!";
    local $/;
    my $conf = <$in>;
    close $in;
    $conf =~ s/\Q$from\E/$to/ or die "no '$from' in $file";
    open my $out, '>', $file or die "$file: $!";
    print {$out} $conf;
    close $out;
}

reload('same configuration');
counters_ok('kept across a reload');

{
    my $res = $t->post('/v1/track', '{"userId":"r","event":"r1"}');
    is($res->{status}, 502, 'after the reload: the gateway still works');
    $exp{requests}{502}++;
    expect_events(amplitude => 'D', facebook => 'D', webhook => 'D',
                  broken => 'F');
    counters_ok('counting after a reload');
}

# facebook removed, "extra" added: the others keep their counts
rewrite_conf("consent_destination facebook  /_dest/facebook  C0004;",
             "consent_destination extra /_dest/webhook;");
reload('facebook removed, extra added');
my $fb = delete $exp{events}{facebook};
delete $exp{latency}{facebook};
$exp{events}{extra} = [0, 0, 0, 0];
$exp{latency}{extra} = 0;
counters_ok('destination removed and added');

{
    my $res = $t->post('/v1/track',
                       '{"userId":"r","event":"r2","integrations":'
                       . '{"broken":false}}');
    is($res->{status}, 200, 'new configuration: 200');
    $exp{requests}{200}++;
    expect_events(amplitude => 'D', webhook => 'D', extra => 'D',
                  broken => 'I');
    counters_ok('counting the added destination');
}

# back to the original: facebook starts over, extra is gone
rewrite_conf("consent_destination extra /_dest/webhook;",
             "consent_destination facebook  /_dest/facebook  C0004;");
reload('facebook back');
delete $exp{events}{extra};
delete $exp{latency}{extra};
$exp{events}{facebook} = [0, 0, 0, 0];
$exp{latency}{facebook} = 0;
counters_ok('a destination back after a reload starts over');
ok($fb->[0] > 0, 'facebook had counts before its removal');

# a zone of another size is a new zone: everything starts over
rewrite_conf('consent_status_zone 256k;', 'consent_status_zone 512k;');
reload('zone resized');
$exp{requests} = {};
$exp{rejected} = {};
$exp{lua} = 0;
$exp{telemetry} = 0;
$_ = [0, 0, 0, 0] for values %{ $exp{events} };
$_ = 0 for values %{ $exp{latency} };
counters_ok('a resized zone starts over');

$t->stop;

# ---------------------------------------------------------------------
# nginx -t

{
    my ($rc, $out) = ConsentTest::nginx_t("consent_status_zone 4k;\n");
    isnt($rc, 0, 'zone too small: nginx -t fails');
    like($out, qr/consent_status_zone size "4k" is too small/,
         'zone too small: message');

    ($rc, $out) = ConsentTest::nginx_t("consent_status_zone 1m;\n"
                                       . "consent_status_zone 2m;\n");
    isnt($rc, 0, 'duplicate zone: nginx -t fails');
    like($out, qr/"consent_status_zone" directive is duplicate/,
         'duplicate zone: message');

    ($rc, $out) = ConsentTest::nginx_t("consent_status_zone big;\n");
    isnt($rc, 0, 'invalid size: nginx -t fails');

    ($rc, $out) = ConsentTest::nginx_t("consent_status;\n");
    like($out, qr/"consent_status" directive is not allowed here/,
         'consent_status at http level: refused');

    ($rc, $out) = ConsentTest::nginx_t('', server =>
        "        location /s { consent_status on; }\n");
    like($out, qr/invalid number of arguments in "consent_status"/,
         'consent_status takes no argument');

    ($rc, $out) = ConsentTest::nginx_t("consent_status_zone 64k;\n",
        server => "        location /s { consent_status; }\n"
                . "        location /v1/ { consent_ingest; }\n");
    is($rc, 0, 'a valid status configuration passes nginx -t')
        or diag $out;
}

done_testing;
