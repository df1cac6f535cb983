#!/usr/bin/perl
# The demo page of `make run` (demo/www, demo/nginx.conf) in headless
# Chromium: click consent toggles and event buttons, and check the
# destinations' panel against SPEC section 4 and against what the demo
# sinks really received.  Writes build/demo.png (docs/browser.md).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use ConsentTest;
use ConsentBrowser;

ConsentBrowser::check_ready();
plan(skip_all => 'the demo test runs demo/nginx.conf as it is, outside '
     . 'the memcheck harness (t/40-browser.t runs the browser under it)')
    if $ConsentTest::MEMCHECK;

my $ROOT = ConsentTest::root();
my $SHOT = "$ROOT/build/demo.png";
unlink $SHOT;

my $demo = ConsentBrowser::start_demo();
END { ConsentBrowser::stop_demo($demo) if $demo }

# Each step's clicks, then per event (label) and destination what the
# panel must show: R received, C filtered for consent, I filtered by
# integrations.  Destinations: amplitude (C0002), facebook (C0004, C0005
# off), warehouse (enforce=off), webhook (unmapped).
my @steps = (
    # consent to Performance only, save, then an order
    { clicks => ['#cat-C0002 + .slider', '#save', '#send-track'],
      events => { 'Consent Preference Updated' => 'RCRR',
                  'Track "Order Completed"'    => 'RCRR' } },
    # accept everything: the ad click is kept from facebook by integrations
    { clicks => ['#accept-all', '#send-ad', '#send-identify', '#send-alias'],
      events => { 'Track "Ad Clicked" (integrations: facebook off)' => 'RIRR',
                  'Identify' => 'RRRR', 'Alias' => 'RRRR' } },
    # no consent object: consent_default allow
    { clicks => ['#no-consent', '#send-page'],
      events => { 'Page view' => 'RRRR' } },
    # a consent object again: Targeting only (facebook's C0005 is off)
    { clicks => ['#no-consent', '#reject-all', '#cat-C0004 + .slider',
                 '#send-group'],
      events => { 'Group' => 'CRRR' } },
);
my @DESTS = @ConsentBrowser::DEMO_SINKS;
my %STATE = (R => 'received', C => 'filtered', I => 'filtered integ');

my $res = ConsentBrowser::run_node('t/browser/demo.js', {
    url => "http://127.0.0.1:$demo->{port}/",
    screenshot => $SHOT,
    steps => [map { { clicks => $_->{clicks} } } @steps],
});
diag("chromium $res->{version}: demo in $res->{ms} ms")
    if $ENV{TEST_VERBOSE};

ok(!$res->{error}, 'the page loaded and settled after every step')
    or diag($res->{error});
is(scalar @{ $res->{steps} }, scalar @steps, 'every step ran');

# ---------------------------------------------------------------------
# the page's idea of the configuration is demo/nginx.conf's

open my $fh, '<', "$ROOT/demo/nginx.conf" or die $!;
my $conf = do { local $/; <$fh> };
close $fh;
my @conf_cats = map { { id => $_->[0], name => $_->[1], off => !!$_->[2] } }
    map { [ /^\s*consent_category\s+(\S+)\s+"([^"]+)"(\s+off)?\s*;/ ] }
    grep { /^\s*consent_category\s/ } split /\n/, $conf;
my @page_cats = map { { id => $_->{id}, name => $_->{name},
                        off => !!$_->{off} } } @{ $res->{config}{categories} };
is_deeply(\@page_cats, \@conf_cats, 'page categories = demo/nginx.conf');

my %conf_dests;
for (split /\n/, $conf) {
    next unless /^\s*consent_destination\s+(\S+)\s+\S+\s*(.*?)\s*;/;
    my ($name, @rest) = ($1, split ' ', $2);
    $conf_dests{$name} = (grep { $_ eq 'enforce=off' } @rest)
        ? 'enforce=off' : join ' ', @rest;
}
my %page_dests = map {
    ($_->{name} => (defined $_->{enforce} && !$_->{enforce})
                   ? 'enforce=off' : join ' ', @{ $_->{categories} })
} @{ $res->{config}{destinations} };
is_deeply(\%page_dests, \%conf_dests, 'page destinations = demo/nginx.conf');

