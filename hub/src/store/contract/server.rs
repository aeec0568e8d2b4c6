//! Checks of what the server API keeps in the store: API keys, bots' messages, and the users
//! the hub knows by name.

use super::checks::new_room;
use super::{msg, user, Harness};
use crate::store::{ApiKeyRecord, Page, UserRef};

fn key(id: &str, name: &str, ts: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        hash: vec![ts as u8; 32],
        created_ts: ts,
        last_used_ts: None,
    }
}

/// Keys are unique by name and by id, listed oldest first, found by id, touched, and revoked
/// by name or id (then gone at once).
pub(super) async fn api_keys_are_stored_found_and_revoked(h: &mut Harness) {
    let store = &*h.store;
    assert!(store
        .create_api_key(key("00aa", "billing", 1))
        .await
        .unwrap());
    assert!(store
        .create_api_key(key("00bb", "deploy", 2))
        .await
        .unwrap());
    assert!(
        !store
            .create_api_key(key("00cc", "billing", 3))
            .await
            .unwrap(),
        "name taken"
    );
    assert!(
        !store.create_api_key(key("00aa", "other", 3)).await.unwrap(),
        "id taken"
    );
    let names: Vec<String> = store
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["billing", "deploy"]);
    let found = store.api_key("00aa").await.unwrap().expect("found by id");
    assert_eq!(found, key("00aa", "billing", 1));
    assert_eq!(
        store.api_key("billing").await.unwrap(),
        None,
        "found by id only"
    );
    store.touch_api_key("00aa", 99).await.unwrap();
    assert_eq!(
        store.api_key("00aa").await.unwrap().unwrap().last_used_ts,
        Some(99)
    );
    let revoked = store
        .revoke_api_key("billing")
        .await
        .unwrap()
        .expect("by name");
    assert_eq!(revoked.id, "00aa");
    assert_eq!(store.api_key("00aa").await.unwrap(), None);
    assert_eq!(store.revoke_api_key("billing").await.unwrap(), None);
    assert!(
        store.revoke_api_key("00bb").await.unwrap().is_some(),
        "by id"
    );
    assert!(store.api_keys().await.unwrap().is_empty());
    assert!(
        store
            .create_api_key(key("00dd", "billing", 4))
            .await
            .unwrap(),
        "name free again"
    );
}

/// A bot's messages (sender id `bot:<name>`) read as `bot`, live and from history; users'
/// do not; the hub knows members' ids by username, never a bot's.
pub(super) async fn bots_are_marked_and_never_known_users(h: &mut Harness) {
    let store = &*h.store;
    let alice = user("alice");
    // A bot with a user's name.
    let bot = UserRef {
        id: "bot:alice".to_owned(),
        username: "alice".to_owned(),
    };
    new_room(store, "r-bot", &bot).await;
    store
        .append(msg("r-bot", &bot, "beep", Some("k1")))
        .await
        .unwrap();
    let page = Page {
        before: None,
        after: None,
        limit: 10,
    };
    assert_eq!(
        store.known_user("alice").await.unwrap(),
        None,
        "a bot is no user"
    );
    assert!(store.add_member("r-bot", &alice, 2).await.unwrap());
    store
        .append(msg("r-bot", &alice, "hi", None))
        .await
        .unwrap();
    let messages = store.messages("r-bot", page).await.unwrap();
    let marks: Vec<(&str, bool)> = messages.iter().map(|m| (m.body.as_str(), m.bot)).collect();
    assert_eq!(marks, [("beep", true), ("hi", false)]);
    assert!(
        store
            .message("r-bot", 1)
            .await
            .unwrap()
            .unwrap()
            .message
            .bot
    );
    assert_eq!(store.known_user("alice").await.unwrap(), Some(alice));
    assert_eq!(store.known_user("nobody").await.unwrap(), None);
}
