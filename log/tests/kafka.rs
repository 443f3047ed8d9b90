//! `KafkaLog` against a real Kafka-protocol broker: tansu (SQLite storage), started by the
//! tests on free loopback ports from fresh data directories. The shared `EventLog` suite (one
//! broker per case, a fresh topic per store) and a broker killed with SIGKILL and restarted
//! during a stream of appends.
//!
//! tansu must be installed (`bash scripts/tansu.sh install`, which `scripts/setup.sh` runs): these
//! tests fail, never skip, without it. `TANSU=/path/to/tansu` overrides where it is looked for.
#![cfg(feature = "kafka")]

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    io::{Read as _, Seek as _, SeekFrom},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use ddns_log::{
    EventLog, KafkaConfig, KafkaLog, LogPosition, LogRecord,
    testsuite::{LogFactory, LogStore, block_on, read_n, within},
};

/// The tansu binary: `$TANSU`, else `tansu.sh install`'s location.
fn tansu_bin() -> PathBuf {
    let bin = match std::env::var_os("TANSU") {
        Some(bin) => PathBuf::from(bin),
        None => {
            let tools = std::env::var_os("DDNSD_TOOLS")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                        .join(".cache/ddnsd-tools")
                });
            tools.join("bin/tansu")
        }
    };
    assert!(
        bin.is_file(),
        "the tansu broker is not installed at {}: run `bash scripts/tansu.sh install` \
         (scripts/setup.sh does). The Kafka tests need a real broker and do not skip without one.",
        bin.display()
    );
    bin
}

/// A loopback port nothing listens on (the OS's pick).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A tansu broker process on 127.0.0.1, storing in `dir/tansu.db`. Killed when dropped.
struct Tansu {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl Tansu {
    fn start() -> Tansu {
        let tansu = Tansu {
            bin: tansu_bin(),
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            child: Mutex::new(None),
        };
        tansu.spawn();
        tansu
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }

