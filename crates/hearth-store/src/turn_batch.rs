//! Assistant turns, group-committed: every request stores its turn, and under load one
//! transaction per turn would make the database's writer the queue every request waits in.

use crate::group_commit::GroupCommit;
use crate::{AssistantTurn, StoreResult};

/// `record_assistant_turn`'s queue.
pub(crate) type Turns = GroupCommit<AssistantTurn, StoreResult<()>>;

/// Turns stored in one transaction, at most.
pub(crate) const MAX_TURNS_PER_BATCH: usize = 256;
