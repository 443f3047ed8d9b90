//! The final report: what `--json` writes and what is printed at the end of a run, and the
//! `--plot` SVG drawn from its timeline.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::dns::VerifyReport;
use crate::dvr::DvrSetup;
use crate::stats::{Errors, Latency, SecondPoint};

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What was run.
    pub run: RunInfo,
    /// The `dvr` and `dyndns2` scenarios' untimed setup: provisioning and the first update
    /// of each host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dvr_setup: Option<DvrSetup>,
    /// Seconds from the start until the last reply (or the end of the drain).
    pub elapsed_secs: f64,
    /// Requests that finished (replied or failed).
    pub requests: u64,
    /// `requests / elapsed_secs`.
    pub requests_per_sec: f64,
    /// Due → reply, µs, every reply.
    pub latency: Latency,
    /// The same for requests due after the boot window (the first poll interval, or the surge
    /// when it is the boot): the settled fleet, without its registration burst.
    pub latency_after_boot: Latency,
    /// Per kind (`add`, `update`, `remove`, `ipdetect`, `dvr`, `dyndns2`).
    pub kinds: BTreeMap<&'static str, KindReport>,
    /// Reply codes per kind (`ip` is an `ipdetect` address; dyndns2 replies by their first
    /// word: `good`, `nochg`, `badauth`, …).
    pub replies: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Failures by cause.
    pub errors: Errors,
    /// Update-to-DNS propagation of sampled acknowledged changes.
    pub propagation: Propagation,
    /// What the schedule did.
    pub schedule: ScheduleReport,
    /// The final check of every (or a sample of) acknowledged state against DNS.
    pub verify: Option<VerifyReport>,
    /// CPU time of the loadgen and, if its pid was given, the server.
    pub cpu: Cpu,
    /// Per second: replies, errors, p50 and p99.
    pub timeline: Vec<SecondPoint>,
}

/// The run's parameters, as the report states them.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// `steady`, `churn`, `surge`, `updates`, `dvr` or `dyndns2`.
    pub scenario: String,
    /// Fleet size.
    pub devices: u32,
    /// Connection workers: requests in flight at most.
    pub connections: usize,
    /// Connections kept open across requests (`false`: a new one per request).
    pub keep_alive: bool,
    /// Where requests came from: `per-device` (each device's own 127/8 address) or `single`.
    pub sources: &'static str,
    /// The simulated poll interval.
    pub poll_interval_secs: f64,
    /// Simulated seconds per real second.
    pub speedup: f64,
    /// Share of devices changing address per interval.
    pub churn: f64,
    /// Share of devices rebooting per interval.
    pub reboot: f64,
    /// Share of devices decommissioned per interval.
    pub decommission: f64,
    /// The surge window, simulated seconds (surge scenario only).
    pub surge_window_secs: Option<f64>,
    /// The scheduling window (`--duration`), real seconds.
    pub duration_secs: f64,
    /// `--seed`.
    pub seed: u64,
    /// The device API address.
    pub http: String,
    /// The DNS address.
    pub dns: String,
}

/// One request kind.
#[derive(Clone, Debug, Serialize)]
pub struct KindReport {
    /// Finished requests.
    pub count: u64,
    /// Per second of the run.
    pub per_sec: f64,
    /// Due → reply.
    pub latency: Latency,
}

/// Update-to-DNS propagation: from the moment the device read `09`/`10|…` until the server's
/// DNS answered the new address (so it includes one DNS round trip).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Propagation {
    /// Share of acknowledged changes sampled.
    pub sample: f64,
    /// Percentiles, µs.
    pub latency: Latency,
    /// Probes that never saw the new address within the probe timeout.
    pub timeouts: u64,
    /// Answers that still showed something else (each was asked again).
    pub stale_answers: u64,
    /// Reply read → first query sent: the loadgen's own part of the figures above.
    pub handover: Latency,
}

/// What the schedule did, and how well the loadgen kept up.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScheduleReport {
    /// Due → handed to a connection, µs: the wait for a free connection plus any lag of the
    /// loadgen itself. Included in every latency above.
    pub wait: Latency,
    /// The most requests due and waiting for a connection at once.
    pub backlog_max: usize,
    /// Slots that found their device still waiting for a reply.
    pub skipped_busy: u64,
    /// Simulated WAN address changes.
    pub wan_changes: u64,
    /// Simulated reboots.
    pub reboots: u64,
    /// Simulated decommissions.
    pub decommissions: u64,
    /// Devices registered (acknowledged) at the end.
    pub registered_at_end: u32,
    /// TCP connections opened (more than `connections` means reconnects).
    pub connections_opened: u64,
}

