//! ddns-loadgen: simulates a fleet of DDNS devices against a running ddnsd and measures it.
//!
//! Devices follow the client rules of the seed (register once, update on reboot, poll
//! `ipdetect`, update only on a change, remove on decommission) on an open-loop schedule (or,
//! to measure the maximum rate, in a closed loop of device-API, DVR or dyndns2 updates), over
//! a bounded pool of HTTP/1.1 connection workers. As devices in the field do, each request
//! opens a connection of its own (`Connection: close`) from the device's own address in
//! `127.0.0.0/8` ([`source_addr`]), which is the address the server stores; keep-alive
//! connections from one address, with simulated addresses sent as `myip`, are the option
//! ([`Sources`], [`LoadgenConfig::keep_alive()`]). A sample of acknowledged changes is followed
//! to DNS, and at the end the server's DNS answers are checked against what each device last
//! had acknowledged.
//!
//! - [`fleet`]: the device model, the client rules and the schedule (pure, no I/O).
//! - `run`: the driver ([`run()`], [`run_with`]): workers, open-loop dispatch, the final check.
//! - `http`: the device side of HTTP ([`HttpConnection`], or any [`Transport`]): a connection
//!   per request or kept alive, bound to the request's source address.
//! - `dns`: hand-built `A` queries for the propagation prober and the final check.
//! - `stats` and `report`: HDR histograms, reply codes, errors, a per-second timeline, the
//!   [`Report`] (text and JSON) and its SVG plot ([`plot_svg`]).
//! - `token`: sealing device credentials as firmware does ([`Sealer`]).
//! - `dvr`: the hosts of the `dvr` and `dyndns2` scenarios: their passwords
//!   ([`host_password`]), each protocol's update, provisioning them through the server's admin
//!   socket and the untimed first pass ([`DvrSetup`]).
//! - `config`: [`LoadgenConfig`], scenarios and flag parsing helpers.
//! - `quic`: the `quic` scenario ([`run_quic`]): devices of the QUIC device channel from the
//!   reference client (`ddns-client`), idle and moving, beside the same fleet polling over
//!   HTTP; its [`QuicReport`].
//! - `cpu`: CPU time, resident memory and UDP datagrams from /proc.
//!
//! The binary `ddns-loadgen` (src/main.rs) parses flags, shows progress and writes the files.

mod config;
mod cpu;
mod dns;
mod dvr;
pub mod fleet;
mod http;
mod quic;
mod report;
mod rng;
mod run;
mod stats;
mod token;

pub use config::{
    ConfigError, LoadgenConfig, QuicOptions, Scenario, Sources, Verify, parse_duration,
};
pub use dns::VerifyReport;
pub use dvr::{DvrSetup, FirstPass, Provision, SetupError, host_password};
pub use fleet::{Expect, Fleet, HostProtocol, SOURCES_MAX, source_addr, source_index};
pub use http::{Get, HttpConnection, Transport};
pub use quic::{Polling, QuicConnect, QuicIdle, QuicRebinds, QuicReport, run_quic};
pub use report::{Cpu, KindReport, Propagation, Report, RunInfo, ScheduleReport, plot_svg};
pub use run::{LEAD_US, Live, Progress, RunError, RunOutcome, run, run_with};
pub use stats::{Errors, Latency, SecondPoint};
pub use token::{DeviceKey, KeyError, Sealer};
