//! Issue 12 in the page: the account menu's session list (a session ended there logs the other
//! browser out), the admin view (search, paging, a changed e-mail address, refusals shown,
//! a deleted account), and what a non-admin sees of it (no way in; the server's 403 if forced).

use serde_json::Value;
use switchboard_client::Api;

use crate::support::driver::Driver;
use crate::support::hub::Hub;
use crate::support::{turn, unique_name, PASSWORD};

/// Registers `username` over REST (address `{username}@example.com`).
async fn register(hub: &Hub, username: &str) {
    Api::new(&hub.http_url())
        .register(username, &format!("{username}@example.com"), PASSWORD)
        .await
        .unwrap_or_else(|err| panic!("register {username}: {err}"));
}

#[tokio::test]
async fn sessions_are_listed_and_ending_one_logs_the_other_browser_out() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let driver = Driver::start().await;
    let laptop = driver.browser("laptop", 1280, 800).await;
    let phone = driver.browser("phone", 375, 740).await;
    // Chromium opens no narrower than 500px; a resize goes below.
    phone
        .client
        .set_window_size(375, 740)
        .await
        .expect("resize to 375px");
    let name = unique_name("alice");

    laptop.open(&hub.http_url()).await;
    laptop.register(&name).await;
    phone.open(&hub.http_url()).await;
    phone.login(&name).await;
    // A third login, from a program that sends no User-Agent.
    let script = hub.login(&name, PASSWORD).await;
    let script_sid = script.me().await.expect("me").session;

    // Three sessions, newest first; the laptop's own is marked and cannot be ended from here.
    laptop.open_account_menu().await;
    let shown = laptop.until_sessions(3).await;
    let current: Vec<_> = shown.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1, "{shown:?}");
    assert_eq!(current[0].tag.as_deref(), Some("This device"));
    assert!(!current[0].can_end);
    assert_eq!(shown[0].id, script_sid, "newest first: {shown:?}");
    assert_eq!(shown[0].device, "Unknown device");
    assert_eq!(shown[0].agent, None);
    let phone_session = shown
        .iter()
        .find(|s| !s.current && s.id != script_sid)
        .expect("the phone's session")
        .clone();
    assert_eq!(phone_session.device, "Headless Chrome on Linux");
    assert!(phone_session
        .agent
        .as_deref()
        .is_some_and(|agent| agent.contains("HeadlessChrome")));
    assert!(phone_session.can_end && phone_session.tag.is_none());
    assert!(laptop.visible("end-others").await);
    assert!(!laptop.visible("admin-entry").await, "not an admin");
    laptop.screenshot("sessions.png").await;

    // The script logs out meanwhile: ending its session from the stale list is refused (404),
    // the refusal is shown, and the list is read again.
    script.logout().await.expect("logout");
    laptop
        .click(&format!(
            "#session-list li[data-session=\"{script_sid}\"] button"
        ))
        .await;
    let error = laptop
        .until("the refusal", async || {
            let text = laptop.text("sessions-error").await;
            (!text.is_empty()).then_some(text)
        })
        .await;
    assert!(error.starts_with("Cannot end that session"), "{error}");
    laptop.until_sessions(2).await;

    // Ending the phone's session: the list shrinks, and the phone is logged out (its socket
    // closes, its refresh is refused).
    laptop
        .click(&format!(
            "#session-list li[data-session=\"{}\"] button",
            phone_session.id
        ))
        .await;
    let left = laptop.until_sessions(1).await;
    assert!(left[0].current);
    assert!(laptop.text("sessions-error").await.is_empty());
    assert!(!laptop.visible("end-others").await, "no other device");
    phone
        .until("the phone to be logged out", async || {
            (phone.visible("auth-view").await
                && phone
                    .text("auth-notice")
                    .await
                    .contains("session has ended"))
            .then_some(())
        })
        .await;

    // "Log out other devices" ends every session but this one.
    phone.login(&name).await;
    let script = hub.login(&name, PASSWORD).await;
    laptop.close_account_menu().await;
    laptop.open_account_menu().await;
    laptop.until_sessions(3).await;
    laptop.click("#end-others").await;
    let left = laptop.until_sessions(1).await;
    assert!(left[0].current);
    phone
        .until("the phone to be logged out again", async || {
            phone.visible("auth-view").await.then_some(())
        })
        .await;
    assert!(script.me().await.is_err(), "the script's session ended too");
    // The laptop goes on.
    laptop.until_online().await;
    assert!(laptop.visible("chat-view").await);

    // Keyboard: Escape closes the menu and gives the focus back to its button.
    laptop
        .find("#account-close")
        .await
        .send_keys(&char::from(fantoccini::key::Key::Escape).to_string())
        .await
        .expect("Escape");
    laptop
        .until("the menu to close", async || {
            (!laptop.visible("account-panel").await).then_some(())
        })
        .await;
    let focused: String = laptop.js("return document.activeElement.id;", vec![]).await;
    assert_eq!(focused, "account-toggle");

    laptop.close().await;
    phone.close().await;
}

