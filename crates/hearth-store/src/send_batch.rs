//! A batch of sends, as both backends store it: deciding what each send does once the
//! batch's transaction has read the members of its conversations and the earlier groups of its
//! `client_msg_id`s, the rows that follows from, and each send's outcome. The rules are
//! [`ConversationStore::send_message`]'s, applied to the sends in the order they arrived, so a batch
//! stores exactly what the same sends one after the other would have stored. The backends
//! differ only in how they run the statements (`sqlite/sends.rs`, `postgres/sends.rs`).
//!
//! [`ConversationStore::send_message`]: crate::ConversationStore::send_message

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use uuid::Uuid;

use crate::group_commit::GroupCommit;
use crate::{MessageDelivery, NewMessageGroup, StoreError, StoreResult, StoredMessage};

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

/// The group ids the clients of `sends` chose, to look up before planning.
pub(crate) fn chosen_ids(sends: &[NewMessageGroup]) -> BTreeSet<Uuid> {
    sends.iter().filter(|send| send.client_chose_id).map(|send| send.id).collect()
}

/// The refusal of a send whose client chose a group id in use.
pub(crate) fn id_taken() -> StoreError {
    StoreError::Conflict(crate::conversations::MESSAGE_GROUP_ID)
}

/// The plan of every send, in order. `members` has the conversations that exist (with their
/// members); `earlier` the groups already stored under a client key; `taken` those of the
/// [`chosen_ids`] that stored groups have.
pub(crate) fn plan(
    sends: &[NewMessageGroup],
    members: &HashMap<Uuid, BTreeSet<Uuid>>,
    earlier: &HashMap<ClientKey, Uuid>,
    taken: &HashSet<Uuid>,
) -> Vec<Plan> {
    let mut claimed: HashMap<ClientKey, usize> = HashMap::new();
    let mut claimed_ids: HashSet<Uuid> = HashSet::new();
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
            if let Err(rule) = crate::conversations::check_recipients(members, &send.contents) {
                return Plan::Refused(rule);
            }
            // Checked after membership: only a member learns that a group id is in use.
            if send.client_chose_id && (taken.contains(&send.id) || claimed_ids.contains(&send.id)) {
                return Plan::Refused(id_taken());
            }
            // Only a send that is stored claims its client key and group id: a refused one
            // claims nothing.
            if let Some(key) = key {
                claimed.insert(key, index);
            }
            claimed_ids.insert(send.id);
            Plan::Insert
        })
        .collect()
}

/// The deliveries of the sends planned [`Plan::Insert`], by index: the rows to insert.
pub(crate) fn new_deliveries(plans: &[Plan], sends: &[NewMessageGroup]) -> HashMap<usize, MessageDelivery> {
    plans
        .iter()
        .zip(sends)
        .enumerate()
        .filter(|(_, (plan, _))| matches!(plan, Plan::Insert))
        .map(|(index, (_, send))| {
            let messages: BTreeMap<Uuid, StoredMessage> = send
                .contents
                .iter()
                .map(|(recipient, content)| {
                    let stored = StoredMessage {
                        id: Uuid::now_v7(),
                        message_group: send.id,
                        sender: send.sender,
                        content: content.clone(),
                        inserted_at: send.now,
                        updated_at: send.now,
                        history_key: send.history_key,
                    };
                    (*recipient, stored)
                })
                .collect();
            (index, MessageDelivery { conversation_id: send.conversation_id, messages, fresh: true })
        })
        .collect()
}

/// The groups stored before the batch that some of its sends resend.
pub(crate) fn earlier_groups(plans: &[Plan]) -> BTreeSet<Uuid> {
    plans.iter().filter_map(|plan| if let Plan::Earlier(group) = plan { Some(*group) } else { None }).collect()
}