# ---------------------------------------------------------------------
# the panel after each step: the events so far, each with its outcome

my %want;    # dest -> label -> state
for my $i (0 .. $#steps) {
    my $st = $steps[$i];
    for my $label (keys %{ $st->{events} }) {
        my @o = split //, $st->{events}{$label};
        $want{ $DESTS[$_] }{$label} = $STATE{ $o[$_] } for 0 .. $#DESTS;
    }
    my $panel = $res->{steps}[$i]{panel} or next;
    for my $d (@DESTS) {
        my %got = map { $_->{label} => $_->{state} }
                  @{ $panel->{$d}{events} };
        is_deeply(\%got, $want{$d}, "step " . ($i + 1) . ": ${d}'s panel")
            or diag(ConsentTest::json_encode($panel->{$d}));
    }
}

# the reasons shown in the end, and the gateway's counters
my $final = $res->{steps}[-1]{panel} // {};
my %why = map { $_->{label} => $_->{why} } @{ $final->{facebook}{events} };
is($why{'Track "Order Completed"'}, 'filtered: consent: C0004 Targeting '
   . 'not granted', 'facebook: the consent reason');
is($why{'Track "Ad Clicked" (integrations: facebook off)'},
   'filtered: integrations: facebook off', 'facebook: the integrations reason');
is($why{Group}, 'received', 'facebook: C0005 is off, C0004 is enough');
my %why_amp = map { $_->{label} => $_->{why} }
              @{ $final->{amplitude}{events} };
is($why_amp{Group}, 'filtered: consent: C0002 Performance not granted',
   'amplitude: the consent reason');

my %counts = map {
    my $d = $_;
    my @s = values %{ $want{$d} };
    ($d => { delivered => scalar(grep { $_ eq 'received' } @s),
             'filtered: consent' => scalar(grep { $_ eq 'filtered' } @s),
             'filtered: integrations' =>
                 scalar(grep { $_ eq 'filtered integ' } @s) })
} @DESTS;
for my $d (@DESTS) {
    is_deeply($final->{$d}{counters}, $counts{$d},
              "$d: the panel's counters (consent_status)");
}

# what the sinks really received: the events the panel says, without the
# page's cookies (same origin: analytics.js's ajs_ cookies go along)
my $cookies = grep { $_->{requestHeaders}{cookie} } @{ $res->{posts} };
ok($cookies, "the browser sent its cookies ($cookies requests)");
for my $d (@DESTS) {
    my (@ev, @cookie);
    for (ConsentBrowser::lines($demo->{sinks}{$d}{log})) {
        my $r = JSON::PP->new->latin1->decode($_);
        push @ev, @{ ConsentTest::json_decode($r->{body})->{batch} };
        push @cookie, $r->{headers}{cookie} if $r->{headers}{cookie};
    }
    is(scalar @ev, $counts{$d}{delivered},
       "$d: the sink got $counts{$d}{delivered} events");
    is_deeply(\@cookie, [], "$d: no Cookie header passed on");
}

# ---------------------------------------------------------------------
# the browser side

my @errors = grep { $_->{type} eq 'error' } @{ $res->{console} };
is_deeply(\@errors, [], 'no console error');
is_deeply($res->{pageErrors}, [], 'no page error');
is_deeply($res->{failed}, [], 'no failed request');
is_deeply($res->{external}, [], 'no request to another host (CDN)');
my @posts = grep { $_->{path} =~ m{^/v1/[tpigas]$} } @{ $res->{posts} };
my $sent = map { keys %{ $_->{events} } } @steps;
is(scalar @posts, $sent, "$sent events posted by analytics.js");
is_deeply([grep { $_->{status} != 200 } @{ $res->{posts} }], [],
          'every gateway reply 200');

ok(-s $SHOT && -s $SHOT > 10000, "screenshot written: $SHOT");
open my $png, '<:raw', $SHOT;
read $png, my $sig, 8 if $png;
is($sig, "\x89PNG\r\n\x1a\n", 'screenshot is a PNG');

ConsentBrowser::stop_demo($demo);
undef $demo;
done_testing();
