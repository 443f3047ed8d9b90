//! ddns-ingest (in progress)
