//! ddns-portal: the web portal where people sign up, sign in, register groups and hosts, and
//! watch their hosts' status (SPEC §4, from the seed `000_c76dccc9fdaabac9.txt`).
//!
//! Server-rendered HTML on axum, working without JavaScript. The portal keeps no store: every
//! change is a call on a [`Directory`], which appends an event to the log and answers with the
//! outcome the fold gave it, and every page reads the fold's projection through it.
//!
//! - [`Portal`]: the routes and handlers, built from a [`PortalConfig`] and a [`Directory`];
//!   [`Portal::router`] for tests and embedding, [`Portal::serve`] on a listener
//!   ([`Portal::serve_tls`] over HTTPS).
//! - [`Directory`]: the seam to the log and the fold, with its plain-data inputs and outputs
//!   ([`UserId`], [`NewAccount`], [`HostView`], …) and [`DirectoryError`]; [`LogDirectory`],
//!   the one the server runs: events through a `Committer`, reads from the fold.
//! - sessions (`session`): server-side, 128-bit random ids, idle and absolute timeouts, a cap,
//!   a new id at sign-in, ended at sign-out and account removal; the cookie
//!   ([`COOKIE_NAME`], [`COOKIE_NAME_TLS`]).
//! - the guard (`web`): every POST must carry the session's CSRF token in its `csrf` field and
//!   pass an `Origin`/`Sec-Fetch-Site` check; security headers on every response.
//! - passwords: `ddns_ingest::PasswordHasher`, argon2id at OWASP's cost in `spawn_blocking`,
//!   bounded server-wide (the server shares one hasher with the DVR protocol through
//!   [`Portal::with_password_hasher`]), a dummy hash so unknown users cost what wrong passwords
//!   cost; generated 128-bit host passwords.
//! - sign-in throttling (`throttle`): per account and per source address, always expiring.
//! - input rules and messages (`rules`), pages and their templates (`pages`, `templates/`).
//! - [`Prober`]: the reachability probe behind OK / ERROR for hosts with a port (off by default).
//!
//! The tests run the real [`LogDirectory`]: an in-memory log folded by a real projector
//! (`fixture`).

mod config;
mod directory;
mod log_directory;
mod pages;
mod probe;
mod rules;
mod session;
mod throttle;
mod web;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

pub use config::{ConfigError, PortalConfig, SignupMode};
pub use directory::{
    AccountView, Change, CreateGroup, CreateHost, Directory, DirectoryError, GroupView, HostEdit,
    HostStatus, HostView, NewAccount, NewHost, SignUp, UserId,
};
pub use log_directory::LogDirectory;
pub use pages::format_time;
pub use probe::{ProbeConfig, ProbeRound, Prober};
pub use rules::{email as normalize_email, host_password_ok, password_problem};
pub use session::{COOKIE_NAME, COOKIE_NAME_TLS};
pub use web::Portal;
