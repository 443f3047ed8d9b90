//! CPU time from /proc (Linux): the loadgen's, the server's (whole and per thread) and the
//! whole machine's, to tell which of them a slow second belonged to; and what the `quic`
//! scenario reads beside it, resident memory and the UDP datagrams of this network namespace.
//! Elsewhere every figure is `None`.

use std::collections::BTreeMap;

/// USER_HZ: /proc counts CPU time in these ticks (100 on every Linux architecture we run on).
const TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU seconds of `pid` (this process if `None`).
pub(crate) fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    parse_stat(&std::fs::read_to_string(path).ok()?).map(|(_, secs)| secs)
}

/// Resident memory (`VmRSS`) of `pid` (this process if `None`), in bytes.
pub(crate) fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    parse_rss(&std::fs::read_to_string(path).ok()?)
}

fn parse_rss(status: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// UDP datagrams received in this network namespace so far (`Udp: InDatagrams` of
/// /proc/net/snmp). On the loopback every datagram sent is received once, so this counts the
/// packets of both directions.
pub(crate) fn udp_datagrams() -> Option<u64> {
    parse_udp_in(&std::fs::read_to_string("/proc/net/snmp").ok()?)
}

fn parse_udp_in(snmp: &str) -> Option<u64> {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(name, _)| *name == "InDatagrams")?
        .1
        .parse()
        .ok()
}

/// CPU seconds of each thread of `pid`, by thread id: (name, seconds).
pub(crate) fn thread_secs(pid: u32) -> BTreeMap<u32, (String, f64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let (name, secs) = parse_stat(&text)?;
            Some((tid, (name, secs)))
        })
        .collect()
}

/// Per thread name, the CPU seconds spent between two [`thread_secs`] readings (threads born in
/// between count from zero), largest first.
pub(crate) fn thread_delta(
    before: &BTreeMap<u32, (String, f64)>,
    after: &BTreeMap<u32, (String, f64)>,
) -> Vec<(String, f64)> {
    let mut by_name: BTreeMap<&str, f64> = BTreeMap::new();
    for (tid, (name, secs)) in after {
        let start = before.get(tid).map_or(0.0, |(_, s)| *s);
        *by_name.entry(name).or_default() += secs - start;
    }
    let mut named: Vec<(String, f64)> = by_name
        .into_iter()
        .map(|(name, secs)| (name.to_owned(), secs))
        .collect();
    named.sort_by(|a, b| b.1.total_cmp(&a.1));
    named
}

/// CPU seconds the whole machine spent busy (all CPUs: everything but idle and iowait).
pub(crate) fn machine_busy_secs() -> Option<f64> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_proc_stat(text: &str) -> Option<f64> {
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(busy as f64 / TICKS_PER_SEC)
}

/// (command name, utime + stime seconds): fields 2, 14 and 15; the name may contain spaces and
/// parentheses, so the others are counted after its last `)`.
fn parse_stat(text: &str) -> Option<(String, f64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let mut fields = text.get(close + 1..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, (utime + stime) as f64 / TICKS_PER_SEC))
}

/// One reading: when, and the CPU seconds of the loadgen, the server and the machine.
type Reading = (std::time::Instant, Option<f64>, Option<f64>, Option<f64>);

/// Samples the three CPU figures and turns them into cores used since the last sample.
pub(crate) struct CpuSampler {
    server_pid: Option<u32>,
    last: Option<Reading>,
}

/// Cores used over an interval: loadgen, server, whole machine.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Cores {
    pub(crate) loadgen: Option<f64>,
    pub(crate) server: Option<f64>,
    pub(crate) machine: Option<f64>,
}

impl CpuSampler {
    pub(crate) fn new(server_pid: Option<u32>) -> CpuSampler {
        let mut sampler = CpuSampler {
            server_pid,
            last: None,
        };
        sampler.sample();
        sampler
    }

    /// Cores used since the previous call.
    pub(crate) fn sample(&mut self) -> Cores {
        let now = (
            std::time::Instant::now(),
            cpu_secs(None),
            self.server_pid.and_then(|pid| cpu_secs(Some(pid))),
            machine_busy_secs(),
        );
        let cores = match self.last {
            Some((at, loadgen, server, machine)) => {
                let secs = now.0.duration_since(at).as_secs_f64().max(1e-3);
                let per = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (b - a) / secs);
                Cores {
                    loadgen: per(loadgen, now.1),
                    server: per(server, now.2),
                    machine: per(machine, now.3),
                }
            }
            None => Cores::default(),
        };
        self.last = Some(now);
        cores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let stat = "4242 (dd (x) nsd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0";
        assert_eq!(parse_stat(stat), Some(("dd (x) nsd".into(), 3.25)));
        assert_eq!(parse_stat("garbage"), None);
        if cfg!(target_os = "linux") {
            assert!(cpu_secs(None).is_some());
            assert!(machine_busy_secs().is_some());
            assert!(!thread_secs(std::process::id()).is_empty());
        }
    }

    #[test]
    fn memory_and_datagrams_are_read_from_proc() {
        assert_eq!(
            parse_rss("Name:\tddnsd\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"),
            Some(1 << 20)
        );
        assert_eq!(parse_rss("Name:\tkthreadd\n"), None);
        let snmp = "Udp: InDatagrams NoPorts InErrors OutDatagrams\nUdp: 4242 3 0 4343\n\
                    UdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";
        assert_eq!(parse_udp_in(snmp), Some(4242));
        if cfg!(target_os = "linux") {
            assert!(rss_bytes(None).is_some_and(|b| b > 0));
            assert!(udp_datagrams().is_some());
        }
    }

    #[test]
    fn machine_busy_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 20 30 5000 400 1 2 3 0 0\ncpu0 1 2 3\n";
        assert_eq!(parse_proc_stat(stat), Some(1.56));
    }

    #[test]
    fn thread_deltas_add_up_by_name() {
        let before = BTreeMap::from([(1, ("worker".into(), 1.0)), (2, ("worker".into(), 2.0))]);
        let after = BTreeMap::from([
            (1, ("worker".into(), 3.0)),
            (2, ("worker".into(), 2.5)),
            (3, ("writer".into(), 4.0)),
        ]);
        assert_eq!(
            thread_delta(&before, &after),
            [("writer".to_owned(), 4.0), ("worker".to_owned(), 2.5)]
        );
    }
}
