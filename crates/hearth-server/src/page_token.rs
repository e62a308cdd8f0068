//! Opaque page tokens: a cursor, authenticated with an HMAC so a client cannot forge or
//! alter one (a tampered token is a 400), and bound to the listing it came from.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth_vault::ServerSecret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::ApiError;

const TAG_LEN: usize = 16;

/// Signs and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens")
    }
}

impl PageTokens {
    /// Page tokens keyed from `secret`.
    pub fn new(secret: &ServerSecret) -> Self {
        Self { key: secret.derive("page-token") }
    }

    fn mac(&self, listing: &str, cursor: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref()).expect("any key length");
        mac.update(listing.as_bytes());
        mac.update(&[0]);
        mac.update(cursor);
        mac
    }

    /// A token for `cursor` in the listing named `listing`.
    pub fn encode(&self, listing: &str, cursor: &[u8]) -> String {
        let mut bytes = cursor.to_vec();
        bytes.extend_from_slice(&self.mac(listing, cursor).finalize().into_bytes()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor inside a token of `listing`, or a 400.
    pub fn decode(&self, listing: &str, token: &str) -> Result<Vec<u8>, ApiError> {
        let invalid = || ApiError::bad_request("invalid_page_token", "The page token is invalid.");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() < TAG_LEN {
            return Err(invalid());
        }
        let (cursor, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        // Constant-time: timing does not tell a forger how much of the tag matched.
        self.mac(listing, cursor).verify_truncated_left(tag).map_err(|_| invalid())?;
        Ok(cursor.to_vec())
    }

    /// The id a page of `listing` continues from: `None` for the first page (no token), a 400
    /// for a token that is not a valid one of this listing holding an id.
    pub fn decode_id(&self, listing: &str, token: Option<&str>) -> Result<Option<Uuid>, ApiError> {
        let Some(token) = token else { return Ok(None) };
        let cursor = self.decode(listing, token)?;
        let id = Uuid::from_slice(&cursor)
            .map_err(|_| ApiError::bad_request("invalid_page_token", "The page token is invalid."))?;
        Ok(Some(id))
    }

    /// Cuts `rows`, read one past `size` (the extra row says that another page exists), to
    /// `size`, and returns the token of the next page (the id `key` gives of the last row kept),
    /// or `None` on the last page.
    pub fn next_page<T>(
        &self,
        listing: &str,
        rows: &mut Vec<T>,
        size: u32,
        key: impl Fn(&T) -> Uuid,
    ) -> Option<String> {
        if rows.len() <= size as usize {
            return None;
        }
        rows.truncate(size as usize);
        rows.last().map(|last| self.encode(listing, key(last).as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_tampering_and_other_listings() {
        let tokens = PageTokens::new(&ServerSecret::from_text(&ServerSecret::generate_text()).expect("secret"));
        let token = tokens.encode("users", b"cursor-bytes");
        assert_eq!(tokens.decode("users", &token).expect("valid"), b"cursor-bytes");
        assert!(tokens.decode("messages", &token).is_err());
        let mut tampered = token.into_bytes();
        tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
        assert!(tokens.decode("users", std::str::from_utf8(&tampered).expect("ascii")).is_err());
        assert!(tokens.decode("users", "!!!").is_err());
        assert!(tokens.decode("users", "").is_err());
    }

    #[test]
    fn pages_cut_one_past_the_size_and_continue_from_the_last_id() {
        let tokens = PageTokens::new(&ServerSecret::from_text(&ServerSecret::generate_text()).expect("secret"));
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut last_page = ids[..2].to_vec();
        assert_eq!(tokens.next_page("rooms", &mut last_page, 2, |id| *id), None);
        assert_eq!(last_page.len(), 2);

        let mut rows = ids.clone();
        let token = tokens.next_page("rooms", &mut rows, 2, |id| *id).expect("another page");
        assert_eq!(rows, ids[..2]);
        assert_eq!(tokens.decode_id("rooms", Some(&token)).expect("valid"), Some(ids[1]));
        assert_eq!(tokens.decode_id("rooms", None).expect("first page"), None);
        assert!(tokens.decode_id("users", Some(&token)).is_err(), "bound to its listing");
        let not_an_id = tokens.encode("rooms", b"short");
        assert!(tokens.decode_id("rooms", Some(&not_an_id)).is_err());
    }
}
