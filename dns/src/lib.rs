//! ddns-dns (in progress)
