//! CPU time of a process from `/proc/<pid>/stat` (Linux), to report how the two cores were
//! shared between the loadgen and the server.

/// User + system CPU seconds of `pid` (this process if `None`); `None` where /proc is absent.
pub(crate) fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat(&text)
}

/// `utime` and `stime` are fields 14 and 15, counted in USER_HZ (100 on Linux); the command
/// name (field 2) may contain spaces, so fields are counted after its closing parenthesis.
fn parse_stat(text: &str) -> Option<f64> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let stat = "4242 (dd nsd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0";
        assert_eq!(parse_stat(stat), Some(3.25));
        assert_eq!(parse_stat("garbage"), None);
        if cfg!(target_os = "linux") {
            assert!(cpu_secs(None).is_some());
        }
    }
}