/// Each send's outcome, in order: `fresh` has the deliveries of the sends stored (from
/// [`new_deliveries`]), `earlier` the deliveries of the groups in [`earlier_groups`].
pub(crate) fn outcomes(
    plans: Vec<Plan>,
    mut fresh: HashMap<usize, MessageDelivery>,
    earlier: &HashMap<Uuid, MessageDelivery>,
) -> Vec<StoreResult<MessageDelivery>> {
    let mut results: Vec<StoreResult<MessageDelivery>> = Vec::with_capacity(plans.len());
    for (index, plan) in plans.into_iter().enumerate() {
        let result = match plan {
            Plan::Insert => fresh.remove(&index).ok_or(StoreError::NotFound),
            Plan::Earlier(group) => earlier
                .get(&group)
                .map(|delivery| MessageDelivery { fresh: false, ..delivery.clone() })
                .ok_or(StoreError::NotFound),
            // `first` was stored (or found stored), so its result is a delivery.
            Plan::SameAs(first) => match &results[first] {
                Ok(delivery) => Ok(MessageDelivery { fresh: false, ..delivery.clone() }),
                Err(_) => Err(StoreError::NotFound),
            },
            Plan::Refused(error) => Err(error),
        };
        results.push(result);
    }
    results
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Timestamp;

    fn send(conversation: Uuid, sender: Uuid, recipients: &[Uuid], client_msg_id: Option<&str>) -> NewMessageGroup {
        let id = Uuid::now_v7();
        NewMessageGroup {
            id,
            history_key: id,
            client_chose_id: false,
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
        let plans = plan(&sends, &members, &earlier, &HashSet::new());
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

    #[test]
    fn a_chosen_group_id_in_use_is_refused_for_that_send_alone() {
        let (ada, bob, cy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let team = Uuid::now_v7();
        let members = HashMap::from([(team, BTreeSet::from([ada, bob]))]);
        let (stored_before, chosen) = (Uuid::now_v7(), Uuid::now_v7());
        let earlier = HashMap::from([((team, ada, "old".to_owned()), stored_before)]);
        let choosing = |sender, recipients: &[Uuid], id, client_msg_id| NewMessageGroup {
            id,
            client_chose_id: true,
            ..send(team, sender, recipients, client_msg_id)
        };
        let sends = [
            choosing(ada, &[ada, bob], stored_before, None), // 0: in use before the batch
            choosing(cy, &[ada, bob], chosen, None),         // 1: not a member: not told
            choosing(ada, &[ada], chosen, None),             // 2: wrong recipients, claims nothing
            choosing(ada, &[ada, bob], chosen, Some("a")),   // 3: stored, claims the id
            choosing(bob, &[ada, bob], chosen, None),        // 4: taken in this batch
            choosing(ada, &[ada, bob], chosen, Some("a")),   // 5: a resend of 3: fine
            choosing(ada, &[ada, bob], stored_before, Some("old")), // 6: a resend of the earlier one
            send(team, bob, &[ada, bob], None),              // 7: the server's id: stored
        ];
        assert_eq!(chosen_ids(&sends), BTreeSet::from([stored_before, chosen]));
        let plans = plan(&sends, &members, &earlier, &HashSet::from([stored_before]));
        let shown: Vec<String> = plans
            .iter()
            .map(|plan| match plan {
                Plan::Insert => "insert".to_owned(),
                Plan::Earlier(_) => "earlier".to_owned(),
                Plan::SameAs(index) => format!("same as {index}"),
                Plan::Refused(StoreError::Conflict("message_group_id")) => "taken".to_owned(),
                Plan::Refused(StoreError::NotFound) => "not found".to_owned(),
                Plan::Refused(StoreError::Rule(_)) => "rule".to_owned(),
                Plan::Refused(other) => format!("{other}"),
            })
            .collect();
        assert_eq!(shown, ["taken", "not found", "rule", "insert", "taken", "same as 3", "earlier", "insert"]);
    }

    #[test]
    fn outcomes_follow_the_plans() {
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let team = Uuid::now_v7();
        let sends = [
            send(team, ada, &[ada, bob], Some("a")),
            send(team, ada, &[ada, bob], Some("a")),
            send(team, ada, &[ada, bob], Some("old")),
            send(team, bob, &[ada], None),
        ];
        let stored_before = Uuid::now_v7();
        let plans =
            vec![Plan::Insert, Plan::SameAs(0), Plan::Earlier(stored_before), Plan::Refused(StoreError::NotFound)];
        let fresh = new_deliveries(&plans, &sends);
        assert_eq!(fresh.keys().copied().collect::<Vec<_>>(), [0]);
        let first = fresh[&0].clone();
        assert_eq!(first.messages.keys().copied().collect::<BTreeSet<_>>(), BTreeSet::from([ada, bob]));
        assert!(first.messages.values().all(|message| message.message_group == sends[0].id && message.sender == ada));
        assert_eq!(earlier_groups(&plans), BTreeSet::from([stored_before]));
        let before = MessageDelivery { conversation_id: team, messages: BTreeMap::new(), fresh: true };
        let results = outcomes(plans, fresh, &HashMap::from([(stored_before, before)]));
        let [Ok(stored), Ok(resent), Ok(earlier), Err(StoreError::NotFound)] = &results[..] else {
            panic!("{results:?}")
        };
        assert!(stored.fresh && !resent.fresh && !earlier.fresh);
        assert_eq!(stored.messages, first.messages);
        assert_eq!(resent.messages, first.messages);
        assert_eq!(earlier.conversation_id, team);
    }
}
