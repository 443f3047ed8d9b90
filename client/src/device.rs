//! A device that stays connected: HELLO, keep-alive, the server's pushes, and reconnects with
//! jittered exponential backoff after any loss (a server restart, a network change the
//! connection did not survive, an idle timeout).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::Endpoint;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::session::{Answer, Server, Session, SessionError};
use crate::wire::{self, Credential, Record, Request, ServerMessage};

/// How a device behaves.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// Who it is.
    pub credential: Credential,
    /// Ask the server to publish the address of an IPv6 connection.
    pub publish_v6: bool,
    /// A QUIC PING when nothing was sent for this long, drawn anew for each connection (so a
    /// fleet's keep-alives do not march in step): what keeps NAT bindings open.
    pub keep_alive: RangeInclusive<Duration>,
    /// The idle timeout it asks for (the server's may be shorter).
    pub idle_timeout: Duration,
    /// The backoff between attempts.
    pub backoff: Backoff,
}

impl DeviceConfig {
    /// The defaults for `credential`: keep-alive every 15–25 s, a 60 s idle timeout, backoff
    /// from 1 s to 5 minutes.
    pub fn new(credential: Credential) -> DeviceConfig {
        DeviceConfig {
            credential,
            publish_v6: false,
            keep_alive: Duration::from_secs(15)..=Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }
}

/// "Full jitter" exponential backoff: before attempt `n` (0 after a session that said hello),
/// a pause drawn uniformly from `0..=min(max, initial × 2^n)`. Devices that lost the server at
/// the same moment come back spread over that window rather than at once.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The window of the first retry.
    pub initial: Duration,
    /// The largest window (also the pause after a refused credential).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The pause before retry number `attempt` (from 0).
    pub fn pause(&self, attempt: u32) -> Duration {
        let window = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        window.mul_f64(rand::random::<f64>())
    }
}

/// What happened to a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Connected and authenticated: its record (HELLO's REPLY).
    Connected(Option<Record>),
    /// The server changed (or refused to change) the record on its own: the code and the record.
    Pushed(String, Option<Record>),
    /// The connection could not be made or ended; a retry follows after a pause.
    Lost(String),
    /// The server refused the HELLO with this code; a retry follows after the longest pause.
    Refused(String),
    /// The device stopped: asked to, or superseded by a newer connection of the same device.
    Stopped(String),
}

/// An event of device number `device` (of a fleet sharing one channel).
#[derive(Clone, Debug)]
pub struct DeviceEvent {
    /// The device's number.
    pub device: usize,
    /// When it happened.
    pub at: Instant,
    /// What happened.
    pub event: Event,
}

enum Command {
    Request(Request, oneshot::Sender<Result<Answer, String>>),
    Stop,
}

/// A running device: a task that keeps one connection open. Dropping the handle stops it.
pub struct Device {
    commands: mpsc::UnboundedSender<Command>,
    task: Option<JoinHandle<()>>,
}

impl Device {
    /// Starts device number `number`, connecting from `endpoint` to `server`; its events go
    /// to `events`.
    pub fn spawn(
        number: usize,
        endpoint: Endpoint,
        server: Server,
        config: Arc<DeviceConfig>,
        events: mpsc::UnboundedSender<DeviceEvent>,
    ) -> Device {
        let (commands, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(number, endpoint, server, config, events, receiver));
        Device {
            commands,
            task: Some(task),
        }
    }

    /// Sends `request` on the current connection and waits for its REPLY (an error when not
    /// connected or the connection ends first).
    pub async fn request(&self, request: Request) -> Result<Answer, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request(request, reply))
            .map_err(|_| "device stopped".to_owned())?;
        answer.await.map_err(|_| "device stopped".to_owned())?
    }

    /// Closes the connection (NO_ERROR) and ends the task.
    pub async fn stop(mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
    }
}

