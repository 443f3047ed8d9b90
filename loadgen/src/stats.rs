//! What a run measures while it runs: latency histograms by kind, reply codes, errors, and a
//! per-second timeline for the plot.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::fleet::{CallError, Kind, Outcome, Verdict};

/// Histograms in µs, from 1 µs to an hour, 3 significant digits (~190 KB each).
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// Latency percentiles, in µs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest value.
    pub max_us: u64,
}

impl Latency {
    /// The summary of `h` (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Every way a request can fail to get the answer a well-behaved device expects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// All of the below.
    pub total: u64,
    /// The connection could not be made.
    pub connect: u64,
    /// No complete reply within `--timeout`.
    pub timeout: u64,
    /// The connection broke with the request out.
    pub io: u64,
    /// Not an HTTP 200 with a body.
    pub http: u64,
    /// `12` or `16` (or the DVR protocol's `ERR 0x80008005`, dyndns2's `dnserr`).
    pub server: u64,
    /// A reply the device's state rules out (`13` to a registered device, `07`, `02`, …).
    pub unexpected: u64,
    /// `911` (or the DVR protocol's `ERR 0x80008004`).
    pub flood: u64,
    /// Still due or in flight when the drain after `--duration` ended.
    pub abandoned: u64,
}

impl Errors {
    fn count(&mut self, verdict: Verdict) {
        let slot = match verdict {
            Verdict::Ok => return,
            Verdict::Flood => &mut self.flood,
            Verdict::Server => &mut self.server,
            Verdict::Unexpected => &mut self.unexpected,
            Verdict::Failed(CallError::Connect) => &mut self.connect,
            Verdict::Failed(CallError::Timeout) => &mut self.timeout,
            Verdict::Failed(CallError::Io) => &mut self.io,
            Verdict::Failed(CallError::Http) => &mut self.http,
        };
        *slot += 1;
        self.total += 1;
    }

    pub(crate) fn abandon(&mut self, n: u64) {
        self.abandoned += n;
        self.total += n;
    }
}

/// One second of the run, for the plot.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SecondPoint {
    /// Seconds since the start (the end of this second).
    pub t: u64,
    /// Replies in this second.
    pub requests: u64,
    /// Errors in this second.
    pub errors: u64,
    /// Median latency of this second's replies, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Cores the loadgen used around this second.
    pub loadgen_cores: Option<f64>,
    /// Cores the server used (with `--server-pid`).
    pub server_cores: Option<f64>,
    /// Cores the whole machine used (everyone: loadgen, server and any neighbours).
    pub machine_cores: Option<f64>,
}

const KINDS: usize = Kind::ALL.len();

/// The accumulator the driver feeds.
pub(crate) struct Stats {
    pub(crate) kinds: [Histogram<u64>; KINDS],
    pub(crate) kind_counts: [u64; KINDS],
    pub(crate) all: Histogram<u64>,
    /// Replies to requests due after the boot window: the fleet's settled behaviour.
    pub(crate) after_boot: Histogram<u64>,
    boot_end_us: u64,
    /// Due time → handed to a connection: the wait for a free connection (and any lag of the
    /// loadgen's own scheduler).
    pub(crate) wait: Histogram<u64>,
    pub(crate) codes: BTreeMap<(Kind, &'static str), u64>,
    pub(crate) errors: Errors,
    pub(crate) timeline: Vec<SecondPoint>,
    second: Histogram<u64>,
    second_requests: u64,
    second_errors: u64,
    /// The second being collected (completions are bucketed by when they finished).
    current_second: u64,
}

impl Stats {
    /// `boot_end_us`: requests due from then on also count in `after_boot`.
    pub(crate) fn new(boot_end_us: u64) -> Stats {
        Stats {
            kinds: std::array::from_fn(|_| new_histogram()),
            kind_counts: [0; KINDS],
            all: new_histogram(),
            after_boot: new_histogram(),
            boot_end_us,
            wait: new_histogram(),
            codes: BTreeMap::new(),
            errors: Errors::default(),
            timeline: Vec::new(),
            second: new_histogram(),
            second_requests: 0,
            second_errors: 0,
            current_second: 0,
        }
    }

