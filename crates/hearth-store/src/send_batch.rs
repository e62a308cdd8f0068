//! Deciding what each send of a batch does, once the batch's transaction has read the
//! members of its conversations and the earlier groups of its `client_msg_id`s. The rules
//! are [`Store::send_message`]'s, applied to the sends in the order they arrived, so a batch
//! stores exactly what the same sends one after the other would have stored.
//!
//! [`Store::send_message`]: crate::Store::send_message

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use crate::group_commit::GroupCommit;
use crate::{MessageDelivery, NewMessageGroup, StoreError, StoreResult};

/// `send_message`'s queue: sends in, each one's own outcome out.
pub(crate) type Sends = GroupCommit<NewMessageGroup, StoreResult<MessageDelivery>>;

/// Sends stored in one transaction, at most: enough that a batch's statements and commit cost
/// little per send, few enough that the batch's transaction stays short.
pub(crate) const MAX_SENDS_PER_BATCH: usize = 128;

/// A `client_msg_id` in its scope: the same id from the same sender in the same conversation.
pub(crate) type ClientKey = (Uuid, Uuid, String);

/// What one send of a batch does.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Store it: a new group and one message per recipient.
    Insert,
    /// A resend of a group stored before this batch: deliver that one again.
    Earlier(Uuid),
    /// A resend of an earlier send in this batch (by index): deliver that one again.
    SameAs(usize),
    /// Refused, storing nothing.
    Refused(StoreError),
}

/// The key a send deduplicates by, if it has a `client_msg_id`.
pub(crate) fn client_key(send: &NewMessageGroup) -> Option<ClientKey> {
    send.client_msg_id.clone().map(|id| (send.conversation_id, send.sender, id))
}

/// The plan of every send, in order. `members` has the conversations that exist (with their
/// members); `earlier` the groups already stored under a client key.
pub(crate) fn plan(
    sends: &[NewMessageGroup],
    members: &HashMap<Uuid, BTreeSet<Uuid>>,
    earlier: &HashMap<ClientKey, Uuid>,
) -> Vec<Plan> {
    let mut claimed: HashMap<ClientKey, usize> = HashMap::new();
    let no_members = BTreeSet::new();
    sends
        .iter()
        .enumerate()
        .map(|(index, send)| {
            // A resend is recognised before any rule is checked: it stores nothing new.
            let key = client_key(send);
            if let Some(key) = &key {
                if let Some(group) = earlier.get(key) {
                    return Plan::Earlier(*group);
                }
                if let Some(first) = claimed.get(key) {
                    return Plan::SameAs(*first);
                }
            }
            let members = members.get(&send.conversation_id).unwrap_or(&no_members);
            if !members.contains(&send.sender) {
                return Plan::Refused(StoreError::NotFound);
            }
            if let Err(rule) = crate::queries::check_recipients(members, &send.contents) {
                return Plan::Refused(rule);
            }
            // Only a send that is stored claims its client key: a refused one claims nothing.
            if let Some(key) = key {
                claimed.insert(key, index);
            }
            Plan::Insert
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Timestamp;

    fn send(conversation: Uuid, sender: Uuid, recipients: &[Uuid], client_msg_id: Option<&str>) -> NewMessageGroup {
        NewMessageGroup {
            id: Uuid::now_v7(),
            conversation_id: conversation,
            sender,
            client_msg_id: client_msg_id.map(str::to_owned),
            contents: recipients.iter().map(|r| (*r, "ciphertext".to_owned())).collect::<BTreeMap<_, _>>(),
            now: Timestamp::now(),
        }
    }

    #[test]
    fn each_send_is_judged_as_if_alone_in_arrival_order() {
        let (ada, bob, cy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (team, gone) = (Uuid::now_v7(), Uuid::now_v7());
        let members = HashMap::from([(team, BTreeSet::from([ada, bob]))]);
        let stored_before = Uuid::now_v7();
        let earlier = HashMap::from([((team, ada, "old".to_owned()), stored_before)]);
        let sends = [
            send(team, ada, &[ada, bob], None),          // 0: stored
            send(team, ada, &[ada], Some("a")),          // 1: wrong recipients, claims nothing
            send(team, ada, &[ada, bob], Some("a")),     // 2: stored, claims "a"
            send(team, ada, &[cy], Some("a")),           // 3: resend of 2, rules not checked
            send(team, bob, &[ada, bob], Some("a")),     // 4: another sender's "a": stored
            send(team, ada, &[ada, bob], Some("old")),   // 5: resend of a group stored before
            send(team, cy, &[ada, bob], None),           // 6: not a member
            send(gone, ada, &[ada], None),               // 7: no such conversation
            send(team, ada, &[ada, bob, cy], Some("b")), // 8: a non-member recipient
        ];
        let plans = plan(&sends, &members, &earlier);
        let shown: Vec<String> = plans
            .iter()
            .map(|plan| match plan {
                Plan::Insert => "insert".to_owned(),
                Plan::Earlier(group) => format!("earlier {}", *group == stored_before),
                Plan::SameAs(index) => format!("same as {index}"),
                Plan::Refused(StoreError::NotFound) => "not found".to_owned(),
                Plan::Refused(StoreError::Rule(_)) => "rule".to_owned(),
                Plan::Refused(other) => format!("{other}"),
            })
            .collect();
        assert_eq!(
            shown,
            ["insert", "rule", "insert", "same as 2", "insert", "earlier true", "not found", "not found", "rule"]
        );
    }
}