#[tokio::test]
async fn an_admin_searches_pages_edits_and_deletes_users() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let driver = Driver::start().await;
    let admin = driver.browser("admin", 1280, 800).await;
    let admin_name = unique_name("root");
    register(&hub, &admin_name).await;
    hub.promote(&admin_name).await;
    let carol = unique_name("carol");
    let dave = unique_name("dave");
    register(&hub, &carol).await;
    register(&hub, &dave).await;
    hub.login(&dave, PASSWORD).await;

    admin.open(&hub.http_url()).await;
    admin.login(&admin_name).await;
    admin.open_account_menu().await;
    assert!(
        admin.visible("admin-entry").await,
        "an admin sees the way in"
    );
    admin.click("#open-admin").await;
    admin
        .until("the admin view", async || {
            (admin.visible("admin-view").await && !admin.visible("chat-view").await).then_some(())
        })
        .await;

    // Every account, oldest first, with its facts.
    let all = admin
        .search_users("", &[admin_name.as_str(), carol.as_str(), dave.as_str()])
        .await;
    assert_eq!(all[0].role, "admin");
    assert_eq!(all[1].role, "user");
    assert_eq!(all[1].email, format!("{carol}@example.com"));
    assert_eq!(all[1].last_login, "never");
    assert_ne!(all[2].last_login, "never", "dave logged in");
    admin.screenshot("admin.png").await;

    // Search on the server, as typed.
    let found = admin.search_users(&carol, &[carol.as_str()]).await;
    let carol_id = found[0].id.clone();

    // Change Carol's address: a taken one (409) and an invalid one (400) are refused and say
    // why; a free one is saved.
    admin.user_action(&carol_id, "edit-email").await;
    let field = format!("email-{carol_id}");
    admin.fill(&field, &format!("{dave}@EXAMPLE.com")).await;
    admin
        .click(&format!(
            "#user-list li[data-user=\"{carol_id}\"] button[type=submit]"
        ))
        .await;
    let error = admin.until_user_error(&carol_id).await;
    assert_eq!(error, "Another account already uses that e-mail address.");
    admin.fill(&field, "not-an-address").await;
    admin
        .click(&format!(
            "#user-list li[data-user=\"{carol_id}\"] button[type=submit]"
        ))
        .await;
    admin
        .until("the 400 refusal", async || {
            let row = admin.users().await.into_iter().find(|u| u.id == carol_id)?;
            (row.error != error && !row.error.is_empty()).then_some(())
        })
        .await;
    let new_address = format!("{carol}@example.org");
    admin.fill(&field, &new_address).await;
    admin
        .click(&format!(
            "#user-list li[data-user=\"{carol_id}\"] button[type=submit]"
        ))
        .await;
    admin
        .until("the new address", async || {
            let row = admin.users().await.into_iter().find(|u| u.id == carol_id)?;
            (row.email == new_address && row.error.is_empty()).then_some(())
        })
        .await;
    let me = hub.login(&carol, PASSWORD).await.me().await.expect("me");
    assert_eq!(me.user.email.as_deref(), Some(new_address.as_str()));

    // Delete Carol, after a confirmation; she cannot log in any more.
    admin.user_action(&carol_id, "delete").await;
    admin.user_action(&carol_id, "cancel-delete").await;
    assert_eq!(admin.users().await.len(), 1, "kept");
    admin.user_action(&carol_id, "delete").await;
    admin.user_action(&carol_id, "confirm-delete").await;
    admin
        .until("Carol to leave the list", async || {
            admin.users().await.is_empty().then_some(())
        })
        .await;
    assert!(admin.text("admin-status").await.contains("was deleted"));
    assert!(
        Api::new(&hub.http_url())
            .login(&carol, PASSWORD)
            .await
            .is_err(),
        "a deleted account cannot log in"
    );

    // An admin cannot be deleted: the 409 is shown in the row.
    let found = admin
        .search_users(&admin_name, &[admin_name.as_str()])
        .await;
    let admin_id = found[0].id.clone();
    admin.user_action(&admin_id, "delete").await;
    admin.user_action(&admin_id, "confirm-delete").await;
    let error = admin.until_user_error(&admin_id).await;
    assert!(
        error.starts_with("An admin account cannot be deleted"),
        "{error}"
    );
    assert_eq!(admin.users().await.len(), 1);

    // A search the server would refuse (400) is explained and not sent.
    admin.fill("admin-q", "no way!").await;
    admin
        .until("the search's refusal", async || {
            admin
                .text("admin-error")
                .await
                .starts_with("Search by part of a username")
                .then_some(())
        })
        .await;

    // Paging: one more account than a page holds, read with "Load more".
    const PAGE: usize = 25;
    let prefix = unique_name("pg");
    let names: Vec<String> = (0..=PAGE).map(|i| format!("{prefix}-{i:02}")).collect();
    for name in &names {
        register(&hub, name).await;
    }
    let expected: Vec<&str> = names.iter().map(String::as_str).collect();
    admin.search_users(&prefix, &expected[..PAGE]).await;
    assert!(admin.visible("admin-more").await);
    admin.click("#admin-more").await;
    admin
        .until("the second page", async || {
            let shown = admin.users().await;
            let names: Vec<&str> = shown.iter().map(|u| u.username.as_str()).collect();
            (names == expected).then_some(())
        })
        .await;
    admin
        .until("no more pages", async || {
            (!admin.visible("admin-more").await).then_some(())
        })
        .await;

    // Phone-sized: nothing wider than the screen.
    admin
        .client
        .set_window_size(375, 740)
        .await
        .expect("resize to 375px");
    admin
        .until("the narrow admin view", async || {
            let fits: bool = admin
                .js(
                    "return window.innerWidth <= 400 && \
                     document.documentElement.scrollWidth <= window.innerWidth && \
                     document.getElementById('user-list').getBoundingClientRect().right <= window.innerWidth;",
                    vec![],
                )
                .await;
            fits.then_some(())
        })
        .await;

    // Back to the chat.
    admin.click("#admin-back").await;
    admin
        .until("the chat again", async || {
            (admin.visible("chat-view").await && !admin.visible("admin-view").await).then_some(())
        })
        .await;
    admin.close().await;
}

