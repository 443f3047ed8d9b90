//! ddns-projector (in progress)