async fn run(
    number: usize,
    endpoint: Endpoint,
    server: Server,
    config: Arc<DeviceConfig>,
    events: mpsc::UnboundedSender<DeviceEvent>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let emit = |event: Event| {
        let _ = events.send(DeviceEvent {
            device: number,
            at: Instant::now(),
            event,
        });
    };
    let hello = Request::Hello {
        credential: config.credential.clone(),
        publish_v6: config.publish_v6,
    };
    // A credential the protocol cannot carry would be refused on every attempt.
    if !hello.fits() {
        return emit(Event::Stopped(SessionError::DoesNotFit.to_string()));
    }
    let mut attempt = 0u32;
    loop {
        let keep_alive = random_in(&config.keep_alive);
        let open = Session::open(&endpoint, &server, &hello, keep_alive, config.idle_timeout);
        tokio::pin!(open);
        let opened = loop {
            tokio::select! {
                opened = &mut open => break opened,
                command = commands.recv() => match command {
                    Some(Command::Request(_, reply)) => {
                        let _ = reply.send(Err("not connected".into()));
                    }
                    Some(Command::Stop) | None => return emit(Event::Stopped("stopped".into())),
                },
            }
        };
        let pause = match opened {
            Ok((mut session, (_, record))) => {
                attempt = 0;
                emit(Event::Connected(record));
                match serve(&mut session, &mut commands, &emit).await {
                    Ended::Stop => {
                        session.close();
                        return emit(Event::Stopped("stopped".into()));
                    }
                    Ended::Lost(error) => {
                        if error.close_code() == Some(wire::close::SUPERSEDED) {
                            return emit(Event::Stopped(error.to_string()));
                        }
                        emit(Event::Lost(error.to_string()));
                        config.backoff.pause(attempt)
                    }
                }
            }
            Err(SessionError::Refused(code)) => {
                // A credential refused (02) or no record (13) will not change by retrying
                // soon; a flood (911) or a server error (12) may.
                let pause = match code.as_str() {
                    "911" | "12" => config.backoff.pause(attempt),
                    _ => config.backoff.max,
                };
                emit(Event::Refused(code));
                pause
            }
            Err(error) => {
                emit(Event::Lost(error.to_string()));
                config.backoff.pause(attempt)
            }
        };
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            command = commands.recv() => match command {
                Some(Command::Request(_, reply)) => { let _ = reply.send(Err("not connected".into())); }
                Some(Command::Stop) | None => return emit(Event::Stopped("stopped".into())),
            },
        }
    }
}

enum Ended {
    Stop,
    Lost(SessionError),
}

/// Serves one session until it ends: the server's pushes, and the handle's requests.
async fn serve(
    session: &mut Session,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    emit: &impl Fn(Event),
) -> Ended {
    loop {
        tokio::select! {
            message = session.next_message() => match message {
                Ok(ServerMessage::Push { code, record }) => emit(Event::Pushed(code, record)),
                Ok(ServerMessage::Reply { .. }) => return Ended::Lost(SessionError::UnexpectedReply),
                Err(error) => return Ended::Lost(error),
            },
            command = commands.recv() => match command {
                Some(Command::Request(request, reply)) => {
                    if let Err(error) = session.send(&request).await {
                        let _ = reply.send(Err(error.to_string()));
                        return Ended::Lost(error);
                    }
                    // Pushes that come before the REPLY are events as usual.
                    loop {
                        match session.next_message().await {
                            Ok(ServerMessage::Push { code, record }) => emit(Event::Pushed(code, record)),
                            Ok(ServerMessage::Reply { code, record }) => {
                                let _ = reply.send(Ok((code, record)));
                                break;
                            }
                            Err(error) => {
                                let _ = reply.send(Err(error.to_string()));
                                return Ended::Lost(error);
                            }
                        }
                    }
                }
                Some(Command::Stop) | None => return Ended::Stop,
            },
        }
    }
}

fn random_in(range: &RangeInclusive<Duration>) -> Duration {
    let (low, high) = (*range.start(), *range.end());
    if high <= low {
        return low;
    }
    low + (high - low).mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_windows_double_up_to_the_max() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 0..40 {
            let window = Duration::from_millis(100 * (1 << attempt.min(4))).min(backoff.max);
            for _ in 0..50 {
                assert!(backoff.pause(attempt) <= window, "attempt {attempt}");
            }
        }
        // Full jitter: the pauses spread over the window.
        let pauses: Vec<Duration> = (0..1000).map(|_| backoff.pause(10)).collect();
        assert!(pauses.iter().any(|p| *p < Duration::from_millis(250)));
        assert!(pauses.iter().any(|p| *p > Duration::from_millis(750)));
    }

    #[test]
    fn keep_alives_are_drawn_from_the_range() {
        let range = Duration::from_secs(15)..=Duration::from_secs(25);
        for _ in 0..100 {
            let d = random_in(&range);
            assert!(range.contains(&d));
        }
    }
}