#[tokio::test]
async fn a_user_sees_no_admin_entry_and_a_forced_admin_view_shows_the_refusal() {
    let _turn = turn().await;
    let hub = Hub::start().await;
    let driver = Driver::start().await;
    let bob = driver.browser("bob", 375, 740).await;
    let name = unique_name("bob");
    bob.open(&hub.http_url()).await;
    bob.register(&name).await;
    bob.client
        .set_window_size(375, 740)
        .await
        .expect("resize to 375px");

    bob.open_account_menu().await;
    assert!(bob.visible("account-panel").await);
    assert!(!bob.visible("admin-entry").await);
    assert!(!bob.visible("open-admin").await);
    assert!(!bob.visible("admin-view").await);
    // The menu fits the phone's screen.
    let fits: bool = bob
        .js(
            "const r = document.getElementById('account-panel').getBoundingClientRect(); \
             return window.innerWidth <= 400 && r.left >= 0 && r.right <= window.innerWidth && \
             document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await;
    assert!(fits, "the account menu fits 375px");
    bob.screenshot("sessions-375.png").await;
    bob.close_account_menu().await;

    // Forcing the view by its address: the server's refusal is shown, and no account.
    let _: Value = bob
        .js("location.hash = '#admin'; return null;", vec![])
        .await;
    let error = bob
        .until("the refusal", async || {
            let text = bob.text("admin-error").await;
            (bob.visible("admin-view").await && !text.is_empty()).then_some(text)
        })
        .await;
    assert!(error.contains("403"), "{error}");
    assert!(bob.users().await.is_empty());
    bob.close().await;
}
