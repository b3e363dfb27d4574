//! Desktop notifications for the messenger (the freedesktop.org notification service over
//! D-Bus, through notify-rust), behind the `desktop-notifications` cargo feature so that a
//! server build stays small. Sending never holds up the caller, and a desktop without the
//! service is said once in the diagnostic log, not on the screen.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::text::sanitize;

/// A failure to notify was logged already.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Text for a notification: neutralised like the screen's (no escapes, no controls), and with
/// the markup some notification servers read in a body escaped.
fn plain(text: &str) -> String {
    sanitize(text).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Shows a desktop notification with `title` and `body` (none: the title alone), on a
/// blocking thread of the runtime (D-Bus may take a while to answer).
pub fn desktop(title: &str, body: Option<&str>) {
    let (title, body) = (plain(title), body.map(plain));
    let show = move || {
        if let Err(error) = show(&title, body.as_deref())
            && !FAILED.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(%error, "desktop notifications cannot be shown");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(show)),
        Err(_) => show(),
    }
}

#[cfg(feature = "desktop-notifications")]
fn show(title: &str, body: Option<&str>) -> Result<(), String> {
    let mut notification = notify_rust::Notification::new();
    notification.appname("p2pchat").summary(title);
    if let Some(body) = body {
        notification.body(body);
    }
    notification.show().map(drop).map_err(|e| e.to_string())
}

#[cfg(not(feature = "desktop-notifications"))]
fn show(_: &str, _: Option<&str>) -> Result<(), String> {
    Err("this p2pchat was built without the desktop-notifications feature".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_text_is_neutralised_and_markup_escaped() {
        assert_eq!(plain("<b>hi</b> & \u{1b}[31mred"), "&lt;b&gt;hi&lt;/b&gt; &amp; ␛[31mred");
    }
}
