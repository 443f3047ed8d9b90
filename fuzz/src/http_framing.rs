//! Our HTTP/1.1 framing (`DeviceApi::serve`, `ingest/src/http.rs`) against hyper's on the same
//! bytes: both decide the same request boundaries, or ours refuses (see [`crate::http_oracle`];
//! `ingest/tests/http_differential.rs` runs the same oracle on generated streams).
//!
//! Input: the bytes a client sends on one connection, then closes its sending side. The API
//! behind ours is stateless for these inputs: no account or host, a vendor key no input holds,
//! no flood quotas.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ddns_ingest::DeviceApi;

use crate::{http_oracle, ingest, runtime};

struct Served {
    api: Arc<DeviceApi>,
    addr: SocketAddr,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        runtime::setup(async {
            let api = ingest::stateless_api().await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binds a loopback port");
            let addr = listener.local_addr().expect("an address");
            runtime::spawn(api.clone().serve(listener, std::future::pending()));
            Served { api, addr }
        })
    })
}

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let served = served();
    if let Err(disagreement) =
        runtime::block_on(http_oracle::differential(&served.api, served.addr, data))
    {
        panic!(
            "framing differs from hyper's on {:?}\n{disagreement}",
            String::from_utf8_lossy(data)
        );
    }
}
