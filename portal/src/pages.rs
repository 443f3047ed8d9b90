//! The pages: one askama template (in `portal/templates/`) per struct. Templates are compiled
//! with the crate and escape every `{{ value }}` for HTML; nothing here builds HTML by hand.

use askama::Template;

use crate::directory::{AccountView, GroupView, HostStatus, HostView};

/// What every page's frame needs.
pub(crate) struct Layout {
    pub brand: String,
    /// The session's form token, for the sign-out form (empty when signed out).
    pub csrf: String,
    pub signed_in: bool,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub(crate) struct SignIn {
    pub layout: Layout,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub user_id: String,
    pub signup_open: bool,
}

#[derive(Template)]
#[template(path = "signup.html")]
pub(crate) struct SignUpPage {
    pub layout: Layout,
    pub closed: bool,
    pub invite: bool,
    pub errors: Vec<String>,
    /// The reply of the duplicate check made from this page, if any.
    pub check: Option<String>,
    /// The user ID that passed the duplicate check in this session, if any.
    pub checked: Option<String>,
    pub user_id: String,
    pub email: String,
}

#[derive(Template)]
#[template(path = "welcome.html")]
pub(crate) struct Welcome {
    pub layout: Layout,
    pub user_id: String,
}

#[derive(Template)]
#[template(path = "hosts.html")]
pub(crate) struct Hosts {
    pub layout: Layout,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// A generated host password, shown on this one page and never again.
    pub generated: Option<Generated>,
    pub user_id: String,
    pub email: String,
    pub group_count: usize,
    pub host_count: usize,
    pub last_updated: String,
    pub rows: Vec<HostRow>,
    pub groups: Vec<GroupOption>,
    pub zones: Vec<String>,
    pub group_check: Option<String>,
    pub host_check: Option<String>,
    /// Values to put back into the forms.
    pub group_value: String,
    pub host_value: String,
    pub host_group_value: String,
    pub port_value: String,
}

/// A freshly generated host password and the name it belongs to.
pub(crate) struct Generated {
    pub fqdn: String,
    pub password: String,
}

/// One line of the host list.
pub(crate) struct HostRow {
    pub no: usize,
    pub updated: String,
    pub fqdn: String,
    pub link: String,
    pub addresses: Vec<String>,
    pub status_class: &'static str,
    pub status_label: &'static str,
    pub abusive: bool,
}

/// One entry of a group `<select>`.
pub(crate) struct GroupOption {
    pub name: String,
    pub fqdn: String,
}

#[derive(Template)]
#[template(path = "edit.html")]
pub(crate) struct EditHost {
    pub layout: Layout,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub row: HostRow,
    pub port_value: String,
    /// The host's update tokens: (public id, created time).
    pub tokens: Vec<(String, String)>,
    /// A token just created, shown this once.
    pub new_token: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
pub(crate) struct Account {
    pub layout: Layout,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub user_id: String,
    pub email: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct Message {
    pub layout: Layout,
    pub title: String,
    pub message: String,
}

impl GroupOption {
    pub fn from_view(group: &GroupView) -> GroupOption {
        GroupOption {
            name: group.name.to_string(),
            fqdn: format!("{}.{}", group.name, group.zone),
        }
    }
}

impl HostRow {
    pub fn from_view(no: usize, host: &HostView) -> HostRow {
        let mut addresses = Vec::new();
        addresses.extend(host.v4.map(|a| a.to_string()));
        addresses.extend(host.v6.map(|a| a.to_string()));
        let (status_class, status_label) = match host.status {
            HostStatus::Ok => ("status-ok", "OK"),
            HostStatus::Error => ("status-error", "ERROR"),
            HostStatus::Standby => ("status-standby", "STANDBY"),
        };
        HostRow {
            no,
            updated: format_time(host.updated_ms),
            fqdn: host.fqdn.to_string(),
            link: live_link(host),
            addresses,
            status_class,
            status_label,
            abusive: host.abusive,
        }
    }
}

/// The Live/Playback link: only ever `http://` + the validated name (+ `:port`), so nothing a
/// user typed can turn it into another scheme.
pub(crate) fn live_link(host: &HostView) -> String {
    match host.port {
        Some(port) => format!("http://{}:{port}/", host.fqdn),
        None => format!("http://{}/", host.fqdn),
    }
}

/// The account summary's "Last Updated Time": the newest host update.
pub(crate) fn last_updated(hosts: &[HostView]) -> String {
    format_time(hosts.iter().filter_map(|h| h.updated_ms).max())
}

/// When the account was created.
pub(crate) fn created(account: &AccountView) -> String {
    format_time(Some(account.created_ms))
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, or the seed's `0000-00-00 00:00:00` for "never" (also what
/// `ddnsd host list` prints).
pub fn format_time(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "0000-00-00 00:00:00".to_owned();
    };
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_the_seeds_never() {
        assert_eq!(format_time(None), "0000-00-00 00:00:00");
        assert_eq!(format_time(Some(0)), "1970-01-01 00:00:00");
        // The seed's host list: 2005-06-08 16:10:31 UTC.
        assert_eq!(format_time(Some(1_118_247_031_999)), "2005-06-08 16:10:31");
        assert_eq!(format_time(Some(951_782_400_000)), "2000-02-29 00:00:00");
        assert_eq!(format_time(Some(4_102_444_799_000)), "2099-12-31 23:59:59");
    }
}