    /// Starts the broker (again) and waits until it accepts connections.
    fn spawn(&self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("broker log file");
        // From inside its directory: the sqlite:// path is relative to the working directory.
        // (Not memory://: it reports wrong high watermarks and keeps nothing.)
        let mut child = Command::new(&self.bin)
            .arg("broker")
            .args(["--listener-url", &self.url()])
            .args(["--advertised-listener-url", &self.url()])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = child.try_wait().expect("broker status") {
                panic!("tansu exited at start ({status}):\n{}", self.log_tail());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "tansu did not accept connections on {} within 30 s:\n{}",
                self.url(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        *self.child.lock().expect("child") = Some(child);
    }

    /// CPU time (user + system) the running broker has used, from `/proc`.
    fn cpu_time(&self) -> Duration {
        let pid = self
            .child
            .lock()
            .expect("child")
            .as_ref()
            .expect("running")
            .id();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
        // After the command name in parentheses: fields 3.., of which utime and stime are the
        // 14th and 15th, in clock ticks (100 per second on Linux).
        let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
            .split(' ')
            .collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        Duration::from_millis(ticks * 10)
    }

    /// SIGKILL: no chance to flush or close anything.
    fn kill_9(&self) {
        if let Some(mut child) = self.child.lock().expect("child").take() {
            child.kill().expect("kill -9 the broker");
            child.wait().expect("reap the broker");
        }
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let output = Command::new(&self.bin)
            .args(["topic", "create", name])
            .args(["--partitions", &partitions.to_string()])
            .args(["--broker", &self.url()])
            .current_dir(self.dir.path())
            .output()
            .expect("tansu topic create");
        assert!(
            output.status.success(),
            "tansu topic create {name}: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log_tail()
        );
    }

    /// A fresh topic with `partitions` partitions, and the config of a log on it.
    fn topic(&self, partitions: u32) -> KafkaConfig {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let topic = format!("events-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.create_topic(&topic, partitions);
        KafkaConfig {
            brokers: self.brokers(),
            topic,
            partitions,
            client_id: "tansu-test".to_owned(),
            ..KafkaConfig::default()
        }
    }

    /// The last few KiB of the broker's output, for failure messages.
    fn log_tail(&self) -> String {
        let Ok(mut file) = fs::File::open(self.log_path()) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
        let mut tail = String::new();
        let _ = file.read_to_string(&mut tail);
        tail
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// One broker per factory (so per test case), a fresh topic per store.
struct TansuFactory(Arc<Tansu>);

impl TansuFactory {
    fn new() -> Self {
        TansuFactory(Arc::new(Tansu::start()))
    }
}

struct TansuStore {
    _broker: Arc<Tansu>,
    config: KafkaConfig,
}

#[async_trait::async_trait]
impl LogFactory for TansuFactory {
    fn max_partitions(&self) -> u32 {
        8
    }
    fn persistent(&self) -> bool {
        true
    }
    async fn create(&self, partitions: u32) -> Box<dyn LogStore> {
        Box::new(TansuStore {
            _broker: Arc::clone(&self.0),
            config: self.0.topic(partitions),
        })
    }
}

#[async_trait::async_trait]
impl LogStore for TansuStore {
    async fn open(&self) -> Arc<dyn EventLog> {
        Arc::new(connect(self.config.clone()).await)
    }
}

async fn connect(config: KafkaConfig) -> KafkaLog {
    within("connect", KafkaLog::connect(config))
        .await
        .expect("connect to tansu")
}

mod suite {
    ddns_log::event_log_testsuite!(super::TansuFactory::new());
}

/// Reads records until `n` have been read (waits, through broker restarts, up to 60 s).
async fn read_until(reader: &mut dyn ddns_log::LogReader, n: usize) -> Vec<LogRecord> {
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = tokio::time::timeout(left, reader.next_batch(n - records.len()))
            .await
            .unwrap_or_else(|_| panic!("read {} of {n} records in 60 s", records.len()))
            .expect("next_batch");
        records.extend(batch);
    }
    records
}

/// Writers append a stream of uniquely numbered events while the broker is killed with SIGKILL
/// and restarted, twice. Afterwards every acknowledged event is in the log exactly once, no
/// event is there twice, each writer's events are in its order, offsets are dense, and a reader
/// that tailed the log through the restarts saw exactly the same records.
#[test]
fn broker_kill_9_and_restart_loses_and_duplicates_nothing() {
    const WRITERS: usize = 8;
    let tansu = Tansu::start();
    block_on(async {
        let log = Arc::new(connect(tansu.topic(2)).await);
        let mut tail = log.reader(&LogPosition::default()).await.expect("reader");
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
                tokio::spawn(async move {
                    let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
                    let mut seq = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("w{writer}-{seq}");
                        let key = format!("writer{writer}.example");
                        match log.append(key.as_bytes(), Bytes::from(id.clone())).await {
                            Ok(appended) => acknowledged.push((id, appended)),
                            Err(error) => failed.push((id, error.to_string())),
                        }
                        seq += 1;
                    }
                    (acknowledged, failed)
                })
            })
            .collect();

        // The log's size at each kill.
        let mut at_kill = Vec::new();
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            at_kill.push(log.end().await.expect("end").total());
            tansu.kill_9();
            tokio::time::sleep(Duration::from_millis(700)).await;
            tansu.spawn();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
        for writer in writers {
            let (a, f) = within("a writer to stop", writer).await.expect("writer");
            acknowledged.extend(a);
            failed.extend(f);
        }

        let end = log.end().await.expect("end");
        let mut reader = log.reader(&LogPosition::default()).await.expect("reader");
        let records = read_n(&mut *reader, end.total() as usize).await;
        let tailed = read_until(&mut *tail, records.len()).await;

        // Offsets are dense, and the tailing reader saw the same records.
        let mut next = BTreeMap::<u32, u64>::new();
        let mut by_position: Vec<_> = records.clone();
        by_position.sort_by_key(|r| (r.partition, r.offset));
        for record in &by_position {
            let expected = next.entry(record.partition).or_default();
            assert_eq!(
                record.offset, *expected,
                "offsets in partition {}",
                record.partition
            );
            *expected += 1;
        }
        let mut tailed_sorted = tailed.clone();
        tailed_sorted.sort_by_key(|r| (r.partition, r.offset));
        assert_eq!(
            tailed_sorted, by_position,
            "the tailing reader saw other records"
        );

        // Every event at most once, every acknowledged one present, each writer's in order.
        let mut found = HashMap::<String, (u32, u64)>::new();
        let mut order = BTreeMap::<usize, Vec<u32>>::new();
        for record in &records {
            let id = String::from_utf8(record.payload.to_vec()).expect("utf8 id");
            let (writer, seq) = id[1..].split_once('-').expect("w<writer>-<seq>");
            order
                .entry(writer.parse().expect("writer"))
                .or_default()
                .push(seq.parse().expect("seq"));
            let previous = found.insert(id.clone(), (record.partition, record.offset));
            assert!(previous.is_none(), "{id} is in the log twice");
        }
        for (writer, seqs) in &order {
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "writer {writer}'s events out of order: {seqs:?}"
            );
        }
        let mut wrong_offsets = 0;
        for (id, appended) in &acknowledged {
            let Some(&(partition, offset)) = found.get(id) else {
                panic!("acknowledged {id} ({appended:?}) is not in the log");
            };
            assert_eq!(partition, appended.partition, "{id}'s partition");
            if offset != appended.offset {
                wrong_offsets += 1;
            }
        }
        let failed_but_written = failed
            .iter()
            .filter(|(id, _)| found.contains_key(id))
            .count();
        eprintln!(
            "{} records (log size at the kills: {at_kill:?}); {} appends acknowledged, {} failed \
             ({failed_but_written} of those written anyway); {wrong_offsets} delivery reports \
             with another offset than the record's",
            records.len(),
            acknowledged.len(),
            failed.len(),
        );
        if let Some((id, error)) = failed.first() {
            eprintln!("first failure: {id}: {error}");
        }
        let last_kill = *at_kill.last().expect("killed");
        assert!(
            records.len() as u64 > last_kill,
            "no append went through after the last restart"
        );
    });
}

/// Appends per second to tansu (one partition) with 1, 16 and 256 concurrent writers, each
/// appending one ~100-byte event at a time, and the append latency. A measurement, run by hand
/// and in release (librdkafka is built without optimisation in debug):
/// `cargo test --release -p ddns-log --test kafka -- --ignored --nocapture appends_per_second`.
#[test]
#[ignore = "a measurement, not a check"]
fn appends_per_second() {
    let tansu = Tansu::start();
    block_on(async {
        let mut config = tansu.topic(1);
        // Experiments: KAFKA_LINGER_MS, KAFKA_FETCH_WAIT_MAX_MS override the defaults.
        if let Some(ms) = std::env::var("KAFKA_LINGER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.linger_ms = ms;
        }
        if let Some(ms) = std::env::var("KAFKA_FETCH_WAIT_MAX_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.fetch_wait_max_ms = ms;
        }
        let log = Arc::new(connect(config).await);
        let payload = Bytes::from(vec![b'e'; 100]);
        for writers in [1usize, 16, 256] {
            let run_for = Duration::from_secs(10);
            let started = Instant::now();
            let tasks: Vec<_> = (0..writers)
                .map(|writer| {
                    let (log, payload) = (Arc::clone(&log), payload.clone());
                    tokio::spawn(async move {
                        let key = format!("device{writer}.example");
                        let mut latencies = Vec::new();
                        while started.elapsed() < run_for {
                            let append = Instant::now();
                            log.append(key.as_bytes(), payload.clone())
                                .await
                                .expect("append");
                            latencies.push(append.elapsed());
                        }
                        latencies
                    })
                })
                .collect();
            let mut latencies = Vec::new();
            for task in tasks {
                latencies.extend(task.await.expect("writer"));
            }
            let elapsed = started.elapsed().as_secs_f64();
            latencies.sort();
            let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
            eprintln!(
                "{writers:>3} writers: {:>6.0} appends/s, latency p50 {:?} p99 {:?}",
                latencies.len() as f64 / elapsed,
                percentile(0.5),
                percentile(0.99),
            );
        }
        let started = Instant::now();
        for _ in 0..20 {
            log.end().await.expect("end");
        }
        eprintln!("end(): {:?} each", started.elapsed() / 20);

        // From an append's acknowledgement to a tailing reader returning it (what bounds how
        // soon a DNS node answers with an update), one append at a time.
        let mut reader = log
            .reader(&log.end().await.expect("end"))
            .await
            .expect("reader");
        let mut delays = Vec::new();
        for _ in 0..200 {
            log.append(b"device0.example", payload.clone())
                .await
                .expect("append");
            let acknowledged = Instant::now();
            read_n(&mut *reader, 1).await;
            delays.push(acknowledged.elapsed());
        }
        delays.sort();
        eprintln!(
            "acknowledged to read: p50 {:?} p99 {:?} max {:?} (fetch_wait_max_ms {})",
            delays[100],
            delays[198],
            delays[199],
            log.config().fetch_wait_max_ms
        );

        // What a tailing reader with nothing to read costs the broker (its fetches).
        let idle = Duration::from_secs(10);
        let before = tansu.cpu_time();
        let waiting = tokio::time::timeout(idle, reader.next_batch(1)).await;
        assert!(
            waiting.is_err(),
            "nothing was appended, yet the reader returned"
        );
        eprintln!(
            "broker CPU while one reader waits: {:.1}% of a core",
            (tansu.cpu_time() - before).as_secs_f64() * 100.0 / idle.as_secs_f64()
        );
    });
}

/// Connecting to a topic that does not exist fails (and does not create it); another partition
/// count than the topic's fails.
#[test]
fn connect_checks_the_topic_and_never_creates_it() {
    let tansu = Tansu::start();
    block_on(async {
        let config = tansu.topic(2);
        let missing = KafkaConfig {
            topic: "no-such-topic".to_owned(),
            ..config.clone()
        };
        for _ in 0..2 {
            let result = KafkaLog::connect(missing.clone()).await;
            assert!(
                matches!(result, Err(ddns_log::KafkaConnectError::NoTopic { .. })),
                "{result:?}"
            );
        }
        let wrong = KafkaLog::connect(KafkaConfig {
            partitions: 1,
            ..config.clone()
        })
        .await;
        assert!(
            matches!(
                wrong,
                Err(ddns_log::KafkaConnectError::PartitionCount {
                    expected: 1,
                    actual: 2,
                    ..
                })
            ),
            "{wrong:?}"
        );
        connect(config).await;
    });
}