    /// Records a finished request. Latency (due → reply) is recorded for every reply, whatever
    /// its code; a request without a reply counts only as an error.
    pub(crate) fn record(
        &mut self,
        kind: Kind,
        due_us: u64,
        outcome: &Outcome,
        verdict: Verdict,
        latency_us: u64,
        done_us: u64,
    ) {
        self.roll_to(done_us);
        self.kind_counts[kind.index()] += 1;
        self.second_requests += 1;
        if verdict != Verdict::Ok {
            self.second_errors += 1;
        }
        self.errors.count(verdict);
        if let Ok(reply) = outcome {
            *self.codes.entry((kind, reply.code())).or_default() += 1;
            let latency_us = latency_us.max(1);
            self.kinds[kind.index()].saturating_record(latency_us);
            self.all.saturating_record(latency_us);
            if due_us >= self.boot_end_us {
                self.after_boot.saturating_record(latency_us);
            }
            self.second.saturating_record(latency_us);
        }
    }

    /// Closes every second that ended before `now_us`.
    pub(crate) fn roll_to(&mut self, now_us: u64) {
        let second = now_us / 1_000_000;
        while self.current_second < second {
            self.current_second += 1;
            self.timeline.push(SecondPoint {
                t: self.current_second,
                requests: self.second_requests,
                errors: self.second_errors,
                p50_us: if self.second.is_empty() {
                    0
                } else {
                    self.second.value_at_quantile(0.5)
                },
                p99_us: if self.second.is_empty() {
                    0
                } else {
                    self.second.value_at_quantile(0.99)
                },
                ..SecondPoint::default()
            });
            self.second.reset();
            self.second_requests = 0;
            self.second_errors = 0;
        }
    }

    /// Replies and p99 of the last closed second, for the progress display.
    pub(crate) fn last_second(&self) -> Option<&SecondPoint> {
        self.timeline.last()
    }

    pub(crate) fn requests(&self) -> u64 {
        self.kind_counts.iter().sum()
    }
}

/// Requests per second: `count` over `elapsed_secs` (0 for an empty interval).
pub(crate) fn rate(count: u64, elapsed_secs: f64) -> f64 {
    if elapsed_secs > 0.0 {
        count as f64 / elapsed_secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Reply;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new_histogram();
        for us in 1..=1000 {
            h.record(us).expect("in range");
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert_eq!(l.p50_us, 500);
        assert_eq!(l.p90_us, 900);
        assert_eq!(l.p99_us, 990);
        assert_eq!(l.p999_us, 999);
        assert_eq!(l.max_us, 1000);
        assert!((l.mean_us - 500.5).abs() < 0.5);
        assert_eq!(Latency::of(&new_histogram()), Latency::default());
    }

    #[test]
    fn rates_divide_by_elapsed_time() {
        assert_eq!(rate(3000, 1.5), 2000.0);
        assert_eq!(rate(10, 0.0), 0.0);
    }

    #[test]
    fn replies_errors_and_seconds_are_counted_where_they_belong() {
        let mut s = Stats::new(2_000_000);
        s.record(
            Kind::Add,
            0,
            &Ok(Reply::Modified),
            Verdict::Ok,
            100,
            200_000,
        );
        s.record(
            Kind::Add,
            0,
            &Ok(Reply::Flood),
            Verdict::Flood,
            300,
            900_000,
        );
        s.record(
            Kind::Update,
            2_400_000,
            &Err(CallError::Timeout),
            Verdict::Failed(CallError::Timeout),
            10_000_000,
            2_500_000,
        );
        s.record(
            Kind::Ipdetect,
            2_550_000,
            &Ok(Reply::NotFound),
            Verdict::Unexpected,
            50,
            2_600_000,
        );
        s.roll_to(3_000_000);
        assert_eq!(s.requests(), 4);
        assert_eq!(s.codes[&(Kind::Add, "09")], 1);
        assert_eq!(s.codes[&(Kind::Add, "911")], 1);
        assert_eq!(s.codes.get(&(Kind::Update, "12")), None);
        assert_eq!(
            s.errors,
            Errors {
                total: 3,
                timeout: 1,
                unexpected: 1,
                flood: 1,
                ..Errors::default()
            }
        );
        // The timeout has no reply, so no latency: three replies in the histograms.
        assert_eq!(s.all.len(), 3);
        assert_eq!(
            s.after_boot.len(),
            1,
            "only the ipdetect was due after the boot"
        );
        assert_eq!(s.kinds[Kind::Update.index()].len(), 0);
        let seconds: Vec<(u64, u64, u64)> = s
            .timeline
            .iter()
            .map(|p| (p.t, p.requests, p.errors))
            .collect();
        assert_eq!(seconds, [(1, 2, 1), (2, 0, 0), (3, 2, 2)]);
        assert_eq!(s.timeline[0].p99_us, 300);
        assert_eq!(s.timeline[2].p50_us, 50);
    }
}