/// CPU seconds (user + system) over the load phase, from /proc (Linux; absent elsewhere).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cpu {
    /// The loadgen process.
    pub loadgen_secs: Option<f64>,
    /// The server, when `--server-pid` was given.
    pub server_secs: Option<f64>,
    /// The whole machine: the two above plus every neighbour.
    pub machine_secs: Option<f64>,
    /// `loadgen_secs / elapsed`, in cores (1.0 = one core busy).
    pub loadgen_cores: Option<f64>,
    /// `server_secs / elapsed`, in cores.
    pub server_cores: Option<f64>,
    /// `machine_secs / elapsed`, in cores.
    pub machine_cores: Option<f64>,
    /// The server's CPU by thread name, largest first.
    pub server_threads: Vec<ThreadCpu>,
}

/// CPU seconds of the server's threads of one name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThreadCpu {
    /// The thread name (tokio workers share one).
    pub name: String,
    /// Their CPU seconds over the load phase.
    pub secs: f64,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn latency_row(out: &mut fmt::Formatter<'_>, name: &str, l: &Latency) -> fmt::Result {
    writeln!(
        out,
        "  {name:<10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9}",
        l.count,
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.p999_us),
        ms(l.max_us),
    )
}

impl fmt::Display for Report {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.run;
        writeln!(
            out,
            "ddns-loadgen: {} · {} devices · poll {}s ×{} · {} connections ({}; {}) · seed {}",
            r.scenario,
            r.devices,
            r.poll_interval_secs,
            r.speedup,
            r.connections,
            if r.keep_alive {
                "kept alive"
            } else {
                "a new one per request"
            },
            if r.sources == "single" {
                "one source"
            } else {
                "a source per device"
            },
            r.seed
        )?;
        if let Some(setup) = &self.dvr_setup {
            write!(
                out,
                "{} host setup (untimed): {} hosts",
                setup.protocol.kind().name(),
                setup.hosts
            )?;
            if let Some(p) = &setup.provision {
                write!(
                    out,
                    "; provisioned {} ({} existed) through {} in {:.1} s, {} at a time",
                    p.added, p.existed, p.admin_socket, p.secs, p.concurrency
                )?;
            }
            let f = &setup.first_pass;
            write!(
                out,
                "; first update of each (argon2 on the server) in {:.1} s, {} at a time:",
                f.secs, f.connections
            )?;
            for (text, n) in &f.replies {
                write!(out, " {text}×{n}")?;
            }
            writeln!(out, "; no reply {}; retries {}", f.failed, f.retries)?;
        }
        writeln!(
            out,
            "  {} requests in {:.1} s = {:.0} req/s; errors {}",
            self.requests, self.elapsed_secs, self.requests_per_sec, self.errors.total
        )?;
        writeln!(
            out,
            "latency from due time, ms:\n  {:<10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "kind", "replies", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for (name, kind) in &self.kinds {
            if kind.count > 0 {
                latency_row(out, name, &kind.latency)?;
            }
        }
        latency_row(out, "all", &self.latency)?;
        latency_row(out, "after boot", &self.latency_after_boot)?;
        write!(out, "requests/s:")?;
        for (name, kind) in &self.kinds {
            if kind.count > 0 {
                write!(out, " {name} {:.0}", kind.per_sec)?;
            }
        }
        writeln!(out)?;
        write!(out, "replies:")?;
        for (kind, codes) in &self.replies {
            write!(out, " {kind}")?;
            for (code, n) in codes {
                write!(out, " {code}×{n}")?;
            }
            write!(out, ";")?;
        }
        writeln!(out)?;
        let e = &self.errors;
        writeln!(
            out,
            "errors: {} (connect {}, timeout {}, io {}, http {}, 12/16 {}, unexpected {}, 911 {}, abandoned {})",
            e.total,
            e.connect,
            e.timeout,
            e.io,
            e.http,
            e.server,
            e.unexpected,
            e.flood,
            e.abandoned
        )?;
        let p = &self.propagation;
        writeln!(
            out,
            "propagation (reply → DNS answer, {} samples): p50 {} ms, p99 {} ms, max {} ms; \
             timeouts {}; of which hand-over to the prober p50 {} ms, p99 {} ms",
            p.latency.count,
            ms(p.latency.p50_us),
            ms(p.latency.p99_us),
            ms(p.latency.max_us),
            p.timeouts,
            ms(p.handover.p50_us),
            ms(p.handover.p99_us),
        )?;
        let s = &self.schedule;
        writeln!(
            out,
            "schedule: wait for a connection p99 {} ms, max {} ms; backlog max {}; busy skips {}; \
             changes {}, reboots {}, decommissions {}; registered {}; connections opened {}",
            ms(s.wait.p99_us),
            ms(s.wait.max_us),
            s.backlog_max,
            s.skipped_busy,
            s.wan_changes,
            s.reboots,
            s.decommissions,
            s.registered_at_end,
            s.connections_opened
        )?;
        if let Some(v) = &self.verify {
            writeln!(
                out,
                "verify (DNS vs last acknowledged reply): {} checked, {} matched, {} mismatched, \
                 {} unanswered, {} uncertain (skipped)",
                v.checked, v.matched, v.mismatched, v.unanswered, v.uncertain
            )?;
            for example in &v.examples {
                writeln!(out, "  {example}")?;
            }
        }
        let c = &self.cpu;
        let cores = |secs: Option<f64>, cores: Option<f64>| match (secs, cores) {
            (Some(s), Some(c)) => format!("{s:.1} s ({c:.2} cores)"),
            _ => "n/a".to_owned(),
        };
        write!(
            out,
            "cpu: loadgen {}, server {}, whole machine {}",
            cores(c.loadgen_secs, c.loadgen_cores),
            cores(c.server_secs, c.server_cores),
            cores(c.machine_secs, c.machine_cores),
        )?;
        if let (Some(m), Some(l), Some(s)) = (c.machine_cores, c.loadgen_cores, c.server_cores) {
            write!(out, " (others {:.2} cores)", m - l - s)?;
        }
        writeln!(out)?;
        if !c.server_threads.is_empty() {
            write!(out, "server threads:")?;
            for t in c.server_threads.iter().take(6) {
                write!(out, " {} {:.1} s;", t.name, t.secs)?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// Draws latency (p50 and p99 per second, log scale) above throughput (replies per second),
/// as a self-contained SVG.
pub fn plot_svg(report: &Report) -> String {
    const W: f64 = 960.0;
    const PANEL_H: f64 = 260.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 50.0;
    const GAP: f64 = 70.0;
    let plot_w = W - LEFT - RIGHT;
    let has_cpu = report.timeline.iter().any(|p| p.machine_cores.is_some());
    let panels = if has_cpu { 3.0 } else { 2.0 };
    let h = TOP + panels * PANEL_H + (panels - 1.0) * GAP + 50.0;
    let points = &report.timeline;
    let t_max = points.last().map_or(1, |p| p.t).max(1) as f64;
    let x = |t: u64| LEFT + plot_w * t as f64 / t_max;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="24" font-size="15">ddns-loadgen · {} · {} devices · {:.0} req/s · p99 {} ms · errors {}</text>
"##,
        report.run.scenario,
        report.run.devices,
        report.requests_per_sec,
        ms(report.latency.p99_us),
        report.errors.total
    );

    // Latency panel, log scale from 0.1 ms up to the next decade above the largest p99.
    let lat_top = TOP;
    let max_ms = points
        .iter()
        .map(|p| p.p99_us as f64 / 1000.0)
        .fold(1.0f64, f64::max);
    let decades_hi = max_ms.log10().ceil().max(0.0);
    let decades_lo = -1.0;
    let y_lat = |us: u64| {
        let v = (us as f64 / 1000.0).max(0.1).log10();
        lat_top + PANEL_H * (1.0 - (v - decades_lo) / (decades_hi - decades_lo))
    };
    axes(
        &mut svg,
        lat_top,
        PANEL_H,
        LEFT,
        plot_w,
        "latency from due time (ms, log)",
    );
    let mut d = decades_lo;
    while d <= decades_hi {
        let us = (10f64.powf(d) * 1000.0) as u64;
        let y = y_lat(us);
        let label = if d < 0.0 {
            "0.1".to_owned()
        } else {
            format!("{}", 10f64.powf(d))
        };
        grid(&mut svg, y, LEFT, plot_w, &label);
        d += 1.0;
    }
    polyline(
        &mut svg,
        points,
        |p| (x(p.t), y_lat(p.p50_us)),
        "#1f77b4",
        "p50",
    );
    polyline(
        &mut svg,
        points,
        |p| (x(p.t), y_lat(p.p99_us)),
        "#d62728",
        "p99",
    );
    legend(
        &mut svg,
        LEFT + 10.0,
        lat_top + 14.0,
        &[("#1f77b4", "p50"), ("#d62728", "p99")],
    );

    // Throughput panel, linear from 0.
    let thr_top = TOP + PANEL_H + GAP;
    let max_rps = points.iter().map(|p| p.requests).max().unwrap_or(0).max(1) as f64;
    let step = nice_step(max_rps / 4.0);
    let top_rps = (max_rps / step).ceil() * step;
    let y_thr = |v: f64| thr_top + PANEL_H * (1.0 - v / top_rps);
    axes(
        &mut svg,
        thr_top,
        PANEL_H,
        LEFT,
        plot_w,
        "replies per second",
    );
    let mut v = 0.0;
    while v <= top_rps + step / 2.0 {
        grid(&mut svg, y_thr(v), LEFT, plot_w, &format!("{v}"));
        v += step;
    }
    polyline(
        &mut svg,
        points,
        |p| (x(p.t), y_thr(p.requests as f64)),
        "#2ca02c",
        "replies/s",
    );
    polyline(
        &mut svg,
        points,
        |p| (x(p.t), y_thr(p.errors as f64)),
        "#ff7f0e",
        "errors/s",
    );
    legend(
        &mut svg,
        LEFT + 10.0,
        thr_top + 14.0,
        &[("#2ca02c", "replies/s"), ("#ff7f0e", "errors/s")],
    );

    // CPU panel: who used the machine's cores, second by second.
    let cpu_top = thr_top + PANEL_H + GAP;
    if has_cpu {
        let max_cores = points
            .iter()
            .filter_map(|p| p.machine_cores)
            .fold(2.0f64, f64::max)
            .ceil();
        let y_cpu = |v: f64| cpu_top + PANEL_H * (1.0 - v / max_cores);
        axes(
            &mut svg,
            cpu_top,
            PANEL_H,
            LEFT,
            plot_w,
            "CPU (cores): loadgen, server, and everything else on the machine",
        );
        let mut v = 0.0;
        while v <= max_cores {
            grid(&mut svg, y_cpu(v), LEFT, plot_w, &format!("{v}"));
            v += 0.5;
        }
        type Series = (&'static str, &'static str, fn(&SecondPoint) -> Option<f64>);
        let series: [Series; 3] = [
            ("#9467bd", "loadgen", |p| p.loadgen_cores),
            ("#8c564b", "server", |p| p.server_cores),
            ("#7f7f7f", "others", |p| {
                Some(p.machine_cores? - p.loadgen_cores? - p.server_cores.unwrap_or(0.0))
            }),
        ];
        for (color, name, value) in series {
            let with: Vec<SecondPoint> = points
                .iter()
                .filter(|p| value(p).is_some())
                .cloned()
                .collect();
            polyline(
                &mut svg,
                &with,
                |p| (x(p.t), y_cpu(value(p).unwrap_or(0.0).max(0.0))),
                color,
                name,
            );
        }
        legend(
            &mut svg,
            LEFT + 10.0,
            cpu_top + 14.0,
            &[
                ("#9467bd", "loadgen"),
                ("#8c564b", "server"),
                ("#7f7f7f", "others"),
            ],
        );
    }

    // Time axis under every panel.
    let t_step = nice_step(t_max / 8.0).max(1.0);
    let bottoms = [lat_top, thr_top, cpu_top];
    let mut t = 0.0;
    while t <= t_max {
        let xt = LEFT + plot_w * t / t_max;
        for top in &bottoms[..panels as usize] {
            let bottom = top + PANEL_H;
            let _ = writeln!(
                svg,
                r##"<text x="{xt:.1}" y="{:.1}" text-anchor="middle">{t}</text>"##,
                bottom + 16.0
            );
        }
        t += t_step;
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since start</text>"##,
        LEFT + plot_w / 2.0,
        bottoms[panels as usize - 1] + PANEL_H + 36.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn axes(svg: &mut String, top: f64, height: f64, left: f64, width: f64, title: &str) {
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#444"/>
<text x="{left}" y="{:.1}" font-size="13">{title}</text>"##,
        top - 8.0
    );
}

fn grid(svg: &mut String, y: f64, left: f64, width: f64, label: &str) {
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>
<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
        left + width,
        left - 6.0,
        y + 4.0
    );
}

fn polyline(
    svg: &mut String,
    points: &[SecondPoint],
    at: impl Fn(&SecondPoint) -> (f64, f64),
    color: &str,
    name: &str,
) {
    if points.is_empty() {
        return;
    }
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="{color}" stroke-width="1.5" points=""##
    );
    for p in points {
        let (x, y) = at(p);
        let _ = write!(svg, "{x:.1},{y:.1} ");
    }
    let _ = writeln!(svg, r##""><title>{name}</title></polyline>"##);
}

fn legend(svg: &mut String, x: f64, y: f64, entries: &[(&str, &str)]) {
    for (i, (color, name)) in entries.iter().enumerate() {
        let xi = x + 110.0 * i as f64;
        let _ = writeln!(
            svg,
            r##"<line x1="{xi}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{color}" stroke-width="3"/>
<text x="{:.1}" y="{:.1}">{name}</text>"##,
            xi + 20.0,
            xi + 26.0,
            y + 4.0
        );
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 {
        return 1.0;
    }
    let base = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * base)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Report {
        Report {
            dvr_setup: None,
            run: RunInfo {
                scenario: "churn".into(),
                devices: 300,
                connections: 8,
                keep_alive: false,
                sources: "per-device",
                poll_interval_secs: 300.0,
                speedup: 100.0,
                churn: 0.05,
                reboot: 0.0,
                decommission: 0.0,
                surge_window_secs: None,
                duration_secs: 3.0,
                seed: 1,
                http: "127.0.0.1:8080".into(),
                dns: "127.0.0.1:5353".into(),
            },
            elapsed_secs: 3.0,
            requests: 600,
            requests_per_sec: 200.0,
            latency: Latency {
                count: 600,
                p99_us: 2500,
                ..Latency::default()
            },
            latency_after_boot: Latency::default(),
            kinds: BTreeMap::new(),
            replies: BTreeMap::from([("add", BTreeMap::from([("10", 300)]))]),
            errors: Errors::default(),
            propagation: Propagation::default(),
            schedule: ScheduleReport::default(),
            verify: None,
            cpu: Cpu::default(),
            timeline: (1..=3)
                .map(|t| SecondPoint {
                    t,
                    requests: 200,
                    errors: 0,
                    p50_us: 400,
                    p99_us: 2500,
                    loadgen_cores: Some(0.2),
                    server_cores: Some(0.5),
                    machine_cores: Some(1.5),
                })
                .collect(),
        }
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(12.0), 20.0);
        assert_eq!(nice_step(5000.0), 5000.0);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn the_plot_is_an_svg_with_both_panels() {
        let svg = plot_svg(&sample());
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 7);
        assert!(svg.contains("CPU"));
        assert!(svg.contains("replies per second"));
        // An empty run still draws axes.
        let mut empty = sample();
        empty.timeline.clear();
        assert!(plot_svg(&empty).contains("</svg>"));
    }

    #[test]
    fn the_text_report_and_json_carry_the_figures() {
        let r = sample();
        let text = r.to_string();
        assert!(text.contains("600 requests in 3.0 s = 200 req/s"), "{text}");
        assert!(text.contains("add 10×300"), "{text}");
        assert!(
            text.contains("8 connections (a new one per request; a source per device)"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&r).expect("serializes");
        assert_eq!(json["run"]["keep_alive"], false);
        assert_eq!(json["run"]["sources"], "per-device");
        assert_eq!(json["latency"]["p99_us"], 2500);
        assert_eq!(json["replies"]["add"]["10"], 300);
        assert_eq!(json["timeline"].as_array().map(Vec::len), Some(3));
    }
}
